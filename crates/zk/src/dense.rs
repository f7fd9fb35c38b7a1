//! One dense layer `y = W x + b` (Thaler's matrix-vector sum-check). With `a = ceil(log2 rows)`
//! and `c = ceil(log2 cols)` (zero padding):
//! 1. verifier challenge `r in EF^a` (from the transcript);
//! 2. claim `~y(r) - ~b(r) = sum_{j in {0,1}^c} ~W(r, j) * ~x(j)`;
//! 3. sum-check over `j` (degree 2, `c` rounds) reduces it to `~W(r, r') * ~x(r') = final`.
//!
//! In v1 the verifier evaluates `~W(r, r')` from the weights it holds (`O(rows*cols)`); in v1c
//! (`committed`) it is an opening of the weight commitment. `~x(r')` comes from the clear `x`.

use crate::error::ZkError;
use crate::field::{ef_from_i64, f_from_i64, EF};
use crate::mle::{eq_table, log2_ceil};
use crate::sumcheck::{self, SumcheckProof};
use crate::transcript::Transcript;
use opal_quant::Dense;
use p3_field::PrimeCharacteristicRing;

pub fn dims(d: &Dense) -> (usize, usize) {
    (log2_ceil(d.rows as usize), log2_ceil(d.cols as usize))
}

/// `sum_i eq_r[i] * W[i][j]` for every column `j`, zero-padded to `2^c`.
fn fold_rows(d: &Dense, eq_r: &[EF], c: usize) -> Vec<EF> {
    let cols = d.cols as usize;
    let mut a = vec![EF::ZERO; 1 << c];
    for (row, e) in d.weights.chunks_exact(cols).zip(eq_r) {
        for (acc, w) in a.iter_mut().zip(row) {
            *acc += *e * f_from_i64(*w as i64);
        }
    }
    a
}

#[cfg(feature = "prover")]
fn padded(x: &[i64], c: usize) -> Vec<EF> {
    let mut v: Vec<EF> = x.iter().map(|v| ef_from_i64(*v)).collect();
    v.resize(1 << c, EF::ZERO);
    v
}

#[cfg(feature = "prover")]
pub fn prove(t: &mut Transcript, d: &Dense, x: &[i64]) -> SumcheckProof {
    let (a, c) = dims(d);
    let r = t.challenges(b"dense-row", a);
    let eq_r = eq_table(&r);
    let (proof, _, _, _) = sumcheck::prove(t, fold_rows(d, &eq_r, c), padded(x, c));
    proof
}

/// Verifier side up to the final check: returns `(r, r', final)` where the caller must check
/// `~W(r, r') * ~x(r') == final`. Does not read `d.weights`.
pub fn reduce(
    t: &mut Transcript,
    layer: usize,
    d: &Dense,
    y: &[i64],
    proof: &SumcheckProof,
) -> Result<(Vec<EF>, Vec<EF>, EF), ZkError> {
    let (a, c) = dims(d);
    let r = t.challenges(b"dense-row", a);
    let eq_r = eq_table(&r);
    let claim: EF = eq_r
        .iter()
        .zip(y.iter().zip(&d.bias))
        .map(|(e, (y, b))| *e * ef_from_i64(*y - *b as i64))
        .sum();
    let (point, fin) = sumcheck::verify(t, layer, proof, c, claim)?;
    Ok((r, point, fin))
}

/// `~x(point)` for a clear vector.
pub fn eval_clear(x: &[i64], point: &[EF]) -> EF {
    x.iter()
        .zip(&eq_table(point))
        .map(|(v, e)| *e * ef_from_i64(*v))
        .sum()
}

/// The weights as a `2^a x 2^c` zero-padded row-major base-field table (its MLE is `~W`).
pub fn weight_table(d: &Dense) -> Vec<crate::field::F> {
    let (a, c) = dims(d);
    let mut t = vec![crate::field::F::ZERO; 1 << (a + c)];
    for (i, row) in d.weights.chunks_exact(d.cols as usize).enumerate() {
        for (j, w) in row.iter().enumerate() {
            t[(i << c) + j] = f_from_i64(*w as i64);
        }
    }
    t
}

/// Full verification with the weights held by the verifier (`O(rows * cols)`).
pub fn verify(
    t: &mut Transcript,
    layer: usize,
    d: &Dense,
    x: &[i64],
    y: &[i64],
    proof: &SumcheckProof,
) -> Result<(), ZkError> {
    let (_, c) = dims(d);
    let (r, point, fin) = reduce(t, layer, d, y, proof)?;
    let eq_r = eq_table(&r);
    let eq_p = eq_table(&point);
    let w_eval: EF = fold_rows(d, &eq_r, c)
        .iter()
        .zip(&eq_p)
        .map(|(a, e)| *a * *e)
        .sum();
    if w_eval * eval_clear(x, &point) != fin {
        return Err(ZkError::SumcheckFinal { layer });
    }
    Ok(())
}

#[cfg(feature = "prover")]
/// Prover side returning the sum-check point too (for opening a weight commitment).
pub fn prove_with_point(
    t: &mut Transcript,
    d: &Dense,
    x: &[i64],
) -> (SumcheckProof, Vec<EF>, Vec<EF>) {
    let (a, c) = dims(d);
    let r = t.challenges(b"dense-row", a);
    let eq_r = eq_table(&r);
    let (proof, point, _, _) = sumcheck::prove(t, fold_rows(d, &eq_r, c), padded(x, c));
    (proof, r, point)
}
