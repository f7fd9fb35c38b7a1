//! Protocol v2: whole-model proof with **committed weights and a committed witness**; no
//! intermediate activation is sent. Specified in docs/zk.md ("Protocol v2").
//!
//! - Weights: one Ligero commitment per linear layer, made at registration ([`register`]). The
//!   weight table of a Dense layer is laid out in the *layout* of its input vector (see
//!   [`Layout`]), so a Dense layer after a convolution reads the conv's padded layout directly.
//! - Witness: for every Requant layer the prover commits (one Ligero commitment per proof, over
//!   the table `T`) to 8-bit limbs of `e = y - lo` (the clamped output), of the rounding
//!   remainder `rem`, and of the two saturation excesses `d_hi = max(q - hi, 0)` and
//!   `d_lo = max(lo - q, 0)` (`q` the unclamped quotient), plus a shifted copy of each top limb
//!   whose width is not a multiple of 8. One logUp-GKR proves every entry of `T` is in
//!   `[0, 256)`; linear identities at random points prove the top-limb widths,
//!   `a*m + 2^(s-1) = (lo + e + d_hi - d_lo) 2^s + rem`, and a degree-3 sum-check proves
//!   `d_hi (hi - y) = 0` and `d_lo (y - lo) = 0` elementwise: together, `y = requantize(a)`.
//! - Chain: from a random evaluation of the public output back to the public input, GKR-style:
//!   each linear layer reduces a claim on its output to a weight opening and a claim on its
//!   input (a convolution over a committed input adds a gather sum-check over im2col); each
//!   Requant layer turns a claim on `y` into claims on its committed limbs and a claim on its
//!   input `a`. All claims on `T` are batched into one opening by a final sum-check.
//! - Fiat-Shamir: protocol id, registered-model id (structure + weight commitments), the model
//!   file hash the verifying key commits to ([`UNBOUND`] for proofs made outside a key), input
//!   and output are absorbed first, then the witness root, then every prover message in order.
//! - Not zero-knowledge (see docs/zk.md, "What is hidden").

use crate::error::ZkError;
#[cfg(feature = "prover")]
use crate::field::ef_to_bytes;
use crate::field::{ef_from_bytes, ef_from_i64, f_from_i64, EF, EF_BYTES, F, LOG2_EF};
use crate::logup::{self, RangeProof};
use crate::mle::{eq_table, log2_ceil};
use crate::pcs::{self, Commitment, Committed, Opening};
use crate::sumcheck::{self, SumcheckProof};
use crate::transcript::Transcript;
#[cfg(feature = "prover")]
use opal_quant::requant_parts;
use opal_quant::{Conv2d, Dense, Layer, MaxPool2d, QuantModel, Requant, ValueShape};
use p3_field::{Field, PrimeCharacteristicRing};

pub use crate::committed::RegisteredModel;

pub const PROTOCOL: &[u8] = opal_domains::label::ZK_COMMITTED_WITNESS.as_bytes();

/// The model-file hash absorbed by [`prove`] and [`verify`], which are not tied to a verifying
/// key (the `opal zk` scripted interface and tests). A proof made under a key
/// ([`crate::api`]) absorbs the key's file hash instead, so it never verifies under a key with
/// another file hash, nor here.
pub const UNBOUND: [u8; 32] = [0; 32];

/// Limb width of the witness table (every entry of `T` is range-checked to `[0, 2^LIMB)`).
pub const LIMB: usize = 8;
/// Largest witness table (variables).
pub const MAX_WITNESS_VARS: usize = 26;

/// How a vector sits on the Boolean hypercube: `groups` blocks of `glen` values; flat index
/// `c * glen + p` lives at `(c << log2_ceil(glen)) + p`. `groups = 1` is the flat layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub groups: usize,
    pub glen: usize,
}

impl Layout {
    pub fn flat(n: usize) -> Self {
        Self { groups: 1, glen: n }
    }
    pub fn gbits(&self) -> usize {
        log2_ceil(self.groups)
    }
    pub fn pbits(&self) -> usize {
        log2_ceil(self.glen)
    }
    pub fn vars(&self) -> usize {
        self.gbits() + self.pbits()
    }
    pub fn len(&self) -> usize {
        self.groups * self.glen
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Hypercube index of flat index `f`.
    pub fn index(&self, f: usize) -> usize {
        ((f / self.glen) << self.pbits()) + f % self.glen
    }
    /// The vector placed on the hypercube (zero padding).
    pub fn place<T: Copy + Default>(&self, v: &[T]) -> Vec<T> {
        let mut out = vec![T::default(); 1 << self.vars()];
        v.iter()
            .enumerate()
            .for_each(|(f, x)| out[self.index(f)] = *x);
        out
    }
    /// MLE at `z` of the indicator of real (non-padding) positions.
    pub fn indicator(&self, z: &[EF]) -> EF {
        let g = self.gbits();
        prefix_mle(self.groups, &z[..g]) * prefix_mle(self.glen, &z[g..])
    }
    /// MLE at `z` of a flat vector placed in this layout (`O(len)`).
    pub fn eval(&self, v: &[i64], z: &[EF]) -> EF {
        let eq = eq_table(z);
        v.iter()
            .enumerate()
            .map(|(f, x)| eq[self.index(f)] * ef_from_i64(*x))
            .sum()
    }
}

/// `sum_{i < n} eq(z, i)` over `{0,1}^len(z)` (big-endian), in `O(len(z))`.
pub fn prefix_mle(n: usize, z: &[EF]) -> EF {
    let mut acc = EF::ONE; // product of the factors along the path
    let mut total = EF::ZERO;
    let mut n = n;
    for (k, zk) in z.iter().enumerate() {
        let half = 1usize << (z.len() - k - 1);
        if n >= 2 * half {
            return total + acc;
        }
        if n > half {
            // all of the 0-subtree, part of the 1-subtree
            total += acc * (EF::ONE - *zk);
            acc *= *zk;
            n -= half;
        } else {
            acc *= EF::ONE - *zk;
        }
    }
    if n >= 1 {
        total + acc
    } else {
        total
    }
}

/// Per-Requant-layer witness shape: which limb vectors exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequantShape {
    /// Layer index in the model.
    pub layer: usize,
    pub layout: Layout,
    /// Bits of `e = y - lo` (`hi - lo = 2^e_bits - 1`).
    pub e_bits: usize,
    /// Limbs of `e`, `rem`, and of each of `d_hi`, `d_lo`.
    pub ke: usize,
    pub ks: usize,
    pub kd: usize,
    /// Whether a shifted copy of the top limb of `e` / `rem` is committed.
    pub e_shift: bool,
    pub s_shift: bool,
}

impl RequantShape {
    /// Number of limb vectors, in the fixed order: e limbs, [e top shifted], rem limbs,
    /// [rem top shifted], d_hi limbs, d_lo limbs.
    pub fn nvec(&self) -> usize {
        self.ke + self.e_shift as usize + self.ks + self.s_shift as usize + 2 * self.kd
    }
    fn e_top_width(&self) -> usize {
        self.e_bits - LIMB * (self.ke - 1)
    }
}

/// Largest MaxPool window the prover supports (`kh kw` taps; the product check has degree
/// `taps + 1`).
pub const MAX_POOL_TAPS: usize = 16;

/// Per-MaxPool witness shape. The prover commits, in the output layout, 8-bit limbs of
/// `y + bound` and of `d_t = y - x_t` for every window tap `t` (all in `[0, 2 bound]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// Layer index in the model.
    pub layer: usize,
    /// Output layout (`ch` groups of `out_h out_w`).
    pub layout: Layout,
    /// Window taps `K = kh kw`.
    pub taps: usize,
    /// Inclusive bound on `|x|` (validation).
    pub bound: i64,
    /// Limbs of `y + bound` and of each `d_t`.
    pub kl: usize,
}

impl PoolShape {
    /// Vector order: `y + bound` limbs, then for each tap `t` the limbs of `d_t`.
    pub fn nvec(&self) -> usize {
        self.kl * (1 + self.taps)
    }
    fn tap_bits(&self) -> usize {
        log2_ceil(self.taps)
    }
}

fn comb_limbs(xs: &[EF]) -> EF {
    let base = EF::from_u64(1 << LIMB);
    xs.iter().rev().fold(EF::ZERO, |acc, x| acc * base + *x)
}

#[cfg(feature = "prover")]
fn comb_limbs_i64(vs: &[Vec<i64>], size: usize) -> Vec<EF> {
    (0..size)
        .map(|j| ef_from_i64(vs.iter().rev().fold(0i64, |acc, v| (acc << LIMB) + v[j])))
        .collect()
}

#[cfg(feature = "prover")]
fn mle_i64(v: &[i64], eq: &[EF]) -> EF {
    v.iter()
        .zip(eq)
        .filter(|(x, _)| **x != 0)
        .map(|(x, e)| *e * ef_from_i64(*x))
        .sum()
}

fn requant_shape(
    layer: usize,
    r: &Requant,
    input: &ValueShape,
    layout: Layout,
) -> Result<RequantShape, ZkError> {
    let s = r.shift as usize;
    let e_bits = if r.relu {
        r.out_bits as usize - 1
    } else {
        r.out_bits as usize
    };
    // |q| <= (max_abs * m + 2^(s-1)) / 2^s + 1; d_hi, d_lo <= |q| + 2^(out_bits-1).
    let qmax = (input.max_abs * r.multiplier as i128 + (1i128 << (s - 1))) >> s;
    let dmax = qmax + 1 + (1i128 << (r.out_bits - 1));
    let dbits = (128 - dmax.leading_zeros()) as usize;
    let kd = dbits.div_ceil(LIMB).max(1);
    let ke = e_bits.div_ceil(LIMB).max(1);
    let ks = s.div_ceil(LIMB).max(1);
    // No wrap-around in the field: |a m + 2^(s-1)| < 2^62 (validation) and
    // |(lo + e + d_hi - d_lo) 2^s + rem| < (2^(8 kd) + 2^16 + 1) 2^s; their sum must be < p.
    let p = 0xffff_ffff_0000_0001u128;
    let rhs = (1u128 << (LIMB * kd).min(100)) + (1 << 16) + 1;
    let ok = LIMB * kd + s < 100
        && rhs
            .checked_mul(1u128 << s)
            .is_some_and(|v| v + (1u128 << 62) < p);
    if !ok {
        return Err(ZkError::Model(format!(
            "layer {layer}: requantization too wide for the field (shift {s}, {dbits}-bit excess)"
        )));
    }
    Ok(RequantShape {
        layer,
        layout,
        e_bits,
        ke,
        ks,
        kd,
        e_shift: !e_bits.is_multiple_of(LIMB),
        s_shift: !s.is_multiple_of(LIMB),
    })
}

/// Everything about a model the v2 prover and verifier derive from the structure alone.
#[derive(Clone, Debug)]
pub struct Shape {
    pub values: Vec<ValueShape>,
    /// Layout of every value vector (`layouts[0]` = input, `layouts[k+1]` = output of layer k).
    pub layouts: Vec<Layout>,
    pub requants: Vec<RequantShape>,
    /// Per requant (same order): hypercube offset of its first limb vector in `T`.
    pub offsets: Vec<usize>,
    pub pools: Vec<PoolShape>,
    /// Per pool (same order): hypercube offset of its first limb vector in `T`.
    pub pool_offsets: Vec<usize>,
    /// Variables of `T` (0 when there is no Requant or MaxPool layer).
    pub witness_vars: usize,
    /// Per linear layer (model order): weight-table variables.
    pub weight_vars: Vec<usize>,
}

/// Derives layouts, witness layout and weight-table sizes from a model (weights optional).
pub fn shape(model: &QuantModel) -> Result<Shape, ZkError> {
    let values = model
        .validate_structure()
        .map_err(|e| ZkError::Model(e.to_string()))?;
    let mut layouts = vec![Layout::flat(model.input_len as usize)];
    let mut requants = Vec::new();
    let mut pools = Vec::new();
    let mut weight_vars = Vec::new();
    for (k, l) in model.layers.iter().enumerate() {
        let inl = layouts[k];
        let out = match l {
            Layer::Dense(d) => {
                weight_vars.push(log2_ceil(d.rows as usize) + inl.vars());
                Layout::flat(d.rows as usize)
            }
            Layer::Conv2d(c) => {
                let (oh, ow) = c.out_hw();
                weight_vars.push(log2_ceil(c.out_ch as usize) + log2_ceil(taps(c)));
                Layout {
                    groups: c.out_ch as usize,
                    glen: oh * ow,
                }
            }
            Layer::MaxPool2d(p) => {
                let taps = (p.kh * p.kw) as usize;
                if taps > MAX_POOL_TAPS {
                    return Err(ZkError::Unimplemented(
                        "MaxPool windows of more than 16 taps",
                    ));
                }
                let bound = values[k].max_abs;
                let bits = (128 - (2 * bound).leading_zeros()) as usize;
                let kl = bits.div_ceil(LIMB).max(1);
                // y - x - d = 0 in F must imply it over the integers: |.| < 2^(8 kl) + 2 bound.
                if LIMB * kl > 61 {
                    return Err(ZkError::Model(format!(
                        "layer {k}: max pooling over {bits}-bit values is too wide for the field"
                    )));
                }
                let (oh, ow) = p.out_hw();
                let layout = Layout {
                    groups: p.ch as usize,
                    glen: oh * ow,
                };
                pools.push(PoolShape {
                    layer: k,
                    layout,
                    taps,
                    bound: bound as i64,
                    kl,
                });
                layout
            }
            Layer::Add(a) => {
                let from = a.from as usize;
                if layouts[from] != inl {
                    return Err(ZkError::Unimplemented(
                        "residual Add of two vectors in different hypercube layouts",
                    ));
                }
                if from > 0 && !matches!(model.layers[from - 1], Layer::Requant(_)) {
                    return Err(ZkError::Unimplemented(
                        "residual Add of a value that is neither the input nor a Requant output",
                    ));
                }
                inl
            }
            Layer::Requant(r) => {
                requants.push(requant_shape(k, r, &values[k], inl)?);
                inl
            }
        };
        layouts.push(out);
    }
    // Segments (requants, then pools) sorted by size (descending, stable), each 2^vars:
    // aligned offsets.
    let segs: Vec<(usize, usize)> = requants
        .iter()
        .map(|r| (r.layout.vars(), r.nvec()))
        .chain(pools.iter().map(|p| (p.layout.vars(), p.nvec())))
        .collect();
    let mut order: Vec<usize> = (0..segs.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(segs[*i].0));
    let mut offsets = vec![0; segs.len()];
    let mut next = 0usize;
    for i in order {
        offsets[i] = next;
        next += segs[i].1 << segs[i].0;
    }
    let pool_offsets = offsets.split_off(requants.len());
    let witness_vars = if segs.is_empty() { 0 } else { log2_ceil(next) };
    if witness_vars > MAX_WITNESS_VARS {
        return Err(ZkError::Model(format!(
            "witness table of 2^{witness_vars} entries is too large"
        )));
    }
    Ok(Shape {
        values,
        layouts,
        requants,
        offsets,
        pools,
        pool_offsets,
        witness_vars,
        weight_vars,
    })
}

fn taps(c: &Conv2d) -> usize {
    (c.in_ch * c.kh * c.kw) as usize
}

/// Dense weight table `2^a x 2^vars(in)` row-major, columns in the input layout.
fn dense_table(d: &Dense, inl: Layout) -> Vec<F> {
    let (a, c) = (log2_ceil(d.rows as usize), inl.vars());
    let mut t = vec![F::ZERO; 1 << (a + c)];
    for (i, row) in d.weights.chunks_exact(d.cols as usize).enumerate() {
        for (j, w) in row.iter().enumerate() {
            t[(i << c) + inl.index(j)] = f_from_i64(*w as i64);
        }
    }
    t
}

/// Prover-side model: full model, its shape and the weight commitments' data.
pub struct ProverModel {
    pub model: QuantModel,
    pub shape: Shape,
    pub committed: Vec<Committed>,
}

/// One-time registration: commits to every linear layer's weight table (v2 layouts).
pub fn register(model: &QuantModel) -> Result<(ProverModel, RegisteredModel), ZkError> {
    model
        .validate()
        .map_err(|e| ZkError::Model(e.to_string()))?;
    let sh = shape(model)?;
    let mut committed = Vec::new();
    for (k, l) in model.layers.iter().enumerate() {
        match l {
            Layer::Dense(d) => committed.push(pcs::commit(&dense_table(d, sh.layouts[k]))?),
            Layer::Conv2d(c) => committed.push(pcs::commit(&crate::conv::weight_table(c))?),
            Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => {}
        }
    }
    let reg = RegisteredModel {
        structure: model.without_weights(),
        weights: committed.iter().map(|c| c.commitment.clone()).collect(),
    };
    Ok((
        ProverModel {
            model: model.clone(),
            shape: sh,
            committed,
        },
        reg,
    ))
}

/// Largest verifier work (field operations, roughly) accepted for a registered model: the
/// verifier refuses, before reading any proof byte, a structure that would cost more.
pub const MAX_VERIFIER_WORK: u64 = 1 << 28;

/// Rough count of the verifier's field operations for this structure (eq tables, clear
/// input/output evaluations, conv gathers, PCS column checks).
pub fn verifier_work(model: &QuantModel, sh: &Shape) -> u64 {
    let mut w: u64 = 0;
    for (k, l) in model.layers.iter().enumerate() {
        let (vin, vout) = (sh.layouts[k].vars(), sh.layouts[k + 1].vars());
        w += (1u64 << vin) + (1u64 << vout);
        if let Layer::Conv2d(c) = l {
            let (oh, ow) = c.out_hw();
            w += 2 * (oh * ow) as u64 * taps(c) as u64;
        }
        if let Layer::MaxPool2d(p) = l {
            let (oh, ow) = p.out_hw();
            let kk = (p.kh * p.kw) as u64;
            w += 2 * (p.ch as usize * oh * ow) as u64 * kk + (kk + 2) * (kk + 2) * vout as u64;
        }
    }
    for n in sh.weight_vars.iter().chain(Some(&sh.witness_vars)) {
        let (n1, n2) = pcs::split(*n);
        w += pcs::QUERIES as u64 * ((1u64 << n1) + (1u64 << n2)) * 2;
    }
    w
}

/// Checks the registered model against its structure; returns the shape.
pub fn registered_shape(reg: &RegisteredModel) -> Result<Shape, ZkError> {
    let sh = shape(&reg.structure)?;
    let work = verifier_work(&reg.structure, &sh);
    if work > MAX_VERIFIER_WORK {
        return Err(ZkError::Model(format!(
            "verifying this model would take about {work} field operations (limit {MAX_VERIFIER_WORK})"
        )));
    }
    if sh.weight_vars.len() != reg.weights.len()
        || sh
            .weight_vars
            .iter()
            .zip(&reg.weights)
            .any(|(v, c)| *v != c.n_vars as usize || *v > pcs::MAX_VARS)
    {
        return Err(ZkError::Model(
            "weight commitments do not match the structure".into(),
        ));
    }
    Ok(sh)
}

// ---------------------------------------------------------------------------------------------
// Proof stream: the prover appends, the verifier reads in the same order.

struct Reader<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ZkError> {
        let end = self
            .off
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or(ZkError::ProofLength {
                expected: self.off.saturating_add(n),
                got: self.b.len(),
            })?;
        let s = &self.b[self.off..end];
        self.off = end;
        Ok(s)
    }
    fn ef(&mut self) -> Result<EF, ZkError> {
        let off = self.off;
        ef_from_bytes(self.take(EF_BYTES)?).ok_or(ZkError::NonCanonical { offset: off })
    }
    fn efs(&mut self, n: usize) -> Result<Vec<EF>, ZkError> {
        (0..n).map(|_| self.ef()).collect()
    }
    fn sumcheck(&mut self, rounds: usize) -> Result<SumcheckProof, ZkError> {
        let mut r = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            r.push([self.ef()?, self.ef()?, self.ef()?]);
        }
        Ok(SumcheckProof { rounds: r })
    }
    fn opening(&mut self, n_vars: usize) -> Result<Opening, ZkError> {
        let off = self.off;
        Opening::decode(n_vars, self.take(pcs::opening_bytes(n_vars))?).map_err(|e| match e {
            ZkError::NonCanonical { offset } => ZkError::NonCanonical {
                offset: offset + off,
            },
            e => e,
        })
    }
}

#[cfg(feature = "prover")]
fn put_efs(out: &mut Vec<u8>, xs: &[EF]) {
    xs.iter()
        .for_each(|x| out.extend_from_slice(&ef_to_bytes(x)));
}

#[cfg(feature = "prover")]
fn put_sumcheck(out: &mut Vec<u8>, p: &SumcheckProof) {
    p.rounds.iter().for_each(|r| put_efs(out, r));
}

/// Exact proof length, from the registered structure alone (checked before reading).
pub fn proof_len(reg: &RegisteredModel) -> Result<usize, ZkError> {
    let sh = registered_shape(reg)?;
    let mut n = 0usize;
    if sh.witness_vars > 0 {
        n += 32 + logup::proof_bytes(sh.witness_vars, LIMB);
    }
    let mut w = 0;
    for (k, l) in reg.structure.layers.iter().enumerate() {
        match l {
            Layer::Dense(_) => {
                n += sh.layouts[k].vars() * 3 * EF_BYTES + pcs::opening_bytes(sh.weight_vars[w]);
                n += if k > 0 { EF_BYTES } else { 0 };
                w += 1;
            }
            Layer::Conv2d(c) => {
                n += log2_ceil(taps(c)) * 3 * EF_BYTES + pcs::opening_bytes(sh.weight_vars[w]);
                if k > 0 {
                    n += EF_BYTES + sh.layouts[k].vars() * 3 * EF_BYTES + EF_BYTES;
                }
                w += 1;
            }
            Layer::MaxPool2d(_) => {
                let ps = sh
                    .pools
                    .iter()
                    .find(|p| p.layer == k)
                    .ok_or(ZkError::Model("shape mismatch".into()))?;
                let m = ps.layout.vars();
                n += (ps.kl + ps.nvec()) * EF_BYTES;
                if k > 0 {
                    n += (sh.layouts[k].vars() * 3 + 1) * EF_BYTES;
                }
                n += (m * (ps.taps + 2) + ps.taps * ps.kl) * EF_BYTES;
            }
            Layer::Add(a) => {
                if a.from > 0 {
                    let rq = sh
                        .requants
                        .iter()
                        .find(|r| r.layer + 1 == a.from as usize)
                        .ok_or(ZkError::Model("shape mismatch".into()))?;
                    n += rq.ke * EF_BYTES;
                }
            }
            Layer::Requant(_) => {}
        }
    }
    for rq in &sh.requants {
        let m = rq.layout.vars();
        // chain evals, product rounds (degree 3: 4 values) and product evals
        n += rq.nvec() * EF_BYTES + m * 4 * EF_BYTES + rq.nvec() * EF_BYTES;
    }
    if sh.witness_vars > 0 {
        n += sh.witness_vars * 3 * EF_BYTES + pcs::opening_bytes(sh.witness_vars);
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Witness.

#[cfg(feature = "prover")]
/// Limb vectors of one Requant layer, each placed in the layer's layout (`2^m` entries).
fn requant_witness(rq: &RequantShape, r: &Requant, a: &[i64]) -> Vec<Vec<i64>> {
    let size = 1usize << rq.layout.vars();
    let mut vecs = vec![vec![0i64; size]; rq.nvec()];
    let (lo, hi) = (r.lo(), r.hi());
    let limbs = |v: i64, k: usize| (v >> (LIMB * k)) & ((1 << LIMB) - 1);
    for (f, x) in a.iter().enumerate() {
        let i = rq.layout.index(f);
        let (q, rem) = requant_parts(*x, r);
        let y = q.clamp(lo, hi);
        let (e, dh, dl) = (y - lo, (q - hi).max(0), (lo - q).max(0));
        let mut v = 0;
        for k in 0..rq.ke {
            vecs[v][i] = limbs(e, k);
            v += 1;
        }
        if rq.e_shift {
            vecs[v][i] = limbs(e, rq.ke - 1) << (LIMB - rq.e_top_width());
            v += 1;
        }
        for k in 0..rq.ks {
            vecs[v][i] = limbs(rem, k);
            v += 1;
        }
        if rq.s_shift {
            let w = r.shift as usize - LIMB * (rq.ks - 1);
            vecs[v][i] = limbs(rem, rq.ks - 1) << (LIMB - w);
            v += 1;
        }
        for k in 0..rq.kd {
            vecs[v][i] = limbs(dh, k);
            vecs[v + rq.kd][i] = limbs(dl, k);
            v += 1;
        }
    }
    vecs
}

/// Values of a Requant layer recombined from its limb evaluations at a point.
struct Recombined {
    e: EF,
    rem: EF,
    dh: EF,
    dl: EF,
    /// `shifted - 2^(8 - w) * top` for `e` and `rem` (must be 0).
    e_shift_gap: EF,
    s_shift_gap: EF,
}

fn recombine(rq: &RequantShape, r: &Requant, ev: &[EF]) -> Recombined {
    let base = EF::from_u64(1 << LIMB);
    let comb = |xs: &[EF]| xs.iter().rev().fold(EF::ZERO, |acc, x| acc * base + *x);
    let mut v = 0;
    let e = comb(&ev[v..v + rq.ke]);
    let e_top = ev[v + rq.ke - 1];
    v += rq.ke;
    let mut e_shift_gap = EF::ZERO;
    if rq.e_shift {
        e_shift_gap = ev[v] - e_top * EF::from_u64(1 << (LIMB - rq.e_top_width()));
        v += 1;
    }
    let rem = comb(&ev[v..v + rq.ks]);
    let s_top = ev[v + rq.ks - 1];
    v += rq.ks;
    let mut s_shift_gap = EF::ZERO;
    if rq.s_shift {
        let w = r.shift as usize - LIMB * (rq.ks - 1);
        s_shift_gap = ev[v] - s_top * EF::from_u64(1 << (LIMB - w));
        v += 1;
    }
    let dh = comb(&ev[v..v + rq.kd]);
    let dl = comb(&ev[v + rq.kd..v + 2 * rq.kd]);
    Recombined {
        e,
        rem,
        dh,
        dl,
        e_shift_gap,
        s_shift_gap,
    }
}

/// `~a(z)` implied by the rounding identity: `(2^s (lo ind + e + dh - dl) + rem - 2^(s-1) ind) / m`.
fn implied_input(r: &Requant, rc: &Recombined, ind: EF) -> EF {
    let s = r.shift as usize;
    let two_s = EF::from_u64(1u64 << s);
    let half = EF::from_u64(1u64 << (s - 1));
    let lo = ef_from_i64(r.lo());
    (two_s * (lo * ind + rc.e + rc.dh - rc.dl) + rc.rem - half * ind)
        * EF::from_u64(r.multiplier as u64).inverse()
}

/// A claim `~T(point) = value` on the witness table.
struct TClaim {
    point: Vec<EF>,
    value: EF,
}

/// Global point of vector `v` of a requant segment at local point `z`.
fn global_point(sh: &Shape, rq_idx: usize, v: usize, z: &[EF]) -> Vec<EF> {
    let m = sh.requants[rq_idx].layout.vars();
    seg_point(sh, sh.offsets[rq_idx], m, v, z)
}

/// Global point of vector `v` of a pool segment at local point `z`.
fn pool_point(sh: &Shape, pool_idx: usize, v: usize, z: &[EF]) -> Vec<EF> {
    let m = sh.pools[pool_idx].layout.vars();
    seg_point(sh, sh.pool_offsets[pool_idx], m, v, z)
}

fn seg_point(sh: &Shape, offset: usize, m: usize, v: usize, z: &[EF]) -> Vec<EF> {
    let start = (offset >> m) + v; // index of this vector's 2^m block
    let hb = sh.witness_vars - m;
    let mut p: Vec<EF> = (0..hb)
        .map(|k| {
            if (start >> (hb - 1 - k)) & 1 == 1 {
                EF::ONE
            } else {
                EF::ZERO
            }
        })
        .collect();
    p.extend_from_slice(z);
    p
}

// ---------------------------------------------------------------------------------------------
// Degree-3 product sum-check: sum_i eq(r, i) (dh eh + beta dl el) = 0.

fn interpolate3(e: &[EF; 4], x: EF) -> EF {
    let (x1, x2, x3) = (x - EF::ONE, x - EF::TWO, x - EF::from_u64(3));
    let six = EF::from_u64(6).inverse();
    let two = EF::TWO.inverse();
    -e[0] * x1 * x2 * x3 * six + e[1] * x * x2 * x3 * two - e[2] * x * x1 * x3 * two
        + e[3] * x * x1 * x2 * six
}

#[cfg(feature = "prover")]
fn prod_prove(t: &mut Transcript, mut tabs: [Vec<EF>; 5], beta: EF, out: &mut Vec<u8>) -> Vec<EF> {
    let mut point = Vec::new();
    while tabs[0].len() > 1 {
        let h = tabs[0].len() / 2;
        let mut e = [EF::ZERO; 4];
        for i in 0..h {
            let lo: [EF; 5] = std::array::from_fn(|k| tabs[k][i]);
            let d: [EF; 5] = std::array::from_fn(|k| tabs[k][i + h] - tabs[k][i]);
            let mut cur = lo;
            for (x, ex) in e.iter_mut().enumerate() {
                if x > 0 {
                    cur.iter_mut().zip(&d).for_each(|(c, dd)| *c += *dd);
                }
                *ex += cur[0] * (cur[1] * cur[2] + beta * cur[3] * cur[4]);
            }
        }
        t.absorb_ef(b"prod-round", &e);
        put_efs(out, &e);
        let r = t.challenge(b"prod-r");
        for tab in tabs.iter_mut() {
            for i in 0..h {
                tab[i] = tab[i] + r * (tab[i + h] - tab[i]);
            }
            tab.truncate(h);
        }
        point.push(r);
    }
    point
}

/// Lagrange interpolation through `(i, e[i])`, `i = 0..e.len()`, evaluated at `x`.
fn interpolate(e: &[EF], x: EF) -> EF {
    let n = e.len() as i64;
    let mut total = EF::ZERO;
    for i in 0..n {
        let (mut num, mut den) = (EF::ONE, EF::ONE);
        for j in 0..n {
            if j != i {
                num *= x - ef_from_i64(j);
                den *= ef_from_i64(i - j);
            }
        }
        total += e[i as usize] * num * den.inverse();
    }
    total
}

#[cfg(feature = "prover")]
/// Sum-check of `sum_i prod_k tabs[k][i] = 0` (degree `tabs.len()`; rounds as values at
/// `0..=deg`, labels `"pool-prod-round"` / `"pool-prod-r"`). Returns the final point.
fn prodk_prove(t: &mut Transcript, mut tabs: Vec<Vec<EF>>, out: &mut Vec<u8>) -> Vec<EF> {
    let deg = tabs.len();
    let mut point = Vec::new();
    while tabs[0].len() > 1 {
        let h = tabs[0].len() / 2;
        let mut e = vec![EF::ZERO; deg + 1];
        for i in 0..h {
            let mut cur: Vec<EF> = tabs.iter().map(|tb| tb[i]).collect();
            let d: Vec<EF> = tabs.iter().map(|tb| tb[i + h] - tb[i]).collect();
            for (x, ex) in e.iter_mut().enumerate() {
                if x > 0 {
                    cur.iter_mut().zip(&d).for_each(|(c, dd)| *c += *dd);
                }
                *ex += cur.iter().copied().product::<EF>();
            }
        }
        t.absorb_ef(b"pool-prod-round", &e);
        put_efs(out, &e);
        let r = t.challenge(b"pool-prod-r");
        for tab in tabs.iter_mut() {
            for i in 0..h {
                tab[i] = tab[i] + r * (tab[i + h] - tab[i]);
            }
            tab.truncate(h);
        }
        point.push(r);
    }
    point
}

#[cfg(feature = "prover")]
/// Limb vectors of one MaxPool layer (input `x`), each placed in the output layout.
fn pool_witness(ps: &PoolShape, p: &MaxPool2d, x: &[i64], ys: &[i64]) -> Vec<Vec<i64>> {
    let size = 1usize << ps.layout.vars();
    let mut vecs = vec![vec![0i64; size]; ps.nvec()];
    let limbs = |v: i64, k: usize| (v >> (LIMB * k)) & ((1 << LIMB) - 1);
    let (oh, ow) = p.out_hw();
    let (ih, iw, s) = (p.in_h as usize, p.in_w as usize, p.stride as usize);
    for c in 0..p.ch as usize {
        for i in 0..oh {
            for j in 0..ow {
                let idx = ps.layout.index((c * oh + i) * ow + j);
                let cand: Vec<i64> = (0..p.kh as usize)
                    .flat_map(|u| {
                        (0..p.kw as usize).map(move |v| x[(c * ih + i * s + u) * iw + j * s + v])
                    })
                    .collect();
                let y = ys[(c * oh + i) * ow + j];
                for (l, vec) in vecs[..ps.kl].iter_mut().enumerate() {
                    vec[idx] = limbs(y + ps.bound, l);
                }
                for (tp, xv) in cand.iter().enumerate() {
                    for l in 0..ps.kl {
                        vecs[ps.kl * (1 + tp) + l][idx] = limbs(y - xv, l);
                    }
                }
            }
        }
    }
    vecs
}

/// Walks the windows of a max pool: calls `visit(j, eq_o[out] * eq_t[t])` for every output
/// element and tap `t`, with `j` the input element it reads (hypercube index in `inl`).
fn pool_gather(
    p: &MaxPool2d,
    inl: Layout,
    outl: Layout,
    eq_o: &[EF],
    eq_t: &[EF],
    mut visit: impl FnMut(usize, EF),
) {
    let (oh, ow) = p.out_hw();
    let (ih, iw, s) = (p.in_h as usize, p.in_w as usize, p.stride as usize);
    for c in 0..p.ch as usize {
        for i in 0..oh {
            for j in 0..ow {
                let e = eq_o[outl.index((c * oh + i) * ow + j)];
                let mut tap = 0usize;
                for u in 0..p.kh as usize {
                    for v in 0..p.kw as usize {
                        let f = (c * ih + i * s + u) * iw + j * s + v;
                        visit(inl.index(f), e * eq_t[tap]);
                        tap += 1;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Prover.

#[cfg(feature = "prover")]
fn base_ef(v: &[i64]) -> Vec<EF> {
    v.iter().map(|x| ef_from_i64(*x)).collect()
}

/// Walks the im2col of a convolution: calls `visit(j, eq_p[p] * eq_t[t])` for every output
/// position `p` and tap `t` that reads input element `j` (hypercube index in the input layout;
/// padding taps are skipped). Summing into a table gives the gather table
/// `K(j) = sum_{(p,t) -> j} eq_p[p] eq_t[t]`; summing `eq_j[j]`-weighted gives `~K(point)`.
fn gather(c: &Conv2d, inl: Layout, eq_p: &[EF], eq_t: &[EF], mut visit: impl FnMut(usize, EF)) {
    let (oh, ow) = c.out_hw();
    let (ih, iw, s, pd) = (c.in_h as i64, c.in_w as i64, c.stride as i64, c.pad as i64);
    for i in 0..oh as i64 {
        for j in 0..ow as i64 {
            let ep = eq_p[(i * ow as i64 + j) as usize];
            let mut tap = 0usize;
            for ch in 0..c.in_ch as i64 {
                for u in 0..c.kh as i64 {
                    for v in 0..c.kw as i64 {
                        let (r, col) = (i * s + u - pd, j * s + v - pd);
                        if r >= 0 && r < ih && col >= 0 && col < iw {
                            let f = ((ch * ih + r) * iw + col) as usize;
                            visit(inl.index(f), ep * eq_t[tap]);
                        }
                        tap += 1;
                    }
                }
            }
        }
    }
}

#[cfg(feature = "prover")]
/// Proves `output = model(input)`; returns the output and the encoded proof.
pub fn prove(
    pm: &ProverModel,
    reg: &RegisteredModel,
    input: &[i64],
) -> Result<(Vec<i64>, Vec<u8>), ZkError> {
    prove_with_hook(pm, reg, input, None)
}

/// A cheating-prover hook for soundness tests: called with (requant index, limb vectors) after
/// the honest witness of that Requant layer is computed; the layers after it are then
/// re-executed on the output the modified limbs encode (`lo + e`), so everything downstream is
/// consistent with the cheat.
pub type WitnessHook<'a> = &'a dyn Fn(usize, &mut [Vec<i64>]);

#[cfg(feature = "prover")]
#[doc(hidden)]
pub fn prove_with_hook(
    pm: &ProverModel,
    reg: &RegisteredModel,
    input: &[i64],
    hook: Option<WitnessHook>,
) -> Result<(Vec<i64>, Vec<u8>), ZkError> {
    prove_with_progress(pm, reg, &UNBOUND, input, hook, &mut |_| {})
}

#[cfg(feature = "prover")]
/// [`prove`] reporting progress in `[0, 1]` (after execution, the witness commitment, the
/// range proof, each layer of the chain, the product checks and the batch opening), with
/// `file_hash` (the model file hash of the verifying key, or [`UNBOUND`]) in the transcript.
pub fn prove_with_progress(
    pm: &ProverModel,
    reg: &RegisteredModel,
    file_hash: &[u8; 32],
    input: &[i64],
    hook: Option<WitnessHook>,
    progress: &mut dyn FnMut(f32),
) -> Result<(Vec<i64>, Vec<u8>), ZkError> {
    prove_inner(pm, reg, file_hash, input, hook, None, progress)
}

/// A cheating-prover hook for MaxPool soundness tests: called with (pool index, the pool's
/// output vector) before any witness is computed; the layers after it are re-executed on the
/// changed output, and the pool's limbs are computed from it (`d_t = y - x_t`).
pub type PoolHook<'a> = &'a dyn Fn(usize, &mut Vec<i64>);

#[cfg(feature = "prover")]
#[doc(hidden)]
pub fn prove_with_pool_hook(
    pm: &ProverModel,
    reg: &RegisteredModel,
    input: &[i64],
    pool_hook: PoolHook,
) -> Result<(Vec<i64>, Vec<u8>), ZkError> {
    prove_inner(pm, reg, &UNBOUND, input, None, Some(pool_hook), &mut |_| {})
}

#[cfg(feature = "prover")]
/// Re-executes `model.layers[k + 1..]` on a changed value `k + 1` (test hooks only).
fn reexecute_after(
    model: &QuantModel,
    trace: &mut opal_quant::Trace,
    k: usize,
    y: Vec<i64>,
) -> Result<(), ZkError> {
    if model.layers[k + 1..]
        .iter()
        .any(|l| matches!(l, Layer::Add(_)))
    {
        return Err(ZkError::Model(
            "the test hook cannot re-execute past a residual Add".into(),
        ));
    }
    let rest = QuantModel {
        input_len: y.len() as u32,
        input_bits: 16,
        layers: model.layers[k + 1..].to_vec(),
        input_scale: 1.0,
        output_scale: 1.0,
    };
    let sub = if rest.layers.is_empty() {
        vec![y]
    } else {
        rest.execute(&y)
            .map_err(|e| ZkError::Model(e.to_string()))?
            .values
    };
    trace.values.truncate(k + 1);
    trace.values.extend(sub);
    Ok(())
}

#[cfg(feature = "prover")]
fn prove_inner(
    pm: &ProverModel,
    reg: &RegisteredModel,
    file_hash: &[u8; 32],
    input: &[i64],
    hook: Option<WitnessHook>,
    pool_hook: Option<PoolHook>,
    progress: &mut dyn FnMut(f32),
) -> Result<(Vec<i64>, Vec<u8>), ZkError> {
    progress(0.0);
    let model = &pm.model;
    let sh = &pm.shape;
    let mut trace = model
        .execute(input)
        .map_err(|e| ZkError::Model(e.to_string()))?;
    if let Some(h) = pool_hook {
        for (i, ps) in sh.pools.iter().enumerate() {
            let mut y = trace.values[ps.layer + 1].clone();
            h(i, &mut y);
            reexecute_after(model, &mut trace, ps.layer, y)?;
        }
    }
    let mut out = Vec::new();
    // Witness table.
    let mut wit: Vec<Vec<Vec<i64>>> = Vec::new();
    let mut pwit: Vec<Vec<Vec<i64>>> = Vec::new();
    let mut committed_t = None;
    let mut table: Vec<i64> = Vec::new();
    if sh.witness_vars > 0 {
        table = vec![0i64; 1 << sh.witness_vars];
        for (i, rq) in sh.requants.iter().enumerate() {
            let Layer::Requant(r) = &model.layers[rq.layer] else {
                return Err(ZkError::Model("shape mismatch".into()));
            };
            let mut vecs = requant_witness(rq, r, &trace.values[rq.layer]);
            if let Some(h) = hook {
                h(i, &mut vecs);
                let k = rq.layer;
                let y: Vec<i64> = (0..trace.values[k].len())
                    .map(|f| {
                        let j = rq.layout.index(f);
                        let e = vecs[..rq.ke]
                            .iter()
                            .rev()
                            .fold(0i64, |a, v| (a << LIMB) + v[j]);
                        r.lo() + e
                    })
                    .collect();
                reexecute_after(model, &mut trace, k, y)?;
            }
            let m = rq.layout.vars();
            for (v, vec) in vecs.iter().enumerate() {
                let off = sh.offsets[i] + (v << m);
                table[off..off + vec.len()].copy_from_slice(vec);
            }
            wit.push(vecs);
        }
        for (i, ps) in sh.pools.iter().enumerate() {
            let Layer::MaxPool2d(p) = &model.layers[ps.layer] else {
                return Err(ZkError::Model("shape mismatch".into()));
            };
            let vecs = pool_witness(ps, p, &trace.values[ps.layer], &trace.values[ps.layer + 1]);
            let m = ps.layout.vars();
            for (v, vec) in vecs.iter().enumerate() {
                let off = sh.pool_offsets[i] + (v << m);
                table[off..off + vec.len()].copy_from_slice(vec);
            }
            pwit.push(vecs);
        }
    }
    let output = trace.output().to_vec();
    progress(0.05);
    let mut t = bind(reg, file_hash, input, &output);
    if sh.witness_vars > 0 {
        let tf: Vec<F> = table.iter().map(|v| f_from_i64(*v)).collect();
        let c = pcs::commit(&tf)?;
        t.absorb(b"witness-root", &c.commitment.root);
        out.extend_from_slice(&c.commitment.root);
        committed_t = Some(c);
    }
    progress(0.25);
    let mut claims: Vec<TClaim> = Vec::new();
    if sh.witness_vars > 0 {
        let (rp, x) = logup::prove_range_committed(&mut t, &table, LIMB)?;
        rp.encode(&mut out);
        claims.push(TClaim {
            point: x,
            value: rp.v_eval,
        });
    }
    progress(0.4);
    // Chain, from the output back to the input.
    let nl = model.layers.len();
    let mut z = t.challenges(b"output-point", sh.layouts[nl].vars());
    let mut wi = pm.committed.len();
    let rq_index = |k: usize| sh.requants.iter().position(|r| r.layer == k);
    let pool_index = |k: usize| sh.pools.iter().position(|r| r.layer == k);
    for k in (0..nl).rev() {
        progress(0.4 + 0.4 * (nl - 1 - k) as f32 / nl as f32);
        let inl = sh.layouts[k];
        let x = &trace.values[k];
        match &model.layers[k] {
            Layer::Dense(d) => {
                wi -= 1;
                let eq_z = eq_table(&z);
                let c = inl.vars();
                let mut a = vec![EF::ZERO; 1 << c];
                for (row, e) in d.weights.chunks_exact(d.cols as usize).zip(&eq_z) {
                    for (j, w) in row.iter().enumerate() {
                        a[inl.index(j)] += *e * f_from_i64(*w as i64);
                    }
                }
                let xv = base_ef(&inl.place(x));
                let (sc, point, _, x_eval) = sumcheck::prove(&mut t, a, xv);
                put_sumcheck(&mut out, &sc);
                if k > 0 {
                    t.absorb_ef(b"x-eval", &[x_eval]);
                    put_efs(&mut out, &[x_eval]);
                }
                let full: Vec<EF> = z.iter().chain(&point).copied().collect();
                let (_, op) = pcs::open(&mut t, &pm.committed[wi], &full)?;
                op.encode(&mut out);
                z = point;
            }
            Layer::Conv2d(cv) => {
                wi -= 1;
                let outl = sh.layouts[k + 1];
                let (z_o, z_p) = z.split_at(outl.gbits());
                let (eq_o, eq_p) = (eq_table(z_o), eq_table(z_p));
                let tt = taps(cv);
                let cb = log2_ceil(tt);
                let mut wa = vec![EF::ZERO; 1 << cb];
                for (row, e) in cv.weights.chunks_exact(tt).zip(&eq_o) {
                    for (acc, w) in wa.iter_mut().zip(row) {
                        *acc += *e * f_from_i64(*w as i64);
                    }
                }
                let mut xb = vec![EF::ZERO; 1 << cb];
                // B(t) = sum_p eq_p[p] X[p][t] (im2col folded over positions).
                {
                    let (oh, ow) = cv.out_hw();
                    let (ih, iw, s, pd) = (
                        cv.in_h as i64,
                        cv.in_w as i64,
                        cv.stride as i64,
                        cv.pad as i64,
                    );
                    for i in 0..oh as i64 {
                        for j in 0..ow as i64 {
                            let ep = eq_p[(i * ow as i64 + j) as usize];
                            let mut tap = 0usize;
                            for ch in 0..cv.in_ch as i64 {
                                for u in 0..cv.kh as i64 {
                                    for v in 0..cv.kw as i64 {
                                        let (r, col) = (i * s + u - pd, j * s + v - pd);
                                        if r >= 0 && r < ih && col >= 0 && col < iw {
                                            let f = ((ch * ih + r) * iw + col) as usize;
                                            xb[tap] += ep * ef_from_i64(x[f]);
                                        }
                                        tap += 1;
                                    }
                                }
                            }
                        }
                    }
                }
                let (sc, point, _, u) = sumcheck::prove(&mut t, wa, xb);
                put_sumcheck(&mut out, &sc);
                if k > 0 {
                    t.absorb_ef(b"im2col-eval", &[u]);
                    put_efs(&mut out, &[u]);
                }
                let full: Vec<EF> = z_o.iter().chain(&point).copied().collect();
                let (_, op) = pcs::open(&mut t, &pm.committed[wi], &full)?;
                op.encode(&mut out);
                if k > 0 {
                    let eq_t = eq_table(&point);
                    let mut kt = vec![EF::ZERO; 1 << inl.vars()];
                    gather(cv, inl, &eq_p, &eq_t, |j, w| kt[j] += w);
                    let xv = base_ef(&inl.place(x));
                    let (sc, p2, x_eval, _) = sumcheck::prove(&mut t, xv, kt);
                    put_sumcheck(&mut out, &sc);
                    t.absorb_ef(b"x-eval", &[x_eval]);
                    put_efs(&mut out, &[x_eval]);
                    z = p2;
                } else {
                    z = Vec::new();
                }
            }
            Layer::MaxPool2d(p) => {
                let i = pool_index(k).ok_or(ZkError::Model("shape mismatch".into()))?;
                let ps = &sh.pools[i];
                let w = &pwit[i];
                // The claim on y at z, as claims on the committed limbs of y + bound.
                let eq_z = eq_table(&z);
                let ev_z: Vec<EF> = w[..ps.kl].iter().map(|v| mle_i64(v, &eq_z)).collect();
                t.absorb_ef(b"pool-y-evals", &ev_z);
                put_efs(&mut out, &ev_z);
                for (v, value) in ev_z.iter().enumerate() {
                    claims.push(TClaim {
                        point: pool_point(sh, i, v, &z),
                        value: *value,
                    });
                }
                // y[p] - x[window(p, t)] - d_t[p] = 0 at a random (tap, position) point.
                let r = t.challenges(b"pool-point", ps.layout.vars());
                let rt = t.challenges(b"pool-tap", ps.tap_bits());
                let eq_r = eq_table(&r);
                let ev_r: Vec<EF> = w.iter().map(|v| mle_i64(v, &eq_r)).collect();
                t.absorb_ef(b"pool-evals", &ev_r);
                put_efs(&mut out, &ev_r);
                for (v, value) in ev_r.iter().enumerate() {
                    claims.push(TClaim {
                        point: pool_point(sh, i, v, &r),
                        value: *value,
                    });
                }
                if k > 0 {
                    let eq_t = eq_table(&rt);
                    let mut kt = vec![EF::ZERO; 1 << inl.vars()];
                    pool_gather(p, inl, ps.layout, &eq_r, &eq_t, |j, wgt| kt[j] += wgt);
                    let xv = base_ef(&inl.place(x));
                    let (sc, p2, x_eval, _) = sumcheck::prove(&mut t, xv, kt);
                    put_sumcheck(&mut out, &sc);
                    t.absorb_ef(b"x-eval", &[x_eval]);
                    put_efs(&mut out, &[x_eval]);
                    z = p2;
                } else {
                    z = Vec::new();
                }
            }
            Layer::Add(a) => {
                let from = a.from as usize;
                if from > 0 {
                    let i = rq_index(from - 1).ok_or(ZkError::Model("shape mismatch".into()))?;
                    let rq = &sh.requants[i];
                    let eq_z = eq_table(&z);
                    let evals: Vec<EF> =
                        wit[i][..rq.ke].iter().map(|v| mle_i64(v, &eq_z)).collect();
                    t.absorb_ef(b"add-evals", &evals);
                    put_efs(&mut out, &evals);
                    for (v, value) in evals.iter().enumerate() {
                        claims.push(TClaim {
                            point: global_point(sh, i, v, &z),
                            value: *value,
                        });
                    }
                }
                // z stays: the claim moves to the running input at the same point.
            }
            Layer::Requant(_) => {
                let i = rq_index(k).ok_or(ZkError::Model("shape mismatch".into()))?;
                let eq_z = eq_table(&z);
                let evals: Vec<EF> = wit[i]
                    .iter()
                    .map(|v| {
                        v.iter()
                            .zip(&eq_z)
                            .filter(|(x, _)| **x != 0)
                            .map(|(x, e)| *e * ef_from_i64(*x))
                            .sum()
                    })
                    .collect();
                t.absorb_ef(b"requant-evals", &evals);
                put_efs(&mut out, &evals);
                for (v, value) in evals.iter().enumerate() {
                    claims.push(TClaim {
                        point: global_point(sh, i, v, &z),
                        value: *value,
                    });
                }
                // z stays: the claim moves to the requant input at the same point.
            }
        }
    }
    progress(0.8);
    // Product checks.
    for (i, rq) in sh.requants.iter().enumerate() {
        let m = rq.layout.vars();
        let rp = t.challenges(b"prod-point", m);
        let beta = t.challenge(b"prod-beta");
        let size = 1usize << m;
        let comb = |vs: &[Vec<i64>]| -> Vec<EF> {
            (0..size)
                .map(|j| ef_from_i64(vs.iter().rev().fold(0i64, |acc, v| (acc << LIMB) + v[j])))
                .collect()
        };
        let w = &wit[i];
        let el = comb(&w[..rq.ke]);
        let d0 = rq.ke + rq.e_shift as usize + rq.ks + rq.s_shift as usize;
        let dh = comb(&w[d0..d0 + rq.kd]);
        let dl = comb(&w[d0 + rq.kd..d0 + 2 * rq.kd]);
        let span = EF::from_u64((1u64 << rq.e_bits) - 1);
        let ind = rq.layout.place(&vec![1i64; rq.layout.len()]);
        let eh: Vec<EF> = el
            .iter()
            .zip(&ind)
            .map(|(e, b)| ef_from_i64(*b) * span - *e)
            .collect();
        let point = prod_prove(&mut t, [eq_table(&rp), dh, eh, dl, el], beta, &mut out);
        let eq_p = eq_table(&point);
        let evals: Vec<EF> = w
            .iter()
            .map(|v| v.iter().zip(&eq_p).map(|(x, e)| *e * ef_from_i64(*x)).sum())
            .collect();
        t.absorb_ef(b"prod-evals", &evals);
        put_efs(&mut out, &evals);
        for (v, value) in evals.iter().enumerate() {
            claims.push(TClaim {
                point: global_point(sh, i, v, &point),
                value: *value,
            });
        }
    }
    // MaxPool product checks: sum_p eq(r, p) prod_t d_t[p] = 0 (some tap attains the max).
    for (i, ps) in sh.pools.iter().enumerate() {
        let m = ps.layout.vars();
        let rp = t.challenges(b"pool-prod-point", m);
        let w = &pwit[i];
        let mut tabs = vec![eq_table(&rp)];
        for tp in 0..ps.taps {
            let lo = ps.kl * (1 + tp);
            tabs.push(comb_limbs_i64(&w[lo..lo + ps.kl], 1 << m));
        }
        let point = prodk_prove(&mut t, tabs, &mut out);
        let eq_p = eq_table(&point);
        let evals: Vec<EF> = w[ps.kl..].iter().map(|v| mle_i64(v, &eq_p)).collect();
        t.absorb_ef(b"pool-prod-evals", &evals);
        put_efs(&mut out, &evals);
        for (v, value) in evals.iter().enumerate() {
            claims.push(TClaim {
                point: pool_point(sh, i, ps.kl + v, &point),
                value: *value,
            });
        }
    }
    progress(0.9);
    // Batch all claims on T into one opening.
    if let Some(c) = &committed_t {
        let rho = t.challenges(b"batch-rho", claims.len());
        let mut wt = vec![EF::ZERO; 1 << sh.witness_vars];
        for (cl, r) in claims.iter().zip(&rho) {
            // The eq table of a claim is nonzero only on its segment: build it there.
            let fixed = cl
                .point
                .iter()
                .take_while(|x| **x == EF::ZERO || **x == EF::ONE)
                .count();
            let fixed = fixed.min(cl.point.len());
            let mut start = 0usize;
            for x in &cl.point[..fixed] {
                start = (start << 1) | (*x == EF::ONE) as usize;
            }
            let local = eq_table(&cl.point[fixed..]);
            let base = start << (cl.point.len() - fixed);
            for (j, e) in local.iter().enumerate() {
                wt[base + j] += *r * *e;
            }
        }
        let tv: Vec<EF> = table.iter().map(|v| ef_from_i64(*v)).collect();
        let (sc, point, _, _) = sumcheck::prove(&mut t, tv, wt);
        put_sumcheck(&mut out, &sc);
        let (_, op) = pcs::open(&mut t, c, &point)?;
        op.encode(&mut out);
    }
    progress(1.0);
    Ok((output, out))
}

fn bind(reg: &RegisteredModel, file_hash: &[u8; 32], input: &[i64], output: &[i64]) -> Transcript {
    let mut t = Transcript::new(PROTOCOL);
    t.absorb(b"registered-model-id", &reg.id());
    t.absorb(b"model-file-hash", file_hash);
    t.absorb_i64s(b"input", input);
    t.absorb_i64s(b"output", output);
    t
}

// ---------------------------------------------------------------------------------------------
// Verifier.

/// Verifies `proof` (bytes) for `output = model(input)` against the registered model. The
/// exact proof length is computed from the registered structure and checked before any byte is
/// read; input and output lengths and ranges are checked against the structure. The proof
/// must have been made with [`UNBOUND`] as its file hash ([`verify_bound`] for a key's).
pub fn verify(
    reg: &RegisteredModel,
    input: &[i64],
    output: &[i64],
    proof: &[u8],
) -> Result<(), ZkError> {
    verify_bound(reg, &UNBOUND, input, output, proof)
}

/// [`verify`] for a proof bound to `file_hash` (the model file hash a verifying key commits
/// to): a proof made with another file hash is rejected (its Fiat-Shamir challenges differ).
pub fn verify_bound(
    reg: &RegisteredModel,
    file_hash: &[u8; 32],
    input: &[i64],
    output: &[i64],
    proof: &[u8],
) -> Result<(), ZkError> {
    let sh = registered_shape(reg)?;
    let expected = proof_len(reg)?;
    if proof.len() != expected {
        return Err(ZkError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    let model = &reg.structure;
    let nl = model.layers.len();
    if input.len() != sh.values[0].len || output.len() != sh.values[nl].len {
        return Err(ZkError::Length {
            what: "input/output",
            expected: sh.values[0].len,
            got: input.len(),
        });
    }
    let half = 1i64 << (model.input_bits - 1);
    if let Some(index) = input.iter().position(|v| *v < -half || *v >= half) {
        return Err(ZkError::Range {
            what: "input",
            index,
            value: input[index],
        });
    }
    let omax = sh.values[nl].max_abs;
    if let Some(index) = output.iter().position(|v| (*v as i128).abs() > omax) {
        return Err(ZkError::Range {
            what: "output",
            index,
            value: output[index],
        });
    }
    let mut rd = Reader { b: proof, off: 0 };
    let mut t = bind(reg, file_hash, input, output);
    let mut wroot = None;
    let mut claims: Vec<TClaim> = Vec::new();
    if sh.witness_vars > 0 {
        let mut root = [0u8; 32];
        root.copy_from_slice(rd.take(32)?);
        t.absorb(b"witness-root", &root);
        wroot = Some(Commitment {
            root,
            n_vars: sh.witness_vars as u8,
        });
        let rp = RangeProof::decode(
            sh.witness_vars,
            LIMB,
            rd.take(logup::proof_bytes(sh.witness_vars, LIMB))?,
        )?;
        let (x, v) = logup::verify_range_committed(&mut t, sh.witness_vars, LIMB, &rp)?;
        claims.push(TClaim { point: x, value: v });
    }
    let outl = sh.layouts[nl];
    let mut z = t.challenges(b"output-point", outl.vars());
    let mut claim = outl.eval(output, &z);
    let mut wi = reg.weights.len();
    let rq_index = |k: usize| sh.requants.iter().position(|r| r.layer == k);
    let pool_index = |k: usize| sh.pools.iter().position(|r| r.layer == k);
    for k in (0..nl).rev() {
        let inl = sh.layouts[k];
        match &model.layers[k] {
            Layer::Dense(d) => {
                wi -= 1;
                let b_eval: EF = eq_table(&z)
                    .iter()
                    .zip(&d.bias)
                    .map(|(e, b)| *e * ef_from_i64(*b as i64))
                    .sum();
                let sc = rd.sumcheck(inl.vars())?;
                let (point, fin) = sumcheck::verify(&mut t, k, &sc, inl.vars(), claim - b_eval)?;
                let x_eval = if k > 0 {
                    let x = rd.ef()?;
                    t.absorb_ef(b"x-eval", &[x]);
                    x
                } else {
                    inl.eval(input, &point)
                };
                let full: Vec<EF> = z.iter().chain(&point).copied().collect();
                let op = rd.opening(sh.weight_vars[wi])?;
                let w_eval = pcs::verify(&mut t, &reg.weights[wi], &full, &op)?;
                if w_eval * x_eval != fin {
                    return Err(ZkError::SumcheckFinal { layer: k });
                }
                z = point;
                claim = x_eval;
            }
            Layer::Conv2d(cv) => {
                wi -= 1;
                let outl = sh.layouts[k + 1];
                let (z_o, z_p) = z.split_at(outl.gbits());
                let b_eval: EF = eq_table(z_o)
                    .iter()
                    .zip(&cv.bias)
                    .map(|(e, b)| *e * ef_from_i64(*b as i64))
                    .sum::<EF>()
                    * prefix_mle(outl.glen, z_p);
                let cb = log2_ceil(taps(cv));
                let sc = rd.sumcheck(cb)?;
                let (point, fin) = sumcheck::verify(&mut t, k, &sc, cb, claim - b_eval)?;
                let eq_p = eq_table(z_p);
                let eq_t = eq_table(&point);
                let u = if k > 0 {
                    let u = rd.ef()?;
                    t.absorb_ef(b"im2col-eval", &[u]);
                    u
                } else {
                    let mut u = EF::ZERO;
                    let placed = inl.place(input);
                    gather(cv, inl, &eq_p, &eq_t, |j, w| {
                        u += w * ef_from_i64(placed[j])
                    });
                    u
                };
                let full: Vec<EF> = z_o.iter().chain(&point).copied().collect();
                let op = rd.opening(sh.weight_vars[wi])?;
                let w_eval = pcs::verify(&mut t, &reg.weights[wi], &full, &op)?;
                if w_eval * u != fin {
                    return Err(ZkError::SumcheckFinal { layer: k });
                }
                if k > 0 {
                    let sc = rd.sumcheck(inl.vars())?;
                    let (p2, fin2) = sumcheck::verify(&mut t, k, &sc, inl.vars(), u)?;
                    let x_eval = rd.ef()?;
                    t.absorb_ef(b"x-eval", &[x_eval]);
                    let eq_j = eq_table(&p2);
                    let mut k_eval = EF::ZERO;
                    gather(cv, inl, &eq_p, &eq_t, |j, w| k_eval += w * eq_j[j]);
                    if x_eval * k_eval != fin2 {
                        return Err(ZkError::SumcheckFinal { layer: k });
                    }
                    z = p2;
                    claim = x_eval;
                } else {
                    z = Vec::new();
                }
            }
            Layer::MaxPool2d(p) => {
                let i = pool_index(k).ok_or(ZkError::Model("shape mismatch".into()))?;
                let ps = &sh.pools[i];
                let outl = ps.layout;
                let bound = ef_from_i64(ps.bound);
                let ev_z = rd.efs(ps.kl)?;
                t.absorb_ef(b"pool-y-evals", &ev_z);
                if comb_limbs(&ev_z) - bound * outl.indicator(&z) != claim {
                    return Err(ZkError::SumcheckFinal { layer: k });
                }
                for (v, value) in ev_z.iter().enumerate() {
                    claims.push(TClaim {
                        point: pool_point(&sh, i, v, &z),
                        value: *value,
                    });
                }
                let r = t.challenges(b"pool-point", outl.vars());
                let rt = t.challenges(b"pool-tap", ps.tap_bits());
                let ev_r = rd.efs(ps.nvec())?;
                t.absorb_ef(b"pool-evals", &ev_r);
                for (v, value) in ev_r.iter().enumerate() {
                    claims.push(TClaim {
                        point: pool_point(&sh, i, v, &r),
                        value: *value,
                    });
                }
                let y_r = comb_limbs(&ev_r[..ps.kl]) - bound * outl.indicator(&r);
                let eq_t = eq_table(&rt);
                let d_sum: EF = (0..ps.taps)
                    .map(|tp| {
                        let lo = ps.kl * (1 + tp);
                        eq_t[tp] * comb_limbs(&ev_r[lo..lo + ps.kl])
                    })
                    .sum();
                // The gathered inputs sum_{p,t} eq(r,p) eq(rt,t) x[window(p,t)].
                let g = y_r * prefix_mle(ps.taps, &rt) - d_sum;
                let eq_r = eq_table(&r);
                if k > 0 {
                    let sc = rd.sumcheck(inl.vars())?;
                    let (p2, fin2) = sumcheck::verify(&mut t, k, &sc, inl.vars(), g)?;
                    let x_eval = rd.ef()?;
                    t.absorb_ef(b"x-eval", &[x_eval]);
                    let eq_j = eq_table(&p2);
                    let mut k_eval = EF::ZERO;
                    pool_gather(p, inl, outl, &eq_r, &eq_t, |j, w| k_eval += w * eq_j[j]);
                    if x_eval * k_eval != fin2 {
                        return Err(ZkError::SumcheckFinal { layer: k });
                    }
                    z = p2;
                    claim = x_eval;
                } else {
                    let placed = inl.place(input);
                    let mut gv = EF::ZERO;
                    pool_gather(p, inl, outl, &eq_r, &eq_t, |j, w| {
                        gv += w * ef_from_i64(placed[j])
                    });
                    if gv != g {
                        return Err(ZkError::SumcheckFinal { layer: k });
                    }
                    z = Vec::new();
                }
            }
            Layer::Add(a) => {
                let from = a.from as usize;
                let v_eval = if from > 0 {
                    let i = rq_index(from - 1).ok_or(ZkError::Model("shape mismatch".into()))?;
                    let rq = &sh.requants[i];
                    let Layer::Requant(r) = &model.layers[from - 1] else {
                        return Err(ZkError::Model("shape mismatch".into()));
                    };
                    let evals = rd.efs(rq.ke)?;
                    t.absorb_ef(b"add-evals", &evals);
                    for (v, value) in evals.iter().enumerate() {
                        claims.push(TClaim {
                            point: global_point(&sh, i, v, &z),
                            value: *value,
                        });
                    }
                    ef_from_i64(r.lo()) * inl.indicator(&z) + comb_limbs(&evals)
                } else {
                    inl.eval(input, &z)
                };
                claim = (claim - ef_from_i64(a.from_multiplier) * v_eval)
                    * ef_from_i64(a.x_multiplier).inverse();
                if k == 0 && claim != inl.eval(input, &z) {
                    return Err(ZkError::SumcheckFinal { layer: k });
                }
            }
            Layer::Requant(r) => {
                let i = rq_index(k).ok_or(ZkError::Model("shape mismatch".into()))?;
                let rq = &sh.requants[i];
                let evals = rd.efs(rq.nvec())?;
                t.absorb_ef(b"requant-evals", &evals);
                let rc = recombine(rq, r, &evals);
                let ind = inl.indicator(&z);
                if rc.e_shift_gap != EF::ZERO
                    || rc.s_shift_gap != EF::ZERO
                    || ef_from_i64(r.lo()) * ind + rc.e != claim
                {
                    return Err(ZkError::Requant { layer: k, index: 0 });
                }
                for (v, value) in evals.iter().enumerate() {
                    claims.push(TClaim {
                        point: global_point(&sh, i, v, &z),
                        value: *value,
                    });
                }
                claim = implied_input(r, &rc, ind);
                if k == 0 && claim != inl.eval(input, &z) {
                    return Err(ZkError::Requant { layer: k, index: 0 });
                }
            }
        }
    }
    for (i, rq) in sh.requants.iter().enumerate() {
        let Layer::Requant(r) = &model.layers[rq.layer] else {
            return Err(ZkError::Model("shape mismatch".into()));
        };
        let m = rq.layout.vars();
        let rp = t.challenges(b"prod-point", m);
        let beta = t.challenge(b"prod-beta");
        let mut c = EF::ZERO;
        let mut point = Vec::with_capacity(m);
        for round in 0..m {
            let e = [rd.ef()?, rd.ef()?, rd.ef()?, rd.ef()?];
            if e[0] + e[1] != c {
                return Err(ZkError::SumcheckRound {
                    layer: rq.layer,
                    round,
                });
            }
            t.absorb_ef(b"prod-round", &e);
            let x = t.challenge(b"prod-r");
            c = interpolate3(&e, x);
            point.push(x);
        }
        let evals = rd.efs(rq.nvec())?;
        t.absorb_ef(b"prod-evals", &evals);
        let rc = recombine(rq, r, &evals);
        let ind = rq.layout.indicator(&point);
        let eh = ind * EF::from_u64((1u64 << rq.e_bits) - 1) - rc.e;
        let eq: EF = rp
            .iter()
            .zip(&point)
            .map(|(a, b)| *a * *b + (EF::ONE - *a) * (EF::ONE - *b))
            .product();
        if eq * (rc.dh * eh + beta * rc.dl * rc.e) != c {
            return Err(ZkError::SumcheckFinal { layer: rq.layer });
        }
        for (v, value) in evals.iter().enumerate() {
            claims.push(TClaim {
                point: global_point(&sh, i, v, &point),
                value: *value,
            });
        }
    }
    for (i, ps) in sh.pools.iter().enumerate() {
        let m = ps.layout.vars();
        let rp = t.challenges(b"pool-prod-point", m);
        let deg = ps.taps + 1;
        let mut c = EF::ZERO;
        let mut point = Vec::with_capacity(m);
        for round in 0..m {
            let e = rd.efs(deg + 1)?;
            if e[0] + e[1] != c {
                return Err(ZkError::SumcheckRound {
                    layer: ps.layer,
                    round,
                });
            }
            t.absorb_ef(b"pool-prod-round", &e);
            let x = t.challenge(b"pool-prod-r");
            c = interpolate(&e, x);
            point.push(x);
        }
        let evals = rd.efs(ps.taps * ps.kl)?;
        t.absorb_ef(b"pool-prod-evals", &evals);
        let eq: EF = rp
            .iter()
            .zip(&point)
            .map(|(a, b)| *a * *b + (EF::ONE - *a) * (EF::ONE - *b))
            .product();
        let prod: EF = evals.chunks_exact(ps.kl).map(comb_limbs).product();
        if eq * prod != c {
            return Err(ZkError::SumcheckFinal { layer: ps.layer });
        }
        for (v, value) in evals.iter().enumerate() {
            claims.push(TClaim {
                point: pool_point(&sh, i, ps.kl + v, &point),
                value: *value,
            });
        }
    }
    if let Some(com) = &wroot {
        let rho = t.challenges(b"batch-rho", claims.len());
        let total: EF = claims.iter().zip(&rho).map(|(c, r)| c.value * *r).sum();
        let n = sh.witness_vars;
        let sc = rd.sumcheck(n)?;
        let (point, fin) = sumcheck::verify(&mut t, nl, &sc, n, total)?;
        let op = rd.opening(n)?;
        let t_eval = pcs::verify(&mut t, com, &point, &op)?;
        let w_eval: EF = claims
            .iter()
            .zip(&rho)
            .map(|(c, r)| {
                *r * c
                    .point
                    .iter()
                    .zip(&point)
                    .map(|(a, b)| *a * *b + (EF::ONE - *a) * (EF::ONE - *b))
                    .product::<EF>()
            })
            .sum();
        if t_eval * w_eval != fin {
            return Err(ZkError::SumcheckFinal { layer: nl });
        }
    }
    if rd.off != proof.len() {
        return Err(ZkError::ProofLength {
            expected: rd.off,
            got: proof.len(),
        });
    }
    Ok(())
}

/// Soundness error of one v2 proof as `-log2(epsilon)`, by union bound over every
/// Schwartz-Zippel step and sum-check round (error numerators over `|EF|`) plus the column-query
/// term `(3/4)^256` of each Ligero opening (one per linear layer and one for the witness).
pub fn soundness_bits(reg: &RegisteredModel) -> Result<f64, ZkError> {
    let sh = registered_shape(reg)?;
    let nl = reg.structure.layers.len();
    let mut terms = sh.layouts[nl].vars() as f64; // output point
    let mut openings = 0usize;
    let mut pcs_rows = 0f64;
    let mut wi = 0;
    for (k, l) in reg.structure.layers.iter().enumerate() {
        match l {
            Layer::Dense(_) => {
                terms += 2.0 * sh.layouts[k].vars() as f64;
            }
            Layer::Conv2d(c) => {
                terms += 2.0 * log2_ceil(taps(c)) as f64;
                if k > 0 {
                    terms += 2.0 * sh.layouts[k].vars() as f64;
                }
            }
            Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => continue,
        }
        pcs_rows += 2f64.powi(pcs::split(sh.weight_vars[wi]).0 as i32) + 1.0;
        openings += 1;
        wi += 1;
    }
    for rq in &sh.requants {
        let m = rq.layout.vars() as f64;
        // rounding identity, output relation and two top-limb identities at the chain point;
        // product check: eq point, beta, degree-3 rounds.
        terms += 4.0 * m + (m + 1.0) + 3.0 * m;
    }
    for ps in &sh.pools {
        let m = ps.layout.vars() as f64;
        // window identity at (tap, position), gather sum-check (degree 2 over the input),
        // product check: eq point and degree-(taps + 1) rounds.
        terms += m + ps.tap_bits() as f64;
        if ps.layer > 0 {
            terms += 2.0 * sh.layouts[ps.layer].vars() as f64;
        }
        terms += m + (ps.taps as f64 + 1.0) * m;
    }
    if sh.witness_vars > 0 {
        let n = sh.witness_vars;
        terms += logup::error_terms(n, LIMB);
        terms += 1.0 + 2.0 * n as f64; // batching (rho) + its sum-check
        pcs_rows += 2f64.powi(pcs::split(n).0 as i32) + 1.0;
        openings += 1;
    }
    let eps = (terms + pcs_rows) * 2f64.powf(-LOG2_EF)
        + openings as f64 * 0.75f64.powi(pcs::QUERIES as i32);
    Ok(-eps.log2())
}

// ---------------------------------------------------------------------------------------------
// Registration range proof: every committed weight is a signed `weight_bits` integer.

pub const REGISTRATION_PROTOCOL: &[u8] =
    opal_domains::label::ZK_REGISTRATION_WEIGHT_RANGE.as_bytes();

fn weight_bits(l: &Layer) -> Option<usize> {
    match l {
        Layer::Dense(d) => Some(d.weight_bits as usize),
        Layer::Conv2d(c) => Some(c.weight_bits as usize),
        Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => None,
    }
}

/// Exact length of the registration proof of `reg`.
pub fn registration_proof_len(reg: &RegisteredModel) -> Result<usize, ZkError> {
    let sh = registered_shape(reg)?;
    Ok(reg
        .structure
        .layers
        .iter()
        .filter_map(weight_bits)
        .zip(&sh.weight_vars)
        .map(|(b, n)| logup::proof_bytes(*n, b) + pcs::opening_bytes(*n))
        .sum())
}

#[cfg(feature = "prover")]
/// Made once at registration (by whoever registers the model): for every linear layer, a logUp
/// range proof (committed mode) that each entry of the committed weight table plus
/// `2^(weight_bits-1)` lies in `[0, 2^weight_bits)` (padding entries are 0, hence in range),
/// whose leaf claim is discharged by an opening of the weight commitment. With it a verifier
/// need not trust the registrant for the magnitude bounds that protocol v2's rounding identity
/// relies on.
pub fn prove_registration(pm: &ProverModel, reg: &RegisteredModel) -> Result<Vec<u8>, ZkError> {
    let mut t = Transcript::new(REGISTRATION_PROTOCOL);
    t.absorb(b"registered-model-id", &reg.id());
    let mut out = Vec::new();
    let mut wi = 0;
    for (k, l) in pm.model.layers.iter().enumerate() {
        let Some(bits) = weight_bits(l) else {
            continue;
        };
        let table = match l {
            Layer::Dense(d) => dense_table(d, pm.shape.layouts[k]),
            Layer::Conv2d(c) => crate::conv::weight_table(c),
            Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => continue,
        };
        let off = 1i64 << (bits - 1);
        let vals: Vec<i64> = table
            .iter()
            .map(|f| {
                let u = p3_field::PrimeField64::as_canonical_u64(f);
                let s = if u > 0x7fff_ffff_ffff_ffff {
                    u.wrapping_sub(0xffff_ffff_0000_0001) as i64
                } else {
                    u as i64
                };
                s + off
            })
            .collect();
        let (rp, x) = logup::prove_range_committed(&mut t, &vals, bits)?;
        rp.encode(&mut out);
        let (_, op) = pcs::open(&mut t, &pm.committed[wi], &x)?;
        op.encode(&mut out);
        wi += 1;
    }
    Ok(out)
}

/// Verifies a registration proof (length checked against the structure before reading).
pub fn verify_registration(reg: &RegisteredModel, proof: &[u8]) -> Result<(), ZkError> {
    let sh = registered_shape(reg)?;
    let expected = registration_proof_len(reg)?;
    if proof.len() != expected {
        return Err(ZkError::ProofLength {
            expected,
            got: proof.len(),
        });
    }
    let mut t = Transcript::new(REGISTRATION_PROTOCOL);
    t.absorb(b"registered-model-id", &reg.id());
    let mut rd = Reader { b: proof, off: 0 };
    let bits_list: Vec<usize> = reg
        .structure
        .layers
        .iter()
        .filter_map(weight_bits)
        .collect();
    for (wi, bits) in bits_list.into_iter().enumerate() {
        let n = sh.weight_vars[wi];
        let rp = RangeProof::decode(n, bits, rd.take(logup::proof_bytes(n, bits))?)?;
        let (x, v) = logup::verify_range_committed(&mut t, n, bits, &rp)?;
        let op = rd.opening(n)?;
        let w = pcs::verify(&mut t, &reg.weights[wi], &x, &op)?;
        if w + EF::from_u64(1u64 << (bits - 1)) != v {
            return Err(ZkError::SumcheckFinal { layer: wi });
        }
    }
    Ok(())
}

/// Soundness of the registration proof, `-log2(epsilon)` (logUp terms and one opening per layer).
pub fn registration_soundness_bits(reg: &RegisteredModel) -> Result<f64, ZkError> {
    let sh = registered_shape(reg)?;
    let mut eps = 0f64;
    for (bits, n) in reg
        .structure
        .layers
        .iter()
        .filter_map(weight_bits)
        .zip(&sh.weight_vars)
    {
        let rows = 2f64.powi(pcs::split(*n).0 as i32) + 1.0;
        eps += (logup::error_terms(*n, bits) + rows) * 2f64.powf(-LOG2_EF)
            + 0.75f64.powi(pcs::QUERIES as i32);
    }
    Ok(-eps.log2())
}
