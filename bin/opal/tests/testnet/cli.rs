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
