//! `signed` receipts of float ONNX models through the verification machinery (issue 14, item
//! 7): before, such receipts were never checked, so a node could answer anything for a float
//! model and be paid. Now they are audited like any receipt, disputable when the caller asks,
//! revealed as tensors (checked against both signed hashes), and decided by the validators'
//! committee, whose members re-run the model with tract off chain and compare within a
//! tolerance (`opal_verify::float`, run by `opal node watch`); here the test plays the
//! validators. On a real store, with the supply invariant checked after every block.

use opal_ledger::components::verification::{self, CaseKind, Outcome};
use opal_ledger::events::Event;
use opal_testkit::{
    caller, committee_genesis, digit_tensor, key, node, offer_model, owner, TestChain,
};
use opal_types::receipt::{tensor_list_hash, Escalation};
use opal_types::registry::{Licence, ModelFormat, ModelSpec};
use opal_types::*;

/// Validator operators, with powers 4, 3 and 3 (two thirds of 10 needs 7).
fn validator(i: usize) -> SecretKey {
    key(100 + i as u8)
}
fn outsider() -> SecretKey {
    key(1)
}

fn onnx_file() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.onnx"
    ))
    .unwrap()
}

fn model_ref() -> ModelRef {
    ModelRef::new("digits", 1)
}

struct World {
    c: TestChain,
    salt: u64,
}

struct Served {
    receipt: Receipt,
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
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
    let file = onnx_file();
    let spec = ModelSpec {
        name: "digits".into(),
        version: 1,
        parent: None,
        parent_bps: 0,
        datasets: vec![],
        content_hash: Hash(*blake3::hash(&file).as_bytes()),
        size: file.len() as u64,
        format: ModelFormat::Onnx,
        input_schema: "[]".into(),
        output_schema: "[]".into(),
        price: Amount(1),
        licence: Licence::Open,
        tiers: vec![Tier::Signed],
        weight_commitment: None,
        replay_cost: None,
    };
    offer_model(&mut c, [&owner(), &node(), &caller()], spec, 500_000, 1);
    World { c, salt: 0 }
}

impl World {
    fn serve(&mut self, escalation: Escalation) -> Served {
        self.salt += 1;
        let inputs = vec![digit_tensor(&[self.salt as f32; 64])];
        let outputs = vec![digit_tensor(&[0.1, 0.9])];
        let receipt = opal_testkit::receipt(
            &self.c,
            opal_testkit::Call {
                model: model_ref(),
                model_hash: Hash(*blake3::hash(&onnx_file()).as_bytes()),
                input_hash: tensor_list_hash(&inputs),
                tier: Tier::Signed,
                escalation,
                salt: self.salt,
                output_hash: tensor_list_hash(&outputs),
                price: Amount(300),
                units: 1,
            },
        );
        Served {
            receipt,
            inputs,
            outputs,
        }
    }

    fn block(&mut self, txs: Vec<Transaction>) -> (Vec<Option<String>>, Vec<Event>) {
        self.c.block_outcome(txs)
    }

    fn settle(&mut self, s: &Served) -> Option<String> {
        self.c.settle_one(&node(), &s.receipt)
    }

    fn reveal(&self, s: &Served, inputs: Vec<Vec<u8>>, outputs: Vec<Vec<u8>>) -> Transaction {
        self.c.tx(
            &node(),
            0,
            Action::RevealData {
                request_id: s.id(),
                inputs,
                outputs,
            },
        )
    }

    fn audited(&mut self) -> Served {
        let s = self.serve(Escalation {
            audit_bps: 10_000,
            dispute: false,
        });
        // A signed receipt of a float model is drawn for audit.
        self.c.settle_and_draw(&s.receipt);
        s
    }
}

#[test]
fn a_float_models_signed_receipt_is_audited_by_the_committee_and_a_lie_is_convicted() {
    let mut w = world();
    let s = w.audited();
    let c = w.c.case(&s.receipt.request_id()).unwrap();
    assert_eq!(c.kind, CaseKind::Audit);
    assert_eq!(c.auditors.len(), 3, "the committee is the whole active set");
    // The reveal is tensors, and must be exactly what the caller and the node signed.
    let (codes, _) = w.block(vec![w.reveal(
        &s,
        s.inputs.clone(),
        vec![digit_tensor(&[0.2, 0.8])],
    )]);
    assert_eq!(codes, vec![Some("reveal_mismatch".into())]);
    let (codes, _) = w.block(vec![w.reveal(
        &s,
        vec![digit_tensor(&[9.0; 64])],
        s.outputs.clone(),
    )]);
    assert_eq!(codes, vec![Some("reveal_mismatch".into())]);
    let (codes, _) = w.block(vec![w.reveal(&s, s.inputs.clone(), s.outputs.clone())]);
    assert_eq!(codes, vec![None]);
    // Not bit-exact, so never decided by in-block re-execution.
    let (codes, _) = w.block(vec![w.c.tx(
        &outsider(),
        0,
        Action::Resolve {
            request_id: s.id(),
            model: onnx_file(),
        },
    )]);
    assert_eq!(codes, vec![Some("not_reexecutable".into())]);
    let (codes, _) = w.block(vec![w.c.vote(&outsider(), s.receipt.request_id(), false)]);
    assert_eq!(codes, vec![Some("not_on_committee".into())]);
    // The members re-ran the model and found other outputs: 4 + 3 of 10 convicts.
    let caller_before = w.c.balance(&caller());
    let (codes, ev) = w.block(vec![
        w.c.vote(&validator(0), s.receipt.request_id(), false),
        w.c.vote(&validator(1), s.receipt.request_id(), false),
    ]);
    assert_eq!(codes, vec![None, None]);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::NodeConvicted {
                outcome: Outcome::Fraud,
                ..
            }
        )),
        "{ev:?}"
    );
    assert_eq!(w.c.verdict(&s.receipt.request_id()), Some(Outcome::Fraud));
    assert!(w.c.node_bond() < Amount(500_000));
    assert_eq!(w.c.balance(&caller()).0, caller_before.0 + 300);
}

#[test]
fn an_honest_float_result_passes_and_a_disputed_one_is_decided_by_the_committee() {
    let mut w = world();
    let s = w.audited();
    let (codes, _) = w.block(vec![w.reveal(&s, s.inputs.clone(), s.outputs.clone())]);
    assert_eq!(codes, vec![None]);
    let (codes, _) = w.block(vec![
        w.c.vote(&validator(0), s.receipt.request_id(), true),
        w.c.vote(&validator(2), s.receipt.request_id(), true),
    ]);
    assert_eq!(codes, vec![None, None]);
    assert_eq!(
        w.c.verdict(&s.receipt.request_id()),
        Some(Outcome::AuditPassed)
    );
    assert_eq!(w.c.node_bond(), Amount(500_000));

    // A caller that asked to hold the price can dispute; the committee decides.
    let d = w.serve(Escalation {
        audit_bps: 0,
        dispute: true,
    });
    assert_eq!(w.settle(&d), None, "a float model's result can now be held");
    assert_eq!(
        w.c.case(&d.receipt.request_id()).unwrap().kind,
        CaseKind::Held
    );
    let (codes, _) = w.block(vec![w.reveal(&d, d.inputs.clone(), d.outputs.clone())]);
    assert_eq!(codes, vec![None]);
    let (codes, _) = w.block(vec![w.c.tx(
        &outsider(),
        0,
        Action::Challenge {
            request_id: d.id(),
            claimed_output_hash: Hash::ZERO,
            model: None,
        },
    )]);
    assert_eq!(codes, vec![None]);
    let (codes, _) = w.block(vec![
        w.c.vote(&validator(0), d.receipt.request_id(), false),
        w.c.vote(&validator(1), d.receipt.request_id(), false),
    ]);
    assert_eq!(codes, vec![None, None]);
    assert_eq!(w.c.verdict(&d.receipt.request_id()), Some(Outcome::Fraud));
    verification::check_held_pool(&w.c.overlay()).unwrap();
}

#[test]
fn a_float_audit_the_node_never_reveals_is_withheld() {
    let mut w = world();
    let p = opal_ledger::components::inference::params(&w.c.overlay()).unwrap();
    let s = w.audited();
    let end = w.c.time_ms + p.reveal_window_ms + 2_000;
    w.c.advance_time_to(end);
    assert_eq!(
        w.c.verdict(&s.receipt.request_id()),
        Some(Outcome::Withheld)
    );
    assert!(w.c.node_bond() < Amount(500_000));
}
