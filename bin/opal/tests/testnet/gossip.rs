//! Mempool gossip: transfers sent to one validator reach the others' mempools, so blocks that
//! other validators propose include them (without gossip only the validator they were sent to
//! could). A peer's garbage, an oversized batch and a forged transaction inside a batch are
//! refused, and nothing of them reaches a mempool; after three of them the sender's address is
//! penalised (429).

use crate::common::{get, http, log, post_oversized, read_key, transfer, Testnet};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A counter of node `url`'s `/metrics` (0 if absent).
fn metric(url: &str, line_prefix: &str) -> u64 {
    let text = http()
        .get(format!("{url}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn post_gossip(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    crate::common::post_octets(url, "/api/gossip/txs", body)
}

#[test]
fn transfers_sent_to_one_validator_are_proposed_by_others() {
    let tn = Testnet::start(4);
    let t0 = tn.t0();
    let keys = tn.dev_keys();
    let (alice, bob) = (&keys[0], keys[1].address());
    let fee = tn.min_fee(0);
    let first = tn.account(0, &alice.address())["nonce"].as_u64().unwrap();
    let node0 = read_key(&tn.validators[0].home.join("node_key.json")).public_key();

    // 30 transfers, one every 150 ms, all to node0: they span several blocks, and with equal
    // stake every validator proposes in turn.
    let mut hashes = vec![];
    for nonce in first..first + 30 {
        let tx = transfer(&tn.chain_id, fee, alice, bob, 1, nonce);
        let (code, v) = crate::common::submit(tn.url(0), &tx);
        assert_eq!(code, 202, "{v}");
        hashes.push(v["hash"].as_str().unwrap().to_string());
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut heights = BTreeSet::new();
    for h in &hashes {
        let st = tn.wait_tx(0, h, Duration::from_secs(30));
        heights.insert(st["height"].as_u64().unwrap());
    }
    let mut proposers = BTreeSet::new();
    for h in &heights {
        let (_, b) = get(tn.url(0), &format!("/api/blocks/{h}")).unwrap();
        proposers.insert(b["header"]["proposer"].as_str().unwrap().to_string());
    }
    log(
        t0,
        format!(
            "30 transfers sent to node0 committed in blocks {heights:?}, proposed by {} validators",
            proposers.len()
        ),
    );
    assert!(
        proposers.iter().any(|p| *p != node0.to_hex()),
        "every block with a transfer sent to node0 was proposed by node0: no gossip"
    );
    // Every other validator received them by gossip.
    for i in 1..4 {
        let got: u64 = ["admitted", "known", "refused"]
            .iter()
            .map(|o| {
                metric(
                    tn.url(i),
                    &format!("opal_gossip_received_txs_total{{outcome=\"{o}\"}}"),
                )
            })
            .sum();
        assert!(
            got >= 30,
            "node{i} received {got} gossiped transactions, not 30"
        );
    }
    assert!(metric(tn.url(0), "opal_gossip_sent_txs_total") >= 30);
}

#[test]
fn a_peers_garbage_and_forgeries_are_refused() {
    let tn = Testnet::start(4);
    let url = tn.url(1).to_string();
    // Not a batch.
    let (code, v) = post_gossip(&url, vec![0xff; 64]);
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["code"], "malformed_gossip");
    // Over the size limit: refused before it is read whole.
    assert_eq!(post_oversized(&url, "/api/gossip/txs", 5 << 20), 413);
    // A well-formed batch with a forged transaction (bob's transfer signed by alice's key but
    // claiming bob as signer) and a garbage transaction: both refused, neither admitted.
    let keys = tn.dev_keys();
    let (alice, bob) = (&keys[0], &keys[1]);
    let mut forged = transfer(&tn.chain_id, tn.min_fee(1), alice, alice.address(), 5, 0);
    forged.signer = bob.public_key();
    let batch = borsh::to_vec(&(vec![forged.to_bytes(), vec![1, 2, 3]])).unwrap();
    let t = Instant::now();
    let (code, v) = post_gossip(&url, batch);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["refused"], 2, "{v}");
    assert_eq!(v["admitted"], 0, "{v}");
    let (_, st) = get(&url, &format!("/api/txs/{}", forged.hash())).unwrap();
    assert_eq!(st["status"], "unknown", "{st} ({:?})", t.elapsed());
    // Three bad batches from one address: it is penalised, and its next batch, even a good
    // one, is refused unread (429) for a while.
    let ok = borsh::to_vec(
        &(vec![transfer(&tn.chain_id, tn.min_fee(1), alice, bob.address(), 1, 0).to_bytes()]),
    )
    .unwrap();
    let (code, v) = post_gossip(&url, ok);
    assert_eq!(code, 429, "{v}");
    assert_eq!(v["error"]["code"], "penalised", "{v}");
    assert!(
        metric(
            &url,
            "opal_gossip_received_txs_total{outcome=\"penalised\"}"
        ) >= 1
    );
    // Clients are not affected: the API still answers this address.
    assert_eq!(get(&url, "/api/status").unwrap().0, 200);
    // Another node is not affected either: the ban is node1's.
    let (code, v) = post_gossip(tn.url(2), vec![0xff; 8]);
    assert_eq!(code, 400, "{v}");
}
