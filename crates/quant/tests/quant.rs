use opal_quant::*;
use proptest::prelude::*;

fn rq(m: i64, s: u8, relu: bool) -> Requant {
    Requant {
        multiplier: m,
        shift: s,
        relu,
        out_bits: 8,
    }
}

#[test]
fn rounding_is_half_up_then_saturating() {
    let r = rq(1, 1, false); // x / 2
    let got: Vec<i64> = [3, 1, -1, -3, -4, 0, 2]
        .iter()
        .map(|x| requantize(*x, &r))
        .collect();
    assert_eq!(got, vec![2, 1, 0, -1, -2, 0, 1]);
    assert_eq!(requantize(1000, &r), 127);
    assert_eq!(requantize(-1000, &r), -128);
    let relu = rq(1, 1, true);
    assert_eq!(requantize(-3, &relu), 0);
    assert_eq!(requantize(5, &relu), 3);
}

proptest! {
    #[test]
    fn requant_parts_reconstruct(x in -(1i64 << 40)..(1i64 << 40), m in 1i64..(1 << 20), s in 1u8..40) {
        let r = rq(m, s, false);
        let (q, rem) = requant_parts(x, &r);
        prop_assert!(rem >= 0 && rem < (1i64 << s));
        prop_assert_eq!(x as i128 * m as i128 + (1i128 << (s - 1)), q as i128 * (1i128 << s) + rem as i128);
        prop_assert_eq!(requantize(x, &r), q.clamp(-128, 127));
        // round half up == floor(real + 1/2)
        let real = x as f64 * m as f64 / 2f64.powi(s as i32);
        if real.abs() < 1e9 { prop_assert!(((real + 0.5).floor() as i64 - q).abs() <= 1); }
    }
}

fn random_mlp(seed: u64, dims: &[usize]) -> (Vec<FloatDense>, Vec<Vec<f32>>) {
    let mut rng = SplitMix64::new(seed);
    let layers = dims
        .windows(2)
        .map(|w| {
            let (cols, rows) = (w[0], w[1]);
            let a = (2.0 / cols as f32).sqrt();
            FloatDense {
                rows,
                cols,
                weights: (0..rows * cols)
                    .map(|_| (rng.next_f32() * 2.0 - 1.0) * a)
                    .collect(),
                bias: (0..rows).map(|_| (rng.next_f32() - 0.5) * 0.1).collect(),
            }
        })
        .collect();
    let calib = (0..16)
        .map(|_| (0..dims[0]).map(|_| rng.next_f32()).collect())
        .collect();
    (layers, calib)
}

#[test]
fn builder_tracks_float_model() {
    let (layers, calib) = random_mlp(7, &[64, 32, 16, 10]);
    let model = build_mlp(&layers, &calib, &BuildConfig::default()).unwrap();
    assert_eq!(model.layers.len(), 5);
    let mut agree = 0;
    for x in &calib {
        let q = quantize_input(x, model.input_scale, model.input_bits);
        let out = model.execute(&q).unwrap();
        let mut f = x.clone();
        for (k, l) in layers.iter().enumerate() {
            f = l
                .weights
                .chunks_exact(l.cols)
                .zip(&l.bias)
                .map(|(r, b)| b + r.iter().zip(&f).map(|(w, v)| w * v).sum::<f32>())
                .collect();
            if k + 1 < layers.len() {
                f.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        let argmax = |v: Vec<f64>| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0
        };
        let qa = argmax(out.output().iter().map(|v| *v as f64).collect());
        let fa = argmax(f.iter().map(|v| *v as f64).collect());
        agree += (qa == fa) as usize;
        let err: f64 = out
            .output()
            .iter()
            .zip(&f)
            .map(|(q, f)| (*q as f64 * model.output_scale - *f as f64).abs())
            .fold(0.0, f64::max);
        assert!(err < 0.25, "output error {err}");
    }
    assert!(agree >= 14, "argmax agreement {agree}/16");
}

#[test]
fn execution_is_deterministic_and_id_is_stable() {
    let (layers, calib) = random_mlp(9, &[32, 8, 4]);
    let m = build_mlp(&layers, &calib, &BuildConfig::default()).unwrap();
    let q = quantize_input(&calib[0], m.input_scale, m.input_bits);
    assert_eq!(m.execute(&q).unwrap(), m.execute(&q).unwrap());
    let bytes = borsh::to_vec(&m).unwrap();
    let back: QuantModel = borsh::from_slice(&bytes).unwrap();
    assert_eq!(back.model_id(), m.model_id());
    let mut other = m.clone();
    if let Layer::Dense(d) = &mut other.layers[0] {
        d.weights[0] ^= 1;
    }
    assert_ne!(other.model_id(), m.model_id());
}

#[test]
fn validation_rejects_bad_models_and_inputs() {
    let (layers, calib) = random_mlp(3, &[16, 4]);
    let m = build_mlp(&layers, &calib, &BuildConfig::default()).unwrap();
    assert!(matches!(
        m.execute(&[0; 15]),
        Err(QuantError::LengthMismatch { .. })
    ));
    assert!(matches!(
        m.execute(&[200; 16]),
        Err(QuantError::InputOutOfRange { .. })
    ));
    let mut bad = m.clone();
    if let Layer::Dense(d) = &mut bad.layers[0] {
        d.weights[0] = 300;
    }
    assert!(bad.validate().is_err());
    let mut big = m.clone();
    big.layers.push(Layer::Requant(Requant {
        multiplier: i32::MAX as i64,
        shift: 62,
        relu: false,
        out_bits: 8,
    }));
    big.layers.push(Layer::Dense(Dense {
        rows: 1,
        cols: 4,
        weight_bits: 16,
        weights: vec![-32768; 4],
        bias: vec![0],
    }));
    assert!(big.validate().is_ok());
    let mut huge = m;
    huge.layers.push(Layer::Requant(Requant {
        multiplier: i32::MAX as i64,
        shift: 62,
        relu: false,
        out_bits: 8,
    }));
    if let Layer::Dense(d) = &mut huge.layers[0] {
        d.bias[0] = i32::MAX;
    }
    assert!(matches!(
        huge.validate(),
        Err(QuantError::MagnitudeTooLarge { .. })
    ));
}
