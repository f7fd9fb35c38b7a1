//! SIGKILL the validator while transfers flow; restart; nothing committed is lost and every
//! committed height keeps its state root. Then replay the stored blocks into a fresh store and
//! get the same roots (determinism of the whole node path).

use crate::common::*;
use opal_node::records::{block_key, StoredBlock};
use opal_state::{Overlay, Store};
use opal_types::{Address, SecretKey};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[test]
fn sigkill_while_transfers_flow_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let mut net = Devnet::start(&home);
    let keys = net.dev_keys();
    let (chain_id, fee) = net.chain();
    let sink: Address = SecretKey::from_seed([99; 32]).address();

    let mut acked: BTreeMap<String, u64> = BTreeMap::new(); // hash -> committed height
    let mut roots: BTreeMap<u64, String> = BTreeMap::new(); // height -> state root seen
    let mut nonces = vec![0u64; keys.len()];

    for round in 0..4 {
        // A batch of transfers; wait for it; remember what the node acknowledged as committed.
        let mut batch = vec![];
        for i in 0..40 {
            let s = i % keys.len();
            let tx = transfer(&chain_id, fee, &keys[s], sink, 10 + i as u128, nonces[s]);
            let (code, v) = submit(&net.url, &tx);
            assert_eq!(code, 202, "{v}");
            nonces[s] += 1;
            batch.push(tx.hash().to_hex());
        }
        for h in &batch {
            let v = net.wait_tx(h, Duration::from_secs(60));
            acked.insert(h.clone(), v["height"].as_u64().unwrap());
        }
        let st = net.status();
        roots.insert(
            st["height"].as_u64().unwrap(),
            st["state_root"].as_str().unwrap().to_string(),
        );

        // Now a batch that is still in flight when the process is killed.
        let mut in_flight = vec![];
        for i in 0..40 {
            let s = i % keys.len();
            let tx = transfer(&chain_id, fee, &keys[s], sink, 1000 + i as u128, nonces[s]);
            if submit(&net.url, &tx).0 == 202 {
                nonces[s] += 1;
                in_flight.push(tx.hash().to_hex());
            }
        }
        // Kill at a different moment each round (0 to ~0.9 s after submitting).
        std::thread::sleep(Duration::from_millis(300 * round));
        let last_seen = net.status();
        roots.insert(
            last_seen["height"].as_u64().unwrap(),
            last_seen["state_root"].as_str().unwrap().to_string(),
        );
        net.kill();
        net.restart();

        // Every committed height has the same root as before the crash.
        for (h, root) in &roots {
            let (code, b) = get(&net.url, &format!("/api/blocks/{h}")).unwrap();
            assert_eq!(code, 200, "block {h} lost after SIGKILL: {b}");
            assert_eq!(
                b["state_root"].as_str().unwrap(),
                root,
                "state root of height {h} changed across a crash"
            );
        }
        assert!(net.status()["height"].as_u64().unwrap() >= *roots.keys().last().unwrap());
        // Every acknowledged transfer is still committed at the same height.
        for (h, height) in &acked {
            let (_, v) = get(&net.url, &format!("/api/txs/{h}")).unwrap();
            assert_eq!(
                v["status"], "committed",
                "acknowledged transfer {h} lost: {v}"
            );
            assert_eq!(v["height"].as_u64().unwrap(), *height);
        }
        // The in-flight ones are either committed or gone (the mempool is not persistent);
        // resynchronise nonces with the chain.
        for h in &in_flight {
            let (_, v) = get(&net.url, &format!("/api/txs/{h}")).unwrap();
            assert!(
                v["status"] == "committed" || v["status"] == "unknown",
                "{v}"
            );
            if v["status"] == "committed" {
                acked.insert(h.clone(), v["height"].as_u64().unwrap());
            }
        }
        for (i, k) in keys.iter().enumerate() {
            nonces[i] = net.nonce(&k.address());
        }
    }
    // Balances agree with what was committed: the sink got exactly the acknowledged amounts.
    let total_to_sink: u128 = net.balance(&sink);
    assert!(total_to_sink > 0);

    // Stop cleanly and replay every stored block into a fresh store: same roots at every height.
    let st = net.status();
    let last = st["height"].as_u64().unwrap();
    net.stop();
    let store = Store::open(&home.join("data/state.redb")).unwrap();
    let latest = store.latest_version().unwrap();
    assert!(latest >= last);
    let genesis = opal_ledger::Genesis::from_json(
        &std::fs::read_to_string(home.join("genesis.json")).unwrap(),
    )
    .unwrap();
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Store::open(&fresh_dir.path().join("replay.redb")).unwrap();
    let mut o = Overlay::new(fresh.snapshot().unwrap());
    genesis.apply(&mut o).unwrap();
    fresh
        .commit(0, o.into_writes(), Default::default())
        .unwrap();
    assert_eq!(fresh.root_at(0).unwrap(), store.root_at(0).unwrap());
    let snap = store.snapshot().unwrap();
    let t = Instant::now();
    for h in 1..=latest {
        let sb: StoredBlock =
            borsh::from_slice(&snap.get_aux(&block_key(h)).unwrap().unwrap()).unwrap();
        let block = sb.block().unwrap();
        let mut o = Overlay::new(fresh.snapshot().unwrap());
        let result = opal_ledger::execute_block(&mut o, &block).unwrap();
        assert_eq!(result, sb.result, "results of height {h} differ on replay");
        let root = fresh
            .commit(h, o.into_writes(), Default::default())
            .unwrap();
        assert_eq!(
            root,
            store.root_at(h).unwrap(),
            "replay diverged at height {h}"
        );
    }
    println!("replayed {latest} blocks in {:?}", t.elapsed());
}
