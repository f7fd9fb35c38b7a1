//! Ligero-style multilinear polynomial commitment (transparent, hash-based).
//!
//! A table `f` of `2^n` base-field values is viewed as a `2^n1 x 2^n2` matrix (row-major, so
//! with big-endian MLE variables the first `n1` coordinates pick the row); `n1` is chosen to
//! minimise the opening size ([`split`]). Each row, read as the coefficients of a polynomial of
//! degree `< 2^n2`, is Reed-Solomon encoded at the points `w^q`, `q < 2^(n2 + RATE_LOG)`, with
//! `w = F::two_adic_generator(n2 + RATE_LOG)` (one batched radix-2 DFT from `p3-dft`). Columns of the encoded matrix are Merkle leaves
//! (BLAKE3). Opening at `r = (r1, r2)`:
//! - `gamma = challenge("pcs-gamma") x 2^n1`; prover sends `u_prox = sum_i gamma_i row_i` and
//!   `u_eval = sum_i eq(r1, i) row_i` (absorbed as "pcs-u");
//! - `QUERIES` column indices `challenge_index("pcs-query")`; prover sends each column and its
//!   Merkle path; the verifier checks the path, that `Enc(u_prox)[q] = sum_i gamma_i col_q[i]` and
//!   `Enc(u_eval)[q] = sum_i eq(r1, i) col_q[i]` (evaluating the degree `< 2^n2` polynomial at `q`);
//! - value `f~(r) = sum_k u_eval[k] eq(r2, k)`.

use crate::error::ZkError;
use crate::field::{ef_to_bytes, EF, F};
use crate::mle::eq_table;
use crate::transcript::Transcript;
use p3_dft::{Radix2Dit, TwoAdicSubgroupDft};
use p3_field::{PrimeCharacteristicRing, PrimeField64, TwoAdicField};
use p3_matrix::dense::RowMajorMatrix;

pub const RATE_LOG: usize = 2;
/// Column queries: relative distance of the code is `d = 1 - 2^-RATE_LOG = 3/4`; we take the
/// conservative Ligero bound `(1 - d/3)^QUERIES = (3/4)^256 < 2^-106`.
pub const QUERIES: usize = 256;
pub const MAX_VARS: usize = 30;

type Hash = [u8; 32];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitment {
    pub root: Hash,
    pub n_vars: u8,
}

/// Prover-side data kept after committing (for weights: kept for the model's lifetime). Without
/// the `prover` feature only the commitment is read (the rest is what an opening needs).
#[cfg_attr(not(feature = "prover"), allow(dead_code))]
pub struct Committed {
    pub commitment: Commitment,
    rows: Vec<Vec<F>>,
    /// `2^(n2+RATE_LOG) x 2^n1`, row-major: row `q` is the encoded column `q`.
    encoded: Vec<F>,
    /// `levels[0]` = leaves, last = root.
    levels: Vec<Vec<Hash>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opening {
    pub u_prox: Vec<EF>,
    pub u_eval: Vec<EF>,
    /// One per query: the encoded column (`2^n1` values) and its Merkle path (leaf to root).
    pub columns: Vec<(Vec<F>, Vec<Hash>)>,
}

fn size_for(n1: usize, n: usize) -> usize {
    let n2 = n - n1;
    2 * (1 << n2) * 16 + QUERIES * ((1 << n1) * 8 + (n2 + RATE_LOG) * 32)
}

/// `(n1, n2)`: the row/column split minimising the opening size (smallest `n1` on ties).
pub fn split(n: usize) -> (usize, usize) {
    let n1 = (0..=n)
        .min_by_key(|n1| (size_for(*n1, n), *n1))
        .unwrap_or(0);
    (n1, n - n1)
}

fn query_point(n2: usize, q: usize) -> F {
    F::two_adic_generator(n2 + RATE_LOG).exp_u64(q as u64)
}

fn leaf_hash(col: &[F]) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(opal_domains::derive::ZK_PCS_LEAF);
    col.iter().for_each(|v| {
        h.update(&v.as_canonical_u64().to_le_bytes());
    });
    *h.finalize().as_bytes()
}

fn node_hash(l: &Hash, r: &Hash) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(opal_domains::derive::ZK_PCS_NODE);
    h.update(l);
    h.update(r);
    *h.finalize().as_bytes()
}

/// Evaluates the polynomial with coefficients `c` (low degree first) at `x`.
fn horner<T: Copy + PrimeCharacteristicRing + core::ops::Mul<F, Output = T>>(c: &[T], x: F) -> T {
    c.iter().rev().fold(T::ZERO, |acc, v| acc * x + *v)
}

pub fn commit(values: &[F]) -> Result<Committed, ZkError> {
    if !values.len().is_power_of_two() || values.len() > 1 << MAX_VARS {
        return Err(ZkError::Length {
            what: "pcs table",
            expected: values.len().next_power_of_two(),
            got: values.len(),
        });
    }
    let n = values.len().trailing_zeros() as usize;
    let (n1, n2) = split(n);
    let enc_len = 1usize << (n2 + RATE_LOG);
    let width = 1usize << n1;
    let rows: Vec<Vec<F>> = values.chunks_exact(1 << n2).map(|r| r.to_vec()).collect();
    let mut coeffs = vec![F::ZERO; enc_len * width];
    for (i, row) in rows.iter().enumerate() {
        for (k, v) in row.iter().enumerate() {
            coeffs[k * width + i] = *v;
        }
    }
    let encoded = Radix2Dit::default()
        .dft_batch(RowMajorMatrix::new(coeffs, width))
        .values;
    let leaves: Vec<Hash> = encoded.chunks_exact(width).map(leaf_hash).collect();
    let mut levels = vec![leaves];
    while levels[levels.len() - 1].len() > 1 {
        let prev = &levels[levels.len() - 1];
        levels.push(
            prev.chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect(),
        );
    }
    let root = levels[levels.len() - 1][0];
    Ok(Committed {
        commitment: Commitment {
            root,
            n_vars: n as u8,
        },
        rows,
        encoded,
        levels,
    })
}

fn combos(t: &mut Transcript, rows: usize, r1: &[EF]) -> (Vec<EF>, Vec<EF>) {
    let gamma = t.challenges(b"pcs-gamma", rows);
    (gamma, eq_table(r1))
}

#[cfg(feature = "prover")]
/// Opens the committed table at `point` (length `n_vars`). Returns the value and the opening.
pub fn open(t: &mut Transcript, c: &Committed, point: &[EF]) -> Result<(EF, Opening), ZkError> {
    let n = c.commitment.n_vars as usize;
    if point.len() != n {
        return Err(ZkError::Length {
            what: "pcs point",
            expected: n,
            got: point.len(),
        });
    }
    let (n1, n2) = split(n);
    t.absorb(b"pcs-root", &c.commitment.root);
    let (gamma, eq1) = combos(t, 1 << n1, &point[..n1]);
    let mut u_prox = vec![EF::ZERO; 1 << n2];
    let mut u_eval = vec![EF::ZERO; 1 << n2];
    for ((row, g), e) in c.rows.iter().zip(&gamma).zip(&eq1) {
        for ((up, ue), v) in u_prox.iter_mut().zip(u_eval.iter_mut()).zip(row) {
            *up += *g * *v;
            *ue += *e * *v;
        }
    }
    t.absorb_ef(b"pcs-u", &u_prox);
    t.absorb_ef(b"pcs-u", &u_eval);
    let enc_len = 1usize << (n2 + RATE_LOG);
    let columns = (0..QUERIES)
        .map(|_| {
            let q = t.challenge_index(b"pcs-query", enc_len);
            let w = c.rows.len();
            let col: Vec<F> = c.encoded[q * w..(q + 1) * w].to_vec();
            let path = (0..c.levels.len() - 1)
                .map(|lvl| c.levels[lvl][(q >> lvl) ^ 1])
                .collect();
            (col, path)
        })
        .collect();
    let value = u_eval
        .iter()
        .zip(eq_table(&point[n1..]))
        .map(|(u, e)| *u * e)
        .sum();
    Ok((
        value,
        Opening {
            u_prox,
            u_eval,
            columns,
        },
    ))
}

/// Verifies an opening of `com` at `point`; returns the committed table's MLE value there.
pub fn verify(
    t: &mut Transcript,
    com: &Commitment,
    point: &[EF],
    o: &Opening,
) -> Result<EF, ZkError> {
    let n = com.n_vars as usize;
    if n > MAX_VARS || point.len() != n {
        return Err(ZkError::Length {
            what: "pcs point",
            expected: n.min(MAX_VARS),
            got: point.len(),
        });
    }
    let (n1, n2) = split(n);
    let enc_len = 1usize << (n2 + RATE_LOG);
    let depth = n2 + RATE_LOG;
    if o.u_prox.len() != 1 << n2 || o.u_eval.len() != 1 << n2 || o.columns.len() != QUERIES {
        return Err(ZkError::Length {
            what: "pcs opening",
            expected: 1 << n2,
            got: o.u_eval.len(),
        });
    }
    if o.columns
        .iter()
        .any(|(c, p)| c.len() != 1 << n1 || p.len() != depth)
    {
        return Err(ZkError::Length {
            what: "pcs column",
            expected: 1 << n1,
            got: 0,
        });
    }
    t.absorb(b"pcs-root", &com.root);
    let (gamma, eq1) = combos(t, 1 << n1, &point[..n1]);
    t.absorb_ef(b"pcs-u", &o.u_prox);
    t.absorb_ef(b"pcs-u", &o.u_eval);
    for (k, (col, path)) in o.columns.iter().enumerate() {
        let q = t.challenge_index(b"pcs-query", enc_len);
        let mut h = leaf_hash(col);
        for (lvl, sib) in path.iter().enumerate() {
            h = if (q >> lvl) & 1 == 0 {
                node_hash(&h, sib)
            } else {
                node_hash(sib, &h)
            };
        }
        if h != com.root {
            return Err(ZkError::Pcs {
                query: k,
                what: "Merkle path",
            });
        }
        let x = query_point(n2, q);
        let lin = |w: &[EF]| -> EF { w.iter().zip(col).map(|(a, b)| *a * *b).sum() };
        if horner(&o.u_prox, x) != lin(&gamma) || horner(&o.u_eval, x) != lin(&eq1) {
            return Err(ZkError::Pcs {
                query: k,
                what: "column does not match the combined row",
            });
        }
    }
    Ok(o.u_eval
        .iter()
        .zip(eq_table(&point[n1..]))
        .map(|(u, e)| *u * e)
        .sum())
}

/// Proof size in bytes of one opening for `n_vars` variables.
pub fn opening_bytes(n_vars: usize) -> usize {
    size_for(split(n_vars).0, n_vars)
}

impl Opening {
    /// Encoding: `u_prox`, `u_eval` (16-byte EF each), then per query the column (8-byte
    /// canonical F each) and the path (32-byte hashes). Length is `opening_bytes(n_vars)`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.u_prox
            .iter()
            .chain(&self.u_eval)
            .for_each(|e| out.extend_from_slice(&ef_to_bytes(e)));
        for (col, path) in &self.columns {
            col.iter()
                .for_each(|v| out.extend_from_slice(&v.as_canonical_u64().to_le_bytes()));
            path.iter().for_each(|h| out.extend_from_slice(h));
        }
    }

    /// Decodes exactly `opening_bytes(n_vars)` bytes (the caller checked the total length).
    pub fn decode(n_vars: usize, bytes: &[u8]) -> Result<Self, ZkError> {
        if n_vars > MAX_VARS || bytes.len() != opening_bytes(n_vars) {
            return Err(ZkError::ProofLength {
                expected: opening_bytes(n_vars.min(MAX_VARS)),
                got: bytes.len(),
            });
        }
        let (n1, n2) = split(n_vars);
        let mut off = 0;
        let ef = |off: &mut usize| -> Result<EF, ZkError> {
            let v = crate::field::ef_from_bytes(&bytes[*off..*off + 16])
                .ok_or(ZkError::NonCanonical { offset: *off })?;
            *off += 16;
            Ok(v)
        };
        let u_prox = (0..1usize << n2)
            .map(|_| ef(&mut off))
            .collect::<Result<Vec<_>, _>>()?;
        let u_eval = (0..1usize << n2)
            .map(|_| ef(&mut off))
            .collect::<Result<Vec<_>, _>>()?;
        let mut columns = Vec::with_capacity(QUERIES);
        for _ in 0..QUERIES {
            let mut col = Vec::with_capacity(1 << n1);
            for _ in 0..1usize << n1 {
                let raw = u64::from_le_bytes(
                    bytes[off..off + 8]
                        .try_into()
                        .map_err(|_| ZkError::NonCanonical { offset: off })?,
                );
                col.push(
                    <F as p3_field::integers::QuotientMap<u64>>::from_canonical_checked(raw)
                        .ok_or(ZkError::NonCanonical { offset: off })?,
                );
                off += 8;
            }
            let mut path = Vec::with_capacity(n2 + RATE_LOG);
            for _ in 0..n2 + RATE_LOG {
                let mut h = [0u8; 32];
                h.copy_from_slice(&bytes[off..off + 32]);
                off += 32;
                path.push(h);
            }
            columns.push((col, path));
        }
        Ok(Self {
            u_prox,
            u_eval,
            columns,
        })
    }
}
