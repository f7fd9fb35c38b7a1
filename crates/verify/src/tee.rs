//! The `tee` tier's slot. NOT IMPLEMENTED: enclave attestation (Intel TDX and SGX through
//! DCAP, AMD SEV-SNP) is issue 17. Until it lands, every `tee` receipt fails verification with
//! [`TeeError::NotImplemented`], so no tool can mistake an unchecked quote for a checked one.

use crate::report::Failure;
use opal_types::receipt::{Attachment, Receipt};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeeError {
    #[error("the tee tier is not implemented yet (issue 17): its attestation cannot be checked")]
    NotImplemented,
}

impl Failure for TeeError {
    fn code(&self) -> &'static str {
        match self {
            TeeError::NotImplemented => "tee_not_implemented",
        }
    }
}

/// Verify a `tee` receipt's attestation. Always fails today (see the module docs).
pub fn verify(_r: &Receipt, _att: Option<&Attachment>) -> Result<(), TeeError> {
    Err(TeeError::NotImplemented)
}
