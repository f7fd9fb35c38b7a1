//! Protocol v2 with MaxPool and residual Add: completeness (pool after a requantized conv, pool
//! on the public input, residual from a Requant output and from the input, the calibrated
//! residual CNN from ONNX) and rejection of tampering and of cheating provers.

#[allow(dead_code)]
mod common;

use opal_quant::{Add, Conv2d, Dense, Layer, MaxPool2d, QuantModel, Requant, SplitMix64};
use opal_zk::v2;
use opal_zk::ZkError;

fn roundtrip(model: &QuantModel, x: &[i64]) -> (v2::RegisteredModel, Vec<i64>, Vec<u8>) {
    let (pm, reg) = v2::register(model).expect("register");
    let (y, proof) = v2::prove(&pm, &reg, x).expect("prove");
    assert_eq!(y, model.execute(x).unwrap().output());
    assert_eq!(proof.len(), v2::proof_len(&reg).unwrap());
    v2::verify(&reg, x, &y, &proof).expect("honest proof verifies");
    assert!(v2::soundness_bits(&reg).unwrap() > 100.0);
    (reg, y, proof)
}

fn w(rng: &mut SplitMix64, n: usize) -> Vec<i16> {
    (0..n).map(|_| rng.range_i64(-127, 127) as i16).collect()
}

fn rq(multiplier: i64, shift: u8, relu: bool) -> Layer {
    Layer::Requant(Requant {
        multiplier,
        shift,
        relu,
        out_bits: 8,
    })
}

/// 1x6x6 -> conv 3x3x3 (pad 1) -> requant relu -> maxpool 2x2 s2 -> 3x3x3 -> dense 27 -> 4.
fn pool_cnn(seed: u64) -> (QuantModel, Vec<i64>) {
    let mut rng = SplitMix64::new(seed);
    let conv = Conv2d {
        in_ch: 1,
        in_h: 6,
        in_w: 6,
        out_ch: 3,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
        weight_bits: 8,
        weights: w(&mut rng, 27),
        bias: vec![5, -7, 0],
    };
    let model = QuantModel {
        input_len: 36,
        input_bits: 8,
        layers: vec![
            Layer::Conv2d(conv),
            rq(1, 8, true),
            Layer::MaxPool2d(MaxPool2d {
                ch: 3,
                in_h: 6,
                in_w: 6,
                kh: 2,
                kw: 2,
                stride: 2,
            }),
            Layer::Dense(Dense {
                rows: 4,
                cols: 27,
                weight_bits: 8,
                weights: w(&mut rng, 108),
                bias: vec![1, 2, 3, 4],
            }),
        ],
        input_scale: 1.0,
        output_scale: 1.0,
    };
    let x = (0..36).map(|_| rng.range_i64(-128, 127)).collect();
    (model, x)
}

#[test]
fn maxpool_after_a_conv_proves_and_verifies() {
    let (model, x) = pool_cnn(1);
    let t = model.execute(&x).unwrap();
    assert!(t.values[2].iter().any(|v| *v > 0), "pooled values all zero");
    roundtrip(&model, &x);
}

#[test]
fn maxpool_on_the_public_input_and_overlapping_windows() {
    let mut rng = SplitMix64::new(3);
    let model = QuantModel {
        input_len: 2 * 5 * 5,
        input_bits: 8,
        layers: vec![
            Layer::MaxPool2d(MaxPool2d {
                ch: 2,
                in_h: 5,
                in_w: 5,
                kh: 3,
                kw: 2,
                stride: 1,
            }),
            Layer::Dense(Dense {
                rows: 3,
                cols: 2 * 3 * 4,
                weight_bits: 8,
                weights: w(&mut rng, 72),
                bias: vec![0, 1, -1],
            }),
            rq(3, 6, false),
            Layer::MaxPool2d(MaxPool2d {
                ch: 1,
                in_h: 1,
                in_w: 3,
                kh: 1,
                kw: 3,
                stride: 1,
            }),
        ],
        input_scale: 1.0,
        output_scale: 1.0,
    };
    // Ties (repeated maxima) included.
    let mut x: Vec<i64> = (0..50).map(|_| rng.range_i64(-128, 127)).collect();
    x[0] = 127;
    x[1] = 127;
    x[5] = 127;
    roundtrip(&model, &x);
}

/// Dense 12->12, requant, Add(from the requant output or the input), requant, dense 12->3.
fn residual_mlp(seed: u64, from: u32) -> (QuantModel, Vec<i64>) {
    let mut rng = SplitMix64::new(seed);
    let model = QuantModel {
        input_len: 12,
        input_bits: 8,
        layers: vec![
            Layer::Dense(Dense {
                rows: 12,
                cols: 12,
                weight_bits: 8,
                weights: w(&mut rng, 144),
                bias: vec![3; 12],
            }),
            rq(1, 9, true),
            Layer::Dense(Dense {
                rows: 12,
                cols: 12,
                weight_bits: 8,
                weights: w(&mut rng, 144),
                bias: vec![-2; 12],
            }),
            rq(1, 9, false),
            Layer::Add(Add {
                from,
                x_multiplier: 3,
                from_multiplier: 5,
            }),
            rq(1, 3, true),
            Layer::Dense(Dense {
                rows: 3,
                cols: 12,
                weight_bits: 8,
                weights: w(&mut rng, 36),
                bias: vec![0; 3],
            }),
        ],
        input_scale: 1.0,
        output_scale: 1.0,
    };
    let x = (0..12).map(|_| rng.range_i64(-128, 127)).collect();
    (model, x)
}

#[test]
fn residual_add_from_a_requant_and_from_the_input() {
    for from in [2u32, 0] {
        let (model, x) = residual_mlp(5, from);
        let (reg, y, proof) = roundtrip(&model, &x);
        // Changed Add multipliers in the claimed structure: rejected.
        for change in [(1i64, 0i64), (0, 1)] {
            let mut reg2 = reg.clone();
            if let Layer::Add(a) = &mut reg2.structure.layers[4] {
                a.x_multiplier += change.0;
                a.from_multiplier += change.1;
            }
            assert!(v2::verify(&reg2, &x, &y, &proof).is_err());
        }
        for i in 0..y.len() {
            let mut bad = y.clone();
            bad[i] -= 1;
            assert!(v2::verify(&reg, &x, &bad, &proof).is_err());
        }
    }
}

#[test]
fn an_add_layer_as_the_first_layer() {
    // y = 2x + 7x (from = 0 with x the input itself).
    let model = QuantModel {
        input_len: 5,
        input_bits: 8,
        layers: vec![
            Layer::Add(Add {
                from: 0,
                x_multiplier: 2,
                from_multiplier: 7,
            }),
            rq(1, 2, false),
        ],
        input_scale: 1.0,
        output_scale: 1.0,
    };
    let x = vec![-128, -1, 0, 1, 127];
    let (reg, y, proof) = roundtrip(&model, &x);
    let mut bad = x.clone();
    bad[2] = 1;
    assert!(v2::verify(&reg, &bad, &y, &proof).is_err());
}

#[test]
fn calibrated_residual_cnn_from_onnx_proves() {
    use opal_quant::onnx_writer::*;
    let mut rng = SplitMix64::new(9);
    let mut rv = |n: usize, s: f32| -> Vec<f32> {
        (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * s).collect()
    };
    let mut g = Vec::new();
    let pad: &[(&str, &[i64])] = &[("kernel_shape", &[3, 3]), ("pads", &[1, 1, 1, 1])];
    field_bytes(
        1,
        &node("Conv", &["input", "C1", "B1"], &["c1"], pad),
        &mut g,
    );
    field_bytes(1, &node("Relu", &["c1"], &["r1"], &[]), &mut g);
    field_bytes(1, &node("Conv", &["r1", "C2", "B2"], &["c2"], pad), &mut g);
    field_bytes(1, &node("Add", &["c2", "r1"], &["sum"], &[]), &mut g);
    field_bytes(1, &node("Relu", &["sum"], &["r3"], &[]), &mut g);
    let mp: &[(&str, &[i64])] = &[("kernel_shape", &[2, 2]), ("strides", &[2, 2])];
    field_bytes(1, &node("MaxPool", &["r3"], &["p"], mp), &mut g);
    field_bytes(1, &node("Flatten", &["p"], &["flat"], &[]), &mut g);
    field_bytes(
        1,
        &node("Gemm", &["flat", "W", "B"], &["logits"], &[]),
        &mut g,
    );
    field_bytes(5, &ftensor("C1", &[4, 1, 3, 3], &rv(36, 0.5)), &mut g);
    field_bytes(5, &ftensor("B1", &[4], &rv(4, 0.05)), &mut g);
    field_bytes(5, &ftensor("C2", &[4, 4, 3, 3], &rv(144, 0.3)), &mut g);
    field_bytes(5, &ftensor("B2", &[4], &rv(4, 0.05)), &mut g);
    field_bytes(5, &ftensor("W", &[64, 5], &rv(320, 0.3)), &mut g);
    field_bytes(5, &ftensor("B", &[5], &rv(5, 0.05)), &mut g);
    field_bytes(11, &input_info("input", &[1, 1, 8, 8]), &mut g);
    let bytes = model(g);
    let calib: Vec<Vec<f32>> = (0..8)
        .map(|_| rv(64, 1.0).iter().map(|v| v.abs()).collect())
        .collect();
    let m = opal_quant::quantize_onnx(&bytes, &calib, &opal_quant::BuildConfig::default()).unwrap();
    assert!(m.layers.iter().any(|l| matches!(l, Layer::Add(_))));
    assert!(m.layers.iter().any(|l| matches!(l, Layer::MaxPool2d(_))));
    let x = m.input_from_f32(&calib[3]).unwrap();
    roundtrip(&m, &x);
}

#[test]
fn tampered_pool_proofs_are_rejected() {
    let (model, x) = pool_cnn(2);
    let (reg, y, proof) = roundtrip(&model, &x);
    for i in 0..y.len() {
        let mut bad = y.clone();
        bad[i] += 1;
        assert!(v2::verify(&reg, &x, &bad, &proof).is_err(), "output {i}");
    }
    let mut rng = SplitMix64::new(11);
    for _ in 0..64 {
        let i = rng.range_i64(0, proof.len() as i64 - 1) as usize;
        let mut bad = proof.clone();
        bad[i] ^= 1 << rng.range_i64(0, 7);
        assert!(v2::verify(&reg, &x, &y, &bad).is_err(), "byte {i}");
    }
    // A different window in the claimed structure.
    let mut reg2 = reg.clone();
    if let Layer::MaxPool2d(p) = &mut reg2.structure.layers[2] {
        p.kw = 1;
        p.kh = 1;
        p.in_h = 3;
        p.in_w = 3;
    }
    assert!(v2::verify(&reg2, &x, &y, &proof).is_err());
}

/// Cheating provers: the pool output is changed (the rest of the model re-executed on it) so
/// that everything downstream is consistent with the cheat.
#[test]
fn cheating_max_is_rejected() {
    let (model, x) = pool_cnn(4);
    let (pm, reg) = v2::register(&model).unwrap();
    let honest = model.execute(&x).unwrap().values[3].clone();
    // Index of a window whose candidates are not all equal, so "second largest" exists.
    let j = (0..honest.len()).find(|j| honest[*j] > 0).unwrap();
    let cheats: [(&str, i64); 3] = [
        ("above the max", 1),
        ("below the max", -1),
        ("far above", 40),
    ];
    for (what, delta) in cheats {
        let hook = move |_: usize, y: &mut Vec<i64>| y[j] += delta;
        let (out, proof) = v2::prove_with_pool_hook(&pm, &reg, &x, &hook).unwrap();
        let e = v2::verify(&reg, &x, &out, &proof).expect_err(what);
        // Caught at the pool (layer 2): "above" by the product check, "below" by the window
        // identity (a negative d_t has no 8-bit limbs, so the gather claim is off).
        assert!(
            matches!(
                e,
                ZkError::SumcheckRound { layer: 2, round: 0 } | ZkError::SumcheckFinal { layer: 2 }
            ),
            "cheat {what}: {e:?}"
        );
        eprintln!("cheat {what}: {e:?}");
    }
    // The same hook machinery with no change gives a valid proof.
    let noop = |_: usize, _: &mut Vec<i64>| {};
    let (out, proof) = v2::prove_with_pool_hook(&pm, &reg, &x, &noop).unwrap();
    v2::verify(&reg, &x, &out, &proof).unwrap();
}

/// A random model with a conv, an optional max pool (random window and stride, sometimes a
/// ReLU clamp after it), dense layers and an optional residual Add between two requantized
/// dense outputs.
fn random_pool_model(seed: u64) -> Option<(QuantModel, Vec<i64>)> {
    let mut rng = SplitMix64::new(seed);
    let (c, h, wd) = (
        rng.range_i64(1, 2) as u32,
        rng.range_i64(3, 7) as u32,
        rng.range_i64(3, 7) as u32,
    );
    let (kh, kw) = (rng.range_i64(1, 3) as u32, rng.range_i64(1, 3) as u32);
    let pad = rng.range_i64(0, 1) as u32;
    let oc = rng.range_i64(1, 3) as u32;
    let conv = Conv2d {
        in_ch: c,
        in_h: h,
        in_w: wd,
        out_ch: oc,
        kh,
        kw,
        stride: 1,
        pad,
        weight_bits: 8,
        weights: w(&mut rng, (oc * c * kh * kw) as usize),
        bias: (0..oc).map(|_| rng.range_i64(-50, 50) as i32).collect(),
    };
    let (oh, ow) = conv.out_hw();
    let out_bits = rng.range_i64(4, 8) as u8;
    let mut layers = vec![
        Layer::Conv2d(conv),
        Layer::Requant(Requant {
            multiplier: rng.range_i64(1, 64),
            shift: 9,
            relu: rng.range_i64(0, 1) == 1,
            out_bits,
        }),
    ];
    let mut len = (oc as usize) * oh * ow;
    if rng.range_i64(0, 3) != 0 {
        let p = MaxPool2d {
            ch: oc,
            in_h: oh as u32,
            in_w: ow as u32,
            kh: rng.range_i64(1, 3.min(oh as i64)) as u32,
            kw: rng.range_i64(1, 3.min(ow as i64)) as u32,
            stride: rng.range_i64(1, 2) as u32,
        };
        let (ph, pw) = p.out_hw();
        len = oc as usize * ph * pw;
        layers.push(Layer::MaxPool2d(p));
        if rng.range_i64(0, 1) == 1 {
            layers.push(Layer::Requant(Requant {
                multiplier: 2,
                shift: 1,
                relu: true,
                out_bits,
            }));
        }
    }
    let hidden = rng.range_i64(2, 9) as usize;
    for _ in 0..2 {
        layers.push(Layer::Dense(Dense {
            rows: hidden as u32,
            cols: len as u32,
            weight_bits: 8,
            weights: w(&mut rng, hidden * len),
            bias: (0..hidden).map(|_| rng.range_i64(-99, 99) as i32).collect(),
        }));
        layers.push(Layer::Requant(Requant {
            multiplier: rng.range_i64(1, 64),
            shift: 11,
            relu: rng.range_i64(0, 1) == 1,
            out_bits: 8,
        }));
        len = hidden;
    }
    if rng.range_i64(0, 1) == 1 {
        // Add the first dense block's requantized output to the second's.
        let from = layers.len() - 2;
        layers.push(Layer::Add(Add {
            from: from as u32,
            x_multiplier: rng.range_i64(1, 9),
            from_multiplier: rng.range_i64(1, 9),
        }));
    }
    layers.push(Layer::Dense(Dense {
        rows: 3,
        cols: len as u32,
        weight_bits: 8,
        weights: w(&mut rng, 3 * len),
        bias: vec![0, 5, -5],
    }));
    let m = QuantModel {
        input_len: c * h * wd,
        input_bits: 8,
        layers,
        input_scale: 1.0,
        output_scale: 1.0,
    };
    m.validate().ok()?;
    let x = (0..m.input_len).map(|_| rng.range_i64(-128, 127)).collect();
    Some((m, x))
}

#[test]
fn random_pool_and_residual_models_prove_and_verify() {
    let mut proven = 0;
    for seed in 0..40u64 {
        let Some((m, x)) = random_pool_model(seed) else {
            continue;
        };
        let (reg, y, proof) = roundtrip(&m, &x);
        let mut bad = y.clone();
        bad[seed as usize % y.len()] += 1;
        assert!(v2::verify(&reg, &x, &bad, &proof).is_err(), "seed {seed}");
        proven += 1;
    }
    assert!(proven >= 30, "only {proven} random models were valid");
}
