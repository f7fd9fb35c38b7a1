//! Bad inputs over HTTP: each gets a clear JSON error with a stable code, and changes nothing.

use crate::common::*;
use opal_types::SecretKey;
use serde_json::json;
use std::time::Duration;

#[test]
fn bad_inputs_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(&dir.path().join("home"));
    let keys = net.dev_keys();
    let (chain_id, fee) = net.chain();
    let (alice, bob) = (&keys[0], keys[1].address());

    // One good transfer first, so that a replay has something to replay.
    let good = transfer(&chain_id, fee, alice, bob, 5, 0);
    assert_eq!(submit(&net.url, &good).0, 202);
    net.wait_tx(&good.hash().to_hex(), Duration::from_secs(60));
    let before = (
        net.balance(&alice.address()),
        net.nonce(&alice.address()),
        net.balance(&bob),
    );

    let expect = |what: &str, (code, v): (u16, serde_json::Value), want_code: u16, want: &str| {
        assert_eq!(code, want_code, "{what}: {v}");
        assert_eq!(v["error"]["code"], want, "{what}: {v}");
        assert!(
            !v["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{what}: no message"
        );
    };

    let mut bad_sig = transfer(&chain_id, fee, alice, bob, 5, 1);
    bad_sig.signature.0[10] ^= 0x01;
    expect(
        "wrong signature",
        submit(&net.url, &bad_sig),
        400,
        "bad_signature",
    );

    let other = transfer("another-chain", fee, alice, bob, 5, 1);
    expect(
        "another chain's id",
        submit(&net.url, &other),
        400,
        "wrong_chain",
    );

    expect(
        "replayed transaction",
        submit(&net.url, &good),
        400,
        "bad_nonce",
    );
    let replay_nonce = transfer(&chain_id, fee, alice, bob, 6, 0);
    expect(
        "replayed nonce",
        submit(&net.url, &replay_nonce),
        400,
        "bad_nonce",
    );

    let overdraft = transfer(&chain_id, fee, alice, bob, u64::MAX as u128 * 1000, 1);
    expect(
        "overdraft",
        submit(&net.url, &overdraft),
        400,
        "insufficient_funds",
    );

    let low_fee = transfer(&chain_id, opal_types::Amount(fee.0 - 1), alice, bob, 5, 1);
    expect(
        "fee below the minimum",
        submit(&net.url, &low_fee),
        400,
        "fee_too_low",
    );

    let stranger = SecretKey::from_seed([55; 32]);
    let broke = transfer(&chain_id, fee, &stranger, bob, 1, 0);
    expect(
        "account with no funds",
        submit(&net.url, &broke),
        400,
        "insufficient_funds",
    );

    expect(
        "oversized transaction",
        // Above the evidence-transaction limit (1 MiB), the largest any action may be.
        post_raw(&net.url, "application/octet-stream", vec![0u8; 1_100_000]),
        413,
        "too_large",
    );
    expect(
        "oversized body",
        announce_huge_body(&net.url),
        413,
        "too_large",
    );
    expect(
        "garbage bytes",
        post_raw(
            &net.url,
            "application/octet-stream",
            b"\x01\x02garbage\xff".to_vec(),
        ),
        400,
        "malformed_transaction",
    );
    expect(
        "garbage hex",
        post_raw(
            &net.url,
            "application/json",
            json!({"tx": "00ff13"}).to_string().into_bytes(),
        ),
        400,
        "malformed_transaction",
    );
    expect(
        "malformed JSON",
        post_raw(&net.url, "application/json", b"{\"tx\": ".to_vec()),
        400,
        "malformed_json",
    );
    expect(
        "not hex",
        post_raw(
            &net.url,
            "application/json",
            json!({"tx": "zz"}).to_string().into_bytes(),
        ),
        400,
        "malformed_hex",
    );
    let mut trailing = good.to_bytes();
    trailing.push(0);
    expect(
        "trailing bytes",
        post_raw(&net.url, "application/octet-stream", trailing),
        400,
        "malformed_transaction",
    );

    expect(
        "bad address",
        get(&net.url, "/api/accounts/nope").unwrap(),
        400,
        "malformed_address",
    );
    expect(
        "bad height",
        get(&net.url, "/api/blocks/abc").unwrap(),
        400,
        "malformed_height",
    );
    expect(
        "future height",
        get(&net.url, "/api/blocks/999999999").unwrap(),
        404,
        "not_found",
    );
    expect(
        "bad tx hash",
        get(&net.url, "/api/txs/xyz").unwrap(),
        400,
        "malformed_hash",
    );
    expect(
        "bad state key",
        get(&net.url, "/api/state/xyz").unwrap(),
        400,
        "malformed_key",
    );
    expect(
        "unknown endpoint",
        get(&net.url, "/api/nothing").unwrap(),
        404,
        "not_found",
    );

    // Nothing changed: a few blocks later, balances and nonces are as before, the mempool is empty.
    let h = net.status()["height"].as_u64().unwrap();
    while net.status()["height"].as_u64().unwrap() < h + 2 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        (
            net.balance(&alice.address()),
            net.nonce(&alice.address()),
            net.balance(&bob)
        ),
        before
    );
    assert_eq!(net.status()["mempool_size"], 0);

    // The refusals are counted by code in the Prometheus metrics.
    let metrics = http()
        .get(format!("{}/metrics", net.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("opal_txs_refused_total{code=\"bad_signature\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("opal_txs_refused_total{code=\"bad_nonce\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("opal_txs_admitted_total 1"), "{metrics}");

    // A correct transaction still goes through afterwards.
    let next = transfer(&chain_id, fee, alice, bob, 5, 1);
    assert_eq!(submit(&net.url, &next).0, 202);
    assert_eq!(
        net.wait_tx(&next.hash().to_hex(), Duration::from_secs(60))["ok"],
        true
    );
}

#[test]
fn openapi_describes_every_route_and_events_stream() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(&dir.path().join("home"));
    let (code, doc) = get(&net.url, "/openapi.json").unwrap();
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let (_, index) = get(&net.url, "/").unwrap();
    for ep in index["endpoints"].as_array().unwrap() {
        assert!(
            doc["paths"].get(ep.as_str().unwrap()).is_some(),
            "{ep} is not in the OpenAPI document"
        );
    }
    // The live event stream delivers a new_block event.
    use std::io::{BufRead, BufReader};
    let resp = http()
        .get(format!("{}/api/events", net.url))
        .timeout(Duration::from_secs(20))
        .send()
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut lines = BufReader::new(resp).lines();
    let mut saw = false;
    for _ in 0..50 {
        let l = lines.next().unwrap().unwrap();
        if l.starts_with("data:") && l.contains("\"new_block\"") {
            saw = true;
            break;
        }
    }
    assert!(saw, "no new_block event on /api/events");
}

/// Announce a 5 MB body and send 2.25 MiB of it (past the 2 MiB + 1 KiB limit of a hex-encoded
/// evidence transaction): the node must stop reading at its limit and answer 413 without
/// waiting for the rest.
fn announce_huge_body(base: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "POST /api/txs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\nConnection: close\r\n\r\n").unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&vec![b' '; 2304 * 1024]);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    // The body may be chunked; take the JSON object inside it.
    let json = body
        .find('{')
        .and_then(|a| body.rfind('}').map(|b| &body[a..=b]))
        .unwrap_or("null");
    (
        code,
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}
