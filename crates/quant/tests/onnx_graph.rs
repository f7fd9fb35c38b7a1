//! `onnx::import_graph` + `build_graph` on hand-encoded ONNX: a CNN in the layout of
//! shared/bench/zkml/build_models.py (Conv, Relu, Reshape, MatMul, Add) with a Softmax/ArgMax
//! head, and the calibrated quantized model against the float model.
use opal_quant::onnx::import_graph;
use opal_quant::onnx_writer::*;
use opal_quant::*;
use proptest::prelude::*;

fn rand_vec(rng: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.next_f32() * 2.0 - 1.0) * scale)
        .collect()
}

/// 1x8x8 -> Conv 3x3x4 (pad 1, stride 1) -> Relu -> Conv 3x3x3 (stride 2) -> Relu -> Reshape
/// -> MatMul 27x5 -> Add -> Softmax -> ArgMax.
fn onnx_cnn(seed: u64) -> Vec<u8> {
    onnx_cnn_reshape(seed, &[1, 27])
}

fn onnx_cnn_reshape(seed: u64, target: &[i64]) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut g = Vec::new();
    let lists: &[(&str, &[i64])] = &[("kernel_shape", &[3, 3]), ("pads", &[1, 1, 1, 1])];
    field_bytes(
        1,
        &node("Conv", &["input", "C1", "CB1"], &["c1"], lists),
        &mut g,
    );
    field_bytes(1, &node("Relu", &["c1"], &["r1"], &[]), &mut g);
    let lists: &[(&str, &[i64])] = &[("strides", &[2, 2])];
    field_bytes(1, &node("Conv", &["r1", "C2"], &["c2"], lists), &mut g);
    field_bytes(1, &node("Relu", &["c2"], &["r2"], &[]), &mut g);
    field_bytes(
        1,
        &node("Reshape", &["r2", "shape"], &["flat"], &[]),
        &mut g,
    );
    field_bytes(1, &node("MatMul", &["flat", "W"], &["mm"], &[]), &mut g);
    field_bytes(1, &node("Add", &["mm", "B"], &["logits"], &[]), &mut g);
    field_bytes(1, &node("Softmax", &["logits"], &["probs"], &[]), &mut g);
    field_bytes(1, &node("ArgMax", &["probs"], &["label"], &[]), &mut g);
    field_bytes(
        5,
        &ftensor("C1", &[4, 1, 3, 3], &rand_vec(&mut rng, 36, 0.5)),
        &mut g,
    );
    field_bytes(
        5,
        &ftensor("CB1", &[4], &rand_vec(&mut rng, 4, 0.05)),
        &mut g,
    );
    field_bytes(
        5,
        &ftensor("C2", &[3, 4, 3, 3], &rand_vec(&mut rng, 108, 0.3)),
        &mut g,
    );
    field_bytes(
        5,
        &ftensor("W", &[27, 5], &rand_vec(&mut rng, 135, 0.4)),
        &mut g,
    );
    field_bytes(5, &ftensor("B", &[5], &rand_vec(&mut rng, 5, 0.05)), &mut g);
    field_bytes(5, &itensor("shape", target), &mut g);
    field_bytes(11, &input_info("input", &[1, 1, 8, 8]), &mut g);
    model(g)
}

#[test]
fn imports_cnn_with_softmax_head() {
    let g = import_graph(&onnx_cnn(1)).unwrap();
    assert_eq!(g.input_shape, vec![1, 8, 8]);
    assert_eq!(g.ignored_tail, vec!["Softmax", "ArgMax"]);
    assert_eq!(g.layers.len(), 5);
    let FloatLayer::Conv(c2) = &g.layers[2] else {
        panic!("conv expected")
    };
    assert_eq!((c2.stride, c2.pad, c2.out_hw()), (2, 0, (3, 3)));
    assert_eq!(g.forward(&vec![0.5; 64]).len(), 5);
}

#[test]
fn calibrated_cnn_tracks_the_float_model() {
    let g = import_graph(&onnx_cnn(2)).unwrap();
    let mut rng = SplitMix64::new(3);
    let calib: Vec<Vec<f32>> = (0..16)
        .map(|_| (0..64).map(|_| rng.next_f32()).collect())
        .collect();
    let m = build_graph(&g, &calib, &BuildConfig::default()).unwrap();
    assert_eq!(m.layers.len(), 5);
    let mut agree = 0;
    for x in &calib {
        let f = g.forward(x);
        let q = quantize_input(x, m.input_scale, m.input_bits);
        let y = m.execute(&q).unwrap();
        let deq: Vec<f64> = y
            .output()
            .iter()
            .map(|v| *v as f64 * m.output_scale)
            .collect();
        let span = f.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
        for (a, b) in f.iter().zip(&deq) {
            assert!(
                (*a as f64 - b).abs() < 0.1 * span + 1e-3,
                "{f:?} vs {deq:?}"
            );
        }
        let am = |v: &[f64]| (0..v.len()).max_by(|i, j| v[*i].total_cmp(&v[*j])).unwrap();
        let ff: Vec<f64> = f.iter().map(|v| *v as f64).collect();
        agree += (am(&ff) == am(&deq)) as usize;
    }
    assert!(agree >= 14, "argmax agreement {agree}/16");
}

#[test]
fn rejects_what_it_cannot_represent() {
    let mut g = Vec::new();
    field_bytes(
        1,
        &node("Conv", &["input", "C"], &["c"], &[("dilations", &[2, 2])]),
        &mut g,
    );
    field_bytes(5, &ftensor("C", &[1, 1, 3, 3], &[0.1; 9]), &mut g);
    field_bytes(11, &input_info("input", &[1, 1, 8, 8]), &mut g);
    let mut m = Vec::new();
    field_bytes(7, &g, &mut m);
    assert!(import_graph(&m).is_err());
    // A Reshape that is not a flatten.
    assert!(import_graph(&onnx_cnn_reshape(4, &[1, 3, 9])).is_err());
    assert!(import_graph(&onnx_cnn_reshape(4, &[1, 26])).is_err());
    assert!(import_graph(&onnx_cnn_reshape(4, &[-1, 27])).is_ok());
}

proptest! {
    #[test]
    fn malformed_graph_never_panics(cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), v in any::<u8>()) {
        let good = onnx_cnn(5);
        let _ = import_graph(&good[..cut.index(good.len())]);
        let mut bad = good.clone();
        let i = flip.index(bad.len());
        bad[i] ^= v | 1;
        if let Ok(g) = import_graph(&bad) {
            let _ = build_graph(&g, &[vec![0.5; g.input_len()]], &BuildConfig::default());
        }
    }
}

/// AveragePool becomes a per-channel convolution; the quantized model tracks the float one.
#[test]
fn average_pool_is_a_per_channel_conv() {
    let mut rng = SplitMix64::new(8);
    let mut g = Vec::new();
    let lists: &[(&str, &[i64])] = &[("kernel_shape", &[3, 3])];
    field_bytes(1, &node("Conv", &["input", "C1"], &["c1"], lists), &mut g);
    field_bytes(1, &node("Relu", &["c1"], &["r1"], &[]), &mut g);
    let lists: &[(&str, &[i64])] = &[("kernel_shape", &[2, 2]), ("strides", &[2, 2])];
    field_bytes(1, &node("AveragePool", &["r1"], &["p1"], lists), &mut g);
    field_bytes(1, &node("Flatten", &["p1"], &["flat"], &[]), &mut g);
    field_bytes(1, &node("Gemm", &["flat", "W", "B"], &["out"], &[]), &mut g);
    field_bytes(
        5,
        &ftensor("C1", &[2, 1, 3, 3], &rand_vec(&mut rng, 18, 0.5)),
        &mut g,
    );
    field_bytes(
        5,
        &ftensor("W", &[18, 4], &rand_vec(&mut rng, 72, 0.4)),
        &mut g,
    );
    field_bytes(5, &ftensor("B", &[4], &rand_vec(&mut rng, 4, 0.05)), &mut g);
    field_bytes(11, &input_info("input", &[1, 1, 8, 8]), &mut g);
    let mut m = Vec::new();
    field_bytes(7, &g, &mut m);
    let graph = import_graph(&m).unwrap();
    assert_eq!(graph.layers.len(), 4);
    let FloatLayer::Conv(p) = &graph.layers[2] else {
        panic!("pool as conv")
    };
    assert_eq!((p.in_ch, p.out_ch, p.out_hw()), (2, 2, (3, 3)));
    // The pool's float output is the window mean.
    let x: Vec<f32> = (0..64).map(|_| rng.next_f32()).collect();
    let calib = vec![x.clone()];
    let q = build_graph(&graph, &calib, &BuildConfig::default()).unwrap();
    let f = graph.forward(&x);
    let y = q
        .execute(&quantize_input(&x, q.input_scale, q.input_bits))
        .unwrap();
    let span = f.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    for (a, b) in f.iter().zip(y.output()) {
        assert!((*a as f64 - *b as f64 * q.output_scale).abs() < 0.1 * span + 1e-3);
    }
}
