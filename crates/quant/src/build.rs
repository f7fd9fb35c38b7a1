//! Builder from float weights: symmetric per-tensor quantization with scales calibrated on
//! sample inputs. Floats are used here only; the resulting [`QuantModel`] is pure integer.

use crate::model::{Dense, Layer, QuantModel, Requant};
use crate::QuantError;

/// A float fully connected layer, `y = W x + b`, `W` row-major `rows x cols`.
#[derive(Clone, Debug)]
pub struct FloatDense {
    pub rows: usize,
    pub cols: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

#[derive(Clone, Debug)]
pub struct BuildConfig {
    /// Bits of activations (and of the input), 2..=16.
    pub act_bits: u8,
    /// Bits of weights, 2..=16.
    pub weight_bits: u8,
    /// Bits of the requantization multiplier, 2..=31.
    pub multiplier_bits: u8,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            act_bits: 8,
            weight_bits: 8,
            multiplier_bits: 24,
        }
    }
}

fn qmax(bits: u8) -> f64 {
    ((1i64 << (bits - 1)) - 1) as f64
}

fn forward_float(layers: &[FloatDense], x: &[f32], mut on_hidden: impl FnMut(usize, &[f32])) {
    let mut cur = x.to_vec();
    for (k, l) in layers.iter().enumerate() {
        let mut y: Vec<f32> = l
            .weights
            .chunks_exact(l.cols)
            .zip(&l.bias)
            .map(|(row, b)| b + row.iter().zip(&cur).map(|(w, v)| w * v).sum::<f32>())
            .collect();
        if k + 1 < layers.len() {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
            on_hidden(k, &y);
        }
        cur = y;
    }
}

/// Represents `m_real > 0` as `multiplier / 2^shift` with `multiplier` of `bits` bits.
fn fixed_point(m_real: f64, bits: u8) -> Result<(i64, u8), QuantError> {
    if !(m_real.is_finite() && m_real > 0.0) {
        return Err(QuantError::Build(format!(
            "requantization factor {m_real} is not a positive number"
        )));
    }
    let mut shift = (bits as i32 - 1) - m_real.log2().floor() as i32;
    shift = shift.clamp(1, 62);
    let mut m = (m_real * 2f64.powi(shift)).round() as i64;
    if m >= 1i64 << bits && shift > 1 {
        m = (m + 1) / 2;
        shift -= 1;
    }
    if m < 1 || m > i32::MAX as i64 {
        return Err(QuantError::Build(format!(
            "requantization factor {m_real} not representable"
        )));
    }
    Ok((m, shift as u8))
}

/// Builds a quantized MLP (ReLU after every layer but the last) from float layers, calibrating
/// the input and activation scales on `calib` (max-abs calibration).
pub fn build_mlp(
    layers: &[FloatDense],
    calib: &[Vec<f32>],
    cfg: &BuildConfig,
) -> Result<QuantModel, QuantError> {
    if layers.is_empty() || calib.is_empty() {
        return Err(QuantError::Build(
            "need at least one layer and one calibration input".into(),
        ));
    }
    for (k, l) in layers.iter().enumerate() {
        let cols_ok = k == 0 || layers[k - 1].rows == l.cols;
        if l.weights.len() != l.rows * l.cols || l.bias.len() != l.rows || !cols_ok {
            return Err(QuantError::Build(format!(
                "layer {k} has inconsistent shapes"
            )));
        }
    }
    if calib.iter().any(|x| x.len() != layers[0].cols) {
        return Err(QuantError::Build(
            "calibration input of the wrong length".into(),
        ));
    }
    let mut in_max = 0f32;
    let mut act_max = vec![0f32; layers.len()];
    for x in calib {
        in_max = x.iter().fold(in_max, |m, v| m.max(v.abs()));
        forward_float(layers, x, |k, y| {
            act_max[k] = y.iter().fold(act_max[k], |m, v| m.max(*v))
        });
    }
    let scale_of = |max: f32, bits: u8| {
        if max > 0.0 {
            max as f64 / qmax(bits)
        } else {
            1.0
        }
    };
    let input_scale = scale_of(in_max, cfg.act_bits);
    let mut s_x = input_scale;
    let mut out = Vec::new();
    let mut output_scale = 1.0;
    for (k, l) in layers.iter().enumerate() {
        let w_max = l.weights.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s_w = scale_of(w_max, cfg.weight_bits);
        let wq = qmax(cfg.weight_bits);
        let weights = l
            .weights
            .iter()
            .map(|w| ((*w as f64 / s_w).round().clamp(-wq, wq)) as i16)
            .collect();
        let s_acc = s_x * s_w;
        let bias = l
            .bias
            .iter()
            .map(|b| {
                (*b as f64 / s_acc)
                    .round()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i32
            })
            .collect();
        out.push(Layer::Dense(Dense {
            rows: l.rows as u32,
            cols: l.cols as u32,
            weight_bits: cfg.weight_bits,
            weights,
            bias,
        }));
        if k + 1 < layers.len() {
            let s_y = scale_of(act_max[k], cfg.act_bits);
            let (multiplier, shift) = fixed_point(s_acc / s_y, cfg.multiplier_bits)?;
            out.push(Layer::Requant(Requant {
                multiplier,
                shift,
                relu: true,
                out_bits: cfg.act_bits,
            }));
            s_x = s_y;
        } else {
            output_scale = s_acc;
        }
    }
    let model = QuantModel {
        input_len: layers[0].cols as u32,
        input_bits: cfg.act_bits,
        layers: out,
        input_scale,
        output_scale,
    };
    model.validate()?;
    Ok(model)
}

/// A float 2-D convolution (OIHW weights, CHW activations, symmetric zero padding).
#[derive(Clone, Debug)]
pub struct FloatConv {
    pub in_ch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_ch: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

impl FloatConv {
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.in_h + 2 * self.pad - self.kh) / self.stride.max(1) + 1,
            (self.in_w + 2 * self.pad - self.kw) / self.stride.max(1) + 1,
        )
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let (oh, ow) = self.out_hw();
        let (ih, iw, s, p) = (
            self.in_h as isize,
            self.in_w as isize,
            self.stride as isize,
            self.pad as isize,
        );
        let mut y = Vec::with_capacity(self.out_ch * oh * ow);
        for o in 0..self.out_ch {
            for i in 0..oh as isize {
                for j in 0..ow as isize {
                    let mut acc = self.bias[o];
                    for c in 0..self.in_ch {
                        for u in 0..self.kh {
                            let r = i * s + u as isize - p;
                            if r < 0 || r >= ih {
                                continue;
                            }
                            for v in 0..self.kw {
                                let col = j * s + v as isize - p;
                                if col < 0 || col >= iw {
                                    continue;
                                }
                                acc += self.weights
                                    [((o * self.in_ch + c) * self.kh + u) * self.kw + v]
                                    * x[(c * self.in_h + r as usize) * self.in_w + col as usize];
                            }
                        }
                    }
                    y.push(acc);
                }
            }
        }
        y
    }
}

/// Float max pooling (no padding), CHW.
#[derive(Clone, Debug)]
pub struct FloatMaxPool {
    pub ch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
}

impl FloatMaxPool {
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.in_h - self.kh) / self.stride.max(1) + 1,
            (self.in_w - self.kw) / self.stride.max(1) + 1,
        )
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let (oh, ow) = self.out_hw();
        let mut y = Vec::with_capacity(self.ch * oh * ow);
        for c in 0..self.ch {
            for i in 0..oh {
                for j in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    for u in 0..self.kh {
                        for v in 0..self.kw {
                            let r = i * self.stride + u;
                            let col = j * self.stride + v;
                            m = m.max(x[(c * self.in_h + r) * self.in_w + col]);
                        }
                    }
                    y.push(m);
                }
            }
        }
        y
    }
}

/// One float layer of an imported graph.
#[derive(Clone, Debug)]
pub enum FloatLayer {
    Dense(FloatDense),
    Conv(FloatConv),
    Relu,
    MaxPool(FloatMaxPool),
    /// Residual addition of an earlier value: `y = x + values[from]` (`0` = the graph input,
    /// `k + 1` = the output of float layer `k`).
    Add {
        from: usize,
    },
}

/// A straight-line float model (see [`crate::onnx::import_graph`]).
#[derive(Clone, Debug)]
pub struct FloatGraph {
    /// `[n]` for a flat input, `[c, h, w]` for an image (batch dimension dropped).
    pub input_shape: Vec<usize>,
    pub layers: Vec<FloatLayer>,
    /// ONNX ops after the output head that were dropped (e.g. Softmax, ArgMax).
    pub ignored_tail: Vec<String>,
}

impl FloatGraph {
    /// Runs the float model (reference for tests and calibration).
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.values(x).pop().unwrap_or_default()
    }

    /// Every float value: `[0]` the input, `[k + 1]` the output of layer `k`.
    pub fn values(&self, x: &[f32]) -> Vec<Vec<f32>> {
        let mut vals = vec![x.to_vec()];
        for l in &self.layers {
            let cur = &vals[vals.len() - 1];
            let y = match l {
                FloatLayer::Dense(d) => dense_f32(d, cur),
                FloatLayer::Conv(c) => c.forward(cur),
                FloatLayer::Relu => cur.iter().map(|v| v.max(0.0)).collect(),
                FloatLayer::MaxPool(p) => p.forward(cur),
                FloatLayer::Add { from } => match vals.get(*from) {
                    Some(v) if v.len() == cur.len() => {
                        cur.iter().zip(v).map(|(a, b)| a + b).collect()
                    }
                    _ => vec![f32::NAN; cur.len()],
                },
            };
            vals.push(y);
        }
        vals
    }

    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }
}

fn dense_f32(l: &FloatDense, x: &[f32]) -> Vec<f32> {
    l.weights
        .chunks_exact(l.cols)
        .zip(&l.bias)
        .map(|(row, b)| b + row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>())
        .collect()
}

/// Builds a quantized model from a float graph (Dense, Conv, ReLU, MaxPool, residual Add),
/// calibrating scales on `calib` (max-abs): input scale from the inputs; per-tensor symmetric
/// weight scales; after every unit but the last a Requant (with ReLU folded in when a Relu
/// follows) whose output scale is the calibrated maximum of that activation. A unit is a
/// linear layer, a MaxPool or a residual Add, with the Relu that follows it. MaxPool keeps its
/// input's scale (it commutes with the monotone requantization; a following Relu on an
/// already requantized input is the exact clamp `Requant { multiplier: 2, shift: 1, relu }`).
/// A residual Add `x + v` brings both operands to the scale `max(s_x, s_v) / 2^14` with integer
/// multipliers and is then requantized like a linear layer. The last unit's raw value is the
/// model output (`output_scale` its scale), unless a Relu follows it, in which case a final
/// ReLU Requant is added.
pub fn build_graph(
    g: &FloatGraph,
    calib: &[Vec<f32>],
    cfg: &BuildConfig,
) -> Result<QuantModel, QuantError> {
    let input_len = g.input_len();
    if calib.is_empty() || calib.iter().any(|x| x.len() != input_len) {
        return Err(QuantError::Build(
            "need calibration inputs of the model's input length".into(),
        ));
    }
    // Units: (float layer index, relu, float value index of the unit's result).
    let mut units: Vec<(usize, bool, usize)> = Vec::new();
    for (fi, l) in g.layers.iter().enumerate() {
        match l {
            FloatLayer::Relu => match units.last_mut() {
                Some(u) if u.2 == fi => {
                    u.1 = true;
                    u.2 = fi + 1;
                }
                _ => return Err(QuantError::Build("Relu before any layer".into())),
            },
            _ => units.push((fi, false, fi + 1)),
        }
    }
    if !g
        .layers
        .iter()
        .any(|l| matches!(l, FloatLayer::Dense(_) | FloatLayer::Conv(_)))
    {
        return Err(QuantError::Build("no linear layer".into()));
    }
    // Calibrate: max |input| and per unit max |result|.
    let mut in_max = 0f32;
    let mut act_max = vec![0f32; units.len()];
    for x in calib {
        let vals = g.values(x);
        in_max = x.iter().fold(in_max, |m, v| m.max(v.abs()));
        for (u, (_, _, end)) in units.iter().enumerate() {
            act_max[u] = vals[*end].iter().fold(act_max[u], |m, v| m.max(v.abs()));
        }
    }
    let scale_of = |max: f32, bits: u8| {
        if max > 0.0 && max.is_finite() {
            max as f64 / qmax(bits)
        } else {
            1.0
        }
    };
    let quant_w = |w: &[f32]| -> (f64, Vec<i16>) {
        let w_max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s_w = scale_of(w_max, cfg.weight_bits);
        let wq = qmax(cfg.weight_bits);
        (
            s_w,
            w.iter()
                .map(|v| ((*v as f64 / s_w).round().clamp(-wq, wq)) as i16)
                .collect(),
        )
    };
    let quant_b = |b: &[f32], s_acc: f64| -> Vec<i32> {
        b.iter()
            .map(|v| {
                (*v as f64 / s_acc)
                    .round()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i32
            })
            .collect()
    };
    let input_scale = scale_of(in_max, cfg.act_bits);
    // Per unit: (quantized value index of its result, its scale).
    let mut unit_out: Vec<(usize, f64)> = Vec::new();
    let mut s_x = input_scale;
    // Whether the running value is a requantized act_bits activation (the input is).
    let mut x_requantized = true;
    let mut out = Vec::new();
    let mut output_scale = 1.0;
    for (u, (fi, relu, _)) in units.iter().enumerate() {
        let last = u + 1 == units.len();
        // Emit the unit's integer op; `s_acc` is the scale of its raw result.
        let (s_acc, exact_relu_ok) = match &g.layers[*fi] {
            FloatLayer::Dense(d) => {
                let (s_w, weights) = quant_w(&d.weights);
                out.push(Layer::Dense(Dense {
                    rows: d.rows as u32,
                    cols: d.cols as u32,
                    weight_bits: cfg.weight_bits,
                    weights,
                    bias: quant_b(&d.bias, s_x * s_w),
                }));
                (s_x * s_w, false)
            }
            FloatLayer::Conv(c) => {
                let (s_w, weights) = quant_w(&c.weights);
                out.push(Layer::Conv2d(crate::model::Conv2d {
                    in_ch: c.in_ch as u32,
                    in_h: c.in_h as u32,
                    in_w: c.in_w as u32,
                    out_ch: c.out_ch as u32,
                    kh: c.kh as u32,
                    kw: c.kw as u32,
                    stride: c.stride as u32,
                    pad: c.pad as u32,
                    weight_bits: cfg.weight_bits,
                    weights,
                    bias: quant_b(&c.bias, s_x * s_w),
                }));
                (s_x * s_w, false)
            }
            FloatLayer::MaxPool(p) => {
                out.push(Layer::MaxPool2d(crate::model::MaxPool2d {
                    ch: p.ch as u32,
                    in_h: p.in_h as u32,
                    in_w: p.in_w as u32,
                    kh: p.kh as u32,
                    kw: p.kw as u32,
                    stride: p.stride as u32,
                }));
                (s_x, x_requantized)
            }
            FloatLayer::Add { from } => {
                let (qv, s_v) = if *from == 0 {
                    (0, input_scale)
                } else {
                    units
                        .iter()
                        .position(|t| t.2 == *from)
                        .filter(|t| *t < u)
                        .map(|t| unit_out[t])
                        .ok_or_else(|| {
                            QuantError::Build(
                                "residual Add of a tensor that the quantized model does not \
                                 keep (e.g. the input of a ReLU)"
                                    .into(),
                            )
                        })?
                };
                let s0 = s_x.max(s_v) / (1u32 << 14) as f64;
                let m = |s: f64| ((s / s0).round() as i64).clamp(1, 1 << 16);
                out.push(Layer::Add(crate::model::Add {
                    from: qv as u32,
                    x_multiplier: m(s_x),
                    from_multiplier: m(s_v),
                }));
                (s0, false)
            }
            FloatLayer::Relu => continue,
        };
        if last && !relu {
            output_scale = s_acc;
            unit_out.push((out.len(), s_acc));
            break;
        }
        if exact_relu_ok {
            // MaxPool of a requantized activation: already act_bits, same scale.
            if *relu {
                out.push(Layer::Requant(Requant {
                    multiplier: 2,
                    shift: 1,
                    relu: true,
                    out_bits: cfg.act_bits,
                }));
            }
            s_x = s_acc;
        } else {
            let s_y = scale_of(act_max[u], cfg.act_bits);
            let (multiplier, shift) = fixed_point(s_acc / s_y, cfg.multiplier_bits)?;
            out.push(Layer::Requant(Requant {
                multiplier,
                shift,
                relu: *relu,
                out_bits: cfg.act_bits,
            }));
            s_x = s_y;
            x_requantized = true;
        }
        output_scale = s_x;
        unit_out.push((out.len(), s_x));
    }
    let model = QuantModel {
        input_len: input_len as u32,
        input_bits: cfg.act_bits,
        layers: out,
        input_scale,
        output_scale,
    };
    model.validate()?;
    Ok(model)
}
