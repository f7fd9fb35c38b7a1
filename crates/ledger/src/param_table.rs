//! The table of every chain parameter governance can change: its key (`section.field`), its
//! bounds, and how to read and write it in [`AllParams`]. One macro line per parameter, so a
//! parameter cannot be changeable without bounds, and a test checks that no field of any
//! parameter set is missing from the table.
//!
//! The bounds keep a parameter where the chain still works (a block holds a transaction, a
//! window is long enough to act in, a threshold cannot hand a one-third minority control:
//! docs/governance.md); the rules *between* parameters are [`AllParams::check`].

use crate::error::TxError;
use crate::params::{AllParams, MAX_LLM_COMMIT_PARAM};
use opal_types::gov::ParamChange;
use opal_types::Amount;

/// One changeable parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    /// `section.field`, e.g. `inference.audit_bps`.
    pub key: &'static str,
    pub min: u128,
    pub max: u128,
}

/// An integer parameter's value as the table sees it.
trait Int: Sized {
    fn to_u128(&self) -> u128;
    fn from_u128(v: u128) -> Option<Self>;
}

impl Int for Amount {
    fn to_u128(&self) -> u128 {
        self.0
    }
    fn from_u128(v: u128) -> Option<Self> {
        Some(Amount(v))
    }
}

impl Int for u32 {
    fn to_u128(&self) -> u128 {
        *self as u128
    }
    fn from_u128(v: u128) -> Option<Self> {
        u32::try_from(v).ok()
    }
}

impl Int for u64 {
    fn to_u128(&self) -> u128 {
        *self as u128
    }
    fn from_u128(v: u128) -> Option<Self> {
        u64::try_from(v).ok()
    }
}

const SECOND: u128 = 1_000;
const DAY: u128 = 86_400 * SECOND;
const YEAR: u128 = 365 * DAY;
/// Largest token amount a parameter may name (10^30 base units: beyond any supply).
const MAX_AMOUNT: u128 = 1_000_000_000_000_000_000_000_000_000_000;
/// The consensus engine's block limit less room for the header and the last commit (up to
/// 1,000 validators' signatures, about 100 KB).
const BLOCK_CEILING: u128 = (4 << 20) - (256 << 10);
const TX_CEILING: u128 = opal_types::tx::MAX_TX_BYTES_HARD as u128;

macro_rules! table {
    ($( $sec:ident . $field:ident [$min:expr, $max:expr] ),* $(,)?) => {
        /// Every changeable parameter, in the order `GET /api/params` lists them.
        pub const TABLE: &[ParamSpec] = &[
            $( ParamSpec {
                key: concat!(stringify!($sec), ".", stringify!($field)),
                min: $min,
                max: $max,
            } ),*
        ];

        /// The value of parameter `key` in `p`.
        pub fn get(p: &AllParams, key: &str) -> Option<u128> {
            match key {
                $( concat!(stringify!($sec), ".", stringify!($field)) =>
                    Some(Int::to_u128(&p.$sec.$field)), )*
                _ => None,
            }
        }

        /// Set parameter `key` in `p` (bounds are the caller's; `None` if unknown or not
        /// representable).
        fn set(p: &mut AllParams, key: &str, v: u128) -> Option<()> {
            match key {
                $( concat!(stringify!($sec), ".", stringify!($field)) => {
                    p.$sec.$field = Int::from_u128(v)?;
                    Some(())
                } )*
                _ => None,
            }
        }
    };
}

table! {
    chain.min_fee [1, MAX_AMOUNT],
    chain.max_tx_bytes [1024, TX_CEILING],
    chain.max_block_txs [1, 100_000],
    chain.max_block_bytes [64 << 10, BLOCK_CEILING],
    chain.max_evidence_tx_bytes [64 << 10, TX_CEILING],
    chain.llm_commit_chunk [1, MAX_LLM_COMMIT_PARAM as u128],
    chain.llm_commit_top_k [1, MAX_LLM_COMMIT_PARAM as u128],
    chain.market_fee_bps [0, 1_000],
    staking.min_validator_stake [1, MAX_AMOUNT],
    staking.min_inference_node_stake [1, MAX_AMOUNT],
    staking.min_data_node_stake [1, MAX_AMOUNT],
    staking.unbonding_time_ms [SECOND, YEAR],
    staking.epoch_blocks [1, 100_000],
    staking.max_validators [1, 1_000],
    staking.power_reduction [1, MAX_AMOUNT],
    staking.slash_double_sign_bps [1, 10_000],
    staking.evidence_reward_bps [0, 10_000],
    staking.jail_time_ms [0, YEAR],
    staking.max_evidence_age_blocks [1, 10_000_000],
    // A window long enough that a restart or a short partition is not downtime.
    staking.signed_blocks_window [10, 1_000_000],
    staking.min_signed_bps [1, 10_000],
    staking.downtime_slash_bps [0, 10_000],
    staking.downtime_jail_ms [1_000, 30 * DAY],
    inference.treasury_bps [0, 10_000],
    inference.escrow_unlock_ms [SECOND, YEAR],
    inference.settle_grace_ms [0, YEAR],
    inference.max_receipts_per_tx [1, 4_096],
    inference.challenge_window_ms [SECOND, 30 * DAY],
    inference.reveal_window_ms [SECOND, 30 * DAY],
    inference.audit_bps [0, 10_000],
    inference.audit_fee [0, MAX_AMOUNT],
    inference.fraud_slash [0, MAX_AMOUNT],
    inference.challenger_reward_bps [0, 10_000],
    inference.challenge_bond [0, MAX_AMOUNT],
    inference.jail_ms [0, YEAR],
    inference.max_reveal_bytes [1024, TX_CEILING],
    inference.max_replay_cost [1, 1_000_000_000_000],
    inference.audit_committee [1, 100],
    governance.min_deposit [1, MAX_AMOUNT],
    governance.min_initial_deposit_bps [0, 10_000],
    governance.max_deposit_period_ms [SECOND, 30 * DAY],
    governance.voting_period_ms [SECOND, 30 * DAY],
    // More than a third of the stake must vote, so a one-third minority cannot reach quorum
    // alone; a pass needs more than half of the non-abstaining votes; a veto needs more than a
    // third of the votes, so a one-third minority cannot veto when everyone votes.
    governance.quorum_bps [3_400, 10_000],
    governance.threshold_bps [5_000, 10_000],
    governance.veto_bps [3_340, 10_000],
    governance.max_active_proposals [1, 100],
    // At most 20% a year: emission is dilution of every holder.
    rewards.inflation_bps [0, 2_000],
    rewards.performance_share_bps [0, 10_000],
    rewards.default_commission_bps [0, 10_000],
    rewards.max_commission_bps [0, 10_000],
    rewards.max_commission_raise_bps [0, 10_000],
    rewards.commission_raise_period_ms [SECOND, 30 * DAY],
    rewards.performance_epoch_blocks [1, 100_000],
    rewards.weight_signed [0, 100],
    rewards.weight_replay [0, 100],
    rewards.weight_activations [0, 100],
    rewards.weight_tee [0, 100],
    rewards.weight_zk [0, 100],
    rewards.audit_pass_points [0, 1_000_000],
}

/// The table entry of `key`.
pub fn spec(key: &str) -> Option<&'static ParamSpec> {
    TABLE.iter().find(|s| s.key == key)
}

/// `p` with `changes` applied, each within its bounds and the result consistent
/// ([`AllParams::check`]); the typed refusal otherwise.
pub fn apply(p: &AllParams, changes: &[ParamChange]) -> Result<AllParams, TxError> {
    let mut next = p.clone();
    for c in changes {
        let s = spec(&c.key).ok_or_else(|| TxError::UnknownParam { key: c.key.clone() })?;
        if c.value < s.min || c.value > s.max {
            return Err(TxError::ParamOutOfBounds {
                key: c.key.clone(),
                value: c.value,
                min: s.min,
                max: s.max,
            });
        }
        set(&mut next, s.key, c.value).ok_or_else(|| TxError::ParamOutOfBounds {
            key: c.key.clone(),
            value: c.value,
            min: s.min,
            max: s.max,
        })?;
    }
    next.check()
        .map_err(|reason| TxError::ParamsInconsistent { reason })?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{GovParams, InferenceParams, Params, RewardParams, StakingParams};

    fn defaults() -> AllParams {
        AllParams {
            chain: Params::default(),
            staking: StakingParams::default(),
            inference: InferenceParams::default(),
            governance: GovParams::default(),
            rewards: RewardParams::default(),
        }
    }

    /// Every field of every parameter set is in the table (a new parameter that is not is
    /// caught here), and every default is inside its bounds.
    #[test]
    fn the_table_covers_every_parameter() {
        let p = defaults();
        let json = serde_json::to_value(&p).unwrap();
        let mut fields = 0;
        for (section, v) in json.as_object().unwrap() {
            for field in v.as_object().unwrap().keys() {
                let key = format!("{section}.{field}");
                let s = spec(&key).unwrap_or_else(|| panic!("{key} is not in the table"));
                let value = get(&p, &key).unwrap();
                assert!(
                    (s.min..=s.max).contains(&value),
                    "default {key} = {value} outside [{}, {}]",
                    s.min,
                    s.max
                );
                fields += 1;
            }
        }
        assert_eq!(fields, TABLE.len());
        assert!(p.check().is_ok());
    }

    #[test]
    fn apply_checks_bounds_and_consistency() {
        let p = defaults();
        let c = |k: &str, v: u128| ParamChange {
            key: k.into(),
            value: v,
        };
        let next = apply(&p, &[c("inference.audit_bps", 10_000)]).unwrap();
        assert_eq!(next.inference.audit_bps, 10_000);
        assert_eq!(
            apply(&p, &[c("inference.audit_bps", 10_001)])
                .unwrap_err()
                .code(),
            "param_out_of_bounds"
        );
        assert_eq!(
            apply(&p, &[c("inference.nope", 1)]).unwrap_err().code(),
            "unknown_param"
        );
        assert_eq!(
            apply(&p, &[c("governance.quorum_bps", 3_333)])
                .unwrap_err()
                .code(),
            "param_out_of_bounds"
        );
        // Each in bounds, together inconsistent: the escrow would unlock before the grace ends.
        let e = apply(
            &p,
            &[
                c("inference.settle_grace_ms", 200_000),
                c("inference.escrow_unlock_ms", 100_000),
            ],
        )
        .unwrap_err();
        assert_eq!(e.code(), "params_inconsistent", "{e}");
        // A u32 field refuses a value only a u128 holds, even if the bound were wider.
        assert!(set(&mut p.clone(), "chain.max_block_txs", u64::MAX as u128).is_none());
    }
}
