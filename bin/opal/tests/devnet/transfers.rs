//! 1,000+ signed transfers from several accounts over HTTP to a real devnet process: every
//! balance, the supply invariant, and a balance proof against a block's state root.

use crate::common::*;
use opal_state::StateProof;
use opal_types::{Address, Hash, PublicKey, SecretKey};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn thousand_transfers_balances_supply_and_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(&dir.path().join("home"));
    let keys = net.dev_keys();
    assert!(keys.len() >= 4);
    let (chain_id, fee) = net.chain();

    // Recipients: the development accounts themselves and ten fresh addresses.
    let fresh: Vec<Address> = (0..10u8)
        .map(|i| SecretKey::from_seed([200 + i; 32]).address())
        .collect();
    let mut expected: BTreeMap<Address, u128> = BTreeMap::new();
    for k in &keys {
        expected.insert(k.address(), net.balance(&k.address()));
    }
    for a in &fresh {
        expected.insert(*a, 0);
    }
    let validator = PublicKey::from_hex(net.status()["validator"].as_str().unwrap())
        .unwrap()
        .address();
    let validator_before = net.balance(&validator);

    let mut nonces = vec![0u64; keys.len()];
    let mut hashes = vec![];
    let n = 1_000usize;
    for i in 0..n {
        let s = i % keys.len();
        let to = if i % 3 == 0 {
            keys[(s + 1) % keys.len()].address()
        } else {
            fresh[i % fresh.len()]
        };
        let amount = 1 + (i as u128 * 7_919) % 100_000;
        let tx = transfer(&chain_id, fee, &keys[s], to, amount, nonces[s]);
        let (code, v) = submit(&net.url, &tx);
        assert_eq!(code, 202, "transfer {i} refused: {v}");
        assert_eq!(v["hash"].as_str().unwrap(), tx.hash().to_hex());
        nonces[s] += 1;
        *expected.get_mut(&keys[s].address()).unwrap() -= amount + fee.0;
        *expected.get_mut(&to).unwrap() += amount;
        hashes.push(tx.hash().to_hex());
    }
    let mut max_height = 0;
    for h in &hashes {
        let v = net.wait_tx(h, Duration::from_secs(120));
        assert_eq!(v["ok"], true, "transfer {h} failed: {v}");
        max_height = max_height.max(v["height"].as_u64().unwrap());
    }

    // Every balance is exactly as computed here.
    for (a, want) in &expected {
        assert_eq!(net.balance(a), *want, "balance of {a}");
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(net.nonce(&k.address()), nonces[i]);
    }
    assert_eq!(
        net.balance(&validator) - validator_before,
        n as u128 * fee.0,
        "all fees went to the proposer"
    );

    // Supply invariant from outside: these are all the accounts that hold anything.
    // Both from one status reply: emission changes the supply every block.
    let (supply, pools) = supply_and_pools(&net.status());
    // The demo's accounts (inference node, model owner, dataset contributor, LLM caller) hold
    // the rest.
    let demo: u128 = ["inference", "modeler", "curator", "llm-caller"]
        .iter()
        .filter(|n| net.home.join(format!("keys/{n}.json")).is_file())
        .map(|n| {
            let k =
                opal_node::home::KeyFile::read(&net.home.join(format!("keys/{n}.json"))).unwrap();
            net.balance(&k.address.parse().unwrap())
        })
        .sum();
    let sum: u128 = expected.values().sum::<u128>() + net.balance(&validator) + pools + demo;
    assert_eq!(sum, supply, "balances must add up to the total supply");

    // A balance proof at the height of the last transfer, checked against that block's state root.
    let target = fresh[3];
    let (code, v) = get(
        &net.url,
        &format!("/api/accounts/{target}?prove=true&height={max_height}"),
    )
    .unwrap();
    assert_eq!(code, 200, "{v}");
    let (_, block) = get(&net.url, &format!("/api/blocks/{max_height}")).unwrap();
    // The typed reply reads back, and names who signed the previous block: the one validator.
    let typed: opal_api::BlockReply = serde_json::from_value(block.clone()).unwrap();
    assert_eq!(typed.height, max_height);
    assert!(
        max_height < 2 || typed.last_commit_signers.len() == 1,
        "{block}"
    );
    let root = Hash::from_hex(block["state_root"].as_str().unwrap()).unwrap();
    assert_eq!(v["state_root"], block["state_root"]);
    let proof =
        StateProof::from_bytes(&hex::decode(v["proof"].as_str().unwrap()).unwrap()).unwrap();
    let key = hex::decode(v["key"].as_str().unwrap()).unwrap();
    let value = hex::decode(v["value"].as_str().unwrap()).unwrap();
    proof
        .verify(&root.0, &key, Some(&value))
        .expect("balance proof verifies against the block's state root");
    let acct: opal_ledger::components::accounts::Account = borsh::from_slice(&value).unwrap();
    assert_eq!(acct.balance.0, expected[&target]);
    // The same proof does not prove a different balance, nor verify under another block's root.
    let mut forged = acct.clone();
    forged.balance.0 += 1;
    assert!(proof
        .verify(&root.0, &key, Some(&borsh::to_vec(&forged).unwrap()))
        .is_err());
    let (_, genesis_block) = get(&net.url, "/api/blocks/1").unwrap();
    let old_root = Hash::from_hex(genesis_block["state_root"].as_str().unwrap()).unwrap();
    assert!(proof.verify(&old_root.0, &key, Some(&value)).is_err());

    // The CLI does the same check end to end.
    let (code, out, err) = cli(&[
        "query",
        "account",
        &target.to_string(),
        "--prove",
        "--node",
        &net.url,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["proof_verified"], true);
    // An absent account is proven absent.
    let nobody = SecretKey::from_seed([77; 32]).address();
    let (code, out, err) = cli(&[
        "query",
        "account",
        &nobody.to_string(),
        "--prove",
        "--node",
        &net.url,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"proof_verified\": true"));
}

#[test]
fn cli_transfer_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let alice = home.join("keys/alice.json");
    let bob = net.dev_keys()[1].address();
    let bob_before = net.balance(&bob);
    let (code, out, err) = cli(&[
        "tx",
        "transfer",
        "--from",
        alice.to_str().unwrap(),
        "--to",
        &bob.to_string(),
        "--amount",
        "777",
        "--node",
        &net.url,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "committed");
    assert_eq!(net.balance(&bob), bob_before + 777);
    let height = v["height"].as_u64().unwrap().to_string();

    let (code, out, _) = cli(&["query", "status", "--node", &net.url, "--output", "json"]);
    assert_eq!(code, 0);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(s["height"].as_u64().unwrap() >= 1 && s["state_root"].as_str().unwrap().len() == 64);

    let (code, out, _) = cli(&[
        "query", "block", &height, "--node", &net.url, "--output", "json",
    ]);
    assert_eq!(code, 0);
    let b: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(b["state_root"].as_str().unwrap().len(), 64);
    assert_eq!(b["txs"][0]["hash"], v["hash"]);

    let (code, out, _) = cli(&[
        "query",
        "tx",
        v["hash"].as_str().unwrap(),
        "--node",
        &net.url,
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("committed"), "{out}");

    // Errors a person can act on.
    let (code, _, err) = cli(&[
        "tx",
        "transfer",
        "--from",
        "nosuchkey",
        "--to",
        &bob.to_string(),
        "--amount",
        "1",
        "--node",
        &net.url,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("opal keys new"), "{err}");
    let (code, _, err) = cli(&["query", "status", "--node", "http://127.0.0.1:1"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot reach the node"), "{err}");
    let (code, _, err) = cli(&[
        "tx",
        "transfer",
        "--from",
        alice.to_str().unwrap(),
        "--to",
        "nonsense",
        "--amount",
        "1",
        "--node",
        &net.url,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("address"), "{err}");
}

#[test]
fn devnet_refuses_a_foreign_non_empty_home() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "do not delete").unwrap();
    let (code, _, err) = cli(&[
        "devnet",
        "--home",
        dir.path().to_str().unwrap(),
        "--api-addr",
        "127.0.0.1:0",
        "--p2p-addr",
        "127.0.0.1:0",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not an Opal home"), "{err}");
    let (code, _, err) = cli(&[
        "devnet",
        "--reset",
        "--home",
        dir.path().to_str().unwrap(),
        "--api-addr",
        "127.0.0.1:0",
        "--p2p-addr",
        "127.0.0.1:0",
    ]);
    assert_ne!(code, 0, "--reset must not delete a foreign directory");
    assert!(err.contains("not an Opal home"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious.txt")).unwrap(),
        "do not delete"
    );
}

/// `POST /api/txs/batch`: each transaction of a batch meets the checks of `POST /api/txs`, in
/// order (consecutive nonces of one sender in one batch), a forged one is refused alone with
/// `bad_signature`, and a body that is not a batch, or too large, is refused whole.
#[test]
fn a_batch_is_admitted_one_by_one_with_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(&dir.path().join("home"));
    let keys = net.dev_keys();
    let (chain_id, fee) = net.chain();
    let (a, b) = (&keys[0], &keys[1]);
    let to = SecretKey::from_seed([77; 32]).address();
    let na = net.nonce(&a.address());
    let nb = net.nonce(&b.address());
    let mut forged = transfer(&chain_id, fee, b, to, 5, nb + 1);
    forged.body.fee = opal_types::Amount(forged.body.fee.0 + 1); // signature no longer matches
    let txs = [
        transfer(&chain_id, fee, a, to, 1, na),
        transfer(&chain_id, fee, a, to, 2, na + 1),
        transfer(&chain_id, fee, b, to, 3, nb),
        forged,
        transfer(&chain_id, fee, a, to, 4, na + 5), // a nonce gap
    ];
    let body = opal_node::gossip::GossipBatch {
        txs: txs.iter().map(|t| t.to_bytes()).collect(),
    }
    .to_bytes();
    let url = net.url.clone();
    let (code, v) = post_batch(&url, body);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["admitted"].as_u64(), v["refused"].as_u64()),
        (Some(3), Some(2)),
        "{v}"
    );
    let r = v["results"].as_array().unwrap();
    for i in 0..3 {
        assert_eq!(
            r[i]["hash"].as_str().unwrap(),
            txs[i].hash().to_hex(),
            "{v}"
        );
    }
    assert_eq!(r[3]["error"]["code"], "bad_signature", "{v}");
    assert_eq!(r[4]["error"]["code"], "bad_nonce", "{v}");
    for t in &txs[..3] {
        let st = net.wait_tx(&t.hash().to_hex(), Duration::from_secs(30));
        assert_eq!(st["ok"], true, "{st}");
    }
    // Whole-body refusals.
    let (code, v) = post_batch(&url, b"not a batch".to_vec());
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["code"], "malformed_batch");
    assert_eq!(post_oversized(&url, "/api/txs/batch", 5 << 20), 413);
}

fn post_batch(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    post_octets(url, "/api/txs/batch", body)
}
