//! The operator flow on "many machines": each validator runs `opal node init` on its own home,
//! the public keys go into one genesis.json copied to every home, and `opal node start` runs
//! each; two validators with equal stake must both vote, so blocks prove they are connected.

use crate::common::{cli, free_port, genesis_now, genesis_validator, get, NodeProcess};
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn node_init_homes_with_a_shared_genesis_form_a_network() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let mut validators = vec![];
    for (i, (api, p2p)) in ports.iter().enumerate() {
        let home = dir.path().join(format!("v{i}"));
        let peer = ports[1 - i].1;
        let (code, out, err) = cli(&[
            "node",
            "init",
            "--home",
            home.to_str().unwrap(),
            "--moniker",
            &format!("v{i}"),
            "--api-addr",
            &format!("127.0.0.1:{api}"),
            "--p2p-addr",
            &format!("127.0.0.1:{p2p}"),
            "--peers",
            &format!("127.0.0.1:{peer}"),
            "--dev-timeouts",
            "--check-invariants",
            "-o",
            "json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        validators.push(genesis_validator(&format!("v{i}"), &v));
    }
    let genesis = genesis_now("opal-operators", validators);
    let mut children = vec![];
    for i in 0..2 {
        let home = dir.path().join(format!("v{i}"));
        std::fs::write(home.join("genesis.json"), genesis.to_json()).unwrap();
        children.push(NodeProcess::start(&home, &[]));
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|(a, _)| format!("http://127.0.0.1:{a}"))
        .collect();
    let heights = || -> Vec<u64> {
        urls.iter()
            .map(|u| match get(u, "/api/status") {
                Ok((200, v)) => v["height"].as_u64().unwrap_or(0),
                _ => 0,
            })
            .collect()
    };
    let ok = loop {
        let hs = heights();
        if hs.iter().all(|h| *h >= 2) {
            break true;
        }
        if t0.elapsed() > Duration::from_secs(40) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let hs = heights();
    let b: Vec<Value> = urls
        .iter()
        .map(|u| get(u, "/api/blocks/2").map(|r| r.1).unwrap_or_default())
        .collect();
    for c in &mut children {
        c.stop();
    }
    if !ok {
        for i in 0..2 {
            println!(
                "--- v{i} ---\n{}",
                std::fs::read_to_string(dir.path().join(format!("v{i}/node.log")))
                    .unwrap_or_default()
            );
        }
        panic!("two validators from `opal node init` did not reach height 2 in 40 s: {hs:?}");
    }
    assert_eq!(b[0]["hash"], b[1]["hash"], "block 2 differs");
    assert_eq!(b[0]["state_root"], b[1]["state_root"]);
    println!(
        "[{:>6.2} s] node init x2 + shared genesis: both at {hs:?}, same block 2 {}",
        t0.elapsed().as_secs_f64(),
        b[0]["hash"]
    );
}
