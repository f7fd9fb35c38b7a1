//! One Conv2d layer as a matrix product over im2col: with `P = out_h * out_w` output positions
//! and `T = in_ch * kh * kw` taps, `y[o * P + p] = bias[o] + sum_t W[o][t] * X[p][t]` where
//! `X[p][t]` is the input value under tap `t` at position `p` (0 outside the input).
//! `a = ceil log2 out_ch`, `pb = ceil log2 P`, `cb = ceil log2 T`:
//! 1. `r_o = challenge("conv-row") x a`, `r_p = challenge("conv-pos") x pb`;
//! 2. claim `sum_{o,p} eq(r_o, o) eq(r_p, p) (y[o P + p] - bias[o])`;
//! 3. sum-check over `t` (degree 2, `cb` rounds) of `A(t) B(t)` with
//!    `A(t) = sum_o eq(r_o, o) W[o][t]` and `B(t) = sum_p eq(r_p, p) X[p][t]`;
//! 4. final: `~W(r_o, r') * ~X(r_p, r') == claim`. `~X` is computed by the verifier from the clear
//!    input (`O(P T)`); `~W` from the weights (v1) or by opening the weight commitment (v1c): the
//!    weight table is `out_ch x T` row-major, the same layout as a Dense layer's.

use crate::error::ZkError;
use crate::field::{ef_from_i64, f_from_i64, EF, F};
use crate::mle::{eq_table, log2_ceil};
use crate::sumcheck::{self, SumcheckProof};
use crate::transcript::Transcript;
use opal_quant::Conv2d;
use p3_field::PrimeCharacteristicRing;

/// `(a, pb, cb)`.
pub fn dims(c: &Conv2d) -> (usize, usize, usize) {
    let (oh, ow) = c.out_hw();
    (
        log2_ceil(c.out_ch as usize),
        log2_ceil(oh * ow),
        log2_ceil(taps(c)),
    )
}

fn taps(c: &Conv2d) -> usize {
    (c.in_ch * c.kh * c.kw) as usize
}

/// The im2col matrix, `P x T` row-major.
fn im2col(c: &Conv2d, x: &[i64]) -> Vec<i64> {
    let (oh, ow) = c.out_hw();
    let (ih, iw, s, p) = (c.in_h as i64, c.in_w as i64, c.stride as i64, c.pad as i64);
    let mut out = Vec::with_capacity(oh * ow * taps(c));
    for i in 0..oh as i64 {
        for j in 0..ow as i64 {
            for ch in 0..c.in_ch as i64 {
                for u in 0..c.kh as i64 {
                    for v in 0..c.kw as i64 {
                        let (r, col) = (i * s + u - p, j * s + v - p);
                        let inside = r >= 0 && r < ih && col >= 0 && col < iw;
                        out.push(if inside {
                            x[((ch * ih + r) * iw + col) as usize]
                        } else {
                            0
                        });
                    }
                }
            }
        }
    }
    out
}

/// `sum_rows eq[row] * M[row][t]` for every `t`, zero-padded to `2^cb`.
fn fold<T: Copy>(m: &[T], cols: usize, eq: &[EF], cb: usize, to_f: impl Fn(T) -> F) -> Vec<EF> {
    let mut acc = vec![EF::ZERO; 1 << cb];
    for (row, e) in m.chunks_exact(cols).zip(eq) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += *e * to_f(*v);
        }
    }
    acc
}

#[cfg(feature = "prover")]
pub fn prove_with_point(
    t: &mut Transcript,
    c: &Conv2d,
    x: &[i64],
) -> (SumcheckProof, Vec<EF>, Vec<EF>) {
    let (a, pb, cb) = dims(c);
    let r_o = t.challenges(b"conv-row", a);
    let r_p = t.challenges(b"conv-pos", pb);
    let tt = taps(c);
    let wa = fold(&c.weights, tt, &eq_table(&r_o), cb, |w| {
        f_from_i64(w as i64)
    });
    let xb = fold(&im2col(c, x), tt, &eq_table(&r_p), cb, f_from_i64);
    let (proof, point, _, _) = sumcheck::prove(t, wa, xb);
    (proof, r_o, point)
}

/// Verifier up to the weight evaluation: runs the sum-check and computes `~X(r_p, r')`; returns
/// `(r_o, r', final, x_eval)`; the caller must check `~W(r_o, r') * x_eval == final`.
pub fn reduce(
    t: &mut Transcript,
    layer: usize,
    c: &Conv2d,
    x: &[i64],
    y: &[i64],
    proof: &SumcheckProof,
) -> Result<(Vec<EF>, Vec<EF>, EF, EF), ZkError> {
    let (a, pb, cb) = dims(c);
    let r_o = t.challenges(b"conv-row", a);
    let r_p = t.challenges(b"conv-pos", pb);
    let (oh, ow) = c.out_hw();
    let npos = oh * ow;
    let (eq_o, eq_p) = (eq_table(&r_o), eq_table(&r_p));
    let mut claim = EF::ZERO;
    for (o, (eo, b)) in eq_o.iter().zip(&c.bias).enumerate() {
        let row: EF = eq_p
            .iter()
            .zip(&y[o * npos..(o + 1) * npos])
            .map(|(e, v)| *e * ef_from_i64(*v - *b as i64))
            .sum();
        claim += *eo * row;
    }
    let (point, fin) = sumcheck::verify(t, layer, proof, cb, claim)?;
    let xb = fold(&im2col(c, x), taps(c), &eq_p, cb, f_from_i64);
    let x_eval: EF = xb.iter().zip(&eq_table(&point)).map(|(a, e)| *a * *e).sum();
    Ok((r_o, point, fin, x_eval))
}

/// `~W(r_o, r')` from the weights (v1).
pub fn weight_eval(c: &Conv2d, r_o: &[EF], point: &[EF]) -> EF {
    let (_, _, cb) = dims(c);
    let wa = fold(&c.weights, taps(c), &eq_table(r_o), cb, |w| {
        f_from_i64(w as i64)
    });
    wa.iter().zip(&eq_table(point)).map(|(a, e)| *a * *e).sum()
}

/// The weights as a `2^a x 2^cb` zero-padded row-major table.
pub fn weight_table(c: &Conv2d) -> Vec<F> {
    let (a, _, cb) = dims(c);
    let mut t = vec![F::ZERO; 1 << (a + cb)];
    for (o, row) in c.weights.chunks_exact(taps(c)).enumerate() {
        for (j, w) in row.iter().enumerate() {
            t[(o << cb) + j] = f_from_i64(*w as i64);
        }
    }
    t
}
