//! LLM receipts (`activations` tier) through the verification machinery, on a real store with
//! the supply invariant checked after every block: audits drawn like any receipt's, disputes of
//! held results, the node's reveal (input, tokens, commitment) checked against what it signed,
//! and the verdict decided by the validators' `CommitteeVote`s (more than two thirds of the
//! power). The votes' content (the off-chain activation check) is what `opal node watch` runs
//! with the real model; here the test plays the validators.

use opal_ledger::components::inference;
use opal_ledger::components::verification::{self, CaseKind, Outcome};
use opal_ledger::events::Event;
use opal_testkit::{caller, committee_genesis, genesis, key, node, offer_model, owner, TestChain};
use opal_types::llm::{self, LlmInput};
use opal_types::receipt::Escalation;
use opal_types::registry::{Licence, ModelFormat, ModelSpec};
use opal_types::*;

/// Validator operators, with powers 4, 3 and 3 (two thirds of 10 needs 7).
fn validator(i: usize) -> SecretKey {
    key(100 + i as u8)
}
fn outsider() -> SecretKey {
    key(1)
}

const GGUF: &[u8] = b"stand-in bytes for a GGUF file: the ledger only hashes them";

const AUDITED: Escalation = Escalation {
    audit_bps: 10_000,
    dispute: false,
};

fn model_ref() -> ModelRef {
    ModelRef::new("smollm2-135m", 1)
}

struct World {
    c: TestChain,
    salt: u64,
}

/// One served LLM request: the receipt and what the node reveals.
struct Served {
    receipt: Receipt,
    input: Vec<u8>,
    tokens: Vec<u8>,
    commitment: Vec<u8>,
}

impl Served {
    fn id(&self) -> Hash {
        self.receipt.request_id()
    }
}

fn world() -> World {
    let g = committee_genesis([&validator(0), &validator(1), &validator(2)]);
    let mut c = TestChain::with_genesis(g);
    c.proposer = validator(0);
    let spec = ModelSpec {
        name: "smollm2-135m".into(),
        version: 1,
        parent: None,
        parent_bps: 0,
        datasets: vec![],
        content_hash: Hash(*blake3::hash(GGUF).as_bytes()),
        size: GGUF.len() as u64,
        format: ModelFormat::Gguf,
        input_schema: "[]".into(),
        output_schema: "[]".into(),
        price: Amount(1),
        licence: Licence::Open,
        tiers: vec![Tier::Signed, Tier::Activations],
        weight_commitment: None,
        replay_cost: None,
    };
    offer_model(&mut c, [&owner(), &node(), &caller()], spec, 500_000, 1);
    World { c, salt: 0 }
}

impl World {
    fn serve(&mut self, tier: Tier, escalation: Escalation) -> Served {
        let input = LlmInput {
            model: model_ref(),
            prompt_tokens: vec![1, 2, 3, self.salt as u32 + 1],
            max_tokens: 8,
            seed: self.salt + 1,
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            repetition_penalty: 1.1,
            stop: vec![],
        };
        let commitment = format!("commitment {}", self.salt + 1).into_bytes();
        self.serve_reply(tier, escalation, input, vec![10u32, 11, 12], commitment)
    }

    /// A receipt for this reply, billed one unit per prompt and output token.
    fn serve_reply(
        &mut self,
        tier: Tier,
        escalation: Escalation,
        input: LlmInput,
        tokens: Vec<u32>,
        commitment: Vec<u8>,
    ) -> Served {
        self.salt += 1;
        let with = (tier == Tier::Activations).then_some(commitment.as_slice());
        let receipt = opal_testkit::receipt(
            &self.c,
            opal_testkit::Call {
                model: model_ref(),
                model_hash: Hash(*blake3::hash(GGUF).as_bytes()),
                input_hash: input.hash(),
                tier,
                escalation,
                salt: self.salt,
                output_hash: llm::output_hash(&tokens, with),
                price: Amount(300),
                units: (input.prompt_tokens.len() + tokens.len()) as u64,
            },
        );
        Served {
            receipt,
            input: input.to_bytes(),
            tokens: llm::tokens_to_bytes(&tokens),
            commitment,
        }
    }

    fn block(&mut self, txs: Vec<Transaction>) -> (Vec<Option<String>>, Vec<Event>) {
        self.c.block_outcome(txs)
    }

    /// Settle one receipt: `None` if it was accepted, else the code it was rejected with.
    fn settle(&mut self, s: &Served) -> Option<String> {
        self.c.settle_one(&node(), &s.receipt)
    }

    fn reveal(&self, s: &Served, outputs: Vec<Vec<u8>>) -> Transaction {
        self.c.tx(
            &node(),
            0,
            Action::RevealData {
                request_id: s.id(),
                inputs: vec![s.input.clone()],
                outputs,
            },
        )
    }

    /// The node's honest reveal: the input, the tokens and the commitment it signed.
    fn reveal_honestly(&self, s: &Served) -> Transaction {
        self.reveal(s, vec![s.tokens.clone(), s.commitment.clone()])
    }

    /// A challenge by the outsider, with (a fraud proof) or without (a dispute) the model.
    fn challenge(&self, s: &Served, model: Option<Vec<u8>>) -> Transaction {
        self.c.tx(
            &outsider(),
            0,
            Action::Challenge {
                request_id: s.id(),
                claimed_output_hash: Hash::ZERO,
                model,
            },
        )
    }

    /// Every validator votes `valid` on an audit; the committee decides it: passed with the
    /// node's bond untouched, or fraud with the node slashed.
    fn all_vote(&mut self, s: &Served, valid: bool, bond_before: Amount) {
        let votes: Vec<_> = (0..3)
            .map(|i| self.c.vote(&validator(i), s.receipt.request_id(), valid))
            .collect();
        let (codes, _) = self.block(votes);
        assert_eq!(codes[..2], [None, None]);
        if valid {
            assert_eq!(
                self.c.verdict(&s.receipt.request_id()),
                Some(Outcome::AuditPassed)
            );
            assert_eq!(self.c.node_bond(), bond_before);
        } else {
            assert_eq!(
                self.c.verdict(&s.receipt.request_id()),
                Some(Outcome::Fraud)
            );
            assert!(self.c.node_bond() < bond_before, "slashed");
        }
    }

    /// Serve an audited activations receipt, settle it and let the next block draw it.
    fn audited(&mut self) -> Served {
        let s = self.serve(Tier::Activations, AUDITED);
        self.draw(s)
    }

    /// Settle an audited receipt and let the next block draw it.
    fn draw(&mut self, s: Served) -> Served {
        self.c.settle_and_draw(&s.receipt);
        s
    }
}

#[test]
fn an_llm_audit_is_revealed_checked_and_passed_by_two_thirds_of_the_validators() {
    let mut w = world();
    let s = w.audited();
    let c = w.c.case(&s.receipt.request_id()).unwrap();
    assert_eq!(c.kind, CaseKind::Audit);
    // The committee is the whole active set, with its powers.
    let mut members: Vec<(Address, u64)> = c.auditors.iter().copied().zip(c.powers).collect();
    members.sort();
    let mut expected: Vec<(Address, u64)> = (0..3)
        .map(|i| (validator(i).address(), if i == 0 { 4 } else { 3 }))
        .collect();
    expected.sort();
    assert_eq!(
        members.iter().map(|m| m.0).collect::<Vec<_>>(),
        expected.iter().map(|m| m.0).collect::<Vec<_>>()
    );
    let p: Vec<u64> = members.iter().map(|m| m.1).collect();
    let unit = p.iter().min().copied().unwrap() / 3;
    assert_eq!(
        p.iter().map(|x| x / unit).collect::<Vec<_>>(),
        expected.iter().map(|m| m.1).collect::<Vec<_>>(),
        "powers proportional to stake 4:3:3"
    );

    // Nobody votes before the data is out; the node's reveal must be exactly what it signed.
    let (codes, _) = w.block(vec![w.c.vote(&validator(0), s.receipt.request_id(), true)]);
    assert_eq!(codes, vec![Some("not_revealed".into())]);
    let bad = [
        vec![s.tokens.clone()], // the commitment left out
        vec![s.tokens.clone(), b"another commitment".to_vec()], // not the signed commitment
        vec![llm::tokens_to_bytes(&[10, 11]), s.commitment.clone()], // other tokens
        vec![s.tokens.clone(), s.commitment.clone(), vec![]], // extra output
    ];
    for outputs in bad {
        let (codes, _) = w.block(vec![w.reveal(&s, outputs)]);
        assert_eq!(codes, vec![Some("reveal_mismatch".into())]);
    }
    let mut other_input = s.input.clone();
    *other_input.last_mut().unwrap() ^= 1;
    let (codes, _) = w.block(vec![w.c.tx(
        &node(),
        0,
        Action::RevealData {
            request_id: s.id(),
            inputs: vec![other_input],
            outputs: vec![s.tokens.clone(), s.commitment.clone()],
        },
    )]);
    assert_eq!(codes, vec![Some("reveal_mismatch".into())]);
    let (codes, _) = w.block(vec![w.reveal_honestly(&s)]);
    assert_eq!(codes, vec![None]);

    // Re-execution on chain does not apply to an LLM.
    let (codes, _) = w.block(vec![w.c.tx(
        &outsider(),
        0,
        Action::Resolve {
            request_id: s.id(),
            model: GGUF.to_vec(),
        },
    )]);
    assert_eq!(codes, vec![Some("not_reexecutable".into())]);
    // Only committee members vote, once each.
    let (codes, _) = w.block(vec![w.c.vote(&outsider(), s.receipt.request_id(), false)]);
    assert_eq!(codes, vec![Some("not_on_committee".into())]);
    let (codes, ev) = w.block(vec![w.c.vote(&validator(0), s.receipt.request_id(), true)]);
    assert_eq!(codes, vec![None]);
    assert!(!ev
        .iter()
        .any(|e| matches!(e, Event::CommitteeDecided { .. })));
    assert_eq!(
        w.c.case(&s.receipt.request_id()).unwrap().votes.len(),
        1,
        "4 of 10 does not decide"
    );
    let (codes, _) = w.block(vec![w.c.vote(&validator(0), s.receipt.request_id(), false)]);
    assert_eq!(codes, vec![Some("already_voted".into())]);
    // 4 + 3 > two thirds of 10: passed; the majority shares the audit fee by power.
    let (codes, ev) = w.block(vec![w.c.vote(&validator(1), s.receipt.request_id(), true)]);
    assert_eq!(codes, vec![None]);
    let paid = ev
        .iter()
        .find_map(|e| match e {
            Event::CommitteeDecided {
                valid: true,
                paid,
                power_for,
                power_total,
                ..
            } => {
                assert!(*power_for * 3 > *power_total * 2);
                Some(paid.clone())
            }
            _ => None,
        })
        .expect("decided");
    assert_eq!(
        w.c.verdict(&s.receipt.request_id()),
        Some(Outcome::AuditPassed)
    );
    assert!(w.c.case(&s.receipt.request_id()).is_none());
    let audit_fee = inference::params(&w.c.overlay()).unwrap().audit_fee;
    let share = |i: usize| {
        paid.iter()
            .find(|(a, _)| *a == validator(i).address())
            .map(|(_, x)| x.0)
            .unwrap()
    };
    assert_eq!(paid.len(), 2);
    let total: u128 = paid.iter().map(|(_, x)| x.0).sum();
    assert!(total > 0 && total <= audit_fee.0, "{paid:?}");
    // Shares by power, 4:3 (floor division).
    assert!((share(0) * 3).abs_diff(share(1) * 4) <= 7, "{paid:?}");
    // The node keeps its bond; a late vote finds the case closed.
    assert_eq!(w.c.node_bond(), Amount(500_000));
    let (codes, _) = w.block(vec![w.c.vote(&validator(2), s.receipt.request_id(), false)]);
    assert_eq!(codes, vec![Some("case_closed".into())]);
}

#[test]
fn a_committee_that_finds_the_commitment_invalid_convicts_the_node() {
    let mut w = world();
    let s = w.audited();
    let caller_before = w.c.balance(&caller());
    let (codes, _) = w.block(vec![w.reveal_honestly(&s)]);
    assert_eq!(codes, vec![None]);
    // 3 + 3 = 6 of 10 is not enough either way.
    let (codes, ev) = w.block(vec![
        w.c.vote(&validator(1), s.receipt.request_id(), false),
        w.c.vote(&validator(2), s.receipt.request_id(), false),
    ]);
    assert_eq!(codes, vec![None, None]);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::CommitteeVoted { valid: false, .. }))
            .count(),
        2
    );
    assert!(w.c.case(&s.receipt.request_id()).is_some());
    let (codes, ev) = w.block(vec![w.c.vote(&validator(0), s.receipt.request_id(), false)]);
    assert_eq!(codes, vec![None]);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::NodeConvicted {
            outcome: Outcome::Fraud,
            ..
        }
    )));
    assert_eq!(w.c.verdict(&s.receipt.request_id()), Some(Outcome::Fraud));
    // Slashed, jailed, the caller compensated for the price it paid.
    assert!(w.c.node_bond() < Amount(500_000));
    assert!(
        verification::jailed_until(&w.c.overlay(), &node().address(), w.c.time_ms)
            .unwrap()
            .is_some()
    );
    assert_eq!(w.c.balance(&caller()).0, caller_before.0 + 300);
    // A jailed node's next receipt is refused.
    let s2 = w.serve(Tier::Activations, Escalation::default());
    assert_eq!(w.settle(&s2), Some("node_jailed".into()));
}

#[test]
fn a_disputed_llm_result_is_decided_by_the_committee_either_way() {
    for node_honest in [true, false] {
        let mut w = world();
        let held = Escalation {
            audit_bps: 0,
            dispute: true,
        };
        let s = w.serve(Tier::Activations, held);
        assert_eq!(w.settle(&s), None);
        assert_eq!(
            w.c.case(&s.receipt.request_id()).unwrap().kind,
            CaseKind::Held
        );
        let (codes, _) = w.block(vec![w.reveal_honestly(&s)]);
        assert_eq!(codes, vec![None]);
        // Nothing to vote on until someone disputes it; a fraud proof needs re-execution.
        let (codes, _) = w.block(vec![w.c.vote(&validator(0), s.receipt.request_id(), false)]);
        assert_eq!(codes, vec![Some("not_committee_case".into())]);
        let (codes, _) = w.block(vec![w.challenge(&s, Some(GGUF.to_vec()))]);
        assert_eq!(codes, vec![Some("not_reexecutable".into())]);
        let challenger_before = w.c.balance(&outsider());
        let node_before = w.c.balance(&node());
        let (codes, _) = w.block(vec![w.challenge(&s, None)]);
        assert_eq!(codes, vec![None]);
        let c = w.c.case(&s.receipt.request_id()).unwrap();
        assert_eq!(
            c.auditors.len(),
            3,
            "the dispute's committee is the active set"
        );
        let bond = c.dispute.unwrap().bond;
        let (codes, ev) = w.block(vec![
            w.c.vote(&validator(0), s.receipt.request_id(), node_honest),
            w.c.vote(&validator(2), s.receipt.request_id(), node_honest),
        ]);
        assert_eq!(codes, vec![None, None]);
        let min_fee = opal_ledger::Params::default().min_fee.0;
        if node_honest {
            assert_eq!(w.c.verdict(&s.receipt.request_id()), Some(Outcome::Paid));
            assert!(ev.iter().any(|e| matches!(e, Event::DisputeLost { .. })));
            assert!(ev.iter().any(|e| matches!(e, Event::ReceiptSettled { .. })));
            assert_eq!(
                w.c.balance(&outsider()).0,
                challenger_before.0 - min_fee - bond.0
            );
            assert!(w.c.balance(&node()).0 >= node_before.0 + bond.0);
        } else {
            assert_eq!(w.c.verdict(&s.receipt.request_id()), Some(Outcome::Fraud));
            let reward = ev
                .iter()
                .find_map(|e| match e {
                    Event::NodeConvicted { prover, reward, .. } => {
                        assert_eq!(*prover, Some(outsider().address()));
                        Some(*reward)
                    }
                    _ => None,
                })
                .expect("convicted");
            assert!(reward.0 > 0);
            // The bond came back, plus the reward.
            assert_eq!(
                w.c.balance(&outsider()).0,
                challenger_before.0 - min_fee + reward.0
            );
        }
        verification::check_held_pool(&w.c.overlay()).unwrap();
    }
}

#[test]
fn undecided_llm_cases_lapse_without_punishing_anyone() {
    let mut w = world();
    let p = inference::params(&w.c.overlay()).unwrap();
    // A dispute nobody decides: the challenger gets its bond back, the result is paid.
    let s = w.serve(
        Tier::Activations,
        Escalation {
            audit_bps: 0,
            dispute: true,
        },
    );
    assert_eq!(w.settle(&s), None);
    let (codes, _) = w.block(vec![w.reveal_honestly(&s)]);
    assert_eq!(codes, vec![None]);
    let before = w.c.balance(&outsider());
    let (codes, _) = w.block(vec![w.challenge(&s, None)]);
    assert_eq!(codes, vec![None]);
    let (codes, _) = w.block(vec![w.c.vote(&validator(0), s.receipt.request_id(), false)]);
    assert_eq!(codes, vec![None]);
    let mut lapsed = false;
    let end = w.c.time_ms + p.challenge_window_ms + 2_000;
    while w.c.time_ms < end {
        let (_, ev) = w.block(vec![]);
        lapsed |= ev.iter().any(|e| matches!(e, Event::DisputeLapsed { .. }));
    }
    assert!(lapsed);
    assert_eq!(w.c.verdict(&s.receipt.request_id()), Some(Outcome::Paid));
    let min_fee = opal_ledger::Params::default().min_fee.0;
    assert_eq!(w.c.balance(&outsider()).0, before.0 - min_fee);
    assert_eq!(w.c.node_bond(), Amount(500_000));
    // An audit nobody decides lapses.
    let a = w.audited();
    let (codes, _) = w.block(vec![w.reveal_honestly(&a)]);
    assert_eq!(codes, vec![None]);
    let end = w.c.time_ms + p.challenge_window_ms + 2_000;
    w.c.advance_time_to(end);
    assert_eq!(
        w.c.verdict(&a.receipt.request_id()),
        Some(Outcome::AuditLapsed)
    );
    // An audit the node never reveals is a withheld result, punished like a lie.
    let b = w.audited();
    let end = w.c.time_ms + p.reveal_window_ms + 2_000;
    w.c.advance_time_to(end);
    assert_eq!(
        w.c.verdict(&b.receipt.request_id()),
        Some(Outcome::Withheld)
    );
    assert!(w.c.node_bond() < Amount(500_000));
}

#[test]
fn llm_royalties_are_per_token_and_a_node_that_under_bills_them_cannot_reveal() {
    let mut w = world();
    // The model's price (1) is per token: the owner gets 1 x (4 prompt + 3 output) tokens.
    let s = w.serve(Tier::Activations, Escalation::default());
    let tx = w.c.tx(
        &node(),
        0,
        Action::SettleReceipts {
            receipts: vec![s.receipt.clone()],
        },
    );
    let (codes, ev) = w.block(vec![tx]);
    assert_eq!(codes, vec![None]);
    let payouts = ev
        .iter()
        .find_map(|e| match e {
            Event::ReceiptSettled { payouts, .. } => Some(payouts.clone()),
            _ => None,
        })
        .expect("settled");
    let owner_paid = payouts
        .iter()
        .find(|p| p.role == "owner")
        .map(|p| p.amount)
        .unwrap();
    assert_eq!(owner_paid, Amount(7), "{payouts:?}");

    // A node that bills 1 unit for 7 tokens (to keep the royalties) is caught at its reveal:
    // the ledger refuses it, so the audit ends as withheld and the node is convicted.
    let mut cheat = w.serve(
        Tier::Activations,
        Escalation {
            audit_bps: 10_000,
            dispute: false,
        },
    );
    let mut body = cheat.receipt.body.clone();
    body.units = 1;
    cheat.receipt = body.sign(&node());
    assert_eq!(w.settle(&cheat), None);
    w.block(vec![]);
    assert_eq!(
        w.c.case(&cheat.receipt.request_id()).unwrap().kind,
        CaseKind::Audit
    );
    let (codes, _) = w.block(vec![w.reveal_honestly(&cheat)]);
    assert_eq!(codes, vec![Some("reveal_units_mismatch".into())]);
    let p = inference::params(&w.c.overlay()).unwrap();
    let end = w.c.time_ms + p.reveal_window_ms + 2_000;
    w.c.advance_time_to(end);
    assert_eq!(
        w.c.verdict(&cheat.receipt.request_id()),
        Some(Outcome::Withheld)
    );
}

/// A `signed` LLM receipt carries no commitment, yet it is checked: drawn for audit (or held
/// for disputes when the caller asked), revealed as exactly the signed input and tokens (no
/// commitment), and decided by the validators' committee, which re-checks every token against
/// the model (`opal_verify::activations::verify_signed`).
#[test]
fn signed_llm_receipts_are_audited_and_disputable_by_the_committee() {
    let mut w = world();
    let s = w.serve(Tier::Signed, AUDITED);
    let s = w.draw(s);
    let c = w.c.case(&s.receipt.request_id()).unwrap();
    assert_eq!(c.kind, CaseKind::Audit);
    assert_eq!(c.auditors.len(), 3, "the committee is the active set");
    // The reveal is the input and the tokens: a commitment is not part of a signed reply.
    for outputs in [
        vec![s.tokens.clone(), s.commitment.clone()],
        vec![llm::tokens_to_bytes(&[10, 11])],
        vec![],
    ] {
        let (codes, _) = w.block(vec![w.reveal(&s, outputs)]);
        assert_eq!(codes, vec![Some("reveal_mismatch".into())]);
    }
    let (codes, _) = w.block(vec![w.reveal(&s, vec![s.tokens.clone()])]);
    assert_eq!(codes, vec![None]);
    let bond_before = w.c.node_bond();
    let (codes, _) = w.block(vec![
        w.c.vote(&validator(0), s.receipt.request_id(), false),
        w.c.vote(&validator(1), s.receipt.request_id(), false),
    ]);
    assert_eq!(codes, vec![None, None]);
    assert_eq!(w.c.verdict(&s.receipt.request_id()), Some(Outcome::Fraud));
    assert!(w.c.node_bond() < bond_before, "slashed");

    // A signed receipt the caller asked to hold for disputes is held, and a dispute goes to
    // the committee (a fraud proof would need re-execution, which an LLM has not).
    let mut w = world();
    let d = w.serve(
        Tier::Signed,
        Escalation {
            audit_bps: 0,
            dispute: true,
        },
    );
    assert_eq!(w.settle(&d), None);
    assert_eq!(
        w.c.case(&d.receipt.request_id()).unwrap().kind,
        CaseKind::Held
    );
    let (codes, _) = w.block(vec![w.reveal(&d, vec![d.tokens.clone()])]);
    assert_eq!(codes, vec![None]);
    let (codes, _) = w.block(vec![w.challenge(&d, Some(GGUF.to_vec()))]);
    assert_eq!(codes, vec![Some("not_reexecutable".into())]);
    let (codes, _) = w.block(vec![w.challenge(&d, None)]);
    assert_eq!(codes, vec![None]);
    let (codes, _) = w.block(vec![
        w.c.vote(&validator(0), d.receipt.request_id(), true),
        w.c.vote(&validator(2), d.receipt.request_id(), true),
    ]);
    assert_eq!(codes, vec![None, None]);
    assert_eq!(w.c.verdict(&d.receipt.request_id()), Some(Outcome::Paid));
    verification::check_held_pool(&w.c.overlay()).unwrap();
}

/// The real SmolLM2 GGUF (`OPAL_SMOLLM2_GGUF`, else `scripts/fetch-smollm2`); `None` skips the
/// test loudly (in CI, `CI=true`, a missing model fails it).
fn real_model() -> Option<opal_llm::LlmModel> {
    let path = match std::env::var("OPAL_SMOLLM2_GGUF") {
        Ok(p) => Some(std::path::PathBuf::from(p)),
        Err(_) => std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../scripts/fetch-smollm2"
            ))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().into()),
    }
    .filter(|p: &std::path::PathBuf| p.is_file());
    match path {
        Some(p) => Some(opal_llm::LlmModel::load(&p).expect("load SmolLM2")),
        None if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("CI: the SmolLM2 GGUF is required (OPAL_SMOLLM2_GGUF or scripts/fetch-smollm2)")
        }
        None => {
            eprintln!("SKIPPING: no SmolLM2 GGUF (set OPAL_SMOLLM2_GGUF)");
            None
        }
    }
}

/// A validator's vote on an LLM case, from the data the node revealed on chain: the whole
/// off-chain check (what `opal node watch` runs): `opal_llm::verify_reply` with the chain's
/// commitment parameters, read from the chain's `Params`, for an `activations` reply, and
/// `opal_llm::verify_tokens` for a `signed` one.
fn validator_check(w: &World, m: &opal_llm::LlmModel, s: &Served) -> Result<(), String> {
    let case = w.c.case(&s.receipt.request_id()).expect("open case");
    let rev = case.revealed.expect("revealed");
    let input = LlmInput::from_bytes(&rev.inputs[0]).map_err(|e| e.to_string())?;
    let tokens = llm::tokens_from_bytes(&rev.outputs[0]).map_err(|e| e.to_string())?;
    let p = opal_ledger::exec::params(&w.c.overlay()).unwrap();
    let params = opal_llm::CommitParams {
        chunk_size: p.llm_commit_chunk,
        top_k: p.llm_commit_top_k,
    };
    let spec = opal_llm::ReplySpec {
        prompt_tokens: &input.prompt_tokens,
        sampling: sampling_of(&input),
        max_tokens: input.max_tokens as usize,
        stop: &input.stop,
    };
    let checked = match rev.outputs.get(1) {
        Some(c) => {
            let c = opal_llm::ActivationCommitment::from_bytes(c).map_err(|e| e.to_string())?;
            opal_llm::verify_reply(m, &spec, &tokens, &c, &params)
        }
        None => opal_llm::verify_tokens(m, &spec, &tokens),
    };
    checked
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", e.code()))
}

fn sampling_of(input: &LlmInput) -> opal_llm::SamplingParams {
    opal_llm::SamplingParams {
        seed: input.seed,
        temperature: input.temperature,
        top_p: input.top_p,
        top_k: input.top_k as usize,
        repetition_penalty: input.repetition_penalty,
    }
}

/// The request every real-model test sends: a short chat turn, sampled at temperature 0.7.
fn chat_input(m: &opal_llm::LlmModel, seed: u64) -> LlmInput {
    let text = m
        .apply_chat_template(&[opal_llm::ChatMessage::new(
            "user",
            "Say hello in three words.",
        )])
        .unwrap();
    LlmInput {
        model: model_ref(),
        prompt_tokens: m.tokenize(&text).unwrap(),
        max_tokens: 64,
        seed,
        temperature: 0.7,
        top_p: 0.9,
        top_k: 40,
        repetition_penalty: 1.1,
        stop: vec![],
    }
}

/// Signed LLM replies checked by their tokens alone, on the real model: the honest reply
/// passes and stands; one sampled with another seed than the caller signed, one with a token
/// changed, and one padded past its end each fail the validators' check and are convicted.
#[test]
fn a_signed_llm_reply_that_is_not_the_models_is_convicted_by_the_committee() {
    let Some(m) = real_model() else { return };
    let input = chat_input(&m, 5);
    let req = |seed: u64| opal_llm::GenerateRequest {
        prompt_tokens: input.prompt_tokens.clone(),
        max_tokens: input.max_tokens as usize,
        sampling: opal_llm::SamplingParams {
            seed,
            ..sampling_of(&input)
        },
        stop: vec![],
        commit_activations: None,
    };
    let honest = m.generate(&req(5), &mut |_| true).unwrap().tokens;
    let other_seed = m.generate(&req(6), &mut |_| true).unwrap().tokens;
    assert_ne!(honest, other_seed, "another seed samples another reply");
    let mut changed = honest.clone();
    let mid = changed.len() / 2;
    changed[mid] = (changed[mid] + 1) % m.info().vocab_size as u32;
    let padded = m.generate_past_end(&req(5)).unwrap().tokens;
    let cases = [
        (honest, None),
        (other_seed, Some("token_mismatch")),
        (changed, Some("token_mismatch")),
        (padded, Some("sampled_past_end")),
    ];
    for (tokens, failure) in cases {
        let mut w = world();
        let bond_before = w.c.node_bond();
        let s = w.serve_reply(Tier::Signed, AUDITED, input.clone(), tokens, vec![]);
        let s = w.draw(s);
        let (codes, _) = w.block(vec![w.reveal(&s, vec![s.tokens.clone()])]);
        assert_eq!(codes, vec![None]);
        let verdict = validator_check(&w, &m, &s);
        match failure {
            None => assert_eq!(verdict, Ok(())),
            Some(code) => {
                let why = verdict
                    .clone()
                    .expect_err("accepted a reply not the model's");
                assert!(why.starts_with(code), "expected {code}, got {why}");
            }
        }
        w.all_vote(&s, verdict.is_ok(), bond_before);
    }
}

/// A node that samples on past the end-of-turn token and bills the padding (each padded token
/// is a unit of price and royalties): its tokens and commitment are the model's own, its
/// reveal matches what it signed and the units it billed, but the validators' check finds where
/// generation had to stop, votes it invalid, and the committee convicts it. The honest reply to
/// the same request passes. Real model, real commitments, the chain's parameters.
#[test]
fn a_reply_padded_past_its_end_and_billed_is_convicted_by_the_committee() {
    let Some(m) = real_model() else { return };
    let mut w = world();
    let p = opal_ledger::exec::params(&w.c.overlay()).unwrap();
    let input = chat_input(&m, 3);
    let req = opal_llm::GenerateRequest {
        prompt_tokens: input.prompt_tokens.clone(),
        max_tokens: input.max_tokens as usize,
        sampling: sampling_of(&input),
        stop: vec![],
        // The node commits with the chain's parameters.
        commit_activations: Some(opal_llm::CommitParams {
            chunk_size: p.llm_commit_chunk,
            top_k: p.llm_commit_top_k,
        }),
    };
    let honest = m.generate(&req, &mut |_| true).unwrap();
    let padded = m.generate_past_end(&req).unwrap();
    assert!(
        honest.tokens.len() < padded.tokens.len(),
        "the honest reply ends by itself"
    );

    for (g, node_honest) in [(honest, true), (padded, false)] {
        let bond_before = w.c.node_bond();
        let s = w.serve_reply(
            Tier::Activations,
            AUDITED,
            input.clone(),
            g.tokens.clone(),
            g.commitment.as_ref().unwrap().to_bytes(),
        );
        assert_eq!(
            s.receipt.body.units as usize,
            input.prompt_tokens.len() + g.tokens.len(),
            "every sampled token is billed"
        );
        let s = w.draw(s);
        // The reveal is exactly what the node signed and billed: the ledger accepts it.
        let (codes, _) = w.block(vec![w.reveal_honestly(&s)]);
        assert_eq!(codes, vec![None]);
        let verdict = validator_check(&w, &m, &s);
        if node_honest {
            assert_eq!(verdict, Ok(()));
        } else {
            let why = verdict.clone().expect_err("padding accepted");
            assert!(why.starts_with("sampled_past_end"), "{why}");
        }
        w.all_vote(&s, node_honest, bond_before);
    }
}

/// The chain fixes the LLM commitment parameters (today's defaults 32 / 128), in genesis: a
/// genesis JSON without them gets the defaults, out-of-range values are refused, and the
/// stored `Params` carry them (what the serving node and the verifiers read).
#[test]
fn the_chain_fixes_the_llm_commitment_parameters() {
    let p = opal_ledger::Params::default();
    assert_eq!((p.llm_commit_chunk, p.llm_commit_top_k), (32, 128));
    let mut json: serde_json::Value = serde_json::from_str(&genesis().to_json()).unwrap();
    let params = json["params"].as_object_mut().unwrap();
    params.remove("llm_commit_chunk");
    params.remove("llm_commit_top_k");
    let g = opal_ledger::Genesis::from_json(&json.to_string()).unwrap();
    assert_eq!(g.params, p);
    for (chunk, k) in [(0, 128), (32, 0), (4097, 128), (32, 4097)] {
        let mut g = genesis();
        g.params.llm_commit_chunk = chunk;
        g.params.llm_commit_top_k = k;
        assert!(g.validate().is_err(), "{chunk}/{k} accepted");
    }
    let mut g = genesis();
    g.params.llm_commit_chunk = 64;
    g.params.llm_commit_top_k = 256;
    g.validate().unwrap();
    let c = TestChain::with_genesis(g);
    let stored = opal_ledger::exec::params(&c.overlay()).unwrap();
    assert_eq!(
        (stored.llm_commit_chunk, stored.llm_commit_top_k),
        (64, 256)
    );
}
