//! BLAKE3 hashes with domain separation.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A 32-byte BLAKE3 digest.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

/// The kinds of object Opal hashes or signs. Each has its own BLAKE3 derive-key context, so the
/// same bytes hashed under two domains give unrelated digests (registered in `opal-domains`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Transaction id: hash of the whole signed transaction.
    TxId,
    /// What a transaction's signer signs: the transaction body.
    TxSign,
    /// Block header hash (the block id).
    BlockHeader,
    /// Leaves and inner nodes of the transaction Merkle root.
    MerkleLeaf,
    MerkleNode,
    /// Address derivation from a public key.
    Address,
    /// Identity of a piece of misbehaviour evidence.
    Evidence,
    /// What a caller signs: an inference request.
    RequestSign,
    /// The request id: hash of the signed request.
    RequestId,
    /// What an inference node signs: a receipt body.
    ReceiptSign,
    /// The receipt id: hash of the signed receipt.
    ReceiptId,
    /// The inputs or outputs of one inference: the list of their tensor hashes.
    TensorList,
    /// What a caller signs: a standing spend grant (an API key).
    GrantSign,
    /// A grant's id: hash of the signed grant.
    GrantId,
    /// The seed that picks which receipts are audited and by whom.
    AuditSeed,
}

impl Domain {
    pub const fn context(self) -> &'static str {
        match self {
            Domain::TxId => opal_domains::derive::TX_ID,
            Domain::TxSign => opal_domains::derive::TX_SIGN,
            Domain::BlockHeader => opal_domains::derive::BLOCK_HEADER,
            Domain::MerkleLeaf => opal_domains::derive::MERKLE_LEAF,
            Domain::MerkleNode => opal_domains::derive::MERKLE_NODE,
            Domain::Address => opal_domains::derive::ADDRESS,
            Domain::Evidence => opal_domains::derive::EVIDENCE,
            Domain::RequestSign => opal_domains::derive::REQUEST_SIGN,
            Domain::RequestId => opal_domains::derive::REQUEST_ID,
            Domain::ReceiptSign => opal_domains::derive::RECEIPT_SIGN,
            Domain::ReceiptId => opal_domains::derive::RECEIPT_ID,
            Domain::TensorList => opal_domains::derive::TENSOR_LIST,
            Domain::GrantSign => opal_domains::derive::GRANT_SIGN,
            Domain::GrantId => opal_domains::derive::GRANT_ID,
            Domain::AuditSeed => opal_domains::derive::AUDIT_SEED,
        }
    }
}

impl Hash {
    pub const ZERO: Hash = Hash([0u8; 32]);

    /// Hash `bytes` under `domain`.
    pub fn of(domain: Domain, bytes: &[u8]) -> Hash {
        let mut h = blake3::Hasher::new_derive_key(domain.context());
        h.update(bytes);
        Hash(*h.finalize().as_bytes())
    }

    /// Hash several byte strings under `domain`, each prefixed by its length (unambiguous).
    pub fn of_parts(domain: Domain, parts: &[&[u8]]) -> Hash {
        let mut h = blake3::Hasher::new_derive_key(domain.context());
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Hash(*h.finalize().as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes as a little-endian integer (a draw from a seed).
    pub fn le_u64(&self) -> u64 {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, g, h])
    }

    /// The first 16 bytes as a little-endian integer (a draw from a seed).
    pub fn le_u128(&self) -> u128 {
        let mut x = [0u8; 16];
        x.copy_from_slice(&self.0[..16]);
        u128::from_le_bytes(x)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Hash, String> {
        let v = hex::decode(s.trim_start_matches("0x")).map_err(|e| format!("invalid hex: {e}"))?;
        let arr: [u8; 32] = v
            .try_into()
            .map_err(|v: Vec<u8>| format!("expected 32 bytes, got {}", v.len()))?;
        Ok(Hash(arr))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}
