//! Rewards: emission grows the supply by exactly the schedule (and the supply invariant,
//! checked by TestChain after every block, catches any other growth), delegators are paid pro
//! rata to the base unit while delegations change, commission and withdrawal, performance
//! rewards for settled work and their forfeit on conviction, and the bad inputs.

use opal_ledger::components::{reward_pool, rewards};
use opal_ledger::*;
use opal_testkit::*;
use opal_types::*;

const M: u128 = 1_000_000;
const FEE: u128 = 1_000;

fn supply(c: &TestChain) -> Amount {
    invariants::check_supply(&c.overlay()).unwrap()
}

/// What a block's emission minted (its `RewardsMinted` event).
fn minted(r: &BlockResult) -> Option<Amount> {
    r.events.iter().find_map(|e| match e {
        Event::RewardsMinted { amount, .. } => Some(*amount),
        _ => None,
    })
}

/// One validator, key(100), 10M self-bonded; accounts 1..4 with 10^15 each (so a block's
/// emission is tens of thousands of base units, not a rounding error) and the operator funded.
fn chain(edit: impl FnOnce(&mut Genesis)) -> TestChain {
    let mut g = genesis();
    for a in g.accounts.iter_mut() {
        a.balance = Amount(1_000_000_000_000_000);
    }
    g.accounts.push(GenesisAccount {
        address: key(100).address(),
        balance: Amount(M),
    });
    edit(&mut g);
    TestChain::with_genesis(g)
}

#[test]
fn a_large_supply_after_a_long_halt_still_makes_blocks() {
    // supply × inflation_bps × gap needs more than 128 bits here (about 2^101 × 2^11 × 2^39):
    // the emission must still be computed, not fail the block and halt the chain for good.
    let mut c = chain(|g| {
        g.accounts[0].balance = Amount(1 << 100);
        g.rewards.inflation_bps = 2_000;
    });
    c.block(vec![]);
    c.pause(30 * 24 * 3_600 * 1_000);
    let before = supply(&c);
    let r = c.block(vec![]);
    let minted = minted(&r).expect("a block after the halt mints");
    assert_eq!(supply(&c), before.checked_add(minted).unwrap());
    // About 30/365 of 20%.
    let expect = before.0 / 10_000 * 2_000 / 365 * 30;
    assert!(
        minted.0.abs_diff(expect) < expect / 100,
        "{minted:?} vs {expect}"
    );
    c.block(vec![]);
}

#[test]
fn emission_grows_the_supply_by_exactly_the_schedule() {
    let mut c = chain(|g| g.rewards.inflation_bps = 2_000);
    for _ in 0..30 {
        let before = supply(&c);
        let r = c.block(vec![]);
        let minted = minted(&r).expect("every block mints");
        // One second of block time at 20% a year.
        let want = before.0 * 2_000 * 1_000 / (10_000 * rewards::YEAR_MS);
        assert!(want > 0);
        assert_eq!(minted.0, want);
        assert_eq!(supply(&c).0, before.0 + want);
    }
}

/// The invariant is not a tautology: a state that minted one unit more than the schedule, or
/// holds one unit the records do not explain, fails it.
#[test]
fn the_supply_invariant_catches_minting_outside_the_schedule() {
    let mut c = chain(|_| {});
    c.block(vec![]);
    let o = c.overlay();
    assert!(invariants::check_supply(&o).is_ok());

    let mut bad = o.fork();
    let mut m = rewards::last_mint(&bad).unwrap();
    m.amount = Amount(m.amount.0 + 1);
    bad.put(
        keys::rewards::LAST_MINT.to_vec(),
        borsh::to_vec(&m).unwrap(),
    );
    let e = invariants::check_supply(&bad).unwrap_err().to_string();
    assert!(e.contains("schedule"), "{e}");

    // One more unit in the supply and in an account: balances still sum, the records do not.
    let mut bad = o.fork();
    let s: Amount = borsh::from_slice(&bad.get(keys::SUPPLY).unwrap().unwrap()).unwrap();
    bad.put(
        keys::SUPPLY.to_vec(),
        borsh::to_vec(&Amount(s.0 + 1)).unwrap(),
    );
    let who = key(1).address();
    let mut a = components::accounts::get(&bad, &who).unwrap();
    a.balance = Amount(a.balance.0 + 1);
    components::accounts::set(&mut bad, &who, &a);
    let e = invariants::check_supply(&bad).unwrap_err().to_string();
    assert!(e.contains("minted"), "{e}");
}

/// What each delegation is owed, computed independently: per block, the delegators' part of
/// the validator's reward (after commission), split by each one's share of the validator's
/// shares at that block, in exact rational arithmetic (scaled by 10^18).
struct Model {
    shares: Vec<u128>,
    owed_scaled: Vec<u128>,
    commission: u128,
}

const SCALE: u128 = 1_000_000_000_000_000_000;

impl Model {
    fn block(&mut self, minted: u128, commission_bps: u128) {
        let c = minted * commission_bps / 10_000;
        self.commission += c;
        let d = minted - c;
        let total: u128 = self.shares.iter().sum();
        for (i, s) in self.shares.iter().enumerate() {
            self.owed_scaled[i] += d * s * SCALE / total;
        }
    }
}

#[test]
fn delegators_are_paid_pro_rata_to_the_base_unit_while_delegations_change() {
    let mut c = chain(|g| {
        g.rewards.inflation_bps = 2_000;
        g.rewards.performance_share_bps = 0;
        g.rewards.default_commission_bps = 1_000;
    });
    let op = key(100);
    let (a, b) = (key(1), key(2));
    let start = [c.balance(&a), c.balance(&b)];
    // Delegations: index 0 the operator's self-bond, 1 = a, 2 = b.
    let mut m = Model {
        shares: vec![10 * M, 0, 0],
        owed_scaled: vec![0; 3],
        commission: 0,
    };
    let mut settlements = [0u32; 3];
    let delegate = |c: &TestChain, k: &SecretKey, amount: u128| {
        c.tx(
            k,
            0,
            Action::Delegate {
                validator: op.address(),
                amount: Amount(amount),
            },
        )
    };
    for height in 1..=60u64 {
        let txs = match height {
            5 => vec![delegate(&c, &a, 4 * M)],
            20 => vec![delegate(&c, &b, 6 * M)],
            35 => vec![c.tx(
                &a,
                0,
                Action::Undelegate {
                    validator: op.address(),
                    amount: Amount(2 * M),
                },
            )],
            45 => vec![delegate(&c, &a, 3 * M)],
            _ => vec![],
        };
        let r = c.block(txs);
        assert!(r.txs.iter().all(|t| t.error.is_none()), "{:?}", r.txs);
        let minted = r
            .events
            .iter()
            .find_map(|e| match e {
                Event::RewardsMinted { validators, .. } => Some(validators.0),
                _ => None,
            })
            .unwrap();
        // Begin-block rewarded the shares as they were before this block's transactions.
        m.block(minted, 1_000);
        match height {
            5 => {
                m.shares[1] = 4 * M;
                settlements[1] += 1;
            }
            20 => {
                m.shares[2] = 6 * M;
                settlements[2] += 1;
            }
            35 => {
                m.shares[1] = 2 * M;
                settlements[1] += 1;
            }
            45 => {
                m.shares[1] = 5 * M;
                settlements[1] += 1;
            }
            _ => {}
        }
    }
    // Everyone withdraws in one block (which itself mints: model it first).
    let r = c.block(vec![
        c.tx(&a, 0, Action::WithdrawRewards),
        c.tx(&b, 0, Action::WithdrawRewards),
        c.tx(&op, 0, Action::WithdrawRewards),
    ]);
    assert!(r.txs.iter().all(|t| t.error.is_none()), "{:?}", r.txs);
    let minted = r
        .events
        .iter()
        .find_map(|e| match e {
            Event::RewardsMinted { validators, .. } => Some(validators.0),
            _ => None,
        })
        .unwrap();
    m.block(minted, 1_000);
    for s in settlements.iter_mut() {
        *s += 1;
    }
    let withdrawn = |who: &SecretKey| -> u128 {
        r.txs
            .iter()
            .flat_map(|t| &t.events)
            .find_map(|e| match e {
                Event::RewardsWithdrawn { who: w, amount } if *w == who.address() => Some(amount.0),
                _ => None,
            })
            .unwrap()
    };
    // a's rewards: what its balance gained beyond its principal moves and fees (its
    // undelegated 2M is still unbonding, outside its balance).
    let paid_a = c.balance(&a).0 + 4 * M + 3 * M + 4 * FEE - start[0].0;
    let paid_b = c.balance(&b).0 + 6 * M + 2 * FEE - start[1].0;
    let owed = |i: usize| m.owed_scaled[i] / SCALE;
    for (name, i, paid) in [("a", 1, paid_a), ("b", 2, paid_b)] {
        let want = owed(i);
        println!(
            "{name}: paid {paid}, owed {want}, {} settlements",
            settlements[i]
        );
        assert!(paid <= want, "{name} was paid more than it was owed");
        assert!(
            want - paid <= settlements[i] as u128,
            "{name}: paid {paid}, owed {want}: short by more than a base unit per settlement"
        );
    }
    // The operator: its self-delegation's rewards plus every block's commission, exactly.
    let op_paid = withdrawn(&op);
    let self_owed = owed(0);
    assert!(op_paid <= self_owed + m.commission);
    assert!(self_owed + m.commission - op_paid <= settlements[0] as u128);
    assert!(withdrawn(&a) > 0 && withdrawn(&b) > 0);
    // Nothing is owed any more beyond rounding, and a second withdrawal finds nothing.
    assert_eq!(
        c.run(vec![c.tx(&b, 0, Action::WithdrawRewards)]),
        vec![None],
        "one more block minted for b"
    );
}

#[test]
fn a_commission_raise_is_bounded_in_size_and_frequency() {
    let mut c = chain(|g| {
        g.rewards.default_commission_bps = 1_000;
        g.rewards.max_commission_raise_bps = 100;
        g.rewards.commission_raise_period_ms = 10_000;
    });
    let op = key(100);
    let set =
        |c: &mut TestChain, bps: u32| c.run(vec![c.tx(&op, 0, Action::SetCommission { bps })]);
    assert_eq!(
        set(&mut c, 1_101),
        vec![Some("commission_raise_too_large".into())]
    );
    assert_eq!(set(&mut c, 1_100), vec![None]);
    assert_eq!(
        set(&mut c, 1_150),
        vec![Some("commission_raise_too_soon".into())]
    );
    // A cut is always allowed, at once and by any amount.
    assert_eq!(set(&mut c, 0), vec![None]);
    assert_eq!(
        set(&mut c, 100),
        vec![Some("commission_raise_too_soon".into())]
    );
    c.advance_time_to(c.time_ms + 10_000);
    assert_eq!(set(&mut c, 100), vec![None]);
}

#[test]
fn commission_and_withdrawal_refuse_bad_inputs() {
    let mut c = chain(|g| g.rewards.max_commission_bps = 2_000);
    let op = key(100);
    let codes = c.run(vec![
        c.tx(&key(1), 0, Action::SetCommission { bps: 100 }),
        c.tx(&op, 0, Action::SetCommission { bps: 2_001 }),
        c.tx(&key(2), 0, Action::WithdrawRewards),
    ]);
    assert_eq!(
        codes,
        vec![
            Some("unknown_validator".into()),
            Some("commission_too_high".into()),
            Some("no_rewards".into()),
        ]
    );
    // A commission of 0: the next blocks give the operator no commission.
    assert_eq!(
        c.run(vec![c.tx(&op, 0, Action::SetCommission { bps: 0 })]),
        vec![None]
    );
    let before = reward_pool::commission(&c.overlay(), &op.address()).unwrap();
    c.block(vec![]);
    c.block(vec![]);
    assert_eq!(
        reward_pool::commission(&c.overlay(), &op.address()).unwrap(),
        before
    );
    assert!(
        rewards::withdrawable(&c.overlay(), &op.address())
            .unwrap()
            .0
            > 0
    );
}

fn demo_receipt(c: &TestChain, salt: u64) -> Receipt {
    demo_receipt_with(c, salt, Default::default())
}

fn demo_receipt_with(c: &TestChain, salt: u64, escalation: receipt::Escalation) -> Receipt {
    let file = demo_model_file();
    receipt(
        c,
        Call {
            model: ModelRef::new("digits-q", 1),
            model_hash: Hash(*blake3::hash(&file).as_bytes()),
            input_hash: Hash([1; 32]),
            tier: Tier::Signed,
            escalation,
            salt,
            output_hash: Hash([2; 32]),
            price: Amount(200),
            units: 1,
        },
    )
}

fn perf_chain(audit_bps: u32) -> TestChain {
    let mut c = chain(|g| {
        g.rewards.performance_epoch_blocks = 50;
        g.inference.audit_bps = audit_bps;
    });
    let file = demo_model_file();
    offer_demo_model(
        &mut c,
        [&owner(), &node(), &caller()],
        &file,
        vec![Tier::Signed],
        None,
        200_000,
    );
    c
}

fn performance_paid(c: &mut TestChain, to_height: u64) -> Option<Amount> {
    let mut paid = None;
    while c.height < to_height {
        let r = c.block(vec![]);
        for e in r.events {
            if let Event::PerformanceRewardsPaid { paid: p, .. } = e {
                paid = Some(p);
            }
        }
    }
    paid
}

#[test]
fn verified_work_earns_the_performance_pool() {
    let mut c = perf_chain(0);
    let node_before = c.balance(&node());
    for salt in 0..2 {
        assert_eq!(c.settle_one(&node(), &demo_receipt(&c, salt)), None);
    }
    // 2 receipts of 1 unit at the signed weight 1.
    let points = reward_pool::points(&c.overlay()).unwrap();
    assert_eq!(points, vec![(Role::InferenceNode, node().address(), 2)]);
    let pool = reward_pool::performance_pool(&c.overlay()).unwrap();
    assert!(pool.0 > 0);
    // The only node with points takes the whole pool at the epoch's end.
    let paid = performance_paid(&mut c, 50).expect("paid at height 50");
    assert!(paid.0 >= pool.0, "the pool only grew since");
    assert_eq!(
        reward_pool::performance_pool(&c.overlay()).unwrap(),
        Amount::ZERO
    );
    assert!(reward_pool::points(&c.overlay()).unwrap().is_empty());
    // What the node gained: its performance reward and its fees (2 settlements at 1000 each
    // cost it 2000; each receipt paid it its node fee 90).
    assert_eq!(
        c.balance(&node()).0,
        node_before.0 + paid.0 + 2 * 90 - 2 * FEE
    );
}

#[test]
fn audited_work_earns_nothing_until_it_is_final_and_a_conviction_forfeits_the_epoch() {
    // The chain audits nothing by itself; the caller of receipt `b` pays for a certain audit.
    let mut c = perf_chain(0);
    let a = demo_receipt(&c, 1);
    assert_eq!(c.settle_one(&node(), &a), None);
    let points = |c: &TestChain| -> u64 {
        reward_pool::points(&c.overlay())
            .unwrap()
            .iter()
            .map(|(_, _, p)| *p)
            .sum()
    };
    assert_eq!(points(&c), 1, "a is final at once (no audit possible)");
    let certain = receipt::Escalation {
        audit_bps: 10_000,
        dispute: false,
    };
    let b = demo_receipt_with(&c, 2, certain);
    c.settle_and_draw(&b);
    assert_eq!(points(&c), 1, "b earns nothing while its audit is open");
    // The node never reveals b: convicted as withholding, and a's points go too.
    let deadline = c.case(&b.request_id()).unwrap().deadline_ms;
    c.advance_time_to(deadline + 1_000);
    assert_eq!(
        c.verdict(&b.request_id()),
        Some(components::verification::Outcome::Withheld)
    );
    assert_eq!(points(&c), 0);
    let pool = reward_pool::performance_pool(&c.overlay()).unwrap();
    assert_eq!(performance_paid(&mut c, 50), None, "nobody earned it");
    // The pool carries over, grown by this epoch's share.
    assert!(reward_pool::performance_pool(&c.overlay()).unwrap() > pool);
}

#[test]
fn work_queued_for_an_audit_earns_its_points_when_not_drawn() {
    // At the default rate of 5%, most receipts are not drawn: their points come with the
    // draw of the next block; a drawn one's stay out while its audit is open.
    let mut c = perf_chain(500);
    let mut drawn = 0;
    for salt in 0..10 {
        let r = demo_receipt(&c, 100 + salt);
        assert_eq!(c.settle_one(&node(), &r), None);
        c.block(vec![]);
        if c.case(&r.request_id()).is_some() {
            drawn += 1;
        }
    }
    let points: u64 = reward_pool::points(&c.overlay())
        .unwrap()
        .iter()
        .map(|(_, _, p)| *p)
        .sum();
    assert_eq!(points, 10 - drawn, "{drawn} drawn");
}
