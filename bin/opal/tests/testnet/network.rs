//! Four validators agree on every block, and a transfer sent to one is committed on all.

use crate::common::{log, submit, transfer, Testnet};
use std::time::Duration;

#[test]
fn four_validators_agree_and_commit_a_transfer() {
    let tn = Testnet::start(4);
    let t0 = tn.t0();
    let all = [0, 1, 2, 3];
    assert_eq!(tn.chain_id, "opal-testnet");

    // A common height: the lowest any of them reports.
    let h = tn
        .heights(&all)
        .into_iter()
        .map(|h| h.unwrap())
        .min()
        .unwrap();
    let (hash, root) = tn.assert_same_block(&all, h);
    log(
        t0,
        format!(
            "height {h}: all 4 have block {}… state root {}…",
            &hash[..16],
            &root[..16]
        ),
    );

    // Alice sends 1000 to bob through node1.
    let keys = tn.dev_keys(); // alice, bob, carol, dave (sorted by file name)
    let (alice, bob) = (&keys[0], keys[1].address());
    let before = tn.balance(1, &bob);
    let nonce = tn.account(1, &alice.address())["nonce"].as_u64().unwrap();
    let tx = transfer(&tn.chain_id, tn.min_fee(1), alice, bob, 1000, nonce);
    let (code, v) = submit(tn.url(1), &tx);
    assert_eq!(code, 202, "submit: {v}");
    let hash = v["hash"].as_str().unwrap().to_string();
    let st = tn.wait_tx(1, &hash, Duration::from_secs(20));
    let tx_height = st["height"].as_u64().expect("committed tx has a height");
    log(
        t0,
        format!(
            "transfer {}… committed at height {tx_height} (sent to node1)",
            &hash[..16]
        ),
    );

    // Every validator has the same block at that height, and sees the new balance.
    tn.wait_heights(&all, tx_height, Duration::from_secs(20));
    let (bh, sr) = tn.assert_same_block(&all, tx_height);
    for i in all {
        assert_eq!(tn.balance(i, &bob), before + 1000, "node{i} balance of bob");
        let st = tn.wait_tx(i, &hash, Duration::from_secs(5));
        assert_eq!(st["height"].as_u64(), Some(tx_height), "node{i}: {st}");
    }
    log(
        t0,
        format!(
            "all 4: block {}… state root {}… at {tx_height}; bob {} -> {}",
            &bh[..16],
            &sr[..16],
            before,
            before + 1000
        ),
    );
    tn.assert_no_fork(&all, tx_height);
    log(t0, format!("no fork at heights 1..={tx_height}"));
}
