//! Consistent read views over one redb read transaction.

use std::sync::Arc;

use jmt::Sha256Jmt;
use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase};

use crate::proof::StateProof;
use crate::schema::{
    decode_root, key_hash, read_latest, read_oldest, read_root, value_as_of, Bytes, TableReader,
    AUX, KEY_HASHES, META, NODES, PREIMAGES, ROOTS, VALUES,
};
use crate::{Entries, Root, StateError, Version, EMPTY_ROOT};

struct Inner {
    version: Option<Version>,
    root: Root,
    nodes: ReadOnlyTable<Bytes, Bytes>,
    values: ReadOnlyTable<Bytes, Bytes>,
    preimages: ReadOnlyTable<Bytes, Bytes>,
    key_hashes: ReadOnlyTable<Bytes, Bytes>,
    aux: ReadOnlyTable<Bytes, Bytes>,
    _txn: ReadTransaction,
}

/// Read view of one committed version (MVCC: unaffected by later commits). Cheap to clone.
#[derive(Clone)]
pub struct Snapshot {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.inner.version)
            .field("root", &HexRoot(&self.inner.root))
            .finish()
    }
}

struct HexRoot<'a>(&'a Root);
impl std::fmt::Debug for HexRoot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Snapshot {
    /// `at = None`: latest version; `Some(v)`: version `v`, which must be committed.
    pub(crate) fn open(db: &Database, at: Option<Version>) -> Result<Snapshot, StateError> {
        let txn = db.begin_read()?;
        let meta = txn.open_table(META)?;
        let latest = read_latest(&meta)?;
        let version = match (at, latest) {
            (None, l) => l,
            (Some(v), Some(l)) if v <= l => Some(v),
            (Some(v), _) => return Err(StateError::UnknownVersion(v)),
        };
        if let (Some(v), Some(_)) = (at, version) {
            let oldest = read_oldest(&meta)?;
            if v < oldest {
                return Err(StateError::Pruned { version: v, oldest });
            }
        }
        let root = match version {
            None => EMPTY_ROOT,
            Some(v) => read_root(&txn.open_table(ROOTS)?, v)?.ok_or_else(|| match at {
                Some(_) => StateError::UnknownVersion(v),
                None => StateError::Corrupt(format!("no root recorded for latest version {v}")),
            })?,
        };
        Ok(Snapshot {
            inner: Arc::new(Inner {
                version,
                root,
                nodes: txn.open_table(NODES)?,
                values: txn.open_table(VALUES)?,
                preimages: txn.open_table(PREIMAGES)?,
                key_hashes: txn.open_table(KEY_HASHES)?,
                aux: txn.open_table(AUX)?,
                _txn: txn,
            }),
        })
    }

    /// The version this snapshot reads; `None` = empty store.
    pub fn version(&self) -> Option<Version> {
        self.inner.version
    }

    /// The JMT root of this snapshot's version (the empty root for an empty store).
    pub fn root(&self) -> Root {
        self.inner.root
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let Some(v) = self.inner.version else {
            return Ok(None);
        };
        value_as_of(&self.inner.values, &key_hash(key), v)
    }

    /// The value and a proof of presence, or `None` and a proof of absence, against `self.root()`.
    pub fn get_with_proof(&self, key: &[u8]) -> Result<(Option<Vec<u8>>, StateProof), StateError> {
        let Some(v) = self.inner.version else {
            return Ok((None, StateProof::empty_tree()?));
        };
        let reader = TableReader {
            nodes: &self.inner.nodes,
            values: &self.inner.values,
        };
        let (value, proof) = Sha256Jmt::new(&reader)
            .get_with_proof(key_hash(key), v)
            .map_err(StateError::from_tree)?;
        Ok((value, StateProof::new(proof)))
    }

    /// All (key, value) whose key starts with `prefix`, ascending by key, as of this version.
    pub fn prefix(&self, prefix: &[u8]) -> Result<Entries, StateError> {
        let Some(v) = self.inner.version else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in self.inner.preimages.range::<&[u8]>(prefix..)? {
            let (k, h) = entry?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let kh = jmt::KeyHash(decode_root(h.value())?);
            if let Some(val) = value_as_of(&self.inner.values, &kh, v)? {
                out.push((key.to_vec(), val));
            }
        }
        Ok(out)
    }

    /// The first live entry under `prefix` in key order whose key `skip` does not reject,
    /// reading only as far as it has to (not the whole prefix).
    pub fn prefix_first(
        &self,
        prefix: &[u8],
        skip: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
        let Some(v) = self.inner.version else {
            return Ok(None);
        };
        for entry in self.inner.preimages.range::<&[u8]>(prefix..)? {
            let (k, h) = entry?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            if skip(key) {
                continue;
            }
            let kh = jmt::KeyHash(decode_root(h.value())?);
            if let Some(val) = value_as_of(&self.inner.values, &kh, v)? {
                return Ok(Some((key.to_vec(), val)));
            }
        }
        Ok(None)
    }

    /// The key whose hash is `kh`, if this store ever wrote it.
    pub(crate) fn preimage(&self, kh: &[u8; 32]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .inner
            .key_hashes
            .get(&kh[..])?
            .map(|g| g.value().to_vec()))
    }

    /// The node and value tables, for a tree reader that owns the snapshot.
    pub(crate) fn with_tables<R>(
        &self,
        f: impl FnOnce(&ReadOnlyTable<Bytes, Bytes>, &ReadOnlyTable<Bytes, Bytes>) -> R,
    ) -> R {
        f(&self.inner.nodes, &self.inner.values)
    }

    /// Non-verifiable auxiliary value (as of the moment the snapshot was taken).
    pub fn get_aux(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.inner.aux.get(key)?.map(|g| g.value().to_vec()))
    }

    /// Up to `limit` aux entries whose key starts with `prefix`, ascending by key.
    pub fn aux_prefix(&self, prefix: &[u8], limit: usize) -> Result<Entries, StateError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for entry in self.inner.aux.range::<&[u8]>(prefix..)? {
            let (k, v) = entry?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}
