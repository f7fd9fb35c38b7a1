//! Float models (ONNX, run by tract) are not bit-exact across machines, so their results are
//! checked by a committee of validators that re-run the model and compare within a tolerance
//! (docs/verification.md section 6e). This module is that comparison; re-running the model is
//! the caller's (it needs the ONNX runtime, which this crate does not link).
//!
//! What it bounds: a node may shift each float output by up to the tolerance without being
//! convicted, and no more; integer outputs (labels, token ids) must be equal, shapes and
//! tensor counts too.

use crate::report::Failure;

/// The committee's tolerance: `|claimed - recomputed| <= abs + rel * max(|claimed|, |recomputed|)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub abs: f32,
    pub rel: f32,
}

/// What `opal node watch` and `opal verify` use for ONNX models: tract reproduces the demo
/// model's probabilities within 1e-5 of scikit-learn's (models/digits/expected.json), so a
/// tenfold margin for other CPUs and kernels.
pub const ONNX_TOLERANCE: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-3,
};

/// The elements of one output tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Compared within the tolerance.
    Float(Vec<f32>),
    /// Compared exactly.
    Int(Vec<i64>),
}

/// One output tensor: its shape and elements.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorValues {
    pub shape: Vec<usize>,
    pub values: Values,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FloatError {
    #[error("the node answered {claimed} output tensors, the model gives {recomputed}")]
    Count { claimed: usize, recomputed: usize },
    #[error("output {tensor} has shape {claimed:?}, the model gives {recomputed:?}")]
    Shape {
        tensor: usize,
        claimed: Vec<usize>,
        recomputed: Vec<usize>,
    },
    #[error("output {tensor} has another element type than the model's")]
    Kind { tensor: usize },
    #[error("output {tensor}[{index}] is {claimed}, the model gives {recomputed} (beyond the tolerance)")]
    Differs {
        tensor: usize,
        index: usize,
        claimed: f64,
        recomputed: f64,
    },
}

impl Failure for FloatError {
    fn code(&self) -> &'static str {
        match self {
            FloatError::Count { .. } => "output_count",
            FloatError::Shape { .. } => "output_shape",
            FloatError::Kind { .. } => "output_kind",
            FloatError::Differs { .. } => "output_differs",
        }
    }
}

fn close(a: f32, b: f32, t: Tolerance) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= t.abs + t.rel * a.abs().max(b.abs())
}

/// Whether the outputs a node claimed are the model's, up to `tol` on float elements.
pub fn outputs_agree(
    claimed: &[TensorValues],
    recomputed: &[TensorValues],
    tol: Tolerance,
) -> Result<(), FloatError> {
    if claimed.len() != recomputed.len() {
        return Err(FloatError::Count {
            claimed: claimed.len(),
            recomputed: recomputed.len(),
        });
    }
    for (tensor, (c, r)) in claimed.iter().zip(recomputed).enumerate() {
        if c.shape != r.shape {
            return Err(FloatError::Shape {
                tensor,
                claimed: c.shape.clone(),
                recomputed: r.shape.clone(),
            });
        }
        match (&c.values, &r.values) {
            (Values::Float(a), Values::Float(b)) if a.len() == b.len() => {
                if let Some(index) = (0..a.len()).find(|&i| !close(a[i], b[i], tol)) {
                    return Err(FloatError::Differs {
                        tensor,
                        index,
                        claimed: a[index] as f64,
                        recomputed: b[index] as f64,
                    });
                }
            }
            (Values::Int(a), Values::Int(b)) if a.len() == b.len() => {
                if let Some(index) = (0..a.len()).find(|&i| a[i] != b[i]) {
                    return Err(FloatError::Differs {
                        tensor,
                        index,
                        claimed: a[index] as f64,
                        recomputed: b[index] as f64,
                    });
                }
            }
            _ => return Err(FloatError::Kind { tensor }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[f32]) -> TensorValues {
        TensorValues {
            shape: vec![1, v.len()],
            values: Values::Float(v.to_vec()),
        }
    }

    #[test]
    fn within_the_tolerance_agrees_and_beyond_it_does_not() {
        let t = ONNX_TOLERANCE;
        assert!(outputs_agree(&[f(&[0.5, 0.0])], &[f(&[0.50004, 0.00005])], t).is_ok());
        let e = outputs_agree(&[f(&[0.5, 0.0])], &[f(&[0.6, 0.0])], t).unwrap_err();
        assert_eq!(e.code(), "output_differs");
        assert!(outputs_agree(&[f(&[f32::NAN])], &[f(&[f32::NAN])], t).is_ok());
        assert!(outputs_agree(&[f(&[f32::NAN])], &[f(&[0.0])], t).is_err());
        assert!(outputs_agree(&[f(&[f32::INFINITY])], &[f(&[f32::MAX])], t).is_err());
        let label = |v: i64| TensorValues {
            shape: vec![1],
            values: Values::Int(vec![v]),
        };
        assert!(outputs_agree(&[label(3)], &[label(3)], t).is_ok());
        assert_eq!(
            outputs_agree(&[label(3)], &[label(4)], t)
                .unwrap_err()
                .code(),
            "output_differs"
        );
        assert_eq!(
            outputs_agree(&[label(3)], &[f(&[3.0])], t)
                .unwrap_err()
                .code(),
            "output_shape"
        );
        assert_eq!(
            outputs_agree(&[f(&[1.0])], &[], t).unwrap_err().code(),
            "output_count"
        );
    }
}
