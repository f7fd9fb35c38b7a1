//! ed25519 keys (ZIP-215 validation), signatures, batch verification and addresses.

use crate::hash::{Domain, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An ed25519 public key, kept as its 32 encoded bytes. Whether the bytes are a valid point is
/// decided at verification time (ZIP-215), so decoding a key never fails on valid-length input.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

/// A 20-byte account address derived from a public key: the first 20 bytes of
/// `BLAKE3-derive("opal 2026 address v1", public_key)`. Written as `opal` followed by 40 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 20]);

/// A secret signing key. Its Debug output never shows the key.
#[derive(Clone)]
pub struct SecretKey(ed25519_consensus::SigningKey);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid signature")]
    BadSignature,
    #[error("invalid public key")]
    BadPublicKey,
    #[error("invalid {what}: {reason}")]
    Parse { what: &'static str, reason: String },
}

impl SecretKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> SecretKey {
        SecretKey(ed25519_consensus::SigningKey::new(rand_core::OsRng))
    }

    /// The key whose 32-byte seed is `seed` (deterministic; used for fixtures and tests).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(ed25519_consensus::SigningKey::from(seed))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verification_key().to_bytes())
    }

    pub fn address(&self) -> Address {
        self.public_key().address()
    }

    /// Sign `msg` (callers pass a domain-separated digest, never raw structures).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }

    pub fn from_hex(s: &str) -> Result<SecretKey, CryptoError> {
        let v = hex::decode(s.trim()).map_err(|e| CryptoError::Parse {
            what: "secret key",
            reason: e.to_string(),
        })?;
        let arr: [u8; 32] = v.try_into().map_err(|v: Vec<u8>| CryptoError::Parse {
            what: "secret key",
            reason: format!("expected 32 bytes, got {}", v.len()),
        })?;
        Ok(SecretKey::from_seed(arr))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key())
    }
}

impl PublicKey {
    pub fn address(&self) -> Address {
        let h = Hash::of(Domain::Address, &self.0);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h.0[..20]);
        Address(a)
    }

    /// Verify `sig` over `msg` with ZIP-215 rules.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        let vk = ed25519_consensus::VerificationKey::try_from(self.0)
            .map_err(|_| CryptoError::BadPublicKey)?;
        let s = ed25519_consensus::Signature::from(sig.0);
        vk.verify(&s, msg).map_err(|_| CryptoError::BadSignature)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<PublicKey, CryptoError> {
        let v = hex::decode(s.trim()).map_err(|e| CryptoError::Parse {
            what: "public key",
            reason: e.to_string(),
        })?;
        let arr: [u8; 32] = v.try_into().map_err(|v: Vec<u8>| CryptoError::Parse {
            what: "public key",
            reason: format!("expected 32 bytes, got {}", v.len()),
        })?;
        Ok(PublicKey(arr))
    }
}

/// Verify many (key, message, signature) triples at once. Returns `Ok` only if all are valid;
/// on `Err` the caller must fall back to single verification to find the bad ones.
/// Batch verification accepts exactly the signatures single ZIP-215 verification accepts.
pub fn verify_batch<'a>(
    items: impl IntoIterator<Item = (&'a PublicKey, &'a [u8], &'a Signature)>,
) -> Result<(), CryptoError> {
    let mut v = ed25519_consensus::batch::Verifier::new();
    for (pk, msg, sig) in items {
        let vkb = ed25519_consensus::VerificationKeyBytes::from(pk.0);
        v.queue((vkb, ed25519_consensus::Signature::from(sig.0), msg));
    }
    v.verify(rand_core::OsRng)
        .map_err(|_| CryptoError::BadSignature)
}

impl Address {
    pub const PREFIX: &'static str = "opal";

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl std::str::FromStr for Address {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| CryptoError::Parse {
            what: "address",
            reason,
        };
        let rest = s
            .trim()
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| err(format!("{s:?} does not start with \"opal\"")))?;
        let v = hex::decode(rest).map_err(|e| err(format!("{s:?}: {e}")))?;
        let arr: [u8; 20] = v.try_into().map_err(|v: Vec<u8>| {
            err(format!(
                "expected 20 bytes after the prefix, got {}",
                v.len()
            ))
        })?;
        Ok(Address(arr))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

macro_rules! serde_via_str {
    ($t:ty, $to:expr, $from:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&$to(self))
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as Deserialize>::deserialize(d)?;
                $from(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_via_str!(Address, |a: &Address| a.to_string(), |s: &str| s
    .parse::<Address>());
serde_via_str!(PublicKey, |k: &PublicKey| k.to_hex(), PublicKey::from_hex);
serde_via_str!(Signature, |k: &Signature| hex::encode(k.0), |s: &str| {
    let v = hex::decode(s).map_err(|e| e.to_string())?;
    let a: [u8; 64] = v.try_into().map_err(|_| "expected 64 bytes".to_string())?;
    Ok::<_, String>(Signature(a))
});
