//! Multilinear extensions over the Boolean hypercube. Variable order is big-endian: point
//! coordinate `r[0]` binds the most significant bit of the table index.

use crate::field::{EF, F};
use p3_field::PrimeCharacteristicRing;

/// `eq(r, b)` for every `b` in `{0,1}^n`, indexed big-endian (length `2^n`).
pub fn eq_table(r: &[EF]) -> Vec<EF> {
    let mut t = vec![EF::ONE];
    for ri in r {
        let mut next = Vec::with_capacity(t.len() * 2);
        for v in &t {
            let hi = *v * *ri;
            next.push(*v - hi);
            next.push(hi);
        }
        t = next;
    }
    t
}

/// Evaluates the MLE of `vals` (zero-padded to `2^r.len()`) at `r`.
pub fn evaluate(vals: &[EF], r: &[EF]) -> EF {
    eq_table(r).iter().zip(vals).map(|(e, v)| *e * *v).sum()
}

/// Evaluates the MLE of base-field `vals` (zero-padded) at `r`.
pub fn evaluate_base(vals: &[F], r: &[EF]) -> EF {
    eq_table(r).iter().zip(vals).map(|(e, v)| *e * *v).sum()
}

/// Smallest `n` with `2^n >= len` (0 for len <= 1).
pub fn log2_ceil(len: usize) -> usize {
    len.next_power_of_two().trailing_zeros() as usize
}
