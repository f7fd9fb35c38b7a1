//! Revenue shares on a real store, with the supply invariant (share pools included) checked
//! after every block by `TestChain::block`: payouts exact to the base unit across lineage,
//! share transfers and many settlements, checked against an independent account of what each
//! holder is owed; every bad input refused with its code and nothing changed.

use opal_ledger::components::shares;
use opal_ledger::events::Event;
use opal_testkit::fixtures::{offer_model, receipt, Call};
use opal_testkit::{caller, key, node, owner, TestChain};
use opal_types::registry::{DatasetShare, DatasetSpec, Licence, ModelFormat, ModelSpec};
use opal_types::shares::{RoyaltyStream, MAX_SHARES};
use opal_types::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const MODEL_HASH: Hash = Hash([7; 32]);

/// Key 1 owns dataset `digits` and model `base@1`; key 2 owns `tuned@1` (price 100 a unit,
/// 1000 bps to its parent `base@1`, 2000 bps to `digits`), offered by the node in `signed`.
/// Keys 5 and 6 get 10,000 to pay their fees.
fn setup() -> TestChain {
    let mut c = TestChain::new();
    let spec = |name: &str, hash: u8| ModelSpec {
        name: name.into(),
        version: 1,
        parent: None,
        parent_bps: 0,
        datasets: vec![],
        content_hash: Hash([hash; 32]),
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
    let ds = DatasetSpec {
        name: "digits".into(),
        content_hash: Hash([9; 32]),
        size: 1234,
        licence: Licence::Open,
        min_share_bps: 2_000,
    };
    let r = c.run(vec![
        c.tx(&key(1), 0, Action::RegisterDataset { spec: ds }),
        c.tx(
            &key(1),
            1,
            Action::RegisterModel {
                spec: spec("base", 8),
            },
        ),
        c.transfer(&key(1), &key(5), 10_000, 2),
        c.transfer(&key(1), &key(6), 10_000, 3),
    ]);
    assert_eq!(r, vec![None; 4]);
    let mut tuned = spec("tuned", 7);
    tuned.parent = Some(ModelRef::new("base", 1));
    tuned.parent_bps = 1_000;
    tuned.datasets = vec![DatasetShare {
        dataset: "digits".into(),
        bps: 2_000,
    }];
    offer_model(&mut c, [&owner(), &node(), &caller()], tuned, 100_000, 90);
    c
}

fn model(name: &str) -> RoyaltyStream {
    RoyaltyStream::Model(name.into())
}

fn dataset() -> RoyaltyStream {
    RoyaltyStream::Dataset("digits".into())
}

fn call(salt: u64, price: u128) -> Call {
    Call {
        model: ModelRef::new("tuned", 1),
        model_hash: MODEL_HASH,
        input_hash: Hash([1; 32]),
        tier: Tier::Signed,
        escalation: Default::default(),
        salt,
        output_hash: Hash([2; 32]),
        price: Amount(price),
        units: 1,
    }
}

/// Settle one call; what each split stream was paid, read from the settlement's event.
fn settle(c: &mut TestChain, salt: u64, price: u128) -> BTreeMap<RoyaltyStream, u128> {
    let r = receipt(c, call(salt, price));
    let tx = c.tx(&node(), 0, Action::SettleReceipts { receipts: vec![r] });
    let (codes, events) = c.block_outcome(vec![tx]);
    assert_eq!(codes, vec![None]);
    let mut paid = BTreeMap::new();
    let mut settled = false;
    for e in &events {
        if let Event::ReceiptSettled { payouts, .. } = e {
            settled = true;
            for p in payouts.clone() {
                if let Some(st) = p.shares {
                    assert_eq!(p.to, None, "a royalty to holders names no account");
                    *paid.entry(st).or_default() += p.amount.0;
                }
            }
        }
    }
    assert!(settled, "the receipt is paid: {events:?}");
    paid
}

/// An account of every stream kept apart from the ledger: for each payout, each holder is
/// owed its shares times the whole units per share the payout completed.
#[derive(Default, Clone)]
struct Book {
    /// Per stream: share count, total paid in, holders' shares, and what each is owed.
    streams: BTreeMap<RoyaltyStream, (u64, u128, BTreeMap<Address, u64>)>,
    owed: BTreeMap<(RoyaltyStream, Address), u128>,
}

impl Book {
    fn split(&mut self, st: RoyaltyStream, who: Address, n: u64) {
        self.streams.insert(st, (n, 0, BTreeMap::from([(who, n)])));
    }
    fn pay(&mut self, st: &RoyaltyStream, amount: u128) {
        let (n, paid, holders) = self.streams.get_mut(st).unwrap();
        let (n, before) = (*n as u128, *paid);
        *paid += amount;
        let units = *paid / n - before / n;
        for (who, s) in holders.iter() {
            *self.owed.entry((st.clone(), *who)).or_default() += *s as u128 * units;
        }
    }
    fn transfer(&mut self, st: &RoyaltyStream, from: Address, to: Address, n: u64) {
        let holders = &mut self.streams.get_mut(st).unwrap().2;
        *holders.get_mut(&from).unwrap() -= n;
        *holders.entry(to).or_default() += n;
    }
    fn take(&mut self, st: &RoyaltyStream, who: Address) -> u128 {
        self.owed.remove(&(st.clone(), who)).unwrap_or(0)
    }
}

fn claim(c: &mut TestChain, who: &SecretKey, st: &RoyaltyStream) -> (Option<String>, u128) {
    let fee = opal_ledger::Params::default().min_fee.0;
    let before = c.balance(who).0;
    let r = c.run(vec![c.tx(
        who,
        0,
        Action::ClaimShares { stream: st.clone() },
    )]);
    let after = c.balance(who).0;
    (r[0].clone(), after + fee - before)
}

fn claimable(c: &TestChain, st: &RoyaltyStream, who: &SecretKey) -> u128 {
    let o = c.overlay();
    let pool = shares::pool_info(&o, st).unwrap().unwrap();
    shares::holding(&o, st, &who.address())
        .unwrap()
        .map(|h| h.claimable(&pool).unwrap())
        .unwrap_or(0)
}

#[test]
fn royalties_reach_holders_exactly_across_lineage_transfers_and_many_settlements() {
    let mut c = setup();
    // Model tuned in 7 shares, its parent base in 1,000, the dataset in 3: none divides the
    // payouts, so remainders carry from one settlement to the next.
    let r = c.run(vec![
        c.tx(
            &owner(),
            0,
            Action::SplitShares {
                stream: model("tuned"),
                shares: 7,
            },
        ),
        c.tx(
            &key(1),
            0,
            Action::SplitShares {
                stream: model("base"),
                shares: 1_000,
            },
        ),
        c.tx(
            &key(1),
            1,
            Action::SplitShares {
                stream: dataset(),
                shares: 3,
            },
        ),
    ]);
    assert_eq!(r, vec![None; 3]);
    let mut book = Book::default();
    book.split(model("tuned"), owner().address(), 7);
    book.split(model("base"), key(1).address(), 1_000);
    book.split(dataset(), key(1).address(), 3);

    let owner_before = c.balance(&owner()).0;
    let mut claimed: BTreeMap<(RoyaltyStream, Address), u128> = BTreeMap::new();
    for i in 0..30u64 {
        let price = 105 + 29 * i as u128; // at most the request's 1,000
        for (st, amount) in settle(&mut c, i, price) {
            book.pay(&st, amount);
        }
        // Shares change hands between settlements: some of tuned's to keys 5 and 6, some of
        // base's to key 5; the dataset's to key 6 once.
        let moves: Vec<(SecretKey, SecretKey, RoyaltyStream, u64)> = match i {
            3 => vec![(owner(), key(5), model("tuned"), 2)],
            8 => vec![
                (key(5), key(6), model("tuned"), 1),
                (key(1), key(5), model("base"), 333),
            ],
            15 => vec![
                (owner(), key(6), model("tuned"), 5),
                (key(1), key(6), dataset(), 1),
            ],
            21 => vec![(key(6), key(5), model("tuned"), 6)],
            _ => vec![],
        };
        for (from, to, st, n) in moves {
            let r = c.run(vec![c.tx(
                &from,
                0,
                Action::TransferShares {
                    stream: st.clone(),
                    to: to.address(),
                    shares: n,
                },
            )]);
            assert_eq!(r, vec![None]);
            book.transfer(&st, from.address(), to.address(), n);
        }
        // Key 5 claims tuned's royalties now and then; the others wait to the end.
        if i % 10 == 9 {
            let st = model("tuned");
            let (code, got) = claim(&mut c, &key(5), &st);
            let want = book.take(&st, key(5).address());
            assert_eq!(code, None);
            assert_eq!(got, want, "key 5's claim after settlement {i}");
            *claimed.entry((st, key(5).address())).or_default() += got;
        }
    }
    // The owner split its stream: none of tuned's owner royalties reached its account (it
    // paid the fees of its two transfers only).
    let fee = opal_ledger::Params::default().min_fee.0;
    assert_eq!(c.balance(&owner()).0, owner_before - 2 * fee);

    for st in [model("tuned"), model("base"), dataset()] {
        let (n, paid_in, _) = book.streams[&st].clone();
        for who in [owner(), key(1), key(5), key(6)] {
            let want = book
                .owed
                .get(&(st.clone(), who.address()))
                .copied()
                .unwrap_or(0);
            assert_eq!(claimable(&c, &st, &who), want, "{st} for {}", who.address());
            if want > 0 {
                let (code, got) = claim(&mut c, &who, &st);
                assert_eq!((code, got), (None, want));
                *claimed.entry((st.clone(), who.address())).or_default() += got;
            } else {
                let (code, _) = claim(&mut c, &who, &st);
                assert_eq!(code.as_deref(), Some("nothing_to_claim"));
            }
        }
        // What is left is the remainder, less than one unit per share: paid in = claimed +
        // remainder, to the unit.
        let pool = shares::pool_info(&c.overlay(), &st).unwrap().unwrap();
        let total_claimed: u128 = claimed
            .iter()
            .filter(|((s, _), _)| *s == st)
            .map(|(_, v)| v)
            .sum();
        assert_eq!(pool.paid_in.0, paid_in);
        assert_eq!(pool.remainder, paid_in % n as u128, "{st}");
        assert_eq!(total_claimed + pool.remainder, paid_in, "{st}");
        assert!(paid_in > 0, "{st} was paid");
    }
    let pools: u128 = [model("tuned"), model("base"), dataset()]
        .iter()
        .map(|st| {
            shares::pool_info(&c.overlay(), st)
                .unwrap()
                .unwrap()
                .remainder
        })
        .sum();
    assert_eq!(shares::pool_total(&c.overlay()).unwrap().0, pools);
}

#[test]
fn the_new_owner_of_a_split_model_does_not_take_the_holders_royalties() {
    let mut c = setup();
    let r = c.run(vec![c.tx(
        &owner(),
        0,
        Action::SplitShares {
            stream: model("tuned"),
            shares: 10,
        },
    )]);
    assert_eq!(r, vec![None]);
    let r = c.run(vec![c.tx(
        &owner(),
        0,
        Action::TransferModel {
            name: "tuned".into(),
            new_owner: key(5).address(),
        },
    )]);
    assert_eq!(r, vec![None]);
    let before = c.balance(&key(5)).0;
    // price 200: royalties 100, of which 70 is the owner's part, now the holders'.
    let paid = settle(&mut c, 1, 200);
    assert_eq!(paid.get(&model("tuned")), Some(&70));
    assert_eq!(c.balance(&key(5)).0, before, "the new owner got nothing");
    assert_eq!(claimable(&c, &model("tuned"), &owner()), 70);
    // The new owner cannot split again what is already split.
    let r = c.run(vec![c.tx(
        &key(5),
        0,
        Action::SplitShares {
            stream: model("tuned"),
            shares: 10,
        },
    )]);
    assert_eq!(r, vec![Some("already_split".into())]);
}

#[test]
fn a_holder_who_sold_every_share_still_claims_what_they_earned_before() {
    let mut c = setup();
    let split = c.tx(
        &owner(),
        0,
        Action::SplitShares {
            stream: model("tuned"),
            shares: 4,
        },
    );
    assert_eq!(c.run(vec![split]), vec![None]);
    settle(&mut c, 1, 200); // 70 to 4 shares: 17 each, 2 waiting
    let give = c.tx(
        &owner(),
        0,
        Action::TransferShares {
            stream: model("tuned"),
            to: key(5).address(),
            shares: 4,
        },
    );
    assert_eq!(c.run(vec![give]), vec![None]);
    settle(&mut c, 2, 200); // 70 + 2 waiting = 72: 18 each, all key 5's
    assert_eq!(claimable(&c, &model("tuned"), &owner()), 68);
    assert_eq!(claimable(&c, &model("tuned"), &key(5)), 72);
    let o = c.overlay();
    let pool = shares::pool_info(&o, &model("tuned")).unwrap().unwrap();
    assert_eq!(
        (pool.holders, pool.remainder, pool.paid_in),
        (2, 0, Amount(140))
    );
    assert_eq!(claim(&mut c, &owner(), &model("tuned")), (None, 68));
    // The seller's holding is gone once it is empty; the buyer's stays.
    let o = c.overlay();
    assert_eq!(
        shares::holding(&o, &model("tuned"), &owner().address()).unwrap(),
        None
    );
    let pool = shares::pool_info(&o, &model("tuned")).unwrap().unwrap();
    assert_eq!(pool.holders, 1);
}

#[test]
fn bad_share_actions_are_refused_with_their_code_and_change_nothing() {
    let mut c = setup();
    let split = |st: RoyaltyStream, n: u64| Action::SplitShares {
        stream: st,
        shares: n,
    };
    let transfer = |st: RoyaltyStream, n: u64| Action::TransferShares {
        stream: st,
        to: key(5).address(),
        shares: n,
    };
    let claim = |st: RoyaltyStream| Action::ClaimShares { stream: st };
    // Before any split.
    let cases: Vec<(SecretKey, Action, &str)> = vec![
        (key(5), split(model("tuned"), 10), "not_owner"),
        (owner(), split(dataset(), 10), "not_owner"),
        (owner(), split(model("nope"), 10), "unknown_model"),
        (
            key(1),
            split(RoyaltyStream::Dataset("nope".into()), 10),
            "unknown_dataset",
        ),
        (owner(), split(model("Bad Name"), 10), "invalid_name"),
        (owner(), split(model("tuned"), 0), "bad_share_count"),
        (
            owner(),
            split(model("tuned"), MAX_SHARES + 1),
            "bad_share_count",
        ),
        (owner(), transfer(model("tuned"), 1), "not_split"),
        (owner(), claim(model("tuned")), "not_split"),
    ];
    let check = |c: &mut TestChain, cases: Vec<(SecretKey, Action, &str)>| {
        for (who, action, code) in cases {
            let writes_before = c.overlay().prefix(b"shares/").unwrap();
            let r = c.run(vec![c.tx(&who, 0, action.clone())]);
            assert_eq!(r, vec![Some(code.to_string())], "{action:?}");
            let writes_after = c.overlay().prefix(b"shares/").unwrap();
            assert_eq!(
                writes_before, writes_after,
                "{action:?} changed share state"
            );
        }
    };
    check(&mut c, cases);
    assert_eq!(
        c.run(vec![c.tx(&owner(), 0, split(model("tuned"), 10))]),
        vec![None]
    );
    let cases: Vec<(SecretKey, Action, &str)> = vec![
        (owner(), split(model("tuned"), 5), "already_split"),
        (owner(), transfer(model("tuned"), 0), "zero_amount"),
        (owner(), transfer(model("tuned"), 11), "insufficient_shares"),
        (key(5), transfer(model("tuned"), 1), "insufficient_shares"),
        (owner(), claim(model("tuned")), "nothing_to_claim"),
        (key(5), claim(model("tuned")), "nothing_to_claim"),
    ];
    check(&mut c, cases);
    // A transfer to oneself applies and changes nothing but the nonce and fee.
    let before = c.overlay().prefix(b"shares/").unwrap();
    let r = c.run(vec![c.tx(
        &owner(),
        0,
        Action::TransferShares {
            stream: model("tuned"),
            to: owner().address(),
            shares: 10,
        },
    )]);
    assert_eq!(r, vec![None]);
    assert_eq!(c.overlay().prefix(b"shares/").unwrap(), before);
}

#[derive(Debug, Clone)]
enum Op {
    Settle(u128),
    Transfer { from: usize, to: usize, n: u64 },
    Claim(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (105u128..1_000).prop_map(Op::Settle),
        2 => (0usize..3, 0usize..3, 1u64..6).prop_map(|(from, to, n)| Op::Transfer { from, to, n }),
        1 => (0usize..3).prop_map(Op::Claim),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Any sequence of settlements, transfers and claims among three holders of a model split
    /// into `n` shares: every claim is exactly what the independent account says, and paid in
    /// = claimed + claimable + remainder after every step (with the supply invariant after
    /// every block).
    #[test]
    fn holders_get_exactly_their_pro_rata_part(n in 1u64..12, ops in prop::collection::vec(op(), 1..20)) {
        let mut c = setup();
        let holders = [owner(), key(5), key(6)];
        let st = model("tuned");
        let split = c.tx(&owner(), 0, Action::SplitShares { stream: st.clone(), shares: n });
        prop_assert_eq!(c.run(vec![split]), vec![None]);
        let mut book = Book::default();
        book.split(st.clone(), owner().address(), n);
        let mut claimed = 0u128;
        for (salt, op) in ops.into_iter().enumerate() {
            match op {
                Op::Settle(price) => {
                    if let Some(a) = settle(&mut c, salt as u64, price).get(&st) {
                        book.pay(&st, *a);
                    }
                }
                Op::Transfer { from, to, n: k } => {
                    let (f, t) = (&holders[from], &holders[to]);
                    let has = *book.streams[&st].2.get(&f.address()).unwrap_or(&0);
                    let r = c.run(vec![c.tx(f, 0, Action::TransferShares {
                        stream: st.clone(), to: t.address(), shares: k,
                    })]);
                    if has >= k {
                        prop_assert_eq!(r, vec![None]);
                        book.transfer(&st, f.address(), t.address(), k);
                    } else {
                        prop_assert_eq!(r, vec![Some("insufficient_shares".to_string())]);
                    }
                }
                Op::Claim(i) => {
                    let want = book.take(&st, holders[i].address());
                    let (code, got) = claim(&mut c, &holders[i], &st);
                    if want == 0 {
                        prop_assert_eq!(code.as_deref(), Some("nothing_to_claim"));
                    } else {
                        prop_assert_eq!((code, got), (None, want));
                        claimed += got;
                    }
                }
            }
            let pool = shares::pool_info(&c.overlay(), &st).unwrap().unwrap();
            let open: u128 = holders.iter().map(|h| claimable(&c, &st, h)).sum();
            prop_assert_eq!(pool.paid_in.0, claimed + open + pool.remainder);
            prop_assert_eq!(pool.paid_in.0, book.streams[&st].1);
        }
    }
}
