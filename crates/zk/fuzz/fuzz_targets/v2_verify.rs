//! Protocol v2 verifier on hostile proof bytes: the fuzz input is used both as a whole proof and
//! XORed into the honest proof. Never panics; any change to the honest proof is rejected.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use opal_zk::v2;

#[path = "common.rs"]
mod common;

static FIX: OnceLock<common::Fixture> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let f = FIX.get_or_init(common::fixture);
    let r = v2::verify(&f.reg, &f.input, &f.output, data);
    assert!(
        r.is_err() || data == f.proof.as_slice(),
        "bytes other than the honest proof were accepted"
    );
    if data.len() < 4 {
        return;
    }
    let start = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize % f.proof.len();
    let mut p = f.proof.clone();
    let mut changed = false;
    for (i, b) in data[4..].iter().enumerate() {
        if let Some(x) = p.get_mut(start + i) {
            *x ^= b;
            changed |= *b != 0;
        }
    }
    let r = v2::verify(&f.reg, &f.input, &f.output, &p);
    assert!(!changed || r.is_err(), "a modified proof was accepted");
});
