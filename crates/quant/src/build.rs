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

/// Quantizes a float input with the model's input scale: round half away from zero, saturate.
pub fn quantize_input(x: &[f32], scale: f64, bits: u8) -> Vec<i64> {
    let hi = (1i64 << (bits - 1)) - 1;
    x.iter()
        .map(|v| ((*v as f64 / scale).round() as i64).clamp(-hi - 1, hi))
        .collect()
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

/// One float layer of an imported graph.
#[derive(Clone, Debug)]
pub enum FloatLayer {
    Dense(FloatDense),
    Conv(FloatConv),
    Relu,
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
        let mut cur = x.to_vec();
        for l in &self.layers {
            cur = match l {
                FloatLayer::Dense(d) => dense_f32(d, &cur),
                FloatLayer::Conv(c) => c.forward(&cur),
                FloatLayer::Relu => cur.iter().map(|v| v.max(0.0)).collect(),
            };
        }
        cur
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

/// Builds a quantized model from a float graph (Dense, Conv, ReLU), calibrating scales on
/// `calib` (max-abs): input scale from the inputs; per-tensor symmetric weight scales; after
/// every linear layer but the last a Requant (with ReLU folded in when a Relu follows) whose
/// output scale is the calibrated maximum of that activation. The last linear layer's
/// accumulator is the model output (`output_scale = s_x * s_w`), unless a Relu follows it, in
/// which case a final ReLU Requant is added.
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
    // Group into (linear, relu) pairs.
    let mut units: Vec<(&FloatLayer, bool)> = Vec::new();
    for l in &g.layers {
        match l {
            FloatLayer::Relu => match units.last_mut() {
                Some(u) => u.1 = true,
                None => return Err(QuantError::Build("Relu before any layer".into())),
            },
            _ => units.push((l, false)),
        }
    }
    if units.is_empty() {
        return Err(QuantError::Build("no linear layer".into()));
    }
    // Calibrate: max |input| and per unit max |activation| (post-ReLU when relu).
    let mut in_max = 0f32;
    let mut act_max = vec![0f32; units.len()];
    for x in calib {
        in_max = x.iter().fold(in_max, |m, v| m.max(v.abs()));
        let mut cur = x.clone();
        for (k, (l, relu)) in units.iter().enumerate() {
            cur = match l {
                FloatLayer::Dense(d) => dense_f32(d, &cur),
                FloatLayer::Conv(c) => c.forward(&cur),
                FloatLayer::Relu => cur,
            };
            if *relu {
                cur.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            act_max[k] = cur.iter().fold(act_max[k], |m, v| m.max(v.abs()));
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
    let mut s_x = input_scale;
    let mut out = Vec::new();
    let mut output_scale = 1.0;
    for (k, (l, relu)) in units.iter().enumerate() {
        let s_acc = match l {
            FloatLayer::Dense(d) => {
                let (s_w, weights) = quant_w(&d.weights);
                out.push(Layer::Dense(Dense {
                    rows: d.rows as u32,
                    cols: d.cols as u32,
                    weight_bits: cfg.weight_bits,
                    weights,
                    bias: quant_b(&d.bias, s_x * s_w),
                }));
                s_x * s_w
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
                s_x * s_w
            }
            FloatLayer::Relu => continue,
        };
        let last = k + 1 == units.len();
        if last && !relu {
            output_scale = s_acc;
        } else {
            let s_y = scale_of(act_max[k], cfg.act_bits);
            let (multiplier, shift) = fixed_point(s_acc / s_y, cfg.multiplier_bits)?;
            out.push(Layer::Requant(Requant {
                multiplier,
                shift,
                relu: *relu,
                out_bits: cfg.act_bits,
            }));
            s_x = s_y;
            output_scale = s_y;
        }
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
