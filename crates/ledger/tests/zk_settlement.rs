//! The `zk` tier on chain, on a real store with the supply invariant checked after every block:
//! publishing verifying keys, settling receipts with their proofs (every validator verifies the
//! proof before the receipt pays), and every way a node can try to be paid without a valid
//! proof. The model is the real demo model (`models/digits/model.opalq`), proved by opal-zk as
//! an inference node would.

use opal_ledger::canonical::{self, ExecOptions};
use opal_ledger::components::{inference, verification, zk};
use opal_ledger::events::Event;
use opal_quant::QuantModel;
use opal_testkit::{
    caller, demo_model_file, digit_tensor, genesis, key, node, offer_demo_model, owner, TestChain,
};
use opal_types::receipt::{tensor_list_hash, ZkEvidence};
use opal_types::registry;
use opal_types::*;
use opal_zk::api::{self, Setup};

fn model_ref() -> ModelRef {
    ModelRef::new("digits-q", 1)
}

struct World {
    c: TestChain,
    model: QuantModel,
    file: Vec<u8>,
    setup: Setup,
    vk: Vec<u8>,
    salt: u64,
}

/// The owner registers the demo model in the `zk` tier with its verifying key's id as the
/// weight commitment (price 100); the node bonds and offers it (fee 90); the caller funds an
/// escrow of 600,000. The key is not published yet.
fn world() -> World {
    let mut c = TestChain::with_genesis(genesis());
    let file = demo_model_file();
    let model = canonical::load_model(&file).unwrap();
    let setup = api::setup(&model).unwrap();
    let vk = api::verifying_key(&setup).to_bytes();
    offer_demo_model(
        &mut c,
        [&owner(), &node(), &caller()],
        &file,
        vec![Tier::Signed, Tier::Zk],
        Some(Hash(*blake3::hash(&vk).as_bytes())),
        500_000,
    );
    World {
        c,
        model,
        file,
        setup,
        vk,
        salt: 0,
    }
}

impl World {
    /// Serve one `tier` request on input `x` as an honest node: canonical run, signed receipt,
    /// proof of the canonical output.
    fn serve(&mut self, tier: Tier, x: &[f32]) -> (Receipt, ZkEvidence) {
        let inputs = vec![digit_tensor(x)];
        let outputs =
            canonical::run(&self.model, &inputs, u64::MAX, ExecOptions::default()).unwrap();
        let q = canonical::quantized_input(&self.model, &inputs).unwrap();
        let (y, proof) = api::prove(&self.model, &self.setup, &q, &mut |_| {}).unwrap();
        assert_eq!(canonical::output_tensor_bytes(&y), outputs[0]);
        self.salt += 1;
        let receipt = opal_testkit::receipt(
            &self.c,
            opal_testkit::Call {
                model: model_ref(),
                model_hash: Hash(*blake3::hash(&self.file).as_bytes()),
                input_hash: tensor_list_hash(&inputs),
                tier,
                escalation: Default::default(),
                salt: self.salt,
                output_hash: tensor_list_hash(&outputs),
                price: Amount(200),
                units: 1,
            },
        );
        (
            receipt,
            ZkEvidence {
                inputs,
                outputs,
                proof,
            },
        )
    }

    fn publish(&mut self) {
        let t = self.c.tx(
            &owner(),
            0,
            Action::PublishZkKey {
                key: self.vk.clone(),
                model: self.file.clone(),
            },
        );
        assert_eq!(self.c.run(vec![t]), vec![None]);
    }

    /// One `SettleProved` from `from`; its error code and events.
    fn settle_proved(
        &mut self,
        from: &SecretKey,
        r: &Receipt,
        ev: ZkEvidence,
    ) -> (Option<String>, Vec<Event>) {
        let t = self.c.tx(
            from,
            0,
            Action::SettleProved {
                receipt: Box::new(r.clone()),
                evidence: ev,
            },
        );
        let mut res = self.c.block(vec![t]);
        let t = res.txs.remove(0);
        (t.code, t.events)
    }

    fn settled(&self, r: &Receipt) -> bool {
        inference::settled(&self.c.overlay(), &r.request_id())
            .unwrap()
            .is_some()
    }
}

fn digit(i: u64) -> Vec<f32> {
    (0..64).map(|j| ((i * 7 + j * 3) % 17) as f32).collect()
}

#[test]
fn a_proved_receipt_pays_once_and_is_final() {
    let mut w = world();
    w.publish();
    let (r, ev) = w.serve(Tier::Zk, &digit(1));
    let node_before = w.c.balance(&node());
    let owner_before = w.c.balance(&owner());
    let (code, events) = w.settle_proved(&node(), &r, ev.clone());
    assert_eq!(code, None);
    assert!(w.settled(&r));
    let key_id = Hash(*blake3::hash(&w.vk).as_bytes());
    assert!(events.iter().any(|e| matches!(e,
        Event::ZkProofVerified { request_id, key } if *request_id == r.request_id() && *key == key_id)));
    let node_share = events
        .iter()
        .find_map(|e| match e {
            Event::ReceiptSettled {
                tier: Tier::Zk,
                payouts,
                ..
            } => payouts.iter().find(|p| p.role == "node").map(|p| p.amount),
            _ => None,
        })
        .expect("ReceiptSettled with a node payout");
    // Paid now (the node's share, less the tx fee), not held, not queued for audit.
    let fee = opal_ledger::Params::default().min_fee;
    assert_eq!(w.c.balance(&node()).0, node_before.0 + node_share.0 - fee.0);
    assert!(w.c.balance(&owner()).0 > owner_before.0);
    let o = w.c.overlay();
    assert!(verification::open_cases(&o, 100).unwrap().is_empty());
    w.c.block(vec![]);
    assert!(verification::open_cases(&w.c.overlay(), 100)
        .unwrap()
        .is_empty());
    // The same receipt again: refused, nothing paid twice.
    let node_now = w.c.balance(&node());
    let (code, _) = w.settle_proved(&node(), &r, ev);
    assert_eq!(code.as_deref(), Some("settlement_rejected"));
    assert_eq!(w.c.balance(&node()), node_now);
}

#[test]
fn zk_receipts_need_their_proof() {
    let mut w = world();
    w.publish();
    let (r, _) = w.serve(Tier::Zk, &digit(2));
    let t = w.c.tx(
        &node(),
        0,
        Action::SettleReceipts {
            receipts: vec![r.clone()],
        },
    );
    let res = w.c.block(vec![t]);
    assert_eq!(res.txs[0].code, None);
    assert!(res.txs[0].events.iter().any(|e| matches!(e,
        Event::ReceiptRejected { code, .. } if code == "proof_required")));
    assert!(!w.settled(&r));
    // A signed-tier receipt cannot use SettleProved.
    let (rs, ev) = w.serve(Tier::Signed, &digit(3));
    let (code, _) = w.settle_proved(&node(), &rs, ev);
    assert_eq!(code.as_deref(), Some("not_zk_receipt"));
    assert!(!w.settled(&rs));
}

#[test]
fn keys_are_checked_when_published_and_needed_to_settle() {
    let mut w = world();
    let (r, ev) = w.serve(Tier::Zk, &digit(4));
    // Before the key is published the proof cannot be checked, so nothing is paid.
    let (code, _) = w.settle_proved(&node(), &r, ev.clone());
    assert_eq!(code.as_deref(), Some("zk_key_missing"));
    assert!(!w.settled(&r));
    // Garbage, a truncated key and a key with a flipped weight-commitment byte are refused.
    let mut flipped = w.vk.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 0x10;
    for bad in [
        b"not a key".to_vec(),
        w.vk[..w.vk.len() / 2].to_vec(),
        flipped,
    ] {
        let t = w.c.tx(
            &owner(),
            0,
            Action::PublishZkKey {
                key: bad,
                model: w.file.clone(),
            },
        );
        assert_eq!(w.c.run(vec![t]), vec![Some("zk_key_invalid".to_string())]);
    }
    w.publish();
    assert!(
        zk::key_bytes(&w.c.overlay(), &Hash(*blake3::hash(&w.vk).as_bytes()))
            .unwrap()
            .is_some()
    );
    let t = w.c.tx(
        &caller(),
        0,
        Action::PublishZkKey {
            key: w.vk.clone(),
            model: w.file.clone(),
        },
    );
    assert_eq!(w.c.run(vec![t]), vec![Some("zk_key_exists".to_string())]);
    let (code, _) = w.settle_proved(&node(), &r, ev);
    assert_eq!(code, None);
    assert!(w.settled(&r));
}

#[test]
fn no_payment_without_a_valid_proof() {
    let mut w = world();
    w.publish();
    let (r, ev) = w.serve(Tier::Zk, &digit(5));
    let escrow = |w: &World| {
        inference::escrow(&w.c.overlay(), &caller().address(), &node().address())
            .unwrap()
            .balance
    };
    let before = escrow(&w);
    let refused = |w: &mut World, from: &SecretKey, ev: ZkEvidence, want: &str| {
        let (code, _) = w.settle_proved(from, &r, ev);
        assert_eq!(code.as_deref(), Some(want));
        assert!(!w.settled(&r));
    };
    // Another account cannot settle the node's receipt.
    refused(&mut w, &caller(), ev.clone(), "not_your_receipt");
    // A receipt whose signed body was altered (a higher price) is refused before its proof is
    // even checked.
    let mut forged = r.clone();
    forged.body.price = Amount(300);
    let (code, _) = w.settle_proved(&node(), &forged, ev.clone());
    assert_eq!(code.as_deref(), Some("settlement_rejected"));
    assert!(!w.settled(&r));
    // Any flipped proof byte (spread over the whole proof).
    let n = ev.proof.len();
    for k in 0..24 {
        let mut bad = ev.clone();
        let at = (k * 7919 + k * k * 104_729) % n;
        bad.proof[at] ^= 1 << (k % 8);
        refused(&mut w, &node(), bad, "proof_invalid");
    }
    // A truncated or extended proof.
    let mut bad = ev.clone();
    bad.proof.truncate(n - 1);
    refused(&mut w, &node(), bad, "proof_invalid");
    let mut bad = ev.clone();
    bad.proof.push(0);
    refused(&mut w, &node(), bad, "proof_invalid");
    // Inputs or outputs that are not the ones the receipt signed.
    let mut bad = ev.clone();
    bad.inputs = vec![digit_tensor(&digit(6))];
    refused(&mut w, &node(), bad, "reveal_mismatch");
    let mut bad = ev.clone();
    bad.outputs[0][20] ^= 1;
    refused(&mut w, &node(), bad, "reveal_mismatch");
    // The proof of another input, with that input: its hash is not the signed one.
    let (_, other) = w.serve(Tier::Zk, &digit(7));
    let mut bad = ev.clone();
    bad.proof = other.proof.clone();
    refused(&mut w, &node(), bad, "proof_invalid");
    // A node that signs a wrong output cannot prove it: the honest proof does not verify
    // against the lie.
    let (lie_r, mut lie_ev) = w.serve(Tier::Zk, &digit(8));
    let last = lie_ev.outputs[0].len() - 1;
    lie_ev.outputs[0][last] ^= 1;
    let mut body = lie_r.body.clone();
    body.output_hash = tensor_list_hash(&lie_ev.outputs);
    let lie_r = body.sign(&node());
    let (code, _) = w.settle_proved(&node(), &lie_r, lie_ev);
    assert_eq!(code.as_deref(), Some("proof_invalid"));
    assert!(!w.settled(&lie_r));
    // Nothing moved through all of that; the honest evidence still settles.
    assert_eq!(escrow(&w), before);
    let (code, _) = w.settle_proved(&node(), &r, ev);
    assert_eq!(code, None);
    assert!(w.settled(&r));
    assert_eq!(escrow(&w).0, before.0 - 200);
}

/// Model B: the demo model with one weight changed (a cheaper or worse model is the same
/// attack: what matters is that its file is not the registered one).
fn other_model() -> (Vec<u8>, QuantModel) {
    use opal_quant::Layer;
    let mut m = canonical::load_model(&demo_model_file()).unwrap();
    let w = m
        .layers
        .iter_mut()
        .find_map(|l| match l {
            Layer::Dense(d) => Some(&mut d.weights),
            Layer::Conv2d(c) => Some(&mut c.weights),
            _ => None,
        })
        .expect("a linear layer");
    w[0] = if w[0] == 0 { 1 } else { 0 };
    m.validate().unwrap();
    (m.to_file_bytes(), m)
}

fn zk_spec(name: &str, version: u32, file: &[u8], key_id: Hash) -> registry::ModelSpec {
    registry::ModelSpec {
        name: name.into(),
        version,
        ..opal_testkit::demo_spec(file, vec![Tier::Signed, Tier::Zk], Some(key_id))
    }
}

/// The attack: the owner registers file A (the demo model, its content hash in the registry)
/// with the verifying key of another model B, so that B's proofs would settle as A's. The key
/// names the file it was made from; the ledger compares that with the registry when the key is
/// published, when a model is registered against a published key and when a proof settles.
#[test]
fn a_key_made_from_another_file_never_settles_for_a_model() {
    let file_a = demo_model_file();
    let (file_b, model_b) = other_model();
    assert_ne!(file_a, file_b);
    let setup_b = api::setup(&model_b).unwrap();
    let vk_b = api::verifying_key(&setup_b).to_bytes();
    let id_b = Hash(*blake3::hash(&vk_b).as_bytes());
    // digits-q@1 is file A, registered with B's key id.
    let mut c = TestChain::with_genesis(genesis());
    offer_demo_model(
        &mut c,
        [&owner(), &node(), &caller()],
        &file_a,
        vec![Tier::Signed, Tier::Zk],
        Some(id_b),
        500_000,
    );
    // The node serves A's requests with B and B's setup, and signs A's model hash.
    let mut w = World {
        c,
        model: model_b,
        file: file_a.clone(),
        setup: setup_b,
        vk: vk_b.clone(),
        salt: 0,
    };
    // Publishing B's key, which only A names: refused.
    let t = w.c.tx(
        &owner(),
        0,
        Action::PublishZkKey {
            key: vk_b.clone(),
            model: file_b.clone(),
        },
    );
    assert_eq!(
        w.c.run(vec![t]),
        vec![Some("zk_key_file_mismatch".to_string())]
    );
    assert!(zk::key_bytes(&w.c.overlay(), &id_b).unwrap().is_none());
    let (r, ev) = w.serve(Tier::Zk, &digit(9));
    let (code, _) = w.settle_proved(&node(), &r, ev.clone());
    assert_eq!(code.as_deref(), Some("zk_key_missing"));

    // B is registered honestly under its own name (by someone else) and its key published:
    // the key is B's, and A's registration cannot use it.
    let other = key(1);
    let t = w.c.tx(
        &other,
        0,
        Action::RegisterModel {
            spec: zk_spec("cheap", 1, &file_b, id_b),
        },
    );
    assert_eq!(w.c.run(vec![t]), vec![None]);
    let t = w.c.tx(
        &other,
        0,
        Action::PublishZkKey {
            key: vk_b.clone(),
            model: file_b.clone(),
        },
    );
    assert_eq!(w.c.run(vec![t]), vec![None]);
    // A's receipt with B's valid proof: refused before the proof is checked, nothing paid.
    let (code, _) = w.settle_proved(&node(), &r, ev);
    assert_eq!(code.as_deref(), Some("zk_key_file_mismatch"));
    assert!(!w.settled(&r));
    // A new version of A registered against B's (now published) key: refused.
    let t = w.c.tx(
        &owner(),
        0,
        Action::RegisterModel {
            spec: zk_spec("digits-q", 2, &file_a, id_b),
        },
    );
    assert_eq!(
        w.c.run(vec![t]),
        vec![Some("zk_key_file_mismatch".to_string())]
    );
    // A's own key is accepted for A: version 2 with it registers, and its key publishes.
    let vk_a = api::verifying_key(&api::setup(&canonical::load_model(&file_a).unwrap()).unwrap())
        .to_bytes();
    let id_a = Hash(*blake3::hash(&vk_a).as_bytes());
    let t = w.c.tx(
        &owner(),
        0,
        Action::RegisterModel {
            spec: zk_spec("digits-q", 2, &file_a, id_a),
        },
    );
    assert_eq!(w.c.run(vec![t]), vec![None]);
    let t = w.c.tx(
        &owner(),
        0,
        Action::PublishZkKey {
            key: vk_a,
            model: file_a,
        },
    );
    assert_eq!(w.c.run(vec![t]), vec![None]);
}

/// Someone who registers a model against another model's key id before that key is published
/// cannot block its publication: the key is refused only when no model it is named by is the
/// file it was made from.
#[test]
fn a_stray_registration_cannot_block_a_key() {
    let mut w = world();
    let (file_b, _) = other_model();
    let id_a = Hash(*blake3::hash(&w.vk).as_bytes());
    let other = key(1);
    let t = w.c.tx(
        &other,
        0,
        Action::RegisterModel {
            spec: zk_spec("squatter", 1, &file_b, id_a),
        },
    );
    assert_eq!(w.c.run(vec![t]), vec![None]);
    w.publish();
    let (r, ev) = w.serve(Tier::Zk, &digit(10));
    let (code, _) = w.settle_proved(&node(), &r, ev);
    assert_eq!(code, None);
}

/// The attack that hides in the key itself: a key that names A's file but commits to B's
/// weights (B's key with A's file hash written over its own). It decodes, its weight-range
/// proof is B's and valid, and its file hash matches A's registration, so only recomputing
/// the commitments from A's file shows it is not A's key: publication is refused, with A's
/// file or with any other, and B's proofs never settle as A's.
#[test]
fn a_key_claiming_the_file_with_other_weights_is_refused_at_publication() {
    let file_a = demo_model_file();
    let hash_a = *blake3::hash(&file_a).as_bytes();
    let (file_b, model_b) = other_model();
    // B's key with A's file hash written over its own (bytes 10..42 of format version 3).
    let mut forged = api::verifying_key(&api::setup(&model_b).unwrap()).to_bytes();
    forged[10..42].copy_from_slice(&hash_a);
    let fk = api::VerifyingKey::from_bytes(&forged).unwrap();
    assert_eq!(fk.file_hash(), hash_a);
    let id_forged = Hash(*blake3::hash(&forged).as_bytes());
    let mut c = TestChain::with_genesis(genesis());
    offer_demo_model(
        &mut c,
        [&owner(), &node(), &caller()],
        &file_a,
        vec![Tier::Signed, Tier::Zk],
        Some(id_forged),
        500_000,
    );
    let mut w = World {
        c,
        setup: api::setup(&model_b).unwrap(),
        model: model_b.clone(),
        file: file_a.clone(),
        vk: forged.clone(),
        salt: 0,
    };
    let publish = |w: &mut World, model: Vec<u8>| {
        let t = w.c.tx(
            &owner(),
            0,
            Action::PublishZkKey {
                key: forged.clone(),
                model,
            },
        );
        w.c.run(vec![t])
    };
    // With A's file: the file is the one named, but its commitments are not the key's.
    assert_eq!(
        publish(&mut w, file_a.clone()),
        vec![Some("zk_key_not_of_file".to_string())]
    );
    // With B's file (whose weights it does commit to): not the file the key names.
    assert_eq!(
        publish(&mut w, file_b),
        vec![Some("zk_key_not_of_file".to_string())]
    );
    // With garbage: refused, nothing stored.
    assert_eq!(
        publish(&mut w, b"not a model".to_vec()),
        vec![Some("zk_key_not_of_file".to_string())]
    );
    assert!(zk::key_bytes(&w.c.overlay(), &id_forged).unwrap().is_none());
    // The node proves B under the forged key's file hash: nothing to settle against.
    let (r, mut ev) = w.serve(Tier::Zk, &digit(11));
    let (pm, reg) = opal_zk::v2::register(&model_b).unwrap();
    assert_eq!(&reg, fk.registered());
    let q = canonical::quantized_input(&model_b, &ev.inputs).unwrap();
    let (_, proof) =
        opal_zk::v2::prove_with_progress(&pm, &reg, &hash_a, &q, None, &mut |_| {}).unwrap();
    ev.proof = proof;
    let (code, _) = w.settle_proved(&node(), &r, ev);
    assert_eq!(code.as_deref(), Some("zk_key_missing"));
    assert!(!w.settled(&r));
    // A's own key, with A's file, publishes.
    let vk_a = api::key_for_file(&file_a).unwrap().to_bytes();
    let t = w.c.tx(
        &owner(),
        0,
        Action::PublishZkKey {
            key: vk_a,
            model: file_a,
        },
    );
    assert_eq!(w.c.run(vec![t]), vec![None]);
}
