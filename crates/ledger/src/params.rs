//! Chain parameters, set in genesis (governance will change them later).

use crate::error::LedgerError;
use opal_state::Overlay;
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
    /// Most transactions in one block. The default, 12,000 (about 2 MB of transfers, inside
    /// `max_block_bytes`), lets a devnet's half-second blocks carry 24,000 transfers/s; the
    /// execution and commit of such a block take about 150 ms on a 2-core machine
    /// (`docs/benchmarks.md`).
    pub max_block_txs: u32,
    /// Largest block body, in canonical bytes.
    pub max_block_bytes: u32,
    /// Largest `RevealData`, `Challenge` or `Resolve` transaction (they carry tensors or a
    /// model file), in canonical bytes.
    #[serde(default = "default_evidence_tx_bytes")]
    pub max_evidence_tx_bytes: u32,
    /// Positions per chunk of an LLM reply's activation commitment (`activations` tier). The
    /// serving node commits with it and every verifier (`opal node watch`, `opal verify`)
    /// requires it: a commitment made with another is invalid, so a node cannot choose
    /// parameters that check almost nothing (docs/llm.md).
    #[serde(default = "default_llm_commit_chunk")]
    pub llm_commit_chunk: u32,
    /// Activations committed per chunk of an LLM reply (as `llm_commit_chunk`, fixed by the
    /// chain, never by the node).
    #[serde(default = "default_llm_commit_top_k")]
    pub llm_commit_top_k: u32,
    /// The exchange's fee on each trade, in basis points of its value: paid by the seller out
    /// of its proceeds, to the treasury (docs/markets.md).
    #[serde(default = "default_market_fee_bps")]
    pub market_fee_bps: u32,
}

fn default_market_fee_bps() -> u32 {
    30
}

fn default_evidence_tx_bytes() -> u32 {
    1 << 20
}

/// Largest `llm_commit_chunk` / `llm_commit_top_k` (what an activation commitment can carry,
/// `opal_llm::MAX_COMMIT_PARAM`).
pub const MAX_LLM_COMMIT_PARAM: u32 = 4096;

fn default_llm_commit_chunk() -> u32 {
    32
}

fn default_llm_commit_top_k() -> u32 {
    128
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_fee: Amount(1_000),
            max_tx_bytes: 16 * 1024,
            max_block_txs: 12_000,
            max_block_bytes: 3 * 1024 * 1024,
            max_evidence_tx_bytes: default_evidence_tx_bytes(),
            llm_commit_chunk: default_llm_commit_chunk(),
            llm_commit_top_k: default_llm_commit_top_k(),
            market_fee_bps: default_market_fee_bps(),
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
    /// Liveness: the sliding window of blocks over which a validator's commit signatures are
    /// counted.
    pub signed_blocks_window: u64,
    /// Least share of the window a validator must sign, in basis points; below it, it is
    /// jailed for downtime and slashed `downtime_slash_bps`.
    pub min_signed_bps: u32,
    /// Share of a validator's bonded tokens slashed for downtime (at most
    /// `slash_double_sign_bps`: double signing keeps the larger slash).
    pub downtime_slash_bps: u32,
    /// How long a validator jailed for downtime must wait before `Unjail`. Block-time ms.
    pub downtime_jail_ms: u64,
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
            signed_blocks_window: 100,
            min_signed_bps: 5_000,
            downtime_slash_bps: 100,
            downtime_jail_ms: 600_000,
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
    /// How long after its data is revealed a held result (`replay` tier, or a request that
    /// asked for disputes) can be challenged; also how long an open audit or dispute waits for
    /// `Resolve`. Block-time ms.
    pub challenge_window_ms: u64,
    /// How long a node has to reveal the inputs and outputs of a held or audited receipt before
    /// it is treated as withholding them (slashed, jailed, the caller refunded). Block-time ms.
    pub reveal_window_ms: u64,
    /// Base probability, in basis points, that a settled receipt of a re-executable model is
    /// audited (chosen with the next block's parent hash). See docs/verification.md for why.
    pub audit_bps: u32,
    /// Paid from the treasury to whoever resolves an audit that passes.
    pub audit_fee: Amount,
    /// Taken from a convicted node's inference-node bond (at most what is bonded).
    pub fraud_slash: Amount,
    /// Share of a slash paid to whoever proved the fraud (challenger or resolver), in bps.
    pub challenger_reward_bps: u32,
    /// Locked by a challenge that carries no fraud proof; lost if the result stands.
    pub challenge_bond: Amount,
    /// How long a convicted node may not settle receipts. Block-time ms.
    pub jail_ms: u64,
    /// Most bytes of revealed tensors for one receipt.
    pub max_reveal_bytes: u32,
    /// Most multiply-accumulates one on-chain re-execution may cost.
    pub max_replay_cost: u64,
    /// Validators assigned to each audit.
    pub audit_committee: u32,
}

impl Default for InferenceParams {
    fn default() -> Self {
        InferenceParams {
            treasury_bps: 500,
            escrow_unlock_ms: 120_000,
            settle_grace_ms: 60_000,
            max_receipts_per_tx: 64,
            challenge_window_ms: 60_000,
            reveal_window_ms: 30_000,
            audit_bps: 500,
            audit_fee: Amount(2_000),
            fraud_slash: Amount(100_000),
            challenger_reward_bps: 5_000,
            challenge_bond: Amount(20_000),
            jail_ms: 600_000,
            max_reveal_bytes: 64 << 10,
            max_replay_cost: 50_000_000,
            audit_committee: 2,
        }
    }
}

/// The reward parameters in state (written by genesis; missing is corruption).
pub fn rewards(s: &Overlay) -> Result<RewardParams, LedgerError> {
    crate::components::required(s, crate::keys::rewards::PARAMS, "reward params")
}

/// The inference parameters in state (written by genesis; missing is corruption). Read by
/// settlement, verification and the registry alike, so it sits below all of them.
pub fn inference(s: &Overlay) -> Result<InferenceParams, LedgerError> {
    crate::components::required(s, crate::keys::inference::PARAMS, "inference params")
}

/// Governance parameters (genesis; changeable by governance within their bounds, see
/// docs/governance.md for why the bounds are what they are).
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
pub struct GovParams {
    /// Deposits a proposal needs before its voting period opens.
    pub min_deposit: Amount,
    /// Share of `min_deposit` the proposer must put up at submission, in basis points.
    pub min_initial_deposit_bps: u32,
    /// How long a proposal may wait for `min_deposit` before it lapses (deposits refunded).
    pub max_deposit_period_ms: u64,
    /// How long voting lasts once it opens. Block-time ms.
    pub voting_period_ms: u64,
    /// Least share of all bonded stake that must vote (abstain included) for a tally to count,
    /// in basis points; short of it the proposal fails and its deposits are refunded.
    pub quorum_bps: u32,
    /// A proposal passes when `yes` is more than this share of `yes + no + no_with_veto`.
    pub threshold_bps: u32,
    /// A proposal is vetoed (deposits burned) when `no_with_veto` reaches this share of all
    /// votes cast.
    pub veto_bps: u32,
    /// Most proposals in their deposit or voting period at once.
    pub max_active_proposals: u32,
}

impl Default for GovParams {
    fn default() -> Self {
        GovParams {
            min_deposit: Amount(10_000_000),
            min_initial_deposit_bps: 2_500,
            max_deposit_period_ms: 3_600_000,
            voting_period_ms: 600_000,
            quorum_bps: 4_000,
            threshold_bps: 5_000,
            veto_bps: 3_340,
            max_active_proposals: 16,
        }
    }
}

/// Emission and reward parameters (genesis; changeable by governance within their bounds,
/// docs/rewards.md).
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
pub struct RewardParams {
    /// New tokens per year as a share of the total supply, in basis points, minted block by
    /// block in proportion to block time.
    pub inflation_bps: u32,
    /// Share of each block's emission that goes to the inference performance pool; the rest
    /// pays validators and their delegators by voting power.
    pub performance_share_bps: u32,
    /// Commission of a validator that has not set its own, in basis points of its rewards.
    pub default_commission_bps: u32,
    /// Highest commission a validator may set.
    pub max_commission_bps: u32,
    /// Most a validator may raise its commission at once, in basis points; and how long it
    /// must wait between raises (block-time ms). Lowering it is always allowed: delegators
    /// are protected from a sudden increase, not from a cut.
    pub max_commission_raise_bps: u32,
    pub commission_raise_period_ms: u64,
    /// The performance pool is paid out to inference nodes every this many blocks.
    pub performance_epoch_blocks: u64,
    /// Performance points per settled unit, by tier: what each tier's verification is worth.
    pub weight_signed: u32,
    pub weight_replay: u32,
    pub weight_activations: u32,
    pub weight_tee: u32,
    pub weight_zk: u32,
    /// Performance points for each audit of a node's receipt that passed.
    pub audit_pass_points: u64,
}

impl Default for RewardParams {
    fn default() -> Self {
        RewardParams {
            inflation_bps: 700,
            performance_share_bps: 2_000,
            default_commission_bps: 1_000,
            max_commission_bps: 2_000,
            max_commission_raise_bps: 100,
            commission_raise_period_ms: 86_400_000,
            performance_epoch_blocks: 100,
            weight_signed: 1,
            weight_replay: 2,
            weight_activations: 2,
            weight_tee: 3,
            weight_zk: 4,
            audit_pass_points: 10,
        }
    }
}

impl RewardParams {
    /// The performance points one settled unit of `tier` earns.
    pub fn weight(&self, tier: opal_types::Tier) -> u64 {
        use opal_types::Tier;
        u64::from(match tier {
            Tier::Signed => self.weight_signed,
            Tier::Replay => self.weight_replay,
            Tier::Activations => self.weight_activations,
            Tier::Tee => self.weight_tee,
            Tier::Zk => self.weight_zk,
        })
    }
}

/// Every parameter set of the chain, as one value: what governance reads, changes and checks
/// as a whole ([`crate::param_table`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllParams {
    pub chain: Params,
    pub staking: StakingParams,
    pub inference: InferenceParams,
    pub governance: GovParams,
    pub rewards: RewardParams,
}

impl AllParams {
    /// The parameters in force (genesis writes them all; missing is corruption).
    pub fn load(s: &Overlay) -> Result<AllParams, LedgerError> {
        use crate::components::required;
        use crate::keys;
        Ok(AllParams {
            chain: required(s, keys::PARAMS, "params")?,
            staking: required(s, keys::staking::PARAMS, "staking params")?,
            inference: required(s, keys::inference::PARAMS, "inference params")?,
            governance: required(s, keys::gov::PARAMS, "governance params")?,
            rewards: required(s, keys::rewards::PARAMS, "reward params")?,
        })
    }

    /// Write every set (governance, after a change that passed [`AllParams::check`]).
    pub fn store(&self, s: &mut Overlay) {
        use crate::components::write;
        use crate::keys;
        write(s, keys::PARAMS, &self.chain);
        write(s, keys::staking::PARAMS, &self.staking);
        write(s, keys::inference::PARAMS, &self.inference);
        write(s, keys::gov::PARAMS, &self.governance);
        write(s, keys::rewards::PARAMS, &self.rewards);
    }

    /// The rules between parameters (each one's own bounds are in [`crate::param_table`]).
    /// Genesis and every governance change must pass them.
    pub fn check(&self) -> Result<(), String> {
        let (c, st, i, g) = (
            &self.chain,
            &self.staking,
            &self.inference,
            &self.governance,
        );
        if st.power_reduction.is_zero() || st.epoch_blocks == 0 || st.max_validators == 0 {
            return Err(
                "staking: power_reduction, epoch_blocks and max_validators must be positive".into(),
            );
        }
        for (name, bps) in [
            ("staking.slash_double_sign_bps", st.slash_double_sign_bps),
            ("staking.evidence_reward_bps", st.evidence_reward_bps),
            ("staking.min_signed_bps", st.min_signed_bps),
            ("staking.downtime_slash_bps", st.downtime_slash_bps),
            ("chain.market_fee_bps", c.market_fee_bps),
            ("inference.treasury_bps", i.treasury_bps),
            ("inference.audit_bps", i.audit_bps),
            ("inference.challenger_reward_bps", i.challenger_reward_bps),
            (
                "governance.min_initial_deposit_bps",
                g.min_initial_deposit_bps,
            ),
            ("governance.quorum_bps", g.quorum_bps),
            ("governance.threshold_bps", g.threshold_bps),
            ("governance.veto_bps", g.veto_bps),
            ("rewards.inflation_bps", self.rewards.inflation_bps),
            (
                "rewards.performance_share_bps",
                self.rewards.performance_share_bps,
            ),
            (
                "rewards.default_commission_bps",
                self.rewards.default_commission_bps,
            ),
            (
                "rewards.max_commission_bps",
                self.rewards.max_commission_bps,
            ),
        ] {
            if bps > 10_000 {
                return Err(format!("{name}: basis points must be at most 10000"));
            }
        }
        if i.escrow_unlock_ms <= i.settle_grace_ms {
            return Err(
                "inference: escrow_unlock_ms must exceed settle_grace_ms, or a caller \
                        could withdraw before the node settles what it served"
                    .into(),
            );
        }
        if i.max_receipts_per_tx == 0 {
            return Err("inference: max_receipts_per_tx must be positive".into());
        }
        if i.challenge_window_ms == 0 || i.reveal_window_ms == 0 {
            return Err("inference: challenge and reveal windows must be positive".into());
        }
        if c.max_evidence_tx_bytes > c.max_block_bytes || c.max_tx_bytes > c.max_block_bytes {
            return Err(
                "max_tx_bytes and max_evidence_tx_bytes must fit in a block \
                        (max_block_bytes)"
                    .into(),
            );
        }
        let llm_range = 1..=MAX_LLM_COMMIT_PARAM;
        if !llm_range.contains(&c.llm_commit_chunk) || !llm_range.contains(&c.llm_commit_top_k) {
            return Err(format!(
                "llm_commit_chunk {} and llm_commit_top_k {} must be in 1..={MAX_LLM_COMMIT_PARAM}",
                c.llm_commit_chunk, c.llm_commit_top_k,
            ));
        }
        if c.max_tx_bytes == 0 || c.max_block_txs == 0 {
            return Err("max_tx_bytes and max_block_txs must be positive".into());
        }
        if g.min_deposit.is_zero() || g.voting_period_ms == 0 || g.max_deposit_period_ms == 0 {
            return Err("governance: min_deposit and both periods must be positive".into());
        }
        if g.max_active_proposals == 0 {
            return Err("governance: max_active_proposals must be positive".into());
        }
        if st.downtime_slash_bps > st.slash_double_sign_bps {
            return Err(
                "staking: downtime_slash_bps must not exceed slash_double_sign_bps \
                        (double signing keeps the larger slash)"
                    .into(),
            );
        }
        if st.signed_blocks_window == 0 {
            return Err("staking: signed_blocks_window must be positive".into());
        }
        let r = &self.rewards;
        if r.default_commission_bps > r.max_commission_bps {
            return Err(
                "rewards: default_commission_bps must not exceed max_commission_bps".into(),
            );
        }
        if r.performance_epoch_blocks == 0 {
            return Err("rewards: performance_epoch_blocks must be positive".into());
        }
        Ok(())
    }
}
