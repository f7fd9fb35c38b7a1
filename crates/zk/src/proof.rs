//! The protocol behind `opal zk` (the CLI and other callers go through this facade, so the
//! protocol version can change in one place). Today: protocol v2 ([`crate::v2`]).

use crate::error::ZkError;
pub use crate::v2::{ProverModel, RegisteredModel};
use opal_quant::QuantModel;

/// Short name of the protocol recorded in `setup.json` and the JSON reports.
pub const PROTOCOL_NAME: &str = opal_domains::label::ZK_PROTOCOL_NAME;

/// One-time setup: commits to the weights.
pub fn register(model: &QuantModel) -> Result<(ProverModel, RegisteredModel), ZkError> {
    crate::v2::register(model)
}

#[cfg(feature = "prover")]
/// Proves one inference; returns the output and the encoded proof.
pub fn prove(
    pm: &ProverModel,
    reg: &RegisteredModel,
    input: &[i64],
) -> Result<(Vec<i64>, Vec<u8>), ZkError> {
    crate::v2::prove(pm, reg, input)
}

/// Verifies encoded proof bytes for `output = model(input)` (length checked before decoding).
pub fn verify(
    reg: &RegisteredModel,
    input: &[i64],
    output: &[i64],
    proof: &[u8],
) -> Result<(), ZkError> {
    crate::v2::verify(reg, input, output, proof)
}

pub fn soundness_bits(reg: &RegisteredModel) -> Result<f64, ZkError> {
    crate::v2::soundness_bits(reg)
}

#[cfg(feature = "prover")]
/// One-time proof that the committed weights are in their declared ranges (kept beside the
/// registered model; see `v2::prove_registration`).
pub fn prove_registration(pm: &ProverModel, reg: &RegisteredModel) -> Result<Vec<u8>, ZkError> {
    crate::v2::prove_registration(pm, reg)
}

pub fn verify_registration(reg: &RegisteredModel, proof: &[u8]) -> Result<(), ZkError> {
    crate::v2::verify_registration(reg, proof)
}

pub fn registration_soundness_bits(reg: &RegisteredModel) -> Result<f64, ZkError> {
    crate::v2::registration_soundness_bits(reg)
}
