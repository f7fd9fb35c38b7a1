//! The one error type of this crate. Every variant carries the facts a caller needs and maps to a
//! stable machine-readable [`InferError::code`] that the node's API can return as is.

use crate::tensor::DType;

/// Everything that can go wrong decoding a tensor, preparing a model or running it.
///
/// Errors are `Clone` so that a cache or a batcher can hand the same failure to several waiters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferError {
    /// A tensor could not be decoded or is inconsistent (element count does not match the shape,
    /// a value out of range for its dtype, malformed JSON, an unknown dtype).
    #[error("invalid tensor: {reason}")]
    TensorInvalid {
        /// What is wrong, for a person.
        reason: String,
    },
    /// Something exceeds a configured bound (model bytes, graph nodes, tensor elements, rank,
    /// number of inputs).
    #[error("{what} too large: {got} exceeds the limit of {limit}")]
    TooLarge {
        /// What was measured ("model bytes", "tensor elements", "tensor rank", ...).
        what: &'static str,
        /// The bound in force.
        limit: u64,
        /// The size that was seen (a lower bound when counting stopped early).
        got: u64,
    },
    /// An input tensor contains a NaN, which has no canonical encoding and is refused.
    #[error("input `{input}` holds NaN at element {index}")]
    InputNan {
        /// Name of the model input.
        input: String,
        /// Flat (row-major) index of the first NaN.
        index: usize,
    },
    /// The bytes are not a usable ONNX model (not protobuf, truncated, no graph, inconsistent
    /// graph, type or shape inference failed, optimisation failed).
    #[error("invalid model: {reason}")]
    ModelInvalid {
        /// What failed, with tract's explanation where there is one.
        reason: String,
    },
    /// The model uses an operator the runtime does not implement.
    #[error("unsupported operator `{op}` (domain `{domain}`)")]
    UnsupportedOp {
        /// The ONNX `op_type`.
        op: String,
        /// The ONNX operator domain (empty for the default `ai.onnx`).
        domain: String,
    },
    /// A model input or output has an element type outside [`DType`].
    #[error("{what} has unsupported element type {dtype}")]
    UnsupportedDtype {
        /// Which tensor ("input `X`", "output `label`").
        what: String,
        /// The element type as the runtime names it.
        dtype: String,
    },
    /// The request does not carry one tensor per model input.
    #[error("expected {expected} input tensor(s), got {got}")]
    InputCount {
        /// Inputs the model declares.
        expected: usize,
        /// Tensors given.
        got: usize,
    },
    /// An input tensor's shape does not fit the model's declared input shape.
    #[error(
        "input `{input}`: expected shape {}, got {}",
        crate::tensor::fmt_spec_shape(.expected),
        crate::tensor::fmt_shape(.got)
    )]
    InputShape {
        /// Name of the model input.
        input: String,
        /// Declared shape; `None` is a free (symbolic) dimension.
        expected: Vec<Option<usize>>,
        /// Shape of the given tensor.
        got: Vec<usize>,
    },
    /// An input tensor's element type differs from the model's declared input type.
    #[error("input `{input}`: expected dtype {expected}, got {got}")]
    InputDtype {
        /// Name of the model input.
        input: String,
        /// Declared element type.
        expected: DType,
        /// Element type of the given tensor.
        got: DType,
    },
    /// Model bytes do not hash to the content hash they were fetched under.
    #[error("model bytes hash to {got}, expected {expected}")]
    HashMismatch {
        /// The content hash asked for (lowercase hex BLAKE3).
        expected: String,
        /// The hash of the bytes that were supplied.
        got: String,
    },
    /// The model failed while running on valid inputs (or the runtime panicked).
    #[error("execution failed: {reason}")]
    Execution {
        /// tract's explanation.
        reason: String,
    },
}

impl InferError {
    /// A stable, machine-readable code for the variant: part of the node's API, never renamed.
    pub fn code(&self) -> &'static str {
        match self {
            InferError::TensorInvalid { .. } => "tensor_invalid",
            InferError::TooLarge { .. } => "too_large",
            InferError::InputNan { .. } => "input_nan",
            InferError::ModelInvalid { .. } => "model_invalid",
            InferError::UnsupportedOp { .. } => "unsupported_op",
            InferError::UnsupportedDtype { .. } => "unsupported_dtype",
            InferError::InputCount { .. } => "input_count",
            InferError::InputShape { .. } => "input_shape",
            InferError::InputDtype { .. } => "input_dtype",
            InferError::HashMismatch { .. } => "hash_mismatch",
            InferError::Execution { .. } => "execution",
        }
    }

    pub(crate) fn tensor(reason: impl Into<String>) -> Self {
        InferError::TensorInvalid {
            reason: reason.into(),
        }
    }

    #[cfg(feature = "runtime")]
    pub(crate) fn model(reason: impl Into<String>) -> Self {
        InferError::ModelInvalid {
            reason: reason.into(),
        }
    }
}
