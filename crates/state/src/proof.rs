//! Merkle proofs of presence or absence, portable as bytes.

use jmt::proof::SparseMerkleProof;
use jmt::RootHash;
use sha2::Sha256;

use crate::schema::key_hash;
use crate::{Root, StateError};

/// Largest accepted encoded proof. A real proof has at most 256 siblings of at most 65 bytes.
pub const MAX_PROOF_BYTES: usize = 64 * 1024;

/// Proof of a value (or its absence) under a root; borsh-serializable so it can travel in API
/// responses (hex).
#[derive(Clone, Debug, PartialEq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct StateProof {
    inner: SparseMerkleProof<Sha256>,
}

impl StateProof {
    pub(crate) fn new(inner: SparseMerkleProof<Sha256>) -> StateProof {
        StateProof { inner }
    }

    /// The proof of absence under the empty tree: no leaf, no siblings.
    pub(crate) fn empty_tree() -> Result<StateProof, StateError> {
        // borsh: Option::None (0u8), empty Vec (0u32). jmt keeps its constructor private.
        StateProof::from_bytes(&[0, 0, 0, 0, 0])
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing into a Vec cannot fail; fall back to empty bytes rather than panic.
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decode a proof. Rejects inputs over [`MAX_PROOF_BYTES`], trailing bytes and anything
    /// malformed; never panics.
    pub fn from_bytes(b: &[u8]) -> Result<StateProof, StateError> {
        if b.len() > MAX_PROOF_BYTES {
            return Err(StateError::MalformedProof(format!(
                "{} bytes exceeds the {MAX_PROOF_BYTES}-byte limit",
                b.len()
            )));
        }
        borsh::from_slice(b).map_err(|e| StateError::MalformedProof(e.to_string()))
    }

    /// Ok(()) iff the proof shows that `key` maps to `value` (None = absent) under `root`.
    pub fn verify(&self, root: &Root, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        self.inner
            .verify(RootHash(*root), key_hash(key), value)
            .map_err(|e| StateError::ProofInvalid(format!("{e:#}")))
    }
}
