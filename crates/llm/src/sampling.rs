//! Seeded, reproducible sampling — and its tolerant re-check by a verifier.
//!
//! For output position `j` (0-based) the sampler:
//! 1. applies the repetition penalty to the logits of every distinct token among the last
//!    [`REPEAT_WINDOW`] tokens of prompt + output so far (CTRL-style: a positive logit is divided
//!    by the penalty, a negative one multiplied; `1.0` disables it);
//! 2. if `temperature <= 0`: greedy, the arg-max (lowest id on ties);
//! 3. otherwise divides by the temperature, orders all tokens by logit descending (id ascending on
//!    ties), keeps the first `top_k` (`0` = all), takes the softmax (in f64) over those, keeps the
//!    shortest prefix whose probability mass reaches `top_p` (at least one token), renormalizes,
//!    and, walking the kept tokens in **id order**, picks the first whose cumulative probability
//!    exceeds `u_j` (id order keeps the cumulative distribution continuous in the logits, so a
//!    verifier with slightly different logits finds the same token);
//! 4. `u_j` in `[0, 1)` is [`draw`]`(seed, j)`: SplitMix64 of `seed + (j + 1) * 0x9E3779B97F4A7C15`,
//!    the top 53 bits divided by 2^53. Counter-based, so a verifier re-derives every draw from the
//!    seed alone, in any order.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// How many previous tokens (prompt included) the repetition penalty looks at.
pub const REPEAT_WINDOW: usize = 64;

/// Sampling parameters. Defaults: seed 0, temperature 0.7, top_p 0.9, top_k 40,
/// repetition_penalty 1.1. `temperature == 0` is greedy decoding.
#[derive(
    Clone, Copy, Debug, PartialEq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
pub struct SamplingParams {
    pub seed: u64,
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: usize,
    pub repetition_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            seed: 0,
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            repetition_penalty: 1.1,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding (temperature 0, no repetition penalty).
    pub fn greedy() -> Self {
        SamplingParams {
            seed: 0,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
        }
    }

    /// Rejects NaN / out-of-range values.
    pub fn validate(&self) -> Result<(), String> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(format!(
                "temperature {} must be finite and >= 0",
                self.temperature
            ));
        }
        if !self.top_p.is_finite() || self.top_p <= 0.0 || self.top_p > 1.0 {
            return Err(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return Err(format!(
                "repetition_penalty {} must be finite and > 0",
                self.repetition_penalty
            ));
        }
        Ok(())
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// The uniform draw in `[0, 1)` used for output position `step` (see module docs).
pub fn draw(seed: u64, step: u64) -> f64 {
    let mut z = seed.wrapping_add(step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Applies the repetition penalty in place, for the tokens of `history`'s last window.
pub(crate) fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let start = history.len().saturating_sub(REPEAT_WINDOW);
    let mut seen: Vec<u32> = history[start..].to_vec();
    seen.sort_unstable();
    seen.dedup();
    for t in seen {
        if let Some(l) = logits.get_mut(t as usize) {
            *l = if *l >= 0.0 {
                *l / penalty
            } else {
                *l * penalty
            };
        }
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Tokens ordered by (penalized) logit descending, id ascending on ties; the first `k` only
/// (`k == 0` or `k >= len`: all).
fn ordered_candidates(logits: &[f32], k: usize) -> Vec<u32> {
    let cmp = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_unstable_by(cmp);
    idx
}

/// Softmax (f64) of `logits[c] / temperature` over the candidates, in candidate order.
fn probs(logits: &[f32], cands: &[u32], temperature: f32) -> Vec<f64> {
    let t = temperature as f64;
    let max = cands
        .iter()
        .map(|&c| logits[c as usize] as f64 / t)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut p: Vec<f64> = cands
        .iter()
        .map(|&c| ((logits[c as usize] as f64 / t) - max).exp())
        .collect();
    let s: f64 = p.iter().sum();
    for x in &mut p {
        *x /= s;
    }
    p
}

/// Number of leading candidates kept by top-p.
fn top_p_cut(p: &[f64], top_p: f32) -> usize {
    if top_p >= 1.0 {
        return p.len();
    }
    let mut acc = 0.0;
    for (i, x) in p.iter().enumerate() {
        acc += x;
        if acc >= top_p as f64 {
            return i + 1;
        }
    }
    p.len()
}

/// Picks output token `step` from raw logits (modified in place by the penalty).
pub(crate) fn sample(
    logits: &mut [f32],
    history: &[u32],
    params: &SamplingParams,
    step: u64,
) -> u32 {
    apply_repetition_penalty(logits, history, params.repetition_penalty);
    if params.is_greedy() {
        return argmax(logits);
    }
    let cands = ordered_candidates(logits, params.top_k);
    let p = probs(logits, &cands, params.temperature);
    let keep = top_p_cut(&p, params.top_p);
    // The draw walks the kept set in token-id order (not probability order): the cumulative
    // distribution is then continuous in the logits, so a verifier whose logits differ slightly
    // (no rank swaps to shift every later interval) finds the token where the draw put it.
    let mut kept: Vec<(u32, f64)> = cands[..keep]
        .iter()
        .cloned()
        .zip(p[..keep].iter().cloned())
        .collect();
    kept.sort_unstable_by_key(|(c, _)| *c);
    let total: f64 = kept.iter().map(|(_, q)| q).sum();
    let u = draw(params.seed, step) * total;
    let mut acc = 0.0;
    for &(c, q) in &kept {
        acc += q;
        if acc > u {
            return c;
        }
    }
    kept[keep - 1].0
}

/// Tolerances of the sampling re-check (see `docs/llm.md` for how they were chosen).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingTolerance {
    /// Greedy: the committed token's penalized logit may be this far below the verifier's max.
    pub logit: f32,
    /// Sampled: the draw may lie this far (in cumulative probability) outside the token's interval.
    pub cdf: f64,
}

impl SamplingTolerance {
    /// 1.0 logit, 0.1 in cumulative probability: for verifiers on the quantized kernels, whose
    /// prefill-vs-decode noise moved an honest draw by up to 0.11 (docs/llm.md).
    pub const DEFAULT: SamplingTolerance = SamplingTolerance {
        logit: 1.0,
        cdf: 0.1,
    };

    /// 0.25 logit, 0.01 in cumulative probability: for verifiers on f32 weights. Honest
    /// verifiers with f32 weights perturbed by a relative `2^-10` moved a draw by at most 0.0009
    /// and the logits by at most 0.11 (at `2^-12`: 0.027; at the realistic 1-4 ulps: 5e-5).
    pub const STRICT_F32: SamplingTolerance = SamplingTolerance {
        logit: 0.25,
        cdf: 0.01,
    };
}

impl Default for SamplingTolerance {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Outcome of re-checking one sampled token against the verifier's logits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenCheck {
    pub ok: bool,
    /// Probability that a uniformly random draw would also have been accepted here (the chance
    /// a wrong seed goes unnoticed at this position); 1.0 for greedy.
    pub pass_probability: f64,
    /// Distance of the draw from the token's interval (negative: inside, by that margin), or for
    /// greedy the logit gap to the maximum.
    pub margin: f64,
}

/// Re-checks that `token` follows from `logits` (the verifier's own, raw), the history, the
/// params and the seed, within `tol`.
pub(crate) fn check_token(
    logits: &mut [f32],
    history: &[u32],
    params: &SamplingParams,
    step: u64,
    token: u32,
    tol: &SamplingTolerance,
) -> TokenCheck {
    if token as usize >= logits.len() {
        return TokenCheck {
            ok: false,
            pass_probability: 0.0,
            margin: f64::INFINITY,
        };
    }
    apply_repetition_penalty(logits, history, params.repetition_penalty);
    if params.is_greedy() {
        let max = logits[argmax(logits) as usize];
        let gap = (max - logits[token as usize]) as f64;
        return TokenCheck {
            ok: gap <= tol.logit as f64,
            pass_probability: 1.0,
            margin: gap,
        };
    }
    let mut cands = ordered_candidates(logits, params.top_k);
    let p_all = probs(logits, &cands, params.temperature);
    let mut keep = top_p_cut(&p_all, params.top_p);
    let pos = cands.iter().position(|&c| c == token);
    match pos {
        Some(i) if i < keep => {}
        Some(i) => {
            // Just outside the verifier's top-p set: accept it as the set's last member if its
            // logit is within tolerance of the last kept one (a borderline case).
            let last = logits[cands[keep - 1] as usize];
            if last - logits[token as usize] > tol.logit {
                return TokenCheck {
                    ok: false,
                    pass_probability: 0.0,
                    margin: f64::INFINITY,
                };
            }
            cands.swap(keep, i);
            keep += 1;
        }
        None => {
            // Outside the verifier's top-k: the same borderline rule against the k-th logit.
            let last = logits[cands[cands.len() - 1] as usize];
            if last - logits[token as usize] > tol.logit {
                return TokenCheck {
                    ok: false,
                    pass_probability: 0.0,
                    margin: f64::INFINITY,
                };
            }
            cands.truncate(keep);
            cands.push(token);
            keep = cands.len();
        }
    }
    cands.truncate(keep);
    cands.sort_unstable(); // id order, as the sampler walks it
    let p = probs(logits, &cands, params.temperature);
    let total: f64 = p.iter().sum();
    let i = cands
        .iter()
        .position(|&c| c == token)
        .expect("token is a candidate");
    let lo: f64 = p[..i].iter().sum::<f64>() / total;
    let hi = lo + p[i] / total;
    let u = draw(params.seed, step);
    let margin = if u < lo {
        lo - u
    } else if u >= hi {
        u - hi
    } else {
        -(u - lo).min(hi - u)
    };
    let pass_probability = ((hi + tol.cdf).min(1.0) - (lo - tol.cdf).max(0.0)).clamp(0.0, 1.0);
    TokenCheck {
        ok: margin <= tol.cdf,
        pass_probability,
        margin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_and_seed_dependent() {
        let n = 20000;
        let mean: f64 = (0..n).map(|j| draw(42, j)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert_ne!(draw(1, 0), draw(2, 0));
        assert_ne!(draw(1, 0), draw(1, 1));
        assert!((0..1000).all(|j| (0.0..1.0).contains(&draw(7, j))));
    }

    #[test]
    fn sampler_and_checker_agree_on_exact_logits() {
        let logits: Vec<f32> = (0..500).map(|i| ((i * 37 % 101) as f32) / 17.0).collect();
        let params = SamplingParams {
            seed: 9,
            ..Default::default()
        };
        let history = vec![3u32, 5, 7];
        for step in 0..200 {
            let t = sample(&mut logits.clone(), &history, &params, step);
            let c = check_token(
                &mut logits.clone(),
                &history,
                &params,
                step,
                t,
                &SamplingTolerance::default(),
            );
            assert!(c.ok, "step {step}: {c:?}");
        }
        let g = SamplingParams::greedy();
        let t = sample(&mut logits.clone(), &history, &g, 0);
        assert_eq!(
            logits[t as usize],
            logits.iter().cloned().fold(f32::MIN, f32::max)
        );
    }
}
