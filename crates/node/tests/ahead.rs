//! Execution ahead of the decision (`opal_node::ahead`): a proposer's commit reuses the
//! execution of its build, a validator's commit reuses the background execution of the
//! proposal it found valid, and neither can make a node commit anything but the decided block.

mod common;

use common::precommit;
use opal_consensus::BlockExecutor;
use opal_node::app::OpalApp;
use opal_types::{Action, Amount, Block, SecretKey};

const T0: u64 = 1_800_000_000_000;

/// `opal_block_executions_total{at=...}` of `app`'s node.
fn executions(app: &OpalApp, at: &str) -> u64 {
    app.shared.metrics.blocks_executed(at)
}

/// Three nodes of the same one-validator chain (each holds the validator key, so each can
/// propose; their stores are separate).
fn three(key: &SecretKey) -> [(tempfile::TempDir, OpalApp); 3] {
    std::array::from_fn(|_| {
        let (dir, mut app) = common::one_validator_app(key, T0);
        app.clock = std::sync::Arc::new(|| T0 + 60_000);
        (dir, app)
    })
}

fn transfer(app: &OpalApp, key: &SecretKey, amount: u128) {
    let to = SecretKey::from_seed([7; 32]).address();
    opal_node::local::submit(
        &app.shared,
        key,
        Action::Transfer {
            to,
            amount: Amount(amount),
        },
    )
    .unwrap();
}

fn root(app: &OpalApp) -> [u8; 32] {
    app.shared.snapshot().unwrap().root()
}

#[test]
fn a_block_is_executed_once_where_it_can_be() {
    let key = SecretKey::from_seed([1; 32]);
    let [(_d0, mut proposer), (_d1, mut validator), (_d2, mut syncer)] = three(&key);
    let (proposer, validator, syncer) = (&mut proposer, &mut validator, &mut syncer);
    transfer(proposer, &key, 5);
    let b1 = proposer.build_block(1, 0, key.public_key().0);
    assert_eq!(Block::from_bytes(&b1).unwrap().txs.len(), 1);
    // The validator finds the proposal valid and starts executing it.
    assert_eq!(validator.verify_proposal(1, 0, None, &b1), Ok(()));
    let cert = precommit(&key, 1, &b1);
    let r1 = proposer.commit(1, &b1, &cert).unwrap();
    let r2 = validator.commit(1, &b1, &cert).unwrap();
    // A block that arrives decided (value sync) was never executed ahead.
    let r3 = syncer.commit(1, &b1, &cert).unwrap();
    assert_eq!((r1, r2), (r3, r3), "one state, wherever it was executed");
    assert_eq!(
        [
            executions(proposer, "build"),
            executions(validator, "ahead"),
            executions(syncer, "commit"),
        ],
        [1, 1, 1]
    );
    assert_eq!(
        executions(proposer, "commit") + executions(validator, "commit"),
        0
    );
}

/// A Byzantine proposer shows this validator block X, which it executes ahead; the network
/// decides block Y of the same height. The validator must commit Y's state, not X's.
#[test]
fn a_proposal_executed_ahead_but_not_decided_is_not_committed() {
    let key = SecretKey::from_seed([1; 32]);
    let [(_d0, mut liar), (_d1, mut validator), (_d2, mut honest)] = three(&key);
    let (liar, validator, honest) = (&mut liar, &mut validator, &mut honest);
    transfer(liar, &key, 500_000);
    let x = liar.build_block(1, 0, key.public_key().0);
    let y = honest.build_block(1, 0, key.public_key().0);
    assert_ne!(x, y);
    assert_eq!(validator.verify_proposal(1, 0, None, &x), Ok(()));
    let cert = precommit(&key, 1, &y);
    let ry = honest.commit(1, &y, &cert).unwrap();
    assert_eq!(validator.commit(1, &y, &cert).unwrap(), ry);
    assert_eq!(root(validator), root(honest));
    assert_eq!(executions(validator, "ahead"), 0);
    assert_eq!(executions(validator, "commit"), 1);
    // And the liar's own build of X is not what it commits when Y is decided.
    assert_eq!(liar.commit(1, &y, &cert).unwrap(), ry);
    assert_eq!(executions(liar, "build"), 0);
}

/// A proposal found invalid is never executed ahead.
#[test]
fn an_invalid_proposal_is_not_executed_ahead() {
    let key = SecretKey::from_seed([1; 32]);
    let [(_d0, mut proposer), (_d1, mut validator), _] = three(&key);
    let (proposer, validator) = (&mut proposer, &mut validator);
    let b1 = proposer.build_block(1, 0, key.public_key().0);
    let mut bad = Block::from_bytes(&b1).unwrap();
    bad.header.parent_hash.0[0] ^= 1;
    assert!(validator
        .verify_proposal(1, 0, None, &bad.to_bytes())
        .is_err());
    let cert = precommit(&key, 1, &b1);
    validator.commit(1, &b1, &cert).unwrap();
    assert_eq!(executions(validator, "ahead"), 0);
    assert_eq!(executions(validator, "commit"), 1);
}

/// The same header with another last commit is another block: a Byzantine proposer of height 2
/// shows this validator its block carrying all four signatures of block 1, and gets decided the
/// copy carrying only three (still more than two thirds). The header hash is the same; the state
/// is not (liveness counts who signed block 1), so the execution of the first must not be used
/// for the second.
#[test]
fn the_same_header_with_another_last_commit_is_not_reused() {
    let keys: Vec<SecretKey> = (1..=4u8).map(|i| SecretKey::from_seed([i; 32])).collect();
    let mut apps: Vec<(tempfile::TempDir, OpalApp)> = (0..2)
        .map(|_| {
            let (dir, mut app) = common::validators_app(&keys, &keys[0], T0);
            app.clock = std::sync::Arc::new(|| T0 + 60_000);
            (dir, app)
        })
        .collect();
    let b1 = apps[0].1.build_block(1, 0, keys[0].public_key().0);
    let cert1 = common::precommits(&keys, 1, &b1);
    for (_, app) in apps.iter_mut() {
        app.commit(1, &b1, &cert1).unwrap();
    }
    let all_four = apps[0].1.build_block(2, 0, keys[0].public_key().0);
    let mut three = Block::from_bytes(&all_four).unwrap();
    let lc = three.last_commit.as_mut().unwrap();
    assert_eq!(lc.signatures.len(), 4);
    lc.signatures.pop();
    let three = three.to_bytes();
    let x = Block::from_bytes(&all_four).unwrap();
    let y = Block::from_bytes(&three).unwrap();
    assert_eq!(
        x.hash(),
        y.hash(),
        "the header does not cover the last commit"
    );
    let (validator, honest) = {
        let (a, b) = apps.split_at_mut(1);
        (&mut a[0].1, &mut b[0].1)
    };
    // `validator` is the proposer here: it built (and executed) the four-signature block.
    assert_eq!(validator.verify_proposal(2, 0, None, &three), Ok(()));
    let cert2 = common::precommits(&keys, 2, &three);
    let expected = {
        let (_d, mut fresh) = common::validators_app(&keys, &keys[1], T0);
        fresh.clock = std::sync::Arc::new(|| T0 + 60_000);
        fresh.commit(1, &b1, &cert1).unwrap();
        fresh.commit(2, &three, &cert2).unwrap()
    };
    assert_eq!(honest.commit(2, &three, &cert2).unwrap(), expected);
    assert_eq!(
        validator.commit(2, &three, &cert2).unwrap(),
        expected,
        "the proposer committed the state of the block it built, not of the one decided"
    );
}
