//! Commit certificates: engine form <-> stable form, and verification of the stable form.

use std::collections::BTreeSet;

use malachitebft_core_types::{
    CommitCertificate as EngineCert, ExtendedCommitCertificate, ExtendedCommitSignature, Round,
};
use malachitebft_signing_ed25519::Signature;

use crate::context::{Address, BlockHeight, OpalContext, ValueId};
use crate::signing::{precommit_sign_bytes, verify_raw};
use crate::{CommitCertificate, Validator};

/// Why a [`CommitCertificate`] does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("signer {0} is not in the validator set")]
    UnknownValidator(String),
    #[error("validator {0} signed twice")]
    DuplicateSigner(String),
    #[error("invalid signature by {0}")]
    BadSignature(String),
    #[error("not enough voting power: signed {signed} of {total}")]
    InsufficientPower { signed: u64, total: u64 },
    #[error("validator set is empty or its power overflows")]
    BadValidatorSet,
}

impl CommitCertificate {
    /// Check that more than 2/3 of the voting power of `validators` signed a precommit for
    /// `(height, round, value_id)` on `chain_id`, and that every signature is valid.
    pub fn verify(&self, chain_id: &str, validators: &[Validator]) -> Result<(), CertificateError> {
        let mut total: u64 = 0;
        for v in validators {
            total = total
                .checked_add(v.power)
                .ok_or(CertificateError::BadValidatorSet)?;
        }
        if total == 0 || total.checked_mul(3).is_none() {
            return Err(CertificateError::BadValidatorSet);
        }
        let mut seen = BTreeSet::new();
        let mut signed: u64 = 0;
        for (pk, sig) in &self.signatures {
            let name = hex::encode(pk);
            let v = validators
                .iter()
                .find(|v| &v.public_key == pk && v.power > 0)
                .ok_or_else(|| CertificateError::UnknownValidator(name.clone()))?;
            if !seen.insert(*pk) {
                return Err(CertificateError::DuplicateSigner(name));
            }
            let msg = precommit_sign_bytes(chain_id, self.height, self.round, self.value_id, *pk);
            if !verify_raw(pk, &msg, sig) {
                return Err(CertificateError::BadSignature(name));
            }
            signed = signed.saturating_add(v.power);
        }
        // signed > 2/3 total  <=>  3 * signed > 2 * total
        if (signed as u128) * 3 > (total as u128) * 2 {
            Ok(())
        } else {
            Err(CertificateError::InsufficientPower { signed, total })
        }
    }
}

/// Engine certificate -> stable form.
pub fn from_engine(c: &EngineCert<OpalContext>) -> CommitCertificate {
    CommitCertificate {
        height: c.height.0,
        round: c.round.as_u32().unwrap_or(0),
        value_id: c.value_id.0,
        signatures: c
            .commit_signatures
            .iter()
            .map(|s| (s.address.0, s.signature.to_bytes().to_vec()))
            .collect(),
    }
}

/// Stable form -> the engine certificate served to syncing peers (no vote extensions).
/// `None` if a signature has the wrong length.
pub fn to_engine_extended(c: &CommitCertificate) -> Option<ExtendedCommitCertificate<OpalContext>> {
    let mut sigs = Vec::with_capacity(c.signatures.len());
    for (pk, sig) in &c.signatures {
        let sig: [u8; 64] = sig.as_slice().try_into().ok()?;
        sigs.push(ExtendedCommitSignature::new(
            Address(*pk),
            Signature::from_bytes(sig),
            None,
        ));
    }
    Some(ExtendedCommitCertificate {
        height: BlockHeight(c.height),
        round: Round::new(c.round),
        value_id: ValueId(c.value_id),
        commit_signatures: sigs,
    })
}
