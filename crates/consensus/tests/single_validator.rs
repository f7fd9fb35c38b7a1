//! One validator with all the voting power, on the real engine (libp2p, WAL, sync).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_validator_commits_blocks_with_valid_certificates() {
    init_tracing();
    let home = tempfile::tempdir().unwrap();
    let validators = vec![validator(0)];
    let app = CounterApp::in_memory(validators.clone());
    let state = app.state.clone();

    let started = Instant::now();
    let handle = opal_consensus::start(config(home.path(), 0, free_addr(), vec![]), app)
        .await
        .expect("start");
    let mut rx = handle.committed_height();
    let took = wait_height(&mut rx, 5, Duration::from_secs(60)).await;
    eprintln!(
        "single validator: 5 heights in {took:?} (start {:?})",
        started.elapsed()
    );
    handle.shutdown().await;

    let s = state.lock().unwrap().clone();
    assert!(s.last >= 5, "last = {}", s.last);
    assert_eq!(s.blocks.len() as u64, s.last);
    check_chain(&s, &validators);
    for (_, cert, _) in s.blocks.values() {
        assert_eq!(cert.signatures.len(), 1);
        assert_eq!(cert.signatures[0].0, validators[0].public_key);
    }
    // A certificate does not verify for another chain or another validator set.
    let (_, cert, _) = s.blocks.get(&1).unwrap();
    assert!(cert.verify("other-chain", &validators).is_err());
    assert!(cert.verify(CHAIN_ID, &[validator(1)]).is_err());
    let mut forged = cert.clone();
    forged.value_id[0] ^= 1;
    assert!(forged.verify(CHAIN_ID, &validators).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_validator_restarts_from_last_committed() {
    init_tracing();
    let home = tempfile::tempdir().unwrap();
    let app_file = home.path().join("app.state");
    let validators = vec![validator(0)];
    let listen = free_addr();

    let app = CounterApp::persistent(validators.clone(), &app_file);
    let handle = opal_consensus::start(config(home.path(), 0, listen, vec![]), app)
        .await
        .expect("start");
    let mut rx = handle.committed_height();
    wait_height(&mut rx, 3, Duration::from_secs(60)).await;
    handle.shutdown().await;

    let app = CounterApp::persistent(validators.clone(), &app_file);
    let first_run = app.state.lock().unwrap().clone();
    assert!(first_run.last >= 3);
    check_chain(&first_run, &validators);

    // Same home (WAL, undecided store), same port, executor reloaded from disk.
    let state = app.state.clone();
    let handle = opal_consensus::start(config(home.path(), 0, listen, vec![]), app)
        .await
        .expect("restart");
    let mut rx = handle.committed_height();
    assert_eq!(*rx.borrow(), first_run.last);
    wait_height(&mut rx, first_run.last + 3, Duration::from_secs(60)).await;
    handle.shutdown().await;

    let s = state.lock().unwrap().clone();
    check_chain(&s, &validators);
    // The first run's blocks are unchanged, and the chain continued right after them.
    for (h, b) in &first_run.blocks {
        assert_eq!(
            s.blocks.get(h).map(|x| &x.0),
            Some(&b.0),
            "block {h} changed"
        );
    }
    assert!(s.last >= first_run.last + 3);
    assert_eq!(s.blocks.len() as u64, s.last);
}
