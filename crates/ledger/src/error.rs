//! Typed errors. `TxError` is what a rejected transaction reports (to the API and in block
//! results); `LedgerError` is a fault of the node or its state, never of a user's input.

use opal_types::{Address, Amount};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum TxError {
    #[error("transaction is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed transaction: {reason}")]
    Malformed { reason: String },
    #[error("wrong chain id: expected {expected:?}, got {got:?}")]
    WrongChain { expected: String, got: String },
    #[error("invalid signature")]
    BadSignature,
    #[error("fee {got} is below the minimum {min}")]
    FeeTooLow { min: Amount, got: Amount },
    #[error("wrong nonce for {address}: expected {expected}, got {got}")]
    BadNonce {
        address: Address,
        expected: u64,
        got: u64,
    },
    #[error("insufficient funds in {address}: need {need}, have {have}")]
    InsufficientFunds {
        address: Address,
        need: Amount,
        have: Amount,
    },
    #[error("transfer amount must be greater than zero")]
    ZeroAmount,
    #[error("arithmetic overflow")]
    Overflow,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("state: {0}")]
    State(#[from] opal_state::StateError),
    #[error("corrupt state at key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid genesis: {0}")]
    Genesis(String),
    #[error("invariant violated: {0}")]
    Invariant(String),
}
