//! Two validators of four down: less than 2/3 of the voting power is left, so the chain halts
//! without forking; one comes back and finalizing resumes.

use crate::common::{log, Testnet};
use std::time::{Duration, Instant};

#[test]
fn two_down_halts_without_fork_and_one_back_resumes() {
    let mut tn = Testnet::start(4);
    let t0 = tn.t0();
    let live = [0, 1];

    tn.kill(2);
    tn.kill(3);
    log(
        t0,
        format!(
            "SIGKILLed node2 and node3; node0/node1 at {:?}",
            tn.heights(&live)
        ),
    );
    // A block already voted on when they died may still land: let it settle.
    std::thread::sleep(Duration::from_secs(2));
    let halted = tn.heights(&live);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        assert_eq!(
            tn.heights(&live),
            halted,
            "a height was finalized with half the voting power"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let top = halted.iter().map(|h| h.unwrap()).max().unwrap();
    tn.assert_no_fork(&live, top);
    log(
        t0,
        format!("halted at {halted:?} for 6 s; no fork at heights 1..={top}"),
    );

    tn.restart(2);
    let three = [0, 1, 2];
    let hs = tn.wait_heights(&three, top + 2, Duration::from_secs(40));
    log(
        t0,
        format!("node2 back: finalizing resumed, heights {hs:?}"),
    );
    tn.assert_no_fork(&three, *hs.iter().min().unwrap());
    log(t0, "no fork among node0..node2");
}
