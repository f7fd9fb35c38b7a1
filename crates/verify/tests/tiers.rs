//! The per-tier verifiers against the real demo model (`models/digits/model.opalq`): an honest
//! receipt passes each one, and each lie (a wrong output, another model's file or key, edited
//! readable fields, a garbage file, a tee receipt) fails with its own typed code.

use opal_types::receipt::{
    tensor_list_hash, Attachment, InferenceRequest, Receipt, ReceiptBody, ReceiptEnvelope, Settled,
    ZkEvidence, ZK_EVIDENCE_VERSION,
};
use opal_types::{Amount, Hash, ModelRef, SecretKey, Tier};
use opal_verify::canonical::{self, ExecOptions};
use opal_verify::replay::ReplayError;
use opal_verify::report::Failure;
use opal_verify::settlement::{check_settled, SettlementError};
use opal_verify::signed::SignedError;
use opal_verify::zk::ZkCheckError;
use opal_verify::{ReceiptFile, Report};

fn demo_file() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.opalq"
    ))
    .unwrap()
}

/// The demo model with one weight changed: another model, another content hash.
fn other_file() -> Vec<u8> {
    let mut m = canonical::load_model(&demo_file()).unwrap();
    for l in &mut m.layers {
        if let opal_quant::Layer::Dense(d) = l {
            d.weights[0] = if d.weights[0] == 0 { 1 } else { 0 };
            break;
        }
    }
    m.to_file_bytes()
}

fn caller() -> SecretKey {
    SecretKey::from_seed([1; 32])
}
fn node() -> SecretKey {
    SecretKey::from_seed([2; 32])
}

fn input(seed: f32) -> Vec<Vec<u8>> {
    let x: Vec<f32> = (0..64).map(|i| (i as f32 + seed) % 17.0).collect();
    vec![canonical::f32_tensor_bytes(&[1, 64], &x)]
}

/// A receipt of `file` on `inputs` for `tier`, whose signed output hash is `output_hash`.
fn receipt(file: &[u8], inputs: &[Vec<u8>], output_hash: Hash, tier: Tier) -> Receipt {
    let req = InferenceRequest {
        chain_id: "opal-test".into(),
        node: node().address(),
        model: ModelRef::new("digits-q", 1),
        model_hash: Hash(*blake3::hash(file).as_bytes()),
        input_hash: tensor_list_hash(inputs),
        tier,
        max_price: Amount(1_000),
        commercial: false,
        salt: 1,
        expires_ms: 1_000_000,
        escalation: Default::default(),
    };
    ReceiptBody {
        request: req.sign(&caller()),
        output_hash,
        price: Amount(200),
        units: 1,
        height: 3,
        node_key: node().public_key(),
    }
    .sign(&node())
}

fn honest(file: &[u8], inputs: &[Vec<u8>], tier: Tier) -> (Receipt, Vec<Vec<u8>>) {
    let m = canonical::load_model(file).unwrap();
    let out = canonical::run(&m, inputs, u64::MAX, ExecOptions::default()).unwrap();
    (receipt(file, inputs, tensor_list_hash(&out), tier), out)
}

#[test]
fn replay_passes_the_honest_receipt_and_convicts_each_lie() {
    let file = demo_file();
    let x = input(0.0);
    let (r, out) = honest(&file, &x, Tier::Replay);
    assert_eq!(
        opal_verify::replay::verify(&r, &file, &x, u64::MAX),
        Ok(tensor_list_hash(&out))
    );

    // A node that signed another output.
    let liar = receipt(&file, &x, Hash([7; 32]), Tier::Replay);
    let e = opal_verify::replay::verify(&liar, &file, &x, u64::MAX).unwrap_err();
    assert!(
        matches!(e, ReplayError::OutputDiffers { failure: None, .. }),
        "{e}"
    );
    assert_eq!(e.code(), "output_differs");

    // Checked against another model's file, or other inputs: refused before re-execution.
    let e = opal_verify::replay::verify(&r, &other_file(), &x, u64::MAX).unwrap_err();
    assert_eq!(e.code(), "wrong_model_file");
    let e = opal_verify::replay::verify(&r, &file, &input(1.0), u64::MAX).unwrap_err();
    assert_eq!(e.code(), "inputs_mismatch");

    // A "result" for inputs the model cannot run on (a wrong shape) is a lie, decided by the
    // failure's typed code alone.
    let bad_in = vec![canonical::f32_tensor_bytes(&[1, 3], &[1.0, 2.0, 3.0])];
    let r = receipt(&file, &bad_in, Hash([8; 32]), Tier::Replay);
    let e = opal_verify::replay::verify(&r, &file, &bad_in, u64::MAX).unwrap_err();
    assert!(
        matches!(
            e,
            ReplayError::OutputDiffers {
                failure: Some("input"),
                ..
            }
        ),
        "{e}"
    );

    // Over the cost limit nobody decides: its own error, never a verdict.
    let (r, _) = honest(&file, &x, Tier::Replay);
    let e = opal_verify::replay::verify(&r, &file, &x, 10).unwrap_err();
    assert!(matches!(e, ReplayError::TooCostly { limit: 10, .. }), "{e}");
}

#[test]
fn the_receipt_file_binds_its_readable_fields_and_refuses_garbage_with_codes() {
    let file = demo_file();
    let x = input(2.0);
    let (r, out) = honest(&file, &x, Tier::Signed);
    let env = ReceiptEnvelope::new(r.clone());
    let mut json = serde_json::Map::new();
    for (k, v) in opal_verify::file::readable_fields(&env) {
        json.insert(k.into(), v);
    }
    json.insert("envelope".into(), hex::encode(env.to_bytes()).into());
    let text = serde_json::to_vec(&json).unwrap();
    let rf = ReceiptFile::parse(&text).unwrap();
    assert!(rf.readable_mismatches().is_empty());
    opal_verify::signed::verify_envelope(&rf.envelope).unwrap();
    opal_verify::signed::check_outputs(&r, &out).unwrap();
    opal_verify::signed::check_inputs(&r, &x).unwrap();
    let e = opal_verify::signed::check_outputs(&r, &x).unwrap_err();
    assert_eq!(e.code(), "outputs_mismatch");

    // Edited readable copies: the file is no receipt of that model or price.
    let mut edited = json.clone();
    edited.insert("model".into(), "gpt-9@1".into());
    edited.insert("price".into(), "1".into());
    let rf = ReceiptFile::parse(&serde_json::to_vec(&edited).unwrap()).unwrap();
    assert_eq!(rf.readable_mismatches(), vec!["model", "price"]);

    // Wrapped in an OpenAI reply, it is found.
    let wrapped = serde_json::json!({"id": "x", "opal_receipt": json});
    assert!(ReceiptFile::parse(&serde_json::to_vec(&wrapped).unwrap()).is_ok());

    // Garbage, each with its code.
    let code = |b: &[u8]| ReceiptFile::parse(b).unwrap_err().code();
    assert_eq!(code(b"\x00\xffnot json"), "file_not_json");
    assert_eq!(code(b"{}"), "file_no_envelope");
    assert_eq!(code(br#"{"envelope": "zz"}"#), "envelope_not_hex");
    assert_eq!(code(br#"{"envelope": "00ff00"}"#), "envelope_malformed");
    assert_eq!(
        code(&vec![b' '; opal_verify::file::MAX_RECEIPT_FILE_BYTES + 1]),
        "file_too_large"
    );

    // A receipt whose node signature is broken.
    let mut forged = r.clone();
    forged.body.price = Amount(1);
    let e = opal_verify::signed::verify_envelope(&ReceiptEnvelope::new(forged)).unwrap_err();
    assert!(matches!(e, SignedError::Signature(_)));
    assert_eq!(e.code(), "signature");
}

#[test]
fn zk_proofs_verify_only_under_a_key_of_the_receipts_model() {
    let file = demo_file();
    let model = canonical::load_model(&file).unwrap();
    let setup = opal_zk::api::setup(&model).unwrap();
    let vk = opal_zk::api::verifying_key(&setup);
    let x = input(3.0);
    let (r, out) = honest(&file, &x, Tier::Zk);
    let q = canonical::quantized_input(&model, &x).unwrap();
    let (_, proof) = opal_zk::api::prove(&model, &setup, &q, &mut |_| {}).unwrap();
    let ev = ZkEvidence {
        inputs: x.clone(),
        outputs: out.clone(),
        proof,
    };
    let att = ev.to_attachment();
    let ok = opal_verify::zk::verify(&r, Some(&att), &vk).unwrap();
    assert_eq!(ok.key_id, Hash(vk.id()));

    // The same key, fetched from a node: it must hash to the id asked for.
    let bytes = vk.to_bytes();
    assert!(opal_verify::zk::key_from_published(&Hash(vk.id()), &bytes).is_ok());
    let e = opal_verify::zk::key_from_published(&Hash([1; 32]), &bytes).unwrap_err();
    assert_eq!(e.code(), "key_id_mismatch");
    // Derived from a file: it must be the receipt's model.
    let e = opal_verify::zk::key_from_model_file(&other_file(), &r.body.request.request.model_hash)
        .unwrap_err();
    assert_eq!(e.code(), "wrong_model_file");

    // The key of another (cheaper) model does not verify this model's receipts, even when the
    // proof is that model's own and valid.
    let other = other_file();
    let other_key = opal_zk::api::key_for_file(&other).unwrap();
    let e = opal_verify::zk::verify(&r, Some(&att), &other_key).unwrap_err();
    assert!(matches!(e, ZkCheckError::KeyNotTheModels { .. }), "{e}");

    // Tampered evidence: other outputs, a truncated proof, another format, none at all.
    let mut t = ev.clone();
    t.outputs = x.clone();
    let e = opal_verify::zk::verify(&r, Some(&t.to_attachment()), &vk).unwrap_err();
    assert_eq!(e.code(), "outputs_mismatch");
    let mut t = ev.clone();
    t.proof.truncate(t.proof.len() / 2);
    let e = opal_verify::zk::verify(&r, Some(&t.to_attachment()), &vk).unwrap_err();
    assert_eq!(e.code(), "proof_invalid", "{e}");
    let mut a = att.clone();
    a.version = ZK_EVIDENCE_VERSION + 1;
    assert_eq!(
        opal_verify::zk::verify(&r, Some(&a), &vk)
            .unwrap_err()
            .code(),
        "zk_version"
    );
    let junk = Attachment {
        tier: Tier::Zk,
        version: ZK_EVIDENCE_VERSION,
        bytes: vec![0xff; 40],
    };
    assert_eq!(
        opal_verify::zk::verify(&r, Some(&junk), &vk)
            .unwrap_err()
            .code(),
        "zk_malformed"
    );
    assert_eq!(
        opal_verify::zk::verify(&r, None, &vk).unwrap_err().code(),
        "no_proof"
    );
}

#[test]
fn tee_receipts_fail_until_attestation_lands() {
    let file = demo_file();
    let (r, _) = honest(&file, &input(4.0), Tier::Tee);
    let e = opal_verify::tee::verify(&r, None).unwrap_err();
    assert_eq!(e.code(), "tee_not_implemented");
    let mut rep = Report::new();
    rep.record(
        "tee",
        "enclave attestation",
        opal_verify::tee::verify(&r, None).map(|()| String::new()),
    );
    assert!(!rep.valid());
    assert!(!Report::new().valid(), "an empty report proves nothing");
}

#[test]
fn a_settlement_record_must_be_this_receipts() {
    let file = demo_file();
    let (r, _) = honest(&file, &input(5.0), Tier::Signed);
    let rec = Settled {
        receipt_id: r.id(),
        caller: caller().address(),
        node: node().address(),
        model: ModelRef::new("digits-q", 1),
        tier: Tier::Signed,
        price: r.body.price,
        output_hash: r.body.output_hash,
        height: 9,
    };
    let bytes = borsh::to_vec(&rec).unwrap();
    let root = Hash([3; 32]);
    assert_eq!(check_settled(Some(&bytes), &r, root, 10).unwrap().height, 9);
    assert!(matches!(
        check_settled(None, &r, root, 10),
        Err(SettlementError::NotSettled { height: 10, .. })
    ));
    let other = Settled {
        receipt_id: Hash([1; 32]),
        ..rec.clone()
    };
    assert_eq!(
        check_settled(Some(&borsh::to_vec(&other).unwrap()), &r, root, 10)
            .unwrap_err()
            .code(),
        "other_receipt_settled"
    );
    let cheaper = Settled {
        price: Amount(1),
        ..rec
    };
    assert_eq!(
        check_settled(Some(&borsh::to_vec(&cheaper).unwrap()), &r, root, 10)
            .unwrap_err()
            .code(),
        "settled_differs"
    );
    assert_eq!(
        check_settled(Some(b"\x01"), &r, root, 10)
            .unwrap_err()
            .code(),
        "settled_unreadable"
    );
}
