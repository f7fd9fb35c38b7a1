//! Deterministic inputs shared by the benchmarks.

use opal_types::{Address, SecretKey};

/// The benchmarks' seeded generator: the workspace's one SplitMix64.
pub use opal_quant::SplitMix64 as Rng;

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
