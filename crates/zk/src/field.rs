//! Field choices: Goldilocks `p = 2^64 - 2^32 + 1` for witness values and weights, its
//! degree-2 binomial extension (`|EF| = p^2 ≈ 2^128`) for every challenge and prover message.

use p3_field::extension::BinomialExtensionField;
use p3_field::integers::QuotientMap;
use p3_field::{BasedVectorSpace, PrimeCharacteristicRing, PrimeField64};
pub use p3_goldilocks::Goldilocks as F;

/// The challenge field.
pub type EF = BinomialExtensionField<F, 2>;

/// Bytes of one encoded [`EF`] element (two canonical little-endian u64 coordinates).
pub const EF_BYTES: usize = 16;

/// log2 |EF| (exact enough for soundness bookkeeping: p^2 > 2^127.99).
pub const LOG2_EF: f64 = 127.999_999_999_3;

/// Embeds a signed integer (|x| < p/2) into F.
pub fn f_from_i64(x: i64) -> F {
    F::from_int(x)
}

pub fn ef_from_i64(x: i64) -> EF {
    EF::from(F::from_int(x))
}

pub fn ef_to_bytes(x: &EF) -> [u8; EF_BYTES] {
    let c: &[F] = x.as_basis_coefficients_slice();
    let mut out = [0u8; EF_BYTES];
    out[..8].copy_from_slice(&c[0].as_canonical_u64().to_le_bytes());
    out[8..].copy_from_slice(&c[1].as_canonical_u64().to_le_bytes());
    out
}

/// Decodes a canonical encoding (each coordinate `< p`); `None` otherwise.
pub fn ef_from_bytes(b: &[u8]) -> Option<EF> {
    if b.len() != EF_BYTES {
        return None;
    }
    let lo = u64::from_le_bytes(b[..8].try_into().ok()?);
    let hi = u64::from_le_bytes(b[8..].try_into().ok()?);
    let c = [
        F::from_canonical_checked(lo)?,
        F::from_canonical_checked(hi)?,
    ];
    EF::from_basis_coefficients_slice(&c)
}

/// Reduces 16 uniformly random bytes per coordinate into an EF element: every value has
/// probability at most `(1 + 2^-64) / p` per coordinate.
pub fn ef_from_uniform(b: &[u8; 32]) -> EF {
    let lo = u128::from_le_bytes(b[..16].try_into().unwrap_or([0; 16]));
    let hi = u128::from_le_bytes(b[16..].try_into().unwrap_or([0; 16]));
    let c = [F::from_int(lo), F::from_int(hi)];
    EF::from_basis_coefficients_slice(&c).unwrap_or(EF::ZERO)
}
