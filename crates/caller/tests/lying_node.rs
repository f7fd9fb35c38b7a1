//! `opal_caller::call` against a node that lies, over real HTTP: a one-shot server answers
//! `POST /api/infer` with what the test makes it say. Only the honest answer is accepted.

use opal_caller::{call, CallerError};
use opal_client::Client;
use opal_infer::{tensors_hash, Tensor};
use opal_types::receipt::{InferenceRequest, ReceiptBody, ReceiptEnvelope, SignedRequest};
use opal_types::{Amount, Hash, ModelRef, SecretKey, Tier};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};

/// Serve one request with `reply` as JSON, on a fresh port; the node's URL.
fn node_saying(reply: Value) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let body = reply.to_string();
        let mut s = s;
        write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    url
}

fn node_key() -> SecretKey {
    SecretKey::from_seed([4; 32])
}

fn request(inputs: &[Tensor], salt: u64) -> SignedRequest {
    InferenceRequest {
        chain_id: "c".into(),
        node: node_key().address(),
        model: ModelRef::new("m", 1),
        model_hash: Hash([7; 32]),
        input_hash: tensors_hash(inputs),
        tier: Tier::Signed,
        max_price: Amount(10),
        commercial: false,
        salt,
        expires_ms: 1_000,
        escalation: Default::default(),
    }
    .sign(&SecretKey::from_seed([3; 32]))
}

/// What a node answers for `sr`: `outputs`, and a receipt it signs over `signed_outputs`.
fn answer(sr: &SignedRequest, outputs: &[Tensor], signed_outputs: &[Tensor]) -> Value {
    let r = ReceiptBody {
        request: sr.clone(),
        output_hash: tensors_hash(signed_outputs),
        price: Amount(10),
        units: 1,
        height: 1,
        node_key: node_key().public_key(),
    }
    .sign(&node_key());
    reply(
        outputs,
        hex::encode(ReceiptEnvelope::new(r.clone()).to_bytes()),
        sr.id(),
        r.id(),
    )
}

/// An inference reply (`opal_api::Inferred`) with these outputs and receipt hex.
fn reply(outputs: &[Tensor], receipt: String, request_id: Hash, receipt_id: Hash) -> Value {
    serde_json::to_value(opal_api::Inferred {
        outputs: outputs.iter().map(|t| json!(t)).collect(),
        request_id,
        receipt_id,
        price: Amount(10),
        height: 1,
        receipt,
        compute_ms: 1.5,
    })
    .unwrap()
}

fn t(v: f32) -> Tensor {
    Tensor::from_f32(vec![1], vec![v]).unwrap()
}

fn refused(reply: Value, sr: &SignedRequest, inputs: &[Tensor]) -> String {
    match call(&Client::new(&node_saying(reply)).unwrap(), sr, inputs) {
        Err(CallerError::Node(why)) => why,
        other => panic!("expected the answer refused, got {other:?}"),
    }
}

#[test]
fn the_honest_answer_is_accepted() {
    let inputs = [t(1.0)];
    let sr = request(&inputs, 1);
    let a = call(
        &Client::new(&node_saying(answer(&sr, &[t(2.0)], &[t(2.0)]))).unwrap(),
        &sr,
        &inputs,
    )
    .unwrap();
    assert_eq!(a.outputs, vec![t(2.0)]);
    assert_eq!(a.compute_ms, Some(1.5));
    assert_eq!(a.envelope.receipt.body.request, sr);
}

#[test]
fn outputs_other_than_the_signed_ones_are_refused() {
    let inputs = [t(1.0)];
    let sr = request(&inputs, 2);
    let why = refused(answer(&sr, &[t(3.0)], &[t(2.0)]), &sr, &inputs);
    assert!(why.contains("output hash"), "{why}");
}

#[test]
fn a_receipt_for_another_request_is_refused() {
    let inputs = [t(1.0)];
    let sr = request(&inputs, 3);
    let other = request(&inputs, 4);
    let why = refused(answer(&other, &[t(2.0)], &[t(2.0)]), &sr, &inputs);
    assert!(why.contains("different request"), "{why}");
}

#[test]
fn a_receipt_signed_by_someone_else_or_garbage_is_refused() {
    let inputs = [t(1.0)];
    let sr = request(&inputs, 5);
    let mut forged = answer(&sr, &[t(2.0)], &[t(2.0)]);
    let mut bytes = hex::decode(forged["receipt"].as_str().unwrap()).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1; // inside the node's signature
    forged["receipt"] = json!(hex::encode(bytes));
    let why = refused(forged, &sr, &inputs);
    assert!(why.contains("verify") || why.contains("malformed"), "{why}");
    let why = refused(reply(&[], "zz".into(), sr.id(), sr.id()), &sr, &inputs);
    assert!(why.contains("not hex"), "{why}");
    let why = refused(reply(&[], "00ff".into(), sr.id(), sr.id()), &sr, &inputs);
    assert!(why.contains("malformed"), "{why}");
    let why = refused(json!({"outputs": [], "receipt": "00ff"}), &sr, &inputs);
    assert!(why.contains("not an inference reply"), "{why}");
}
