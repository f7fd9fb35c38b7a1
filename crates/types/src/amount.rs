//! Token amounts: unsigned integers in base units with checked arithmetic only.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An amount of the native token in base units. There is no floating point anywhere near it,
/// and every operation is checked. In JSON it is a decimal string (u128 does not fit a JS number).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Amount(pub u128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount overflow: {a} + {b}")]
    Overflow { a: u128, b: u128 },
    #[error("amount underflow: {a} - {b}")]
    Underflow { a: u128, b: u128 },
    #[error("invalid amount {0:?}: expected a non-negative integer in base units")]
    Parse(String),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn checked_add(self, other: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_add(other.0)
            .map(Amount)
            .ok_or(AmountError::Overflow {
                a: self.0,
                b: other.0,
            })
    }

    pub fn checked_sub(self, other: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_sub(other.0)
            .map(Amount)
            .ok_or(AmountError::Underflow {
                a: self.0,
                b: other.0,
            })
    }

    /// `self × bps / 10_000`, rounded down: the one basis-point rule of the ledger (shares,
    /// slashes, rewards). Overflow is an error, never saturation.
    pub fn checked_bps(self, bps: u32) -> Result<Amount, AmountError> {
        self.0
            .checked_mul(bps as u128)
            .map(|v| Amount(v / 10_000))
            .ok_or(AmountError::Overflow {
                a: self.0,
                b: bps as u128,
            })
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl std::str::FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().replace('_', "");
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Parse(s.to_string()));
        }
        t.parse::<u128>()
            .map(Amount)
            .map_err(|_| AmountError::Parse(s.to_string()))
    }
}

impl From<u64> for Amount {
    fn from(v: u64) -> Self {
        Amount(v as u128)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            S(String),
            N(u64),
        }
        match <Repr as Deserialize>::deserialize(d)? {
            Repr::S(s) => s.parse().map_err(serde::de::Error::custom),
            Repr::N(n) => Ok(Amount(n as u128)),
        }
    }
}
