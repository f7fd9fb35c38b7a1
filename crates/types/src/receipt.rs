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

/// BLAKE3 derive-key context of one tensor's canonical bytes (`opal_infer::Tensor::hash`).
pub const TENSOR_HASH_CONTEXT: &str = opal_domains::derive::TENSOR;

/// The hash of a list of tensors given their canonical bytes, equal to the node's
/// `tensors_hash` over the decoded tensors: each tensor's hash under
/// [`TENSOR_HASH_CONTEXT`], in order, hashed under [`Domain::TensorList`]. The ledger checks
/// revealed inputs and outputs with it without decoding them.
pub fn tensor_list_hash(canonical: &[Vec<u8>]) -> Hash {
    let hashes: Vec<[u8; 32]> = canonical
        .iter()
        .map(|b| blake3::derive_key(TENSOR_HASH_CONTEXT, b))
        .collect();
    let parts: Vec<&[u8]> = hashes.iter().map(|h| h.as_slice()).collect();
    Hash::of_parts(Domain::TensorList, &parts)
}

/// Receipt envelope format version written by this code.
pub const ENVELOPE_VERSION: u16 = 2;
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
    /// The caller's escalation policy: extra audit probability and disputes.
    pub escalation: Escalation,
}

/// Largest audit rate a caller may ask for, in basis points (100%).
pub const MAX_AUDIT_BPS: u32 = 10_000;
/// Most billable units one receipt may cover (tokens of the longest LLM context, with room).
pub const MAX_UNITS: u64 = 1 << 24;

/// What a caller may ask beyond the chain's defaults (see docs/verification.md): a higher
/// probability that this receipt is audited by re-execution, and the right to dispute it, which
/// holds the payment for the challenge window like the `replay` tier. An audit the caller's rate
/// adds over the chain's base rate is paid by the caller (`audit_fee` from its escrow, to the
/// auditors); the base rate is paid by the treasury.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct Escalation {
    /// Audit probability in basis points; the chain's base rate applies if this is lower.
    pub audit_bps: u32,
    /// Hold the payment for the challenge window so the result can be disputed (`replay` rules).
    pub dispute: bool,
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
            grant: None,
        }
    }

    /// A request composed by the node under the caller's standing [`SignedGrant`] (clients
    /// that cannot sign each request, such as OpenAI clients, present the grant as their API
    /// key). The per-request signature is all zeros; the grant's signature authorizes it.
    pub fn under_grant(self, grant: SignedGrant) -> SignedRequest {
        SignedRequest {
            caller: grant.caller,
            request: self,
            signature: Signature([0; 64]),
            grant: Some(grant),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedRequest {
    pub request: InferenceRequest,
    pub caller: PublicKey,
    pub signature: Signature,
    /// When set, the request was composed by the node under this grant of the caller's, and
    /// `signature` is unused (all zeros).
    pub grant: Option<SignedGrant>,
}

/// Prefix of an API key that carries a [`SignedGrant`].
pub const API_KEY_PREFIX: &str = "opal-grant-";
/// Largest API key accepted (characters).
pub const MAX_API_KEY_LEN: usize = 1024;

/// A caller's standing authorization for one node to charge its escrow, up to `max_total` in
/// all, until `expires_ms`. It is the credential of clients that cannot sign each request: the
/// node composes each request itself, so the caller trusts the node for the requests' content up
/// to `max_total` (the ledger enforces the cap, the chain, the node and the expiry).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SpendGrant {
    pub chain_id: String,
    pub node: Address,
    pub max_total: Amount,
    /// Block time (ms) after which no request may be made under it.
    pub expires_ms: u64,
    /// Random, so two grants with the same terms differ.
    pub salt: u64,
}

impl SpendGrant {
    pub fn sign_digest(&self) -> Hash {
        Hash::of(Domain::GrantSign, &encode(self))
    }

    pub fn sign(self, key: &SecretKey) -> SignedGrant {
        let signature = key.sign(&self.sign_digest().0);
        SignedGrant {
            grant: self,
            caller: key.public_key(),
            signature,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedGrant {
    pub grant: SpendGrant,
    pub caller: PublicKey,
    pub signature: Signature,
}

impl SignedGrant {
    /// The key under which the ledger counts what was charged under this grant.
    pub fn id(&self) -> Hash {
        Hash::of(Domain::GrantId, &encode(self))
    }

    pub fn verify(&self) -> Result<(), CryptoError> {
        self.caller
            .verify(&self.grant.sign_digest().0, &self.signature)
    }

    /// `opal-grant-` followed by the lowercase hex of the borsh bytes.
    pub fn to_api_key(&self) -> String {
        format!("{API_KEY_PREFIX}{}", hex::encode(encode(self)))
    }

    /// Parse and check the signature of an API key (untrusted input: bounded).
    pub fn from_api_key(key: &str) -> Result<SignedGrant, ReceiptError> {
        let key = key.trim();
        if key.len() > MAX_API_KEY_LEN {
            return Err(ReceiptError::Malformed("API key too long".into()));
        }
        let Some(hex_part) = key.strip_prefix(API_KEY_PREFIX) else {
            return Err(ReceiptError::Malformed(format!(
                "API key must start with {API_KEY_PREFIX:?}"
            )));
        };
        let bytes = hex::decode(hex_part)
            .map_err(|e| ReceiptError::Malformed(format!("API key is not hex: {e}")))?;
        let g: SignedGrant = decode("spend grant", &bytes, MAX_API_KEY_LEN)
            .map_err(|e: DecodeError| ReceiptError::Malformed(e.to_string()))?;
        g.verify().map_err(|_| ReceiptError::BadGrantSignature)?;
        Ok(g)
    }
}

impl SignedRequest {
    /// The request id: each id is settled at most once.
    pub fn id(&self) -> Hash {
        Hash::of(Domain::RequestId, &encode(self))
    }

    pub fn caller_address(&self) -> Address {
        self.caller.address()
    }

    /// The caller's authorization: its signature over the request, or its grant (signed by the
    /// caller, for this node and chain, not expired when the request expires).
    pub fn verify(&self) -> Result<(), ReceiptError> {
        match &self.grant {
            None => self
                .caller
                .verify(&self.request.sign_digest().0, &self.signature)
                .map_err(|_| ReceiptError::BadRequestSignature),
            Some(g) => {
                if g.caller != self.caller || self.signature != Signature([0; 64]) {
                    return Err(ReceiptError::BadGrant(
                        "caller or signature does not match the grant".into(),
                    ));
                }
                g.verify().map_err(|_| ReceiptError::BadGrantSignature)?;
                let r = &self.request;
                if g.grant.node != r.node || g.grant.chain_id != r.chain_id {
                    return Err(ReceiptError::BadGrant(
                        "grant is for another node or chain".into(),
                    ));
                }
                if r.expires_ms > g.grant.expires_ms {
                    return Err(ReceiptError::BadGrant(format!(
                        "request expires at {} after the grant ({})",
                        r.expires_ms, g.grant.expires_ms
                    )));
                }
                if r.max_price > g.grant.max_total {
                    return Err(ReceiptError::BadGrant(
                        "request's max price exceeds the grant".into(),
                    ));
                }
                Ok(())
            }
        }
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
    /// The billable units `price` covers, what the model's per-unit royalties are multiplied by
    /// at settlement: 1 for a model call; prompt + completion tokens for an LLM reply (checked
    /// against the revealed tokens when the receipt is audited or disputed).
    pub units: u64,
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
    #[error("the caller's signature over the spend grant is invalid")]
    BadGrantSignature,
    #[error("spend grant: {0}")]
    BadGrant(String),
    #[error("audit rate {0} bps exceeds 10000")]
    BadEscalation(u32),
    #[error("the node's signature over the receipt is invalid")]
    BadNodeSignature,
    #[error("the receipt is signed by {signer}, but the request asked node {node}")]
    WrongNode { node: Address, signer: Address },
    #[error("price {price} exceeds the caller's maximum {max}")]
    PriceAboveMax { price: Amount, max: Amount },
    #[error("billable units {0} out of range (1 to {MAX_UNITS})")]
    BadUnits(u64),
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
        b.request.verify()?;
        if b.request.request.escalation.audit_bps > MAX_AUDIT_BPS {
            return Err(ReceiptError::BadEscalation(
                b.request.request.escalation.audit_bps,
            ));
        }
        if b.node_key.address() != b.request.request.node {
            return Err(ReceiptError::WrongNode {
                node: b.request.request.node,
                signer: b.node_key.address(),
            });
        }
        b.node_key
            .verify(&b.sign_digest().0, &self.signature)
            .map_err(|_| ReceiptError::BadNodeSignature)?;
        if b.units == 0 || b.units > MAX_UNITS {
            return Err(ReceiptError::BadUnits(b.units));
        }
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

/// The `zk` tier's evidence: the inputs and outputs (canonical tensor bytes, which must hash to
/// the receipt's input and output hashes) and the opal-zk proof that `outputs = model(inputs)`
/// for the model's registered weight commitment. It travels in `Action::SettleProved` and, as
/// the bytes of an [`Attachment`] with tier `zk` and version [`ZK_EVIDENCE_VERSION`]
/// (`borsh(ZkEvidence)`), in the caller's receipt file for `opal verify`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ZkEvidence {
    pub inputs: Vec<Vec<u8>>,
    pub outputs: Vec<Vec<u8>>,
    #[serde(with = "hex_bytes")]
    pub proof: Vec<u8>,
}

/// Format version of a `zk` attachment's bytes.
pub const ZK_EVIDENCE_VERSION: u16 = 1;

impl ZkEvidence {
    /// Decode an attachment's bytes (bounded by the envelope limit, canonical).
    pub fn from_bytes(bytes: &[u8]) -> Result<ZkEvidence, ReceiptError> {
        decode("zk evidence", bytes, MAX_ENVELOPE_BYTES)
            .map_err(|e: DecodeError| ReceiptError::Malformed(e.to_string()))
    }

    pub fn to_attachment(&self) -> Attachment {
        Attachment {
            tier: Tier::Zk,
            version: ZK_EVIDENCE_VERSION,
            bytes: encode(self),
        }
    }
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

/// The record of a paid receipt, kept by the ledger under `infer/settled/<request id>` (the key
/// `opal_verify::settlement::settled_key` builds). A light client proves it against a certified
/// state root to learn that a receipt was paid, once, for what it says.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Settled {
    /// Hash of the signed receipt that was paid.
    pub receipt_id: Hash,
    pub caller: Address,
    pub node: Address,
    pub model: ModelRef,
    pub tier: Tier,
    pub price: Amount,
    pub output_hash: Hash,
    /// Height of the block that settled it.
    pub height: u64,
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
            escalation: Escalation::default(),
        }
        .sign(caller);
        ReceiptBody {
            request: req,
            output_hash: Hash([3; 32]),
            price: Amount(90),
            units: 1,
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
