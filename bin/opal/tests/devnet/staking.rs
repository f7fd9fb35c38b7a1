//! Staking through the CLI against a real devnet: delegate, see the stake in
//! `opal query validators`, undelegate; then report a double sign by the devnet's validator
//! with `opal tx evidence`: it is slashed and jailed, and the chain keeps finalizing on the
//! previous set because a set with no one in it would halt the chain.

use crate::common::*;
use opal_node::home::KeyFile;
use opal_types::evidence::{DoubleSignEvidence, VoteEvidence, PRECOMMIT};
use opal_types::Signature;
use serde_json::Value;
use std::time::{Duration, Instant};

fn json_cli(args: &[&str]) -> Value {
    let (code, out, err) = cli(args);
    assert_eq!(code, 0, "opal {args:?} failed: {err} {out}");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("opal {args:?} printed non-JSON ({e}): {out}"))
}

#[test]
fn delegate_undelegate_and_slash_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let alice = home.join("keys/alice.json");
    let alice = alice.to_str().unwrap();
    let bob = home.join("keys/bob.json");
    let bob = bob.to_str().unwrap();

    let vals = json_cli(&["query", "validators", "--node", &net.url, "-o", "json"]);
    let v0 = &vals["validators"][0];
    let operator = v0["operator"].as_str().unwrap().to_string();
    let tokens0: u128 = v0["tokens"].as_str().unwrap().parse().unwrap();
    assert_eq!(v0["active"], true);

    let r = json_cli(&[
        "tx",
        "delegate",
        "--from",
        alice,
        "--validator",
        &operator,
        "--amount",
        "5000000",
        "--node",
        &net.url,
        "-o",
        "json",
    ]);
    assert_eq!(r["ok"], true, "{r}");
    let vals = json_cli(&["query", "validators", "--node", &net.url, "-o", "json"]);
    assert_eq!(
        vals["validators"][0]["tokens"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap(),
        tokens0 + 5_000_000
    );

    let r = json_cli(&[
        "tx",
        "undelegate",
        "--from",
        alice,
        "--validator",
        &operator,
        "--amount",
        "2000000",
        "--node",
        &net.url,
        "-o",
        "json",
    ]);
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "undelegated"),
        "{r}"
    );
    // Undelegating more than is delegated is refused by the chain with a clear error (exit 2).
    let (code, out, _) = cli(&[
        "tx",
        "undelegate",
        "--from",
        alice,
        "--validator",
        &operator,
        "--amount",
        "999999999",
        "--node",
        &net.url,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not enough stake"), "{out}");

    // The validator double-signs (we hold its key): bob reports it.
    let node_key = KeyFile::read(&home.join("node_key.json"))
        .unwrap()
        .secret()
        .unwrap();
    let height = net.status()["height"].as_u64().unwrap();
    let vote = |value: u8| {
        let mut v = VoteEvidence {
            vote_type: PRECOMMIT,
            height,
            round: 0,
            value: Some([value; 32]),
            validator: node_key.public_key(),
            signature: Signature([0; 64]),
        };
        v.signature = node_key.sign(&v.sign_bytes("opal-devnet"));
        v
    };
    let ev = DoubleSignEvidence {
        a: vote(1),
        b: vote(2),
    };
    let file = dir.path().join("evidence.json");
    std::fs::write(&file, serde_json::to_string(&ev).unwrap()).unwrap();
    let r = json_cli(&[
        "tx",
        "evidence",
        "--file",
        file.to_str().unwrap(),
        "--from",
        bob,
        "--node",
        &net.url,
        "-o",
        "json",
    ]);
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "slashed"),
        "{r}"
    );
    let vals = json_cli(&["query", "validators", "--node", &net.url, "-o", "json"]);
    assert_eq!(vals["validators"][0]["jailed"], true);
    // The same evidence twice is refused.
    let (code, out, _) = cli(&[
        "tx",
        "evidence",
        "--file",
        file.to_str().unwrap(),
        "--from",
        bob,
        "--node",
        &net.url,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("already processed"), "{out}");

    // With its only validator jailed the chain keeps the previous set and goes on.
    let h = net.status()["height"].as_u64().unwrap();
    let start = Instant::now();
    while net.status()["height"].as_u64().unwrap() < h + 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the chain stopped after jailing its only validator"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
