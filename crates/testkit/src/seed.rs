//! The seed of randomized tests: `SEED` in the environment (decimal or `0x` hex), else the
//! given default, so every run is the same unless someone asks for another.

/// The seed for a test whose default is `default`: `SEED` if it is set and parses. The seed is
/// printed (visible with `--nocapture`, and in a failing test's output) so a failure can be
/// replayed with `SEED=<n>`.
pub fn seed(default: u64) -> u64 {
    let s = from_env(std::env::var("SEED").ok().as_deref()).unwrap_or(default);
    println!("SEED={s}");
    s
}

fn from_env(v: Option<&str>) -> Option<u64> {
    let v = v?.trim();
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// A generator from [`seed`]: the workspace's SplitMix64, identical on every machine.
pub fn rng(default: u64) -> opal_quant::SplitMix64 {
    opal_quant::SplitMix64::new(seed(default))
}

#[cfg(test)]
mod tests {
    use super::from_env;

    #[test]
    fn seeds_parse_in_decimal_and_hex_and_garbage_is_ignored() {
        assert_eq!(from_env(Some("42")), Some(42));
        assert_eq!(from_env(Some(" 0x2a ")), Some(42));
        assert_eq!(from_env(Some("forty-two")), None);
        assert_eq!(from_env(None), None);
    }
}

/// `n` deterministic, incompressible-looking bytes from `seed` (SplitMix64).
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut g = opal_quant::SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&g.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}
