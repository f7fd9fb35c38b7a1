//! Only named peers hold slots in a validator's mesh (`--peers-only`): nodes of the same chain
//! that the validators do not list dial all four of them; they get no blocks (no slot, no
//! sync), and the validators keep finalizing (their pace before and during is printed).

use crate::common::{log, NodeProcess, Testnet};
use std::time::Duration;

/// Heights gained by node0 in `d`.
fn pace(tn: &Testnet, d: Duration) -> u64 {
    let h0 = tn.height(0).unwrap();
    std::thread::sleep(d);
    tn.height(0).unwrap() - h0
}

#[test]
fn unlisted_nodes_get_no_slot_and_finality_goes_on() {
    let tn = Testnet::start_with(4, &["--peers-only"]);
    let t0 = tn.t0();
    let before = pace(&tn, Duration::from_secs(5));
    let peers: Vec<String> = tn.validators.iter().map(|v| v.p2p_addr.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut strangers = vec![];
    for k in 0..3 {
        let (home, url) = crate::common::init_extra_node(
            &dir.path().join(format!("stranger{k}")),
            &format!("stranger{k}"),
            &peers,
            &tn.root.join("genesis.json"),
            &[],
        );
        strangers.push((NodeProcess::start(&home, &[]), url));
    }
    let during = pace(&tn, Duration::from_secs(8));
    let heights: Vec<u64> = strangers
        .iter()
        .map(|(_, url)| {
            crate::common::wait_for("a stranger's API", Duration::from_secs(30), || {
                crate::common::get(url, "/api/status")
                    .ok()
                    .filter(|(c, _)| *c == 200)
                    .map(|(_, v)| v["height"].as_u64().unwrap())
            })
        })
        .collect();
    log(
        t0,
        format!(
            "node0 gained {before} heights in 5 s before, {during} in 8 s with 3 unlisted nodes dialing; they are at {heights:?}"
        ),
    );
    assert!(
        heights.iter().all(|h| *h == 0),
        "an unlisted node followed the chain: {heights:?}"
    );
    // The validators go on finalizing. (Their pace is logged, not asserted: starting three
    // more node processes on a 2-core machine takes CPU from them, which is not what this
    // test is about.)
    assert!(
        during > 0,
        "no height finalized while unlisted nodes dialed"
    );
    let hs = tn.wait_heights(
        &[0, 1, 2, 3],
        tn.height(0).unwrap(),
        Duration::from_secs(20),
    );
    tn.assert_no_fork(&[0, 1, 2, 3], *hs.iter().min().unwrap());
}
