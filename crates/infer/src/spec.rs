//! What a model declares about its inputs and outputs, and the checks a request's tensors must
//! pass against it. No runtime: callers (the CLI, the SDK) read these from the registry.

use serde::{Deserialize, Serialize};

use crate::error::InferError;
use crate::tensor::{DType, Tensor};

/// One model input or output as the model declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The ONNX tensor name.
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// The dimensions; `None` is a free (symbolic) dimension such as the batch size.
    pub shape: Vec<Option<usize>>,
}

impl TensorSpec {
    /// Checks that a tensor fits this spec: same dtype, same rank, every fixed dimension equal
    /// and every free dimension at least 1.
    pub fn check(&self, t: &Tensor) -> Result<(), InferError> {
        if t.dtype() != self.dtype {
            return Err(InferError::InputDtype {
                input: self.name.clone(),
                expected: self.dtype,
                got: t.dtype(),
            });
        }
        let fits = t.shape().len() == self.shape.len()
            && self
                .shape
                .iter()
                .zip(t.shape())
                .all(|(want, got)| match want {
                    Some(w) => w == got,
                    None => *got >= 1,
                });
        if !fits {
            return Err(InferError::InputShape {
                input: self.name.clone(),
                expected: self.shape.clone(),
                got: t.shape().to_vec(),
            });
        }
        Ok(())
    }
}

/// The inputs and outputs of a model, in the model's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSchema {
    /// The inputs a request must supply, in this order.
    pub inputs: Vec<TensorSpec>,
    /// The outputs a run returns, in this order.
    pub outputs: Vec<TensorSpec>,
}

impl ModelSchema {
    /// Checks a request's tensors against the inputs: count, then each tensor's dtype and shape,
    /// then that none holds NaN. Returns the first problem found.
    pub fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), InferError> {
        if inputs.len() != self.inputs.len() {
            return Err(InferError::InputCount {
                expected: self.inputs.len(),
                got: inputs.len(),
            });
        }
        for (spec, t) in self.inputs.iter().zip(inputs) {
            spec.check(t)?;
            if let Some(index) = t.first_nan() {
                return Err(InferError::InputNan {
                    input: spec.name.clone(),
                    index,
                });
            }
        }
        Ok(())
    }
}
