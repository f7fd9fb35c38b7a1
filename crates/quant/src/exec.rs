use crate::model::{Add, Conv2d, Dense, Layer, MaxPool2d, QuantModel, Requant};
use crate::QuantError;

/// Quantizes a float input with the model's input scale: round half away from zero, saturate.
pub fn quantize_input(x: &[f32], scale: f64, bits: u8) -> Vec<i64> {
    let hi = (1i64 << (bits - 1)) - 1;
    x.iter()
        .map(|v| ((*v as f64 / scale).round() as i64).clamp(-hi - 1, hi))
        .collect()
}

/// Every vector of one execution: `values[0]` is the input, `values[k + 1]` the output of layer
/// `k`; the last entry is the model output. Provers use the whole trace as their witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub values: Vec<Vec<i64>>,
}

impl Trace {
    pub fn output(&self) -> &[i64] {
        self.values.last().map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The canonical rounding rule: `clamp(floor((x * m + 2^(s-1)) / 2^s), lo, hi)`, computed
/// exactly in i128 (round half toward +infinity, then saturate).
///
/// Examples with m = 1, s = 1 (x / 2): 3 -> 2, 1 -> 1, -1 -> 0, -3 -> -1, -4 -> -2.
pub fn requantize(x: i64, r: &Requant) -> i64 {
    let t = x as i128 * r.multiplier as i128 + (1i128 << (r.shift - 1));
    let q = t >> r.shift; // arithmetic shift = floor division by 2^shift
    q.clamp(r.lo() as i128, r.hi() as i128) as i64
}

/// The remainder the prover exhibits for [`requantize`]: `x*m + 2^(s-1) = q * 2^s + rem`,
/// `0 <= rem < 2^s`, with `q` the unsaturated quotient. Returns `(q, rem)`.
pub fn requant_parts(x: i64, r: &Requant) -> (i64, i64) {
    let t = x as i128 * r.multiplier as i128 + (1i128 << (r.shift - 1));
    let q = t >> r.shift;
    let rem = t - (q << r.shift);
    (q as i64, rem as i64)
}

fn dense(d: &Dense, x: &[i64]) -> Vec<i64> {
    let cols = d.cols as usize;
    d.weights
        .chunks_exact(cols)
        .zip(&d.bias)
        .map(|(row, b)| {
            row.iter()
                .zip(x)
                .fold(*b as i64, |acc, (w, v)| acc + *w as i64 * v)
        })
        .collect()
}

fn conv2d(c: &Conv2d, x: &[i64]) -> Vec<i64> {
    let (oh, ow) = c.out_hw();
    let (ic, ih, iw) = (c.in_ch as usize, c.in_h as i64, c.in_w as i64);
    let (kh, kw, s, p) = (c.kh as usize, c.kw as usize, c.stride as i64, c.pad as i64);
    let mut y = Vec::with_capacity(c.out_ch as usize * oh * ow);
    for o in 0..c.out_ch as usize {
        for i in 0..oh as i64 {
            for j in 0..ow as i64 {
                let mut acc = c.bias[o] as i64;
                for ch in 0..ic {
                    for u in 0..kh {
                        let r = i * s + u as i64 - p;
                        if r < 0 || r >= ih {
                            continue;
                        }
                        for v in 0..kw {
                            let col = j * s + v as i64 - p;
                            if col < 0 || col >= iw {
                                continue;
                            }
                            let w = c.weights[((o * ic + ch) * kh + u) * kw + v] as i64;
                            acc +=
                                w * x[(ch * ih as usize + r as usize) * iw as usize + col as usize];
                        }
                    }
                }
                y.push(acc);
            }
        }
    }
    y
}

/// Max pooling (no padding), CHW in and out; see [`MaxPool2d`].
pub(crate) fn maxpool_range(p: &MaxPool2d, x: &[i64], out: std::ops::Range<usize>) -> Vec<i64> {
    let (oh, ow) = p.out_hw();
    let (ih, iw, s) = (p.in_h as usize, p.in_w as usize, p.stride as usize);
    out.map(|idx| {
        let (c, rest) = (idx / (oh * ow), idx % (oh * ow));
        let (i, j) = (rest / ow, rest % ow);
        let mut m = i64::MIN;
        for u in 0..p.kh as usize {
            for v in 0..p.kw as usize {
                m = m.max(x[(c * ih + i * s + u) * iw + j * s + v]);
            }
        }
        m
    })
    .collect()
}

fn maxpool(p: &MaxPool2d, x: &[i64]) -> Vec<i64> {
    let (oh, ow) = p.out_hw();
    maxpool_range(p, x, 0..p.ch as usize * oh * ow)
}

/// `x_multiplier * x + from_multiplier * v`, elementwise (validated: no overflow).
pub(crate) fn add(a: &Add, x: &[i64], v: &[i64]) -> Vec<i64> {
    x.iter()
        .zip(v)
        .map(|(x, v)| a.x_multiplier * x + a.from_multiplier * v)
        .collect()
}

impl QuantModel {
    /// Runs the model on `input` (signed `input_bits`-bit integers) and returns every
    /// intermediate vector. Pure integer arithmetic, single-threaded, bit-exact.
    pub fn execute(&self, input: &[i64]) -> Result<Trace, QuantError> {
        self.check_input(input)?;
        let mut values = vec![input.to_vec()];
        for layer in &self.layers {
            let x = &values[values.len() - 1];
            let y = match layer {
                Layer::Dense(d) => dense(d, x),
                Layer::Conv2d(c) => conv2d(c, x),
                Layer::Requant(r) => x.iter().map(|v| requantize(*v, r)).collect(),
                Layer::MaxPool2d(p) => maxpool(p, x),
                Layer::Add(a) => add(a, x, &values[a.from as usize]),
            };
            values.push(y);
        }
        Ok(Trace { values })
    }

    /// Validates the model and checks `input` (length, `input_bits` range); returns the
    /// validated shapes.
    pub(crate) fn check_input(&self, input: &[i64]) -> Result<Vec<crate::ValueShape>, QuantError> {
        let shapes = self.validate()?;
        if input.len() != self.input_len as usize {
            return Err(QuantError::LengthMismatch {
                layer: 0,
                expected: self.input_len as usize,
                got: input.len(),
            });
        }
        let half = 1i64 << (self.input_bits - 1);
        if let Some((index, &value)) = input
            .iter()
            .enumerate()
            .find(|(_, v)| **v < -half || **v >= half)
        {
            return Err(QuantError::InputOutOfRange {
                index,
                value,
                bits: self.input_bits,
            });
        }
        Ok(shapes)
    }
}
