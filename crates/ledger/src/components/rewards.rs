//! Rewards: emission on a schedule fixed in genesis, base rewards to the validators that vote
//! on each block and their delegators, performance rewards to inference nodes for verified
//! work, and the transactions that claim them (docs/rewards.md).
//!
//! Every block, in begin-block: `minted = supply × inflation_bps × (time − last block time) /
//! (10000 × YEAR_MS)`, rounded down, is added to the supply and the reward pool.
//! `performance_share_bps` of it goes to the performance pool; the rest is split among the
//! validators that signed the previous block (by their power then), each split into its
//! commission and its delegators' part ([`reward_pool::reward_validator`]); what rounding
//! leaves is carried to the next block's split. Every `performance_epoch_blocks` blocks the performance pool
//! is paid to inference nodes in proportion to their points (settled units weighted by tier,
//! passed audits; a conviction forfeits the epoch's points); rounding leaves the rest for the
//! next epoch. Nothing is minted or moved outside these rules, and the supply invariant
//! re-derives each block's emission ([`check_emission`]).

use super::{read, reward_pool, staking, write, BlockFrame, Hook, TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::keys::{self, rewards as k};
use crate::params::RewardParams;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::{Action, Address, Amount};
use serde::{Deserialize, Serialize};

/// A year of block time, for the annual inflation rate.
pub const YEAR_MS: u128 = 365 * 24 * 3_600 * 1_000;

/// One block's emission, kept so that the supply invariant can re-derive it.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Mint {
    pub height: u64,
    pub time_ms: u64,
    pub prev_time_ms: u64,
    pub supply_before: Amount,
    pub inflation_bps: u32,
    pub amount: Amount,
}

/// The schedule: what a block minted on `supply` over `dt_ms` of block time, exactly
/// `floor(supply × inflation_bps × dt_ms / (10000 × YEAR_MS))`. The product is taken in 256
/// bits, so no supply and no gap between blocks (a chain restarted after a long halt) makes it
/// fail; `None` only if the minted amount itself does not fit in a `u128`.
pub fn emission(supply: Amount, inflation_bps: u32, dt_ms: u64) -> Option<Amount> {
    // inflation_bps × dt_ms < 2^32 × 2^64: fits in a u128.
    let rate = inflation_bps as u128 * dt_ms as u128;
    opal_types::amount::mul_div_floor(supply.0, rate, 10_000 * YEAR_MS).map(Amount)
}

pub fn last_mint(s: &Overlay) -> Result<Mint, LedgerError> {
    super::required(s, k::LAST_MINT, "last mint")
}

/// A validator's commission rate (its own, or the default).
pub fn commission_rate(s: &Overlay, op: &Address, p: &RewardParams) -> Result<u32, LedgerError> {
    Ok(read(s, &k::commission_rate(op))?.unwrap_or(p.default_commission_bps))
}

/// What `who` could withdraw now: its delegations' rewards and, as an operator, its
/// validator's commission. O(its delegations).
pub fn withdrawable(s: &Overlay, who: &Address) -> Result<Amount, LedgerError> {
    let mut total = reward_pool::commission(s, who)?;
    for (op, shares) in staking::delegations_of(s, who)? {
        total = total
            .checked_add(reward_pool::pending(s, &op, who, shares)?)
            .map_err(|e| LedgerError::Invariant(e.to_string()))?;
    }
    Ok(total)
}

fn inv(what: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Invariant(format!("{what}: {e}"))
}

fn begin_block(s: &mut Overlay, b: BlockFrame, ev: &mut Vec<Event>) -> Hook {
    let p = crate::params::rewards(s)?;
    let last = last_mint(s)?;
    let supply: Amount = read(s, keys::SUPPLY)?.unwrap_or_default();
    let dt = b.ctx.time_ms.saturating_sub(last.time_ms);
    let minted =
        emission(supply, p.inflation_bps, dt).ok_or_else(|| inv("emission", "overflow"))?;
    write(
        s,
        k::LAST_MINT,
        &Mint {
            height: b.ctx.height,
            time_ms: b.ctx.time_ms,
            prev_time_ms: last.time_ms,
            supply_before: supply,
            inflation_bps: p.inflation_bps,
            amount: minted,
        },
    );
    if !minted.is_zero() {
        // The validators that signed the previous block (by the power they had then); where a
        // block carries no commit information (height 1), the set that votes on this one.
        let set = match b.last_signers {
            Some(l) => l.signing_members(),
            None => staking::active_set(s)?,
        };
        distribute(s, &p, minted, &set, ev)?;
    }
    if b.ctx.height.is_multiple_of(p.performance_epoch_blocks) {
        pay_performance_epoch(s, b.ctx.height, ev)?;
    }
    Ok(())
}

fn distribute(
    s: &mut Overlay,
    p: &RewardParams,
    minted: Amount,
    set: &[opal_types::validator::ActiveValidator],
    ev: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    reward_pool::mint_into(s, minted)?;
    let perf = minted
        .checked_bps(p.performance_share_bps)
        .map_err(|e| inv("performance share", e))?;
    reward_pool::fund_performance(s, perf)?;
    // The validators' part, with what the last block's split left over.
    let base = (minted.0 - perf.0)
        .checked_add(reward_pool::carry(s)?.0)
        .ok_or_else(|| inv("rewards", "overflow"))?;
    let total_power: u128 = set.iter().map(|v| v.power as u128).sum();
    let mut assigned: u128 = 0;
    let mut unassigned = Amount::ZERO;
    for v in set {
        let r = base
            .checked_mul(v.power as u128)
            .and_then(|x| x.checked_div(total_power))
            .map(Amount)
            .ok_or_else(|| inv("validator reward", "overflow"))?;
        assigned += r.0;
        let Some(info) = staking::validator(s, &v.operator)? else {
            unassigned = unassigned.checked_add(r).map_err(|e| inv("rewards", e))?;
            continue;
        };
        let rate = commission_rate(s, &v.operator, p)?;
        let left = reward_pool::reward_validator(s, &v.operator, info.shares, r, rate)?;
        unassigned = unassigned
            .checked_add(left)
            .map_err(|e| inv("rewards", e))?;
    }
    let left = Amount(base - assigned)
        .checked_add(unassigned)
        .map_err(|e| inv("rewards", e))?;
    reward_pool::set_carry(s, left);
    ev.push(Event::RewardsMinted {
        amount: minted,
        validators: Amount(base - left.0),
        performance: perf,
        carried: left,
    });
    Ok(())
}

/// Pay the performance pool to this epoch's points, pro rata, rounding down; the rest stays.
fn pay_performance_epoch(s: &mut Overlay, height: u64, ev: &mut Vec<Event>) -> Hook {
    let points = reward_pool::points(s)?;
    let total: u128 = points.iter().map(|(_, _, p)| *p as u128).sum();
    let pool = reward_pool::performance_pool(s)?;
    if total == 0 || pool.is_zero() {
        return reward_pool::clear_points(s);
    }
    let mut paid = Amount::ZERO;
    for (_, who, p) in &points {
        let a = pool
            .0
            .checked_mul(*p as u128)
            .map(|x| Amount(x / total))
            .ok_or_else(|| inv("performance reward", "overflow"))?;
        if !a.is_zero() {
            reward_pool::pay_performance(s, who, a)?;
            paid = paid.checked_add(a).map_err(|e| inv("performance", e))?;
        }
    }
    reward_pool::clear_points(s)?;
    ev.push(Event::PerformanceRewardsPaid {
        height,
        nodes: points.len() as u32,
        points: total as u64,
        paid,
    });
    Ok(())
}

/// `WithdrawRewards`: every delegation of the signer settled, and its commission as an
/// operator. O(its delegations).
fn withdraw(s: &mut Overlay, who: &Address, ev: &mut Vec<Event>) -> TxOutcome {
    let mut total = reward_pool::pay_commission(s, who)?;
    for (op, shares) in staking::delegations_of(s, who)? {
        let paid = reward_pool::settle(s, &op, who, shares)?;
        total = total.checked_add(paid).map_err(|e| inv("withdraw", e))?;
    }
    if total.is_zero() {
        return Ok(Err(TxError::NoRewards { who: *who }));
    }
    ev.push(Event::RewardsWithdrawn {
        who: *who,
        amount: total,
    });
    Ok(Ok(()))
}

fn set_commission(
    s: &mut Overlay,
    now_ms: u64,
    op: &Address,
    bps: u32,
    ev: &mut Vec<Event>,
) -> TxOutcome {
    if staking::validator(s, op)?.is_none() {
        return Ok(Err(TxError::UnknownValidator { validator: *op }));
    }
    let p = crate::params::rewards(s)?;
    if bps > p.max_commission_bps {
        return Ok(Err(TxError::CommissionTooHigh {
            bps,
            max: p.max_commission_bps,
        }));
    }
    let current = commission_rate(s, op, &p)?;
    if bps > current {
        // A raise: bounded in size and frequency, so delegators can leave before it lands.
        if bps - current > p.max_commission_raise_bps {
            return Ok(Err(TxError::CommissionRaiseTooLarge {
                from: current,
                to: bps,
                max: p.max_commission_raise_bps,
            }));
        }
        if let Some(last_ms) = read::<u64>(s, &k::commission_raised_at(op))? {
            let next_ms = last_ms.saturating_add(p.commission_raise_period_ms);
            if now_ms < next_ms {
                return Ok(Err(TxError::CommissionRaiseTooSoon { last_ms, next_ms }));
            }
        }
        write(s, &k::commission_raised_at(op), &now_ms);
    }
    write(s, &k::commission_rate(op), &bps);
    ev.push(Event::CommissionSet {
        validator: *op,
        bps,
    });
    Ok(Ok(()))
}

/// Total supply = the genesis supply + everything minted − everything burned, and the last
/// block minted exactly what the schedule says.
pub fn check_emission(s: &Overlay) -> Result<(), LedgerError> {
    let amount =
        |key: &[u8]| -> Result<Amount, LedgerError> { Ok(read(s, key)?.unwrap_or_default()) };
    let supply = amount(keys::SUPPLY)?;
    let genesis = amount(k::GENESIS_SUPPLY)?;
    let (minted, burned) = (amount(k::MINTED)?, amount(k::BURNED)?);
    let expect = genesis
        .checked_add(minted)
        .and_then(|v| v.checked_sub(burned))
        .map_err(|e| inv("supply", e))?;
    if supply != expect {
        return Err(LedgerError::Invariant(format!(
            "total supply is {supply}, but genesis {genesis} + minted {minted} - burned {burned} \
             is {expect}"
        )));
    }
    if let Some(m) = read::<Mint>(s, k::LAST_MINT)? {
        let dt = m.time_ms.saturating_sub(m.prev_time_ms);
        let want = emission(m.supply_before, m.inflation_bps, dt);
        if want != Some(m.amount) {
            return Err(LedgerError::Invariant(format!(
                "block {} minted {} but the schedule gives {want:?}",
                m.height, m.amount
            )));
        }
    }
    Ok(())
}

/// The `rewards` component ([`super::Component`]).
pub struct Rewards;

impl super::Component for Rewards {
    fn name(&self) -> &'static str {
        "rewards"
    }

    fn init_chain(&self, s: &mut Overlay, g: &crate::Genesis) -> Hook {
        write(s, k::PARAMS, &g.rewards);
        let supply = g.supply()?;
        write(s, k::GENESIS_SUPPLY, &supply);
        write(
            s,
            k::LAST_MINT,
            &Mint {
                time_ms: g.genesis_time_ms,
                prev_time_ms: g.genesis_time_ms,
                supply_before: supply,
                inflation_bps: g.rewards.inflation_bps,
                ..Default::default()
            },
        );
        Ok(())
    }

    fn begin_block(&self, s: &mut Overlay, b: BlockFrame, ev: &mut Vec<Event>) -> Hook {
        begin_block(s, b, ev)
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        match tx.action {
            Action::WithdrawRewards => withdraw(s, tx.sender, ev),
            Action::SetCommission { bps } => set_commission(s, tx.ctx.time_ms, tx.sender, *bps, ev),
            other => super::not_routed_here(self.name(), other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emission_is_exact_and_never_overflows_on_a_large_supply_or_a_long_gap() {
        // Small values agree with the naive formula.
        for (s, b, d) in [
            (0u128, 700u32, 500u64),
            (1_000_000, 700, 500),
            (123_456_789_012_345, 1, 1),
        ] {
            let naive = s * b as u128 * d as u128 / (10_000 * YEAR_MS);
            assert_eq!(emission(Amount(s), b, d), Some(Amount(naive)));
        }
        // A year at 100%: the supply doubles, exactly, even where supply × bps × dt needs more
        // than 128 bits.
        let big = Amount(1 << 100);
        let year = YEAR_MS as u64;
        assert_eq!(emission(big, 10_000, year), Some(big));
        assert_eq!(
            emission(Amount(u128::MAX / 2), 10_000, year),
            Some(Amount(u128::MAX / 2))
        );
        // A week's gap on a large supply.
        let week = 7 * 24 * 3_600 * 1_000;
        let got = emission(Amount(10u128.pow(30)), 700, week).unwrap();
        let want = 10u128.pow(30) / (10_000 * YEAR_MS) * 700 * week as u128;
        assert!(
            got.0 >= want && got.0 - want < 700 * week as u128,
            "{got:?} {want}"
        );
        // Only a quotient beyond u128 is refused.
        assert_eq!(emission(Amount(u128::MAX), 10_000, 2 * year), None);
    }
}
