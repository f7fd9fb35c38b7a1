//! Staking: validators and delegation, role bonds (inference and data nodes), unbonding with a
//! delay during which stake stays slashable, jail and unjail, double-sign evidence and slashing,
//! and the consensus validator set derived from stake.
//!
//! Delegation uses shares: a validator holds `tokens` and has issued `shares`; a delegator owns
//! shares, worth `shares * tokens / total_shares`. A slash lowers `tokens` only, so every
//! delegator loses the same fraction, in O(1). Integer division rounds toward the validator
//! (a delegator may get up to one base unit less), never creating value.

use super::{accounts, read, write};
use super::{TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::genesis::GenesisValidator;
use crate::keys::{self, staking as k};
use crate::params::StakingParams;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::{Address, Amount, DoubleSignEvidence, PublicKey, Role};
use serde::{Deserialize, Serialize};

/// Shared by every component ([`super::BlockCtx`]); re-exported here for older paths.
pub use super::BlockCtx;

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ValidatorInfo {
    pub operator: Address,
    pub consensus_key: PublicKey,
    pub name: String,
    /// Bonded tokens (self-delegation plus delegations, after slashes).
    pub tokens: Amount,
    /// Delegation shares issued.
    pub shares: u128,
    pub jailed: bool,
    pub jailed_until_ms: u64,
    pub created_height: u64,
    /// Checked against the beacon of every block it proposes.
    pub vrf_key: opal_types::vrf::VrfPublicKey,
}

/// A member of the consensus validator set (in `opal-types`, so light clients decode it too).
pub use opal_types::validator::ActiveValidator;

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StakeSource {
    Validator { operator: Address },
    Role { role: Role },
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct UnbondingEntry {
    pub owner: Address,
    pub source: StakeSource,
    pub amount: Amount,
    pub creation_height: u64,
    pub completion_ms: u64,
}

fn ovf<T>(v: Option<T>) -> Result<T, TxError> {
    v.ok_or(TxError::Overflow)
}

pub fn params(s: &Overlay) -> Result<StakingParams, LedgerError> {
    super::required(s, k::PARAMS, "staking params")
}

pub fn validator(s: &Overlay, operator: &Address) -> Result<Option<ValidatorInfo>, LedgerError> {
    read(s, &k::validator(operator))
}

pub fn validators(s: &Overlay) -> Result<Vec<ValidatorInfo>, LedgerError> {
    super::read_all(s, k::VALIDATOR_PREFIX)
}

pub fn active_set(s: &Overlay) -> Result<Vec<ActiveValidator>, LedgerError> {
    Ok(read(s, keys::VALIDATORS)?.unwrap_or_default())
}

/// Take up to `amount` of a validator's bonded tokens for a missed duty (an audit assigned to
/// it that nobody resolved in time); no jail. Returns what was taken: the caller credits it
/// (to the treasury), so no value is created or destroyed.
pub fn penalize(
    s: &mut Overlay,
    operator: &Address,
    amount: Amount,
) -> Result<Amount, LedgerError> {
    let Some(mut v) = validator(s, operator)? else {
        return Ok(Amount::ZERO);
    };
    let take = if v.tokens < amount { v.tokens } else { amount };
    if take == Amount::ZERO {
        return Ok(take);
    }
    v.tokens = Amount(v.tokens.0 - take.0);
    sub_pool(s, k::BONDED_POOL, take)?;
    write(s, &k::validator(operator), &v);
    mark_set_dirty(s);
    Ok(take)
}

pub fn delegation_shares(
    s: &Overlay,
    validator: &Address,
    delegator: &Address,
) -> Result<u128, LedgerError> {
    Ok(read(s, &k::delegation(validator, delegator))?.unwrap_or(0))
}

/// What a delegator's shares are worth now.
pub fn delegation_value(v: &ValidatorInfo, shares: u128) -> Amount {
    if v.shares == 0 {
        return Amount::ZERO;
    }
    // shares <= v.shares, so shares * tokens / v.shares <= tokens: no overflow of the result;
    // the product is checked.
    Amount(
        shares
            .checked_mul(v.tokens.0)
            .map(|p| p / v.shares)
            .unwrap_or(v.tokens.0),
    )
}

/// Every delegation as (validator operator, delegator, shares), in key order. A validator's
/// self-delegation has `delegator == operator`. O(delegations): for governance tallies, not
/// for every block.
pub fn all_delegations(s: &Overlay) -> Result<Vec<(Address, Address, u128)>, LedgerError> {
    let prefix = k::DELEGATION_PREFIX;
    s.prefix(prefix)?
        .into_iter()
        .map(|(key, v)| {
            let corrupt = |reason: String| LedgerError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason,
            };
            let rest = &key[prefix.len()..];
            let (Ok(val), Ok(del)) = (
                <[u8; 20]>::try_from(rest.get(..20).unwrap_or_default()),
                <[u8; 20]>::try_from(rest.get(20..).unwrap_or_default()),
            ) else {
                return Err(corrupt("delegation key is not two addresses".into()));
            };
            let shares: u128 = borsh::from_slice(&v).map_err(|e| corrupt(e.to_string()))?;
            Ok((Address(val), Address(del), shares))
        })
        .collect()
}

/// The validators `delegator` holds shares in, with its shares, in operator order.
/// O(its delegations), through the `delegation_of` index.
pub fn delegations_of(
    s: &Overlay,
    delegator: &Address,
) -> Result<Vec<(Address, u128)>, LedgerError> {
    let prefix = k::delegations_of_prefix(delegator);
    let mut out = Vec::new();
    for (key, _) in s.prefix(&prefix)? {
        let op = <[u8; 20]>::try_from(&key[prefix.len()..]).map_err(|_| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: "delegation index key is not an address".into(),
        })?;
        let op = Address(op);
        out.push((op, delegation_shares(s, &op, delegator)?));
    }
    Ok(out)
}

/// The delegation index matches the delegations: one `delegation_of` entry per delegation,
/// no more (checked with the supply invariant).
pub fn check_delegation_index(s: &Overlay) -> Result<(), LedgerError> {
    let all = all_delegations(s)?;
    for (op, del, _) in &all {
        if s.get(&k::delegation_of(del, op))?.is_none() {
            return Err(LedgerError::Invariant(format!(
                "delegation of {del} to {op} is missing from the index"
            )));
        }
    }
    let indexed = s.prefix(k::DELEGATION_OF_PREFIX)?.len();
    if indexed != all.len() {
        return Err(LedgerError::Invariant(format!(
            "the delegation index holds {indexed} entries for {} delegations",
            all.len()
        )));
    }
    Ok(())
}

/// Whether `who` has stake that votes: it operates a validator with tokens, or holds
/// delegation shares in one. O(its delegations).
pub fn has_voting_stake(s: &Overlay, who: &Address) -> Result<bool, LedgerError> {
    for (op, shares) in delegations_of(s, who)? {
        if shares > 0 && validator(s, &op)?.is_some_and(|v| !v.tokens.is_zero()) {
            return Ok(true);
        }
    }
    Ok(validator(s, who)?.is_some_and(|v| !v.tokens.is_zero()))
}

pub fn role_bond(s: &Overlay, role: Role, who: &Address) -> Result<Amount, LedgerError> {
    Ok(read(s, &k::role_bond(role, who))?.unwrap_or_default())
}

pub fn pool(s: &Overlay, key: &[u8]) -> Result<Amount, LedgerError> {
    Ok(read(s, key)?.unwrap_or_default())
}

fn add_pool(
    s: &mut Overlay,
    key: &[u8],
    amount: Amount,
) -> Result<Result<(), TxError>, LedgerError> {
    let p = tx_try!(pool(s, key)?
        .checked_add(amount)
        .map_err(|_| TxError::Overflow));
    write(s, key, &p);
    Ok(Ok(()))
}

fn sub_pool(s: &mut Overlay, key: &[u8], amount: Amount) -> Result<(), LedgerError> {
    let p = pool(s, key)?.checked_sub(amount).map_err(|e| {
        LedgerError::Invariant(format!("pool {}: {e}", String::from_utf8_lossy(key)))
    })?;
    write(s, key, &p);
    Ok(())
}

fn mark_set_dirty(s: &mut Overlay) {
    write(s, k::SET_DIRTY, &true);
}

fn min_for_role(p: &StakingParams, role: Role) -> Amount {
    match role {
        Role::InferenceNode => p.min_inference_node_stake,
        Role::DataNode => p.min_data_node_stake,
    }
}

/// Genesis: a validator with its self-delegated stake (minted into the bonded pool).
pub fn genesis_validator(s: &mut Overlay, g: &GenesisValidator) -> Result<(), LedgerError> {
    let operator = g.operator();
    let v = ValidatorInfo {
        operator,
        consensus_key: g.public_key,
        name: g.name.clone(),
        tokens: g.stake,
        shares: g.stake.0,
        jailed: false,
        jailed_until_ms: 0,
        created_height: 0,
        vrf_key: g.vrf_key,
    };
    write(s, &k::validator(&operator), &v);
    write(s, &k::by_consensus_key(&g.public_key), &operator);
    write(s, &k::delegation(&operator, &operator), &g.stake.0);
    write(s, &k::delegation_of(&operator, &operator), &());
    add_pool(s, k::BONDED_POOL, g.stake)?.map_err(|e| LedgerError::Genesis(e.to_string()))
}

fn valid_name(name: &str) -> Result<(), TxError> {
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(TxError::InvalidName {
            reason: "1-64 printable characters".into(),
        });
    }
    Ok(())
}

/// The keys a new validator registers: its consensus key and the VRF key of the same holder.
pub struct ValidatorKeys {
    pub consensus: PublicKey,
    pub vrf: opal_types::vrf::VrfPublicKey,
}

pub fn create_validator(
    s: &mut Overlay,
    ctx: &BlockCtx,
    operator: &Address,
    keys: ValidatorKeys,
    name: &str,
    amount: Amount,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let ValidatorKeys {
        consensus: consensus_key,
        vrf: vrf_key,
    } = keys;
    let p = params(s)?;
    tx_try!(valid_name(name));
    if validator(s, operator)?.is_some() {
        return Ok(Err(TxError::ValidatorExists {
            operator: *operator,
        }));
    }
    if read::<Address>(s, &k::by_consensus_key(&consensus_key))?.is_some() {
        return Ok(Err(TxError::ConsensusKeyInUse));
    }
    if amount < p.min_validator_stake {
        return Ok(Err(TxError::BelowMinimumStake {
            min: p.min_validator_stake,
            got: amount,
        }));
    }
    tx_try!(accounts::debit(s, operator, amount)?);
    tx_try!(add_pool(s, k::BONDED_POOL, amount)?);
    let v = ValidatorInfo {
        operator: *operator,
        consensus_key,
        name: name.to_string(),
        tokens: amount,
        shares: amount.0,
        jailed: false,
        jailed_until_ms: 0,
        created_height: ctx.height,
        vrf_key,
    };
    write(s, &k::validator(operator), &v);
    write(s, &k::by_consensus_key(&consensus_key), operator);
    write(s, &k::delegation(operator, operator), &amount.0);
    write(s, &k::delegation_of(operator, operator), &());
    events.push(Event::ValidatorCreated {
        operator: *operator,
        consensus_key,
        amount,
    });
    Ok(Ok(()))
}

pub fn delegate(
    s: &mut Overlay,
    delegator: &Address,
    op: &Address,
    amount: Amount,
    events: &mut Vec<Event>,
) -> TxOutcome {
    if amount.is_zero() {
        return Ok(Err(TxError::ZeroAmount));
    }
    let Some(mut v) = validator(s, op)? else {
        return Ok(Err(TxError::UnknownValidator { validator: *op }));
    };
    if v.tokens.is_zero() && v.shares > 0 {
        return Ok(Err(TxError::ValidatorWipedOut { validator: *op }));
    }
    let new_shares = if v.shares == 0 {
        amount.0
    } else {
        tx_try!(ovf(amount.0.checked_mul(v.shares))) / v.tokens.0
    };
    if new_shares == 0 {
        return Ok(Err(TxError::BelowMinimumStake {
            min: Amount(1),
            got: amount,
        }));
    }
    tx_try!(accounts::debit(s, delegator, amount)?);
    tx_try!(add_pool(s, k::BONDED_POOL, amount)?);
    v.tokens = tx_try!(v.tokens.checked_add(amount).map_err(|_| TxError::Overflow));
    v.shares = tx_try!(ovf(v.shares.checked_add(new_shares)));
    let mine = delegation_shares(s, op, delegator)?;
    // Pay what the delegation earned at its old shares before they change.
    super::reward_pool::settle(s, op, delegator, mine)?;
    write(
        s,
        &k::delegation(op, delegator),
        &tx_try!(ovf(mine.checked_add(new_shares))),
    );
    write(s, &k::delegation_of(delegator, op), &());
    write(s, &k::validator(op), &v);
    events.push(Event::Delegated {
        delegator: *delegator,
        validator: *op,
        amount,
        shares: new_shares,
    });
    Ok(Ok(()))
}

fn next_seq(s: &mut Overlay) -> Result<u64, LedgerError> {
    let n: u64 = read(s, k::UNBONDING_SEQ)?.unwrap_or(0);
    write(s, k::UNBONDING_SEQ, &(n + 1));
    Ok(n)
}

fn queue_unbonding(
    s: &mut Overlay,
    ctx: &BlockCtx,
    entry_owner: &Address,
    source: StakeSource,
    amount: Amount,
) -> Result<Result<u64, TxError>, LedgerError> {
    let p = params(s)?;
    let completion_ms = match ctx.time_ms.checked_add(p.unbonding_time_ms) {
        Some(t) => t,
        None => return Ok(Err(TxError::Overflow)),
    };
    let seq = next_seq(s)?;
    let e = UnbondingEntry {
        owner: *entry_owner,
        source,
        amount,
        creation_height: ctx.height,
        completion_ms,
    };
    write(s, &k::unbonding(completion_ms, seq), &e);
    tx_try!(add_pool(s, k::UNBONDING_POOL, amount)?);
    Ok(Ok(completion_ms))
}

pub fn undelegate(
    s: &mut Overlay,
    ctx: &BlockCtx,
    delegator: &Address,
    op: &Address,
    amount: Amount,
    events: &mut Vec<Event>,
) -> TxOutcome {
    if amount.is_zero() {
        return Ok(Err(TxError::ZeroAmount));
    }
    let Some(mut v) = validator(s, op)? else {
        return Ok(Err(TxError::UnknownValidator { validator: *op }));
    };
    let mine = delegation_shares(s, op, delegator)?;
    let have = delegation_value(&v, mine);
    if amount > have || v.tokens.is_zero() {
        return Ok(Err(TxError::InsufficientStake { have, want: amount }));
    }
    // Pay what the delegation earned at its old shares before they change.
    super::reward_pool::settle(s, op, delegator, mine)?;
    // Shares to burn, rounded up (toward the validator).
    let num = tx_try!(ovf(amount.0.checked_mul(v.shares)));
    let burn = num.div_ceil(v.tokens.0).min(mine);
    v.tokens = tx_try!(v.tokens.checked_sub(amount).map_err(|_| TxError::Overflow));
    v.shares -= burn;
    let left = mine - burn;
    if left == 0 {
        s.delete(k::delegation(op, delegator));
        s.delete(k::delegation_of(delegator, op));
    } else {
        write(s, &k::delegation(op, delegator), &left);
    }
    write(s, &k::validator(op), &v);
    sub_pool(s, k::BONDED_POOL, amount)?;
    let completion_ms = tx_try!(queue_unbonding(
        s,
        ctx,
        delegator,
        StakeSource::Validator { operator: *op },
        amount
    )?);
    if v.tokens < params(s)?.min_validator_stake {
        mark_set_dirty(s);
    }
    events.push(Event::Undelegated {
        delegator: *delegator,
        validator: *op,
        amount,
        completion_ms,
    });
    Ok(Ok(()))
}

pub fn bond_role(
    s: &mut Overlay,
    who: &Address,
    role: Role,
    amount: Amount,
    events: &mut Vec<Event>,
) -> TxOutcome {
    if amount.is_zero() {
        return Ok(Err(TxError::ZeroAmount));
    }
    let p = params(s)?;
    let total = tx_try!(role_bond(s, role, who)?
        .checked_add(amount)
        .map_err(|_| TxError::Overflow));
    let min = min_for_role(&p, role);
    if total < min {
        return Ok(Err(TxError::BelowMinimumStake { min, got: total }));
    }
    tx_try!(accounts::debit(s, who, amount)?);
    tx_try!(add_pool(s, k::BONDED_POOL, amount)?);
    write(s, &k::role_bond(role, who), &total);
    events.push(Event::RoleBonded {
        who: *who,
        role,
        amount,
        total,
    });
    Ok(Ok(()))
}

/// Take up to `amount` from `who`'s bond for `role`, then from its unbonding stake of that role;
/// returns what was taken (it leaves the staking pools; the caller credits it elsewhere).
pub fn slash_role(
    s: &mut Overlay,
    role: Role,
    who: &Address,
    amount: Amount,
) -> Result<Amount, LedgerError> {
    let bond = role_bond(s, role, who)?;
    let from_bond = if bond < amount { bond } else { amount };
    if !from_bond.is_zero() {
        let left = Amount(bond.0 - from_bond.0);
        if left.is_zero() {
            s.delete(k::role_bond(role, who));
        } else {
            write(s, &k::role_bond(role, who), &left);
        }
        sub_pool(s, k::BONDED_POOL, from_bond)?;
    }
    let mut taken = from_bond;
    for (key, bytes) in s.prefix(k::UNBONDING_QUEUE_PREFIX)? {
        if taken >= amount {
            break;
        }
        let mut e: UnbondingEntry =
            borsh::from_slice(&bytes).map_err(|er| LedgerError::Corrupt {
                key: "staking/unbq".into(),
                reason: er.to_string(),
            })?;
        if e.owner != *who || e.source != (StakeSource::Role { role }) {
            continue;
        }
        let want = Amount(amount.0 - taken.0);
        let cut = if e.amount < want { e.amount } else { want };
        e.amount = Amount(e.amount.0 - cut.0);
        write(s, &key, &e);
        sub_pool(s, k::UNBONDING_POOL, cut)?;
        taken = Amount(taken.0 + cut.0);
    }
    Ok(taken)
}

pub fn unbond_role(
    s: &mut Overlay,
    ctx: &BlockCtx,
    who: &Address,
    role: Role,
    amount: Amount,
    events: &mut Vec<Event>,
) -> TxOutcome {
    if amount.is_zero() {
        return Ok(Err(TxError::ZeroAmount));
    }
    let p = params(s)?;
    let have = role_bond(s, role, who)?;
    let Ok(left) = have.checked_sub(amount) else {
        return Ok(Err(TxError::InsufficientStake { have, want: amount }));
    };
    let min = min_for_role(&p, role);
    if !left.is_zero() && left < min {
        return Ok(Err(TxError::BelowMinimumStake { min, got: left }));
    }
    if left.is_zero() {
        s.delete(k::role_bond(role, who));
    } else {
        write(s, &k::role_bond(role, who), &left);
    }
    sub_pool(s, k::BONDED_POOL, amount)?;
    let completion_ms = tx_try!(queue_unbonding(
        s,
        ctx,
        who,
        StakeSource::Role { role },
        amount
    )?);
    events.push(Event::RoleUnbonding {
        who: *who,
        role,
        amount,
        completion_ms,
    });
    Ok(Ok(()))
}

pub fn unjail(
    s: &mut Overlay,
    ctx: &BlockCtx,
    operator: &Address,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let p = params(s)?;
    let Some(mut v) = validator(s, operator)? else {
        return Ok(Err(TxError::UnknownValidator {
            validator: *operator,
        }));
    };
    if !v.jailed {
        return Ok(Err(TxError::NotJailed));
    }
    if ctx.time_ms < v.jailed_until_ms {
        return Ok(Err(TxError::StillJailed {
            until_ms: v.jailed_until_ms,
        }));
    }
    if v.tokens < p.min_validator_stake {
        return Ok(Err(TxError::BelowMinimumStake {
            min: p.min_validator_stake,
            got: v.tokens,
        }));
    }
    v.jailed = false;
    write(s, &k::validator(operator), &v);
    mark_set_dirty(s);
    events.push(Event::Unjailed {
        validator: *operator,
    });
    Ok(Ok(()))
}

fn bps(amount: Amount, bps: u32) -> Result<Amount, TxError> {
    amount.checked_bps(bps).map_err(|_| TxError::Overflow)
}

/// Verify double-sign evidence and slash: the validator and the stake unbonding from it since
/// the infraction lose `slash_double_sign_bps`; the reporter gets `evidence_reward_bps` of that,
/// the treasury the rest; the validator is jailed and leaves the set at the end of the block.
pub fn submit_evidence(
    s: &mut Overlay,
    ctx: &BlockCtx,
    reporter: &Address,
    ev: &DoubleSignEvidence,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let p = params(s)?;
    if let Err(e) = ev.validate(&ctx.chain_id) {
        return Ok(Err(TxError::InvalidEvidence {
            reason: e.to_string(),
        }));
    }
    let infraction = ev.a.height;
    if infraction > ctx.height || ctx.height - infraction > p.max_evidence_age_blocks {
        return Ok(Err(TxError::EvidenceTooOld {
            height: infraction,
            max_age: p.max_evidence_age_blocks,
        }));
    }
    let id = ev.id();
    if s.get(&k::evidence(&id))?.is_some() {
        return Ok(Err(TxError::DuplicateEvidence));
    }
    let Some(operator) = read::<Address>(s, &k::by_consensus_key(&ev.a.validator))? else {
        return Ok(Err(TxError::InvalidEvidence {
            reason: format!("no validator has consensus key {}", ev.a.validator),
        }));
    };
    let mut v = validator(s, &operator)?.ok_or_else(|| LedgerError::Corrupt {
        key: "staking/valkey".into(),
        reason: format!("index points to missing validator {operator}"),
    })?;
    // The validator's bonded tokens.
    let from_validator = tx_try!(bps(v.tokens, p.slash_double_sign_bps));
    v.tokens = tx_try!(v
        .tokens
        .checked_sub(from_validator)
        .map_err(|_| TxError::Overflow));
    sub_pool(s, k::BONDED_POOL, from_validator)?;
    // Stake that started unbonding from it at or after the infraction.
    let mut from_unbonding = Amount::ZERO;
    for (key, bytes) in s.prefix(k::UNBONDING_QUEUE_PREFIX)? {
        let mut e: UnbondingEntry =
            borsh::from_slice(&bytes).map_err(|er| LedgerError::Corrupt {
                key: "staking/unbq".into(),
                reason: er.to_string(),
            })?;
        if e.source != (StakeSource::Validator { operator }) || e.creation_height < infraction {
            continue;
        }
        let cut = tx_try!(bps(e.amount, p.slash_double_sign_bps));
        e.amount = tx_try!(e.amount.checked_sub(cut).map_err(|_| TxError::Overflow));
        from_unbonding = tx_try!(from_unbonding
            .checked_add(cut)
            .map_err(|_| TxError::Overflow));
        write(s, &key, &e);
    }
    sub_pool(s, k::UNBONDING_POOL, from_unbonding)?;
    let total = tx_try!(from_validator
        .checked_add(from_unbonding)
        .map_err(|_| TxError::Overflow));
    let reward = tx_try!(bps(total, p.evidence_reward_bps));
    let to_treasury = tx_try!(total.checked_sub(reward).map_err(|_| TxError::Overflow));
    tx_try!(accounts::credit(s, reporter, reward)?);
    accounts::credit_treasury(s, to_treasury)?;
    v.jailed = true;
    v.jailed_until_ms = ctx.time_ms.saturating_add(p.jail_time_ms);
    write(s, &k::validator(&operator), &v);
    write(s, &k::evidence(&id), &ctx.height);
    mark_set_dirty(s);
    events.push(Event::Slashed {
        validator: operator,
        amount: total,
        infraction_height: infraction,
        reporter: *reporter,
        reporter_reward: reward,
    });
    events.push(Event::Jailed {
        validator: operator,
        until_ms: v.jailed_until_ms,
    });
    Ok(Ok(()))
}

/// End of block: pay out matured unbonding entries; recompute the validator set at epoch
/// boundaries or when something jailed or unjailed a validator.
pub fn end_block(
    s: &mut Overlay,
    ctx: &BlockCtx,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    let p = params(s)?;
    for (key, bytes) in s.prefix(k::UNBONDING_QUEUE_PREFIX)? {
        let e: UnbondingEntry = borsh::from_slice(&bytes).map_err(|er| LedgerError::Corrupt {
            key: "staking/unbq".into(),
            reason: er.to_string(),
        })?;
        if e.completion_ms > ctx.time_ms {
            break; // keys are ordered by completion time
        }
        accounts::credit(s, &e.owner, e.amount)?
            .map_err(|er| LedgerError::Invariant(format!("unbonding payout: {er}")))?;
        sub_pool(s, k::UNBONDING_POOL, e.amount)?;
        s.delete(key);
        events.push(Event::UnbondingCompleted {
            owner: e.owner,
            amount: e.amount,
        });
    }
    let dirty: bool = read(s, k::SET_DIRTY)?.unwrap_or(false);
    if dirty || ctx.height.is_multiple_of(p.epoch_blocks) {
        update_validator_set(s, &p, ctx.height, events)?;
    }
    Ok(())
}

/// The voting power `tokens` give at `p.power_reduction` tokens per unit.
pub fn power_of(tokens: Amount, p: &StakingParams) -> u128 {
    tokens.0 / p.power_reduction.0.max(1)
}

/// The set that voted on block `height`, read during block `height + 1` (in the state after
/// `height`): the set in force unless it changed at the end of `height` itself.
pub fn voted_on(s: &Overlay, height: u64) -> Result<Vec<ActiveValidator>, LedgerError> {
    if read::<u64>(s, k::SET_CHANGED_AT)? == Some(height) {
        return Ok(read(s, k::PREV_SET)?.unwrap_or_default());
    }
    active_set(s)
}

/// Jail `op` for downtime: slash `downtime_slash_bps` of its bonded tokens to the treasury and
/// jail it for `downtime_jail_ms` (it may `Unjail` after). Returns what was slashed.
pub fn jail_for_downtime(
    s: &mut Overlay,
    ctx: &BlockCtx,
    op: &Address,
    p: &StakingParams,
) -> Result<(Amount, u64), LedgerError> {
    let Some(mut v) = validator(s, op)? else {
        return Ok((Amount::ZERO, 0));
    };
    let cut = v
        .tokens
        .checked_bps(p.downtime_slash_bps)
        .map_err(|e| LedgerError::Invariant(format!("downtime slash: {e}")))?;
    v.tokens = Amount(v.tokens.0 - cut.0);
    sub_pool(s, k::BONDED_POOL, cut)?;
    accounts::credit_treasury(s, cut)?;
    v.jailed = true;
    v.jailed_until_ms = ctx.time_ms.saturating_add(p.downtime_jail_ms);
    let until = v.jailed_until_ms;
    write(s, &k::validator(op), &v);
    mark_set_dirty(s);
    Ok((cut, until))
}

/// The active set: unjailed validators with at least the minimum stake, by power (tokens /
/// power_reduction) then operator address, at most `max_validators`. If that would leave no one,
/// the previous set stays (the chain must not stop for want of validators).
pub fn update_validator_set(
    s: &mut Overlay,
    p: &StakingParams,
    height: u64,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    let mut set: Vec<ActiveValidator> = validators(s)?
        .into_iter()
        .filter(|v| !v.jailed && v.tokens >= p.min_validator_stake)
        .map(|v| ActiveValidator {
            name: v.name,
            operator: v.operator,
            public_key: v.consensus_key,
            power: u64::try_from(power_of(v.tokens, p)).unwrap_or(u64::MAX),
            vrf_key: v.vrf_key,
        })
        .filter(|v| v.power > 0)
        .collect();
    set.sort_by(|a, b| b.power.cmp(&a.power).then(a.operator.cmp(&b.operator)));
    set.truncate(p.max_validators as usize);
    // Keep the total power well inside u64 for the engine's 2/3 arithmetic.
    let total: u128 = set.iter().map(|v| v.power as u128).sum();
    if total > (u64::MAX / 4) as u128 {
        return Err(LedgerError::Invariant(
            "total voting power too large; raise power_reduction".into(),
        ));
    }
    if read::<bool>(s, k::SET_DIRTY)?.is_some() {
        s.delete(k::SET_DIRTY.to_vec());
    }
    if set.is_empty() {
        return Ok(());
    }
    let old = active_set(s)?;
    if old != set {
        events.push(Event::ValidatorSetChanged {
            validators: set.len() as u32,
            total_power: total as u64,
        });
        // Who voted on this block, for liveness in the next one (`voted_on`).
        write(s, k::PREV_SET, &old);
        write(s, k::SET_CHANGED_AT, &height);
        write(s, keys::VALIDATORS, &set);
    }
    Ok(())
}

/// The `staking` component ([`super::Component`]).
pub struct Staking;

impl super::Component for Staking {
    fn name(&self) -> &'static str {
        "staking"
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        let (ctx, sender, action) = (tx.ctx, tx.sender, tx.action);
        use opal_types::Action as A;
        match action {
            A::CreateValidator {
                consensus_key,
                name,
                amount,
                vrf_key,
            } => create_validator(
                s,
                ctx,
                sender,
                ValidatorKeys {
                    consensus: *consensus_key,
                    vrf: *vrf_key,
                },
                name,
                *amount,
                ev,
            ),
            A::Delegate { validator, amount } => delegate(s, sender, validator, *amount, ev),
            A::Undelegate { validator, amount } => {
                undelegate(s, ctx, sender, validator, *amount, ev)
            }
            A::BondRole { role, amount } => bond_role(s, sender, *role, *amount, ev),
            A::UnbondRole { role, amount } => unbond_role(s, ctx, sender, *role, *amount, ev),
            A::Unjail => unjail(s, ctx, sender, ev),
            A::SubmitEvidence { evidence } => submit_evidence(s, ctx, sender, evidence, ev),
            other => super::not_routed_here(self.name(), other),
        }
    }

    fn init_chain(&self, s: &mut Overlay, g: &crate::Genesis) -> super::Hook {
        super::write(s, k::PARAMS, &g.staking);
        for v in &g.validators {
            genesis_validator(s, v)?;
        }
        update_validator_set(s, &g.staking, 0, &mut Vec::new())?;
        if active_set(s)?.is_empty() {
            return Err(LedgerError::Genesis(
                "no validator has any voting power (stake below power_reduction?)".into(),
            ));
        }
        Ok(())
    }

    fn end_block(&self, s: &mut Overlay, b: super::BlockFrame, ev: &mut Vec<Event>) -> super::Hook {
        end_block(s, b.ctx, ev)
    }
}
