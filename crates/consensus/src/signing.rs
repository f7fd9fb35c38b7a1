//! Canonical sign bytes (borsh, domain-separated by purpose and chain id) and the
//! engine's `Signer` / `Verifier` implementations over ed25519 (ZIP-215 rules via
//! `ed25519-consensus`, like the rest of the node).

use std::sync::Arc;

use async_trait::async_trait;
use borsh::BorshSerialize;
use malachitebft_core_types::{
    NilOrVal, Round, SignedMessage, ValidatorProof, VoteExtensionScope, VoteType,
};
use malachitebft_signing::{Error as SigningError, Signer, VerificationResult, Verifier};
use malachitebft_signing_ed25519::{PrivateKey, PublicKey, Signature};

use crate::context::{Address, OpalContext, PartInit, Proposal, Vote};
use opal_types::evidence::{PRECOMMIT, PREVOTE};

fn round_i64(r: Round) -> i64 {
    r.as_i64()
}

fn vote_type_byte(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => PREVOTE,
        VoteType::Precommit => PRECOMMIT,
    }
}

#[derive(BorshSerialize)]
struct ProposalSignBytes<'a> {
    domain: &'static str,
    chain_id: &'a str,
    height: u64,
    round: i64,
    value: [u8; 32],
    pol_round: i64,
    proposer: [u8; 32],
}

#[derive(BorshSerialize)]
struct ExtensionSignBytes<'a> {
    domain: &'static str,
    chain_id: &'a str,
    height: u64,
    round: i64,
    value: [u8; 32],
    validator: [u8; 32],
    extension: &'a [u8],
}

#[derive(BorshSerialize)]
struct PartsSignBytes<'a> {
    domain: &'static str,
    chain_id: &'a str,
    init: &'a PartInit,
    block_hash: [u8; 32],
}

fn to_vec<T: BorshSerialize>(t: &T) -> Vec<u8> {
    // Serializing into a Vec cannot fail.
    borsh::to_vec(t).unwrap_or_default()
}

/// Bytes a validator signs for a prevote/precommit (the extension is signed separately).
pub fn vote_sign_bytes(chain_id: &str, vote: &Vote) -> Vec<u8> {
    opal_types::evidence::vote_sign_bytes(
        chain_id,
        vote_type_byte(vote.vote_type),
        vote.height.0,
        round_i64(vote.round),
        match vote.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(id) => Some(id.0),
        },
        vote.validator.0,
    )
}

/// Bytes a precommit for `value_id` signs; what a certificate signature covers.
pub fn precommit_sign_bytes(
    chain_id: &str,
    height: u64,
    round: u32,
    value_id: [u8; 32],
    validator: [u8; 32],
) -> Vec<u8> {
    opal_types::evidence::vote_sign_bytes(
        chain_id,
        PRECOMMIT,
        height,
        i64::from(round),
        Some(value_id),
        validator,
    )
}

pub fn proposal_sign_bytes(chain_id: &str, p: &Proposal) -> Vec<u8> {
    to_vec(&ProposalSignBytes {
        domain: opal_domains::label::PROPOSAL,
        chain_id,
        height: p.height.0,
        round: round_i64(p.round),
        value: p.value.id.0,
        pol_round: round_i64(p.pol_round),
        proposer: p.proposer.0,
    })
}

pub fn extension_sign_bytes(
    chain_id: &str,
    scope: &VoteExtensionScope<OpalContext>,
    ext: &[u8],
) -> Vec<u8> {
    to_vec(&ExtensionSignBytes {
        domain: opal_domains::label::VOTE_EXTENSION,
        chain_id,
        height: scope.height.0,
        round: round_i64(scope.round),
        value: scope.value_id.0,
        validator: scope.validator_address.0,
        extension: ext,
    })
}

/// Bytes the proposer signs over a streamed block (carried in the `Fin` part).
pub fn parts_sign_bytes(chain_id: &str, init: &PartInit, block_hash: [u8; 32]) -> Vec<u8> {
    to_vec(&PartsSignBytes {
        domain: opal_domains::label::BLOCK_PARTS,
        chain_id,
        init,
        block_hash,
    })
}

pub fn verify_raw(public_key: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(pk) = PublicKey::from_bytes(*public_key) else {
        return false;
    };
    let Ok(sig) = <[u8; 64]>::try_from(sig) else {
        return false;
    };
    pk.verify(msg, &Signature::from_bytes(sig)).is_ok()
}

/// Verifies engine messages for one chain id.
#[derive(Clone, Debug)]
pub struct OpalVerifier {
    chain_id: Arc<str>,
}

impl OpalVerifier {
    pub fn new(chain_id: &str) -> Self {
        Self {
            chain_id: Arc::from(chain_id),
        }
    }
}

fn result(ok: bool) -> Result<VerificationResult, SigningError> {
    Ok(VerificationResult::from_bool(ok))
}

#[async_trait]
impl Verifier<OpalContext> for OpalVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        result(
            public_key
                .verify(&vote_sign_bytes(&self.chain_id, vote), signature)
                .is_ok(),
        )
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        result(
            public_key
                .verify(&proposal_sign_bytes(&self.chain_id, proposal), signature)
                .is_ok(),
        )
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<OpalContext>,
        extension: &Vec<u8>,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        result(
            public_key
                .verify(
                    &extension_sign_bytes(&self.chain_id, scope, extension),
                    signature,
                )
                .is_ok(),
        )
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<OpalContext>,
    ) -> Result<VerificationResult, SigningError> {
        let Ok(pk) = <[u8; 32]>::try_from(proof.public_key.as_slice()) else {
            return result(false);
        };
        let Ok(pk) = PublicKey::from_bytes(pk) else {
            return result(false);
        };
        result(pk.verify(&proof.preimage(), &proof.signature).is_ok())
    }
}

/// Signs engine messages with this validator's key.
#[derive(Clone)]
pub struct OpalSigner {
    key: PrivateKey,
    chain_id: Arc<str>,
}

impl std::fmt::Debug for OpalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpalSigner({})", self.address())
    }
}

impl OpalSigner {
    pub fn new(seed: [u8; 32], chain_id: &str) -> Self {
        Self {
            key: PrivateKey::from(seed),
            chain_id: Arc::from(chain_id),
        }
    }

    pub fn address(&self) -> Address {
        Address(*self.key.public_key().as_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    pub fn sign_raw(&self, msg: &[u8]) -> Signature {
        self.key.sign(msg)
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
}

#[async_trait]
impl Signer<OpalContext> for OpalSigner {
    async fn sign_vote(
        &self,
        vote: Vote,
    ) -> Result<SignedMessage<OpalContext, Vote>, SigningError> {
        let sig = self.key.sign(&vote_sign_bytes(&self.chain_id, &vote));
        Ok(SignedMessage::new(vote, sig))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<OpalContext, Proposal>, SigningError> {
        let sig = self
            .key
            .sign(&proposal_sign_bytes(&self.chain_id, &proposal));
        Ok(SignedMessage::new(proposal, sig))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<OpalContext>,
        extension: Vec<u8>,
    ) -> Result<SignedMessage<OpalContext, Vec<u8>>, SigningError> {
        let sig = self
            .key
            .sign(&extension_sign_bytes(&self.chain_id, &scope, &extension));
        Ok(SignedMessage::new(extension, sig))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<OpalContext>, SigningError> {
        let preimage = ValidatorProof::<OpalContext>::signing_bytes(&public_key, &peer_id);
        let sig = self.key.sign(&preimage);
        Ok(ValidatorProof::new(public_key, peer_id, sig))
    }
}
