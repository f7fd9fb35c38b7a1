//! A small, deterministic mutation fuzzer for Opal's decoders of untrusted bytes.
//!
//! Design: each target starts from valid encodings (its corpus), applies stacked byte-level
//! mutations chosen by a seeded generator, and hands every mutant to the decoder inside
//! `catch_unwind`: a panic is a bug, and it is reported with the mutant's bytes and the seed that
//! reproduces it. The run is bounded by an iteration count, not by time, so it gives the same
//! inputs on every machine: `SEED` picks the generator's seed (default 2026) and
//! `OPAL_FUZZ_ITERS` overrides every target's count for a longer hunt. Targets live in
//! `tests/decoders.rs`; they also check what the decoder promises beyond not panicking (one
//! accepted encoding per value; a changed proof never verifies).
//!
//! cargo-fuzz (libFuzzer, coverage-guided) would find more, but needs a nightly toolchain that
//! this project's machines cannot install; this harness is what CI can run on stable.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// The project's seeded generator (SplitMix64, identical everywhere), with a bounded draw.
pub struct Rng(opal_quant::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(opal_quant::SplitMix64::new(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The seed of this run: `SEED`, else 2026.
pub fn seed() -> u64 {
    std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026)
}

/// Iterations for a target whose default is `default`: `OPAL_FUZZ_ITERS` if set.
pub fn iterations(default: usize) -> usize {
    std::env::var("OPAL_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Values that break length prefixes and counters.
const INTERESTING_U32: [u32; 8] = [0, 1, 2, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff];

/// One to four stacked mutations of `base`, sometimes spliced with another corpus entry.
pub fn mutate(rng: &mut Rng, base: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                b[i] = [0u8, 1, 0x7f, 0x80, 0xff][rng.below(5)];
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
                b[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            3 => b.truncate(rng.below(len + 1)),
            4 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let extra: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                b.splice(at..at, extra);
            }
            5 if len > 0 => {
                let (i, n) = (rng.below(len), 1 + rng.below(32));
                let end = (i + n).min(len);
                b.drain(i..end);
            }
            6 if len > 0 => {
                let (i, n) = (rng.below(len), 1 + rng.below(64));
                let chunk = b[i..(i + n).min(len)].to_vec();
                let at = rng.below(len + 1);
                b.splice(at..at, chunk);
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => {
                let i = rng.below(len);
                b[i] = rng.next_u64() as u8;
            }
            _ => b.push(rng.next_u64() as u8),
        }
    }
    b
}

/// Run `check` on every corpus entry and on `iters` mutants. `check` returns `Err(why)` when
/// the decoder broke a promise (besides panicking); both fail the test with a reproducer.
pub fn fuzz(
    name: &str,
    corpus: &[Vec<u8>],
    iters: usize,
    check: impl Fn(&[u8]) -> Result<(), String>,
) -> Stats {
    assert!(!corpus.is_empty(), "{name}: an empty corpus fuzzes nothing");
    let seed = seed();
    let mut rng = Rng::new(seed ^ fnv(name));
    let mut stats = Stats::default();
    let run = |input: &[u8], i: usize| {
        match catch_unwind(AssertUnwindSafe(|| check(input))) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => panic!(
                "{name}: {why}\n  input ({} bytes): {}\n  reproduce: SEED={seed} (iteration {i})",
                input.len(),
                hex::encode(input)
            ),
            Err(_) => panic!(
                "{name}: the decoder panicked\n  input ({} bytes): {}\n  reproduce: SEED={seed} (iteration {i})",
                input.len(),
                hex::encode(input)
            ),
        }
    };
    for (i, c) in corpus.iter().enumerate() {
        run(c, i);
    }
    for i in 0..iters {
        let base = &corpus[rng.below(corpus.len())];
        let m = mutate(&mut rng, base, corpus);
        stats.changed += usize::from(m != *base);
        run(&m, i);
        stats.runs += 1;
    }
    stats
}

/// What a run did (printed by the targets, so a run that tried nothing shows it).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub runs: usize,
    pub changed: usize,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
