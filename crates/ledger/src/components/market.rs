//! The exchange: a limit order book per royalty stream, trading revenue shares against the
//! native token (docs/markets.md; the choice of a book over an AMM: docs/adr/0004-order-book.md).
//!
//! - Placing an order escrows what it can pay: a buy moves `price x shares` from the signer's
//!   balance into the market pool (`market/pool`), a sell locks the shares in the signer's
//!   holding ([`shares::lock`]); locked shares still earn royalties until they are sold.
//! - The order then matches the opposite side in price-time priority (best price first, then
//!   the oldest order), at the resting order's price, while the prices cross. A buy that
//!   fills below its limit gets the difference back. Each trade's fee (`market_fee_bps` of its
//!   value) is paid by the seller out of its proceeds, to the treasury.
//! - What is left rests on the book until it fills, is cancelled, or is found past its
//!   `expires_height` while matching (then it is closed and its escrow returned).
//! - Self-trade rule: an order that would trade with its signer's own resting order is refused
//!   whole (`self_trade`); nothing changes.
//!
//! [`check_market`] checks after every block that the pool equals the resting buys' escrow,
//! that each resting sell's shares are locked, and that the book is not crossed.

use super::{accounts, read, shares, write};
use super::{BlockCtx, TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::keys::market as k;
use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::market::{OrderSpec, Side};
use opal_types::shares::RoyaltyStream;
use opal_types::{Action, Address, Amount};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Trades kept per stream for `GET /api/market/{stream}/trades` (older ones are deleted).
pub const KEPT_TRADES: u64 = 256;

/// A resting order.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    pub owner: Address,
    pub stream: RoyaltyStream,
    pub side: Side,
    pub price: Amount,
    /// Shares asked for when placed, and still open.
    pub shares: u64,
    pub left: u64,
    pub placed_height: u64,
    pub expires_height: Option<u64>,
}

impl Order {
    fn expired_at(&self, height: u64) -> bool {
        self.expires_height.is_some_and(|e| e < height)
    }
    fn book_key(&self) -> Vec<u8> {
        k::book_entry(&self.stream, self.side, self.price.0, self.id)
    }
}

/// A past trade, as kept for the trades route; `seq` counts the stream's trades from 1.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct TradeRecord {
    pub seq: u64,
    pub height: u64,
    pub maker: u64,
    pub taker: u64,
    pub buyer: Address,
    pub seller: Address,
    pub price: Amount,
    pub shares: u64,
    pub fee: Amount,
}

pub fn order(s: &Overlay, id: u64) -> Result<Option<Order>, LedgerError> {
    read(s, &k::order(id))
}

/// One side of a stream's book, best first.
pub fn book_side(s: &Overlay, st: &RoyaltyStream, side: Side) -> Result<Vec<Order>, LedgerError> {
    let mut out = Vec::new();
    for (key, v) in s.prefix(&k::side(st, side))? {
        let id = u64::try_from_slice(&v).map_err(|e| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: e.to_string(),
        })?;
        out.push(order(s, id)?.ok_or_else(|| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: format!("the book names order {id}, which does not exist"),
        })?);
    }
    Ok(out)
}

/// The most recent trades of a stream, newest last (at most [`KEPT_TRADES`]).
pub fn trades(s: &Overlay, st: &RoyaltyStream) -> Result<Vec<TradeRecord>, LedgerError> {
    super::read_all(s, &k::trades(st))
}

/// The native tokens resting buy orders hold.
pub fn pool(s: &Overlay) -> Result<Amount, LedgerError> {
    Ok(read(s, k::POOL)?.unwrap_or_default())
}

fn next_id(s: &mut Overlay) -> Result<u64, LedgerError> {
    let id: u64 = read(s, k::NEXT_ID)?.unwrap_or(1);
    write(s, k::NEXT_ID, &(id + 1));
    Ok(id)
}

fn add_pool(s: &mut Overlay, a: Amount) -> Result<(), LedgerError> {
    let p = pool(s)?
        .checked_add(a)
        .map_err(|_| LedgerError::Invariant("market pool overflows".into()))?;
    write(s, k::POOL, &p);
    Ok(())
}

/// Take `a` out of the pool and credit it to `to` (a refund, or a seller's proceeds).
fn pay_from_pool(s: &mut Overlay, to: Option<&Address>, a: Amount) -> Result<(), LedgerError> {
    if a.is_zero() {
        return Ok(());
    }
    let p = pool(s)?
        .checked_sub(a)
        .map_err(|_| LedgerError::Invariant("market pool pays out more than it holds".into()))?;
    write(s, k::POOL, &p);
    match to {
        Some(to) => accounts::credit(s, to, a)?
            .map_err(|e| LedgerError::Invariant(format!("market payout: {e}")))?,
        None => accounts::credit_treasury(s, a)?,
    }
    Ok(())
}

fn value(price: Amount, shares: u64) -> Option<Amount> {
    price.0.checked_mul(shares as u128).map(Amount)
}

/// Remove a resting order from the book and give back what it holds.
fn close(
    s: &mut Overlay,
    o: &Order,
    reason: &str,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    s.delete(o.book_key());
    s.delete(k::order(o.id));
    let (mut refund, mut unlocked) = (Amount::ZERO, 0);
    match o.side {
        Side::Buy => {
            refund = value(o.price, o.left)
                .ok_or_else(|| LedgerError::Invariant("resting buy's escrow overflows".into()))?;
            pay_from_pool(s, Some(&o.owner), refund)?;
        }
        Side::Sell => {
            shares::unlock(s, &o.stream, &o.owner, o.left)?;
            unlocked = o.left;
        }
    }
    events.push(Event::OrderClosed {
        id: o.id,
        owner: o.owner,
        reason: reason.into(),
        refund,
        unlocked,
    });
    Ok(())
}

fn crosses(taker: Side, limit: Amount, resting: Amount) -> bool {
    match taker {
        Side::Buy => resting <= limit,
        Side::Sell => resting >= limit,
    }
}

fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    }
}

/// `Action::PlaceOrder`.
pub fn place(
    s: &mut Overlay,
    ctx: &BlockCtx,
    sender: &Address,
    spec: &OrderSpec,
    fee_bps: u32,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let st = &spec.stream;
    if shares::pool_info(s, st)?.is_none() {
        return Ok(Err(TxError::NotSplit {
            stream: st.to_string(),
        }));
    }
    if spec.shares == 0 {
        return Ok(Err(TxError::ZeroAmount));
    }
    if spec.price.is_zero() {
        return Ok(Err(TxError::ZeroPrice));
    }
    if let Some(e) = spec.expires_height.filter(|e| *e < ctx.height) {
        return Ok(Err(TxError::OrderExpired {
            expires_height: e,
            height: ctx.height,
        }));
    }
    let Some(cost) = value(spec.price, spec.shares) else {
        return Ok(Err(TxError::Overflow));
    };
    // Escrow first: what the order can pay or deliver.
    match spec.side {
        Side::Buy => {
            tx_try!(accounts::debit(s, sender, cost)?);
            add_pool(s, cost)?;
        }
        Side::Sell => tx_try!(shares::lock(s, st, sender, spec.shares)?),
    }
    let id = next_id(s)?;
    let mut left = spec.shares;
    // The head of the other side, again and again: each step reads only the best order
    // (Overlay::first), so an order's cost does not grow with the size of the book.
    let other = k::side(st, opposite(spec.side));
    while left > 0 {
        let Some((key, v)) = s.first(&other)? else {
            break;
        };
        let rid = u64::try_from_slice(&v).map_err(|e| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: e.to_string(),
        })?;
        let resting = order(s, rid)?.ok_or_else(|| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: format!("the book names order {rid}, which does not exist"),
        })?;
        if !crosses(spec.side, spec.price, resting.price) {
            break;
        }
        if resting.expired_at(ctx.height) {
            close(s, &resting, "expired", events)?;
            continue;
        }
        if resting.owner == *sender {
            return Ok(Err(TxError::SelfTrade { id: resting.id }));
        }
        let n = left.min(resting.left);
        let price = resting.price;
        let (buyer, seller) = match spec.side {
            Side::Buy => (*sender, resting.owner),
            Side::Sell => (resting.owner, *sender),
        };
        let trade_value = value(price, n)
            .ok_or_else(|| LedgerError::Invariant("a fill's value overflows".into()))?;
        let fee = trade_value
            .checked_bps(fee_bps)
            .map_err(|_| LedgerError::Invariant("a fill's fee overflows".into()))?;
        // The buyer's escrow pays: the seller its proceeds less the fee, the treasury the fee.
        pay_from_pool(s, Some(&seller), Amount(trade_value.0 - fee.0))?;
        pay_from_pool(s, None, fee)?;
        if spec.side == Side::Buy && price < spec.price {
            // The taker buy escrowed its own limit: give back the improvement.
            let back = Amount((spec.price.0 - price.0) * n as u128);
            pay_from_pool(s, Some(sender), back)?;
        }
        shares::deliver_locked(s, st, &seller, &buyer, n)?;
        left -= n;
        let mut r = resting.clone();
        r.left -= n;
        if r.left == 0 {
            s.delete(r.book_key());
            s.delete(k::order(r.id));
        } else {
            write(s, &k::order(r.id), &r);
        }
        record_trade(s, ctx.height, st, &r, id, buyer, seller, price, n, fee)?;
        events.push(Event::Trade {
            stream: st.clone(),
            maker: r.id,
            taker: id,
            buyer,
            seller,
            price,
            shares: n,
            fee,
        });
    }
    if left > 0 {
        let o = Order {
            id,
            owner: *sender,
            stream: st.clone(),
            side: spec.side,
            price: spec.price,
            shares: spec.shares,
            left,
            placed_height: ctx.height,
            expires_height: spec.expires_height,
        };
        write(s, &k::order(id), &o);
        write(s, &o.book_key(), &id);
    }
    events.push(Event::OrderPlaced {
        id,
        owner: *sender,
        stream: st.clone(),
        side: spec.side,
        price: spec.price,
        shares: spec.shares,
        resting: left,
    });
    Ok(Ok(()))
}

#[allow(clippy::too_many_arguments)]
fn record_trade(
    s: &mut Overlay,
    height: u64,
    st: &RoyaltyStream,
    maker: &Order,
    taker: u64,
    buyer: Address,
    seller: Address,
    price: Amount,
    shares: u64,
    fee: Amount,
) -> Result<(), LedgerError> {
    let seq_key = k::trade_seq(st);
    let seq: u64 = read(s, &seq_key)?.unwrap_or(0) + 1;
    write(s, &seq_key, &seq);
    let t = TradeRecord {
        seq,
        height,
        maker: maker.id,
        taker,
        buyer,
        seller,
        price,
        shares,
        fee,
    };
    write(s, &k::trade(st, seq), &t);
    // Keep the newest KEPT_TRADES of the stream.
    if seq > KEPT_TRADES {
        s.delete(k::trade(st, seq - KEPT_TRADES));
    }
    Ok(())
}

/// `Action::CancelOrder`: by its owner, or by anyone once it has expired.
pub fn cancel(
    s: &mut Overlay,
    ctx: &BlockCtx,
    sender: &Address,
    id: u64,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let Some(o) = order(s, id)? else {
        return Ok(Err(TxError::UnknownOrder { id }));
    };
    let expired = o.expired_at(ctx.height);
    if o.owner != *sender && !expired {
        return Ok(Err(TxError::NotYourOrder { id, owner: o.owner }));
    }
    close(s, &o, if expired { "expired" } else { "cancelled" }, events)?;
    Ok(Ok(()))
}

/// The pool equals the resting buys' escrow; every resting sell's shares are locked by its
/// owner (no more locked than resting sells hold); no stream's book is crossed; every book
/// entry names its order.
pub fn check_market(s: &Overlay) -> Result<(), LedgerError> {
    let bad = |m: String| LedgerError::Invariant(m);
    let mut escrow: u128 = 0;
    let mut locked: BTreeMap<(RoyaltyStream, Address), u64> = BTreeMap::new();
    let mut best: BTreeMap<RoyaltyStream, (Option<Amount>, Option<Amount>)> = BTreeMap::new();
    for (key, v) in s.prefix(k::ORDER_PREFIX)? {
        let o = Order::try_from_slice(&v).map_err(|e| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: e.to_string(),
        })?;
        if s.get(&o.book_key())?.is_none() || o.left == 0 || o.left > o.shares {
            return Err(bad(format!(
                "order {} is not on the book as it should be",
                o.id
            )));
        }
        let b = best.entry(o.stream.clone()).or_default();
        match o.side {
            Side::Buy => {
                escrow = value(o.price, o.left)
                    .and_then(|v| v.0.checked_add(escrow))
                    .ok_or_else(|| bad("resting buys' escrow overflows".into()))?;
                b.0 = b.0.max(Some(o.price));
            }
            Side::Sell => {
                *locked.entry((o.stream.clone(), o.owner)).or_default() += o.left;
                b.1 = Some(b.1.map_or(o.price, |p| p.min(o.price)));
            }
        }
    }
    let entries = s.prefix(k::BOOK_PREFIX)?.len();
    let orders = s.prefix(k::ORDER_PREFIX)?.len();
    if entries != orders {
        return Err(bad(format!("{entries} book entries for {orders} orders")));
    }
    if pool(s)?.0 != escrow {
        return Err(bad(format!(
            "market pool is {} but resting buys escrow {escrow}",
            pool(s)?
        )));
    }
    for ((st, who), n) in &locked {
        let h = shares::holding(s, st, who)?.unwrap_or_default();
        if h.locked != *n {
            return Err(bad(format!(
                "{who} has {} shares of {st} locked, but resting sells hold {n}",
                h.locked
            )));
        }
    }
    for p in shares::pools(s)? {
        for (who, h) in shares::holdings(s, &p.stream)? {
            if h.locked > 0 && !locked.contains_key(&(p.stream.clone(), who)) {
                return Err(bad(format!(
                    "{who} has {} shares of {} locked by no order",
                    h.locked, p.stream
                )));
            }
        }
    }
    for (st, (bid, ask)) in best {
        if let (Some(bid), Some(ask)) = (bid, ask) {
            if bid >= ask {
                return Err(bad(format!(
                    "the book of {st} is crossed: bid {bid}, ask {ask}"
                )));
            }
        }
    }
    Ok(())
}

/// The `market` component ([`super::Component`]): actions only, no block hooks.
pub struct Market;

impl super::Component for Market {
    fn name(&self) -> &'static str {
        "market"
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        match tx.action {
            Action::PlaceOrder { order } => {
                let fee_bps =
                    super::required::<Params>(s, crate::keys::PARAMS, "params")?.market_fee_bps;
                place(s, tx.ctx, tx.sender, order, fee_bps, ev)
            }
            Action::CancelOrder { id } => cancel(s, tx.ctx, tx.sender, *id, ev),
            other => super::not_routed_here(self.name(), other),
        }
    }
}
