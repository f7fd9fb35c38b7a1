//! Evidence of consensus misbehaviour that the ledger can check on its own: two conflicting votes
//! signed by the same validator key for the same height, round and vote type.
//!
//! The bytes a validator signs for a vote are defined by the consensus crate
//! (`opal_consensus::signing::vote_sign_bytes`); [`VoteEvidence::sign_bytes`] rebuilds exactly
//! the same bytes (a conformance test in `opal-node` checks this), so the ledger verifies evidence
//! without depending on the consensus engine.

use crate::crypto::{PublicKey, Signature};
use crate::hash::{Domain, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// Vote types as the consensus engine numbers them.
pub const PREVOTE: u8 = 1;
pub const PRECOMMIT: u8 = 2;

/// One signed consensus vote.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct VoteEvidence {
    pub vote_type: u8,
    pub height: u64,
    pub round: i64,
    /// The voted value id (`blake3(block)`), or `None` for a nil vote.
    pub value: Option<[u8; 32]>,
    pub validator: PublicKey,
    pub signature: Signature,
}

/// Two votes by one validator that cannot both be honest.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct DoubleSignEvidence {
    pub a: VoteEvidence,
    pub b: VoteEvidence,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("the two votes are by different validators")]
    DifferentValidators,
    #[error("the two votes are for different heights, rounds or vote types")]
    DifferentSlots,
    #[error("the two votes are for the same value: no conflict")]
    SameValue,
    #[error("unknown vote type {0}")]
    BadVoteType(u8),
    #[error("a vote's signature does not verify")]
    BadSignature,
}

#[derive(BorshSerialize)]
struct VoteSignBytes<'a> {
    domain: &'static str,
    chain_id: &'a str,
    vote_type: u8,
    height: u64,
    round: i64,
    value: Option<[u8; 32]>,
    validator: [u8; 32],
}

/// The exact bytes a validator signs for a prevote or precommit (`vote_type` is [`PREVOTE`] or
/// [`PRECOMMIT`]; `value` is `None` for a nil vote). The consensus engine signs these and
/// evidence and certificates are checked against them: one definition for both.
pub fn vote_sign_bytes(
    chain_id: &str,
    vote_type: u8,
    height: u64,
    round: i64,
    value: Option<[u8; 32]>,
    validator: [u8; 32],
) -> Vec<u8> {
    crate::encode(&VoteSignBytes {
        domain: opal_domains::label::VOTE,
        chain_id,
        vote_type,
        height,
        round,
        value,
        validator,
    })
}

impl VoteEvidence {
    /// The exact bytes the consensus engine signs for this vote.
    pub fn sign_bytes(&self, chain_id: &str) -> Vec<u8> {
        vote_sign_bytes(
            chain_id,
            self.vote_type,
            self.height,
            self.round,
            self.value,
            self.validator.0,
        )
    }

    pub fn verify(&self, chain_id: &str) -> Result<(), EvidenceError> {
        if self.vote_type != PREVOTE && self.vote_type != PRECOMMIT {
            return Err(EvidenceError::BadVoteType(self.vote_type));
        }
        self.validator
            .verify(&self.sign_bytes(chain_id), &self.signature)
            .map_err(|_| EvidenceError::BadSignature)
    }
}

impl DoubleSignEvidence {
    /// Check that this is real evidence: same validator and slot, different values, both signed.
    pub fn validate(&self, chain_id: &str) -> Result<(), EvidenceError> {
        let (a, b) = (&self.a, &self.b);
        if a.validator != b.validator {
            return Err(EvidenceError::DifferentValidators);
        }
        if a.height != b.height || a.round != b.round || a.vote_type != b.vote_type {
            return Err(EvidenceError::DifferentSlots);
        }
        if a.value == b.value {
            return Err(EvidenceError::SameValue);
        }
        a.verify(chain_id)?;
        b.verify(chain_id)
    }

    /// An id that is the same whichever vote is called `a`, so evidence cannot be replayed by
    /// swapping the two.
    pub fn id(&self) -> Hash {
        let (x, y) = (crate::encode(&self.a), crate::encode(&self.b));
        let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
        Hash::of_parts(Domain::Evidence, &[&lo, &hi])
    }
}
