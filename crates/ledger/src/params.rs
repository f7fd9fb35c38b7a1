//! Chain parameters, set in genesis (governance will change them later).

use opal_types::Amount;
use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct Params {
    /// Minimum fee per transaction, in base units.
    pub min_fee: Amount,
    /// Largest accepted transaction, in canonical bytes.
    pub max_tx_bytes: u32,
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Largest block body, in canonical bytes.
    pub max_block_bytes: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_fee: Amount(1_000),
            max_tx_bytes: 16 * 1024,
            max_block_txs: 5_000,
            max_block_bytes: 3 * 1024 * 1024,
        }
    }
}

/// Staking, slashing and validator-set parameters (genesis; governance later).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
#[serde(default)]
pub struct StakingParams {
    /// Least self-delegation to create a validator, and least stake to stay in the set.
    pub min_validator_stake: Amount,
    pub min_inference_node_stake: Amount,
    pub min_data_node_stake: Amount,
    /// How long unbonding stake stays locked (and slashable), in block-time milliseconds.
    pub unbonding_time_ms: u64,
    /// The validator set is recomputed from stake every `epoch_blocks` blocks (and at once when a
    /// validator is jailed).
    pub epoch_blocks: u64,
    pub max_validators: u32,
    /// Tokens per unit of consensus voting power.
    pub power_reduction: Amount,
    /// Fraction of a validator's stake (and of unbonding stake from it) slashed for double
    /// signing, in basis points.
    pub slash_double_sign_bps: u32,
    /// Share of a slash paid to whoever submitted the evidence, in basis points; the rest goes
    /// to the protocol treasury.
    pub evidence_reward_bps: u32,
    pub jail_time_ms: u64,
    /// Evidence older than this many blocks is refused.
    pub max_evidence_age_blocks: u64,
}

impl Default for StakingParams {
    fn default() -> Self {
        StakingParams {
            min_validator_stake: Amount(1_000_000),
            min_inference_node_stake: Amount(100_000),
            min_data_node_stake: Amount(100_000),
            unbonding_time_ms: 60_000,
            epoch_blocks: 10,
            max_validators: 100,
            power_reduction: Amount(1_000_000),
            slash_double_sign_bps: 500,
            evidence_reward_bps: 1_000,
            jail_time_ms: 60_000,
            max_evidence_age_blocks: 10_000,
        }
    }
}

/// Inference escrow and settlement parameters (genesis; governance later).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
#[serde(default)]
pub struct InferenceParams {
    /// Share of every settled price paid to the protocol treasury, in basis points.
    pub treasury_bps: u32,
    /// How long a closed escrow stays locked before the caller can withdraw what is left, in
    /// block-time ms. Must exceed `settle_grace_ms`, so a node can always settle what it served
    /// before it saw the escrow close.
    pub escrow_unlock_ms: u64,
    /// A receipt settles only while block time <= the request's expiry + this grace, in ms.
    pub settle_grace_ms: u64,
    /// Most receipts in one settlement transaction.
    pub max_receipts_per_tx: u32,
}

impl Default for InferenceParams {
    fn default() -> Self {
        InferenceParams {
            treasury_bps: 500,
            escrow_unlock_ms: 120_000,
            settle_grace_ms: 60_000,
            max_receipts_per_tx: 64,
        }
    }
}
