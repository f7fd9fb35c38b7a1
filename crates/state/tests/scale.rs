//! Rough throughput check (ignored by default):
//! `cargo test -p opal-state --release --test scale -- --ignored --nocapture`

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

#[test]
#[ignore = "measurement, not a check: run with --release --ignored --nocapture (the real numbers come from opal-bench commit)"]
fn commit_throughput_as_state_grows() {
    let (_d, s) = common::fresh();
    let per_block = 10_000u64;
    let blocks: u64 = std::env::var("OPAL_STATE_SCALE_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    for v in 0..blocks {
        let mut m = BTreeMap::new();
        for i in 0..per_block {
            m.insert(
                format!("acct/{:08}", v * per_block + i).into_bytes(),
                Some(vec![7u8; 64]),
            );
        }
        // plus updates of existing accounts
        for i in 0..1_000u64.min(v * per_block) {
            m.insert(
                format!("acct/{:08}", (i * 7919) % (v * per_block)).into_bytes(),
                Some(vec![v as u8; 64]),
            );
        }
        let t = Instant::now();
        s.commit(v, m, BTreeMap::new()).unwrap();
        let commit = t.elapsed();
        let snap = s.snapshot().unwrap();
        let t = Instant::now();
        for i in 0..1_000u64 {
            let k = format!("acct/{:08}", (i * 104_729) % ((v + 1) * per_block));
            assert!(snap.get(k.as_bytes()).unwrap().is_some());
        }
        let gets = t.elapsed();
        let t = Instant::now();
        for i in 0..100u64 {
            let k = format!("acct/{:08}", (i * 104_729) % ((v + 1) * per_block));
            snap.get_with_proof(k.as_bytes()).unwrap();
        }
        let proofs = t.elapsed();
        println!(
            "v={v} keys={} commit={commit:?} 1k gets={gets:?} 100 proofs={proofs:?}",
            (v + 1) * per_block
        );
    }
}
