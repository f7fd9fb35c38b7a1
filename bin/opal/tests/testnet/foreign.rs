//! A message from an unknown peer: a node of another chain — its own genesis and chain id, its
//! own key, not in the testnet's validator set — is started with the four testnet validators
//! as persistent peers, so it connects to them over the engine's p2p and gossips its own
//! proposals and votes while they gossip theirs. It cannot affect the testnet: the four keep
//! finalizing identical blocks, and neither chain ever holds a block of the other.
//!
//! How it is refused (see docs/network.md): every vote and proposal is signed over sign bytes
//! that include the chain id, and the engine drops votes and proposals whose signer is not in
//! the validator set of the height ("Received vote from unknown validator") before counting
//! them; blocks offered by value sync must come with a commit certificate signed by more than
//! 2/3 of the receiver's validator set, so the foreign node cannot sync the testnet's blocks
//! (nor the testnet the foreign ones).

use crate::common::{
    cli, free_port, genesis_now, genesis_validator, get, log, NodeProcess, Testnet,
};
use serde_json::Value;
use std::time::{Duration, Instant};

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

fn first<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or("(none)")
}

#[test]
fn a_foreign_chain_node_cannot_affect_the_testnet() {
    let tn = Testnet::start(4);
    let t0 = tn.t0();
    let all = [0, 1, 2, 3];

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("foreign");
    let (api, p2p) = (free_port(), free_port());
    let peers: Vec<String> = tn.validators.iter().map(|v| v.p2p_addr.clone()).collect();
    let (code, out, err) = cli(&[
        "node",
        "init",
        "--home",
        home.to_str().unwrap(),
        "--moniker",
        "intruder",
        "--api-addr",
        &format!("127.0.0.1:{api}"),
        "--p2p-addr",
        &format!("127.0.0.1:{p2p}"),
        "--peers",
        &peers.join(","),
        "--dev-timeouts",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let genesis = genesis_now("opal-foreign", vec![genesis_validator("intruder", &v)]);
    std::fs::write(home.join("genesis.json"), genesis.to_json()).unwrap();
    let logfile = home.join("node.log");
    // The engine's connection events, to prove it really is connected.
    let _foreign = NodeProcess::start(
        &home,
        &[(
            "OPAL_LOG",
            "warn,opal_node=info,arc_malachitebft_engine=info",
        )],
    );
    let url = format!("http://127.0.0.1:{api}");
    let foreign_height = || -> Option<u64> {
        match get(&url, "/api/status") {
            Ok((200, v)) => v["height"].as_u64(),
            _ => None,
        }
    };
    let start = Instant::now();
    while foreign_height().unwrap_or(0) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "foreign node not committing: {}",
            std::fs::read_to_string(&logfile).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let h0 = tn
        .heights(&all)
        .into_iter()
        .map(|h| h.unwrap())
        .max()
        .unwrap();
    log(
        t0,
        format!(
            "foreign chain node up (key {}…, chain opal-foreign) at height {:?}, peers = all 4 validators; testnet at {h0}",
            &v["public_key"].as_str().unwrap()[..12],
            foreign_height()
        ),
    );

    // Both run side by side, connected, for a while.
    let hs = tn.wait_heights(&all, h0 + 12, Duration::from_secs(60));
    let fh = foreign_height().expect("foreign node still runs");
    log(
        t0,
        format!("testnet kept finalizing: {h0} -> {hs:?}; foreign chain at {fh}"),
    );
    let common = *hs.iter().min().unwrap();
    tn.assert_no_fork(&all, common);

    let flog = std::fs::read_to_string(&logfile).unwrap_or_default();
    let connected = count(&flog, "Connected to peer");
    assert!(
        connected > 0,
        "the foreign node never connected to a testnet validator, so the test proves nothing:\n{flog}"
    );
    // Neither chain holds a block of the other.
    for h in 1..=fh.min(common) {
        let (ours, _) = tn.block(0, h).unwrap();
        let theirs = match get(&url, &format!("/api/blocks/{h}")) {
            Ok((200, v)) => v["hash"].as_str().unwrap().to_string(),
            other => panic!("foreign block {h}: {other:?}"),
        };
        assert_ne!(ours, theirs, "the chains share block {h}");
    }
    let st = tn.status(0).unwrap();
    assert_eq!(st["chain_id"].as_str(), Some(tn.chain_id.as_str()));

    // How the refusals show up (reported, not asserted: log wording belongs to the engine).
    let mut unknown = 0;
    let mut cert = 0;
    for v in &tn.validators {
        let l = std::fs::read_to_string(v.home.join("node.log")).unwrap_or_default();
        unknown += count(&l, "unknown validator");
        cert += count(&l, "ertificate");
    }
    log(
        t0,
        format!(
            "foreign node: {connected} peer connections, {} lines about certificates it refused \
             (testnet blocks offered by sync), {} about unknown validators; testnet validators: \
             {unknown} 'unknown validator' lines, {cert} about certificates",
            count(&flog, "ertificate"),
            count(&flog, "unknown validator"),
        ),
    );
    println!("  e.g. {}", first(&flog, "unknown validator"));
    println!("  e.g. {}", first(&flog, "ertificate"));
}
