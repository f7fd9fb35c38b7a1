//! Why a request was not served: one typed error with a stable code and an HTTP status.

use crate::chain::ChainError;
use opal_ledger::components::inference::SettleError;
use opal_types::{Address, Amount, Hash};

/// Why a request was not served. Each has a stable code and an HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("the caller's signature over the request is invalid")]
    BadSignature,
    /// The request is made under a spend grant that does not authorize it (its signature,
    /// node, chain, expiry or allowance).
    #[error("{0}")]
    BadGrant(String),
    #[error("request is for chain {got:?}, this node is on {expected:?}")]
    WrongChain { expected: String, got: String },
    #[error("request is addressed to node {asked}, this node is {me}")]
    WrongNode { asked: Address, me: Address },
    #[error("request expired at {expires_ms} (now {now_ms})")]
    Expired { expires_ms: u64, now_ms: u64 },
    #[error("request expires too far ahead: at most {max_ms} ms from now")]
    ExpiryTooFar { max_ms: u64 },
    #[error("request {0} was already served")]
    Replayed(Hash),
    #[error("no model {0} is registered")]
    UnknownModel(String),
    #[error(
        "the request names content hash {requested}, model {model} is registered as {registered}"
    )]
    ModelHashMismatch {
        model: String,
        requested: Hash,
        registered: Hash,
    },
    #[error("this node does not offer {model} under tier {tier}")]
    NotOffered { model: String, tier: String },
    #[error("tier {0} is not served by this node")]
    TierUnsupported(String),
    #[error("licence: {0}")]
    Licence(String),
    #[error("price {price} exceeds the request's maximum {max}")]
    PriceAboveMax { price: Amount, max: Amount },
    #[error("escrow with this node holds {available} after unsettled requests, the price is {price}; fund it with `opal tx escrow fund`")]
    InsufficientEscrow { available: Amount, price: Amount },
    #[error("the caller's escrow with this node is closing")]
    EscrowClosing,
    #[error("the inputs hash to {actual}, the request says {expected}")]
    InputHashMismatch { expected: Hash, actual: Hash },
    #[error("model file {0} is not available on this node")]
    ModelUnavailable(String),
    /// The file is here, but its backend cannot load it.
    #[error("the model file cannot be loaded: {0}")]
    ModelLoad(String),
    #[error("inference failed: {0}")]
    Model(#[from] opal_infer::InferError),
    #[error("zk tier: {0}")]
    ZkSetup(String),
    #[error("too many unsettled receipts; try again shortly")]
    Busy,
    /// The ledger would not pay this request's receipt (the node is jailed or not bonded, the
    /// price does not cover what the owner and the treasury are owed, the spend grant is used
    /// up, ...): it is refused before any work is done.
    #[error("the ledger would not pay for this request: {0}")]
    Unpayable(SettleError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServeError {
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::Malformed(_) => "malformed_request",
            ServeError::BadSignature => "bad_signature",
            ServeError::BadGrant(_) => "bad_grant",
            ServeError::WrongChain { .. } => "wrong_chain",
            ServeError::WrongNode { .. } => "wrong_node",
            ServeError::Expired { .. } => "expired",
            ServeError::ExpiryTooFar { .. } => "expiry_too_far",
            ServeError::Replayed(_) => "replayed",
            ServeError::UnknownModel(_) => "unknown_model",
            ServeError::ModelHashMismatch { .. } => "model_hash_mismatch",
            ServeError::NotOffered { .. } => "not_offered",
            ServeError::TierUnsupported(_) => "tier_unsupported",
            ServeError::Licence(_) => "licence_forbids",
            ServeError::PriceAboveMax { .. } => "price_above_max",
            ServeError::InsufficientEscrow { .. } => "insufficient_escrow",
            ServeError::EscrowClosing => "escrow_closing",
            ServeError::InputHashMismatch { .. } => "input_hash_mismatch",
            ServeError::ModelUnavailable(_) | ServeError::ModelLoad(_) => "model_unavailable",
            ServeError::Model(e) => e.code(),
            ServeError::ZkSetup(_) => "zk_unavailable",
            ServeError::Busy => "busy",
            ServeError::Unpayable(e) => e.code(),
            ServeError::Chain(_) | ServeError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ServeError::Licence(_) | ServeError::BadGrant(_) => 403,
            ServeError::PriceAboveMax { .. }
            | ServeError::InsufficientEscrow { .. }
            | ServeError::EscrowClosing => 402,
            ServeError::Replayed(_) => 409,
            ServeError::UnknownModel(_) => 404,
            ServeError::ModelUnavailable(_)
            | ServeError::ModelLoad(_)
            | ServeError::Busy
            | ServeError::ZkSetup(_) => 503,
            ServeError::Unpayable(
                SettleError::GrantExhausted { .. } | SettleError::EscrowShort { .. },
            ) => 402,
            // The node's own standing or configuration: not the caller's fault.
            ServeError::Unpayable(_) => 503,
            ServeError::Chain(_) | ServeError::Internal(_) => 500,
            ServeError::Model(e) if e.code() == "execution" => 500,
            _ => 400,
        }
    }
}

impl From<opal_ledger::LedgerError> for ServeError {
    fn from(e: opal_ledger::LedgerError) -> ServeError {
        ServeError::Chain(e.into())
    }
}

impl ServeError {
    /// The reason the settlement rule gave, in the words of a request refused before serving.
    pub fn from_settle(e: SettleError, request_id: Hash) -> ServeError {
        match e {
            SettleError::WrongChain { expected, got } => ServeError::WrongChain { expected, got },
            SettleError::AlreadySettled => ServeError::Replayed(request_id),
            SettleError::UnknownModel(m) => ServeError::UnknownModel(m),
            SettleError::ModelHashMismatch {
                model,
                requested,
                registered,
            } => ServeError::ModelHashMismatch {
                model,
                requested,
                registered,
            },
            SettleError::NotOffered { model, tier }
            | SettleError::TierNotAllowed { model, tier } => ServeError::NotOffered { model, tier },
            SettleError::TierNotSettleable(t) => ServeError::TierUnsupported(t),
            SettleError::Licence(why) => ServeError::Licence(why),
            SettleError::EscrowShort { have, price } => ServeError::InsufficientEscrow {
                available: have,
                price,
            },
            other => ServeError::Unpayable(other),
        }
    }
}
