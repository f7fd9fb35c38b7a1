//! `opal-state`: Opal's authenticated, versioned, persistent key-value store.
//!
//! Design:
//! - Authenticated structure: a Jellyfish Merkle Tree (`jmt` 0.12, SHA-256; key hash =
//!   SHA-256(key)). Version = block height; the root of version `h` is the app hash of block `h`.
//!   Roots are a pure function of the key/value set, so the same writes give the same roots on
//!   every machine.
//! - Persistence: ONE `redb` file (layout in [`schema`]). Nodes, versioned values, key
//!   preimages, the per-version root, `meta.latest` and the non-verifiable `aux` entries of a
//!   version are written in one write transaction with `Durability::Immediate`, so after a crash
//!   the store is at exactly the old or the new version.
//! - Reads: a [`Snapshot`] owns a redb read transaction (MVCC): it never blocks the committer and
//!   keeps reading its version after later commits. `get` is one reverse range seek on
//!   `jmt_values` (newest entry with version <= the snapshot's); proofs walk the JMT. Prefix
//!   scans iterate the preimage index and resolve each key as of the version, so they are correct
//!   at old versions too.
//! - Execution: an [`Overlay`] is a copy-on-write write set over a snapshot, nested by `fork` per
//!   transaction; the block overlay's `into_writes()` goes to [`Store::commit`].
//! - Pruning ([`Retention`]): replaced nodes and overwritten values are indexed by the version
//!   from which they are stale (`stale_nodes`, `stale_values`); with `Retention::Last(n)` each
//!   commit deletes, in its own transaction, what only versions older than the last `n` read,
//!   so the tree and the values stay bounded by the live state plus `n` versions of changes.
//!   Older versions then answer [`StateError::Pruned`]. Kept for every version: the roots
//!   (32 bytes each) and the key preimages (one per distinct key ever written; a deleted key
//!   resolves to no value). `aux` is the node's to prune. redb reuses freed pages; the file
//!   does not shrink.

// No panics on the deterministic path: a fallible step returns an error (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::disallowed_types)]

mod error;
mod overlay;
mod proof;
pub mod schema;
mod snapshot;
mod store;
mod sync;

pub use error::StateError;
pub use overlay::Overlay;
pub use proof::{StateProof, MAX_PROOF_BYTES};
pub use snapshot::Snapshot;
pub use store::{Retention, Store, StoreStats, WriteSet, PRUNE_ENTRIES_PER_COMMIT};
pub use sync::{Chunk, Restore, MAX_CHUNK_BYTES, MAX_CHUNK_ENTRIES};

/// The JMT root hash bytes.
pub type Root = [u8; 32];
/// Version = block height.
pub type Version = u64;
/// (key, value) pairs in ascending key order, as returned by prefix scans.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Root of the empty tree: JMT's placeholder hash.
pub(crate) const EMPTY_ROOT: Root = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Store>();
    is::<Snapshot>();
    is::<Overlay>();
    is::<StateProof>();
    is::<StateError>();
}
