//! End to end on an ONNX MLP in the format of `shared/bench/zkml/build_models.py`:
//! `cargo run --release -p opal-zk --example prove_onnx -- model.onnx input.json`
//! Imports, quantizes (calibrating on the given input), registers the weights, proves, verifies,
//! and prints timings and sizes as JSON on its last line.
use std::time::Instant;

use opal_quant::{build_mlp, onnx::import_mlp, quantize_input, BuildConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: prove_onnx model.onnx input.json");
    let layers = import_mlp(&std::fs::read(&args[1])?)?;
    let input: serde_json::Value = serde_json::from_slice(&std::fs::read(&args[2])?)?;
    let x: Vec<f32> = input["input_data"][0]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("input_data[0] missing"))?
        .iter()
        .map(|v| v.as_f64().unwrap_or(0.0) as f32)
        .collect();
    let model = build_mlp(&layers, std::slice::from_ref(&x), &BuildConfig::default())?;
    let q = quantize_input(&x, model.input_scale, model.input_bits);
    let t = Instant::now();
    let (pm, reg) = opal_zk::committed::register(&model)?;
    let setup_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (y, proof) = opal_zk::committed::prove(&pm, &reg, &q)?;
    let bytes = proof.to_bytes();
    let prove_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let p = opal_zk::committed::CommittedProof::from_bytes(&reg, &bytes)?;
    opal_zk::committed::verify(&reg, &q, &y, &p)?;
    let verify_s = t.elapsed().as_secs_f64();
    println!(
        "{{\"setup_s\":{setup_s:.4},\"prove_s\":{prove_s:.4},\"verify_s\":{verify_s:.4},\"proof_bytes\":{},\"output\":{:?},\"output_scale\":{}}}",
        bytes.len(),
        y,
        model.output_scale
    );
    Ok(())
}
