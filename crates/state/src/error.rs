//! Typed errors of the state store.

use crate::Version;

/// Everything that can go wrong in `opal-state`. Nothing in this crate panics on bad input or on
/// bad bytes read back from disk; it returns one of these instead.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The underlying redb database failed (I/O, locking, transaction errors).
    #[error("database error: {0}")]
    Db(String),
    /// Bytes read back from the database do not decode as what this crate wrote.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// `commit` was called with a version other than the next one.
    #[error("version mismatch: expected {expected}, got {got}")]
    VersionMismatch { expected: Version, got: Version },
    /// The requested version has not been committed (or is in the future).
    #[error("unknown version {0}")]
    UnknownVersion(Version),
    /// The version was committed but its state has been pruned: this store keeps versions
    /// from `oldest` on.
    #[error("version {version} was pruned (the oldest version kept is {oldest})")]
    Pruned { version: Version, oldest: Version },
    /// A state-sync chunk was refused (it does not verify, is out of order or malformed), or
    /// a restore was used wrongly.
    #[error("state-sync chunk refused: {0}")]
    BadChunk(String),
    /// The database file was written with a schema this build does not understand.
    #[error("unsupported state schema version {found} (this build understands {supported})")]
    UnsupportedSchema { found: u32, supported: u32 },
    /// The version counter would overflow `u64`.
    #[error("version overflow")]
    VersionOverflow,
    /// The Jellyfish Merkle Tree reported an error while reading or updating.
    #[error("merkle tree error: {0}")]
    Tree(String),
    /// Proof bytes are too large or do not decode.
    #[error("malformed proof: {0}")]
    MalformedProof(String),
    /// The proof is well-formed but does not show the claimed (key, value) under the root.
    #[error("proof verification failed: {0}")]
    ProofInvalid(String),
}

impl StateError {
    /// Turn an `anyhow` error coming back from `jmt` into a typed error, recovering our own
    /// `StateError` if the tree merely passed one of ours through.
    pub(crate) fn from_tree(e: anyhow::Error) -> StateError {
        match e.downcast::<StateError>() {
            Ok(own) => own,
            Err(other) => StateError::Tree(format!("{other:#}")),
        }
    }
}

macro_rules! db_err {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for StateError {
            fn from(e: $t) -> Self {
                StateError::Db(e.to_string())
            }
        }
    )*};
}

db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);
