//! Joining by state sync: a new node, knowing only the genesis file, joins a running 4-validator
//! testnet from a snapshot (`opal node init --state-sync`), verifying the snapshot's root from
//! the genesis validators' signatures and every chunk against it. One of the peers it asks
//! lies (it alters a value in every chunk it serves): its chunk is refused and fetched from
//! another peer. The new node then follows the chain block by block, with the validators'
//! blocks and state.

use crate::common::{get, submit, transfer, NodeProcess, Testnet};
use std::time::{Duration, Instant};

#[test]
fn a_new_node_joins_from_a_snapshot_despite_a_lying_peer_and_follows() {
    let mut tn = Testnet::start_with(4, &["--snapshot-interval", "10"]);
    let t0 = tn.t0();
    let log = |m: String| crate::common::log(t0, m);
    // Some state beyond genesis: transfers to fresh accounts.
    let keys = tn.dev_keys();
    let fee = tn.min_fee(0);
    let alice = &keys[0];
    let first = tn.account(0, &alice.address())["nonce"].as_u64().unwrap();
    let mut last = String::new();
    for i in 0..20u64 {
        let nonce = first + i;
        let to = opal_types::SecretKey::from_seed([i as u8 + 1; 32]).address();
        let (code, v) = submit(
            tn.url(0),
            &transfer(&tn.chain_id, fee, alice, to, 1_000 + i as u128, nonce),
        );
        assert_eq!(code, 202, "{v}");
        last = v["hash"].as_str().unwrap().to_string();
    }
    tn.wait_tx(0, &last, Duration::from_secs(30));
    // node3 lies from now on: every chunk it serves has an altered value.
    tn.kill(3);
    tn.restart_with_env(3, &[("OPAL_FAULT_CORRUPT_CHUNKS", "1")]);
    let hs = tn.wait_heights(&[0, 1, 2, 3], 22, Duration::from_secs(90));
    let (code, snaps) = get(tn.url(0), "/api/snapshots").unwrap();
    assert_eq!(code, 200, "{snaps}");
    log(format!("validators at {hs:?}; node0 offers {snaps}"));

    // The joiner: a key and a config naming the validators, the genesis file, nothing else.
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<String> = tn.validators.iter().map(|v| v.p2p_addr.clone()).collect();
    let sync = format!("{},{}", tn.url(3), tn.url(1));
    let (home, url) = crate::common::init_extra_node(
        &dir.path().join("joiner"),
        "joiner",
        &peers,
        &tn.root.join("genesis.json"),
        &["--state-sync", &sync],
    );
    let started = Instant::now();
    let _node = NodeProcess::start(&home, &[]);
    let status =
        crate::common::wait_for("the joiner's API", Duration::from_secs(90), || {
            match get(&url, "/api/status") {
                Ok((200, v)) => Some(v),
                _ => None,
            }
        });
    let joined_at = status["earliest_height"].as_u64().unwrap();
    let node_log = crate::common::wait_for("the join in the log", Duration::from_secs(10), || {
        let l = std::fs::read_to_string(home.join("node.log")).unwrap_or_default();
        l.contains("joined at height").then_some(l)
    });
    log(format!(
        "joiner's API up after {:.2} s at height {}, earliest_height {joined_at}",
        started.elapsed().as_secs_f64(),
        status["height"]
    ));
    assert!(
        joined_at >= 10 && joined_at % 10 == 0,
        "joined from a snapshot: {status}"
    );
    assert!(
        node_log.contains("chunk refused"),
        "the lying peer's chunk was refused:\n{node_log}"
    );
    assert!(node_log.contains("joined at height"), "{node_log}");

    // It follows: the validators' blocks after the snapshot, and their state.
    let target = tn.wait_heights(&[0], joined_at + 6, Duration::from_secs(60))[0];
    let caught =
        crate::common::wait_for(
            "the joiner to follow",
            Duration::from_secs(90),
            || match get(&url, "/api/status") {
                Ok((200, v)) if v["height"].as_u64() >= Some(target) => Some(v),
                _ => None,
            },
        );
    for h in [joined_at + 1, target] {
        let (_, a) = get(&url, &format!("/api/blocks/{h}")).unwrap();
        let (_, b) = get(tn.url(0), &format!("/api/blocks/{h}")).unwrap();
        assert_eq!(a["hash"], b["hash"], "block {h}");
        assert_eq!(a["state_root"], b["state_root"], "state root after {h}");
    }
    let who = alice.address();
    let (_, mine) = get(&url, &format!("/api/accounts/{who}?height={target}")).unwrap();
    let (_, theirs) = get(tn.url(0), &format!("/api/accounts/{who}?height={target}")).unwrap();
    assert_eq!(mine["balance"], theirs["balance"]);
    // What it never had answers so.
    let (code, v) = get(&url, &format!("/api/blocks/{}", joined_at - 1)).unwrap();
    assert_eq!(code, 410, "{v}");
    log(format!(
        "joiner followed to {}; blocks {} and {target} and alice's balance match node0's",
        caught["height"],
        joined_at + 1
    ));
}
