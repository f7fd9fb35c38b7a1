use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::QuantError;

/// Every value an executor produces (activation, accumulator, rescaled product) is bounded in
/// magnitude by this; validation proves it from the layer shapes and parameter ranges.
pub const MAX_ABS_VALUE: i128 = 1 << 62;
/// Largest vector length / matrix side accepted (keeps allocation bounded on untrusted models).
pub const MAX_DIM: u32 = 1 << 20;

/// A quantized model: a straight-line list of integer layers applied to one input vector.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct QuantModel {
    /// Length of the input vector.
    pub input_len: u32,
    /// Input values are signed `input_bits`-bit integers: [-2^(b-1), 2^(b-1) - 1].
    pub input_bits: u8,
    pub layers: Vec<Layer>,
    /// Descriptive only: real value of one input unit (not used by execution).
    pub input_scale: f64,
    /// Descriptive only: real value of one output unit (not used by execution).
    pub output_scale: f64,
}

/// One layer. Gemm is `Dense` with a bias, MatMul is `Dense` with a zero bias; ReLU is folded
/// into `Requant` (lower saturation bound 0).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub enum Layer {
    Dense(Dense),
    Requant(Requant),
    Conv2d(Conv2d),
    /// Appended after the first file format release: older files decode unchanged.
    MaxPool2d(MaxPool2d),
    /// Residual addition of an earlier value (appended, like `MaxPool2d`).
    Add(Add),
}

/// Max pooling over a `ch x in_h x in_w` (CHW) vector, no padding:
/// `y[c][i][j] = max_{0<=u<kh, 0<=v<kw} x[c][i*stride+u][j*stride+v]`,
/// `out_h = floor((in_h - kh) / stride) + 1`, likewise `out_w`. Exact on any integers (it
/// commutes with the monotone requantization, so it needs no rescaling).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct MaxPool2d {
    pub ch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
}

impl MaxPool2d {
    pub fn out_hw(&self) -> (usize, usize) {
        let s = self.stride.max(1) as usize;
        (
            (self.in_h.saturating_sub(self.kh)) as usize / s + 1,
            (self.in_w.saturating_sub(self.kw)) as usize / s + 1,
        )
    }
}

/// Residual addition: `y[i] = x_multiplier * x[i] + from_multiplier * v[i]`, exact, where `x`
/// is the running vector and `v = values[from]` an earlier one (`0` = the model input, `k + 1`
/// = the output of layer `k`; `from` must name a value before this layer's input) of the same
/// length. The integer multipliers (`1..=2^16`) bring both operands to a common scale; a
/// following `Requant` rescales the sum.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Add {
    pub from: u32,
    pub x_multiplier: i64,
    pub from_multiplier: i64,
}

/// 2-D convolution over a `in_ch x in_h x in_w` (CHW, row-major) vector with zero padding `pad`
/// on every side: `y[o][i][j] = bias[o] + sum_{c,u,v} W[o][c][u][v] * x[c][i*stride+u-pad][j*stride+v-pad]`
/// (out-of-range `x` reads are 0). Output is `out_ch x out_h x out_w` (CHW) with
/// `out_h = (in_h + 2 pad - kh) / stride + 1` (floor), likewise `out_w`. Exact in i64.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Conv2d {
    pub in_ch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_ch: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    pub weight_bits: u8,
    /// `out_ch * in_ch * kh * kw` entries, OIHW row-major.
    pub weights: Vec<i16>,
    /// `out_ch` entries.
    pub bias: Vec<i32>,
}

impl Conv2d {
    pub fn out_hw(&self) -> (usize, usize) {
        let oh = (self.in_h as usize + 2 * self.pad as usize - self.kh as usize)
            / self.stride.max(1) as usize
            + 1;
        let ow = (self.in_w as usize + 2 * self.pad as usize - self.kw as usize)
            / self.stride.max(1) as usize
            + 1;
        (oh, ow)
    }
}

/// `y[i] = bias[i] + sum_j weights[i * cols + j] * x[j]`, exact in i64 (no wrap: validated).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Dense {
    pub rows: u32,
    pub cols: u32,
    /// 2..=16: weights are signed `weight_bits`-bit integers.
    pub weight_bits: u8,
    /// Row-major, `rows * cols` entries.
    pub weights: Vec<i16>,
    /// `rows` entries.
    pub bias: Vec<i32>,
}

/// `y = clamp((x * multiplier + 2^(shift-1)) >> shift, lo, hi)` with `>>` the arithmetic
/// (flooring) shift, i.e. round-half-up of `x * multiplier / 2^shift`; `hi = 2^(out_bits-1) - 1`,
/// `lo = 0` when `relu`, else `-2^(out_bits-1)`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Requant {
    /// 1..=2^31-1.
    pub multiplier: i64,
    /// 1..=62.
    pub shift: u8,
    pub relu: bool,
    /// 2..=16.
    pub out_bits: u8,
}

impl Requant {
    pub fn lo(&self) -> i64 {
        if self.relu {
            0
        } else {
            -(1i64 << (self.out_bits - 1))
        }
    }
    pub fn hi(&self) -> i64 {
        (1i64 << (self.out_bits - 1)) - 1
    }
}

/// What validation knows about a value vector between layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueShape {
    pub len: usize,
    /// Inclusive bound on |value|.
    pub max_abs: i128,
}

impl QuantModel {
    /// Checks shapes and parameter ranges, and proves every intermediate stays below
    /// [`MAX_ABS_VALUE`]. Returns the shape after each layer (`shapes[0]` is the input).
    pub fn validate(&self) -> Result<Vec<ValueShape>, QuantError> {
        self.validate_inner(true)
    }

    /// Like [`validate`](Self::validate) but also accepts Dense layers whose `weights` are empty
    /// (a model description whose weights are held elsewhere, e.g. behind a commitment). The
    /// magnitude bounds depend only on `weight_bits`, so they are the same.
    pub fn validate_structure(&self) -> Result<Vec<ValueShape>, QuantError> {
        self.validate_inner(false)
    }

    /// This model with every Dense layer's weights removed (shapes, biases, bits kept).
    pub fn without_weights(&self) -> QuantModel {
        let mut m = self.clone();
        for l in &mut m.layers {
            match l {
                Layer::Dense(d) => d.weights = Vec::new(),
                Layer::Conv2d(c) => c.weights = Vec::new(),
                Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => {}
            }
        }
        m
    }

    fn validate_inner(&self, require_weights: bool) -> Result<Vec<ValueShape>, QuantError> {
        if self.layers.is_empty() {
            return Err(QuantError::Empty);
        }
        if !(2..=16).contains(&self.input_bits) {
            return Err(QuantError::InvalidLayer {
                layer: 0,
                what: format!("input_bits {} not in 2..=16", self.input_bits),
            });
        }
        if self.input_len == 0 || self.input_len > MAX_DIM {
            return Err(QuantError::InvalidLayer {
                layer: 0,
                what: format!("input_len {} not in 1..=2^20", self.input_len),
            });
        }
        let mut shapes = vec![ValueShape {
            len: self.input_len as usize,
            max_abs: 1i128 << (self.input_bits - 1),
        }];
        for (k, layer) in self.layers.iter().enumerate() {
            let cur = shapes[shapes.len() - 1];
            let invalid = |what: String| QuantError::InvalidLayer { layer: k, what };
            let next = match layer {
                Layer::Dense(d) => {
                    if d.rows == 0 || d.cols == 0 || d.rows > MAX_DIM || d.cols > MAX_DIM {
                        return Err(invalid(format!("shape {}x{} out of range", d.rows, d.cols)));
                    }
                    if d.cols as usize != cur.len {
                        return Err(QuantError::LengthMismatch {
                            layer: k,
                            expected: d.cols as usize,
                            got: cur.len,
                        });
                    }
                    let n = d.rows as usize * d.cols as usize;
                    if n > (1 << 28)
                        || (d.weights.len() != n && (require_weights || !d.weights.is_empty()))
                        || d.bias.len() != d.rows as usize
                    {
                        return Err(invalid(format!(
                            "weights {} / bias {} do not match {}x{}",
                            d.weights.len(),
                            d.bias.len(),
                            d.rows,
                            d.cols
                        )));
                    }
                    if !(2..=16).contains(&d.weight_bits) {
                        return Err(invalid(format!(
                            "weight_bits {} not in 2..=16",
                            d.weight_bits
                        )));
                    }
                    let wmax = 1i32 << (d.weight_bits - 1);
                    if d.weights
                        .iter()
                        .any(|&w| (w as i32) < -wmax || (w as i32) >= wmax)
                    {
                        return Err(invalid(format!(
                            "a weight is outside the {}-bit range",
                            d.weight_bits
                        )));
                    }
                    let bmax = d.bias.iter().map(|b| (*b as i128).abs()).max().unwrap_or(0);
                    let max_abs = d.cols as i128 * wmax as i128 * cur.max_abs + bmax;
                    check_mag(k, max_abs)?;
                    ValueShape {
                        len: d.rows as usize,
                        max_abs,
                    }
                }
                Layer::Conv2d(c) => {
                    let dims = [c.in_ch, c.in_h, c.in_w, c.out_ch, c.kh, c.kw, c.stride];
                    if dims.iter().any(|d| *d == 0 || *d > 1 << 14) || c.pad > 1 << 10 {
                        return Err(invalid(format!(
                            "conv dims {dims:?} / pad {} out of range",
                            c.pad
                        )));
                    }
                    if c.in_h + 2 * c.pad < c.kh || c.in_w + 2 * c.pad < c.kw {
                        return Err(invalid("kernel larger than the padded input".into()));
                    }
                    let in_len = c.in_ch as usize * c.in_h as usize * c.in_w as usize;
                    if in_len != cur.len {
                        return Err(QuantError::LengthMismatch {
                            layer: k,
                            expected: in_len,
                            got: cur.len,
                        });
                    }
                    let taps = c.in_ch as usize * c.kh as usize * c.kw as usize;
                    let n = c.out_ch as usize * taps;
                    let (oh, ow) = c.out_hw();
                    let out_len = c.out_ch as usize * oh * ow;
                    if n > (1 << 28)
                        || out_len > MAX_DIM as usize
                        || (c.weights.len() != n && (require_weights || !c.weights.is_empty()))
                        || c.bias.len() != c.out_ch as usize
                    {
                        return Err(invalid(format!(
                            "conv weights {} / bias {} / output {} do not fit",
                            c.weights.len(),
                            c.bias.len(),
                            out_len
                        )));
                    }
                    if !(2..=16).contains(&c.weight_bits) {
                        return Err(invalid(format!(
                            "weight_bits {} not in 2..=16",
                            c.weight_bits
                        )));
                    }
                    let wmax = 1i32 << (c.weight_bits - 1);
                    if c.weights
                        .iter()
                        .any(|&w| (w as i32) < -wmax || (w as i32) >= wmax)
                    {
                        return Err(invalid(format!(
                            "a weight is outside the {}-bit range",
                            c.weight_bits
                        )));
                    }
                    let bmax = c.bias.iter().map(|b| (*b as i128).abs()).max().unwrap_or(0);
                    let max_abs = taps as i128 * wmax as i128 * cur.max_abs + bmax;
                    check_mag(k, max_abs)?;
                    ValueShape {
                        len: out_len,
                        max_abs,
                    }
                }
                Layer::Requant(r) => {
                    if !(1..=(i32::MAX as i64)).contains(&r.multiplier) {
                        return Err(invalid(format!(
                            "multiplier {} not in 1..=2^31-1",
                            r.multiplier
                        )));
                    }
                    if !(1..=62).contains(&r.shift) || !(2..=16).contains(&r.out_bits) {
                        return Err(invalid(format!(
                            "shift {} / out_bits {} out of range",
                            r.shift, r.out_bits
                        )));
                    }
                    check_mag(
                        k,
                        cur.max_abs * r.multiplier as i128 + (1i128 << (r.shift - 1)),
                    )?;
                    ValueShape {
                        len: cur.len,
                        max_abs: 1i128 << (r.out_bits - 1),
                    }
                }
                Layer::MaxPool2d(p) => {
                    let dims = [p.ch, p.in_h, p.in_w, p.kh, p.kw, p.stride];
                    if dims.iter().any(|d| *d == 0 || *d > 1 << 14) || p.kh > 64 || p.kw > 64 {
                        return Err(invalid(format!("maxpool dims {dims:?} out of range")));
                    }
                    if p.kh > p.in_h || p.kw > p.in_w {
                        return Err(invalid("pooling window larger than the input".into()));
                    }
                    let in_len = p.ch as usize * p.in_h as usize * p.in_w as usize;
                    if in_len != cur.len {
                        return Err(QuantError::LengthMismatch {
                            layer: k,
                            expected: in_len,
                            got: cur.len,
                        });
                    }
                    let (oh, ow) = p.out_hw();
                    ValueShape {
                        len: p.ch as usize * oh * ow,
                        max_abs: cur.max_abs,
                    }
                }
                Layer::Add(a) => {
                    // `from` indexes `shapes`: at most k (the running value is shapes[k]).
                    let Some(src) = shapes.get(a.from as usize).copied() else {
                        return Err(invalid(format!(
                            "add from value {} which is not before this layer",
                            a.from
                        )));
                    };
                    if src.len != cur.len {
                        return Err(QuantError::LengthMismatch {
                            layer: k,
                            expected: cur.len,
                            got: src.len,
                        });
                    }
                    let ok = |m: i64| (1..=1 << 16).contains(&m);
                    if !ok(a.x_multiplier) || !ok(a.from_multiplier) {
                        return Err(invalid(format!(
                            "add multipliers {} / {} not in 1..=2^16",
                            a.x_multiplier, a.from_multiplier
                        )));
                    }
                    let max_abs = a.x_multiplier as i128 * cur.max_abs
                        + a.from_multiplier as i128 * src.max_abs;
                    check_mag(k, max_abs)?;
                    ValueShape {
                        len: cur.len,
                        max_abs,
                    }
                }
            };
            shapes.push(next);
        }
        Ok(shapes)
    }

    /// Domain-separated BLAKE3 of the canonical (borsh) encoding.
    pub fn model_id(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(opal_domains::derive::QUANT_MODEL);
        // Serialising a Vec-backed struct into a Vec cannot fail except on NaN metadata, which
        // we hash as its raw bits instead so this function is total.
        let mut buf = Vec::new();
        buf.extend_from_slice(&self.input_len.to_le_bytes());
        buf.push(self.input_bits);
        buf.extend_from_slice(&self.input_scale.to_bits().to_le_bytes());
        buf.extend_from_slice(&self.output_scale.to_bits().to_le_bytes());
        h.update(&buf);
        for layer in &self.layers {
            match borsh::to_vec(layer) {
                Ok(bytes) => {
                    h.update(&(bytes.len() as u64).to_le_bytes());
                    h.update(&bytes);
                }
                Err(_) => unreachable!("layers contain no floats"),
            }
        }
        *h.finalize().as_bytes()
    }

    /// Length of the output vector (0 for an invalid model).
    pub fn output_len(&self) -> usize {
        self.validate()
            .ok()
            .and_then(|s| s.last().map(|v| v.len))
            .unwrap_or(0)
    }
}

fn check_mag(layer: usize, max_abs: i128) -> Result<(), QuantError> {
    if max_abs >= MAX_ABS_VALUE {
        return Err(QuantError::MagnitudeTooLarge {
            layer,
            log2: (max_abs as f64).log2(),
        });
    }
    Ok(())
}
