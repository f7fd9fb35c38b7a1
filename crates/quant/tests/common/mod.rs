//! Random valid models and inputs for executor tests.
#![allow(dead_code)]

use opal_quant::*;

/// A random valid model: an optional conv stage over a C x H x W input, then dense layers,
/// with random requants (sometimes none between two linear layers, so wide accumulators feed
/// the next layer), random weight bits (up to 16) and extreme weights / biases.
pub fn random_model(seed: u64) -> Option<QuantModel> {
    let mut rng = SplitMix64::new(seed);
    let input_bits = rng.range_i64(2, 16) as u8;
    let conv = rng.range_i64(0, 1) == 1;
    let (c, h, w) = (
        rng.range_i64(1, 3) as u32,
        rng.range_i64(3, 9) as u32,
        rng.range_i64(3, 9) as u32,
    );
    let mut layers = Vec::new();
    let mut len = if conv {
        (c * h * w) as usize
    } else {
        rng.range_i64(1, 70) as usize
    };
    let weights = |rng: &mut SplitMix64, n: usize, bits: u8| -> Vec<i16> {
        let hi = (1i64 << (bits - 1)) - 1;
        (0..n)
            .map(|_| match rng.range_i64(0, 9) {
                0 => -hi - 1,
                1 => hi,
                _ => rng.range_i64(-hi - 1, hi),
            } as i16)
            .collect()
    };
    let requant = |rng: &mut SplitMix64| {
        Layer::Requant(Requant {
            multiplier: rng.range_i64(1, 1 << 20),
            shift: rng.range_i64(8, 40) as u8,
            relu: rng.range_i64(0, 1) == 1,
            out_bits: rng.range_i64(2, 16) as u8,
        })
    };
    if conv {
        let wb = rng.range_i64(2, 16) as u8;
        let (kh, kw) = (rng.range_i64(1, 3) as u32, rng.range_i64(1, 3) as u32);
        let stride = rng.range_i64(1, 2) as u32;
        let pad = rng.range_i64(0, 1) as u32;
        let out_ch = rng.range_i64(1, 5) as u32;
        let cv = Conv2d {
            in_ch: c,
            in_h: h,
            in_w: w,
            out_ch,
            kh,
            kw,
            stride,
            pad,
            weight_bits: wb,
            weights: weights(&mut rng, (out_ch * c * kh * kw) as usize, wb),
            bias: (0..out_ch)
                .map(|_| rng.range_i64(-1000, 1000) as i32)
                .collect(),
        };
        let (oh, ow) = cv.out_hw();
        len = out_ch as usize * oh * ow;
        layers.push(Layer::Conv2d(cv));
        layers.push(requant(&mut rng));
        if rng.range_i64(0, 1) == 1 && oh >= 2 && ow >= 2 {
            let p = MaxPool2d {
                ch: out_ch,
                in_h: oh as u32,
                in_w: ow as u32,
                kh: rng.range_i64(1, 2) as u32,
                kw: rng.range_i64(1, 2) as u32,
                stride: rng.range_i64(1, 2) as u32,
            };
            let (ph, pw) = p.out_hw();
            len = out_ch as usize * ph * pw;
            layers.push(Layer::MaxPool2d(p));
        }
    }
    for _ in 0..rng.range_i64(1, 3) {
        let wb = rng.range_i64(2, 16) as u8;
        let rows = rng.range_i64(1, 40) as usize;
        layers.push(Layer::Dense(Dense {
            rows: rows as u32,
            cols: len as u32,
            weight_bits: wb,
            weights: weights(&mut rng, rows * len, wb),
            bias: (0..rows)
                .map(|_| rng.range_i64(-100_000, 100_000) as i32)
                .collect(),
        }));
        len = rows;
        if rng.range_i64(0, 3) != 0 {
            layers.push(requant(&mut rng));
        }
        // A residual Add of an earlier value of the same length, when there is one.
        if rng.range_i64(0, 2) == 0 {
            let n = layers.len();
            if let Some(from) = (0..n).rev().find(|v| value_len(&layers, *v) == Some(len)) {
                layers.push(Layer::Add(Add {
                    from: from as u32,
                    x_multiplier: rng.range_i64(1, 1 << 16),
                    from_multiplier: rng.range_i64(1, 1 << 16),
                }));
            }
        }
    }
    let m = QuantModel {
        input_len: if conv {
            c * h * w
        } else {
            layers_input_len(&layers)
        },
        input_bits,
        layers,
        input_scale: 0.5,
        output_scale: 0.25,
    };
    m.validate().ok().map(|_| m)
}

fn layers_input_len(layers: &[Layer]) -> u32 {
    match &layers[0] {
        Layer::Dense(d) => d.cols,
        Layer::Conv2d(c) => c.in_ch * c.in_h * c.in_w,
        _ => 0,
    }
}

pub fn random_input(m: &QuantModel, seed: u64) -> Vec<i64> {
    let mut rng = SplitMix64::new(seed ^ 0xabcdef);
    let hi = (1i64 << (m.input_bits - 1)) - 1;
    (0..m.input_len)
        .map(|_| match rng.range_i64(0, 5) {
            0 => -hi - 1,
            1 => hi,
            _ => rng.range_i64(-hi - 1, hi),
        })
        .collect()
}

/// Length of value `v` (0 = input, k + 1 = output of layer k) of a layer list, from the layer
/// shapes (None for the input, whose length is not recorded in the list).
fn value_len(layers: &[Layer], v: usize) -> Option<usize> {
    if v == 0 {
        return None;
    }
    let mut len = None;
    for l in &layers[..v] {
        len = match l {
            Layer::Dense(d) => Some(d.rows as usize),
            Layer::Conv2d(c) => {
                let (oh, ow) = c.out_hw();
                Some(c.out_ch as usize * oh * ow)
            }
            Layer::MaxPool2d(p) => {
                let (oh, ow) = p.out_hw();
                Some(p.ch as usize * oh * ow)
            }
            Layer::Requant(_) | Layer::Add(_) => len,
        };
    }
    len
}
