//! The persistent store: one redb file holding the JMT nodes, versioned values, key preimages,
//! per-version roots and the non-verifiable `aux` table.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use jmt::{KeyHash, Sha256Jmt};
use parking_lot::{Mutex, RwLock};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction,
};

use crate::schema::{
    decode_u32, decode_u64, encode_value, key_hash, node_key_bytes, read_latest, read_oldest,
    read_root, stale_value_key, value_key, TableReader, AUX, KEY_HASHES, META, META_LATEST,
    META_OLDEST, META_SCHEMA, NODES, PREIMAGES, ROOTS, SCHEMA_VERSION, STALE, STALE_VALUES, VALUES,
};
use crate::snapshot::Snapshot;
use crate::{Root, StateError, Version, EMPTY_ROOT};

/// Writes of one version: key -> Some(value) = put, None = delete.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Which versions a store keeps readable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Retention {
    /// Every version (an archive node).
    #[default]
    Archive,
    /// The last `n` versions (`n >= 1`): each commit of version `v` prunes what only versions
    /// before `v + 1 - n` read, in the same durable transaction, at most
    /// [`PRUNE_ENTRIES_PER_COMMIT`] index entries at a time (a store switched from archive
    /// catches up over several commits).
    Last(u64),
}

/// Most stale-index entries one commit prunes (bounds the extra work of a commit).
pub const PRUNE_ENTRIES_PER_COMMIT: usize = 100_000;

/// Entry counts of the store's tables (for tests, metrics and the disk benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub nodes: u64,
    pub values: u64,
    pub stale_nodes: u64,
    pub stale_values: u64,
    pub preimages: u64,
    pub roots: u64,
    pub aux: u64,
}

struct Inner {
    db: Database,
    /// Cached copy of `meta.latest`; only changed under `commit_lock` after a durable commit.
    latest: RwLock<Option<Version>>,
    /// Serializes `commit` so the version check, the write and the cache update are one step.
    commit_lock: Mutex<()>,
    retention: RwLock<Retention>,
    /// Cached copy of `meta.oldest`, like `latest`.
    oldest: RwLock<Version>,
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
        let (latest, oldest) = match init_tables(&txn) {
            Ok(v) => v,
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
                retention: RwLock::new(Retention::Archive),
                oldest: RwLock::new(oldest),
            }),
        })
    }

    /// Keep every version, or only the last `n`, from the next commit on. `Last(0)` is
    /// refused (the latest version is always kept).
    pub fn set_retention(&self, r: Retention) -> Result<(), StateError> {
        if r == Retention::Last(0) {
            return Err(StateError::Db(
                "retention must keep at least the latest version".into(),
            ));
        }
        *self.inner.retention.write() = r;
        Ok(())
    }

    pub fn retention(&self) -> Retention {
        *self.inner.retention.read()
    }

    /// The oldest version whose state can still be read (0 when nothing was pruned).
    pub fn oldest_version(&self) -> Version {
        *self.inner.oldest.read()
    }

    /// Bytes of the file's pages in use, and of the keys and values in them (redb's own
    /// accounting; the file itself grows in large steps and reuses freed pages). Briefly takes
    /// the write lock, as a commit does.
    pub fn space(&self) -> Result<(u64, u64), StateError> {
        let _guard = self.inner.commit_lock.lock();
        let txn = self.inner.db.begin_write()?;
        let st = txn.stats()?;
        let out = (
            st.allocated_pages() * st.page_size() as u64,
            st.stored_bytes(),
        );
        txn.abort()?;
        Ok(out)
    }

    /// Entry counts of every table (one read transaction).
    pub fn stats(&self) -> Result<StoreStats, StateError> {
        let txn = self.inner.db.begin_read()?;
        Ok(StoreStats {
            nodes: txn.open_table(NODES)?.len()?,
            values: txn.open_table(VALUES)?.len()?,
            stale_nodes: txn.open_table(STALE)?.len()?,
            stale_values: txn.open_table(STALE_VALUES)?.len()?,
            preimages: txn.open_table(PREIMAGES)?.len()?,
            roots: txn.open_table(ROOTS)?.len()?,
            aux: txn.open_table(AUX)?.len()?,
        })
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    /// After a restore: the caches follow what `Restore::finish` wrote.
    pub(crate) fn set_restored(&self, version: Version) {
        let _guard = self.inner.commit_lock.lock();
        *self.inner.latest.write() = Some(version);
        *self.inner.oldest.write() = version;
    }

    /// The latest committed version; `None` before the first commit.
    pub fn latest_version(&self) -> Option<Version> {
        *self.inner.latest.read()
    }

    /// Root of an existing version. Roots are kept for every version, pruned or not (32 bytes
    /// each: light clients and block headers need them).
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
    /// [`StateError::Pruned`] for a version older than [`Store::oldest_version`].
    pub fn snapshot_at(&self, version: Version) -> Result<Snapshot, StateError> {
        Snapshot::open(&self.inner.db, Some(version))
    }

    /// Write `aux` entries alone (no new version), durably: for records a node keeps outside
    /// the commit of a height (e.g. the anchor block of a state-synced node).
    pub fn put_aux(&self, aux: BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Result<(), StateError> {
        let _guard = self.inner.commit_lock.lock();
        let mut txn = self.inner.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        write_aux(&txn, &aux)?;
        txn.commit()?;
        Ok(())
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
        let retention = *self.inner.retention.read();
        let done = write_version(&txn, version, writes, aux).and_then(|root| {
            let oldest = match retention {
                Retention::Archive => None,
                Retention::Last(n) => Some(prune(&txn, version.saturating_sub(n - 1))?),
            };
            Ok((root, oldest))
        });
        let (root, oldest) = match done {
            Ok(v) => v,
            Err(e) => {
                let _ = txn.abort();
                return Err(e);
            }
        };
        txn.commit()?;
        *self.inner.latest.write() = Some(version);
        if let Some(o) = oldest {
            *self.inner.oldest.write() = o;
        }
        Ok(root)
    }
}

/// Delete, for up to `budget` entries of the stale `index` below `end` (a stale-since version,
/// big-endian, exclusive), the entry and the `target` row it names (the key after the 8-byte
/// version). Returns the entries deleted and, if the budget ran out, the stale-since version
/// of the first one left.
fn prune_index(
    txn: &WriteTransaction,
    index: redb::TableDefinition<'static, &'static [u8], ()>,
    target: redb::TableDefinition<'static, &'static [u8], &'static [u8]>,
    end: &[u8; 8],
    budget: usize,
) -> Result<(usize, Option<Version>), StateError> {
    let mut stale = txn.open_table(index)?;
    let mut rows = txn.open_table(target)?;
    let keys: Vec<Vec<u8>> = stale
        .range::<&[u8]>(..&end[..])?
        .take(budget + 1)
        .map(|e| e.map(|(k, _)| k.value().to_vec()))
        .collect::<Result<_, _>>()?;
    for (i, k) in keys.iter().enumerate() {
        if k.len() < 9 {
            return Err(StateError::Corrupt(format!(
                "stale index key of {} bytes",
                k.len()
            )));
        }
        if i == budget {
            return Ok((i, Some(decode_u64(&k[..8], "stale index key")?)));
        }
        rows.remove(&k[8..])?;
        stale.remove(&k[..])?;
    }
    Ok((keys.len(), None))
}

/// Delete what no version from `target` on reads, up to [`PRUNE_ENTRIES_PER_COMMIT`] index
/// entries, and record the new oldest readable version: `target`, or, if the limit stopped it
/// early, the version before the first entry left (never less than before). Returns it.
fn prune(txn: &WriteTransaction, target: Version) -> Result<Version, StateError> {
    let mut meta = txn.open_table(META)?;
    let before = read_oldest(&meta)?;
    if target <= before {
        return Ok(before);
    }
    let end = target.checked_add(1).ok_or(StateError::VersionOverflow)?;
    let end = end.to_be_bytes();
    // The stale_since of the first entry left in either index, if the budget ran out.
    let (used, left_nodes) = prune_index(txn, STALE, NODES, &end, PRUNE_ENTRIES_PER_COMMIT)?;
    let budget = PRUNE_ENTRIES_PER_COMMIT.saturating_sub(used);
    let (_, left_values) = prune_index(txn, STALE_VALUES, VALUES, &end, budget)?;
    let left = match (left_nodes, left_values) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let oldest = match left {
        None => target,
        Some(since) => since.saturating_sub(1).max(before),
    };
    meta.insert(META_OLDEST, &oldest.to_be_bytes()[..])?;
    Ok(oldest)
}

/// Apply puts (`Some`) and deletes (`None`) to the aux table.
fn write_aux(
    txn: &WriteTransaction,
    aux: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Result<(), StateError> {
    let mut table = txn.open_table(AUX)?;
    for (k, v) in aux {
        match v {
            Some(v) => {
                table.insert(&k[..], &v[..])?;
            }
            None => {
                table.remove(&k[..])?;
            }
        }
    }
    Ok(())
}

/// Create every table, check the schema version, return `meta.latest` and `meta.oldest`.
fn init_tables(txn: &WriteTransaction) -> Result<(Option<Version>, Version), StateError> {
    let mut meta = txn.open_table(META)?;
    for def in [NODES, VALUES, PREIMAGES, AUX] {
        txn.open_table(def)?;
    }
    txn.open_table(ROOTS)?;
    txn.open_table(STALE)?;
    txn.open_table(STALE_VALUES)?;
    {
        // Stores written before the reverse preimage index get it on first open.
        let mut rev = txn.open_table(KEY_HASHES)?;
        if rev.is_empty()? {
            let pre = txn.open_table(PREIMAGES)?;
            for e in pre.iter()? {
                let (k, h) = e?;
                rev.insert(h.value(), k.value())?;
            }
        }
    }
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
    Ok((read_latest(&meta)?, read_oldest(&meta)?))
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
    {
        // Which value entries this version makes stale: each key's previous entry, and a
        // deletion marker itself (see `schema`).
        let mut stale = txn.open_table(STALE_VALUES)?;
        for ((ver, kh), v) in batch.node_batch.values() {
            let lo = value_key(kh, 0);
            let hi = value_key(kh, *ver);
            let prev = match values.range::<&[u8]>(&lo[..]..&hi[..])?.next_back() {
                Some(e) => Some(decode_u64(&e?.0.value()[32..], "jmt_values key")?),
                None => None,
            };
            if let Some(p) = prev {
                stale.insert(&stale_value_key(*ver, kh, p)[..], ())?;
            }
            if v.is_none() {
                stale.insert(&stale_value_key(*ver, kh, *ver)[..], ())?;
            }
            values.insert(&value_key(kh, *ver)[..], &encode_value(v)[..])?;
        }
    }
    {
        // Index of nodes replaced at this version, for the pruner.
        let mut stale = txn.open_table(STALE)?;
        for s in &batch.stale_node_index_batch {
            let mut k = s.stale_since_version.to_be_bytes().to_vec();
            k.extend_from_slice(&node_key_bytes(&s.node_key)?);
            stale.insert(&k[..], ())?;
        }
    }
    {
        let mut table = txn.open_table(PREIMAGES)?;
        let mut rev = txn.open_table(KEY_HASHES)?;
        for (k, kh) in &preimages {
            if table.get(&k[..])?.is_none() {
                table.insert(&k[..], &kh.0[..])?;
                rev.insert(&kh.0[..], &k[..])?;
            }
        }
    }
    write_aux(txn, &aux)?;
    txn.open_table(ROOTS)?.insert(version, &root.0[..])?;
    meta.insert(META_LATEST, &version.to_be_bytes()[..])?;
    Ok(root.0)
}
