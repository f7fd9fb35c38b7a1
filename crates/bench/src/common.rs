//! Deterministic inputs shared by the benchmarks.

use opal_types::{Address, SecretKey};

/// SplitMix64: a tiny deterministic generator, good enough to spread keys and pick indices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The `i`-th benchmark key (a fixed seed per index, so runs are reproducible).
pub fn key(i: u64) -> SecretKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    seed[8..16].copy_from_slice(b"opalbnch");
    SecretKey::from_seed(seed)
}

/// The `i`-th synthetic account address (no key behind it; for state-size benchmarks).
pub fn address(i: u64) -> Address {
    let mut r = Rng::new(i ^ 0xA5A5_5A5A_0F0F_F0F0);
    let mut a = [0u8; 20];
    a[..8].copy_from_slice(&r.next_u64().to_le_bytes());
    a[8..16].copy_from_slice(&r.next_u64().to_le_bytes());
    a[16..].copy_from_slice(&i.to_le_bytes()[..4]);
    Address(a)
}
