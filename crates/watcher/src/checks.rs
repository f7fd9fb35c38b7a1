//! Offline checks a verifier runs on revealed data: a float model re-run within tolerance, and
//! the commitment parameters the chain requires of LLM replies. Shared by the watcher and
//! `opal verify`.

use opal_client::{Client, ClientError};
use opal_infer::Tensor;
use opal_verify::report::Failure;

/// Re-run a float model on inputs (canonical tensor bytes) and compare with the claimed
/// outputs within `opal_verify::float::ONNX_TOLERANCE`: what a committee member checks
/// (`opal node watch`) and `opal verify --model-file M.onnx` runs. A model that does not run
/// on the inputs has no output a node could have answered honestly. Err: (code, why).
pub fn rerun_float(
    m: &opal_infer::PreparedModel,
    inputs: &[Vec<u8>],
    claimed: &[Vec<u8>],
) -> std::result::Result<(), (&'static str, String)> {
    let decode = |what: &str, ts: &[Vec<u8>]| {
        ts.iter()
            .map(|b| Tensor::from_canonical_bytes(b))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ("unreadable", format!("{what}: {e}")))
    };
    let (ins, outs) = (decode("inputs", inputs)?, decode("outputs", claimed)?);
    let truth = m.run(&ins).map_err(|e| {
        (
            "output_differs",
            format!("the model does not run on the signed inputs: {e}"),
        )
    })?;
    let a: Vec<_> = outs.iter().map(float_values).collect();
    let b: Vec<_> = truth.iter().map(float_values).collect();
    opal_verify::float::outputs_agree(&a, &b, opal_verify::float::ONNX_TOLERANCE)
        .map_err(|e| (e.code(), e.to_string()))
}

/// Elements of a tensor for the float comparison.
fn float_values(t: &Tensor) -> opal_verify::float::TensorValues {
    use opal_infer::TensorData;
    use opal_verify::float::Values;
    let values = match t.data() {
        TensorData::F32(v) => Values::Float(v.clone()),
        TensorData::I64(v) => Values::Int(v.clone()),
        TensorData::I32(v) => Values::Int(v.iter().map(|&x| x as i64).collect()),
        TensorData::U8(v) => Values::Int(v.iter().map(|&x| x as i64).collect()),
    };
    opal_verify::float::TensorValues {
        shape: t.shape().to_vec(),
        values,
    }
}

/// The commitment parameters a chain requires (its `Params::llm_commit_chunk` /
/// `llm_commit_top_k`).
pub fn commit_params(p: &opal_ledger::Params) -> opal_llm::CommitParams {
    opal_llm::CommitParams {
        chunk_size: p.llm_commit_chunk,
        top_k: p.llm_commit_top_k,
    }
}

/// The commitment parameters of the chain a node serves, from its `/api/status`.
pub fn chain_commit_params(c: &Client) -> Result<opal_llm::CommitParams, ClientError> {
    Ok(commit_params(&c.status()?.params))
}
