//! Fault injection for the tests of the verification machinery: a node that answers wrongly
//! on purpose. Compiled in only with the `fault-injection` feature (the test suite's); a
//! release build ignores the variable and says so.

use crate::backend::Run;
use crate::error::ServeError;
use opal_infer::{Tensor, TensorData};
use opal_types::registry::ModelFormat;
use opal_types::Hash;

/// `OPAL_FAULT_WRONG_OUTPUT_BPS`: the share of requests (basis points) a test node answers
/// wrongly on purpose. Read only in builds with the `fault-injection` feature (the test
/// suite's); a release build ignores the variable and says so.
#[cfg(feature = "fault-injection")]
pub fn from_env() -> Option<u32> {
    let bps = std::env::var("OPAL_FAULT_WRONG_OUTPUT_BPS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    if let Some(bps) = bps {
        tracing::warn!(bps, "FAULT INJECTION: this node answers wrong outputs on purpose (OPAL_FAULT_WRONG_OUTPUT_BPS)");
    }
    bps
}

/// A wrong answer for fault injection: every float shifted by 0.5, every integer by 1 (far
/// beyond any committee's tolerance).
fn wrong_on_purpose(t: Tensor) -> Tensor {
    let shape = t.shape().to_vec();
    let data = match t.into_data() {
        TensorData::F32(v) => TensorData::F32(v.into_iter().map(|x| x + 0.5).collect()),
        TensorData::I64(v) => TensorData::I64(v.into_iter().map(|x| x.wrapping_add(1)).collect()),
        TensorData::I32(v) => TensorData::I32(v.into_iter().map(|x| x.wrapping_add(1)).collect()),
        TensorData::U8(v) => TensorData::U8(v.into_iter().map(|x| x.wrapping_add(1)).collect()),
    };
    Tensor::new(shape, data).expect("same shape and length")
}

/// Whether a node lying on `bps` basis points of requests answers request `id` wrongly (a
/// deterministic fraction, decided by the id).
pub fn lies_on(bps: Option<u32>, id: &Hash) -> bool {
    bps.is_some_and(|bps| id.le_u64() % 10_000 < bps as u64)
}

/// A wrong answer: a canonical model's first output with its last byte flipped (what the
/// ledger's re-execution catches), a float model's every value moved (what the committee's
/// tolerance catches).
pub fn corrupt(run: Run, format: ModelFormat) -> Result<Run, ServeError> {
    let Run {
        mut outputs,
        mut reveal,
    } = run;
    if format == ModelFormat::OpalQuant {
        if let Some(first) = reveal.outputs.first_mut() {
            if let Some(last) = first.last_mut() {
                *last ^= 0x01;
            }
            outputs[0] = Tensor::from_canonical_bytes(first)?;
        }
    } else {
        outputs = outputs.into_iter().map(wrong_on_purpose).collect();
        reveal.outputs = outputs.iter().map(Tensor::canonical_bytes).collect();
    }
    Ok(Run { outputs, reveal })
}

#[cfg(not(feature = "fault-injection"))]
pub fn from_env() -> Option<u32> {
    if std::env::var_os("OPAL_FAULT_WRONG_OUTPUT_BPS").is_some() {
        tracing::warn!("OPAL_FAULT_WRONG_OUTPUT_BPS is ignored: this build has no fault injection (the `fault-injection` feature is for tests)");
    }
    None
}
