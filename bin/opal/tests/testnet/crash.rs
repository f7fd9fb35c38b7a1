//! One validator of four is SIGKILLed: the other three keep finalizing; restarted, it catches up
//! by block sync to identical blocks and state roots.

use crate::common::{log, Testnet};
use std::time::Duration;

#[test]
fn three_of_four_keep_finalizing_and_a_restarted_validator_catches_up() {
    let mut tn = Testnet::start(4);
    let t0 = tn.t0();
    let live = [0, 1, 2];

    tn.kill(3);
    let h0 = tn
        .heights(&live)
        .into_iter()
        .map(|h| h.unwrap())
        .max()
        .unwrap();
    log(
        t0,
        format!(
            "SIGKILLed node3 (pid {}); others at {:?}",
            tn.validators[3].pid,
            tn.heights(&live)
        ),
    );
    let hs = tn.wait_heights(&live, h0 + 3, Duration::from_secs(30));
    log(
        t0,
        format!("without node3 the chain grew from {h0} to {hs:?}"),
    );
    let common = *hs.iter().min().unwrap();
    tn.assert_same_block(&live, common);

    // Let it fall further behind, then restart it on the same ports.
    let behind = tn.wait_heights(&live, common + 8, Duration::from_secs(30));
    tn.restart(3);
    let target = *behind.iter().max().unwrap();
    log(
        t0,
        format!(
            "restarted node3 at height {:?}; others at {behind:?}",
            tn.height(3)
        ),
    );
    tn.wait_heights(&[3], target, Duration::from_secs(30));
    let all = [0, 1, 2, 3];
    let (hash, root) = tn.assert_same_block(&all, target);
    log(
        t0,
        format!(
            "node3 caught up to {target}: block {}… state root {}… on all 4",
            &hash[..16],
            &root[..16]
        ),
    );
    // And it keeps following the chain with the others.
    let hs = tn.wait_heights(&all, target + 2, Duration::from_secs(20));
    tn.assert_same_block(&all, target + 2);
    tn.assert_no_fork(&all, *hs.iter().min().unwrap());
    log(t0, format!("all 4 at {hs:?}, no fork"));
}
