use thiserror::Error;

/// Errors of model validation, building and execution.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum QuantError {
    #[error("layer {layer}: expected input length {expected}, got {got}")]
    LengthMismatch {
        layer: usize,
        expected: usize,
        got: usize,
    },
    #[error("layer {layer}: {what}")]
    InvalidLayer { layer: usize, what: String },
    #[error("input value {value} at index {index} outside the {bits}-bit activation range")]
    InputOutOfRange { index: usize, value: i64, bits: u8 },
    #[error("layer {layer}: worst-case magnitude 2^{log2:.1} exceeds the 2^62 bound")]
    MagnitudeTooLarge { layer: usize, log2: f64 },
    #[error("model has no layers")]
    Empty,
    #[error("onnx: {0}")]
    Onnx(String),
    #[error("build: {0}")]
    Build(String),
}
