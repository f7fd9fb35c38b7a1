//! Token amounts: unsigned integers in base units with checked arithmetic only.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// `floor(a × b / c)`, exact: the product is taken in 256 bits, so it never overflows on the
/// way; `None` if `c` is 0 or the quotient does not fit in a `u128`. For rates and shares
/// (emission over a long gap, reward per share) where `a × b` may exceed 128 bits.
pub fn mul_div_floor(a: u128, b: u128, c: u128) -> Option<u128> {
    if c == 0 {
        return None;
    }
    if let Some(p) = a.checked_mul(b) {
        return Some(p / c);
    }
    const LO: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & LO);
    let (b1, b0) = (b >> 64, b & LO);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    // The product as (hi, lo) halves of 128 bits.
    let mid = (p00 >> 64) + (p01 & LO) + (p10 & LO);
    let lo = (p00 & LO) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    if hi >= c {
        return None; // the quotient is at least 2^128
    }
    // Long division of (hi, lo) by c, one bit at a time; the remainder starts at hi < c.
    let (mut rem, mut q) = (hi, 0u128);
    for i in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((lo >> i) & 1);
        if carry == 1 || rem >= c {
            rem = rem.wrapping_sub(c);
            q |= 1 << i;
        }
    }
    Some(q)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_floor_is_exact_past_128_bits() {
        // Agrees with u128 arithmetic where that does not overflow.
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (a, b, c) = (x >> 70, (x >> 7) & 0xffff_ffff_ffff, (x & 0xffff_ffff) + 1);
            assert_eq!(mul_div_floor(a, b, c), Some(a * b / c));
        }
        // Past 128 bits: (2^100 × 2^60) / 2^40 = 2^120; (MAX × MAX) / MAX = MAX.
        assert_eq!(mul_div_floor(1 << 100, 1 << 60, 1 << 40), Some(1 << 120));
        assert_eq!(
            mul_div_floor(u128::MAX, u128::MAX, u128::MAX),
            Some(u128::MAX)
        );
        assert_eq!(mul_div_floor(u128::MAX, 3, 3), Some(u128::MAX));
        assert_eq!(mul_div_floor(1 << 127, 3, 2), Some(3 << 126));
        // floor((2^128 - 1) × 2^100 / (2^101 - 7)) = 2^127 + 469762047 (by exact arithmetic).
        let c = (1u128 << 101) - 7;
        assert_eq!(
            mul_div_floor(u128::MAX, 1 << 100, c),
            Some((1 << 127) + 469_762_047)
        );
        // A quotient over 128 bits, or a zero divisor: None.
        assert_eq!(mul_div_floor(u128::MAX, 2, 1), None);
        assert_eq!(mul_div_floor(u128::MAX, u128::MAX, u64::MAX as u128), None);
        assert_eq!(mul_div_floor(1, 1, 0), None);
    }
}
