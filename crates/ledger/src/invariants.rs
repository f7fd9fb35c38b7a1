//! Invariants that tests (and the node, when its config sets `check_invariants`) check after
//! every block.

use crate::components::{
    accounts::Account, fees, governance, inference, market, read, reward_pool, rewards, shares,
    staking, verification,
};
use crate::error::LedgerError;
use crate::keys;
use opal_state::Overlay;
use opal_types::Amount;

/// The sum of every account balance plus the fee pool, the bonded and unbonding pools, the
/// escrow pool, the held pool, governance deposits, the reward pool, the share pools, the market's escrow and the treasury equals the recorded total supply; and the staking pools equal what they are made of.
pub fn check_supply(s: &Overlay) -> Result<Amount, LedgerError> {
    check_staking_pools(s)?;
    check_escrow_pool(s)?;
    verification::check_held_pool(s)?;
    governance::check_deposit_pool(s)?;
    reward_pool::check_pool(s)?;
    staking::check_delegation_index(s)?;
    rewards::check_emission(s)?;
    shares::check_pools(s)?;
    market::check_market(s)?;
    let supply: Amount = read(s, keys::SUPPLY)?.unwrap_or_default();
    let treasury = crate::components::accounts::treasury(s)?;
    let add = |a: Amount, b: Amount| {
        a.checked_add(b)
            .map_err(|e| LedgerError::Invariant(e.to_string()))
    };
    let mut sum = fees::pool(s)?;
    sum = add(sum, treasury)?;
    sum = add(sum, staking::pool(s, keys::staking::BONDED_POOL)?)?;
    sum = add(sum, staking::pool(s, keys::staking::UNBONDING_POOL)?)?;
    sum = add(sum, inference::escrow_pool(s)?)?;
    sum = add(sum, verification::held_pool(s)?)?;
    sum = add(sum, governance::deposit_pool(s)?)?;
    sum = add(sum, reward_pool::pool(s)?)?;
    sum = add(sum, shares::pool_total(s)?)?;
    sum = add(sum, market::pool(s)?)?;
    for (k, v) in s.prefix(keys::accounts::PREFIX)? {
        let a: Account = borsh::from_slice(&v).map_err(|e| LedgerError::Corrupt {
            key: hex_key(&k),
            reason: e.to_string(),
        })?;
        sum = sum
            .checked_add(a.balance)
            .map_err(|e| LedgerError::Invariant(e.to_string()))?;
    }
    if sum != supply {
        return Err(LedgerError::Invariant(format!(
            "total supply is {supply} but balances and pools sum to {sum}"
        )));
    }
    Ok(supply)
}

fn hex_key(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bonded pool = validators' tokens + role bonds; unbonding pool = the unbonding entries.
pub fn check_staking_pools(s: &Overlay) -> Result<(), LedgerError> {
    let bad = |what: &str, e: String| LedgerError::Corrupt {
        key: what.into(),
        reason: e,
    };
    let mut bonded: u128 = 0;
    for v in staking::validators(s)? {
        bonded += v.tokens.0;
    }
    for (_, b) in s.prefix(b"staking/role/")? {
        let a: Amount = borsh::from_slice(&b).map_err(|e| bad("staking/role", e.to_string()))?;
        bonded += a.0;
    }
    let mut unbonding: u128 = 0;
    for (_, b) in s.prefix(keys::staking::UNBONDING_QUEUE_PREFIX)? {
        let e: staking::UnbondingEntry =
            borsh::from_slice(&b).map_err(|e| bad("staking/unbq", e.to_string()))?;
        unbonding += e.amount.0;
    }
    let bp = staking::pool(s, keys::staking::BONDED_POOL)?;
    let up = staking::pool(s, keys::staking::UNBONDING_POOL)?;
    if bp.0 != bonded || up.0 != unbonding {
        return Err(LedgerError::Invariant(format!(
            "staking pools: bonded {bp} vs {bonded} held, unbonding {up} vs {unbonding} queued"
        )));
    }
    Ok(())
}

/// Escrow pool = the sum of every escrow balance.
pub fn check_escrow_pool(s: &Overlay) -> Result<(), LedgerError> {
    let mut total: u128 = 0;
    for (k, v) in s.prefix(keys::inference::ESCROW_PREFIX)? {
        let e: inference::Escrow = borsh::from_slice(&v).map_err(|e| LedgerError::Corrupt {
            key: hex_key(&k),
            reason: e.to_string(),
        })?;
        total = total
            .checked_add(e.balance.0)
            .ok_or_else(|| LedgerError::Invariant("escrow sum overflows".into()))?;
    }
    let pool = inference::escrow_pool(s)?;
    if pool.0 != total {
        return Err(LedgerError::Invariant(format!(
            "escrow pool is {pool} but escrows hold {total}"
        )));
    }
    Ok(())
}
