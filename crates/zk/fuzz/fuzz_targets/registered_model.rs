//! Registered-model decoding (what `opal zk verify` reads from registered.bin) and everything
//! the verifier derives from it, on hostile bytes: never panics, work bounded before reading.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use opal_zk::v2::{self, RegisteredModel};

#[path = "common.rs"]
mod common;

static FIX: OnceLock<common::Fixture> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let f = FIX.get_or_init(common::fixture);
    // Raw bytes, and the honest encoding with the fuzz input XORed in.
    let mut enc = f.reg.to_bytes();
    for (x, b) in enc.iter_mut().zip(data) {
        *x ^= b;
    }
    for bytes in [data, &enc[..]] {
        if let Ok(reg) = RegisteredModel::from_bytes(bytes) {
            let _ = v2::proof_len(&reg);
            let _ = v2::soundness_bits(&reg);
            let _ = v2::registration_proof_len(&reg);
            let ok = v2::verify(&reg, &f.input, &f.output, &f.proof).is_ok();
            assert!(!ok || reg == f.reg, "the proof verified against another registered model");
        }
    }
});
