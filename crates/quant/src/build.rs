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
