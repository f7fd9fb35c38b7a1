//! MaxPool and residual Add: import from hand-encoded ONNX, calibrated build, canonical
//! execution against the float model, and the executor semantics.

use opal_quant::onnx::import_graph;
use opal_quant::onnx_writer::*;
use opal_quant::*;

fn rand_vec(rng: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.next_f32() * 2.0 - 1.0) * scale)
        .collect()
}

/// 1x8x8 -> Conv 3x3x4 (pad 1) -> Relu (r1) -> Conv 3x3x4 (pad 1) -> Relu -> Add(r1) -> Relu
/// -> MaxPool 2x2 stride 2 -> Flatten -> Gemm 64x5 -> Softmax.
fn onnx_resnet(seed: u64, maxpool_pads: Option<&[i64]>) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut g = Vec::new();
    let pad: &[(&str, &[i64])] = &[("kernel_shape", &[3, 3]), ("pads", &[1, 1, 1, 1])];
    field_bytes(
        1,
        &node("Conv", &["input", "C1", "B1"], &["c1"], pad),
        &mut g,
    );
    field_bytes(1, &node("Relu", &["c1"], &["r1"], &[]), &mut g);
    field_bytes(1, &node("Conv", &["r1", "C2", "B2"], &["c2"], pad), &mut g);
    field_bytes(1, &node("Relu", &["c2"], &["r2"], &[]), &mut g);
    field_bytes(1, &node("Add", &["r2", "r1"], &["sum"], &[]), &mut g);
    field_bytes(1, &node("Relu", &["sum"], &["r3"], &[]), &mut g);
    let mut mp: Vec<(&str, &[i64])> = vec![("kernel_shape", &[2, 2]), ("strides", &[2, 2])];
    if let Some(p) = maxpool_pads {
        mp.push(("pads", p));
    }
    field_bytes(1, &node("MaxPool", &["r3"], &["p"], &mp), &mut g);
    field_bytes(1, &node("Flatten", &["p"], &["flat"], &[]), &mut g);
    field_bytes(
        1,
        &node("Gemm", &["flat", "W", "B"], &["logits"], &[]),
        &mut g,
    );
    field_bytes(1, &node("Softmax", &["logits"], &["probs"], &[]), &mut g);
    field_bytes(
        5,
        &ftensor("C1", &[4, 1, 3, 3], &rand_vec(&mut rng, 36, 0.5)),
        &mut g,
    );
    field_bytes(
        5,
        &ftensor("B1", &[4], &rand_vec(&mut rng, 4, 0.05)),
        &mut g,
    );
    field_bytes(
        5,
        &ftensor("C2", &[4, 4, 3, 3], &rand_vec(&mut rng, 144, 0.3)),
        &mut g,
    );
    field_bytes(
        5,
        &ftensor("B2", &[4], &rand_vec(&mut rng, 4, 0.05)),
        &mut g,
    );
    field_bytes(
        5,
        &ftensor("W", &[64, 5], &rand_vec(&mut rng, 320, 0.3)),
        &mut g,
    );
    field_bytes(5, &ftensor("B", &[5], &rand_vec(&mut rng, 5, 0.05)), &mut g);
    field_bytes(11, &input_info("input", &[1, 1, 8, 8]), &mut g);
    model(g)
}

#[test]
fn residual_cnn_with_maxpool_imports_builds_and_tracks_float() {
    let bytes = onnx_resnet(5, None);
    let g = import_graph(&bytes).unwrap();
    assert!(
        matches!(g.layers[4], FloatLayer::Add { from: 2 }),
        "{:?}",
        g.layers[4]
    );
    assert!(matches!(g.layers[6], FloatLayer::MaxPool(_)));
    let mut rng = SplitMix64::new(77);
    let calib: Vec<Vec<f32>> = (0..32)
        .map(|_| (0..64).map(|_| rng.next_f32()).collect())
        .collect();
    let m = quantize_onnx(&bytes, &calib, &BuildConfig::default()).unwrap();
    let kinds: Vec<&str> = m
        .layers
        .iter()
        .map(|l| match l {
            Layer::Dense(_) => "dense",
            Layer::Conv2d(_) => "conv",
            Layer::Requant(_) => "requant",
            Layer::MaxPool2d(_) => "maxpool",
            Layer::Add(_) => "add",
        })
        .collect();
    assert_eq!(
        kinds,
        ["conv", "requant", "conv", "requant", "add", "requant", "maxpool", "dense"]
    );
    let Layer::Add(a) = &m.layers[4] else {
        panic!()
    };
    assert_eq!(
        a.from, 2,
        "the residual reads the first requantized activation"
    );
    let (mut agree, mut worst) = (0, 0f64);
    for x in &calib[..16] {
        let f = g.forward(x);
        let q = m.run(&m.input_from_f32(x).unwrap()).unwrap();
        let fmax = f.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
        let err = q
            .iter()
            .zip(&f)
            .map(|(q, f)| (*q as f64 * m.output_scale - *f as f64).abs())
            .fold(0.0, f64::max);
        worst = worst.max(err / fmax);
        let fa = f
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        agree += (argmax(&q) == Some(fa)) as usize;
        for threads in [1, 2, 4] {
            for path in [ExecPath::Auto, ExecPath::Portable, ExecPath::Lanes] {
                let qx = m.input_from_f32(x).unwrap();
                assert_eq!(m.run_with(&qx, ExecOptions { threads, path }).unwrap(), q);
            }
        }
    }
    assert!(
        worst < 0.1,
        "dequantized logits off by {worst} of the largest"
    );
    assert!(agree >= 14, "argmax agreement {agree}/16");
    // Round trip through the model file.
    assert_eq!(QuantModel::from_file_bytes(&m.to_file_bytes()).unwrap(), m);
}

#[test]
fn unsupported_pooling_is_refused() {
    let e = import_graph(&onnx_resnet(5, Some(&[1, 1, 1, 1]))).unwrap_err();
    assert!(e.to_string().contains("padded MaxPool"), "{e}");
}

#[test]
fn maxpool_and_add_semantics() {
    // 1 x 3 x 4 input, 2x2 window, stride 1 -> 1 x 2 x 3; then add the pooled value to itself
    // (from = 1) with multipliers 3 and 2: y = 5 * pooled.
    let m = QuantModel {
        input_len: 12,
        input_bits: 8,
        layers: vec![
            Layer::MaxPool2d(MaxPool2d {
                ch: 1,
                in_h: 3,
                in_w: 4,
                kh: 2,
                kw: 2,
                stride: 1,
            }),
            Layer::Add(Add {
                from: 1,
                x_multiplier: 3,
                from_multiplier: 2,
            }),
            Layer::Add(Add {
                from: 0,
                x_multiplier: 1,
                from_multiplier: 1,
            }),
        ],
        input_scale: 1.0,
        output_scale: 1.0,
    };
    // The last Add reads the 12-element input into a 6-element vector: refused.
    assert!(matches!(
        m.validate(),
        Err(QuantError::LengthMismatch { layer: 2, .. })
    ));
    let mut m = m;
    m.layers.pop();
    let x = vec![1, -5, 3, 0, 7, -128, 2, 9, -1, 4, 127, -3];
    let t = m.execute(&x).unwrap();
    assert_eq!(t.values[1], vec![7, 3, 9, 7, 127, 127]);
    assert_eq!(t.output(), &[35, 15, 45, 35, 635, 635]);
    for threads in [1, 2, 3] {
        assert_eq!(
            m.run_with(
                &x,
                ExecOptions {
                    threads,
                    path: ExecPath::Portable
                }
            )
            .unwrap(),
            t.output()
        );
    }
    // `from` after the running value is refused.
    let mut bad = m.clone();
    if let Layer::Add(a) = &mut bad.layers[1] {
        a.from = 2;
    }
    assert!(bad.validate().is_err());
    let mut bad = m.clone();
    if let Layer::Add(a) = &mut bad.layers[1] {
        a.x_multiplier = 0;
    }
    assert!(bad.validate().is_err());
}
