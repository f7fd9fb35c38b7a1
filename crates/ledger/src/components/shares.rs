//! Revenue shares: an asset's owner splits its royalty stream (a model name, all versions, or a
//! dataset) into a fixed number of transferable shares, and from then on every royalty paid to
//! the stream is shared among the holders pro rata (see docs/markets.md).
//!
//! A payout costs O(1) whatever the number of holders: the stream keeps a cumulative count of
//! base units earned per share (`per_share`), and each holding remembers the count when it last
//! changed (`per_share_at`). What a holding earned since is `shares x (per_share -
//! per_share_at)`, folded into `earned` whenever its share count changes or it claims.
//!
//! Exact to the base unit: a payout of `a` with `r` already waiting adds `(a + r) / shares` to
//! `per_share` and leaves `(a + r) mod shares` waiting as the stream's `remainder`, so after
//! payouts summing to `D`, `per_share = floor(D / shares)` and `remainder = D mod shares`.
//! The pool (`shares/pool`) holds every stream's remainder and its holders' unclaimed
//! earnings, and [`check_pools`] checks after every block that they add up, to the unit.
//!
//! Rules (each refusal a typed [`TxError`], changing nothing): only the owner of the name or
//! dataset splits it, once, into 1 to [`MAX_SHARES`] shares; a transfer needs a split stream,
//! a non-zero count and that many shares; a claim needs something earned.

use super::{accounts, read, read_all, registry, write};
use super::{TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::keys::shares as k;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::shares::{RoyaltyStream, MAX_SHARES};
use opal_types::{Action, Address, Amount};
use serde::{Deserialize, Serialize};

/// A royalty stream split into shares.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SharePool {
    pub stream: RoyaltyStream,
    /// The fixed number of shares.
    pub shares: u64,
    /// Base units earned by one share since the split, cumulative.
    pub per_share: u128,
    /// Paid in but not yet a whole base unit per share: it waits for the next payout.
    pub remainder: u128,
    /// Every royalty paid to the stream since the split, and what holders have claimed.
    pub paid_in: Amount,
    pub claimed: Amount,
    /// Holdings with shares or unclaimed earnings.
    pub holders: u64,
    pub split_height: u64,
}

impl SharePool {
    /// What the stream still holds: its remainder and its holders' unclaimed earnings.
    pub fn held(&self) -> u128 {
        self.paid_in.0 - self.claimed.0
    }
}

/// One holder's shares in one stream.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Holding {
    pub shares: u64,
    /// Of `shares`, those locked by resting sell orders on the exchange: they still earn, but
    /// cannot be transferred until the order fills or is cancelled.
    pub locked: u64,
    /// The stream's `per_share` when this holding last changed.
    pub per_share_at: u128,
    /// Earned up to then and not yet claimed.
    pub earned: u128,
}

impl Holding {
    /// What this holding can claim now, in base units.
    pub fn claimable(&self, pool: &SharePool) -> Result<u128, LedgerError> {
        let since = pool
            .per_share
            .checked_sub(self.per_share_at)
            .and_then(|d| d.checked_mul(self.shares as u128))
            .and_then(|d| d.checked_add(self.earned));
        since.ok_or_else(|| {
            LedgerError::Invariant(format!(
                "holding in {} earns more than a u128 (or its checkpoint is ahead)",
                pool.stream
            ))
        })
    }

    /// Fold what the shares earned since the last change into `earned`.
    fn settle(&mut self, pool: &SharePool) -> Result<(), LedgerError> {
        self.earned = self.claimable(pool)?;
        self.per_share_at = pool.per_share;
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.shares == 0 && self.earned == 0
    }
}

pub fn pool_info(s: &Overlay, st: &RoyaltyStream) -> Result<Option<SharePool>, LedgerError> {
    read(s, &k::stream(st))
}

pub fn holding(
    s: &Overlay,
    st: &RoyaltyStream,
    who: &Address,
) -> Result<Option<Holding>, LedgerError> {
    read(s, &k::holding(st, who))
}

/// Every holding of a stream, by holder address.
pub fn holdings(s: &Overlay, st: &RoyaltyStream) -> Result<Vec<(Address, Holding)>, LedgerError> {
    let prefix = k::holdings_prefix(st);
    let mut out = Vec::new();
    for (key, v) in s.prefix(&prefix)? {
        let corrupt = |reason: String| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason,
        };
        let addr: [u8; 20] = key[prefix.len()..]
            .try_into()
            .map_err(|_| corrupt("holding key is not a 20-byte address".into()))?;
        let h = Holding::try_from_slice(&v).map_err(|e| corrupt(e.to_string()))?;
        out.push((Address(addr), h));
    }
    Ok(out)
}

/// Every split stream.
pub fn pools(s: &Overlay) -> Result<Vec<SharePool>, LedgerError> {
    read_all(s, k::STREAM_PREFIX)
}

/// The tokens every share pool holds together.
pub fn pool_total(s: &Overlay) -> Result<Amount, LedgerError> {
    Ok(read(s, k::POOL)?.unwrap_or_default())
}

/// Whether `st`'s royalties go to share holders.
pub fn is_split(s: &Overlay, st: &RoyaltyStream) -> Result<bool, LedgerError> {
    Ok(s.get(&k::stream(st))?.is_some())
}

/// Pay `amount` to `st`'s holders (the caller has taken it from wherever it was). O(1) in the
/// number of holders. A stream that is not split is a node fault: the payout named it because
/// it was split, and a split is never undone.
pub(crate) fn distribute(
    s: &mut Overlay,
    st: &RoyaltyStream,
    amount: Amount,
) -> Result<(), LedgerError> {
    let mut pool = pool_info(s, st)?.ok_or_else(|| {
        LedgerError::Invariant(format!("a payout to {st}, which is not split into shares"))
    })?;
    let overflow = || LedgerError::Invariant(format!("share pool {st} overflows"));
    let due = amount.0.checked_add(pool.remainder).ok_or_else(overflow)?;
    let n = pool.shares as u128;
    pool.per_share = pool.per_share.checked_add(due / n).ok_or_else(overflow)?;
    pool.remainder = due % n;
    pool.paid_in = pool.paid_in.checked_add(amount).map_err(|_| overflow())?;
    write(s, &k::stream(st), &pool);
    let total = pool_total(s)?.checked_add(amount).map_err(|_| overflow())?;
    write(s, k::POOL, &total);
    Ok(())
}

/// The owner of the asset behind a stream, or the refusal for a stream that names nothing.
fn asset_owner(s: &Overlay, st: &RoyaltyStream) -> Result<Result<Address, TxError>, LedgerError> {
    Ok(match st {
        RoyaltyStream::Model(name) => match registry::name_info(s, name)? {
            Some(n) => Ok(n.owner),
            None => Err(TxError::UnknownModel {
                model: name.clone(),
            }),
        },
        RoyaltyStream::Dataset(name) => match registry::dataset(s, name)? {
            Some(d) => Ok(d.owner),
            None => Err(TxError::UnknownDataset { name: name.clone() }),
        },
    })
}

fn put_holding(s: &mut Overlay, pool: &mut SharePool, who: &Address, h: &Holding, was: bool) {
    let key = k::holding(&pool.stream, who);
    if h.is_empty() {
        s.delete(key);
        if was {
            pool.holders -= 1;
        }
    } else {
        write(s, &key, h);
        if !was {
            pool.holders += 1;
        }
    }
}

/// `Action::SplitShares`.
pub fn split(
    s: &mut Overlay,
    height: u64,
    sender: &Address,
    st: &RoyaltyStream,
    shares: u64,
    events: &mut Vec<Event>,
) -> TxOutcome {
    if let Err(reason) = st.check() {
        return Ok(Err(TxError::InvalidName { reason }));
    }
    let owner = tx_try!(asset_owner(s, st)?);
    if owner != *sender {
        return Ok(Err(TxError::NotOwner {
            name: st.to_string(),
            owner,
        }));
    }
    if shares == 0 || shares > MAX_SHARES {
        return Ok(Err(TxError::BadShareCount {
            got: shares,
            max: MAX_SHARES,
        }));
    }
    if is_split(s, st)? {
        return Ok(Err(TxError::AlreadySplit {
            stream: st.to_string(),
        }));
    }
    let mut pool = SharePool {
        stream: st.clone(),
        shares,
        per_share: 0,
        remainder: 0,
        paid_in: Amount::ZERO,
        claimed: Amount::ZERO,
        holders: 0,
        split_height: height,
    };
    let h = Holding {
        shares,
        locked: 0,
        per_share_at: 0,
        earned: 0,
    };
    put_holding(s, &mut pool, sender, &h, false);
    write(s, &k::stream(st), &pool);
    events.push(Event::SharesSplit {
        stream: st.clone(),
        owner: *sender,
        shares,
    });
    Ok(Ok(()))
}

fn split_pool(s: &Overlay, st: &RoyaltyStream) -> Result<Result<SharePool, TxError>, LedgerError> {
    Ok(pool_info(s, st)?.ok_or_else(|| TxError::NotSplit {
        stream: st.to_string(),
    }))
}

/// `Action::TransferShares`. Both holdings are settled first, so what the shares earned
/// before the transfer stays with the sender.
pub fn transfer(
    s: &mut Overlay,
    sender: &Address,
    st: &RoyaltyStream,
    to: &Address,
    shares: u64,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let mut pool = tx_try!(split_pool(s, st)?);
    if shares == 0 {
        return Ok(Err(TxError::ZeroAmount));
    }
    let free = free_shares(s, st, sender)?;
    if free < shares {
        return Ok(Err(TxError::InsufficientShares {
            stream: st.to_string(),
            have: free,
            want: shares,
        }));
    }
    move_shares(s, &mut pool, sender, to, shares, 0)?;
    write(s, &k::stream(st), &pool);
    events.push(Event::SharesTransferred {
        stream: st.clone(),
        from: *sender,
        to: *to,
        shares,
    });
    Ok(Ok(()))
}

/// Shares `who` holds and has not locked in sell orders.
pub fn free_shares(s: &Overlay, st: &RoyaltyStream, who: &Address) -> Result<u64, LedgerError> {
    Ok(holding(s, st, who)?.map_or(0, |h| h.shares - h.locked))
}

/// Move `n` shares from `from` to `to`, `unlock` of them out of `from`'s locked shares (the
/// caller checked `from` has them). Both holdings are settled first, so what the shares
/// earned before stays with `from`. A move to oneself changes nothing but the lock.
fn move_shares(
    s: &mut Overlay,
    pool: &mut SharePool,
    from: &Address,
    to: &Address,
    n: u64,
    unlock: u64,
) -> Result<(), LedgerError> {
    let st = pool.stream.clone();
    let from_had = holding(s, &st, from)?;
    let mut src = from_had.clone().unwrap_or_default();
    if src.shares < n || src.locked < unlock || src.shares - n < src.locked - unlock {
        return Err(LedgerError::Invariant(format!(
            "moving {n} shares of {st} ({unlock} locked) from a holding of {} ({} locked)",
            src.shares, src.locked
        )));
    }
    src.locked -= unlock;
    if from == to {
        put_holding(s, pool, from, &src, from_had.is_some());
        return Ok(());
    }
    src.settle(pool)?;
    let to_had = holding(s, &st, to)?;
    let mut dest = to_had.clone().unwrap_or_default();
    dest.settle(pool)?;
    src.shares -= n;
    // At most `pool.shares` exist, so this cannot overflow.
    dest.shares += n;
    put_holding(s, pool, from, &src, from_had.is_some());
    put_holding(s, pool, to, &dest, to_had.is_some());
    Ok(())
}

/// Lock `n` of `who`'s free shares for a sell order. `Ok(Err)` if it has fewer.
pub(crate) fn lock(
    s: &mut Overlay,
    st: &RoyaltyStream,
    who: &Address,
    n: u64,
) -> Result<Result<(), TxError>, LedgerError> {
    let Some(mut h) = holding(s, st, who)? else {
        return Ok(Err(TxError::InsufficientShares {
            stream: st.to_string(),
            have: 0,
            want: n,
        }));
    };
    if h.shares - h.locked < n {
        return Ok(Err(TxError::InsufficientShares {
            stream: st.to_string(),
            have: h.shares - h.locked,
            want: n,
        }));
    }
    h.locked += n;
    write(s, &k::holding(st, who), &h);
    Ok(Ok(()))
}

/// Release `n` locked shares of `who` (a cancelled or expired sell order).
pub(crate) fn unlock(
    s: &mut Overlay,
    st: &RoyaltyStream,
    who: &Address,
    n: u64,
) -> Result<(), LedgerError> {
    let mut h = holding(s, st, who)?.unwrap_or_default();
    if h.locked < n {
        return Err(LedgerError::Invariant(format!(
            "unlocking {n} shares of {st} of a holding with {} locked",
            h.locked
        )));
    }
    h.locked -= n;
    write(s, &k::holding(st, who), &h);
    Ok(())
}

/// A fill of a sell order: `n` of `seller`'s locked shares go to `buyer`.
pub(crate) fn deliver_locked(
    s: &mut Overlay,
    st: &RoyaltyStream,
    seller: &Address,
    buyer: &Address,
    n: u64,
) -> Result<(), LedgerError> {
    let mut pool = pool_info(s, st)?
        .ok_or_else(|| LedgerError::Invariant(format!("a fill on {st}, which is not split")))?;
    move_shares(s, &mut pool, seller, buyer, n, n)?;
    write(s, &k::stream(st), &pool);
    Ok(())
}

/// `Action::ClaimShares`.
pub fn claim(
    s: &mut Overlay,
    sender: &Address,
    st: &RoyaltyStream,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let mut pool = tx_try!(split_pool(s, st)?);
    let had = holding(s, st, sender)?;
    let mut h = had.clone().unwrap_or_default();
    h.settle(&pool)?;
    if h.earned == 0 {
        return Ok(Err(TxError::NothingToClaim {
            stream: st.to_string(),
        }));
    }
    let amount = Amount(h.earned);
    h.earned = 0;
    let short = || LedgerError::Invariant(format!("share pool {st} pays out more than it holds"));
    let total = pool_total(s)?.checked_sub(amount).map_err(|_| short())?;
    pool.claimed = pool.claimed.checked_add(amount).map_err(|_| short())?;
    if pool.claimed > pool.paid_in {
        return Err(short());
    }
    write(s, k::POOL, &total);
    put_holding(s, &mut pool, sender, &h, had.is_some());
    write(s, &k::stream(st), &pool);
    accounts::credit(s, sender, amount)?
        .map_err(|e| LedgerError::Invariant(format!("share claim: {e}")))?;
    events.push(Event::SharesClaimed {
        stream: st.clone(),
        holder: *sender,
        amount,
    });
    Ok(Ok(()))
}

/// Every stream's holdings add up: their shares to the stream's count, their unclaimed
/// earnings plus the remainder to what the stream holds, and the streams to the pool; and
/// each remainder is less than a unit per share.
pub fn check_pools(s: &Overlay) -> Result<(), LedgerError> {
    let bad = |m: String| LedgerError::Invariant(m);
    let mut total: u128 = 0;
    for pool in pools(s)? {
        let st = &pool.stream;
        let list = holdings(s, st)?;
        let mut shares: u128 = 0;
        let mut owed: u128 = pool.remainder;
        for (who, h) in &list {
            if h.locked > h.shares {
                return Err(bad(format!(
                    "{who} has {} of {st} locked but holds {}",
                    h.locked, h.shares
                )));
            }
            shares += h.shares as u128;
            owed = owed
                .checked_add(h.claimable(&pool)?)
                .ok_or_else(|| bad(format!("share pool {st} overflows")))?;
        }
        if pool.claimed > pool.paid_in {
            return Err(bad(format!(
                "share pool {st} paid out more than it took in"
            )));
        }
        if shares != pool.shares as u128
            || list.len() as u64 != pool.holders
            || owed != pool.held()
            || pool.remainder >= pool.shares as u128
        {
            return Err(bad(format!(
                "share pool {st}: {shares} shares in {} holdings (of {} in {}), owed {owed} + \
                 remainder vs {} held, remainder {}",
                list.len(),
                pool.shares,
                pool.holders,
                pool.held(),
                pool.remainder
            )));
        }
        total += pool.held();
    }
    let p = pool_total(s)?;
    if p.0 != total {
        return Err(bad(format!(
            "share pool is {p} but the streams hold {total}"
        )));
    }
    Ok(())
}

/// The `shares` component ([`super::Component`]): actions only, no block hooks.
pub struct Shares;

impl super::Component for Shares {
    fn name(&self) -> &'static str {
        "shares"
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        match tx.action {
            Action::SplitShares { stream, shares } => {
                split(s, tx.ctx.height, tx.sender, stream, *shares, ev)
            }
            Action::TransferShares { stream, to, shares } => {
                transfer(s, tx.sender, stream, to, *shares, ev)
            }
            Action::ClaimShares { stream } => claim(s, tx.sender, stream, ev),
            other => super::not_routed_here(self.name(), other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> RoyaltyStream {
        RoyaltyStream::Model("m".into())
    }

    /// A pool of 3 shares, two holders (2 and 1), 10 paid in: 3 a share, 1 waiting.
    fn pool() -> (Overlay, Address, Address) {
        let mut s = Overlay::empty();
        let (a, b) = (Address([1; 20]), Address([2; 20]));
        let mut p = SharePool {
            stream: stream(),
            shares: 3,
            per_share: 0,
            remainder: 0,
            paid_in: Amount::ZERO,
            claimed: Amount::ZERO,
            holders: 0,
            split_height: 1,
        };
        let h = |n| Holding {
            shares: n,
            ..Default::default()
        };
        put_holding(&mut s, &mut p, &a, &h(2), false);
        put_holding(&mut s, &mut p, &b, &h(1), false);
        write(&mut s, &k::stream(&stream()), &p);
        distribute(&mut s, &stream(), Amount(10)).unwrap();
        (s, a, b)
    }

    #[test]
    fn a_payout_is_whole_units_per_share_and_a_remainder_that_waits() {
        let (mut s, a, b) = pool();
        check_pools(&s).unwrap();
        let p = pool_info(&s, &stream()).unwrap().unwrap();
        assert_eq!((p.per_share, p.remainder, p.held()), (3, 1, 10));
        let ha = holding(&s, &stream(), &a).unwrap().unwrap();
        assert_eq!(ha.claimable(&p).unwrap(), 6);
        // 2 more: the waiting 1 makes 3, one more unit a share.
        distribute(&mut s, &stream(), Amount(2)).unwrap();
        let p = pool_info(&s, &stream()).unwrap().unwrap();
        assert_eq!((p.per_share, p.remainder), (4, 0));
        let hb = holding(&s, &stream(), &b).unwrap().unwrap();
        assert_eq!(hb.claimable(&p).unwrap(), 4);
        check_pools(&s).unwrap();
    }

    #[test]
    fn the_pool_check_sees_a_holding_or_a_pool_that_does_not_add_up() {
        let (s, a, _) = pool();
        let mut more_shares = s.fork();
        let mut h = holding(&s, &stream(), &a).unwrap().unwrap();
        h.shares += 1;
        write(&mut more_shares, &k::holding(&stream(), &a), &h);
        assert!(check_pools(&more_shares).is_err());

        let mut minted = s.fork();
        let mut h = holding(&s, &stream(), &a).unwrap().unwrap();
        h.earned += 1;
        write(&mut minted, &k::holding(&stream(), &a), &h);
        assert!(check_pools(&minted).is_err());

        let mut drained = s.fork();
        write(&mut drained, k::POOL, &Amount(9));
        assert!(check_pools(&drained).is_err());
    }

    #[test]
    fn a_payout_to_a_stream_that_was_never_split_is_a_node_fault() {
        let mut s = Overlay::empty();
        let e = distribute(&mut s, &stream(), Amount(5)).unwrap_err();
        assert!(matches!(e, LedgerError::Invariant(_)), "{e}");
    }
}
