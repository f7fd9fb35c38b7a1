//! ONNX import tests on hand-encoded protobuf (the same graph shape as
//! shared/bench/zkml/build_models.py: MatMul(x, W[in,out]) + Add(B) + Relu, and Gemm).
use opal_quant::onnx::import_mlp;
use opal_quant::onnx_writer::{field_bytes, field_varint};
use opal_quant::*;
use proptest::prelude::*;

fn tensor(name: &str, dims: &[usize], vals: &[f32], raw: bool) -> Vec<u8> {
    let mut t = Vec::new();
    dims.iter().for_each(|d| field_varint(1, *d as u64, &mut t));
    field_varint(2, 1, &mut t);
    field_bytes(8, name.as_bytes(), &mut t);
    let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    field_bytes(if raw { 9 } else { 4 }, &data, &mut t);
    t
}
fn node(op: &str, inputs: &[&str], outputs: &[&str], trans_b: bool) -> Vec<u8> {
    let mut n = Vec::new();
    inputs
        .iter()
        .for_each(|i| field_bytes(1, i.as_bytes(), &mut n));
    outputs
        .iter()
        .for_each(|o| field_bytes(2, o.as_bytes(), &mut n));
    field_bytes(4, op.as_bytes(), &mut n);
    if trans_b {
        let mut a = Vec::new();
        field_bytes(1, b"transB", &mut a);
        field_varint(3, 1, &mut a);
        field_varint(20, 2, &mut a);
        field_bytes(5, &a, &mut n);
    }
    n
}

/// MLP as ONNX bytes; layer k is MatMul+Add (W stored [in, out]) or, if `gemm`, Gemm with transB.
fn onnx_mlp(layers: &[FloatDense], gemm: bool) -> Vec<u8> {
    let mut g = Vec::new();
    let mut cur = "input".to_string();
    for (k, l) in layers.iter().enumerate() {
        let (w, b) = (format!("W{k}"), format!("B{k}"));
        let last = k + 1 == layers.len();
        let out = if last {
            "output".to_string()
        } else {
            format!("fc{k}")
        };
        if gemm {
            field_bytes(1, &node("Gemm", &[&cur, &w, &b], &[&out], true), &mut g);
            field_bytes(
                5,
                &tensor(&w, &[l.rows, l.cols], &l.weights, k % 2 == 0),
                &mut g,
            );
        } else {
            let wt: Vec<f32> = (0..l.rows * l.cols)
                .map(|i| l.weights[(i % l.rows) * l.cols + i / l.rows])
                .collect();
            field_bytes(
                1,
                &node("MatMul", &[&cur, &w], &[&format!("mm{k}")], false),
                &mut g,
            );
            field_bytes(
                1,
                &node("Add", &[&format!("mm{k}"), &b], &[&out], false),
                &mut g,
            );
            field_bytes(5, &tensor(&w, &[l.cols, l.rows], &wt, k % 2 == 1), &mut g);
        }
        field_bytes(5, &tensor(&b, &[l.rows], &l.bias, false), &mut g);
        cur = out;
        if !last {
            let r = format!("relu{k}");
            field_bytes(1, &node("Relu", &[&cur], &[&r], false), &mut g);
            cur = r;
        }
    }
    let mut m = Vec::new();
    field_varint(1, 8, &mut m);
    field_bytes(2, b"opal-test", &mut m);
    field_bytes(7, &g, &mut m);
    m
}

fn layers(seed: u64, dims: &[usize]) -> Vec<FloatDense> {
    let mut rng = SplitMix64::new(seed);
    dims.windows(2)
        .map(|w| FloatDense {
            rows: w[1],
            cols: w[0],
            weights: (0..w[0] * w[1]).map(|_| rng.next_f32() - 0.5).collect(),
            bias: (0..w[1]).map(|_| rng.next_f32() - 0.5).collect(),
        })
        .collect()
}

#[test]
fn imports_matmul_add_relu_and_gemm() {
    let ls = layers(5, &[12, 7, 5, 3]);
    for gemm in [false, true] {
        let got = import_mlp(&onnx_mlp(&ls, gemm)).unwrap();
        assert_eq!(got.len(), 3);
        for (a, b) in got.iter().zip(&ls) {
            assert_eq!((a.rows, a.cols), (b.rows, b.cols));
            assert_eq!(a.weights, b.weights, "gemm={gemm}");
            assert_eq!(a.bias, b.bias);
        }
    }
    let calib = vec![vec![0.5f32; 12]];
    let m = build_mlp(
        &import_mlp(&onnx_mlp(&ls, false)).unwrap(),
        &calib,
        &BuildConfig::default(),
    )
    .unwrap();
    assert_eq!(m.layers.len(), 5);
}

#[test]
fn rejects_unsupported_graphs() {
    let ls = layers(6, &[4, 3]);
    let mut bytes = onnx_mlp(&ls, false);
    assert!(import_mlp(&bytes).is_ok());
    // a graph with a trailing Relu
    let mut g = Vec::new();
    field_bytes(1, &node("Relu", &["output"], &["o2"], false), &mut g);
    field_bytes(7, &g, &mut bytes); // a second graph field replaces the first (last wins)
    assert!(import_mlp(&bytes).is_err());
    assert!(import_mlp(&[]).is_err());
    let mut g = Vec::new();
    field_bytes(1, &node("Sigmoid", &["input"], &["o"], false), &mut g);
    let mut m = Vec::new();
    field_bytes(7, &g, &mut m);
    assert!(matches!(import_mlp(&m), Err(QuantError::Onnx(_))));
}

proptest! {
    #[test]
    fn malformed_onnx_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
        let _ = import_mlp(&bytes);
        let good = onnx_mlp(&layers(7, &[6, 4, 2]), true);
        let _ = import_mlp(&good[..cut.index(good.len())]);
        let mut bad = good.clone();
        let i = flip.index(bad.len());
        bad[i] ^= 0x5a;
        let _ = import_mlp(&bad);
    }
}

/// Writes an MLP 784-128-64-10 in the bench's ONNX layout to $OPAL_ONNX_OUT/{model.onnx,input.json}
/// (for `cargo run -p opal-zk --example prove_onnx`). Run with `--ignored`.
#[test]
#[ignore = "generator, not a check: writes an ONNX fixture to $OPAL_ONNX_OUT for the prove_onnx example"]
fn write_bench_fixture() {
    let Ok(dir) = std::env::var("OPAL_ONNX_OUT") else {
        return;
    };
    let mut rng = SplitMix64::new(1234);
    let ls: Vec<FloatDense> = [784usize, 128, 64, 10]
        .windows(2)
        .map(|w| {
            let a = (6.0 / w[0] as f32).sqrt();
            FloatDense {
                rows: w[1],
                cols: w[0],
                weights: (0..w[0] * w[1])
                    .map(|_| (rng.next_f32() * 2.0 - 1.0) * a)
                    .collect(),
                bias: (0..w[1]).map(|_| (rng.next_f32() - 0.5) * 0.02).collect(),
            }
        })
        .collect();
    std::fs::write(format!("{dir}/model.onnx"), onnx_mlp(&ls, false)).unwrap();
    let x: Vec<String> = (0..784).map(|_| format!("{}", rng.next_f32())).collect();
    std::fs::write(
        format!("{dir}/input.json"),
        format!("{{\"input_data\": [[{}]]}}", x.join(",")),
    )
    .unwrap();
}
