//! Table layout of the single redb file and the byte encodings used in it.
//!
//! | table        | key                                   | value                              |
//! |--------------|---------------------------------------|------------------------------------|
//! | `meta`       | name (`schema`, `latest`)             | u32 BE / u64 BE                    |
//! | `roots`      | version (u64)                         | root hash (32 bytes)               |
//! | `jmt_nodes`  | version BE (8) ‖ nibble count ‖ nibbles | borsh(Node)                      |
//! | `jmt_values` | key_hash (32) ‖ version BE (8)        | 0x00 = deleted, 0x01 ‖ value bytes |
//! | `preimages`  | key preimage                          | key_hash (32)                      |
//! | `stale_nodes`| stale_since BE (8) ‖ node-table key   | ()                                 |
//! | `stale_values`| stale_since BE (8) ‖ key_hash (32) ‖ version BE (8) | ()                 |
//! | `key_hashes` | key_hash (32)                         | key preimage (state-sync chunks)   |
//! | `aux`        | bytes                                 | bytes (outside the Merkle root)    |
//!
//! `meta` also holds `oldest`, the oldest readable version (absent: 0, nothing pruned).
//! A `stale_*` entry names a tree node or a value entry that no version from `stale_since` on
//! reads: the node was replaced, the value was overwritten (or, for a deletion marker, the
//! marker itself, since once no older entry is readable a missing key reads as absent). Pruning
//! to oldest version `O` deletes every entry with `stale_since <= O` and what it names.

use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue};
use redb::{ReadableTable, TableDefinition};
use sha2::Digest;

use crate::{StateError, Version};

pub(crate) type Bytes = &'static [u8];

pub(crate) const META: TableDefinition<&str, Bytes> = TableDefinition::new("meta");
pub(crate) const ROOTS: TableDefinition<u64, Bytes> = TableDefinition::new("roots");
pub(crate) const NODES: TableDefinition<Bytes, Bytes> = TableDefinition::new("jmt_nodes");
pub(crate) const VALUES: TableDefinition<Bytes, Bytes> = TableDefinition::new("jmt_values");
pub(crate) const PREIMAGES: TableDefinition<Bytes, Bytes> = TableDefinition::new("preimages");
pub(crate) const STALE: TableDefinition<Bytes, ()> = TableDefinition::new("stale_nodes");
/// key hash -> key preimage: the reverse of `preimages`, for serving state-sync chunks.
pub(crate) const KEY_HASHES: TableDefinition<Bytes, Bytes> = TableDefinition::new("key_hashes");
pub(crate) const STALE_VALUES: TableDefinition<Bytes, ()> = TableDefinition::new("stale_values");
pub(crate) const AUX: TableDefinition<Bytes, Bytes> = TableDefinition::new("aux");

pub(crate) const META_SCHEMA: &str = "schema";
pub(crate) const META_LATEST: &str = "latest";
pub(crate) const META_OLDEST: &str = "oldest";

/// Bump when the on-disk layout changes; `Store::open` refuses any other value.
pub const SCHEMA_VERSION: u32 = 1;

/// JMT key hash: SHA-256 of the key preimage (identical to `KeyHash::with::<Sha256>`, without
/// the per-key tracing event).
pub(crate) fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash(sha2::Sha256::digest(key).into())
}

/// `jmt_nodes` key: version BE (8) ‖ nibble count (1) ‖ nibbles packed two per byte (high
/// nibble first, odd tail padded with 0). Sorts by version, so a pruner can walk it in order.
pub(crate) fn node_key_bytes(key: &NodeKey) -> Result<Vec<u8>, StateError> {
    let path = key.nibble_path();
    let n = path.num_nibbles();
    let count = u8::try_from(n)
        .map_err(|_| StateError::Tree(format!("nibble path of {n} nibbles is too long")))?;
    let mut out = Vec::with_capacity(9 + n.div_ceil(2));
    out.extend_from_slice(&key.version().to_be_bytes());
    out.push(count);
    let mut nibbles = path.nibbles();
    while let Some(hi) = nibbles.next() {
        let lo = nibbles.next().map(u8::from).unwrap_or(0);
        out.push((u8::from(hi) << 4) | lo);
    }
    Ok(out)
}

pub(crate) fn value_key(kh: &KeyHash, version: Version) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..32].copy_from_slice(&kh.0);
    out[32..].copy_from_slice(&version.to_be_bytes());
    out
}

pub(crate) fn encode_value(v: &Option<OwnedValue>) -> Vec<u8> {
    match v {
        None => vec![0],
        Some(b) => {
            let mut out = Vec::with_capacity(1 + b.len());
            out.push(1);
            out.extend_from_slice(b);
            out
        }
    }
}

pub(crate) fn decode_value(b: &[u8]) -> Result<Option<OwnedValue>, StateError> {
    match b.split_first() {
        Some((0, [])) => Ok(None),
        Some((1, rest)) => Ok(Some(rest.to_vec())),
        _ => Err(StateError::Corrupt("jmt_values entry has a bad tag".into())),
    }
}

pub(crate) fn decode_u64(b: &[u8], what: &str) -> Result<u64, StateError> {
    let arr: [u8; 8] = b
        .try_into()
        .map_err(|_| StateError::Corrupt(format!("{what}: expected 8 bytes, got {}", b.len())))?;
    Ok(u64::from_be_bytes(arr))
}

pub(crate) fn decode_u32(b: &[u8], what: &str) -> Result<u32, StateError> {
    let arr: [u8; 4] = b
        .try_into()
        .map_err(|_| StateError::Corrupt(format!("{what}: expected 4 bytes, got {}", b.len())))?;
    Ok(u32::from_be_bytes(arr))
}

pub(crate) fn decode_root(b: &[u8]) -> Result<[u8; 32], StateError> {
    b.try_into()
        .map_err(|_| StateError::Corrupt(format!("root: expected 32 bytes, got {}", b.len())))
}

/// Latest committed version recorded in `meta`.
pub(crate) fn read_latest(
    meta: &impl ReadableTable<&'static str, Bytes>,
) -> Result<Option<Version>, StateError> {
    match meta.get(META_LATEST)? {
        None => Ok(None),
        Some(g) => Ok(Some(decode_u64(g.value(), "meta.latest")?)),
    }
}

/// Oldest readable version recorded in `meta` (0 when nothing was pruned).
pub(crate) fn read_oldest(
    meta: &impl ReadableTable<&'static str, Bytes>,
) -> Result<Version, StateError> {
    match meta.get(META_OLDEST)? {
        None => Ok(0),
        Some(g) => decode_u64(g.value(), "meta.oldest"),
    }
}

/// `stale_values` key: stale_since BE ‖ key hash ‖ the stale entry's version BE.
pub(crate) fn stale_value_key(since: Version, kh: &KeyHash, version: Version) -> [u8; 48] {
    let mut out = [0u8; 48];
    out[..8].copy_from_slice(&since.to_be_bytes());
    out[8..40].copy_from_slice(&kh.0);
    out[40..].copy_from_slice(&version.to_be_bytes());
    out
}

pub(crate) fn read_root(
    roots: &impl ReadableTable<u64, Bytes>,
    version: Version,
) -> Result<Option<[u8; 32]>, StateError> {
    match roots.get(version)? {
        None => Ok(None),
        Some(g) => Ok(Some(decode_root(g.value())?)),
    }
}

/// Newest value of `kh` whose version is `<= max_version` (`None` if absent or deleted).
pub(crate) fn value_as_of(
    values: &impl ReadableTable<Bytes, Bytes>,
    kh: &KeyHash,
    max_version: Version,
) -> Result<Option<OwnedValue>, StateError> {
    let lo = value_key(kh, 0);
    let hi = value_key(kh, max_version);
    let mut range = values.range::<&[u8]>(&lo[..]..=&hi[..])?;
    match range.next_back() {
        None => Ok(None),
        Some(entry) => {
            let (_k, v) = entry?;
            decode_value(v.value())
        }
    }
}

/// `jmt::TreeReader` over any pair of readable redb tables: the read-only tables of a snapshot
/// (proofs) or the tables of the write transaction (computing the next version).
pub(crate) struct TableReader<'a, N, V> {
    pub nodes: &'a N,
    pub values: &'a V,
}

impl<N, V> TreeReader for TableReader<'_, N, V>
where
    N: ReadableTable<Bytes, Bytes>,
    V: ReadableTable<Bytes, Bytes>,
{
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let k = node_key_bytes(node_key)?;
        let Some(g) = self.nodes.get(&k[..]).map_err(StateError::from)? else {
            return Ok(None);
        };
        let node: Node = borsh::from_slice(g.value())
            .map_err(|e| StateError::Corrupt(format!("jmt node {node_key:?}: {e}")))?;
        Ok(Some(node))
    }

    fn get_value_option(
        &self,
        max_version: jmt::Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(value_as_of(self.values, &key_hash, max_version)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only used by jmt's state-sync restore, which Opal does not use.
        Err(StateError::Tree("get_rightmost_leaf is not supported by this store".into()).into())
    }
}
