//! What the worker needs from the chain it serves: the committed state, whether a transaction
//! it submitted was committed, and a way to submit one. A node implements it over its store and
//! mempool; the worker never reaches into either.

use opal_state::Overlay;
use opal_types::{Action, Hash, SecretKey};

/// A failure of the chain beneath the worker (its store or its mempool), not of a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("reading the committed state: {0}")]
    State(String),
    #[error("the transaction was not admitted: {0}")]
    Submit(String),
}

impl From<opal_ledger::LedgerError> for ChainError {
    fn from(e: opal_ledger::LedgerError) -> ChainError {
        ChainError::State(e.to_string())
    }
}

/// The latest committed state, as of one height.
pub struct Committed {
    pub state: Overlay,
    pub height: u64,
}

pub trait Chain: Send + Sync {
    fn chain_id(&self) -> &str;
    /// The most bytes one transaction may have.
    fn max_tx_bytes(&self) -> u64;
    /// The latest committed state (asked on every request: no block is read for it).
    fn committed(&self) -> Result<Committed, ChainError>;
    /// The block time of committed height `height` (0 at genesis).
    fn block_time_ms(&self, height: u64) -> Result<u64, ChainError>;
    /// Whether transaction `tx` is in a committed block.
    fn is_committed(&self, tx: &Hash) -> Result<bool, ChainError>;
    /// Sign `action` with `key` at its next nonce and hand it to the mempool.
    fn submit(&self, key: &SecretKey, action: Action) -> Result<Hash, ChainError>;
}
