//! What one on-chain re-execution costs each validator (a `Resolve` or a fraud-proof
//! `Challenge` of the demo model `digits-q`): decoding and validating the model file carried in
//! the transaction, running it canonically on the revealed input, hashing the output.
//!
//! `cargo run --release -p opal-ledger --example reexec_cost -- [ITERATIONS]`

use opal_ledger::canonical::{self, ExecOptions};
use opal_types::receipt::tensor_list_hash;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000);
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.opalq"
    ))
    .expect("models/digits/model.opalq");
    let x: Vec<f32> = (0..64).map(|i| (i % 17) as f32).collect();
    let inputs = vec![canonical::f32_tensor_bytes(&[1, 64], &x)];
    let mut times = Vec::with_capacity(n);
    let mut out = None;
    for _ in 0..n {
        let t = Instant::now();
        let m = canonical::load_model(&file).unwrap();
        let o = canonical::run(&m, &inputs, u64::MAX, ExecOptions::default()).unwrap();
        out = Some(tensor_list_hash(&o));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = canonical::load_model(&file).unwrap();
    println!(
        "{{\"model_file_bytes\": {}, \"cost_macs\": {}, \"iterations\": {n}, \"p50_us\": {:.1}, \"p99_us\": {:.1}, \"output_hash\": \"{}\"}}",
        file.len(),
        canonical::cost(&m),
        times[n / 2],
        times[n * 99 / 100],
        out.unwrap()
    );
}
