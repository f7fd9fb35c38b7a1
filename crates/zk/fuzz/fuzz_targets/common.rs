use opal_quant::{Conv2d, Dense, Layer, QuantModel, Requant, SplitMix64};
use opal_zk::v2::{self, RegisteredModel};

/// A small CNN (conv -> requant -> dense), its registration, input, output and honest proof.
pub struct Fixture {
    pub reg: RegisteredModel,
    pub input: Vec<i64>,
    pub output: Vec<i64>,
    pub proof: Vec<u8>,
}

pub fn fixture() -> Fixture {
    let mut rng = SplitMix64::new(42);
    let mut w = |n: usize| -> Vec<i16> { (0..n).map(|_| rng.range_i64(-127, 127) as i16).collect() };
    let model = QuantModel {
        input_len: 25,
        input_bits: 8,
        layers: vec![
            Layer::Conv2d(Conv2d {
                in_ch: 1,
                in_h: 5,
                in_w: 5,
                out_ch: 2,
                kh: 3,
                kw: 3,
                stride: 1,
                pad: 0,
                weight_bits: 8,
                weights: w(18),
                bias: vec![10, -10],
            }),
            Layer::Requant(Requant {
                multiplier: 77,
                shift: 12,
                relu: true,
                out_bits: 8,
            }),
            Layer::Dense(Dense {
                rows: 3,
                cols: 18,
                weight_bits: 8,
                weights: w(54),
                bias: vec![1, 2, 3],
            }),
        ],
        input_scale: 1.0,
        output_scale: 1.0,
    };
    let input: Vec<i64> = (0..25).map(|i| (i * 37 % 255) as i64 - 127).collect();
    let (pm, reg) = v2::register(&model).expect("register");
    let (output, proof) = v2::prove(&pm, &reg, &input).expect("prove");
    v2::verify(&reg, &input, &output, &proof).expect("honest proof");
    Fixture {
        reg,
        input,
        output,
        proof,
    }
}
