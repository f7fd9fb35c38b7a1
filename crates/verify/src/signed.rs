//! The `signed` tier's verifier, which every other tier builds on: the caller's signature over
//! the request, the node's over the receipt, the price bound, and whether data someone shows
//! (the outputs, the input, an LLM's tokens) is what those signatures bound.
//!
//! What this proves: the node named in the receipt answered this caller's request with this
//! output at this price. It does not prove the output is the model's; that is what audits
//! (docs/verification.md) and the stronger tiers are for.

use crate::report::Failure;
use opal_types::receipt::{tensor_list_hash, Receipt, ReceiptEnvelope};
use opal_types::{Hash, Tier};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    #[error("{0}")]
    Signature(String),
    #[error("differs from the signed envelope: {}", .0.join(", "))]
    ReadableFields(Vec<String>),
    #[error("the {what} hash to {got}, the receipt signed {signed}")]
    HashMismatch {
        what: &'static str,
        signed: Hash,
        got: Hash,
    },
    #[error(
        "the receipt bills {billed} units, the reply has {counted} (prompt and completion tokens)"
    )]
    Units { billed: u64, counted: u64 },
    #[error("an activations receipt has no activation commitment attached")]
    NoCommitment,
}

impl Failure for SignedError {
    fn code(&self) -> &'static str {
        match self {
            SignedError::Signature(_) => "signature",
            SignedError::ReadableFields(_) => "readable_fields",
            SignedError::HashMismatch {
                what: "outputs", ..
            } => "outputs_mismatch",
            SignedError::HashMismatch { what: "inputs", .. } => "inputs_mismatch",
            SignedError::HashMismatch { .. } => "llm_data_mismatch",
            SignedError::Units { .. } => "units_mismatch",
            SignedError::NoCommitment => "no_commitment",
        }
    }
}

/// The signatures (caller's request or grant, node's receipt) and the price bound.
pub fn verify_envelope(env: &ReceiptEnvelope) -> Result<(), SignedError> {
    env.verify()
        .map_err(|e| SignedError::Signature(e.to_string()))
}

/// The output tensors (canonical bytes) are the ones the node signed.
pub fn check_outputs(r: &Receipt, outputs: &[Vec<u8>]) -> Result<(), SignedError> {
    same("outputs", r.body.output_hash, tensor_list_hash(outputs))
}

/// The input tensors (canonical bytes) are the ones the caller signed.
pub fn check_inputs(r: &Receipt, inputs: &[Vec<u8>]) -> Result<(), SignedError> {
    same(
        "inputs",
        r.body.request.request.input_hash,
        tensor_list_hash(inputs),
    )
}

/// An LLM reply's input (prompt tokens, sampling parameters, seed) is the one the caller signed.
pub fn check_llm_input(r: &Receipt, input: &opal_types::llm::LlmInput) -> Result<(), SignedError> {
    same("LLM input", r.body.request.request.input_hash, input.hash())
}

/// An LLM reply's output tokens (and, for the `activations` tier, the attached commitment) are
/// the ones the node signed.
pub fn check_llm_output(env: &ReceiptEnvelope, tokens: &[u32]) -> Result<(), SignedError> {
    let r = &env.receipt;
    let commitment = if r.body.request.request.tier == Tier::Activations {
        Some(
            env.attachments
                .iter()
                .find(|x| x.tier == Tier::Activations)
                .map(|a| a.bytes.as_slice())
                .ok_or(SignedError::NoCommitment)?,
        )
    } else {
        None
    };
    same(
        "LLM output tokens",
        r.body.output_hash,
        opal_types::llm::output_hash(tokens, commitment),
    )
}

/// An LLM receipt bills one unit per prompt and completion token (royalties are per unit).
pub fn check_billed_units(
    r: &Receipt,
    input: &opal_types::llm::LlmInput,
    tokens: &[u32],
) -> Result<(), SignedError> {
    let counted = (input.prompt_tokens.len() + tokens.len()) as u64;
    if counted != r.body.units {
        return Err(SignedError::Units {
            billed: r.body.units,
            counted,
        });
    }
    Ok(())
}

fn same(what: &'static str, signed: Hash, got: Hash) -> Result<(), SignedError> {
    if signed == got {
        Ok(())
    } else {
        Err(SignedError::HashMismatch { what, signed, got })
    }
}
