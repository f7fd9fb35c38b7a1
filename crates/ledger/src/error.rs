//! Typed errors. `TxError` is what a rejected transaction reports (to the API and in block
//! results); `LedgerError` is a fault of the node or its state, never of a user's input.

use opal_types::{Address, Amount, Hash};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    #[error("stake {got} is below the minimum {min}")]
    BelowMinimumStake { min: Amount, got: Amount },
    #[error("no validator is operated by {validator}")]
    UnknownValidator { validator: Address },
    #[error("{operator} already operates a validator")]
    ValidatorExists { operator: Address },
    #[error("that consensus key is already used by a validator")]
    ConsensusKeyInUse,
    #[error("not enough stake: have {have}, want {want}")]
    InsufficientStake { have: Amount, want: Amount },
    #[error("validator {validator} has been slashed to zero and takes no delegations")]
    ValidatorWipedOut { validator: Address },
    #[error("the validator is not jailed")]
    NotJailed,
    #[error("the validator is jailed until {until_ms} (block time, ms)")]
    StillJailed { until_ms: u64 },
    #[error("invalid evidence: {reason}")]
    InvalidEvidence { reason: String },
    #[error("evidence from height {height} is older than the maximum age of {max_age} blocks (or from the future)")]
    EvidenceTooOld { height: u64, max_age: u64 },
    #[error("this evidence was already processed")]
    DuplicateEvidence,
    #[error("invalid name: {reason}")]
    InvalidName { reason: String },
    #[error("invalid registration: {reason}")]
    InvalidSpec { reason: String },
    #[error("dataset {name} is already registered")]
    DatasetExists { name: String },
    #[error("no dataset named {name}")]
    UnknownDataset { name: String },
    #[error("no model {model}")]
    UnknownModel { model: String },
    #[error("model name {name} belongs to {owner}")]
    NotOwner { name: String, owner: Address },
    #[error("next version of {name} must be {expected}, got {got}")]
    BadVersion {
        name: String,
        expected: u32,
        got: u32,
    },
    #[error("licence conflict: {reason}")]
    LicenceConflict { reason: String },
    #[error("dataset {dataset} requires at least {min_bps} basis points, the model gives {got}")]
    ShareTooLow {
        dataset: String,
        min_bps: u32,
        got: u32,
    },
    #[error("{who} has not bonded the inference-node role (minimum {min})")]
    NotInferenceNode { who: Address, min: Amount },
    #[error("tier {tier} is not allowed for model {model}")]
    TierNotAllowed { model: String, tier: String },
    #[error("the escrow with node {node} is closing; withdraw it first")]
    EscrowClosing { node: Address },
    #[error("no escrow with node {node}")]
    NoEscrow { node: Address },
    #[error("the escrow with node {node} is not closed")]
    EscrowNotClosed { node: Address },
    #[error("the escrow unlocks at {unlock_ms} (block time, ms)")]
    EscrowLocked { unlock_ms: u64 },
    #[error("a settlement carries {got} receipts, the limit is {limit}")]
    TooManyReceipts { got: usize, limit: usize },
    #[error("receipt {index} was served by {node}, not by the signer")]
    NotYourReceipt { index: usize, node: Address },
    #[error("the settlement carries no receipts")]
    EmptySettlement,
    #[error("no open verification case for request {request_id}")]
    NoCase { request_id: Hash },
    #[error("the case of request {request_id} is closed ({outcome}); its window has passed")]
    CaseClosed { request_id: Hash, outcome: String },
    #[error("the case is about node {node}'s receipt; only it can reveal")]
    NotYourCase { node: Address },
    #[error("the data of this receipt was already revealed")]
    AlreadyRevealed,
    #[error("the window closed at {ended_ms} (block time, ms)")]
    WindowClosed { ended_ms: u64 },
    #[error("revealed tensors are {bytes} bytes (or too many), the limit is {limit}")]
    RevealTooLarge { bytes: usize, limit: usize },
    #[error("the revealed {what} do not hash to what the receipt signed")]
    RevealMismatch { what: String },
    #[error("the receipt bills {billed} units (tokens) but the revealed prompt and output hold {revealed}")]
    RevealUnitsMismatch { billed: u64, revealed: String },
    #[error("model {model} cannot be re-executed on chain (only opal_quant models can; activations-tier LLM cases are decided by CommitteeVote)")]
    NotReexecutable { model: String },
    #[error("the model file hashes to {got}, the registered model is {expected}")]
    WrongModelFile { expected: Hash, got: Hash },
    #[error("the node has not revealed this receipt's data yet")]
    NotRevealed,
    #[error("re-execution would cost {needed} operations, the limit is {limit}")]
    ReplayTooCostly { needed: u64, limit: u64 },
    /// Re-executing the registered file costs more than its registration's `replay_cost`.
    #[error("the model file costs {needed} operations to re-execute; its registration declared {declared}")]
    ReplayCostMisdeclared { declared: u64, needed: u64 },
    #[error("cannot challenge: {reason}")]
    NotChallengeable { reason: String },
    #[error("wrong claimed output: {reason}")]
    WrongClaim { reason: String },
    #[error("the case has no dispute to resolve (challenge it first)")]
    NothingToResolve,
    #[error("invalid zk verifying key: {reason}")]
    ZkKeyInvalid { reason: String },
    #[error("the zk verifying key {id} is already published")]
    ZkKeyExists { id: Hash },
    #[error("this model's proofs are {proof_bytes} bytes; with a receipt and its tensors they do not fit in an evidence transaction ({limit} bytes)")]
    ProofTooLargeForChain { proof_bytes: usize, limit: usize },
    #[error("SettleProved settles zk-tier receipts only; this receipt is tier {tier} (use SettleReceipts)")]
    NotZkReceipt { tier: String },
    #[error("model {model} has no zk weight commitment")]
    NotZkModel { model: String },
    #[error("the verifying key {id} of model {model} is not published on chain; `opal model register` publishes it, and so does the serving node at its first zk request")]
    ZkKeyMissing { model: String, id: Hash },
    #[error("the zk verifying key named by {model} was made from the model file {key_file}, but {model} is registered with content hash {content_hash}")]
    ZkKeyFileMismatch {
        model: String,
        key_file: Hash,
        content_hash: Hash,
    },
    /// The published key is not the key of the model file sent with it.
    #[error("the zk verifying key is not the key of the model file sent with it: {reason}")]
    ZkKeyNotOfFile { reason: String },
    #[error("the zk proof does not verify: {reason}")]
    ProofInvalid { reason: String },
    #[error("the receipt was not paid ({reason_code}): {reason}")]
    SettlementRejected { reason_code: String, reason: String },
    #[error("this case is not decided by a committee vote: {reason}")]
    NotCommitteeCase { reason: String },
    #[error("{voter} is not on this case's committee (the active validators when it opened)")]
    NotOnCommittee { voter: Address },
    #[error("{voter} has already voted on this case")]
    AlreadyVoted { voter: Address },
    #[error("invalid proposal: {reason}")]
    InvalidProposal { reason: String },
    #[error("unknown parameter {key:?} (GET /api/params lists them)")]
    UnknownParam { key: String },
    #[error("parameter {key} = {value} is outside its bounds [{min}, {max}]")]
    ParamOutOfBounds {
        key: String,
        value: u128,
        min: u128,
        max: u128,
    },
    #[error("the parameters would be inconsistent: {reason}")]
    ParamsInconsistent { reason: String },
    #[error("the spend of {amount} is more than the treasury holds ({treasury})")]
    TreasuryShort { amount: Amount, treasury: Amount },
    #[error("no proposal {id}")]
    UnknownProposal { id: u64 },
    #[error("proposal {id} is {status}, not in its {wanted} period")]
    WrongProposalStatus {
        id: u64,
        status: String,
        wanted: String,
    },
    #[error("proposal {id}'s voting period ended at {ended_ms} (block time, ms)")]
    VotingClosed { id: u64, ended_ms: u64 },
    #[error("{voter} has no bonded stake (delegate to a validator to vote)")]
    NotStaker { voter: Address },
    #[error("the initial deposit {got} is below the minimum {min}")]
    DepositTooLow { min: Amount, got: Amount },
    #[error("{active} proposals are already open, the limit is {limit}")]
    TooManyProposals { active: u32, limit: u32 },
    #[error("{who} has no rewards to withdraw")]
    NoRewards { who: Address },
    #[error("a commission of {bps} bps is above the maximum {max}")]
    CommissionTooHigh { bps: u32, max: u32 },
    #[error(
        "raising the commission from {from} to {to} bps is more than the {max} bps allowed at once"
    )]
    CommissionRaiseTooLarge { from: u32, to: u32, max: u32 },
    #[error("the commission was raised at {last_ms}; the next raise is allowed from {next_ms} (block time, ms)")]
    CommissionRaiseTooSoon { last_ms: u64, next_ms: u64 },
    #[error("royalty stream {stream} is already split into shares")]
    AlreadySplit { stream: String },
    #[error("royalty stream {stream} is not split into shares")]
    NotSplit { stream: String },
    #[error("a stream is split into 1 to {max} shares, not {got}")]
    BadShareCount { got: u64, max: u64 },
    #[error("you hold {have} shares of {stream}, fewer than {want}")]
    InsufficientShares {
        stream: String,
        have: u64,
        want: u64,
    },
    #[error("your shares of {stream} have nothing to claim")]
    NothingToClaim { stream: String },
    #[error("an order's price must be at least one base unit a share")]
    ZeroPrice,
    #[error("the order expires at height {expires_height}, before this block ({height})")]
    OrderExpired { expires_height: u64, height: u64 },
    #[error("no resting order {id}")]
    UnknownOrder { id: u64 },
    #[error("order {id} is {owner}'s and has not expired")]
    NotYourOrder { id: u64, owner: Address },
    #[error("the order would trade with your own resting order {id}; cancel that one first")]
    SelfTrade { id: u64 },
}

impl TxError {
    /// The stable machine-readable code of this rejection (in block results and API errors).
    /// Clients match on it, so a code never changes once released.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::TooLarge { .. } => "too_large",
            TxError::Malformed { .. } => "malformed",
            TxError::WrongChain { .. } => "wrong_chain",
            TxError::BadSignature => "bad_signature",
            TxError::FeeTooLow { .. } => "fee_too_low",
            TxError::BadNonce { .. } => "bad_nonce",
            TxError::InsufficientFunds { .. } => "insufficient_funds",
            TxError::ZeroAmount => "zero_amount",
            TxError::Overflow => "overflow",
            TxError::BelowMinimumStake { .. } => "below_minimum_stake",
            TxError::UnknownValidator { .. } => "unknown_validator",
            TxError::ValidatorExists { .. } => "validator_exists",
            TxError::ConsensusKeyInUse => "consensus_key_in_use",
            TxError::InsufficientStake { .. } => "insufficient_stake",
            TxError::ValidatorWipedOut { .. } => "validator_wiped_out",
            TxError::NotJailed => "not_jailed",
            TxError::StillJailed { .. } => "still_jailed",
            TxError::InvalidEvidence { .. } => "invalid_evidence",
            TxError::EvidenceTooOld { .. } => "evidence_too_old",
            TxError::DuplicateEvidence => "duplicate_evidence",
            TxError::InvalidName { .. } => "invalid_name",
            TxError::InvalidSpec { .. } => "invalid_spec",
            TxError::DatasetExists { .. } => "dataset_exists",
            TxError::UnknownDataset { .. } => "unknown_dataset",
            TxError::UnknownModel { .. } => "unknown_model",
            TxError::NotOwner { .. } => "not_owner",
            TxError::BadVersion { .. } => "bad_version",
            TxError::LicenceConflict { .. } => "licence_conflict",
            TxError::ShareTooLow { .. } => "share_too_low",
            TxError::NotInferenceNode { .. } => "not_inference_node",
            TxError::TierNotAllowed { .. } => "tier_not_allowed",
            TxError::EscrowClosing { .. } => "escrow_closing",
            TxError::NoEscrow { .. } => "no_escrow",
            TxError::EscrowNotClosed { .. } => "escrow_not_closed",
            TxError::EscrowLocked { .. } => "escrow_locked",
            TxError::TooManyReceipts { .. } => "too_many_receipts",
            TxError::NotYourReceipt { .. } => "not_your_receipt",
            TxError::EmptySettlement => "empty_settlement",
            TxError::NoCase { .. } => "no_case",
            TxError::CaseClosed { .. } => "case_closed",
            TxError::NotYourCase { .. } => "not_your_case",
            TxError::AlreadyRevealed => "already_revealed",
            TxError::WindowClosed { .. } => "window_closed",
            TxError::RevealTooLarge { .. } => "reveal_too_large",
            TxError::RevealMismatch { .. } => "reveal_mismatch",
            TxError::RevealUnitsMismatch { .. } => "reveal_units_mismatch",
            TxError::NotReexecutable { .. } => "not_reexecutable",
            TxError::WrongModelFile { .. } => "wrong_model_file",
            TxError::NotRevealed => "not_revealed",
            TxError::ReplayTooCostly { .. } => "replay_too_costly",
            TxError::ReplayCostMisdeclared { .. } => "replay_cost_misdeclared",
            TxError::NotChallengeable { .. } => "not_challengeable",
            TxError::WrongClaim { .. } => "wrong_claim",
            TxError::NothingToResolve => "nothing_to_resolve",
            TxError::ZkKeyInvalid { .. } => "zk_key_invalid",
            TxError::ZkKeyExists { .. } => "zk_key_exists",
            TxError::ProofTooLargeForChain { .. } => "proof_too_large_for_chain",
            TxError::NotZkReceipt { .. } => "not_zk_receipt",
            TxError::NotZkModel { .. } => "not_zk_model",
            TxError::ZkKeyMissing { .. } => "zk_key_missing",
            TxError::ZkKeyFileMismatch { .. } => "zk_key_file_mismatch",
            TxError::ZkKeyNotOfFile { .. } => "zk_key_not_of_file",
            TxError::ProofInvalid { .. } => "proof_invalid",
            TxError::SettlementRejected { .. } => "settlement_rejected",
            TxError::NotCommitteeCase { .. } => "not_committee_case",
            TxError::NotOnCommittee { .. } => "not_on_committee",
            TxError::AlreadyVoted { .. } => "already_voted",
            TxError::InvalidProposal { .. } => "invalid_proposal",
            TxError::UnknownParam { .. } => "unknown_param",
            TxError::ParamOutOfBounds { .. } => "param_out_of_bounds",
            TxError::ParamsInconsistent { .. } => "params_inconsistent",
            TxError::TreasuryShort { .. } => "treasury_short",
            TxError::UnknownProposal { .. } => "unknown_proposal",
            TxError::WrongProposalStatus { .. } => "wrong_proposal_status",
            TxError::VotingClosed { .. } => "voting_closed",
            TxError::NotStaker { .. } => "not_staker",
            TxError::DepositTooLow { .. } => "deposit_too_low",
            TxError::TooManyProposals { .. } => "too_many_proposals",
            TxError::NoRewards { .. } => "no_rewards",
            TxError::CommissionTooHigh { .. } => "commission_too_high",
            TxError::CommissionRaiseTooLarge { .. } => "commission_raise_too_large",
            TxError::CommissionRaiseTooSoon { .. } => "commission_raise_too_soon",
            TxError::AlreadySplit { .. } => "already_split",
            TxError::NotSplit { .. } => "not_split",
            TxError::BadShareCount { .. } => "bad_share_count",
            TxError::InsufficientShares { .. } => "insufficient_shares",
            TxError::NothingToClaim { .. } => "nothing_to_claim",
            TxError::ZeroPrice => "zero_price",
            TxError::OrderExpired { .. } => "order_expired",
            TxError::UnknownOrder { .. } => "unknown_order",
            TxError::NotYourOrder { .. } => "not_your_order",
            TxError::SelfTrade { .. } => "self_trade",
        }
    }
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
    /// A decided block that breaks a rule every honest validator checks before voting (its
    /// audit beacon): only reachable if more than a third of the power is Byzantine.
    #[error("invalid block: {0}")]
    InvalidBlock(String),
}
