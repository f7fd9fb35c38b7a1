//! `opal-infer`: the model runtime of an Opal inference node.
//!
//! Design note. Three pieces, each independent of the ledger (this crate uses `opal-types`
//! only for the hash of a tensor list, [`tensors_hash`]):
//!
//! * [`Tensor`]: typed tensors as they travel over the API (JSON) and as receipts bind them
//!   (a frozen canonical byte encoding and its BLAKE3 derive-key hash under `"opal/tensor/v1"`).
//!   Decoding untrusted tensors is bounded and returns typed errors; [`parse_inputs`] reads a
//!   request's inputs in the forms people write (nested arrays, named inputs, tensor objects,
//!   the benchmark's `input_data`).
//! * [`PreparedModel`] (the default `runtime` feature; a caller builds without it and links no
//!   ML engine): an ONNX model on `tract`, parsed, type-checked, optimised and planned
//!   once, then run concurrently from any number of threads (prepare once, run many). Inputs are
//!   validated against the model's [`ModelSchema`] before they reach tract, and tract itself runs
//!   under `catch_unwind`, so neither a malformed model nor a malformed request can take the
//!   node down.
//! * [`ModelCache`] (`runtime`): prepared models keyed by the content hash of their file, bounded, with
//!   single-flight loading.
//!
//! Errors are one [`InferError`] enum with a stable [`InferError::code`] per variant.
//!
//! Determinism: a prepared model gives bit-identical outputs for identical inputs on one
//! machine, whatever the number of threads calling it. Across CPUs, tract may pick different
//! matrix kernels (for example with or without FMA), so float outputs, and so output hashes,
//! can differ in the last bits between machines; checks that re-execute on another machine
//! compare with a tolerance, or use the integer model of `opal-quant`.

#![warn(missing_docs)]

#[cfg(feature = "runtime")]
mod cache;
mod error;
mod input;
#[cfg(feature = "runtime")]
mod model;
mod spec;
mod tensor;

#[cfg(feature = "runtime")]
pub use cache::ModelCache;
pub use error::InferError;
pub use input::parse_inputs;
#[cfg(feature = "runtime")]
pub use model::{content_hash, Limits, PreparedModel};
pub use spec::{ModelSchema, TensorSpec};
pub use tensor::{parse_input_data, DType, Tensor, TensorData};

/// Hash of a list of tensors (the inputs or the outputs of one inference): each tensor's
/// canonical hash, in order, under their own domain. Equal to
/// `opal_types::receipt::tensor_list_hash` of their canonical bytes, computed without making
/// them; a request's `input_hash` and a receipt's `output_hash` are this.
pub fn tensors_hash(tensors: &[Tensor]) -> opal_types::Hash {
    let hashes: Vec<[u8; 32]> = tensors.iter().map(|t| t.hash()).collect();
    let parts: Vec<&[u8]> = hashes.iter().map(|h| h.as_slice()).collect();
    opal_types::Hash::of_parts(opal_types::Domain::TensorList, &parts)
}
