//! Sum-check for `sum_{b in {0,1}^n} f(b) * g(b) = claim` with `f`, `g` multilinear, so each
//! round polynomial has degree <= 2. The prover sends each round polynomial as its values at
//! 0, 1, 2 (exactly three elements: the degree bound is enforced by the format). The verifier
//! checks `p(0) + p(1) = claim`, absorbs the three values, draws `r`, and sets `claim = p(r)`.
//! Variables are bound most-significant first (see `mle`).

use crate::error::ZkError;
use crate::field::EF;
use crate::transcript::Transcript;
use p3_field::{Field, PrimeCharacteristicRing};

/// Upper bound on rounds the verifier accepts (2^40-entry tables are far beyond any model here).
pub const MAX_ROUNDS: usize = 40;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SumcheckProof {
    pub rounds: Vec<[EF; 3]>,
}

#[cfg(feature = "prover")]
/// Proves the sum of `f * g` over the hypercube; `f.len() == g.len() == 2^n`.
/// Returns the proof, the challenge point, and the final `(f(r), g(r))`.
pub fn prove(
    t: &mut Transcript,
    mut f: Vec<EF>,
    mut g: Vec<EF>,
) -> (SumcheckProof, Vec<EF>, EF, EF) {
    debug_assert!(f.len() == g.len() && f.len().is_power_of_two());
    let mut rounds = Vec::new();
    let mut point = Vec::new();
    while f.len() > 1 {
        let half = f.len() / 2;
        let (mut p0, mut p1, mut p2) = (EF::ZERO, EF::ZERO, EF::ZERO);
        for i in 0..half {
            let (fl, fh, gl, gh) = (f[i], f[i + half], g[i], g[i + half]);
            p0 += fl * gl;
            p1 += fh * gh;
            p2 += (fh.double() - fl) * (gh.double() - gl);
        }
        let msg = [p0, p1, p2];
        t.absorb_ef(b"sumcheck-round", &msg);
        let r = t.challenge(b"sumcheck-r");
        for i in 0..half {
            f[i] = f[i] + r * (f[i + half] - f[i]);
            g[i] = g[i] + r * (g[i + half] - g[i]);
        }
        f.truncate(half);
        g.truncate(half);
        rounds.push(msg);
        point.push(r);
    }
    (SumcheckProof { rounds }, point, f[0], g[0])
}

/// Value at `r` of the degree-2 polynomial through `(0, e0), (1, e1), (2, e2)`.
pub fn interpolate2(e: &[EF; 3], r: EF) -> EF {
    let two_inv = EF::TWO.inverse();
    let (r1, r2) = (r - EF::ONE, r - EF::TWO);
    e[0] * r1 * r2 * two_inv - e[1] * r * r2 + e[2] * r * r1 * two_inv
}

/// Verifies `n` rounds against `claim`; returns the point and the claim the caller must check
/// equals `f(r) * g(r)`.
pub fn verify(
    t: &mut Transcript,
    layer: usize,
    proof: &SumcheckProof,
    n: usize,
    mut claim: EF,
) -> Result<(Vec<EF>, EF), ZkError> {
    if n > MAX_ROUNDS {
        return Err(ZkError::TooManyRounds(n));
    }
    if proof.rounds.len() != n {
        return Err(ZkError::Length {
            what: "sum-check rounds",
            expected: n,
            got: proof.rounds.len(),
        });
    }
    let mut point = Vec::with_capacity(n);
    for (round, msg) in proof.rounds.iter().enumerate() {
        if msg[0] + msg[1] != claim {
            return Err(ZkError::SumcheckRound { layer, round });
        }
        t.absorb_ef(b"sumcheck-round", msg);
        let r = t.challenge(b"sumcheck-r");
        claim = interpolate2(msg, r);
        point.push(r);
    }
    Ok((point, claim))
}
