//! `opal node init` and `opal testnet` argument and home checks (no network needed).

use crate::common::cli;
use serde_json::Value;

#[test]
fn node_init_writes_a_key_and_config_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("v1");
    let h = home.to_str().unwrap();
    let (code, out, err) = cli(&[
        "node",
        "init",
        "--home",
        h,
        "--moniker",
        "v1",
        "--p2p-addr",
        "127.0.0.1:27000",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let pk = v["public_key"].as_str().unwrap();
    assert_eq!(pk.len(), 64, "{v}");
    assert!(v["address"].as_str().unwrap().starts_with("opal"), "{v}");
    assert!(home.join("node_key.json").is_file() && home.join("config.toml").is_file());
    assert!(!home.join("genesis.json").exists());
    let key: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("node_key.json")).unwrap())
            .unwrap();
    assert_eq!(key["public_key"].as_str(), Some(pk));
    println!("node init: {pk}");

    // A second init must not replace the validator's identity.
    let (code, _, err) = cli(&["node", "init", "--home", h, "--moniker", "v1"]);
    assert_eq!(code, 1);
    assert!(err.contains("already holds a node key"), "{err}");

    // Starting it without a genesis says what is missing.
    let (code, _, err) = cli(&["node", "start", "--home", h]);
    assert_eq!(code, 1);
    assert!(err.contains("genesis.json"), "{err}");

    let (code, _, err) = cli(&[
        "node",
        "init",
        "--home",
        dir.path().join("v2").to_str().unwrap(),
        "--moniker",
        "bad name!",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--moniker"), "{err}");
}

#[test]
fn testnet_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("tn");
    let h = h.to_str().unwrap();
    let (code, _, err) = cli(&["testnet", "--validators", "0", "--home", h]);
    assert_eq!(code, 1);
    assert!(err.contains("--validators must be between 1 and"), "{err}");
    let (code, _, err) = cli(&[
        "testnet",
        "--validators",
        "4",
        "--base-port",
        "65530",
        "--home",
        h,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--base-port 65530"), "{err}");
    // A directory with someone else's files is not taken over.
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let (code, _, err) = cli(&["testnet", "--home", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not a testnet home"), "{err}");
    assert!(dir.path().join("notes.txt").exists());
}

/// `--init-only --hosts`: the homes a deployment to separate machines needs, each validator
/// listening on its own address and dialing the others' (what the network-namespace test runs).
#[test]
fn testnet_init_only_writes_homes_for_the_given_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("tn");
    let hs = h.to_str().unwrap();
    let (code, _, err) = cli(&[
        "testnet",
        "--init-only",
        "--validators",
        "2",
        "--hosts",
        "10.1.0.1",
        "--home",
        hs,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--hosts names 1 addresses for 2 validators"),
        "{err}"
    );
    let (code, _, err) = cli(&[
        "testnet",
        "--init-only",
        "--hosts",
        "10.1.0.1,10.1.0.2",
        "--base-port",
        "0",
        "--home",
        hs,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("with --hosts give a fixed base port"), "{err}");
    let (code, out, err) = cli(&[
        "testnet",
        "--init-only",
        "--hosts",
        "10.1.0.1,10.1.0.2,10.1.0.3",
        "--base-port",
        "9000",
        "--home",
        hs,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let vals = v["validators"].as_array().unwrap();
    assert_eq!(vals.len(), 3, "the validator count follows --hosts");
    assert_eq!(vals[1]["api_addr"], "10.1.0.2:9002");
    assert_eq!(vals[1]["p2p_addr"], "10.1.0.2:9003");
    let config = std::fs::read_to_string(h.join("node1/config.toml")).unwrap();
    for want in [
        "\"10.1.0.1:9001\"",
        "\"10.1.0.3:9005\"",
        "http://10.1.0.1:9000",
        "http://10.1.0.3:9004",
    ] {
        assert!(
            config.contains(want),
            "node1's config lacks {want}:\n{config}"
        );
    }
    assert!(!config.contains("127.0.0.1"), "{config}");
    // Not started: no testnet.json, no chain data.
    assert!(!h.join("testnet.json").exists());
    assert!(!h.join("node0/data").exists());
    // A second --init-only does not overwrite the first.
    let (code, _, err) = cli(&["testnet", "--init-only", "--home", hs]);
    assert_eq!(code, 1);
    assert!(err.contains("already holds a testnet"), "{err}");
}
