use opal_quant::{build_mlp, quantize_input, BuildConfig, FloatDense, QuantModel, SplitMix64};

/// A seeded random MLP (He-style weights, inputs in [0,1)) and one quantized input.
pub fn mlp(seed: u64, dims: &[usize]) -> (QuantModel, Vec<i64>) {
    let mut rng = SplitMix64::new(seed);
    let layers: Vec<FloatDense> = dims
        .windows(2)
        .map(|w| {
            let (cols, rows) = (w[0], w[1]);
            let a = (6.0 / cols as f32).sqrt();
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
    let calib: Vec<Vec<f32>> = (0..8)
        .map(|_| (0..dims[0]).map(|_| rng.next_f32()).collect())
        .collect();
    let model = build_mlp(&layers, &calib, &BuildConfig::default()).expect("build");
    let x = quantize_input(&calib[0], model.input_scale, model.input_bits);
    (model, x)
}

/// A small integer CNN: 1x6x6 -> conv3x3x2 (pad 0) -> requant+relu -> conv3x3x3 (pad 1, stride 2)
/// -> requant+relu -> dense 12->4. Built from integers (seeded), with one input.
#[allow(dead_code)]
pub fn cnn(seed: u64) -> (QuantModel, Vec<i64>) {
    use opal_quant::{Conv2d, Dense, Layer, Requant};
    let mut rng = SplitMix64::new(seed);
    let mut w =
        |n: usize| -> Vec<i16> { (0..n).map(|_| rng.range_i64(-127, 127) as i16).collect() };
    let c1 = Conv2d {
        in_ch: 1,
        in_h: 6,
        in_w: 6,
        out_ch: 2,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 0,
        weight_bits: 8,
        weights: w(18),
        bias: vec![100, -200],
    };
    let c2 = Conv2d {
        in_ch: 2,
        in_h: 4,
        in_w: 4,
        out_ch: 3,
        kh: 3,
        kw: 3,
        stride: 2,
        pad: 1,
        weight_bits: 8,
        weights: w(54),
        bias: vec![5, 0, -5],
    };
    let d = Dense {
        rows: 4,
        cols: 12,
        weight_bits: 8,
        weights: w(48),
        bias: vec![1, 2, 3, 4],
    };
    let rq = |m: i64| {
        Layer::Requant(Requant {
            multiplier: m,
            shift: 16,
            relu: true,
            out_bits: 8,
        })
    };
    let layers = vec![
        Layer::Conv2d(c1),
        rq(300),
        Layer::Conv2d(c2),
        rq(500),
        Layer::Dense(d),
    ];
    let model = QuantModel {
        input_len: 36,
        input_bits: 8,
        layers,
        input_scale: 1.0,
        output_scale: 1.0,
    };
    let x = (0..36).map(|_| rng.range_i64(-128, 127)).collect();
    (model, x)
}
