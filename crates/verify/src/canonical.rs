//! Canonical re-execution of a quantized model (`ModelFormat::OpalQuant`): the one function the
//! inference node uses to answer `replay`-tier and auditable requests, the ledger uses to
//! settle disputes and audits (through [`crate::replay`]), and `opal verify` and the watcher
//! use to check a result themselves. Same bytes in, same bytes out, on every machine.
//!
//! Inputs and outputs travel as tensors in their canonical encoding (`opal_infer::Tensor`,
//! version 1: `[1, dtype tag, rank]`, each dimension as `u64` little-endian, then the elements
//! little-endian). The model takes exactly one `f32` tensor whose element count is the model's
//! `input_len` (any shape); it is mapped to integers by `QuantModel::input_from_f32` and run by
//! the reference executor; the single output is an `i64` tensor of shape `[n]` holding the output
//! integers (`opal_quant::output_bytes` after the header). Hashes follow
//! `opal_types::receipt::tensor_list_hash`. The specification is docs/zk.md section 1 and
//! docs/verification.md.

use opal_quant::QuantModel;
pub use opal_quant::{ExecOptions, ExecPath};

const CANONICAL_VERSION: u8 = 1;
const TAG_F32: u8 = 1;
const TAG_I64: u8 = 2;
const MAX_RANK: usize = 8;

/// Why a canonical execution could not run. Every variant is the caller's (or the model's)
/// fault, never the executor's: it is reported, not retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("model file: {0}")]
    Model(String),
    #[error("the model needs {needed} multiply-accumulates, the limit is {limit}")]
    TooCostly { needed: u64, limit: u64 },
    #[error("expected exactly one input tensor, got {0}")]
    InputCount(usize),
    #[error("input tensor: {0}")]
    Input(String),
    #[error("execution: {0}")]
    Exec(String),
}

impl CanonicalError {
    /// A stable code for the kind of failure. Consensus decisions use this, never the message
    /// text (which may change with a library's wording, and is no part of the protocol).
    pub fn code(&self) -> &'static str {
        match self {
            CanonicalError::Model(_) => "model",
            CanonicalError::TooCostly { .. } => "too_costly",
            CanonicalError::InputCount(_) => "input_count",
            CanonicalError::Input(_) => "input",
            CanonicalError::Exec(_) => "exec",
        }
    }
}

/// Decode and validate a model file (bounded; never panics on garbage).
pub fn load_model(bytes: &[u8]) -> Result<QuantModel, CanonicalError> {
    QuantModel::from_file_bytes(bytes).map_err(|e| CanonicalError::Model(e.to_string()))
}

/// An upper bound on the multiply-accumulates (and comparisons) one run costs.
pub fn cost(model: &QuantModel) -> u64 {
    use opal_quant::Layer;
    let mut total: u64 = model.input_len as u64;
    for l in &model.layers {
        let c = match l {
            Layer::Dense(d) => d.rows as u64 * d.cols as u64,
            Layer::Conv2d(c) => {
                let (oh, ow) = c.out_hw();
                c.out_ch as u64 * oh as u64 * ow as u64 * c.in_ch as u64 * c.kh as u64 * c.kw as u64
            }
            Layer::MaxPool2d(p) => {
                let (oh, ow) = p.out_hw();
                p.ch as u64 * oh as u64 * ow as u64 * p.kh as u64 * p.kw as u64
            }
            Layer::Requant(_) | Layer::Add(_) => 0,
        };
        total = total.saturating_add(c).saturating_add(1);
    }
    total
}

/// Parse one canonical `f32` tensor: its elements (shape only checked for consistency).
pub fn parse_f32_tensor(b: &[u8]) -> Result<Vec<f32>, CanonicalError> {
    let bad = |m: &str| CanonicalError::Input(m.to_string());
    if b.len() < 3 {
        return Err(bad("shorter than its header"));
    }
    if b[0] != CANONICAL_VERSION {
        return Err(bad("unknown canonical tensor version"));
    }
    if b[1] != TAG_F32 {
        return Err(bad("the model takes an f32 tensor"));
    }
    let rank = b[2] as usize;
    if rank > MAX_RANK {
        return Err(bad("rank above 8"));
    }
    let dims_end = 3 + 8 * rank;
    if b.len() < dims_end {
        return Err(bad("truncated shape"));
    }
    let mut count: u64 = 1;
    for d in b[3..dims_end].chunks_exact(8) {
        let d = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        count = count.checked_mul(d).ok_or_else(|| bad("shape overflows"))?;
    }
    let data = &b[dims_end..];
    if count.checked_mul(4) != Some(data.len() as u64) {
        return Err(bad("element count does not match the shape"));
    }
    Ok(data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The canonical bytes of an `f32` tensor of `shape` holding `v` (the inverse of
/// [`parse_f32_tensor`]; the element count is the caller's to keep consistent).
pub fn f32_tensor_bytes(shape: &[u64], v: &[f32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(3 + 8 * shape.len() + 4 * v.len());
    b.extend_from_slice(&[CANONICAL_VERSION, TAG_F32, shape.len() as u8]);
    for d in shape {
        b.extend_from_slice(&d.to_le_bytes());
    }
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b
}

/// The canonical bytes of the output tensor: `i64`, shape `[n]`.
pub fn output_tensor_bytes(y: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(11 + 8 * y.len());
    out.extend_from_slice(&[CANONICAL_VERSION, TAG_I64, 1]);
    out.extend_from_slice(&(y.len() as u64).to_le_bytes());
    out.extend_from_slice(&opal_quant::output_bytes(y));
    out
}

/// The model's integer input for canonical input tensors (exactly one `f32` tensor of
/// `input_len` elements, mapped by `QuantModel::input_from_f32`). Needs only the model's
/// structure (`QuantModel::without_weights` is enough): this is what a zk proof is about.
pub fn quantized_input(model: &QuantModel, inputs: &[Vec<u8>]) -> Result<Vec<i64>, CanonicalError> {
    if inputs.len() != 1 {
        return Err(CanonicalError::InputCount(inputs.len()));
    }
    let x = parse_f32_tensor(&inputs[0])?;
    model
        .input_from_f32(&x)
        .map_err(|e| CanonicalError::Input(e.to_string()))
}

/// The output integers of canonical output tensors: exactly one tensor, which must be the
/// canonical encoding [`output_tensor_bytes`] of its values (so one output has one encoding).
pub fn parse_output(outputs: &[Vec<u8>]) -> Result<Vec<i64>, CanonicalError> {
    let bad = |m: &str| CanonicalError::Input(format!("output tensor: {m}"));
    if outputs.len() != 1 {
        return Err(bad("expected exactly one"));
    }
    let b = &outputs[0];
    if b.len() < 11 || b[..3] != [CANONICAL_VERSION, TAG_I64, 1] {
        return Err(bad("not a canonical rank-1 i64 tensor"));
    }
    let n = u64::from_le_bytes([b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10]]);
    let data = &b[11..];
    if n.checked_mul(8) != Some(data.len() as u64) {
        return Err(bad("element count does not match the shape"));
    }
    Ok(data
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// Run `model` on canonical input tensors; returns the canonical output tensors. `max_cost`
/// bounds the work before any is done.
pub fn run(
    model: &QuantModel,
    inputs: &[Vec<u8>],
    max_cost: u64,
    opts: ExecOptions,
) -> Result<Vec<Vec<u8>>, CanonicalError> {
    let needed = cost(model);
    if needed > max_cost {
        return Err(CanonicalError::TooCostly {
            needed,
            limit: max_cost,
        });
    }
    let q = quantized_input(model, inputs)?;
    let y = model
        .run_with(&q, opts)
        .map_err(|e| CanonicalError::Exec(e.to_string()))?;
    Ok(vec![output_tensor_bytes(&y)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_codes_ignore_the_message_text() {
        use crate::replay::failed_run_hash;
        let a = CanonicalError::Exec("overflow in layer 2".into());
        let b = CanonicalError::Exec("a reworded message from a newer library".into());
        assert_eq!(a.code(), "exec");
        assert_eq!(failed_run_hash(&a), failed_run_hash(&b));
        assert_ne!(
            failed_run_hash(&a),
            failed_run_hash(&CanonicalError::Input("x".into()))
        );
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            parse_f32_tensor(&f32_tensor_bytes(&[1, 2], &[1.0, 2.0])).unwrap(),
            vec![1.0, 2.0]
        );
        assert!(parse_f32_tensor(&f32_tensor_bytes(&[1, 3], &[1.0, 2.0])).is_err());
        assert!(parse_f32_tensor(&[]).is_err());
        assert!(parse_f32_tensor(&[1, 2, 0]).is_err());
        let mut huge = vec![1, 1, 2];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_f32_tensor(&huge).is_err());
    }

    #[test]
    fn demo_model_runs_canonically() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/digits/model.opalq"
        ))
        .unwrap();
        let m = load_model(&bytes).unwrap();
        let x = f32_tensor_bytes(&[1, 64], &[3.0; 64]);
        let a = run(
            &m,
            std::slice::from_ref(&x),
            u64::MAX,
            ExecOptions::default(),
        )
        .unwrap();
        let b = run(&m, &[x], u64::MAX, ExecOptions::default()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].len(), 11 + 8 * m.output_len());
        assert!(matches!(
            run(&m, &[], u64::MAX, ExecOptions::default()),
            Err(CanonicalError::InputCount(0))
        ));
        assert!(matches!(
            run(
                &m,
                &[f32_tensor_bytes(&[1], &[0.0])],
                1,
                ExecOptions::default()
            ),
            Err(CanonicalError::TooCostly { .. })
        ));
        assert!(load_model(b"garbage").is_err());
    }
}
