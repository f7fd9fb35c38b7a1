//! Fiat-Shamir transcript over BLAKE3. Every absorbed item is framed as
//! `label_len (u8) || label || data_len (u64 LE) || data`; a challenge is the first 32 bytes of
//! the XOF of the current state (after absorbing the challenge label), which are then absorbed
//! back so later challenges depend on earlier ones.

use crate::field::{ef_from_uniform, ef_to_bytes, EF};

pub const DOMAIN: &str = opal_domains::derive::ZK_TRANSCRIPT;

#[derive(Clone)]
pub struct Transcript {
    h: blake3::Hasher,
}

impl Transcript {
    pub fn new(protocol: &[u8]) -> Self {
        let mut t = Self {
            h: blake3::Hasher::new_derive_key(DOMAIN),
        };
        t.absorb(b"protocol", protocol);
        t
    }

    pub fn absorb(&mut self, label: &[u8], data: &[u8]) {
        self.h.update(&[label.len() as u8]);
        self.h.update(label);
        self.h.update(&(data.len() as u64).to_le_bytes());
        self.h.update(data);
    }

    pub fn absorb_i64s(&mut self, label: &[u8], xs: &[i64]) {
        let mut buf = Vec::with_capacity(xs.len() * 8);
        xs.iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
        self.absorb(label, &buf);
    }

    pub fn absorb_ef(&mut self, label: &[u8], xs: &[EF]) {
        let mut buf = Vec::with_capacity(xs.len() * 16);
        xs.iter()
            .for_each(|x| buf.extend_from_slice(&ef_to_bytes(x)));
        self.absorb(label, &buf);
    }

    pub fn challenge(&mut self, label: &[u8]) -> EF {
        self.absorb(b"challenge", label);
        let mut out = [0u8; 32];
        self.h.finalize_xof().fill(&mut out);
        self.absorb(b"challenge-value", &out);
        ef_from_uniform(&out)
    }

    pub fn challenges(&mut self, label: &[u8], n: usize) -> Vec<EF> {
        (0..n).map(|_| self.challenge(label)).collect()
    }
}

impl Transcript {
    /// A uniform index in `[0, n)` for `n` a power of two (exactly uniform).
    pub fn challenge_index(&mut self, label: &[u8], n: usize) -> usize {
        self.absorb(b"challenge-index", label);
        let mut out = [0u8; 8];
        self.h.finalize_xof().fill(&mut out);
        self.absorb(b"challenge-value", &out);
        (u64::from_le_bytes(out) as usize) & (n.max(1) - 1)
    }
}
