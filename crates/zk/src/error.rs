use thiserror::Error;

/// Why a proof was rejected or could not be made.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ZkError {
    #[error("model is invalid: {0}")]
    Model(String),
    #[error("proof length: expected {expected} bytes, got {got}")]
    ProofLength { expected: usize, got: usize },
    #[error("non-canonical field element at byte {offset}")]
    NonCanonical { offset: usize },
    #[error("{what}: expected length {expected}, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{what}: value {value} at index {index} out of range")]
    Range {
        what: &'static str,
        index: usize,
        value: i64,
    },
    #[error("layer {layer}: sum-check round {round}: p(0) + p(1) != claim")]
    SumcheckRound { layer: usize, round: usize },
    #[error("layer {layer}: final sum-check evaluation mismatch")]
    SumcheckFinal { layer: usize },
    #[error("layer {layer}: requantization of element {index} is wrong")]
    Requant { layer: usize, index: usize },
    #[error("too many sum-check rounds: {0}")]
    TooManyRounds(usize),
    #[error("commitment opening, query {query}: {what}")]
    Pcs { query: usize, what: &'static str },
    #[error("not implemented: {0}")]
    Unimplemented(&'static str),
}
