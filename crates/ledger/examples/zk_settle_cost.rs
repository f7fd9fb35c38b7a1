//! What the `zk` tier costs each validator for the demo model `digits-q`: once per key,
//! decoding a published verifying key (`PublishZkKey`, which checks its weight-range proof) and
//! checking it against the model file sent with it (its commitments recomputed from the file);
//! per settled receipt (`SettleProved`), the evidence checks: tensor hashes, the input's
//! integer mapping, the output's parsing and the proof's verification. Also prints the node's
//! side for reference (setup once, proving per request) and the sizes.
//!
//! `cargo run --release -p opal-ledger --example zk_settle_cost -- [ITERATIONS]`

use opal_ledger::canonical::{self, ExecOptions};
use opal_types::receipt::tensor_list_hash;
use opal_zk::api;
use std::time::Instant;

fn pct(mut v: Vec<f64>, p: usize) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.opalq"
    ))
    .expect("models/digits/model.opalq");
    let model = canonical::load_model(&file).unwrap();
    let t = Instant::now();
    let setup = api::setup(&model).unwrap();
    let setup_ms = t.elapsed().as_secs_f64() * 1e3;
    let key = api::verifying_key(&setup).to_bytes();

    let mut decode = Vec::new();
    for _ in 0..n.clamp(1, 50) {
        let t = Instant::now();
        let vk = api::VerifyingKey::from_bytes(&key).unwrap();
        decode.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(vk);
    }
    let vk = api::VerifyingKey::from_bytes(&key).unwrap();
    let mut bind = Vec::new();
    for _ in 0..n.clamp(1, 50) {
        let t = Instant::now();
        api::check_key_for_file(&vk, &file).unwrap();
        bind.push(t.elapsed().as_secs_f64() * 1e3);
    }

    let x: Vec<f32> = (0..64).map(|i| (i % 17) as f32).collect();
    let inputs = vec![canonical::f32_tensor_bytes(&[1, 64], &x)];
    let outputs = canonical::run(&model, &inputs, u64::MAX, ExecOptions::default()).unwrap();
    let (in_hash, out_hash) = (tensor_list_hash(&inputs), tensor_list_hash(&outputs));
    let q = canonical::quantized_input(&model, &inputs).unwrap();
    let mut prove = Vec::new();
    let mut proof = Vec::new();
    for _ in 0..n.clamp(1, 50) {
        let t = Instant::now();
        let (_, p) = api::prove(&model, &setup, &q, &mut |_| {}).unwrap();
        prove.push(t.elapsed().as_secs_f64() * 1e3);
        proof = p;
    }

    let mut verify = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        assert_eq!(tensor_list_hash(&inputs), in_hash);
        assert_eq!(tensor_list_hash(&outputs), out_hash);
        let x = canonical::quantized_input(&vk.registered().structure, &inputs).unwrap();
        let y = canonical::parse_output(&outputs).unwrap();
        api::verify(&vk, &x, &y, &proof).unwrap();
        verify.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{{\"iterations\": {n}, \"key_bytes\": {}, \"proof_bytes\": {}, \"node_setup_ms\": {setup_ms:.1}, \"node_prove_p50_ms\": {:.2}, \"key_decode_p50_ms\": {:.2}, \"key_file_check_p50_ms\": {:.2}, \"model_file_bytes\": {}, \"settle_check_p50_ms\": {:.2}, \"settle_check_p99_ms\": {:.2}, \"soundness_bits\": {:.1}}}",
        key.len(),
        proof.len(),
        pct(prove, 50),
        pct(decode, 50),
        pct(bind, 50),
        file.len(),
        pct(verify.clone(), 50),
        pct(verify, 99),
        vk.soundness_bits().unwrap()
    );
}
