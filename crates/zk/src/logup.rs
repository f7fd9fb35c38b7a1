//! Range check by logUp with a GKR over fractional sums (standalone; not yet wired into the
//! model proof, see docs/zk.md).
//!
//! Statement: every `v[i]` (`i < 2^n`) lies in `[0, 2^B)`. With multiplicities `m[t]` (sent in
//! the clear, `2^B` entries) and a challenge `alpha` drawn after `v` and `m` are bound,
//! `sum_i 1/(alpha - v[i]) - sum_t m[t]/(alpha - t) = 0` holds (whp over alpha) iff the multiset
//! of `v` is contained in the table with those multiplicities.
//!
//! Leaves (`L = 1 + max(n, B)` variables, top bit selects witness (0) or table (1), padding
//! entries are `(p, q) = (0, 1)`): witness `(1, alpha - v[i])`, table `(-m[t], alpha - t)`.
//! Layers: `P_k[i] = P_{k+1}[2i] Q_{k+1}[2i+1] + P_{k+1}[2i+1] Q_{k+1}[2i]`,
//! `Q_k[i] = Q_{k+1}[2i] Q_{k+1}[2i+1]`. The prover sends `Q_0` (root, must be non-zero; `P_0`
//! must be 0). Each layer reduces the claim `P~_k(r) + lambda Q~_k(r)` by a degree-3 sum-check
//! over `eq(r, i) (P0 Q1 + P1 Q0 + lambda Q0 Q1)`, then the prover sends `P0, P1, Q0, Q1` at the
//! sum-check point `rho`; the verifier draws `mu` and continues at `(rho, mu)`. At the leaves the
//! prover sends `v~(x)`; the verifier checks both leaf formulas and returns `(x, v~(x))`, a claim
//! the caller must discharge (commitment opening or a previous layer).

use crate::error::ZkError;
#[cfg(feature = "prover")]
use crate::field::ef_from_i64;
use crate::field::EF;
#[cfg(feature = "prover")]
use crate::mle::eq_table;
use crate::mle::evaluate;
use crate::transcript::Transcript;
use p3_field::{Field, PrimeCharacteristicRing};

/// Largest table (2^MAX_BITS entries) and witness (2^MAX_VARS) the verifier accepts.
pub const MAX_BITS: usize = 16;
pub const MAX_VARS: usize = 30;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerMsg {
    /// Degree-3 round polynomials as values at 0, 1, 2, 3.
    pub rounds: Vec<[EF; 4]>,
    /// `P~(rho,0), P~(rho,1), Q~(rho,0), Q~(rho,1)` of the child layer.
    pub evals: [EF; 4],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeProof {
    pub multiplicities: Vec<u64>,
    pub root_q: EF,
    pub layers: Vec<LayerMsg>,
    pub v_eval: EF,
}

fn interpolate3(e: &[EF; 4], x: EF) -> EF {
    let (x1, x2, x3) = (x - EF::ONE, x - EF::TWO, x - EF::from_u64(3));
    let six = EF::from_u64(6).inverse();
    let two = EF::TWO.inverse();
    -e[0] * x1 * x2 * x3 * six + e[1] * x * x2 * x3 * two - e[2] * x * x1 * x3 * two
        + e[3] * x * x1 * x2 * six
}

/// Indicator MLE that the first `high` coordinates of `x` are zero.
fn prefix_zero(x: &[EF], high: usize) -> EF {
    x[..high].iter().map(|v| EF::ONE - *v).product()
}

/// MLE of `t -> t` over `{0,1}^B` (big-endian).
fn identity_mle(x: &[EF]) -> EF {
    x.iter().fold(EF::ZERO, |acc, v| acc.double() + *v)
}

fn bind(t: &mut Transcript, values: Option<&[i64]>, n: usize, bits: usize, mult: &[u64]) {
    t.absorb(b"logup-shape", &[n as u8, bits as u8]);
    if let Some(values) = values {
        t.absorb_i64s(b"logup-values", values);
    }
    let m: Vec<i64> = mult.iter().map(|v| *v as i64).collect();
    t.absorb_i64s(b"logup-multiplicities", &m);
}

#[cfg(feature = "prover")]
/// Proves `0 <= v[i] < 2^bits` for `values` (length a power of two, `2^n`).
/// In this standalone version `values` are bound in the clear; the returned point is where
/// `v~` was claimed.
pub fn prove_range(
    t: &mut Transcript,
    values: &[i64],
    bits: usize,
) -> Result<(RangeProof, Vec<EF>), ZkError> {
    prove_inner(t, values, bits, true)
}

#[cfg(feature = "prover")]
/// Like [`prove_range`] for values the transcript has already bound through a commitment:
/// the values are not absorbed (only shape and multiplicities are).
pub fn prove_range_committed(
    t: &mut Transcript,
    values: &[i64],
    bits: usize,
) -> Result<(RangeProof, Vec<EF>), ZkError> {
    prove_inner(t, values, bits, false)
}

#[cfg(feature = "prover")]
fn prove_inner(
    t: &mut Transcript,
    values: &[i64],
    bits: usize,
    bind_values: bool,
) -> Result<(RangeProof, Vec<EF>), ZkError> {
    if bits > MAX_BITS || !values.len().is_power_of_two() || values.len() > 1 << MAX_VARS {
        return Err(ZkError::Length {
            what: "range-check shape",
            expected: 1 << MAX_BITS,
            got: values.len(),
        });
    }
    let n = values.len().trailing_zeros() as usize;
    let mut mult = vec![0u64; 1 << bits];
    for (index, v) in values.iter().enumerate() {
        if *v < 0 || *v >= 1 << bits {
            return Err(ZkError::Range {
                what: "range-check value",
                index,
                value: *v,
            });
        }
        mult[*v as usize] += 1;
    }
    bind(t, bind_values.then_some(values), n, bits, &mult);
    let alpha = t.challenge(b"logup-alpha");
    let half = 1usize << n.max(bits);
    let mut p = vec![EF::ZERO; 2 * half];
    let mut q = vec![EF::ONE; 2 * half];
    for (i, v) in values.iter().enumerate() {
        p[i] = EF::ONE;
        q[i] = alpha - ef_from_i64(*v);
    }
    for (tv, m) in mult.iter().enumerate() {
        p[half + tv] = -EF::from_u64(*m);
        q[half + tv] = alpha - EF::from_u64(tv as u64);
    }
    // layers[0] = leaves, ... , last = size 1
    let mut ps = vec![p];
    let mut qs = vec![q];
    while ps[ps.len() - 1].len() > 1 {
        let (pl, ql) = (&ps[ps.len() - 1], &qs[qs.len() - 1]);
        let np: Vec<EF> = (0..pl.len() / 2)
            .map(|i| pl[2 * i] * ql[2 * i + 1] + pl[2 * i + 1] * ql[2 * i])
            .collect();
        let nq: Vec<EF> = (0..ql.len() / 2)
            .map(|i| ql[2 * i] * ql[2 * i + 1])
            .collect();
        ps.push(np);
        qs.push(nq);
    }
    let root_q = qs[qs.len() - 1][0];
    t.absorb_ef(b"logup-root", &[EF::ZERO, root_q]);
    let mut point: Vec<EF> = Vec::new();
    let mut layers = Vec::new();
    for depth in (0..ps.len() - 1).rev() {
        let (pc, qc) = (&ps[depth], &qs[depth]);
        let lambda = t.challenge(b"logup-lambda");
        let len = pc.len() / 2;
        let mut eq = eq_table(&point);
        let mut p0: Vec<EF> = (0..len).map(|i| pc[2 * i]).collect();
        let mut p1: Vec<EF> = (0..len).map(|i| pc[2 * i + 1]).collect();
        let mut q0: Vec<EF> = (0..len).map(|i| qc[2 * i]).collect();
        let mut q1: Vec<EF> = (0..len).map(|i| qc[2 * i + 1]).collect();
        let mut rounds = Vec::new();
        let mut rho = Vec::new();
        while eq.len() > 1 {
            let h = eq.len() / 2;
            let mut e = [EF::ZERO; 4];
            for i in 0..h {
                // Values of the five tables at X = 0, 1, 2, 3 along the bound variable, by
                // stepping with the difference (high - low).
                let mut cur = [eq[i], p0[i], p1[i], q0[i], q1[i]];
                let d = [
                    eq[i + h] - eq[i],
                    p0[i + h] - p0[i],
                    p1[i + h] - p1[i],
                    q0[i + h] - q0[i],
                    q1[i + h] - q1[i],
                ];
                for (k, ek) in e.iter_mut().enumerate() {
                    if k > 0 {
                        cur.iter_mut().zip(&d).for_each(|(c, dd)| *c += *dd);
                    }
                    let [a, b0, b1, c0, c1] = cur;
                    *ek += a * (b0 * c1 + b1 * c0 + lambda * (c0 * c1));
                }
            }
            t.absorb_ef(b"logup-round", &e);
            let r = t.challenge(b"logup-r");
            for tab in [&mut eq, &mut p0, &mut p1, &mut q0, &mut q1] {
                for i in 0..h {
                    tab[i] = tab[i] + r * (tab[i + h] - tab[i]);
                }
                tab.truncate(h);
            }
            rounds.push(e);
            rho.push(r);
        }
        let evals = [p0[0], p1[0], q0[0], q1[0]];
        t.absorb_ef(b"logup-evals", &evals);
        let mu = t.challenge(b"logup-mu");
        rho.push(mu);
        point = rho;
        layers.push(LayerMsg { rounds, evals });
    }
    // leaf point: point[0] selects witness/table; the witness uses the last n coordinates.
    let xw = &point[1 + (half.trailing_zeros() as usize - n)..];
    let v_ext: Vec<EF> = values.iter().map(|v| ef_from_i64(*v)).collect();
    let v_eval = evaluate(&v_ext, xw);
    t.absorb_ef(b"logup-v-eval", &[v_eval]);
    Ok((
        RangeProof {
            multiplicities: mult,
            root_q,
            layers,
            v_eval,
        },
        xw.to_vec(),
    ))
}

/// Verifies a range proof for `values` of length `2^n` and `bits`; returns `(x, v~(x))`, which
/// the caller must check against the committed/claimed values.
pub fn verify_range(
    t: &mut Transcript,
    values_for_binding: &[i64],
    n: usize,
    bits: usize,
    proof: &RangeProof,
) -> Result<(Vec<EF>, EF), ZkError> {
    if bits > MAX_BITS || n > MAX_VARS || values_for_binding.len() != 1 << n {
        return Err(ZkError::Length {
            what: "range-check shape",
            expected: 1 << n.min(MAX_VARS),
            got: values_for_binding.len(),
        });
    }
    verify_inner(t, Some(values_for_binding), n, bits, proof)
}

/// Verifier of [`prove_range_committed`]: the values are bound by a commitment the caller
/// absorbed; the returned claim `(x, v~(x))` must be checked against that commitment.
pub fn verify_range_committed(
    t: &mut Transcript,
    n: usize,
    bits: usize,
    proof: &RangeProof,
) -> Result<(Vec<EF>, EF), ZkError> {
    if bits > MAX_BITS || n > MAX_VARS {
        return Err(ZkError::Length {
            what: "range-check shape",
            expected: MAX_VARS,
            got: n,
        });
    }
    verify_inner(t, None, n, bits, proof)
}

/// Error numerator (over `|EF|`) of one range proof with `2^n` values and `2^bits` table.
pub fn error_terms(n: usize, bits: usize) -> f64 {
    let vars = n.max(bits);
    2f64.powi(n as i32)
        + 2f64.powi(bits as i32)
        + (0..=vars).map(|k| (3 * k + 2) as f64).sum::<f64>()
}

/// Encoded size of a range proof (multiplicities as u64 LE, EF elements 16 bytes).
pub fn proof_bytes(n: usize, bits: usize) -> usize {
    let vars = n.max(bits);
    (1 << bits) * 8 + 16 + (0..=vars).map(|d| (d * 4 + 4) * 16).sum::<usize>() + 16
}

impl RangeProof {
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.multiplicities
            .iter()
            .for_each(|m| out.extend_from_slice(&m.to_le_bytes()));
        out.extend_from_slice(&crate::field::ef_to_bytes(&self.root_q));
        for l in &self.layers {
            l.rounds
                .iter()
                .flatten()
                .chain(&l.evals)
                .for_each(|e| out.extend_from_slice(&crate::field::ef_to_bytes(e)));
        }
        out.extend_from_slice(&crate::field::ef_to_bytes(&self.v_eval));
    }

    /// Decodes exactly [`proof_bytes`]`(n, bits)` bytes.
    pub fn decode(n: usize, bits: usize, b: &[u8]) -> Result<Self, ZkError> {
        if n > MAX_VARS || bits > MAX_BITS || b.len() != proof_bytes(n, bits) {
            return Err(ZkError::ProofLength {
                expected: proof_bytes(n.min(MAX_VARS), bits.min(MAX_BITS)),
                got: b.len(),
            });
        }
        let mut off = 0;
        let multiplicities = (0..1usize << bits)
            .map(|_| {
                let v = u64::from_le_bytes(b[off..off + 8].try_into().unwrap_or([0; 8]));
                off += 8;
                v
            })
            .collect();
        let mut ef = || -> Result<EF, ZkError> {
            let v = crate::field::ef_from_bytes(&b[off..off + 16])
                .ok_or(ZkError::NonCanonical { offset: off })?;
            off += 16;
            Ok(v)
        };
        let root_q = ef()?;
        let mut layers = Vec::new();
        for d in 0..=n.max(bits) {
            let mut rounds = Vec::with_capacity(d);
            for _ in 0..d {
                rounds.push([ef()?, ef()?, ef()?, ef()?]);
            }
            let evals = [ef()?, ef()?, ef()?, ef()?];
            layers.push(LayerMsg { rounds, evals });
        }
        let v_eval = ef()?;
        Ok(Self {
            multiplicities,
            root_q,
            layers,
            v_eval,
        })
    }
}

fn verify_inner(
    t: &mut Transcript,
    values_for_binding: Option<&[i64]>,
    n: usize,
    bits: usize,
    proof: &RangeProof,
) -> Result<(Vec<EF>, EF), ZkError> {
    let vars = n.max(bits);
    if proof.multiplicities.len() != 1 << bits || proof.layers.len() != vars + 1 {
        return Err(ZkError::Length {
            what: "range-check proof",
            expected: vars + 1,
            got: proof.layers.len(),
        });
    }
    if proof.multiplicities.iter().any(|m| *m > 1 << n) {
        return Err(ZkError::Range {
            what: "multiplicity",
            index: 0,
            value: -1,
        });
    }
    bind(t, values_for_binding, n, bits, &proof.multiplicities);
    let alpha = t.challenge(b"logup-alpha");
    if proof.root_q == EF::ZERO {
        return Err(ZkError::SumcheckFinal { layer: 0 });
    }
    t.absorb_ef(b"logup-root", &[EF::ZERO, proof.root_q]);
    let (mut claim_p, mut claim_q) = (EF::ZERO, proof.root_q);
    let mut point: Vec<EF> = Vec::new();
    for (depth, msg) in proof.layers.iter().enumerate() {
        let lambda = t.challenge(b"logup-lambda");
        if msg.rounds.len() != depth {
            return Err(ZkError::Length {
                what: "logup rounds",
                expected: depth,
                got: msg.rounds.len(),
            });
        }
        let mut claim = claim_p + lambda * claim_q;
        let mut rho = Vec::with_capacity(depth + 1);
        for (round, e) in msg.rounds.iter().enumerate() {
            if e[0] + e[1] != claim {
                return Err(ZkError::SumcheckRound {
                    layer: depth,
                    round,
                });
            }
            t.absorb_ef(b"logup-round", e);
            let r = t.challenge(b"logup-r");
            claim = interpolate3(e, r);
            rho.push(r);
        }
        let eq: EF = point
            .iter()
            .zip(&rho)
            .map(|(a, b)| *a * *b + (EF::ONE - *a) * (EF::ONE - *b))
            .product();
        let [p0, p1, q0, q1] = msg.evals;
        if eq * (p0 * q1 + p1 * q0 + lambda * q0 * q1) != claim {
            return Err(ZkError::SumcheckFinal { layer: depth });
        }
        t.absorb_ef(b"logup-evals", &msg.evals);
        let mu = t.challenge(b"logup-mu");
        claim_p = p0 + mu * (p1 - p0);
        claim_q = q0 + mu * (q1 - q0);
        rho.push(mu);
        point = rho;
    }
    // leaves
    let (b, x) = (point[0], &point[1..]);
    let xw = &x[vars - n..];
    let xt = &x[vars - bits..];
    let ind_w = prefix_zero(x, vars - n);
    let ind_t = prefix_zero(x, vars - bits);
    let m_ext: Vec<EF> = proof
        .multiplicities
        .iter()
        .map(|m| EF::from_u64(*m))
        .collect();
    let m_eval = evaluate(&m_ext, xt);
    let v_eval = proof.v_eval;
    let leaf_p = (EF::ONE - b) * ind_w - b * ind_t * m_eval;
    let leaf_q = (EF::ONE - b) * (ind_w * (alpha - v_eval) + EF::ONE - ind_w)
        + b * (ind_t * (alpha - identity_mle(xt)) + EF::ONE - ind_t);
    if leaf_p != claim_p || leaf_q != claim_q {
        return Err(ZkError::SumcheckFinal {
            layer: proof.layers.len(),
        });
    }
    t.absorb_ef(b"logup-v-eval", &[v_eval]);
    Ok((xw.to_vec(), v_eval))
}
