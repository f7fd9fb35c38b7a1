//! Catch-up speed of a validator that was down for many blocks: node3 is SIGKILLed, the other
//! three finalize at least 60 more blocks, then node3 restarts and value-syncs. The test checks
//! that it reaches the others' height with the same blocks (generous timeout, no speed
//! assertion) and prints the measured rate in blocks per second.

use crate::common::{log, Testnet};
use std::time::{Duration, Instant};

const BEHIND: u64 = 60;

#[test]
fn validator_down_for_many_blocks_catches_up_and_reports_its_speed() {
    let mut tn = Testnet::start(4);
    let t0 = tn.t0();
    let live = [0, 1, 2];

    let down_at = tn.height(3).unwrap();
    tn.kill(3);
    let hs = tn.wait_heights(&live, down_at + BEHIND, Duration::from_secs(180));
    let target = *hs.iter().max().unwrap();
    log(
        t0,
        format!("node3 down at {down_at}; the others finalized up to {hs:?}"),
    );

    let spawned = Instant::now();
    tn.restart(3);
    let api_up = spawned.elapsed();
    let start_h = tn.height(3).unwrap_or(down_at);
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let h = tn.height(3).unwrap_or(0);
        if h >= target {
            break spawned.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "node3 at {h}, not at {target} 180 s after restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let blocks = target - down_at;
    let sync_time = done.saturating_sub(api_up);
    log(
        t0,
        format!(
            "catch-up: {blocks} blocks ({down_at} -> {target}) in {:.2} s from process start \
             = {:.1} blocks/s; API up after {:.2} s (at height {start_h}), then {:.1} blocks/s",
            done.as_secs_f64(),
            blocks as f64 / done.as_secs_f64(),
            api_up.as_secs_f64(),
            (target.saturating_sub(start_h)) as f64 / sync_time.as_secs_f64().max(1e-3),
        ),
    );
    let all = [0, 1, 2, 3];
    tn.assert_same_block(&all, target);
    let hs = tn.wait_heights(&all, target + 2, Duration::from_secs(30));
    tn.assert_no_fork(&all, *hs.iter().min().unwrap());
    log(t0, format!("all 4 at {hs:?}, no fork"));
}
