//! The content address of an artifact: the plain BLAKE3 hash of its bytes.

use crate::error::ArtifactError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The content address of an artifact: `blake3::hash` of the file's bytes, unkeyed and with
/// no domain separation, so the `b3sum` tool computes the same value.
///
/// Shown, parsed and serialized as 64 lowercase hexadecimal characters. Parsing also accepts
/// uppercase digits and normalises them; anything else is [`ArtifactError::BadHash`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactHash(pub [u8; 32]);

impl ArtifactHash {
    /// The hash of `bytes`, as an artifact of exactly those bytes would be addressed.
    pub fn of_bytes(bytes: &[u8]) -> ArtifactHash {
        ArtifactHash(*blake3::hash(bytes).as_bytes())
    }

    /// Parses 64 hexadecimal characters (either case).
    pub fn from_hex(s: &str) -> Result<ArtifactHash, ArtifactError> {
        let bad = |why: &str| ArtifactError::BadHash {
            input: shorten(s),
            reason: why.to_string(),
        };
        if s.len() != 64 {
            return Err(bad(&format!(
                "expected 64 hexadecimal characters, got {}",
                s.len()
            )));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad("not hexadecimal"))?;
        Ok(ArtifactHash(out))
    }

    /// The 64-character lowercase hexadecimal form, also the file name on disk.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Keeps error messages short when someone sends a very long "hash".
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        s.to_string()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

impl From<blake3::Hash> for ArtifactHash {
    fn from(h: blake3::Hash) -> Self {
        ArtifactHash(*h.as_bytes())
    }
}

impl FromStr for ArtifactHash {
    type Err = ArtifactError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ArtifactHash::from_hex(s)
    }
}

impl fmt::Display for ArtifactHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ArtifactHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactHash({})", self.to_hex())
    }
}

impl Serialize for ArtifactHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ArtifactHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ArtifactHash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}
