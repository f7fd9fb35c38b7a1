//! State sync: one version of the tree as chunks anyone can check against that version's root,
//! and a store rebuilt from them.
//!
//! A [`Chunk`] holds consecutive leaves of the tree in key-hash order (key preimage and value)
//! and a range proof for its last leaf (`jmt`'s `SparseMerkleRangeProof`: the siblings right of
//! the path to that leaf). Together with the leaves received before it, that proof must
//! reproduce the expected root, so a chunk that drops, adds, reorders or alters a leaf is
//! refused, before anything of it is written. [`Restore`] drives `jmt`'s restorer over a fresh
//! store; after a refused chunk it rebuilds the restorer from what was already written (the
//! restorer's own crash recovery), so the caller fetches that range again from another peer and
//! goes on. Rebuilding is also how an untrusted chunk that trips an internal check of the
//! restorer (a panic) is turned into a refusal.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use jmt::proof::SparseMerkleRangeProof;
use jmt::restore::{JellyfishMerkleRestore, StateSnapshotReceiver};
use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader, TreeWriter};
use jmt::{JellyfishMerkleIterator, KeyHash, OwnedValue, Sha256Jmt};
use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable};
use sha2::Sha256;

use crate::schema::{
    encode_value, key_hash, node_key_bytes, value_key, Bytes, TableReader, KEY_HASHES, META,
    META_LATEST, META_OLDEST, NODES, PREIMAGES, ROOTS, VALUES,
};
use crate::snapshot::Snapshot;
use crate::{Root, StateError, Store, Version, EMPTY_ROOT};

/// Most leaves a chunk may hold.
pub const MAX_CHUNK_ENTRIES: usize = 10_000;
/// Largest accepted encoded chunk.
pub const MAX_CHUNK_BYTES: usize = 32 * 1024 * 1024;

/// Consecutive leaves of one version, with the range proof of the last one.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct Chunk {
    pub version: Version,
    /// (key preimage, value), ascending by key hash (SHA-256 of the preimage).
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether the last entry is the version's last leaf, as the server says. A restore does not
    /// take its word: it is done when a chunk's proof shows nothing to the right of its last
    /// leaf ([`Chunk::proves_rightmost`]).
    pub last: bool,
    proof: SparseMerkleRangeProof<Sha256>,
}

impl Chunk {
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decode a chunk: bounded in size and entry count, no trailing bytes; never panics.
    pub fn from_bytes(b: &[u8]) -> Result<Chunk, StateError> {
        if b.len() > MAX_CHUNK_BYTES {
            return Err(StateError::BadChunk(format!(
                "{} bytes is over the {MAX_CHUNK_BYTES}-byte limit",
                b.len()
            )));
        }
        let c: Chunk =
            borsh::from_slice(b).map_err(|e| StateError::BadChunk(format!("undecodable: {e}")))?;
        if c.entries.len() > MAX_CHUNK_ENTRIES {
            return Err(StateError::BadChunk(format!(
                "{} entries is over the limit of {MAX_CHUNK_ENTRIES}",
                c.entries.len()
            )));
        }
        Ok(c)
    }

    /// Whether the range proof shows no leaf right of this chunk's last one: every right
    /// sibling on its path is the empty placeholder (borsh: a `u32` count, then that many
    /// zero tags, the `Null` variant of jmt's sibling nodes).
    pub fn proves_rightmost(&self) -> bool {
        let b = borsh::to_vec(&self.proof).unwrap_or_default();
        let Some(n) = b
            .get(..4)
            .and_then(|x| x.try_into().ok())
            .map(u32::from_le_bytes)
        else {
            return false;
        };
        b.len() == 4 + n as usize && b[4..].iter().all(|x| *x == 0)
    }

    /// The key hash of the last entry (where the next chunk starts after).
    pub fn last_key_hash(&self) -> Option<[u8; 32]> {
        self.entries.last().map(|(k, _)| key_hash(k).0)
    }
}

/// A tree reader that owns its snapshot (jmt's iterator wants an `Arc` of one).
struct SnapReader(Snapshot);

impl TreeReader for SnapReader {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        self.0
            .with_tables(|nodes, values| TableReader { nodes, values }.get_node_option(node_key))
    }
    fn get_value_option(
        &self,
        max_version: jmt::Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        self.0.with_tables(|nodes, values| {
            TableReader { nodes, values }.get_value_option(max_version, key_hash)
        })
    }
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Err(StateError::Tree("not used when serving chunks".into()).into())
    }
}

/// The next key hash after `k` (None past the last one).
fn successor(k: [u8; 32]) -> Option<[u8; 32]> {
    let mut out = k;
    for b in out.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(out);
        }
    }
    None
}

impl Snapshot {
    /// Up to `limit` (at most [`MAX_CHUNK_ENTRIES`]) leaves of this snapshot's version whose key
    /// hash is after `after` (from the first leaf if `None`), with their range proof.
    pub fn chunk(&self, after: Option<[u8; 32]>, limit: usize) -> Result<Chunk, StateError> {
        let version = self
            .version()
            .ok_or_else(|| StateError::BadChunk("the store is empty".into()))?;
        let limit = limit.clamp(1, MAX_CHUNK_ENTRIES);
        let empty_proof = || -> Result<SparseMerkleRangeProof<Sha256>, StateError> {
            // No right siblings: borsh of an empty Vec.
            borsh::from_slice(&[0, 0, 0, 0]).map_err(|e| StateError::Tree(e.to_string()))
        };
        if self.root() == EMPTY_ROOT {
            return Ok(Chunk {
                version,
                entries: vec![],
                last: true,
                proof: empty_proof()?,
            });
        }
        let start = match after {
            None => Some([0u8; 32]),
            Some(a) => successor(a),
        };
        let Some(start) = start else {
            return Ok(Chunk {
                version,
                entries: vec![],
                last: true,
                proof: empty_proof()?,
            });
        };
        let reader = Arc::new(SnapReader(self.clone()));
        let iter = JellyfishMerkleIterator::new(Arc::clone(&reader), version, KeyHash(start))
            .map_err(StateError::from_tree)?;
        let mut leaves: Vec<(KeyHash, OwnedValue)> = Vec::with_capacity(limit + 1);
        for item in iter.take(limit + 1) {
            leaves.push(item.map_err(StateError::from_tree)?);
        }
        let last = leaves.len() <= limit;
        leaves.truncate(limit);
        let Some((last_kh, _)) = leaves.last() else {
            return Ok(Chunk {
                version,
                entries: vec![],
                last: true,
                proof: empty_proof()?,
            });
        };
        let proof = Sha256Jmt::new(reader.as_ref())
            .get_range_proof(*last_kh, version)
            .map_err(StateError::from_tree)?;
        let mut entries = Vec::with_capacity(leaves.len());
        for (kh, v) in leaves {
            let pre = self.preimage(&kh.0)?.ok_or_else(|| {
                StateError::Corrupt(format!(
                    "no preimage recorded for key hash {}",
                    hex_short(&kh.0)
                ))
            })?;
            entries.push((pre, v));
        }
        Ok(Chunk {
            version,
            entries,
            last,
            proof,
        })
    }
}

fn hex_short(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

/// Writes the restorer's node batches (nodes and values) into the store being rebuilt, and
/// finds its rightmost leaf for recovery.
struct RestoreDb {
    store: Store,
}

impl TreeWriter for RestoreDb {
    fn write_node_batch(&self, batch: &NodeBatch) -> anyhow::Result<()> {
        let db: &Database = self.store.db();
        let mut txn = db.begin_write().map_err(StateError::from)?;
        // Made durable by the final commit of `Restore::finish` (an interrupted restore starts
        // over on a fresh file).
        txn.set_durability(Durability::None)
            .map_err(StateError::from)?;
        {
            let mut nodes = txn.open_table(NODES).map_err(StateError::from)?;
            for (nk, node) in batch.nodes() {
                let k = node_key_bytes(nk)?;
                let v = borsh::to_vec(node)
                    .map_err(|e| StateError::Tree(format!("encode node: {e}")))?;
                nodes.insert(&k[..], &v[..]).map_err(StateError::from)?;
            }
            let mut values = txn.open_table(VALUES).map_err(StateError::from)?;
            for ((ver, kh), v) in batch.values() {
                values
                    .insert(&value_key(kh, *ver)[..], &encode_value(v)[..])
                    .map_err(StateError::from)?;
            }
        }
        txn.commit().map_err(StateError::from)?;
        Ok(())
    }
}

impl RestoreDb {
    /// Run `f` on a tree reader over what has been written so far.
    fn read<R>(
        &self,
        f: impl FnOnce(
            &TableReader<'_, ReadOnlyTable<Bytes, Bytes>, ReadOnlyTable<Bytes, Bytes>>,
        ) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let txn = self.store.db().begin_read().map_err(StateError::from)?;
        let nodes = txn.open_table(NODES).map_err(StateError::from)?;
        let values = txn.open_table(VALUES).map_err(StateError::from)?;
        f(&TableReader {
            nodes: &nodes,
            values: &values,
        })
    }
}

impl TreeReader for RestoreDb {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        self.read(|r| r.get_node_option(node_key))
    }
    fn get_value_option(
        &self,
        max_version: jmt::Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        self.read(|r| r.get_value_option(max_version, key_hash))
    }
    /// The written leaf with the greatest key hash: a scan of every node (only after a refused
    /// chunk, and the store holds this one version only).
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        let txn = self.store.db().begin_read().map_err(StateError::from)?;
        let nodes = txn.open_table(NODES).map_err(StateError::from)?;
        let mut best: Option<(Vec<u8>, LeafNode)> = None;
        for e in nodes.iter().map_err(StateError::from)? {
            let (k, v) = e.map_err(StateError::from)?;
            if let Ok(Node::Leaf(leaf)) = borsh::from_slice::<Node>(v.value()) {
                if best
                    .as_ref()
                    .is_none_or(|(_, b)| leaf.key_hash() > b.key_hash())
                {
                    best = Some((k.value().to_vec(), leaf));
                }
            }
        }
        let Some((k, leaf)) = best else {
            return Ok(None);
        };
        Ok(Some((node_key_from_bytes(&k)?, leaf)))
    }
}

/// Inverse of [`node_key_bytes`] (through the borsh form of jmt's `NodeKey`, whose
/// constructor from packed nibbles is private to jmt).
fn node_key_from_bytes(b: &[u8]) -> Result<NodeKey, StateError> {
    let bad = || StateError::Corrupt("jmt node key".into());
    let version: [u8; 8] = b.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    let count = *b.get(8).ok_or_else(bad)? as u64;
    let packed = b.get(9..).ok_or_else(bad)?;
    if packed.len() as u64 != count.div_ceil(2) {
        return Err(bad());
    }
    let mut borsh_form = Vec::with_capacity(20 + packed.len());
    borsh_form.extend_from_slice(&u64::from_be_bytes(version).to_le_bytes());
    borsh_form.extend_from_slice(&count.to_le_bytes());
    borsh_form.extend_from_slice(&(packed.len() as u32).to_le_bytes());
    borsh_form.extend_from_slice(packed);
    borsh::from_slice(&borsh_form).map_err(|_| bad())
}

/// Rebuilding a store at one version from verified chunks ([`Store::restore`]).
pub struct Restore {
    db: Arc<RestoreDb>,
    version: Version,
    root: Root,
    inner: Option<JellyfishMerkleRestore<Sha256>>,
    after: Option<[u8; 32]>,
    leaves: u64,
    refused: u64,
    done: bool,
}

impl std::fmt::Debug for Restore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restore")
            .field("version", &self.version)
            .field("leaves", &self.leaves)
            .field("refused", &self.refused)
            .field("done", &self.done)
            .finish()
    }
}

impl Store {
    /// Start rebuilding this store, which must be empty, as version `version` with root
    /// `root` (which the caller has verified, e.g. against a committed header).
    pub fn restore(&self, version: Version, root: Root) -> Result<Restore, StateError> {
        if self.latest_version().is_some() {
            return Err(StateError::BadChunk(
                "a store is restored only when it is empty".into(),
            ));
        }
        let db = Arc::new(RestoreDb {
            store: self.clone(),
        });
        let inner = if root == EMPTY_ROOT {
            None
        } else {
            Some(
                JellyfishMerkleRestore::new_overwrite(
                    Arc::clone(&db),
                    version,
                    jmt::RootHash(root),
                )
                .map_err(StateError::from_tree)?,
            )
        };
        Ok(Restore {
            db,
            version,
            root,
            inner,
            after: None,
            leaves: 0,
            refused: 0,
            done: root == EMPTY_ROOT,
        })
    }
}

impl Restore {
    /// The next chunk must hold the leaves after this key hash (`None`: from the first).
    pub fn after(&self) -> Option<[u8; 32]> {
        self.after
    }

    /// Whether the last leaf has been received (then call [`Restore::finish`]).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Leaves accepted so far.
    pub fn leaves(&self) -> u64 {
        self.leaves
    }

    /// Chunks refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Verify `chunk` and write it. Refused ([`StateError::BadChunk`]) unless it is of this
    /// version, starts right after [`Restore::after`], and with the leaves before it reproduces
    /// the root; nothing of a refused chunk is kept, and [`Restore::after`] then says where to
    /// fetch from again (possibly a little earlier than before).
    pub fn add(&mut self, chunk: &Chunk) -> Result<(), StateError> {
        match self.try_add(chunk) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.refused += 1;
                self.recover()?;
                Err(e)
            }
        }
    }

    fn try_add(&mut self, chunk: &Chunk) -> Result<(), StateError> {
        let bad = |m: String| Err(StateError::BadChunk(m));
        if self.done {
            return bad("the restore already has the last leaf".into());
        }
        if chunk.version != self.version {
            return bad(format!(
                "chunk of version {}, restoring {}",
                chunk.version, self.version
            ));
        }
        if chunk.entries.is_empty() {
            return bad("an empty chunk of a non-empty tree".into());
        }
        let rightmost = chunk.proves_rightmost();
        if chunk.last && !rightmost {
            return bad("claims to hold the last leaf, but its proof shows leaves after it".into());
        }
        let mut leaves = Vec::with_capacity(chunk.entries.len());
        let mut prev = self.after;
        for (k, v) in &chunk.entries {
            let kh = key_hash(k);
            if prev.is_some_and(|p| kh.0 <= p) {
                return bad("leaves out of order, or not after the last one received".into());
            }
            prev = Some(kh.0);
            leaves.push((kh, v.clone()));
        }
        let Some(inner) = self.inner.as_mut() else {
            return bad("no restorer".into());
        };
        let proof = chunk.proof.clone();
        match catch_unwind(AssertUnwindSafe(|| inner.add_chunk(leaves, proof))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return bad(format!("does not verify against the root: {e:#}")),
            Err(_) => return bad("rejected by the restorer's internal checks".into()),
        }
        self.write_preimages(&chunk.entries)?;
        self.leaves += chunk.entries.len() as u64;
        self.after = prev;
        // Done when the proof, not the server, says nothing follows.
        if rightmost {
            self.done = true;
        }
        Ok(())
    }

    /// Rebuild the restorer from what was written (jmt's crash recovery: partial nodes are
    /// re-derived from the rightmost written leaf), and continue after that leaf.
    fn recover(&mut self) -> Result<(), StateError> {
        if self.root == EMPTY_ROOT {
            return Ok(());
        }
        self.done = false;
        let r = JellyfishMerkleRestore::new(
            Arc::clone(&self.db),
            self.version,
            jmt::RootHash(self.root),
        )
        .map_err(StateError::from_tree)?;
        self.after = self
            .db
            .get_rightmost_leaf()
            .map_err(StateError::from_tree)?
            .map(|(_, l)| l.key_hash().0);
        self.inner = Some(r);
        Ok(())
    }

    fn write_preimages(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StateError> {
        let mut txn = self.db.store.db().begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            let mut pre = txn.open_table(PREIMAGES)?;
            let mut rev = txn.open_table(KEY_HASHES)?;
            for (k, _) in entries {
                let kh = key_hash(k);
                pre.insert(&k[..], &kh.0[..])?;
                rev.insert(&kh.0[..], &k[..])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// After the last chunk: complete the tree, check its root, and make the store hold this
    /// version (durably) as its latest and oldest.
    pub fn finish(mut self) -> Result<Root, StateError> {
        if !self.done {
            return Err(StateError::BadChunk(format!(
                "the restore is not complete ({} leaves so far)",
                self.leaves
            )));
        }
        if let Some(inner) = self.inner.take() {
            inner.finish().map_err(StateError::from_tree)?;
        }
        let store = &self.db.store;
        let got = if self.root == EMPTY_ROOT {
            EMPTY_ROOT
        } else {
            let txn = store.db().begin_read()?;
            let nodes = txn.open_table(NODES)?;
            let values = txn.open_table(VALUES)?;
            Sha256Jmt::new(&TableReader {
                nodes: &nodes,
                values: &values,
            })
            .get_root_hash(self.version)
            .map_err(StateError::from_tree)?
            .0
        };
        if got != self.root {
            return Err(StateError::BadChunk(
                "the restored tree does not have the expected root".into(),
            ));
        }
        let mut txn = store.db().begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut meta = txn.open_table(META)?;
            txn.open_table(ROOTS)?
                .insert(self.version, &self.root[..])?;
            meta.insert(META_LATEST, &self.version.to_be_bytes()[..])?;
            meta.insert(META_OLDEST, &self.version.to_be_bytes()[..])?;
        }
        txn.commit()?;
        store.set_restored(self.version);
        Ok(self.root)
    }
}
