//! A partitioned minority rejoins: one validator of four is frozen with SIGSTOP, so it sends
//! nothing, answers nothing and hears nothing while the other three keep finalizing (to the
//! rest of the network it is cut off, and the three are still more than 2/3 of the power).
//! After SIGCONT it has the stale view of a partitioned node: it must catch up to the others
//! with identical blocks and state roots and keep following the chain, with no fork.

use crate::common::{log, signal, Testnet};
use std::time::Duration;

/// Resumes a stopped process even if the test fails half-way.
struct Frozen(u32);

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", self.0);
    }
}

#[test]
fn frozen_minority_rejoins_catches_up_without_fork() {
    let tn = Testnet::start(4);
    let t0 = tn.t0();
    let majority = [0, 1, 2];
    let all = [0, 1, 2, 3];

    let pid = tn.validators[3].pid;
    let frozen_at = tn.height(3).expect("node3 answers before the partition");
    let frozen = Frozen(pid);
    signal("STOP", pid);
    log(
        t0,
        format!("SIGSTOP node3 (pid {pid}) at height {frozen_at}"),
    );
    // Its API is frozen too.
    assert!(tn.status(3).is_none(), "a stopped process answered");
    let h0 = tn
        .heights(&majority)
        .into_iter()
        .map(|h| h.unwrap())
        .max()
        .unwrap();
    let hs = tn.wait_heights(&majority, h0 + 12, Duration::from_secs(60));
    let target = *hs.iter().max().unwrap();
    log(
        t0,
        format!("majority finalized without node3: {h0} -> {hs:?}"),
    );
    tn.assert_no_fork(&majority, *hs.iter().min().unwrap());

    drop(frozen); // SIGCONT: the partition heals
    log(t0, "SIGCONT node3");
    let caught = tn.wait_heights(&[3], target, Duration::from_secs(60));
    log(
        t0,
        format!(
            "node3 rejoined: {frozen_at} -> {} (majority was at {target} when it resumed)",
            caught[0]
        ),
    );
    let (hash, root) = tn.assert_same_block(&all, target);
    let hs = tn.wait_heights(&all, target + 3, Duration::from_secs(30));
    tn.assert_no_fork(&all, *hs.iter().min().unwrap());
    log(
        t0,
        format!(
            "all 4 at {hs:?}; block {target} is {}… (state root {}…) everywhere; no fork",
            &hash[..16],
            &root[..16]
        ),
    );
}
