//! Partitions on a real network (issue 24): four validators, each in its own Linux network
//! namespace with its own address (`opal_testkit::process::netns::NetLab`), links cut with
//! iptables and slowed with tc while the test watches every validator's API from outside.
//! Checked: no fork at any height, a cut-off minority stops and catches up after the heal, an
//! even split halts the chain and it resumes after the heal, a single cut link and a slow link
//! do not stop it.
//!
//! Needs root, iproute2 and iptables; without them the test says so loudly and returns.

use crate::common::netns::{skip, NetLab};
use std::time::Duration;

pub(crate) fn max(hs: &[u64]) -> u64 {
    hs.iter().copied().max().unwrap()
}

pub(crate) fn min(hs: &[u64]) -> u64 {
    hs.iter().copied().min().unwrap()
}

#[test]
fn real_network_partitions_heal_without_fork() {
    let mut lab = match NetLab::start(4) {
        Ok(lab) => lab,
        Err(why) => return skip("real_network_partitions_heal_without_fork", &why),
    };
    let all = [0, 1, 2, 3];
    let majority = [0, 1, 2];
    let t = Duration::from_secs(60);

    // 1. node3 cut off from the other three: they keep finalizing, it cannot.
    lab.partition(&[&majority, &[3]]);
    std::thread::sleep(Duration::from_secs(2));
    let h3 = lab.heights_now(&[3])[0];
    let h0 = lab.max_height(&majority);
    let hs = lab.wait_heights(&majority, h0 + 8, t);
    let h3_after = lab.heights_now(&[3])[0];
    lab.log(format!(
        "majority {h0} -> {hs:?} while node3 stayed at {h3} -> {h3_after}"
    ));
    assert_eq!(
        h3_after, h3,
        "a validator cut off from everyone kept committing"
    );
    lab.assert_no_fork(&majority, min(&hs));
    lab.heal();
    let target = max(&hs);
    let caught = lab.wait_heights(&[3], target, t);
    let (hash, _) = lab.assert_same_block(&all, target);
    lab.log(format!(
        "node3 caught up to {} after the heal; block {target} is {}… on all four",
        caught[0],
        &hash[..16]
    ));

    // 2. An even split: neither half has more than 2/3 of the power, so nothing commits.
    lab.partition(&[&[0, 1], &[2, 3]]);
    // What was in flight when the links went down settles (a decided block may still reach
    // its half by sync), then nothing may move.
    std::thread::sleep(Duration::from_secs(3));
    let before = lab.heights_now(&all);
    std::thread::sleep(Duration::from_secs(8));
    let after = lab.heights_now(&all);
    lab.log(format!(
        "2-2 split: heights {before:?} -> {after:?} over 8 s"
    ));
    assert_eq!(before, after, "a half of the validators committed alone");
    lab.assert_no_fork(&all, max(&after));
    lab.heal();
    let resumed = lab.wait_heights(&all, max(&after) + 4, t);
    lab.assert_no_fork(&all, min(&resumed));
    lab.log(format!("after the heal all four moved on: {resumed:?}"));

    // 3. One link cut (0-1): every validator still reaches more than 2/3 of the power.
    lab.cut(0, 1);
    let h = lab.max_height(&all);
    let hs = lab.wait_heights(&all, h + 4, t);
    lab.log(format!("link 0-1 cut: still committing, {h} -> {hs:?}"));
    lab.heal();

    // 4. A slow link: node0's packets delayed 150 ms (netem), or, where this kernel has no
    // netem, its link limited to 128 kbit/s so its messages queue.
    match lab.delay(0, 150) {
        Ok(()) => {}
        Err(e) => {
            lab.log(format!("no netem here ({e}); using a rate limit"));
            lab.throttle(0, 128);
        }
    }
    let h = lab.max_height(&all);
    let hs = lab.wait_heights(&all, h + 4, t);
    lab.log(format!(
        "slow link at node0: still committing, {h} -> {hs:?}"
    ));
    lab.heal();

    // 5. A crash on top: node2 killed while node3 is cut off leaves two of four: the chain
    // halts; node2 back and the heal bring it back.
    lab.kill(2);
    lab.partition(&[&[0, 1, 2], &[3]]);
    std::thread::sleep(Duration::from_secs(3));
    let before = lab.heights_now(&[0, 1]);
    std::thread::sleep(Duration::from_secs(5));
    let after = lab.heights_now(&[0, 1]);
    assert_eq!(before, after, "two of four committed");
    lab.start_node(2);
    lab.heal();
    let fin = lab.wait_heights(&all, max(&after) + 3, t);
    lab.assert_no_fork(&all, min(&fin));
    lab.log(format!(
        "node2 killed with node3 cut off: halted at {after:?}; restarted and healed: {fin:?}; no fork"
    ));
}
