//! The `zk` tier's verifier: the proof attached to a receipt, checked against a verifying key
//! that is provably the receipt's model's. The ledger's `SettleProved` runs its own hash
//! checks, then [`check_key_names_model`] and [`check_proof`] (after its size limits and
//! registry lookups); `opal verify` runs [`verify`] with a key
//! it derived from the model file itself ([`key_from_model_file`]) or fetched by its id
//! ([`key_from_published`]).
//!
//! A key is the model's when it was made from the file whose content hash the receipt names
//! (key format v3 commits to that hash: [`check_key_names_model`]). A key of another model
//! would otherwise settle that model's proofs as this one's.

use crate::canonical::{self, CanonicalError};
use crate::report::Failure;
use opal_types::receipt::{tensor_list_hash, Attachment, Receipt, ZkEvidence, ZK_EVIDENCE_VERSION};
use opal_types::{Hash, Tier};
use opal_zk::api::VerifyingKey;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZkCheckError {
    #[error("no zk proof is attached to this receipt")]
    NoProof,
    #[error("zk attachment format version {0} is unknown")]
    UnknownVersion(u16),
    #[error("the zk attachment is malformed: {0}")]
    Malformed(String),
    #[error("the proof's inputs are not the ones the caller signed")]
    InputsMismatch,
    #[error("the proof's outputs are not the ones the node signed")]
    OutputsMismatch,
    #[error("the model file hashes to {got}, the receipt's model is {expected}")]
    WrongModelFile { expected: Hash, got: Hash },
    #[error("the key bytes hash to {got}, not the key id {id}")]
    KeyIdMismatch { id: Hash, got: Hash },
    #[error("the verifying key is invalid: {0}")]
    KeyInvalid(String),
    #[error(
        "the key was made from the model file {key_file}, not the receipt's model {model_hash}"
    )]
    KeyNotTheModels { key_file: Hash, model_hash: Hash },
    #[error("the proof's data does not fit the model: {0}")]
    Canonical(CanonicalError),
    #[error("invalid proof: {0}")]
    Invalid(String),
}

impl Failure for ZkCheckError {
    fn code(&self) -> &'static str {
        match self {
            ZkCheckError::NoProof => "no_proof",
            ZkCheckError::UnknownVersion(_) => "zk_version",
            ZkCheckError::Malformed(_) => "zk_malformed",
            ZkCheckError::InputsMismatch => "inputs_mismatch",
            ZkCheckError::OutputsMismatch => "outputs_mismatch",
            ZkCheckError::WrongModelFile { .. } => "wrong_model_file",
            ZkCheckError::KeyIdMismatch { .. } => "key_id_mismatch",
            ZkCheckError::KeyInvalid(_) => "key_invalid",
            ZkCheckError::KeyNotTheModels { .. } => "key_file_mismatch",
            ZkCheckError::Canonical(_) => "canonical",
            ZkCheckError::Invalid(_) => "proof_invalid",
        }
    }
}

/// What a proof was verified as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkVerified {
    /// The verifying key's id (the model's registered weight commitment).
    pub key_id: Hash,
    pub proof_bytes: usize,
}

/// Decode a receipt's `zk` attachment.
pub fn evidence(att: Option<&Attachment>) -> Result<ZkEvidence, ZkCheckError> {
    let att = att.ok_or(ZkCheckError::NoProof)?;
    if att.tier != Tier::Zk {
        return Err(ZkCheckError::NoProof);
    }
    if att.version != ZK_EVIDENCE_VERSION {
        return Err(ZkCheckError::UnknownVersion(att.version));
    }
    ZkEvidence::from_bytes(&att.bytes).map_err(|e| ZkCheckError::Malformed(e.to_string()))
}

/// The key derived from a model file, which must be the receipt's model (`model_hash`). The key
/// names the file it was derived from. Behind the `prover` feature (the derivation runs the
/// setup, registration proof included).
#[cfg(feature = "prover")]
pub fn key_from_model_file(file: &[u8], model_hash: &Hash) -> Result<VerifyingKey, ZkCheckError> {
    let got = Hash(*blake3::hash(file).as_bytes());
    if got != *model_hash {
        return Err(ZkCheckError::WrongModelFile {
            expected: *model_hash,
            got,
        });
    }
    opal_zk::api::key_for_file(file).map_err(|e| ZkCheckError::KeyInvalid(e.to_string()))
}

/// A key fetched by its id (from a node, which is not trusted: the bytes must hash to the id).
pub fn key_from_published(id: &Hash, bytes: &[u8]) -> Result<VerifyingKey, ZkCheckError> {
    let got = Hash(*blake3::hash(bytes).as_bytes());
    if got != *id {
        return Err(ZkCheckError::KeyIdMismatch { id: *id, got });
    }
    VerifyingKey::from_bytes(bytes).map_err(|e| ZkCheckError::KeyInvalid(e.to_string()))
}

/// The key was made from the model file whose content hash is `model_hash`.
pub fn check_key_names_model(vk: &VerifyingKey, model_hash: &Hash) -> Result<(), ZkCheckError> {
    let key_file = Hash(vk.file_hash());
    if key_file != *model_hash {
        return Err(ZkCheckError::KeyNotTheModels {
            key_file,
            model_hash: *model_hash,
        });
    }
    Ok(())
}

/// The evidence's tensors are the signed ones, and its proof verifies under `vk` for them.
/// (The key's binding to the model is [`check_key_names_model`]'s job.)
pub fn check_evidence(r: &Receipt, ev: &ZkEvidence, vk: &VerifyingKey) -> Result<(), ZkCheckError> {
    if tensor_list_hash(&ev.inputs) != r.body.request.request.input_hash {
        return Err(ZkCheckError::InputsMismatch);
    }
    if tensor_list_hash(&ev.outputs) != r.body.output_hash {
        return Err(ZkCheckError::OutputsMismatch);
    }
    check_proof(ev, vk)
}

/// The proof verifies under `vk` for the evidence's input and output (no hash checks).
pub fn check_proof(ev: &ZkEvidence, vk: &VerifyingKey) -> Result<(), ZkCheckError> {
    let x = canonical::quantized_input(&vk.registered().structure, &ev.inputs)
        .map_err(ZkCheckError::Canonical)?;
    let y = canonical::parse_output(&ev.outputs).map_err(ZkCheckError::Canonical)?;
    opal_zk::api::verify(vk, &x, &y, &ev.proof).map_err(|e| ZkCheckError::Invalid(e.to_string()))
}

/// Verify a receipt's attached proof: decoded, about the signed tensors, under a key made from
/// the receipt's model file.
pub fn verify(
    r: &Receipt,
    att: Option<&Attachment>,
    vk: &VerifyingKey,
) -> Result<ZkVerified, ZkCheckError> {
    let ev = evidence(att)?;
    check_key_names_model(vk, &r.body.request.request.model_hash)?;
    check_evidence(r, &ev, vk)?;
    Ok(ZkVerified {
        key_id: Hash(vk.id()),
        proof_bytes: ev.proof.len(),
    })
}
