//! The reward pool: what emission has minted and not yet paid, and who it is owed to. Below
//! staking (which settles a delegation's rewards before changing its shares) and below
//! settlement and verification (which award and forfeit performance points); the `rewards`
//! component above staking mints and distributes (docs/rewards.md).
//!
//! Delegators are paid by lazy accumulation (in the spirit of Cosmos's F1 distribution): each
//! validator keeps a cumulative reward per delegation share, scaled by [`REWARD_SCALE`]; a
//! block's rewards raise it in O(1) per validator, whatever the number of delegators, and a
//! delegation's claim is `shares × (rate now − rate at its last settlement) / REWARD_SCALE`,
//! settled when its shares change or it withdraws. Slashes lower a validator's tokens, never
//! its shares, so the rate needs no slash periods. Every claim rounds down, so the claims of a
//! validator's delegators never exceed what it was given (`outstanding`); the remainder stays
//! in the pool, counted, never created or lost. What a block's split among validators leaves
//! by rounding is carried to the next block's.

use super::{accounts, read, write};
use crate::error::LedgerError;
use crate::keys::rewards as k;
use opal_state::Overlay;
use opal_types::{Address, Amount, Role};

/// Fixed-point scale of the reward-per-share rate.
pub const REWARD_SCALE: u128 = 1_000_000_000_000_000_000;

fn inv(what: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Invariant(format!("{what}: {e}"))
}

fn amount(s: &Overlay, key: &[u8]) -> Result<Amount, LedgerError> {
    Ok(read(s, key)?.unwrap_or_default())
}

fn add(s: &mut Overlay, key: &[u8], a: Amount, what: &str) -> Result<(), LedgerError> {
    let v = amount(s, key)?.checked_add(a).map_err(|e| inv(what, e))?;
    write(s, key, &v);
    Ok(())
}

fn sub(s: &mut Overlay, key: &[u8], a: Amount, what: &str) -> Result<(), LedgerError> {
    let v = amount(s, key)?.checked_sub(a).map_err(|e| inv(what, e))?;
    write(s, key, &v);
    Ok(())
}

/// Everything minted and not yet paid out.
pub fn pool(s: &Overlay) -> Result<Amount, LedgerError> {
    amount(s, k::POOL)
}

pub fn performance_pool(s: &Overlay) -> Result<Amount, LedgerError> {
    amount(s, k::PERFORMANCE_POOL)
}

/// Commission owed to `op`'s operator.
pub fn commission(s: &Overlay, op: &Address) -> Result<Amount, LedgerError> {
    amount(s, &k::commission(op))
}

/// What `op`'s delegators are owed in total.
pub fn outstanding(s: &Overlay, op: &Address) -> Result<Amount, LedgerError> {
    amount(s, &k::outstanding(op))
}

/// `op`'s cumulative delegator reward per share, scaled.
pub fn rate(s: &Overlay, op: &Address) -> Result<u128, LedgerError> {
    Ok(read(s, &k::rate(op))?.unwrap_or(0))
}

/// Mint `a` into the pool: the one place the supply grows (recorded in `minted`, which the
/// supply invariant checks).
pub fn mint_into(s: &mut Overlay, a: Amount) -> Result<(), LedgerError> {
    add(s, crate::keys::SUPPLY, a, "supply")?;
    add(s, k::POOL, a, "reward pool")?;
    add(s, k::MINTED, a, "minted total")
}

/// Burn `a` that the caller already took out of circulation (a vetoed proposal's deposits):
/// the one place the supply shrinks (recorded in `burned`).
pub fn burn(s: &mut Overlay, a: Amount) -> Result<(), LedgerError> {
    sub(s, crate::keys::SUPPLY, a, "supply")?;
    add(s, k::BURNED, a, "burned total")
}

/// Give validator `op` `reward` (already in the pool): its commission at `commission_bps`,
/// the rest to its delegators through the rate over `shares`. Returns what could not be
/// assigned (all of it when the validator has no shares), which the caller moves out of the
/// pool (to the treasury).
pub fn reward_validator(
    s: &mut Overlay,
    op: &Address,
    shares: u128,
    reward: Amount,
    commission_bps: u32,
) -> Result<Amount, LedgerError> {
    if shares == 0 {
        return Ok(reward);
    }
    let c = reward
        .checked_bps(commission_bps)
        .map_err(|e| inv("commission", e))?;
    let d = Amount(reward.0 - c.0);
    // The rate is kept in u128: a reward that would push it past that cannot be assigned (nor
    // anything of this reward): the caller sends it all to the treasury. Value is conserved
    // and the block goes on; no realistic chain gets near it.
    let current = rate(s, op)?;
    let step = opal_types::amount::mul_div_floor(d.0, REWARD_SCALE, shares);
    let Some(r) = step.and_then(|step| current.checked_add(step)) else {
        return Ok(reward);
    };
    add(s, &k::commission(op), c, "commission")?;
    add(s, &k::outstanding(op), d, "outstanding")?;
    write(s, &k::rate(op), &r);
    Ok(Amount::ZERO)
}

/// What delegation (`op`, `delegator`) with `shares` is owed now, without paying it.
pub fn pending(
    s: &Overlay,
    op: &Address,
    delegator: &Address,
    shares: u128,
) -> Result<Amount, LedgerError> {
    let now = rate(s, op)?;
    let entry: u128 = read(s, &k::entry(op, delegator))?.unwrap_or(0);
    let delta = now
        .checked_sub(entry)
        .ok_or_else(|| inv("reward entry", "above the rate"))?;
    // shares × delta may pass 128 bits; the claim itself is at most what was given to op.
    let owed = opal_types::amount::mul_div_floor(shares, delta, REWARD_SCALE)
        .ok_or_else(|| inv("reward claim", "overflow"))?;
    Ok(Amount(owed))
}

/// Pay delegation (`op`, `delegator`) what it is owed at its current `shares` and restart
/// its accrual at the current rate. Staking calls it before any change to the shares; a
/// withdrawal calls it directly. Returns what was paid.
pub fn settle(
    s: &mut Overlay,
    op: &Address,
    delegator: &Address,
    shares: u128,
) -> Result<Amount, LedgerError> {
    let owed = pending(s, op, delegator, shares)?;
    let now = rate(s, op)?;
    if now == 0 {
        return Ok(Amount::ZERO);
    }
    write(s, &k::entry(op, delegator), &now);
    if !owed.is_zero() {
        sub(s, &k::outstanding(op), owed, "outstanding")?;
        sub(s, k::POOL, owed, "reward pool")?;
        accounts::credit(s, delegator, owed)?.map_err(|e| inv("reward credit", e))?;
    }
    Ok(owed)
}

/// Pay `op`'s operator its commission. Returns what was paid.
pub fn pay_commission(s: &mut Overlay, op: &Address) -> Result<Amount, LedgerError> {
    let c = commission(s, op)?;
    if !c.is_zero() {
        s.delete(k::commission(op));
        sub(s, k::POOL, c, "reward pool")?;
        accounts::credit(s, op, c)?.map_err(|e| inv("commission credit", e))?;
    }
    Ok(c)
}

/// Move `a` from the pool to the performance pool (part of a block's emission).
pub fn fund_performance(s: &mut Overlay, a: Amount) -> Result<(), LedgerError> {
    add(s, k::PERFORMANCE_POOL, a, "performance pool")
}

/// Pay `a` from the performance pool to `to`.
pub fn pay_performance(s: &mut Overlay, to: &Address, a: Amount) -> Result<(), LedgerError> {
    sub(s, k::PERFORMANCE_POOL, a, "performance pool")?;
    sub(s, k::POOL, a, "reward pool")?;
    accounts::credit(s, to, a)?.map_err(|e| inv("performance credit", e))
}

/// What the last block could not assign to validators (rounding, a validator without
/// shares): part of the next block's validator rewards.
pub fn carry(s: &Overlay) -> Result<Amount, LedgerError> {
    amount(s, k::CARRY)
}

pub fn set_carry(s: &mut Overlay, a: Amount) {
    write(s, k::CARRY, &a);
}

/// Award `who` (in `role`) performance points for verified work: settled units weighted by
/// tier, or a passed audit. The hook data nodes will use for accurate reports.
pub fn award(s: &mut Overlay, role: Role, who: &Address, points: u64) -> Result<(), LedgerError> {
    if points == 0 {
        return Ok(());
    }
    let key = k::points(role, who);
    let p: u64 = read(s, &key)?.unwrap_or(0);
    write(s, &key, &p.saturating_add(points));
    Ok(())
}

/// Award an inference node the points of `units` of final, verified work in `tier`
/// (`units × weight(tier)`). Settlement calls it for a receipt that can no longer be
/// challenged; verification calls it when a held result is paid, an audit is not drawn, or an
/// audit or dispute ends without a conviction.
pub fn award_work(
    s: &mut Overlay,
    node: &Address,
    tier: opal_types::Tier,
    units: u64,
) -> Result<(), LedgerError> {
    let weight = crate::params::rewards(s)?.weight(tier);
    award(s, Role::InferenceNode, node, units.saturating_mul(weight))
}

/// A convicted node loses this epoch's points: the performance pool pays verified work only.
pub fn forfeit(s: &mut Overlay, role: Role, who: &Address) {
    s.delete(k::points(role, who));
}

/// Every (role, address, points) of this epoch, in key order.
pub fn points(s: &Overlay) -> Result<Vec<(Role, Address, u64)>, LedgerError> {
    let mut out = Vec::new();
    for (key, v) in s.prefix(k::POINTS_PREFIX)? {
        let corrupt = |reason: &str| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: reason.into(),
        };
        let rest = &key[k::POINTS_PREFIX.len()..];
        let slash = rest
            .iter()
            .position(|b| *b == b'/')
            .ok_or_else(|| corrupt("no role"))?;
        let role = match &rest[..slash] {
            r if r == Role::InferenceNode.as_str().as_bytes() => Role::InferenceNode,
            r if r == Role::DataNode.as_str().as_bytes() => Role::DataNode,
            _ => return Err(corrupt("unknown role")),
        };
        let addr = <[u8; 20]>::try_from(&rest[slash + 1..]).map_err(|_| corrupt("address"))?;
        let p: u64 = borsh::from_slice(&v).map_err(|e| corrupt(&e.to_string()))?;
        out.push((role, Address(addr), p));
    }
    Ok(out)
}

/// Clear every point (the epoch was paid).
pub fn clear_points(s: &mut Overlay) -> Result<(), LedgerError> {
    for (key, _) in s.prefix(k::POINTS_PREFIX)? {
        s.delete(key);
    }
    Ok(())
}

/// Pool = commission owed + delegators' outstanding rewards + the performance pool + the
/// carry.
pub fn check_pool(s: &Overlay) -> Result<(), LedgerError> {
    let mut total: u128 = performance_pool(s)?
        .0
        .checked_add(carry(s)?.0)
        .ok_or_else(|| inv("reward pool", "overflow"))?;
    for prefix in [k::COMMISSION_PREFIX, k::OUTSTANDING_PREFIX] {
        for (key, v) in s.prefix(prefix)? {
            let a: Amount = borsh::from_slice(&v).map_err(|e| LedgerError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: e.to_string(),
            })?;
            total = total
                .checked_add(a.0)
                .ok_or_else(|| inv("reward pool", "overflow"))?;
        }
    }
    let p = pool(s)?;
    if p.0 != total {
        return Err(LedgerError::Invariant(format!(
            "reward pool is {p} but commission, outstanding rewards and the performance pool \
             hold {total}"
        )));
    }
    Ok(())
}
