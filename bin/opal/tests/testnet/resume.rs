//! SIGTERM to `opal testnet` stops every validator cleanly; running it again on the same home
//! resumes the same chain.

use crate::common::{log, Testnet};
use std::time::Duration;

#[test]
fn sigterm_stops_all_validators_and_a_second_run_resumes_the_chain() {
    let mut tn = Testnet::start(4);
    let t0 = tn.t0();
    let all = [0, 1, 2, 3];
    let hs = tn.wait_heights(&all, 3, Duration::from_secs(20));
    let h = *hs.iter().min().unwrap();
    let (hash, _) = tn.assert_same_block(&all, h);
    let pids: Vec<u32> = tn.validators.iter().map(|v| v.pid).collect();

    let (status, err) = tn.stop();
    assert!(status.success(), "opal testnet exited with {status}: {err}");
    assert!(err.contains("stopped cleanly"), "{err}");
    for p in &pids {
        assert!(
            !Testnet::alive(*p),
            "validator pid {p} still runs after the testnet stopped"
        );
    }
    let j = tn.testnet_json();
    assert_eq!(j["running"], false, "{j}");
    log(
        t0,
        format!(
            "SIGTERM: all 4 stopped cleanly at heights {hs:?}; testnet.json says running=false"
        ),
    );

    tn.resume();
    let j = tn.testnet_json();
    assert_eq!(j["chain_id"], "opal-testnet");
    assert_eq!(j["validators"].as_array().unwrap().len(), 4);
    let hs2 = tn.wait_heights(&all, hs.iter().max().unwrap() + 2, Duration::from_secs(30));
    // Same chain: the block at h is the one seen before the stop.
    assert_eq!(
        tn.assert_same_block(&all, h).0,
        hash,
        "the resumed chain differs at height {h}"
    );
    log(t0, format!("resumed: same block at {h}, now at {hs2:?}"));
}
