//! What the checks of issue 14 cost next to what settlement already did. Per block: the
//! proposer's VRF audit beacon (every validator verifies it before voting and when executing).
//! Per receipt: the envelope's two ed25519 signatures (the baseline every settlement pays), the
//! readable-field check of a receipt file (`opal verify` only), and the re-execution verdict of
//! the demo model (`opal_verify::replay`, run by the ledger only for a dispute or an audit).
//! Run: `cargo run --release -p opal-verify --example checks_bench -- [REPS]`.

use opal_types::receipt::{tensor_list_hash, InferenceRequest, ReceiptBody, ReceiptEnvelope};
use opal_types::{Amount, Hash, ModelRef, SecretKey, Tier};
use opal_verify::canonical::{self, ExecOptions};
use opal_verify::ReceiptFile;
use std::time::Instant;

fn median_us(reps: u32, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn main() {
    let reps: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.opalq"
    ))
    .expect("models/digits/model.opalq");
    let m = canonical::load_model(&file).unwrap();
    let x: Vec<f32> = (0..64).map(|i| (i % 17) as f32).collect();
    let inputs = vec![canonical::f32_tensor_bytes(&[1, 64], &x)];
    let out = canonical::run(&m, &inputs, u64::MAX, ExecOptions::default()).unwrap();
    let (caller, node) = (SecretKey::from_seed([1; 32]), SecretKey::from_seed([2; 32]));
    let req = InferenceRequest {
        chain_id: "opal-bench".into(),
        node: node.address(),
        model: ModelRef::new("digits-q", 1),
        model_hash: Hash(*blake3::hash(&file).as_bytes()),
        input_hash: tensor_list_hash(&inputs),
        tier: Tier::Signed,
        max_price: Amount(1_000),
        commercial: false,
        salt: 1,
        expires_ms: 1,
        escalation: Default::default(),
    };
    let r = ReceiptBody {
        request: req.sign(&caller),
        output_hash: tensor_list_hash(&out),
        price: Amount(200),
        units: 1,
        height: 1,
        node_key: node.public_key(),
    }
    .sign(&node);
    let env = ReceiptEnvelope::new(r.clone());
    let mut json = serde_json::Map::new();
    for (k, v) in opal_verify::file::readable_fields(&env) {
        json.insert(k.into(), v);
    }
    json.insert("envelope".into(), hex::encode(env.to_bytes()).into());
    let text = serde_json::to_vec(&json).unwrap();
    let proposer = SecretKey::from_seed([3; 32]);
    let (vrf_key, beacon) = (
        proposer.vrf_public_key(),
        proposer.vrf_beacon("opal-bench", 7),
    );

    println!("| check | where it runs | median of {reps} |");
    println!("|---|---|---|");
    let us = median_us(reps, || {
        beacon.verify(&vrf_key, "opal-bench", 7).unwrap();
    });
    println!("| VRF audit beacon (schnorrkel) | every block, prevote and execution | {us:.1} µs |");
    let us = median_us(reps, || env.verify().unwrap());
    println!(
        "| envelope signatures (2 × ed25519, the baseline) | every settled receipt | {us:.1} µs |"
    );
    let us = median_us(reps, || {
        let rf = ReceiptFile::parse(&text).unwrap();
        assert!(rf.readable_mismatches().is_empty());
    });
    println!("| parse a receipt file and check its readable fields | `opal verify` | {us:.1} µs |");
    let us = median_us(reps, || {
        opal_verify::replay::verify(&r, &file, &inputs, u64::MAX).unwrap();
    });
    println!("| re-execution verdict of `digits-q` (`replay::verify`) | a dispute or an audit | {us:.1} µs |");
}
