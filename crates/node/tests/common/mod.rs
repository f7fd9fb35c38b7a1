//! `OpalApp`s over a real store, for the node's tests.
#![allow(dead_code)]

use opal_ledger::{Genesis, GenesisAccount, GenesisValidator};
use opal_node::app::{OpalApp, Shared};
use opal_node::mempool::{Mempool, MempoolLimits};
use opal_types::{Amount, SecretKey};
use std::sync::Arc;

/// `key`'s precommit for `block` at `height` on chain `c`, as a one-signature commit
/// certificate (what the executor stores, and the next block carries as its last commit).
pub fn precommit(key: &SecretKey, height: u64, block: &[u8]) -> opal_consensus::CommitCertificate {
    let value_id = opal_consensus::value_id(block);
    let pk = key.public_key().0;
    let msg = opal_consensus::signing::precommit_sign_bytes("c", height, 0, value_id, pk);
    opal_consensus::CommitCertificate {
        height,
        round: 0,
        value_id,
        signatures: vec![(pk, key.sign(&msg).0.to_vec())],
    }
}

/// The precommits of `keys` for `block` at `height` on chain `c`, as a commit certificate.
pub fn precommits(
    keys: &[SecretKey],
    height: u64,
    block: &[u8],
) -> opal_consensus::CommitCertificate {
    let mut cert = precommit(&keys[0], height, block);
    cert.signatures = keys
        .iter()
        .map(|k| precommit(k, height, block).signatures.remove(0))
        .collect();
    cert
}

/// Chain `c` at genesis time `genesis_time_ms`, with `key` its only validator (stake 10M,
/// balance 1M); the app holds `key` (it proposes and reports evidence with it).
pub fn one_validator_app(key: &SecretKey, genesis_time_ms: u64) -> (tempfile::TempDir, OpalApp) {
    validators_app(std::slice::from_ref(key), key, genesis_time_ms)
}

/// Chain `c` with `keys` as its validators (equal stake 10M, balance 1M each); the app holds
/// `me` (it proposes and reports evidence with it).
pub fn validators_app(
    keys: &[SecretKey],
    me: &SecretKey,
    genesis_time_ms: u64,
) -> (tempfile::TempDir, OpalApp) {
    let key = me;
    let dir = tempfile::tempdir().unwrap();
    let store = opal_state::Store::open(&dir.path().join("s.redb")).unwrap();
    let genesis = Genesis {
        chain_id: "c".into(),
        genesis_time_ms,
        params: Default::default(),
        staking: Default::default(),
        inference: Default::default(),
        governance: Default::default(),
        rewards: Default::default(),
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                address: k.address(),
                balance: Amount(1_000_000),
            })
            .collect(),
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisValidator {
                name: format!("v{i}"),
                public_key: k.public_key(),
                operator: None,
                stake: Amount(10_000_000),
                vrf_key: k.vrf_public_key(),
            })
            .collect(),
    };
    let mut o = opal_state::Overlay::new(store.snapshot().unwrap());
    genesis.apply(&mut o).unwrap();
    store
        .commit(0, o.into_writes(), Default::default())
        .unwrap();
    let shared = Arc::new(Shared {
        store,
        mempool: parking_lot::Mutex::new(Mempool::new(MempoolLimits::default())),
        events: tokio::sync::broadcast::channel(16).0,
        height: tokio::sync::watch::channel(0).0,
        chain_id: "c".into(),
        validator: key.public_key(),
        snapshot_interval: None,
        penalties: Default::default(),
        check_invariants: true,
        metrics: Default::default(),
        gossip: opal_node::gossip::Gossip::disabled(),
    });
    (dir, OpalApp::new(shared, Some(key.clone())))
}
