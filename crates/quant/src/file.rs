//! The `.opalq` model file (how a quantized model is registered as an artifact) and the
//! canonical mapping between float tensors and the model's integers.
//!
//! File layout (docs/zk.md section 1, "Model file"):
//! `"OPALQNT\0"` (8 bytes) || format version (u16 LE, = 1) || payload length (u32 LE) ||
//! payload = borsh(`QuantModel`). Decoding is bounded ([`MAX_FILE_BYTES`], borsh allocates
//! only as it reads), rejects trailing bytes and non-canonical encodings (the decoded model must
//! re-encode to exactly the same bytes, so a file's hash identifies the model), and validates
//! the model. Every failure is a typed [`FileError`]; nothing panics on hostile bytes.

use borsh::BorshDeserialize;
use thiserror::Error;

#[cfg(feature = "import")]
use crate::{build, onnx, BuildConfig};
use crate::{exec, QuantError, QuantModel};

/// First 8 bytes of a model file.
pub const FILE_MAGIC: [u8; 8] = *b"OPALQNT\0";
/// Current (and only) format version.
pub const FILE_VERSION: u16 = 1;
/// Largest model file accepted by [`QuantModel::from_file_bytes`].
pub const MAX_FILE_BYTES: usize = 256 << 20;
const HEADER: usize = 8 + 2 + 4;

/// Why a model file was refused.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FileError {
    #[error("model file of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("not an Opal quantized model file (bad magic)")]
    BadMagic,
    #[error("model file format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u16),
    #[error("model file truncated: header says {expected} payload bytes, {got} present")]
    Truncated { expected: usize, got: usize },
    #[error("model file has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("model payload does not decode: {0}")]
    Decode(String),
    #[error("model payload is not in canonical encoding")]
    NonCanonical,
    #[error("model scales must be finite and positive (input {input}, output {output})")]
    BadScale { input: f64, output: f64 },
    #[error("model is invalid: {0}")]
    Invalid(QuantError),
}

impl QuantModel {
    /// The canonical `.opalq` file bytes of this model.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        // Serializing into a Vec cannot fail (borsh only fails on NaN floats, which a model
        // built or decoded here never has; such a model yields an empty payload that no
        // decoder accepts).
        let payload = borsh::to_vec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(&FILE_MAGIC);
        out.extend_from_slice(&FILE_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Decodes and validates a `.opalq` file. Bounded, typed errors, never panics.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<QuantModel, FileError> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(FileError::TooLarge {
                len: bytes.len(),
                max: MAX_FILE_BYTES,
            });
        }
        if bytes.len() < 8 || bytes[..8] != FILE_MAGIC {
            return Err(FileError::BadMagic);
        }
        if bytes.len() < HEADER {
            return Err(FileError::Truncated {
                expected: HEADER,
                got: bytes.len(),
            });
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FILE_VERSION {
            return Err(FileError::UnsupportedVersion(version));
        }
        let len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
        let body = &bytes[HEADER..];
        if body.len() < len {
            return Err(FileError::Truncated {
                expected: len,
                got: body.len(),
            });
        }
        if body.len() > len {
            return Err(FileError::TrailingBytes(body.len() - len));
        }
        let mut slice = body;
        let model =
            QuantModel::deserialize(&mut slice).map_err(|e| FileError::Decode(e.to_string()))?;
        if !slice.is_empty() {
            return Err(FileError::Decode(format!(
                "{} bytes left after the model",
                slice.len()
            )));
        }
        let good = |s: f64| s.is_finite() && s > 0.0;
        if !good(model.input_scale) || !good(model.output_scale) {
            return Err(FileError::BadScale {
                input: model.input_scale,
                output: model.output_scale,
            });
        }
        model.validate().map_err(FileError::Invalid)?;
        if borsh::to_vec(&model).ok().as_deref() != Some(body) {
            return Err(FileError::NonCanonical);
        }
        Ok(model)
    }

    /// The canonical float -> integer input mapping: length check, then [`quantize_input`]
    /// with this model's `input_scale` and `input_bits`
    /// (`clamp(round_half_away_from_zero(f64(x) / input_scale), -2^(b-1), 2^(b-1) - 1)`, the
    /// division in IEEE-754 binary64, NaN -> 0).
    ///
    /// [`quantize_input`]: crate::quantize_input
    pub fn input_from_f32(&self, x: &[f32]) -> Result<Vec<i64>, QuantError> {
        if x.len() != self.input_len as usize {
            return Err(QuantError::LengthMismatch {
                layer: 0,
                expected: self.input_len as usize,
                got: x.len(),
            });
        }
        if !(2..=16).contains(&self.input_bits) {
            return Err(QuantError::InvalidLayer {
                layer: 0,
                what: format!("input_bits {} not in 2..=16", self.input_bits),
            });
        }
        Ok(exec::quantize_input(x, self.input_scale, self.input_bits))
    }

    /// Real value of each output integer: `y * output_scale` (descriptive; not canonical).
    pub fn dequantize_output(&self, y: &[i64]) -> Vec<f64> {
        y.iter().map(|v| *v as f64 * self.output_scale).collect()
    }
}

/// The canonical output bytes (what a node hashes and signs): the output integers as
/// little-endian `i64`, concatenated in order; the tensor's shape is `[n]`.
pub fn output_bytes(y: &[i64]) -> Vec<u8> {
    y.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Inverse of [`output_bytes`]; `None` unless the length is a multiple of 8.
pub fn output_from_bytes(b: &[u8]) -> Option<Vec<i64>> {
    if !b.len().is_multiple_of(8) {
        return None;
    }
    Some(
        b.chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
    )
}

#[cfg(feature = "import")]
/// One call from ONNX bytes to a quantized model: [`onnx::import_graph`] then
/// [`build::build_graph`] with max-abs calibration on `calibration` (float input rows).
pub fn quantize_onnx(
    onnx_bytes: &[u8],
    calibration: &[Vec<f32>],
    cfg: &BuildConfig,
) -> Result<QuantModel, QuantError> {
    let g = onnx::import_graph(onnx_bytes)?;
    build::build_graph(&g, calibration, cfg)
}

/// Argmax (first maximum) of an output vector: the label of a classifier whose proven output
/// is its logits. `None` for an empty vector.
pub fn argmax(y: &[i64]) -> Option<usize> {
    let mut best: Option<(usize, i64)> = None;
    for (i, v) in y.iter().enumerate() {
        if best.is_none_or(|(_, b)| *v > b) {
            best = Some((i, *v));
        }
    }
    best.map(|(i, _)| i)
}
