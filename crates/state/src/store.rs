//! The persistent store: one redb file holding the JMT nodes, versioned values, key preimages,
//! per-version roots and the non-verifiable `aux` table.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use jmt::{KeyHash, Sha256Jmt};
use parking_lot::{Mutex, RwLock};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::schema::{
    decode_u32, encode_value, key_hash, node_key_bytes, read_latest, read_root, value_key,
    TableReader, AUX, META, META_LATEST, META_SCHEMA, NODES, PREIMAGES, ROOTS, SCHEMA_VERSION,
    STALE, VALUES,
};
use crate::snapshot::Snapshot;
use crate::{Root, StateError, Version, EMPTY_ROOT};

/// Writes of one version: key -> Some(value) = put, None = delete.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

struct Inner {
    db: Database,
    /// Cached copy of `meta.latest`; only changed under `commit_lock` after a durable commit.
    latest: RwLock<Option<Version>>,
    /// Serializes `commit` so the version check, the write and the cache update are one step.
    commit_lock: Mutex<()>,
}

/// Handle to the state database. Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("latest", &*self.inner.latest.read())
            .finish()
    }
}

impl Store {
    /// Open the store at `path`, creating the file if it is missing. Refuses a file written with
    /// another schema version.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        let latest = match init_tables(&txn) {
            Ok(latest) => latest,
            Err(e) => {
                let _ = txn.abort();
                return Err(e);
            }
        };
        txn.commit()?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                latest: RwLock::new(latest),
                commit_lock: Mutex::new(()),
            }),
        })
    }

    /// The latest committed version; `None` before the first commit.
    pub fn latest_version(&self) -> Option<Version> {
        *self.inner.latest.read()
    }

    /// Root of an existing version.
    pub fn root_at(&self, version: Version) -> Result<Root, StateError> {
        let txn = self.inner.db.begin_read()?;
        let roots = txn.open_table(ROOTS)?;
        read_root(&roots, version)?.ok_or(StateError::UnknownVersion(version))
    }

    /// Root of the empty tree (JMT's placeholder hash).
    pub fn empty_root() -> Root {
        EMPTY_ROOT
    }

    /// Read view of the latest committed version. Holds a redb read transaction: it never blocks
    /// the committer and keeps seeing the same data after later commits. Keep snapshots
    /// short-lived: pages they can see are not reclaimed while they live.
    pub fn snapshot(&self) -> Result<Snapshot, StateError> {
        Snapshot::open(&self.inner.db, None)
    }

    /// Read view of an older (or the latest) version: values as of `version`, aux as of now.
    pub fn snapshot_at(&self, version: Version) -> Result<Snapshot, StateError> {
        Snapshot::open(&self.inner.db, Some(version))
    }

    /// Atomically (one redb write transaction, durable on return) write version `version`:
    /// apply `writes` to the JMT on top of the previous version and apply `aux` to the aux table.
    /// `version` must be `latest_version() + 1`, or 0 for the first commit, else
    /// [`StateError::VersionMismatch`] and nothing changes. Returns the new root. An empty
    /// `writes` map still creates the version (root unchanged).
    pub fn commit(
        &self,
        version: Version,
        writes: WriteSet,
        aux: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Result<Root, StateError> {
        let _guard = self.inner.commit_lock.lock();
        let mut txn = self.inner.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let root = match write_version(&txn, version, writes, aux) {
            Ok(root) => root,
            Err(e) => {
                let _ = txn.abort();
                return Err(e);
            }
        };
        txn.commit()?;
        *self.inner.latest.write() = Some(version);
        Ok(root)
    }
}

/// Create every table, check the schema version, return `meta.latest`.
fn init_tables(txn: &WriteTransaction) -> Result<Option<Version>, StateError> {
    let mut meta = txn.open_table(META)?;
    for def in [NODES, VALUES, PREIMAGES, AUX] {
        txn.open_table(def)?;
    }
    txn.open_table(ROOTS)?;
    txn.open_table(STALE)?;
    let found = match meta.get(META_SCHEMA)? {
        Some(g) => Some(decode_u32(g.value(), "meta.schema")?),
        None => None,
    };
    match found {
        Some(v) if v == SCHEMA_VERSION => {}
        Some(v) => {
            return Err(StateError::UnsupportedSchema {
                found: v,
                supported: SCHEMA_VERSION,
            })
        }
        None => {
            if read_latest(&meta)?.is_some() {
                return Err(StateError::Corrupt(
                    "meta has a latest version but no schema".into(),
                ));
            }
            meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes()[..])?;
        }
    }
    read_latest(&meta)
}

/// Body of `commit`, inside the write transaction (aborted by the caller on error).
fn write_version(
    txn: &WriteTransaction,
    version: Version,
    writes: WriteSet,
    aux: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Result<Root, StateError> {
    let mut meta = txn.open_table(META)?;
    let expected = match read_latest(&meta)? {
        None => 0,
        Some(v) => v.checked_add(1).ok_or(StateError::VersionOverflow)?,
    };
    if version != expected {
        return Err(StateError::VersionMismatch {
            expected,
            got: version,
        });
    }

    let mut nodes = txn.open_table(NODES)?;
    let mut values = txn.open_table(VALUES)?;

    let mut preimages: Vec<(Vec<u8>, KeyHash)> = Vec::with_capacity(writes.len());
    let mut value_set: Vec<(KeyHash, Option<Vec<u8>>)> = Vec::with_capacity(writes.len());
    for (k, v) in writes {
        let kh = key_hash(&k);
        value_set.push((kh, v));
        preimages.push((k, kh));
    }

    let (root, batch) = {
        let reader = TableReader {
            nodes: &nodes,
            values: &values,
        };
        Sha256Jmt::new(&reader)
            .put_value_set(value_set, version)
            .map_err(StateError::from_tree)?
    };

    for (nk, node) in batch.node_batch.nodes() {
        let k = node_key_bytes(nk)?;
        let v = borsh::to_vec(node).map_err(|e| StateError::Tree(format!("encode node: {e}")))?;
        nodes.insert(&k[..], &v[..])?;
    }
    for ((ver, kh), v) in batch.node_batch.values() {
        values.insert(&value_key(kh, *ver)[..], &encode_value(v)[..])?;
    }
    {
        // Index of nodes replaced at this version, for a future pruner.
        let mut stale = txn.open_table(STALE)?;
        for s in &batch.stale_node_index_batch {
            let mut k = s.stale_since_version.to_be_bytes().to_vec();
            k.extend_from_slice(&node_key_bytes(&s.node_key)?);
            stale.insert(&k[..], ())?;
        }
    }
    {
        let mut table = txn.open_table(PREIMAGES)?;
        for (k, kh) in &preimages {
            if table.get(&k[..])?.is_none() {
                table.insert(&k[..], &kh.0[..])?;
            }
        }
    }
    {
        let mut table = txn.open_table(AUX)?;
        for (k, v) in &aux {
            match v {
                Some(v) => {
                    table.insert(&k[..], &v[..])?;
                }
                None => {
                    table.remove(&k[..])?;
                }
            }
        }
    }
    txn.open_table(ROOTS)?.insert(version, &root.0[..])?;
    meta.insert(META_LATEST, &version.to_be_bytes()[..])?;
    Ok(root.0)
}
