//! A pruning node (`opal testnet --retain-heights 16`): it keeps the state, blocks and
//! transaction index of the last 16 heights; older heights answer 410 `pruned` with a message
//! that says why and where to ask; kept heights still prove against their block's state root;
//! a restart keeps pruning from where it was.

use crate::common::{get, submit, transfer, Testnet};
use std::time::Duration;

#[test]
fn a_pruning_node_serves_recent_heights_and_says_older_ones_are_pruned() {
    let mut tn = Testnet::start_with(1, &["--retain-heights", "16"]);
    let t0 = tn.t0();
    let keys = tn.dev_keys();
    let (alice, bob) = (&keys[0], keys[1].address());
    let fee = tn.min_fee(0);
    let nonce = tn.account(0, &alice.address())["nonce"].as_u64().unwrap();
    let (code, v) = submit(
        tn.url(0),
        &transfer(&tn.chain_id, fee, alice, bob, 5, nonce),
    );
    assert_eq!(code, 202, "{v}");
    let hash = v["hash"].as_str().unwrap().to_string();
    let st = tn.wait_tx(0, &hash, Duration::from_secs(30));
    let h_tx = st["height"].as_u64().unwrap();
    crate::common::log(t0, format!("transfer committed at height {h_tx}"));

    let hs = tn.wait_heights(&[0], h_tx + 16 + 4, Duration::from_secs(90));
    let status = tn.status(0).unwrap();
    let earliest = status["earliest_height"].as_u64().unwrap();
    crate::common::log(
        t0,
        format!("at height {}: earliest_height {earliest}", hs[0]),
    );
    assert!(earliest > h_tx, "height {h_tx} should be pruned: {status}");
    assert!(
        hs[0] + 1 - earliest <= 17,
        "keeps about 16 heights: {status}"
    );

    let url = tn.url(0).to_string();
    let who = alice.address();
    for path in [
        format!("/api/accounts/{who}?height={h_tx}"),
        format!("/api/blocks/{h_tx}"),
        format!("/api/light/{h_tx}"),
    ] {
        let (code, v) = get(&url, &path).unwrap();
        assert_eq!(code, 410, "{path}: {v}");
        assert_eq!(v["error"]["code"], "pruned", "{path}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("retain_heights") && msg.contains("archive"),
            "{msg}"
        );
    }
    // The transaction's index entry went with its block.
    let (code, v) = get(&url, &format!("/api/txs/{hash}")).unwrap();
    assert_eq!(code, 404, "{v}");

    // A kept height: the account with a proof, under the state root of that block.
    let (code, acct) = get(
        &url,
        &format!("/api/accounts/{who}?height={earliest}&prove=true"),
    )
    .unwrap();
    assert_eq!(code, 200, "{acct}");
    let (code, block) = get(&url, &format!("/api/blocks/{earliest}")).unwrap();
    assert_eq!(code, 200, "{block}");
    assert_eq!(acct["state_root"], block["state_root"]);
    let proof =
        opal_state::StateProof::from_bytes(&hex::decode(acct["proof"].as_str().unwrap()).unwrap())
            .unwrap();
    let root: [u8; 32] = hex::decode(block["state_root"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let value = hex::decode(acct["value"].as_str().unwrap()).unwrap();
    proof
        .verify(
            &root,
            &hex::decode(acct["key"].as_str().unwrap()).unwrap(),
            Some(&value),
        )
        .expect("a kept height proves against its block's root");

    // Restarted, it goes on pruning from where it was.
    tn.kill(0);
    tn.restart(0);
    let after = tn.wait_heights(&[0], hs[0] + 8, Duration::from_secs(60));
    let e2 = tn.status(0).unwrap()["earliest_height"].as_u64().unwrap();
    crate::common::log(
        t0,
        format!("restarted: height {}, earliest_height {e2}", after[0]),
    );
    assert!(
        e2 > earliest,
        "pruning continues after a restart: {earliest} -> {e2}"
    );
    let (code, _) = get(&url, &format!("/api/blocks/{}", e2 - 1)).unwrap();
    assert_eq!(code, 410);
}

#[test]
fn too_small_a_retention_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("tn");
    let (code, _, err) = crate::common::cli(&[
        "testnet",
        "--init-only",
        "--retain-heights",
        "5",
        "--home",
        h.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("keeps at least 16 heights"), "{err}");
    assert!(!h.exists(), "nothing written");
}
