//! The operator flow on "many machines": each validator runs `opal node init` on its own home,
//! the public keys go into one genesis.json copied to every home, and `opal node start` runs
//! each; two validators with equal stake must both vote, so blocks prove they are connected.

use crate::common::{cli, get, opal_bin, signal};
use opal_ledger::{Genesis, GenesisValidator, Params};
use opal_types::{Amount, PublicKey};
use serde_json::Value;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
        validators.push(GenesisValidator {
            name: format!("v{i}"),
            public_key: PublicKey::from_hex(v["public_key"].as_str().unwrap()).unwrap(),
            operator: None,
            stake: Amount(1_000_000_000_000),
            vrf_key: serde_json::from_value(v["vrf_key"].clone()).unwrap(),
        });
    }
    let genesis = Genesis {
        chain_id: "opal-operators".into(),
        genesis_time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
        params: Params::default(),
        staking: Default::default(),
        inference: Default::default(),
        governance: Default::default(),
        rewards: Default::default(),
        accounts: vec![],
        validators,
    };
    let mut children = vec![];
    for i in 0..2 {
        let home = dir.path().join(format!("v{i}"));
        std::fs::write(home.join("genesis.json"), genesis.to_json()).unwrap();
        let log = std::fs::File::create(home.join("node.log")).unwrap();
        children.push(
            Command::new(opal_bin())
                .args(["node", "start", "--home"])
                .arg(&home)
                .env_remove("OPAL_HOME")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
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
        signal("TERM", c.id());
    }
    for c in &mut children {
        let start = Instant::now();
        while !matches!(c.try_wait(), Ok(Some(_))) {
            if start.elapsed() > Duration::from_secs(20) {
                c.kill().ok();
                c.wait().ok();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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
