//! The mempool survives a clean restart: with the chain halted (two of four validators down),
//! a transfer waits in node0's mempool; node0 is stopped with SIGTERM and started again, and
//! the transfer is pending there again (admitted anew through every check), then committed once
//! the chain can move.

use crate::common::{get, log, signal, submit, transfer, Testnet};
use std::time::{Duration, Instant};

#[test]
fn pending_transactions_survive_a_clean_restart() {
    let mut tn = Testnet::start(4);
    let t0 = tn.t0();
    tn.kill(2);
    tn.kill(3);
    // A block already voted on may still land: let it settle.
    std::thread::sleep(Duration::from_secs(2));
    let keys = tn.dev_keys();
    let (alice, bob) = (&keys[0], keys[1].address());
    let fee = tn.min_fee(0);
    let nonce = tn.account(0, &alice.address())["next_nonce"]
        .as_u64()
        .unwrap();
    let (code, v) = submit(
        tn.url(0),
        &transfer(&tn.chain_id, fee, alice, bob, 7, nonce),
    );
    assert_eq!(code, 202, "{v}");
    let hash = v["hash"].as_str().unwrap().to_string();
    let status = |tn: &Testnet| get(tn.url(0), &format!("/api/txs/{hash}")).unwrap().1;
    assert_eq!(status(&tn)["status"], "pending");
    log(
        t0,
        format!(
            "chain halted at {:?}; transfer {} pending on node0",
            tn.heights(&[0, 1]),
            &hash[..12]
        ),
    );

    // SIGTERM: a clean stop, which saves the mempool.
    let pid = tn.validators[0].pid;
    signal("TERM", pid);
    let start = Instant::now();
    while crate::common::alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "node0 did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let saved = tn.validators[0].home.join("data").join("mempool.borsh");
    assert!(saved.exists(), "the pending transfer was saved");
    tn.restart(0);
    assert_eq!(
        status(&tn)["status"],
        "pending",
        "re-admitted after the restart"
    );
    assert!(!saved.exists(), "the saved mempool is consumed");
    log(t0, "node0 restarted: the transfer is pending again");

    tn.restart(2);
    let st = tn.wait_tx(0, &hash, Duration::from_secs(60));
    assert_eq!(st["status"], "committed", "{st}");
    assert_eq!(st["ok"], true, "{st}");
    log(
        t0,
        format!(
            "node2 back: the transfer committed at height {}",
            st["height"]
        ),
    );
}
