//! Downtime on a real 4-validator testnet: node3 is SIGKILLed, the other three go on, and once
//! node3 has missed more than half of a 20-block window of commit signatures it is jailed and
//! slashed 1% on every validator; restarted, it catches up, waits out its jail and rejoins the
//! set with `opal tx unjail`.

use crate::common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn validator<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["validators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no validator {name} in {v}"))
}

#[test]
fn a_stopped_validator_is_jailed_for_downtime_and_unjails_after_the_delay() {
    let mut t = Testnet::start_with(
        4,
        &[
            "--param",
            "staking.signed_blocks_window=20",
            "--param",
            "staking.downtime_jail_ms=5000",
        ],
    );
    let t0 = t.t0();
    let (_, before) = get(t.url(0), "/api/validators").unwrap();
    let stake: u128 = validator(&before, "node3")["tokens"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    t.kill(3);
    log(t0, "SIGKILLed node3");

    // Jailed on every live validator, with 1% of its stake gone.
    let start = Instant::now();
    let jailed = loop {
        let (_, v) = get(t.url(0), "/api/validators").unwrap();
        if validator(&v, "node3")["jailed"] == true {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "node3 not jailed after 90 s: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let n3 = validator(&jailed, "node3");
    let tokens: u128 = n3["tokens"].as_str().unwrap().parse().unwrap();
    assert_eq!(tokens, stake - stake / 100, "{n3}");
    assert_ne!(n3["active"], true, "{n3}");
    let h = jailed["height"].as_u64().unwrap();
    t.wait_heights(&[0, 1, 2], h + 1, Duration::from_secs(30));
    for i in [1, 2] {
        let (_, v) = get(t.url(i), "/api/validators").unwrap();
        assert_eq!(validator(&v, "node3")["jailed"], true, "node{i}: {v}");
    }
    log(
        t0,
        format!("node3 jailed at height {h}, stake {stake} -> {tokens}"),
    );

    // Back: restart, catch up, wait out the jail, unjail, in the set again.
    t.restart(3);
    let until = n3["jailed_until_ms"].as_u64().unwrap();
    let start = Instant::now();
    loop {
        let st = t.status(0).unwrap();
        if st["block_time_ms"].as_u64().unwrap() > until {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "jail time never passed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let key = t.validators[3].home.join("node_key.json");
    let (code, out, err) = cli(&[
        "tx",
        "unjail",
        "--from",
        key.to_str().unwrap(),
        "--node",
        t.url(0),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let start = Instant::now();
    loop {
        let (_, v) = get(t.url(0), "/api/validators").unwrap();
        let n3 = validator(&v, "node3");
        if n3["jailed"] == false && n3["active"] == true {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "node3 not back: {n3}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    log(t0, "node3 unjailed and back in the set");
    let h = t.height(0).unwrap();
    t.wait_heights(&[0, 1, 2, 3], h + 2, Duration::from_secs(60));
    t.assert_same_block(&[0, 1, 2, 3], h + 1);
}
