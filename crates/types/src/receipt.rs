//! Inference requests and receipts: the portable, versioned envelope every tier uses.
//!
//! The flow: a caller signs an [`InferenceRequest`] naming the node, the model version and its
//! content hash, the hash of the input, the tier and the most it will pay. The node runs the model
//! and signs a [`ReceiptBody`] that embeds the signed request and binds the output hash, the price
//! and the chain height it saw. The [`ReceiptEnvelope`] carries the signed receipt plus tier
//! evidence attachments (a zk proof, an activation commitment, an enclave quote...), which can be
//! produced after the reply (a proof in the background) and are bound to the receipt by its id.
//!
//! Signatures: the caller signs `BLAKE3-derive("opal 2026 inference request sign v1",
//! borsh(request))`; the node signs `BLAKE3-derive("opal 2026 receipt sign v1", borsh(body))`.
//! The request id (the key under which the ledger marks a receipt settled) is a hash of the signed
//! request, so one request can be paid at most once.

use crate::amount::Amount;
use crate::crypto::{Address, CryptoError, PublicKey, SecretKey, Signature};
use crate::encoding::{decode, encode, DecodeError};
use crate::hash::{Domain, Hash};
use crate::registry::{ModelRef, Tier};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// Receipt envelope format version written by this code.
pub const ENVELOPE_VERSION: u16 = 1;
/// Largest envelope accepted (a zk proof attachment included).
pub const MAX_ENVELOPE_BYTES: usize = 4 << 20;
/// Most attachments in one envelope.
pub const MAX_ATTACHMENTS: usize = 8;

/// What a caller asks and signs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct InferenceRequest {
    pub chain_id: String,
    /// The node asked to serve (its account address).
    pub node: Address,
    pub model: ModelRef,
    /// The registered content hash of the model version (so the caller names exact bytes).
    pub model_hash: Hash,
    /// Hash of the input tensor's canonical bytes (`opal_infer::Tensor::hash`).
    pub input_hash: Hash,
    pub tier: Tier,
    /// The most the caller pays for this inference (node fee, model price and licence fee).
    pub max_price: Amount,
    /// Declared purpose, checked against non-commercial licences.
    pub commercial: bool,
    /// A value unique among the caller's requests (random), so two identical calls differ.
    pub salt: u64,
    /// Block time (ms) after which the node must not serve it.
    pub expires_ms: u64,
}

impl InferenceRequest {
    pub fn sign_digest(&self) -> Hash {
        Hash::of(Domain::RequestSign, &encode(self))
    }

    pub fn sign(self, key: &SecretKey) -> SignedRequest {
        let signature = key.sign(&self.sign_digest().0);
        SignedRequest {
            request: self,
            caller: key.public_key(),
            signature,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedRequest {
    pub request: InferenceRequest,
    pub caller: PublicKey,
    pub signature: Signature,
}

impl SignedRequest {
    /// The request id: each id is settled at most once.
    pub fn id(&self) -> Hash {
        Hash::of(Domain::RequestId, &encode(self))
    }

    pub fn caller_address(&self) -> Address {
        self.caller.address()
    }

    pub fn verify(&self) -> Result<(), CryptoError> {
        self.caller
            .verify(&self.request.sign_digest().0, &self.signature)
    }
}

/// What the node signs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ReceiptBody {
    pub request: SignedRequest,
    /// Hash of the output tensors' canonical bytes.
    pub output_hash: Hash,
    /// What the caller is charged (at most `request.max_price`).
    pub price: Amount,
    /// The committed chain height the node saw when it served the request.
    pub height: u64,
    /// The node's key; its address must equal `request.node`.
    pub node_key: PublicKey,
}

impl ReceiptBody {
    pub fn sign_digest(&self) -> Hash {
        Hash::of(Domain::ReceiptSign, &encode(self))
    }

    pub fn sign(self, key: &SecretKey) -> Receipt {
        let signature = key.sign(&self.sign_digest().0);
        Receipt {
            body: self,
            signature,
        }
    }
}

/// A signed receipt: what settles on chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Receipt {
    pub body: ReceiptBody,
    pub signature: Signature,
}

/// Why a receipt does not check out on its own (no chain state needed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ReceiptError {
    #[error("the caller's signature over the request is invalid")]
    BadRequestSignature,
    #[error("the node's signature over the receipt is invalid")]
    BadNodeSignature,
    #[error("the receipt is signed by {signer}, but the request asked node {node}")]
    WrongNode { node: Address, signer: Address },
    #[error("price {price} exceeds the caller's maximum {max}")]
    PriceAboveMax { price: Amount, max: Amount },
    #[error("unsupported envelope version {0} (this build reads version {ENVELOPE_VERSION})")]
    Version(u16),
    #[error("too many attachments: {0} (at most {MAX_ATTACHMENTS})")]
    TooManyAttachments(usize),
    #[error("malformed receipt: {0}")]
    Malformed(String),
}

impl Receipt {
    /// The id of the request this receipt answers (the settlement key).
    pub fn request_id(&self) -> Hash {
        self.body.request.id()
    }

    /// The receipt's own id (hash of the signed receipt).
    pub fn id(&self) -> Hash {
        Hash::of(Domain::ReceiptId, &encode(self))
    }

    pub fn node(&self) -> Address {
        self.body.request.request.node
    }

    /// Every check that needs no chain state: both signatures, node identity, price bound.
    pub fn verify(&self) -> Result<(), ReceiptError> {
        let b = &self.body;
        b.request
            .verify()
            .map_err(|_| ReceiptError::BadRequestSignature)?;
        if b.node_key.address() != b.request.request.node {
            return Err(ReceiptError::WrongNode {
                node: b.request.request.node,
                signer: b.node_key.address(),
            });
        }
        b.node_key
            .verify(&b.sign_digest().0, &self.signature)
            .map_err(|_| ReceiptError::BadNodeSignature)?;
        if b.price > b.request.request.max_price {
            return Err(ReceiptError::PriceAboveMax {
                price: b.price,
                max: b.request.request.max_price,
            });
        }
        Ok(())
    }
}

/// Tier evidence carried next to a receipt. Produced by the node (possibly after the reply) and
/// checked by validators before settlement and by `opal verify`; each tier defines its bytes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Attachment {
    pub tier: Tier,
    /// Tier-specific format version.
    pub version: u16,
    #[serde(with = "hex_bytes")]
    pub bytes: Vec<u8>,
}

/// The portable receipt: what `opal infer` saves and `opal verify` reads.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ReceiptEnvelope {
    pub version: u16,
    pub receipt: Receipt,
    pub attachments: Vec<Attachment>,
}

impl ReceiptEnvelope {
    pub fn new(receipt: Receipt) -> ReceiptEnvelope {
        ReceiptEnvelope {
            version: ENVELOPE_VERSION,
            receipt,
            attachments: vec![],
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decode untrusted bytes (bounded, canonical), then check the version.
    pub fn from_bytes(bytes: &[u8]) -> Result<ReceiptEnvelope, ReceiptError> {
        let e: ReceiptEnvelope = decode("receipt envelope", bytes, MAX_ENVELOPE_BYTES)
            .map_err(|e: DecodeError| ReceiptError::Malformed(e.to_string()))?;
        if e.version != ENVELOPE_VERSION {
            return Err(ReceiptError::Version(e.version));
        }
        if e.attachments.len() > MAX_ATTACHMENTS {
            return Err(ReceiptError::TooManyAttachments(e.attachments.len()));
        }
        Ok(e)
    }

    /// The offline check: the receipt's signatures and bounds. Tier attachments are checked by
    /// the tier's own verifier (the `signed` tier has none).
    pub fn verify(&self) -> Result<(), ReceiptError> {
        if self.version != ENVELOPE_VERSION {
            return Err(ReceiptError::Version(self.version));
        }
        self.receipt.verify()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(caller: &SecretKey, node: &SecretKey) -> Receipt {
        let req = InferenceRequest {
            chain_id: "opal-test".into(),
            node: node.address(),
            model: ModelRef::new("digits", 1),
            model_hash: Hash([1; 32]),
            input_hash: Hash([2; 32]),
            tier: Tier::Signed,
            max_price: Amount(100),
            commercial: false,
            salt: 7,
            expires_ms: 1_000,
        }
        .sign(caller);
        ReceiptBody {
            request: req,
            output_hash: Hash([3; 32]),
            price: Amount(90),
            height: 5,
            node_key: node.public_key(),
        }
        .sign(node)
    }

    #[test]
    fn receipts_verify_and_round_trip() {
        let caller = SecretKey::from_seed([1; 32]);
        let node = SecretKey::from_seed([2; 32]);
        let r = sample(&caller, &node);
        r.verify().unwrap();
        let env = ReceiptEnvelope::new(r.clone());
        let back = ReceiptEnvelope::from_bytes(&env.to_bytes()).unwrap();
        assert_eq!(back, env);
        back.verify().unwrap();
        assert_ne!(r.request_id(), r.id());
    }

    #[test]
    fn tampering_is_detected() {
        let caller = SecretKey::from_seed([1; 32]);
        let node = SecretKey::from_seed([2; 32]);
        let r = sample(&caller, &node);

        let mut t = r.clone();
        t.body.output_hash = Hash([9; 32]);
        assert_eq!(t.verify(), Err(ReceiptError::BadNodeSignature));

        let mut t = r.clone();
        t.body.request.request.max_price = Amount(1_000);
        assert_eq!(t.verify(), Err(ReceiptError::BadRequestSignature));

        // Signed by another node than the one asked.
        let other = SecretKey::from_seed([3; 32]);
        let mut body = r.body.clone();
        body.node_key = other.public_key();
        assert!(matches!(
            body.sign(&other).verify(),
            Err(ReceiptError::WrongNode { .. })
        ));

        // Price above the maximum, even when properly signed.
        let mut body = r.body.clone();
        body.price = Amount(101);
        assert!(matches!(
            body.sign(&node).verify(),
            Err(ReceiptError::PriceAboveMax { .. })
        ));

        // Every single-byte change of the envelope is refused or fails verification.
        let bytes = ReceiptEnvelope::new(r).to_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let ok = ReceiptEnvelope::from_bytes(&b).and_then(|e| e.verify());
            assert!(ok.is_err(), "flipping byte {i} went unnoticed");
        }
        assert!(ReceiptEnvelope::from_bytes(&[0xff; 64]).is_err());
        assert!(ReceiptEnvelope::from_bytes(&[]).is_err());
    }
}
