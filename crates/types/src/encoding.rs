//! The canonical binary encoding (borsh) and bounded decoding of untrusted bytes.

use borsh::{BorshDeserialize, BorshSerialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input too large: {got} bytes, limit {limit}")]
    TooLarge { got: usize, limit: usize },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("non-canonical encoding of {what}")]
    NonCanonical { what: &'static str },
}

/// Canonical bytes of `v`. Serializing these types into a Vec cannot fail.
#[allow(clippy::expect_used)] // writing into a Vec has no I/O error, and Opal types have no failing fields
pub fn encode<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("borsh serialization into a Vec is infallible for Opal types")
}

/// Decode untrusted `bytes` as a `T`: refuse more than `limit` bytes before reading anything,
/// refuse trailing bytes, and refuse any encoding that does not re-encode to the same bytes
/// (so every value has exactly one accepted encoding and hashes cannot be malleated).
pub fn decode<T: BorshSerialize + BorshDeserialize>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            got: bytes.len(),
            limit,
        });
    }
    let v: T = borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if encode(&v) != bytes {
        return Err(DecodeError::NonCanonical { what });
    }
    Ok(v)
}
