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
/// same bytes hashed under two domains give unrelated digests.
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
            Domain::TxId => "opal 2026 tx id v1",
            Domain::TxSign => "opal 2026 tx sign v1",
            Domain::BlockHeader => "opal 2026 block header v1",
            Domain::MerkleLeaf => "opal 2026 merkle leaf v1",
            Domain::MerkleNode => "opal 2026 merkle node v1",
            Domain::Address => "opal 2026 address v1",
            Domain::Evidence => "opal 2026 evidence v1",
            Domain::RequestSign => "opal 2026 inference request sign v1",
            Domain::RequestId => "opal 2026 inference request id v1",
            Domain::ReceiptSign => "opal 2026 receipt sign v1",
            Domain::ReceiptId => "opal 2026 receipt id v1",
            Domain::TensorList => "opal 2026 tensor list v1",
            Domain::GrantSign => "opal 2026 spend grant sign v1",
            Domain::GrantId => "opal 2026 spend grant id v1",
            Domain::AuditSeed => "opal 2026 audit seed v1",
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
