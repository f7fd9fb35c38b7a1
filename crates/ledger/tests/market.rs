//! The exchange on a real store, with the supply invariant and `market::check_market` (pool =
//! resting buys' escrow, sells' shares locked, no crossed book) checked after every block by
//! `TestChain::block`. A reference order book kept apart from the ledger says which trades
//! must happen (price-time priority, the resting order's price, the self-trade rule), and what
//! every trader's balance and shares must be after them.

use opal_ledger::components::{market, shares};
use opal_ledger::events::Event;
use opal_testkit::{key, owner, TestChain};
use opal_types::market::{OrderSpec, Side};
use opal_types::registry::{Licence, ModelFormat, ModelSpec};
use opal_types::shares::RoyaltyStream;
use opal_types::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const FEE_BPS: u128 = 30; // the default market_fee_bps

fn stream() -> RoyaltyStream {
    RoyaltyStream::Model("tuned".into())
}

/// Traders: 0 = the owner (key 2), 1 = key 1, 2 = key 3. The owner registers `tuned`, splits
/// it into 1,000 shares and gives 300 to each of the others.
fn traders() -> [SecretKey; 3] {
    [owner(), key(1), key(3)]
}

fn setup() -> TestChain {
    let mut c = TestChain::new();
    let spec = ModelSpec {
        name: "tuned".into(),
        version: 1,
        parent: None,
        parent_bps: 0,
        datasets: vec![],
        content_hash: Hash([7; 32]),
        size: 4096,
        format: ModelFormat::Onnx,
        input_schema: "[]".into(),
        output_schema: "[]".into(),
        price: Amount(100),
        licence: Licence::Open,
        tiers: vec![Tier::Signed],
        weight_commitment: None,
        replay_cost: None,
    };
    let [o, a, b] = traders();
    let give = |to: &SecretKey, nonce| {
        c.tx(
            &o,
            nonce,
            Action::TransferShares {
                stream: stream(),
                to: to.address(),
                shares: 300,
            },
        )
    };
    let r = c.run(vec![
        c.tx(&o, 0, Action::RegisterModel { spec }),
        c.tx(
            &o,
            1,
            Action::SplitShares {
                stream: stream(),
                shares: 1_000,
            },
        ),
        give(&a, 2),
        give(&b, 3),
    ]);
    assert_eq!(r, vec![None; 4]);
    c
}

fn order(side: Side, price: u128, n: u64) -> Action {
    Action::PlaceOrder {
        order: OrderSpec {
            stream: stream(),
            side,
            price: Amount(price),
            shares: n,
            expires_height: None,
        },
    }
}

/// Run one transaction in a block: its code, and its events.
fn run(c: &mut TestChain, who: &SecretKey, action: Action) -> (Option<String>, Vec<Event>) {
    let tx = c.tx(who, 0, action);
    let r = c.block(vec![tx]);
    let t = r.txs.into_iter().next().unwrap();
    (t.code, t.events)
}

fn placed_id(events: &[Event]) -> u64 {
    events
        .iter()
        .find_map(|e| match e {
            Event::OrderPlaced { id, .. } => Some(*id),
            _ => None,
        })
        .expect("an OrderPlaced event")
}

/// (maker, taker, price, shares) of each trade, in order.
fn trades(events: &[Event]) -> Vec<(u64, u64, u128, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Trade {
                maker,
                taker,
                price,
                shares,
                ..
            } => Some((*maker, *taker, price.0, *shares)),
            _ => None,
        })
        .collect()
}

fn held(c: &TestChain, who: &SecretKey) -> (u64, u64) {
    let h = shares::holding(&c.overlay(), &stream(), &who.address())
        .unwrap()
        .unwrap_or_default();
    (h.shares, h.locked)
}

fn fee() -> u128 {
    opal_ledger::Params::default().min_fee.0
}

#[test]
fn a_buy_takes_the_best_price_first_then_the_oldest_and_rests_the_rest() {
    let mut c = setup();
    let [o, a, b] = traders();
    // Asks: a 10 @ 1,010, b 10 @ 1,000, a 5 @ 1,000 (after b's: later in time).
    let (_, e) = run(&mut c, &a, order(Side::Sell, 1_010, 10));
    let a1 = placed_id(&e);
    let (_, e) = run(&mut c, &b, order(Side::Sell, 1_000, 10));
    let b1 = placed_id(&e);
    let (_, e) = run(&mut c, &a, order(Side::Sell, 1_000, 5));
    let a2 = placed_id(&e);
    assert_eq!(held(&c, &a), (300, 15));
    let (o0, a0, b0, t0) = (
        c.balance(&o).0,
        c.balance(&a).0,
        c.balance(&b).0,
        c.treasury().0,
    );

    // The owner buys 30 up to 1,010: 10 from b @ 1,000, 5 from a @ 1,000, 10 from a @ 1,010;
    // 5 rest as a bid at 1,010.
    let (code, e) = run(&mut c, &o, order(Side::Buy, 1_010, 30));
    assert_eq!(code, None);
    let id = placed_id(&e);
    assert_eq!(
        trades(&e),
        vec![(b1, id, 1_000, 10), (a2, id, 1_000, 5), (a1, id, 1_010, 10)]
    );
    let fee_of = |v: u128| v * FEE_BPS / 10_000;
    // The buyer paid 25 shares' trades and escrows 5 x 1,010; the 15 bought at 1,000 below
    // its limit cost 1,000 each, not 1,010.
    let paid = 15 * 1_000 + 10 * 1_010;
    assert_eq!(o0 - c.balance(&o).0, paid + 5 * 1_010 + fee());
    assert_eq!(c.balance(&b).0 - b0, 10_000 - fee_of(10_000));
    assert_eq!(
        c.balance(&a).0 - a0,
        5_000 - fee_of(5_000) + 10_100 - fee_of(10_100)
    );
    // The fees reached the treasury (and the fee pool, not the treasury, the tx fee).
    assert_eq!(
        c.treasury().0 - t0,
        fee_of(10_000) + fee_of(5_000) + fee_of(10_100)
    );
    assert_eq!(held(&c, &o), (400 + 25, 0));
    assert_eq!(held(&c, &a), (285, 0));
    assert_eq!(held(&c, &b), (290, 0));
    let o_ = c.overlay();
    assert_eq!(market::pool(&o_).unwrap(), Amount(5 * 1_010));
    let bids = market::book_side(&o_, &stream(), Side::Buy).unwrap();
    assert_eq!((bids.len(), bids[0].left, bids[0].id), (1, 5, id));
    assert!(market::book_side(&o_, &stream(), Side::Sell)
        .unwrap()
        .is_empty());
    assert_eq!(market::trades(&o_, &stream()).unwrap().len(), 3);

    // A sell below the bid trades at the bid's price (the resting order's), not its own.
    let b1 = c.balance(&b).0;
    let (code, e) = run(&mut c, &b, order(Side::Sell, 900, 2));
    assert_eq!(code, None);
    assert_eq!(trades(&e), vec![(id, placed_id(&e), 1_010, 2)]);
    assert_eq!(c.balance(&b).0 + fee() - b1, 2_020 - fee_of(2_020));

    // Cancel returns exactly what is left: 3 x 1,010.
    let before = c.balance(&o).0;
    let (code, e) = run(&mut c, &o, Action::CancelOrder { id });
    assert_eq!(code, None);
    assert!(
        matches!(&e[..], [.., Event::OrderClosed { refund, .. }] if refund.0 == 3_030),
        "{e:?}"
    );
    assert_eq!(c.balance(&o).0 + fee() - before, 3_030);
    assert_eq!(market::pool(&c.overlay()).unwrap(), Amount::ZERO);
}

#[test]
fn bad_orders_are_refused_with_their_code_and_change_nothing() {
    let mut c = setup();
    let [o, a, _] = traders();
    let (_, e) = run(&mut c, &a, order(Side::Sell, 1_000, 10));
    let resting = placed_id(&e);
    let unsplit = Action::PlaceOrder {
        order: OrderSpec {
            stream: RoyaltyStream::Model("other".into()),
            side: Side::Buy,
            price: Amount(1),
            shares: 1,
            expires_height: None,
        },
    };
    let expired = Action::PlaceOrder {
        order: OrderSpec {
            stream: stream(),
            side: Side::Buy,
            price: Amount(1),
            shares: 1,
            expires_height: Some(1),
        },
    };
    let cases: Vec<(SecretKey, Action, &str)> = vec![
        (o.clone(), unsplit, "not_split"),
        (o.clone(), order(Side::Buy, 1_000, 0), "zero_amount"),
        (o.clone(), order(Side::Buy, 0, 5), "zero_price"),
        (o.clone(), order(Side::Buy, u128::MAX / 2, 5), "overflow"),
        (
            o.clone(),
            order(Side::Buy, 1_000, 5_000),
            "insufficient_funds",
        ),
        (
            o.clone(),
            order(Side::Sell, 1_000, 401),
            "insufficient_shares",
        ),
        // a's 300: 10 are locked in its resting sell.
        (
            a.clone(),
            order(Side::Sell, 2_000, 291),
            "insufficient_shares",
        ),
        (
            a.clone(),
            Action::TransferShares {
                stream: stream(),
                to: o.address(),
                shares: 291,
            },
            "insufficient_shares",
        ),
        (o.clone(), expired, "order_expired"),
        (a.clone(), order(Side::Buy, 1_000, 1), "self_trade"),
        (o.clone(), Action::CancelOrder { id: 999 }, "unknown_order"),
        (
            o.clone(),
            Action::CancelOrder { id: resting },
            "not_your_order",
        ),
    ];
    for (who, action, code) in cases {
        let root_parts = |c: &TestChain| {
            let ov = c.overlay();
            (
                ov.prefix(b"market/").unwrap(),
                ov.prefix(b"shares/").unwrap(),
                c.balance(&who),
            )
        };
        let before = root_parts(&c);
        let (got, _) = run(&mut c, &who, action.clone());
        assert_eq!(got.as_deref(), Some(code), "{action:?}");
        assert_eq!(root_parts(&c), before, "{action:?} changed state");
    }
}

#[test]
fn an_expired_order_never_fills_and_anyone_may_close_it() {
    let mut c = setup();
    let [o, a, b] = traders();
    let h = c.height + 1; // the block that places it
    let (_, e) = run(
        &mut c,
        &a,
        Action::PlaceOrder {
            order: OrderSpec {
                stream: stream(),
                side: Side::Sell,
                price: Amount(1_000),
                shares: 10,
                expires_height: Some(h + 1),
            },
        },
    );
    let id = placed_id(&e);
    // Not expired yet: only its owner may cancel.
    let (code, _) = run(&mut c, &b, Action::CancelOrder { id });
    assert_eq!(code.as_deref(), Some("not_your_order"));
    // Past its height, a crossing buy closes it instead of trading with it, and rests.
    let (code, e) = run(&mut c, &o, order(Side::Buy, 1_000, 4));
    assert_eq!(code, None);
    assert!(trades(&e).is_empty(), "{e:?}");
    assert!(
        e.iter().any(|e| matches!(e, Event::OrderClosed { id: i, reason, unlocked: 10, .. } if *i == id && reason == "expired")),
        "{e:?}"
    );
    assert_eq!(held(&c, &a), (300, 0));
    let bid = placed_id(&e);
    // An expired resting order not in the way is closed by anyone.
    let h = c.height + 1;
    let (_, e) = run(
        &mut c,
        &a,
        Action::PlaceOrder {
            order: OrderSpec {
                stream: stream(),
                side: Side::Sell,
                price: Amount(5_000),
                shares: 1,
                expires_height: Some(h),
            },
        },
    );
    let far = placed_id(&e);
    let (code, _) = run(&mut c, &b, Action::CancelOrder { id: far });
    assert_eq!(code, None);
    assert_eq!(held(&c, &a), (300, 0));
    let (code, _) = run(&mut c, &o, Action::CancelOrder { id: bid });
    assert_eq!(code, None);
}

/// The reference book.
#[derive(Debug, Clone)]
struct RefOrder {
    id: u64,
    owner: usize,
    side: Side,
    price: u128,
    left: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Place {
        who: usize,
        side: Side,
        price: u128,
        n: u64,
    },
    Cancel {
        who: usize,
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..3, any::<bool>(), 990u128..1_010, 1u64..12).prop_map(|(who, buy, price, n)| Op::Place {
            who,
            side: if buy { Side::Buy } else { Side::Sell },
            price,
            n,
        }),
        1 => (0usize..3, 0usize..8).prop_map(|(who, pick)| Op::Cancel { who, pick }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Any sequence of orders and cancels among three traders: the ledger makes exactly the
    /// trades of the reference book (price-time priority, at the maker's price, the
    /// self-trade refusal), every balance and share count is what the reference says (escrow,
    /// price improvement, fees, refunds: nothing created or lost), and the resting orders are
    /// the reference's. check_market runs after every block: the book is never crossed.
    #[test]
    fn the_ledger_matches_the_reference_book(ops in prop::collection::vec(op(), 1..30)) {
        let mut c = setup();
        let ks = traders();
        let mut balance: Vec<u128> = ks.iter().map(|k| c.balance(k).0).collect();
        let mut held: Vec<(u64, u64)> = ks.iter().map(|k| held(&c, k)).collect();
        let mut book: Vec<RefOrder> = vec![];
        let t0 = c.treasury().0;
        let mut fees = 0u128;
        for op in ops {
            match op {
                Op::Place { who, side, price, n } => {
                    // The reference's matching, as a plan first.
                    let mut opp: Vec<RefOrder> = book.iter().filter(|o| o.side != side).cloned().collect();
                    opp.sort_by(|x, y| match side {
                        Side::Buy => x.price.cmp(&y.price).then(x.id.cmp(&y.id)),
                        Side::Sell => y.price.cmp(&x.price).then(x.id.cmp(&y.id)),
                    });
                    let mut left = n;
                    let mut plan = vec![];
                    let mut self_trade = false;
                    for o in &opp {
                        let cross = match side { Side::Buy => o.price <= price, Side::Sell => o.price >= price };
                        if left == 0 || !cross { break; }
                        if o.owner == who { self_trade = true; break; }
                        let k = left.min(o.left);
                        plan.push((o.id, o.price, k, o.owner));
                        left -= k;
                    }
                    let afford = match side {
                        Side::Buy => balance[who] >= price * n as u128 + 1_000,
                        Side::Sell => held[who].0 - held[who].1 >= n,
                    };
                    let (code, e) = run(&mut c, &ks[who], order(side, price, n));
                    if !afford {
                        let want = if side == Side::Buy { "insufficient_funds" } else { "insufficient_shares" };
                        prop_assert_eq!(code.as_deref(), Some(want));
                        continue;
                    }
                    if self_trade {
                        prop_assert_eq!(code.as_deref(), Some("self_trade"));
                        continue;
                    }
                    prop_assert_eq!(code, None);
                    balance[who] -= 1_000; // the transaction fee
                    let id = placed_id(&e);
                    let got: Vec<(u64, u128, u64)> = trades(&e).into_iter().map(|(m, t, p, k)| {
                        assert_eq!(t, id);
                        (m, p, k)
                    }).collect();
                    let want: Vec<(u64, u128, u64)> = plan.iter().map(|(m, p, k, _)| (*m, *p, *k)).collect();
                    prop_assert_eq!(got, want);
                    // The reference's money and shares.
                    match side {
                        Side::Buy => balance[who] -= price * n as u128,
                        Side::Sell => held[who].1 += n,
                    }
                    for (maker, p, k, mo) in plan {
                        let v = p * k as u128;
                        let f = v * FEE_BPS / 10_000;
                        fees += f;
                        let (buyer, seller) = match side { Side::Buy => (who, mo), Side::Sell => (mo, who) };
                        balance[seller] += v - f;
                        if side == Side::Buy {
                            balance[who] += (price - p) * k as u128;
                        }
                        held[seller].0 -= k;
                        held[seller].1 -= k;
                        held[buyer].0 += k;
                        let r = book.iter_mut().find(|o| o.id == maker).unwrap();
                        r.left -= k;
                    }
                    book.retain(|o| o.left > 0);
                    if left > 0 {
                        book.push(RefOrder { id, owner: who, side, price, left });
                    }
                }
                Op::Cancel { who, pick } => {
                    let mine: Vec<RefOrder> = book.iter().filter(|o| o.owner == who).cloned().collect();
                    if mine.is_empty() { continue; }
                    let o = mine[pick % mine.len()].clone();
                    let (code, _) = run(&mut c, &ks[who], Action::CancelOrder { id: o.id });
                    prop_assert_eq!(code, None);
                    balance[who] -= 1_000;
                    match o.side {
                        Side::Buy => balance[who] += o.price * o.left as u128,
                        Side::Sell => held[who].1 -= o.left,
                    }
                    book.retain(|x| x.id != o.id);
                }
            }
            for (i, k) in ks.iter().enumerate() {
                prop_assert_eq!(c.balance(k).0, balance[i], "balance of trader {}", i);
                prop_assert_eq!(self::held(&c, k), held[i], "shares of trader {}", i);
            }
            prop_assert_eq!(c.treasury().0 - t0, fees);
        }
        let ov = c.overlay();
        let mut resting: BTreeMap<u64, u64> = BTreeMap::new();
        for side in [Side::Buy, Side::Sell] {
            for o in market::book_side(&ov, &stream(), side).unwrap() {
                resting.insert(o.id, o.left);
            }
        }
        let want: BTreeMap<u64, u64> = book.iter().map(|o| (o.id, o.left)).collect();
        prop_assert_eq!(resting, want);
    }
}

#[test]
fn one_order_walks_many_makers_and_the_newest_trades_are_kept() {
    let mut c = setup();
    let [o, a, _] = traders();
    let sells: Vec<Transaction> = (0..300)
        .map(|i| c.tx(&o, i, order(Side::Sell, 1_000 + i as u128 % 3, 1)))
        .collect();
    let r = c.run(sells);
    assert!(r.iter().all(Option::is_none), "{r:?}");
    // One buy takes 260 of them, cheapest first (all the 1,000s, then 1,001s...).
    let (code, e) = run(&mut c, &a, order(Side::Buy, 1_002, 260));
    assert_eq!(code, None);
    let t = trades(&e);
    assert_eq!(t.len(), 260);
    assert!(
        t.windows(2).all(|w| (w[0].2, w[0].0) < (w[1].2, w[1].0)),
        "price, then time"
    );
    assert_eq!(held(&c, &a), (560, 0));
    let ov = c.overlay();
    let kept = market::trades(&ov, &stream()).unwrap();
    assert_eq!(kept.len(), market::KEPT_TRADES as usize);
    assert_eq!(
        (kept[0].seq, kept.last().unwrap().seq),
        (260 - market::KEPT_TRADES + 1, 260)
    );
    assert_eq!(
        market::book_side(&ov, &stream(), Side::Sell).unwrap().len(),
        40
    );
}
