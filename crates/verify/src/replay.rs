//! The `replay` tier's verifier: re-execute a canonical model ([`crate::canonical`]) on the
//! inputs the caller signed and compare with the output the node signed. The ledger decides
//! disputes and audits with [`reexecution_hash`]; the watcher and `opal verify --model-file`
//! run the same function, so a result a tool calls wrong is one the chain convicts.

use crate::canonical::{self, CanonicalError, ExecOptions};
use crate::report::Failure;
use opal_types::receipt::{tensor_list_hash, Receipt};
use opal_types::{Domain, Hash};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("the model file hashes to {got}, the receipt's model is {expected}")]
    WrongModelFile { expected: Hash, got: Hash },
    #[error("the inputs hash to {got}, the caller signed {signed}")]
    InputsMismatch { signed: Hash, got: Hash },
    #[error("the model needs {needed} multiply-accumulates, the limit is {limit}")]
    TooCostly { needed: u64, limit: u64 },
    #[error("re-execution gives {reexecuted}, the node signed {signed}{}", failure.map(|c| format!(" (the model cannot run on these inputs: {c})")).unwrap_or_default())]
    OutputDiffers {
        signed: Hash,
        reexecuted: Hash,
        /// Set when the model could not run on the inputs at all (its typed failure code).
        failure: Option<&'static str>,
    },
}

impl Failure for ReplayError {
    fn code(&self) -> &'static str {
        match self {
            ReplayError::WrongModelFile { .. } => "wrong_model_file",
            ReplayError::InputsMismatch { .. } => "inputs_mismatch",
            ReplayError::TooCostly { .. } => "too_costly",
            ReplayError::OutputDiffers { .. } => "output_differs",
        }
    }
}

/// What re-executing `model_file` on `inputs` "outputs", as a tensor-list hash: the hash of the
/// canonical outputs, or, when the registered model cannot run on these inputs (a malformed
/// model file, inputs of the wrong shape), [`failed_run_hash`] of the typed failure, which no
/// honest output has. Only a model over `max_cost` is undecidable (`Err`).
pub fn reexecution_hash(
    model_file: &[u8],
    inputs: &[Vec<u8>],
    max_cost: u64,
) -> Result<Hash, TooCostly> {
    reexecute(model_file, inputs, max_cost).map(|(h, _)| h)
}

/// A model whose one run costs more than the limit: nobody re-executes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooCostly {
    pub needed: u64,
    pub limit: u64,
}

/// [`reexecution_hash`] and, when the model could not run, its failure code.
fn reexecute(
    model_file: &[u8],
    inputs: &[Vec<u8>],
    max_cost: u64,
) -> Result<(Hash, Option<&'static str>), TooCostly> {
    let out = canonical::load_model(model_file)
        .and_then(|m| canonical::run(&m, inputs, max_cost, ExecOptions::default()));
    match out {
        Ok(outputs) => Ok((tensor_list_hash(&outputs), None)),
        Err(CanonicalError::TooCostly { needed, limit }) => Err(TooCostly { needed, limit }),
        Err(e) => Ok((failed_run_hash(&e), Some(e.code()))),
    }
}

/// What a re-execution that failed with `e` "outputs": a hash no tensor list has, fixed by the
/// failure's code alone (`opal/replay-failed/<code>`), never by a message's text.
pub fn failed_run_hash(e: &CanonicalError) -> Hash {
    Hash::of(
        Domain::TensorList,
        format!("{}{}", opal_domains::label::REPLAY_FAILED_PREFIX, e.code()).as_bytes(),
    )
}

/// Verify a receipt by re-execution: `model_file` must be the receipt's model, `inputs` the
/// caller's, and re-executing the one on the other must give the signed output. Returns the
/// output hash both agree on.
pub fn verify(
    r: &Receipt,
    model_file: &[u8],
    inputs: &[Vec<u8>],
    max_cost: u64,
) -> Result<Hash, ReplayError> {
    let req = &r.body.request.request;
    let got = Hash(*blake3::hash(model_file).as_bytes());
    if got != req.model_hash {
        return Err(ReplayError::WrongModelFile {
            expected: req.model_hash,
            got,
        });
    }
    let got = tensor_list_hash(inputs);
    if got != req.input_hash {
        return Err(ReplayError::InputsMismatch {
            signed: req.input_hash,
            got,
        });
    }
    let (reexecuted, failure) = reexecute(model_file, inputs, max_cost)
        .map_err(|TooCostly { needed, limit }| ReplayError::TooCostly { needed, limit })?;
    if reexecuted != r.body.output_hash {
        return Err(ReplayError::OutputDiffers {
            signed: r.body.output_hash,
            reexecuted,
            failure,
        });
    }
    Ok(reexecuted)
}
