//! Prove/verify time and proof size for the two peer models of the EZKL bench (same shapes,
//! seeded random weights): MLP 784-128-64-10 (ReLU) and the CNN 28x28x1 -> conv3x3x8 -> ReLU ->
//! conv3x3x16 -> ReLU -> flatten -> dense 10. Run: `cargo bench -p opal-zk --bench mlp`.
use std::time::Instant;

use opal_quant::{
    build_mlp, quantize_input, BuildConfig, Conv2d, Dense, FloatDense, Layer, QuantModel, Requant,
    SplitMix64,
};

fn main() {
    let dims = [784usize, 128, 64, 10];
    let mut rng = SplitMix64::new(42);
    let layers: Vec<FloatDense> = dims
        .windows(2)
        .map(|w| {
            let a = (6.0 / w[0] as f32).sqrt();
            FloatDense {
                rows: w[1],
                cols: w[0],
                weights: (0..w[0] * w[1])
                    .map(|_| (rng.next_f32() * 2.0 - 1.0) * a)
                    .collect(),
                bias: (0..w[1]).map(|_| 0.0).collect(),
            }
        })
        .collect();
    let calib: Vec<Vec<f32>> = (0..16)
        .map(|_| (0..784).map(|_| rng.next_f32()).collect())
        .collect();
    let model = build_mlp(&layers, &calib, &BuildConfig::default()).expect("build");
    let x = quantize_input(&calib[0], model.input_scale, model.input_bits);
    let iters = 20;
    let t = Instant::now();
    let mut out = None;
    for _ in 0..iters {
        out = Some(opal_zk::prove(&model, &x).expect("prove"));
    }
    let prove_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
    let (y, proof) = out.expect("ran");
    let bytes = proof.to_bytes();
    let t = Instant::now();
    for _ in 0..iters {
        let p = opal_zk::MlpProof::from_bytes(&model, &bytes).expect("decode");
        opal_zk::verify(&model, &x, &y, &p).expect("verify");
    }
    let verify_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
    let t = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(model.execute(&x).expect("exec"));
    }
    let exec_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
    println!(
        "{{\"model\":\"mlp-784-128-64-10\",\"protocol\":\"v1-clear-activations,verifier-holds-weights\",\"prove_ms\":{prove_ms:.3},\"verify_ms\":{verify_ms:.3},\"execute_ms\":{exec_ms:.3},\"proof_bytes\":{},\"soundness_bits\":{:.1}}}",
        bytes.len(),
        opal_zk::soundness_bits(&model).expect("bits")
    );

    // committed weights (v1c): registration once, then prove/verify against the commitments
    let t = Instant::now();
    let (pm, reg) = opal_zk::committed::register(&model).expect("register");
    let register_ms = t.elapsed().as_secs_f64() * 1e3;
    let iters = 5;
    let t = Instant::now();
    let mut out = None;
    for _ in 0..iters {
        out = Some(opal_zk::committed::prove(&pm, &reg, &x).expect("prove"));
    }
    let prove_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
    let (y, proof) = out.expect("ran");
    let bytes = proof.to_bytes();
    let t = Instant::now();
    for _ in 0..iters {
        let p = opal_zk::committed::CommittedProof::from_bytes(&reg, &bytes).expect("decode");
        opal_zk::committed::verify(&reg, &x, &y, &p).expect("verify");
    }
    let verify_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
    println!(
        "{{\"model\":\"mlp-784-128-64-10\",\"protocol\":\"v1c-committed-weights,clear-activations\",\"register_ms\":{register_ms:.1},\"prove_ms\":{prove_ms:.3},\"verify_ms\":{verify_ms:.3},\"proof_bytes\":{},\"soundness_bits\":{:.1}}}",
        bytes.len(),
        opal_zk::committed::soundness_bits(&reg).expect("bits")
    );
    cnn();
}

/// Integer CNN of the peer shape; requant multipliers set from the max accumulator on the input.
fn cnn() {
    let mut rng = SplitMix64::new(7);
    let mut w =
        |n: usize| -> Vec<i16> { (0..n).map(|_| rng.range_i64(-127, 127) as i16).collect() };
    let c1 = Conv2d {
        in_ch: 1,
        in_h: 28,
        in_w: 28,
        out_ch: 8,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 0,
        weight_bits: 8,
        weights: w(72),
        bias: vec![0; 8],
    };
    let c2 = Conv2d {
        in_ch: 8,
        in_h: 26,
        in_w: 26,
        out_ch: 16,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 0,
        weight_bits: 8,
        weights: w(1152),
        bias: vec![0; 16],
    };
    let d = Dense {
        rows: 10,
        cols: 9216,
        weight_bits: 8,
        weights: w(92160),
        bias: vec![0; 10],
    };
    let x: Vec<i64> = (0..784).map(|_| rng.range_i64(0, 127)).collect();
    let mut layers = vec![Layer::Conv2d(c1)];
    for next in [Layer::Conv2d(c2), Layer::Dense(d)] {
        let m = QuantModel {
            input_len: 784,
            input_bits: 8,
            layers: layers.clone(),
            input_scale: 1.0,
            output_scale: 1.0,
        };
        let max = m
            .execute(&x)
            .expect("exec")
            .output()
            .iter()
            .map(|v| v.abs())
            .max()
            .unwrap_or(1)
            .max(1);
        let multiplier = ((127i64 << 24) / max).max(1);
        layers.push(Layer::Requant(Requant {
            multiplier,
            shift: 24,
            relu: true,
            out_bits: 8,
        }));
        layers.push(next);
    }
    let model = QuantModel {
        input_len: 784,
        input_bits: 8,
        layers,
        input_scale: 1.0,
        output_scale: 1.0,
    };
    let iters = 5;
    let t = Instant::now();
    let mut out = None;
    for _ in 0..iters {
        out = Some(opal_zk::prove(&model, &x).expect("prove"));
    }
    let prove_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
    let (y, proof) = out.expect("ran");
    let bytes = proof.to_bytes();
    let t = Instant::now();
    for _ in 0..iters {
        let p = opal_zk::MlpProof::from_bytes(&model, &bytes).expect("decode");
        opal_zk::verify(&model, &x, &y, &p).expect("verify");
    }
    let verify_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
    let t = Instant::now();
    std::hint::black_box(model.execute(&x).expect("exec"));
    let exec_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{{\"model\":\"cnn-28x28-c8-c16-d10\",\"protocol\":\"v1-clear-activations,verifier-holds-weights\",\"prove_ms\":{prove_ms:.3},\"verify_ms\":{verify_ms:.3},\"execute_ms\":{exec_ms:.3},\"proof_bytes\":{},\"soundness_bits\":{:.1}}}",
        bytes.len(),
        opal_zk::soundness_bits(&model).expect("bits")
    );
    let t = Instant::now();
    let (pm, reg) = opal_zk::committed::register(&model).expect("register");
    let register_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let mut out = None;
    for _ in 0..iters {
        out = Some(opal_zk::committed::prove(&pm, &reg, &x).expect("prove"));
    }
    let prove_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
    let (y, proof) = out.expect("ran");
    let bytes = proof.to_bytes();
    let t = Instant::now();
    for _ in 0..iters {
        let p = opal_zk::committed::CommittedProof::from_bytes(&reg, &bytes).expect("decode");
        opal_zk::committed::verify(&reg, &x, &y, &p).expect("verify");
    }
    let verify_ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
    println!(
        "{{\"model\":\"cnn-28x28-c8-c16-d10\",\"protocol\":\"v1c-committed-weights,clear-activations\",\"register_ms\":{register_ms:.1},\"prove_ms\":{prove_ms:.3},\"verify_ms\":{verify_ms:.3},\"proof_bytes\":{},\"soundness_bits\":{:.1}}}",
        bytes.len(),
        opal_zk::committed::soundness_bits(&reg).expect("bits")
    );
}
