//! Verification by re-execution on a real store (supply invariant checked after every block):
//! held `replay` results, random audits of paid receipts, fraud proofs, challenges with bonds,
//! slashing, and the bad inputs. The model is the real demo model (`models/digits/model.opalq`),
//! executed canonically by the test (as an honest node or watcher would) and by the ledger.

use opal_ledger::canonical::{self, ExecOptions};
use opal_ledger::components::verification::{self, CaseKind, Outcome};
use opal_ledger::components::{inference, staking};
use opal_ledger::events::Event;
use opal_quant::{QuantModel, SplitMix64};
use opal_testkit::{
    caller, demo_model_file, demo_spec, digit_tensor, genesis, key, node, offer_model, owner,
    replay_cost_of, TestChain,
};
use opal_types::receipt::{tensor_list_hash, Escalation};
use opal_types::*;

/// A watcher / resolver.
fn watcher() -> SecretKey {
    key(1)
}

fn model_ref() -> ModelRef {
    ModelRef::new("digits-q", 1)
}

struct World {
    c: TestChain,
    model: QuantModel,
    file: Vec<u8>,
    rng: SplitMix64,
    salt: u64,
}

const NODE_BOND: u128 = 500_000;

/// Genesis with `tweak` applied; the owner registers the canonical demo model (signed + replay,
/// price 100), the node bonds and offers it (fee 90), the caller funds an escrow of 600,000.
fn world(seed: u64, tweak: impl FnOnce(&mut opal_ledger::InferenceParams)) -> World {
    world_with(seed, |g| tweak(&mut g.inference))
}

/// As [`world`], with any change to the genesis (more validators, ...).
fn world_with(seed: u64, tweak: impl FnOnce(&mut opal_ledger::Genesis)) -> World {
    world_registering(seed, tweak, |_| {})
}

/// As [`world_with`], with a change to the demo model's registration.
fn world_registering(
    seed: u64,
    tweak: impl FnOnce(&mut opal_ledger::Genesis),
    register: impl FnOnce(&mut opal_types::registry::ModelSpec),
) -> World {
    let mut g = genesis();
    tweak(&mut g);
    let mut c = TestChain::with_genesis(g);
    let file = demo_model_file();
    let model = canonical::load_model(&file).unwrap();
    let mut spec = demo_spec(&file, vec![Tier::Signed, Tier::Replay], None);
    register(&mut spec);
    offer_model(&mut c, [&owner(), &node(), &caller()], spec, NODE_BOND, 90);
    World {
        c,
        model,
        file,
        rng: SplitMix64::new(seed),
        salt: seed << 32,
    }
}

/// One served request: the receipt plus the data a node keeps to reveal. `lie` answers a
/// wrong output (one bit of the last output value flipped).
struct Served {
    receipt: Receipt,
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
    lied: bool,
}

impl World {
    fn serve(&mut self, tier: Tier, escalation: Escalation, lie: bool) -> Served {
        let x: Vec<f32> = (0..64).map(|_| (self.rng.next_u64() % 17) as f32).collect();
        let inputs = vec![digit_tensor(&x)];
        let mut outputs =
            canonical::run(&self.model, &inputs, u64::MAX, ExecOptions::default()).unwrap();
        if lie {
            *outputs[0].last_mut().unwrap() ^= 1;
        }
        self.salt += 1;
        let receipt = opal_testkit::receipt(
            &self.c,
            opal_testkit::Call {
                model: model_ref(),
                model_hash: Hash(*blake3::hash(&self.file).as_bytes()),
                input_hash: tensor_list_hash(&inputs),
                tier,
                escalation,
                salt: self.salt,
                output_hash: tensor_list_hash(&outputs),
                price: Amount(200),
                units: 1,
            },
        );
        Served {
            receipt,
            inputs,
            outputs,
            lied: lie,
        }
    }

    /// Settle receipts (one tx per 32, within the 16 KiB transaction limit); returns every event.
    fn settle(&mut self, served: &[&Served]) -> Vec<Event> {
        let txs: Vec<Transaction> = served
            .chunks(32)
            .enumerate()
            .map(|(i, ch)| {
                self.c.tx(
                    &node(),
                    i as u64,
                    Action::SettleReceipts {
                        receipts: ch.iter().map(|s| s.receipt.clone()).collect(),
                    },
                )
            })
            .collect();
        let r = self.c.block(txs);
        let mut ev = r.events;
        for t in r.txs {
            assert_eq!(t.code, None, "{:?}", t.error);
            ev.extend(t.events);
        }
        ev
    }

    fn reveal_tx(&self, s: &Served, offset: u64) -> Transaction {
        self.c.tx(
            &node(),
            offset,
            Action::RevealData {
                request_id: s.receipt.request_id(),
                inputs: s.inputs.clone(),
                outputs: s.outputs.clone(),
            },
        )
    }

    fn block(&mut self, txs: Vec<Transaction>) -> (Vec<Option<String>>, Vec<Event>) {
        self.c.block_outcome(txs)
    }
}

fn convictions(ev: &[Event]) -> usize {
    ev.iter()
        .filter(|e| matches!(e, Event::NodeConvicted { .. }))
        .count()
}

/// Audits: the node cheats on a fraction of `signed` receipts; every audit is revealed by the
/// node and resolved by a watcher that re-executes. Returns (audits, convictions, cheats).
fn run_audits(w: &mut World, n: usize, cheat_bps: u64) -> (usize, usize, usize, Vec<Hash>) {
    let mut served = Vec::new();
    for _ in 0..n {
        let lie = w.rng.next_u64() % 10_000 < cheat_bps;
        served.push(w.serve(Tier::Signed, Escalation::default(), lie));
    }
    let cheats = served.iter().filter(|s| s.lied).count();
    let by_id: std::collections::BTreeMap<Hash, usize> = served
        .iter()
        .enumerate()
        .map(|(i, s)| (s.receipt.request_id(), i))
        .collect();
    let (mut audits, mut convicted) = (0, 0);
    let mut convicted_ids = vec![];
    let refs: Vec<&Served> = served.iter().collect();
    for chunk in refs.chunks(128) {
        w.settle(chunk);
        // The next block draws the audits of what the previous one paid.
        let (_, ev) = w.block(vec![]);
        let opened: Vec<usize> = ev
            .iter()
            .filter_map(|e| match e {
                Event::AuditOpened { request_id, .. } => Some(by_id[request_id]),
                _ => None,
            })
            .collect();
        audits += opened.len();
        if opened.is_empty() {
            continue;
        }
        let reveals: Vec<Transaction> = opened
            .iter()
            .enumerate()
            .map(|(k, i)| w.reveal_tx(&served[*i], k as u64))
            .collect();
        let (codes, _) = w.block(reveals);
        assert!(codes.iter().all(Option::is_none), "{codes:?}");
        let resolves: Vec<Transaction> = opened
            .iter()
            .enumerate()
            .map(|(k, i)| {
                w.c.tx(
                    &watcher(),
                    k as u64,
                    Action::Resolve {
                        request_id: served[*i].receipt.request_id(),
                        model: w.file.clone(),
                    },
                )
            })
            .collect();
        let (codes, ev) = w.block(resolves);
        assert!(codes.iter().all(Option::is_none), "{codes:?}");
        for e in &ev {
            if let Event::NodeConvicted { request_id, .. } = e {
                convicted += 1;
                convicted_ids.push(*request_id);
            }
        }
        // Every audit got its verdict: passed exactly for the honest ones.
        for i in &opened {
            let v = w.c.verdict(&served[*i].receipt.request_id());
            if served[*i].lied {
                assert_eq!(v, Some(Outcome::Fraud));
            } else {
                assert_eq!(v, Some(Outcome::AuditPassed));
            }
        }
    }
    for id in &convicted_ids {
        assert!(served[by_id[id]].lied, "an honest receipt was convicted");
    }
    (audits, convicted, cheats, convicted_ids)
}

#[test]
fn a_cheating_node_is_caught_at_the_rate_the_analysis_predicts() {
    // p = 20% audits, the node lies on 25% of 640 receipts; a small slash and no jail so it
    // keeps serving and the catch rate can be counted.
    let mut w = world(7, |p| {
        p.audit_bps = 2_000;
        p.fraud_slash = Amount(1_000);
        p.jail_ms = 0;
    });
    let bond0 = w.c.node_bond();
    let (audits, caught, cheats, _) = run_audits(&mut w, 640, 2_500);
    // Expected catches: cheats * p; binomial sd = sqrt(cheats p (1-p)). Accept +-4 sd.
    let expected = cheats as f64 * 0.2;
    let sd = (cheats as f64 * 0.2 * 0.8).sqrt();
    println!(
        "receipts 640, cheats {cheats}, audits {audits}, caught {caught} (expected {expected:.1} +- {sd:.1})"
    );
    assert!(
        (caught as f64 - expected).abs() <= 4.0 * sd,
        "caught {caught}, expected {expected:.1} +- {sd:.1}"
    );
    let audit_expected = 640.0 * 0.2;
    let audit_sd = (640.0f64 * 0.2 * 0.8).sqrt();
    assert!((audits as f64 - audit_expected).abs() <= 4.0 * audit_sd);
    assert_eq!(w.c.node_bond(), Amount(bond0.0 - 1_000 * caught as u128));
}

#[test]
fn an_honest_node_is_never_slashed() {
    for seed in 1..=4u64 {
        let mut w = world(seed * 1_000, |p| p.audit_bps = 5_000);
        let bond0 = w.c.node_bond();
        let (audits, caught, cheats, _) = run_audits(&mut w, 256, 0);
        assert_eq!((cheats, caught), (0, 0));
        assert!(audits > 64, "only {audits} audits at p = 50%");
        assert_eq!(w.c.node_bond(), bond0, "seed {seed}");
    }
}

#[test]
fn a_replay_result_is_held_then_paid_and_a_fraud_proof_refunds_the_caller() {
    let mut w = world(11, |_| {});
    let honest = w.serve(Tier::Replay, Escalation::default(), false);
    let liar = w.serve(Tier::Replay, Escalation::default(), true);
    let owner0 = w.c.balance(&owner());
    let caller0 = w.c.balance(&caller());
    let ev = w.settle(&[&honest, &liar]);
    let held = ev
        .iter()
        .filter(|e| matches!(e, Event::ReceiptHeld { .. }))
        .count();
    assert_eq!(held, 2);
    let o = w.c.overlay();
    assert_eq!(verification::held_pool(&o).unwrap(), Amount(400));
    assert_eq!(
        inference::escrow(&o, &caller().address(), &node().address())
            .unwrap()
            .balance,
        Amount(600_000 - 400)
    );
    assert_eq!(w.c.balance(&owner()), owner0, "nothing paid while held");

    // Challenging before the data is revealed is refused.
    let early = w.c.tx(
        &watcher(),
        0,
        Action::Challenge {
            request_id: liar.receipt.request_id(),
            claimed_output_hash: Hash([1; 32]),
            model: None,
        },
    );
    let (codes, _) = w.block(vec![early]);
    assert_eq!(codes, vec![Some("not_revealed".into())]);

    let r0 = w.reveal_tx(&honest, 0);
    let r1 = w.reveal_tx(&liar, 1);
    let (codes, _) = w.block(vec![r0, r1]);
    assert_eq!(codes, vec![None, None]);

    // A watcher re-executes the liar's receipt and posts a fraud proof.
    let truth = {
        let out = canonical::run(&w.model, &liar.inputs, u64::MAX, ExecOptions::default()).unwrap();
        tensor_list_hash(&out)
    };
    let watcher0 = w.c.balance(&watcher());
    let bond0 = w.c.node_bond();
    let proof = w.c.tx(
        &watcher(),
        0,
        Action::Challenge {
            request_id: liar.receipt.request_id(),
            claimed_output_hash: truth,
            model: Some(w.file.clone()),
        },
    );
    let (codes, ev) = w.block(vec![proof]);
    assert_eq!(codes, vec![None]);
    assert_eq!(convictions(&ev), 1);
    let p = opal_ledger::InferenceParams::default();
    let slashed = p.fraud_slash.0.min(bond0.0);
    let reward = slashed * p.challenger_reward_bps as u128 / 10_000;
    let fee = opal_ledger::Params::default().min_fee.0;
    assert_eq!(w.c.balance(&watcher()).0, watcher0.0 + reward - fee);
    assert_eq!(w.c.node_bond().0, bond0.0 - slashed);
    assert_eq!(
        w.c.balance(&caller()).0,
        caller0.0 + 200,
        "held price refunded"
    );
    assert_eq!(
        w.c.verdict(&liar.receipt.request_id()),
        Some(Outcome::Fraud)
    );

    // The convicted node is jailed: new receipts do not settle.
    let later = w.serve(Tier::Signed, Escalation::default(), false);
    let ev = w.settle(&[&later]);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::ReceiptRejected { code, .. } if code == "node_jailed"
    )));

    // The honest one is paid when its window ends; the liar's price never is.
    let end = w.c.case(&honest.receipt.request_id()).unwrap().deadline_ms;
    w.c.advance_time_to(end + 1_001);
    assert_eq!(
        w.c.verdict(&honest.receipt.request_id()),
        Some(Outcome::Paid)
    );
    assert!(w.c.balance(&owner()).0 > owner0.0);
    let o = w.c.overlay();
    assert_eq!(verification::held_pool(&o).unwrap(), Amount::ZERO);
    let m = opal_ledger::components::registry::model(&o, &model_ref())
        .unwrap()
        .unwrap();
    assert_eq!((m.calls, m.revenue), (1, Amount(200)));
}

#[test]
fn a_false_challenge_costs_the_challenger_its_bond() {
    let mut w = world(12, |_| {});
    let a = w.serve(Tier::Replay, Escalation::default(), false);
    let b = w.serve(
        Tier::Signed,
        Escalation {
            audit_bps: 0,
            dispute: true,
        },
        false,
    );
    let ev = w.settle(&[&a, &b]);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::ReceiptHeld { .. }))
            .count(),
        2,
        "a disputable signed request is held like replay"
    );
    let (r0, r1) = (w.reveal_tx(&a, 0), w.reveal_tx(&b, 1));
    assert_eq!(w.block(vec![r0, r1]).0, vec![None, None]);
    let bond = opal_ledger::InferenceParams::default().challenge_bond.0;
    let fee = opal_ledger::Params::default().min_fee.0;
    let ch0 = w.c.balance(&watcher()).0;
    let node0 = w.c.balance(&node()).0;
    // Two challenges without proof, each locking a bond.
    let txs = vec![
        w.c.tx(
            &watcher(),
            0,
            Action::Challenge {
                request_id: a.receipt.request_id(),
                claimed_output_hash: Hash([5; 32]),
                model: None,
            },
        ),
        w.c.tx(
            &watcher(),
            1,
            Action::Challenge {
                request_id: b.receipt.request_id(),
                claimed_output_hash: Hash([6; 32]),
                model: None,
            },
        ),
    ];
    assert_eq!(w.block(txs).0, vec![None, None]);
    assert_eq!(w.c.balance(&watcher()).0, ch0 - 2 * bond - 2 * fee);
    // The node resolves the first by re-execution: the challenger was wrong.
    let resolve = w.c.tx(
        &node(),
        0,
        Action::Resolve {
            request_id: a.receipt.request_id(),
            model: w.file.clone(),
        },
    );
    let (codes, ev) = w.block(vec![resolve]);
    assert_eq!(codes, vec![None]);
    assert!(ev.iter().any(|e| matches!(e, Event::DisputeLost { .. })));
    assert_eq!(w.c.verdict(&a.receipt.request_id()), Some(Outcome::Paid));
    // Nobody resolves the second: when its window ends the bond goes to the node anyway.
    let end = w.c.case(&b.receipt.request_id()).unwrap().deadline_ms;
    w.c.advance_time_to(end + 1_001);
    assert_eq!(w.c.verdict(&b.receipt.request_id()), Some(Outcome::Paid));
    assert_eq!(w.c.balance(&watcher()).0, ch0 - 2 * bond - 2 * fee);
    // node: +2 bonds, +2 x 90 fee share, -fees of its reveal tx and resolve tx.
    assert_eq!(w.c.balance(&node()).0, node0 + 2 * bond + 2 * 90 - fee);
    assert_eq!(convictions(&ev), 0);
}

#[test]
fn bad_challenges_and_reveals_are_rejected_without_state_change() {
    let mut w = world(13, |_| {});
    let a = w.serve(Tier::Replay, Escalation::default(), false);
    let liar = w.serve(Tier::Replay, Escalation::default(), true);
    w.settle(&[&a, &liar]);
    let snapshot = |w: &World| {
        (
            w.c.balance(&watcher()),
            w.c.balance(&node()),
            w.c.node_bond(),
            w.c.case(&a.receipt.request_id()),
            w.c.case(&liar.receipt.request_id()),
            verification::held_pool(&w.c.overlay()).unwrap(),
        )
    };
    // Reveals with the wrong data, or from someone else.
    let mut wrong = w.reveal_tx(&a, 0);
    if let Action::RevealData { outputs, .. } = &mut wrong.body.action {
        outputs[0][20] ^= 1;
    }
    let wrong = wrong.body.sign(&node());
    let stranger = w.c.tx(
        &watcher(),
        0,
        Action::RevealData {
            request_id: a.receipt.request_id(),
            inputs: a.inputs.clone(),
            outputs: a.outputs.clone(),
        },
    );
    let before = snapshot(&w);
    let (codes, _) = w.block(vec![wrong, stranger]);
    assert_eq!(
        codes,
        vec![Some("reveal_mismatch".into()), Some("not_your_case".into())]
    );
    assert_eq!(snapshot(&w), before);
    let (r0, r1) = (w.reveal_tx(&a, 0), w.reveal_tx(&liar, 1));
    assert_eq!(w.block(vec![r0, r1]).0, vec![None, None]);

    let challenge = |w: &World, id: Hash, claimed: Hash, model: Option<Vec<u8>>| {
        w.c.tx(
            &watcher(),
            0,
            Action::Challenge {
                request_id: id,
                claimed_output_hash: claimed,
                model,
            },
        )
    };
    let before = snapshot(&w);
    let truth_liar = tensor_list_hash(
        &canonical::run(&w.model, &liar.inputs, u64::MAX, ExecOptions::default()).unwrap(),
    );
    let mut bad_file = w.file.clone();
    *bad_file.last_mut().unwrap() ^= 1;
    let cases = [
        // Unknown receipt.
        (
            challenge(&w, Hash([0xab; 32]), Hash([1; 32]), None),
            "no_case",
        ),
        // A fraud proof whose claimed output is wrong (the node was right).
        (
            challenge(
                &w,
                a.receipt.request_id(),
                Hash([1; 32]),
                Some(w.file.clone()),
            ),
            "wrong_claim",
        ),
        // A fraud proof against the liar, but claiming an output that is not the truth either.
        (
            challenge(
                &w,
                liar.receipt.request_id(),
                Hash([2; 32]),
                Some(w.file.clone()),
            ),
            "wrong_claim",
        ),
        // Claiming the receipt's own output.
        (
            challenge(&w, a.receipt.request_id(), a.receipt.body.output_hash, None),
            "wrong_claim",
        ),
        // Another model file.
        (
            challenge(&w, liar.receipt.request_id(), truth_liar, Some(bad_file)),
            "wrong_model_file",
        ),
        // Resolve with nothing to resolve.
        (
            w.c.tx(
                &watcher(),
                0,
                Action::Resolve {
                    request_id: a.receipt.request_id(),
                    model: w.file.clone(),
                },
            ),
            "nothing_to_resolve",
        ),
    ];
    for (tx, code) in cases {
        let (codes, _) = w.block(vec![tx]);
        assert_eq!(codes, vec![Some(code.to_string())]);
        assert_eq!(snapshot(&w), before, "{code} changed state");
    }
    // After the window: the cases are closed and a challenge says so.
    let end = w.c.case(&a.receipt.request_id()).unwrap().deadline_ms;
    w.c.advance_time_to(end + 1_001);
    let before = snapshot(&w);
    let late = challenge(
        &w,
        liar.receipt.request_id(),
        truth_liar,
        Some(w.file.clone()),
    );
    let (codes, _) = w.block(vec![late]);
    assert_eq!(codes, vec![Some("case_closed".into())]);
    assert_eq!(snapshot(&w), before);
    // Nobody challenged the liar in time: it was paid (the optimistic assumption's cost; the
    // watcher's job is to challenge within the window).
    assert_eq!(w.c.verdict(&liar.receipt.request_id()), Some(Outcome::Paid));
}

#[test]
fn a_node_that_withholds_its_data_is_slashed_and_the_caller_refunded() {
    let mut w = world(14, |_| {});
    let a = w.serve(Tier::Replay, Escalation::default(), false);
    w.settle(&[&a]);
    let caller0 = w.c.balance(&caller());
    let bond0 = w.c.node_bond();
    let end = w.c.case(&a.receipt.request_id()).unwrap().deadline_ms;
    w.c.advance_time_to(end + 1_001);
    assert_eq!(
        w.c.verdict(&a.receipt.request_id()),
        Some(Outcome::Withheld)
    );
    assert_eq!(w.c.balance(&caller()).0, caller0.0 + 200);
    let p = opal_ledger::InferenceParams::default();
    assert_eq!(w.c.node_bond().0, bond0.0 - p.fraud_slash.0);
    assert!(w.c.case(&a.receipt.request_id()).is_none());
    let _ = CaseKind::Held;
}

#[test]
fn a_caller_can_buy_a_higher_audit_rate() {
    let mut w = world(15, |p| p.audit_bps = 0);
    let esc = Escalation {
        audit_bps: 10_000,
        dispute: false,
    };
    let a = w.serve(Tier::Signed, esc, false);
    let b = w.serve(Tier::Signed, Escalation::default(), false);
    let ev = w.settle(&[&a, &b]);
    let premium: Vec<Amount> = ev
        .iter()
        .filter_map(|e| match e {
            Event::AuditPremium { amount, .. } => Some(*amount),
            _ => None,
        })
        .collect();
    assert_eq!(
        premium,
        vec![opal_ledger::InferenceParams::default().audit_fee],
        "the caller pays the full audit fee for a certain audit"
    );
    let (_, ev) = w.block(vec![]);
    let opened: Vec<Hash> = ev
        .iter()
        .filter_map(|e| match e {
            Event::AuditOpened { request_id, .. } => Some(*request_id),
            _ => None,
        })
        .collect();
    assert_eq!(opened, vec![a.receipt.request_id()]);
}

/// The ledger executes whatever block time consensus decided: reveal windows and challenge
/// deadlines are block-time deadlines. This is the hazard BFT time closes
/// (docs/adr/0002-bft-time.md): one block three hours ahead ends the reveal window before an
/// honest node could possibly reveal, and the node is convicted as withholding.
#[test]
fn a_three_hour_time_jump_would_convict_an_honest_node() {
    let mut w = world(21, |_| {});
    let a = w.serve(Tier::Replay, Escalation::default(), false);
    w.settle(&[&a]);
    // The next proposer writes a time three hours ahead (the old rule, "after the parent",
    // accepted it).
    w.c.time_ms += 3 * 3_600_000;
    let (_, ev) = w.block(vec![]);
    assert_eq!(convictions(&ev), 1);
    assert_eq!(
        w.c.verdict(&a.receipt.request_id()),
        Some(Outcome::Withheld)
    );
    // Revealing in the very next block is too late.
    let (codes, _) = w.block(vec![w.reveal_tx(&a, 0)]);
    assert_ne!(codes, vec![None]);
}

/// Under BFT time a committed block is at most `precision` ahead of an honest clock
/// (`opal_consensus::time::TimeBounds::default().precision_ms`, 500 ms; the simulator test
/// `crates/sim/tests/time.rs` shows the bound holds against a Byzantine proposer). A proposer
/// that pushes every block it makes to the limit cannot close a window early: an honest node
/// that reveals within a few seconds of true time is never convicted.
#[test]
fn within_the_bft_time_bound_an_honest_node_always_reveals_in_time() {
    const PRECISION_MS: u64 = 500;
    let mut w = world(22, |_| {});
    let window = opal_ledger::InferenceParams::default().reveal_window_ms;
    assert!(
        window > 10 * PRECISION_MS,
        "windows must dwarf the clock precision"
    );
    let mut true_ms = w.c.time_ms;
    let mut served = vec![];
    for round in 0..8u64 {
        let a = w.serve(Tier::Replay, Escalation::default(), false);
        // Settled in a block whose proposer is Byzantine every other round and pushes its time
        // to the bound; the next block (honest or not) carries the reveal.
        true_ms += 1_000;
        w.c.time_ms = true_ms + if round % 2 == 0 { PRECISION_MS } else { 0 } - 1_000;
        w.settle(&[&a]);
        true_ms += 2_000;
        let t = (true_ms + PRECISION_MS).max(w.c.time_ms + 1);
        w.c.time_ms = t - 1_000;
        let (codes, ev) = w.block(vec![w.reveal_tx(&a, 0)]);
        assert_eq!(codes, vec![None], "round {round}");
        assert_eq!(convictions(&ev), 0);
        true_ms = true_ms.max(w.c.time_ms);
        served.push(a);
    }
    w.c.advance_time_to(
        w.c.time_ms + 2 * opal_ledger::InferenceParams::default().challenge_window_ms,
    );
    for a in &served {
        assert_eq!(w.c.verdict(&a.receipt.request_id()), Some(Outcome::Paid));
    }
}

/// `replay` is refused at registration for a model whose declared re-execution cost is over
/// the chain's `max_replay_cost` (or not declared): no dispute the chain accepts is one it
/// cannot decide.
#[test]
fn replay_is_refused_for_a_model_the_chain_cannot_re_execute() {
    let file = demo_model_file();
    let cost = replay_cost_of(&file).unwrap();
    let mut c = TestChain::with_genesis({
        let mut g = genesis();
        g.inference.max_replay_cost = cost - 1;
        g
    });
    let register = |c: &mut TestChain, spec| {
        let t = c.tx(&owner(), 0, Action::RegisterModel { spec });
        c.run(vec![t])
    };
    let spec = demo_spec(&file, vec![Tier::Signed, Tier::Replay], None);
    assert_eq!(spec.replay_cost, Some(cost));
    assert_eq!(
        register(&mut c, spec.clone()),
        vec![Some("replay_too_costly".to_string())]
    );
    let undeclared = opal_types::registry::ModelSpec {
        replay_cost: None,
        ..spec.clone()
    };
    assert_eq!(
        register(&mut c, undeclared),
        vec![Some("invalid_spec".to_string())]
    );
    // Without `replay` it registers; a result the caller asks to hold for disputes is then
    // refused at settlement (nobody could decide the dispute), not accepted and left undecided.
    let mut w = world_registering(
        5,
        |g| g.inference.max_replay_cost = cost - 1,
        |s| s.tiers = vec![Tier::Signed],
    );
    let held = w.serve(
        Tier::Signed,
        Escalation {
            audit_bps: 0,
            dispute: true,
        },
        false,
    );
    let rejected = w.settle(&[&held]).into_iter().find_map(|e| match e {
        Event::ReceiptRejected { code, .. } => Some(code),
        _ => None,
    });
    assert_eq!(rejected.as_deref(), Some("not_reexecutable"));
}

/// A registration that understates its file's cost cannot make a challenger lose its bond:
/// the first re-execution (any `Resolve` or fraud proof with the registered file) measures
/// the true cost, closes the case `undecidable` (bond back, caller refunded, nobody slashed)
/// and marks the registration misdeclared, after which none of the model's results is held
/// for disputes or audited.
#[test]
fn an_understated_replay_cost_makes_the_dispute_undecidable_and_returns_the_bond() {
    let mut w = world_registering(23, |_| {}, |s| s.replay_cost = Some(1));
    let a = w.serve(Tier::Replay, Escalation::default(), true);
    w.settle(&[&a]);
    let (codes, _) = w.block(vec![w.reveal_tx(&a, 0)]);
    assert_eq!(codes, vec![None]);
    let challenger0 = w.c.balance(&watcher());
    let caller0 = w.c.balance(&caller());
    let bond0 = w.c.node_bond();
    let challenge = w.c.tx(
        &watcher(),
        0,
        Action::Challenge {
            request_id: a.receipt.request_id(),
            claimed_output_hash: Hash([9; 32]),
            model: None,
        },
    );
    let (codes, _) = w.block(vec![challenge]);
    assert_eq!(codes, vec![None]);
    // The challenger itself resolves with the model file: it costs more than declared.
    let resolve = w.c.tx(
        &watcher(),
        0,
        Action::Resolve {
            request_id: a.receipt.request_id(),
            model: w.file.clone(),
        },
    );
    let (codes, ev) = w.block(vec![resolve]);
    assert_eq!(
        codes,
        vec![None],
        "the resolve decides the case as undecidable"
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::CaseUndecidable { .. })));
    let needed = replay_cost_of(&w.file).unwrap();
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::ReplayCostMisdeclared { declared: 1, needed: n, .. } if *n == needed
    )));
    assert_eq!(
        w.c.verdict(&a.receipt.request_id()),
        Some(Outcome::Undecidable)
    );
    let fee = opal_ledger::Params::default().min_fee.0 * 2;
    assert_eq!(
        w.c.balance(&watcher()).0,
        challenger0.0 - fee,
        "the bond came back; only the two fees were spent"
    );
    assert_eq!(
        w.c.balance(&caller()).0,
        caller0.0 + 200,
        "the caller is refunded"
    );
    assert_eq!(
        w.c.node_bond(),
        bond0,
        "nobody is slashed without a decision"
    );
    assert!(w.c.case(&a.receipt.request_id()).is_none());
    // Long after, nothing more happens (no lapse takes the bond).
    w.c.advance_time_to(w.c.time_ms + 200_000);
    assert_eq!(w.c.balance(&watcher()).0, challenger0.0 - fee);
    // The registration is marked: a new `replay` result (always held) is refused.
    let b = w.serve(Tier::Replay, Escalation::default(), false);
    let rejected = w.settle(&[&b]).into_iter().find_map(|e| match e {
        Event::ReceiptRejected { code, .. } => Some(code),
        _ => None,
    });
    assert_eq!(rejected.as_deref(), Some("not_reexecutable"));
}

/// Three validators (keys 100..103, equal stake) and every signed receipt audited.
fn auditors_world(seed: u64) -> World {
    world_with(seed, |g| {
        g.inference.audit_bps = 10_000;
        g.validators = (100..103u8)
            .map(|i| opal_ledger::GenesisValidator {
                name: format!("v{i}"),
                public_key: key(i).public_key(),
                operator: None,
                stake: Amount(10_000_000),
                vrf_key: key(i).vrf_public_key(),
            })
            .collect();
    })
}

fn treasury(w: &World) -> u128 {
    w.c.treasury().0
}

fn stake(w: &World, operator: &Address) -> u128 {
    staking::validator(&w.c.overlay(), operator)
        .unwrap()
        .unwrap()
        .tokens
        .0
}

/// An assigned auditor that does nothing used to let the audit lapse as if it had passed. Now
/// each auditor that let it lapse loses the audit fee from its stake and the audit goes to
/// validators not yet asked, who can still catch the lie; after `MAX_AUDIT_REASSIGN`
/// reassignments (or when nobody is left) it lapses.
#[test]
fn a_lapsed_audit_goes_to_other_auditors_and_the_idle_ones_pay() {
    let mut w = auditors_world(24);
    let fee = opal_ledger::InferenceParams::default().audit_fee.0;
    let a = w.serve(Tier::Signed, Escalation::default(), true);
    w.settle(&[&a]);
    let (_, ev) = w.block(vec![]);
    let first: Vec<Address> = ev
        .iter()
        .find_map(|e| match e {
            Event::AuditOpened { auditors, .. } => Some(auditors.clone()),
            _ => None,
        })
        .expect("the audit opened");
    assert_eq!(first.len(), 2);
    let (codes, _) = w.block(vec![w.reveal_tx(&a, 0)]);
    assert_eq!(codes, vec![None]);
    let before: Vec<u128> = first.iter().map(|o| stake(&w, o)).collect();
    let treasury0 = treasury(&w);
    // Nobody resolves in time.
    let end = w.c.case(&a.receipt.request_id()).unwrap().deadline_ms;
    let mut reassigned = None;
    while w.c.time_ms <= end {
        let (_, ev) = w.block(vec![]);
        for e in ev {
            if let Event::AuditReassigned {
                auditors, missed, ..
            } = e
            {
                reassigned = Some((auditors, missed));
            }
        }
    }
    let (second, missed) = reassigned.expect("the lapsed audit was reassigned");
    assert_eq!(missed.iter().map(|(o, _)| *o).collect::<Vec<_>>(), first);
    assert!(missed.iter().all(|(_, amount)| amount.0 == fee));
    for (o, b) in first.iter().zip(&before) {
        assert_eq!(
            stake(&w, o),
            b - fee,
            "an idle auditor pays the fee it did not earn"
        );
    }
    assert!(treasury(&w) >= treasury0 + 2 * fee);
    assert_eq!(second.len(), 1, "only the validator not asked yet is left");
    assert!(!first.contains(&second[0]));
    let c = w.c.case(&a.receipt.request_id()).expect("still open");
    assert_eq!(c.reassigned, 1);
    assert_eq!(c.auditors, second);
    // The new auditor does its job and catches the lie.
    let resolve = w.c.tx(
        &watcher(),
        0,
        Action::Resolve {
            request_id: a.receipt.request_id(),
            model: w.file.clone(),
        },
    );
    let (codes, ev) = w.block(vec![resolve]);
    assert_eq!(codes, vec![None]);
    assert_eq!(convictions(&ev), 1);
    assert_eq!(w.c.verdict(&a.receipt.request_id()), Some(Outcome::Fraud));
}

#[test]
fn an_audit_nobody_ever_resolves_lapses_after_the_reassignments() {
    let mut w = auditors_world(25);
    let a = w.serve(Tier::Signed, Escalation::default(), false);
    w.settle(&[&a]);
    w.block(vec![]);
    let (codes, _) = w.block(vec![w.reveal_tx(&a, 0)]);
    assert_eq!(codes, vec![None]);
    let mut events = vec![];
    for _ in 0..400 {
        if w.c.case(&a.receipt.request_id()).is_none() {
            break;
        }
        let (_, ev) = w.block(vec![]);
        events.extend(ev);
    }
    assert_eq!(
        w.c.verdict(&a.receipt.request_id()),
        Some(Outcome::AuditLapsed)
    );
    let reassigned = events
        .iter()
        .filter(|e| matches!(e, Event::AuditReassigned { .. }))
        .count();
    // Three validators, two asked first: one reassignment, then nobody is left.
    assert_eq!(reassigned, 1);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::AuditorsPenalized { .. })));
    // Every validator was asked once and paid once.
    let fee = opal_ledger::InferenceParams::default().audit_fee.0;
    for i in 100..103u8 {
        assert_eq!(stake(&w, &key(i).address()), 10_000_000 - fee, "v{i}");
    }
}

/// Execute, without committing, the settlement block of `served` and the block after it,
/// with the proposer's free choices varied (`variant`: time shift and an extra transfer in
/// either block); return the request ids the second block audits.
fn audited_under_variant(w: &World, served: &[&Served], variant: u64) -> Vec<Hash> {
    let proposer = w.c.next_proposer();
    let mut o = w.c.overlay();
    let mut parent = w.c.parent;
    let mut audited = vec![];
    for step in 0..2u64 {
        let height = w.c.height + 1 + step;
        let mut txs = vec![];
        if step == 0 {
            txs.push(w.c.tx(
                &node(),
                0,
                Action::SettleReceipts {
                    receipts: served.iter().map(|s| s.receipt.clone()).collect(),
                },
            ));
        }
        if (variant >> step) & 1 == 1 {
            // An extra transaction the proposer may include or leave out.
            txs.push(w.c.transfer(
                &owner(),
                &caller(),
                1 + variant as u128,
                w.c.nonce(&owner()),
            ));
        }
        let header = BlockHeader {
            chain_id: w.c.chain_id.clone(),
            height,
            // Any time inside the BFT-time window.
            time_ms: w.c.time_ms + 1_000 * (step + 1) + (variant * 37) % 400,
            parent_hash: parent,
            prev_state_root: Hash([0; 32]),
            tx_root: Block::tx_root(&txs),
            tx_count: txs.len() as u32,
            proposer: proposer.public_key(),
            // A fresh proof each time (proofs are randomized); the output is the same.
            beacon: proposer.vrf_beacon(&w.c.chain_id, height),
        };
        parent = header.hash();
        let r = opal_ledger::execute_block(&mut o, &Block::new(header, txs)).unwrap();
        if step == 1 {
            audited = r
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::AuditOpened { request_id, .. } => Some(*request_id),
                    _ => None,
                })
                .collect();
        }
    }
    audited
}

/// The audit draw used the hash of the settlement block, which its proposer chooses: trying
/// block variants changed which receipts were audited (the grinding attack, shown below with
/// the old seed). The draw now uses the next block's VRF beacon, which no variant of either
/// block changes (docs/adr/0003-audit-beacon.md).
#[test]
fn block_variants_cannot_steer_the_audit_draw() {
    let mut w = world(26, |p| p.audit_bps = 5_000);
    let served: Vec<Served> = (0..24)
        .map(|_| w.serve(Tier::Signed, Escalation::default(), false))
        .collect();
    let refs: Vec<&Served> = served.iter().collect();
    let first = audited_under_variant(&w, &refs, 0);
    assert!(
        !first.is_empty() && first.len() < served.len(),
        "{}",
        first.len()
    );
    for variant in 1..16 {
        assert_eq!(
            audited_under_variant(&w, &refs, variant),
            first,
            "variant {variant} changed the audit draw"
        );
    }
    // With the old seed (the settlement block's hash) the same variants steer the draw.
    let old_draw = |parent: Hash| -> Vec<Hash> {
        served
            .iter()
            .map(|s| s.receipt.request_id())
            .filter(|id| verification::audit_draw(&parent, id).0 < 5_000)
            .collect()
    };
    let distinct: std::collections::BTreeSet<Vec<Hash>> = (0..16u64)
        .map(|v| old_draw(Hash::of(Domain::BlockHeader, &v.to_le_bytes())))
        .collect();
    assert!(distinct.len() > 8, "block hashes steer the old draw");
    // A beacon made for another height or by another key is refused by the ledger.
    let proposer = w.c.next_proposer();
    let mut header = BlockHeader {
        chain_id: w.c.chain_id.clone(),
        height: w.c.height + 1,
        time_ms: w.c.time_ms + 1_000,
        parent_hash: w.c.parent,
        prev_state_root: Hash([0; 32]),
        tx_root: Block::tx_root(&[]),
        tx_count: 0,
        proposer: proposer.public_key(),
        beacon: proposer.vrf_beacon(&w.c.chain_id, w.c.height + 2),
    };
    let o = w.c.overlay();
    assert!(opal_ledger::exec::beacon(&o, &header).unwrap().is_err());
    header.beacon = key(77).vrf_beacon(&w.c.chain_id, w.c.height + 1);
    assert!(opal_ledger::exec::beacon(&o, &header).unwrap().is_err());
    header.beacon = proposer.vrf_beacon(&w.c.chain_id, w.c.height + 1);
    assert!(opal_ledger::exec::beacon(&o, &header).unwrap().is_ok());
    let mut o = w.c.overlay();
    header.beacon = key(77).vrf_beacon(&w.c.chain_id, w.c.height + 1);
    assert!(matches!(
        opal_ledger::execute_block(&mut o, &Block::new(header, vec![])),
        Err(opal_ledger::LedgerError::InvalidBlock(_))
    ));
}
