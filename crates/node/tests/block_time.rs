//! BFT time (docs/adr/0002-bft-time.md): a proposer alone cannot move block time. A fresh
//! proposal whose time is beyond a validator's clock plus the precision is refused
//! (`verify_proposal`, the prevote check), however it was built; a block that arrives through
//! value sync with its certificate is checked against committed state only; time arithmetic
//! never wraps.

mod common;

use opal_consensus::time::TimeBounds;
use opal_consensus::BlockExecutor;
use opal_node::app::AppError;
use opal_node::app::OpalApp;
use opal_types::{Block, SecretKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const HOUR_MS: u64 = 3_600_000;
const T0: u64 = 1_800_000_000_000;

struct Node {
    _dir: tempfile::TempDir,
    app: OpalApp,
    clock: Arc<AtomicU64>,
    key: SecretKey,
}

fn node(genesis_time_ms: u64) -> Node {
    let key = SecretKey::from_seed([1; 32]);
    let (dir, mut app) = common::one_validator_app(&key, genesis_time_ms);
    let clock = Arc::new(AtomicU64::new(genesis_time_ms.saturating_add(1_000)));
    let c = clock.clone();
    app.clock = Arc::new(move || c.load(Ordering::SeqCst));
    app.time_bounds = TimeBounds {
        precision_ms: 500,
        msg_delay_ms: 2_000,
        msg_delay_per_round_ms: 1_000,
    };
    Node {
        _dir: dir,
        app,
        clock,
        key,
    }
}

/// A block for `height` on top of `n`'s state with the header time set to `time_ms`, as a
/// proposer with a wrong (or lying) clock would build it (the header is the proposer's to
/// write; consensus signs the bytes it streams, not the time).
fn block_at(n: &mut Node, height: u64, time_ms: u64) -> Vec<u8> {
    let bytes = n.app.build_block(height, 0, n.key.public_key().0);
    let mut b = Block::from_bytes(&bytes).expect("built block decodes");
    b.header.time_ms = time_ms;
    b.to_bytes()
}

#[test]
fn a_proposal_hours_ahead_is_refused_and_an_honest_one_accepted() {
    let mut n = node(T0);
    let now = T0 + 1_000;
    // The attack: a proposer pushes block time three hours ahead, which would close every
    // reveal window and challenge deadline at once. The old rule (only "after the parent")
    // accepted it.
    let ahead = block_at(&mut n, 1, now + 3 * HOUR_MS);
    assert!(
        n.app.verify_block(1, &ahead).is_ok(),
        "committed-state check alone cannot see it"
    );
    let err = n.app.verify_proposal(1, 0, None, &ahead).unwrap_err();
    assert!(
        matches!(&err, AppError::Untimely(m) if m.contains("ahead of this validator's clock")),
        "{err}"
    );
    // In every round, not only the first.
    assert!(n.app.verify_proposal(1, 7, None, &ahead).is_err());
    // Just past the precision: refused; within it: accepted.
    let slightly = block_at(&mut n, 1, now + 501);
    assert!(n.app.verify_proposal(1, 0, None, &slightly).is_err());
    let within = block_at(&mut n, 1, now + 500);
    assert!(n.app.verify_proposal(1, 0, None, &within).is_ok());
    // An honest proposer's block, built from the same clock.
    let honest = n.app.build_block(1, 0, n.key.public_key().0);
    assert_eq!(n.app.verify_proposal(1, 0, None, &honest), Ok(()));
}

#[test]
fn a_stale_time_is_refused_in_early_rounds() {
    let mut n = node(T0);
    n.clock.store(T0 + 60_000, Ordering::SeqCst);
    // 3 s behind the receiver's clock: over precision + delay (2.5 s) in round 0, within the
    // round-1 allowance (3.5 s).
    let stale = block_at(&mut n, 1, T0 + 57_000);
    let err = n.app.verify_proposal(1, 0, None, &stale).unwrap_err();
    assert!(
        matches!(&err, AppError::Untimely(m) if m.contains("behind this validator's clock")),
        "{err}"
    );
    assert_eq!(n.app.verify_proposal(1, 1, None, &stale), Ok(()));
}

#[test]
fn synced_and_re_proposed_blocks_are_not_judged_by_todays_clock() {
    let mut n = node(T0);
    let b1 = n.app.build_block(1, 0, n.key.public_key().0);
    n.app
        .commit(1, &b1, &common::precommit(&n.key, 1, &b1))
        .unwrap();
    // A block made a day ago, committed by the network then, arriving by sync today.
    let old = block_at(&mut n, 2, T0 + 5_000);
    n.clock.store(T0 + 24 * HOUR_MS, Ordering::SeqCst);
    assert_eq!(n.app.verify_block(2, &old), Ok(()));
    // A re-proposal carrying a proof-of-lock round was timely when first proposed.
    assert_eq!(n.app.verify_proposal(2, 3, Some(1), &old), Ok(()));
    assert!(n.app.verify_proposal(2, 3, None, &old).is_err());
}

#[test]
fn time_arithmetic_never_wraps() {
    let mut n = node(T0);
    // A block at u64::MAX would make every later block impossible (parent + 1 overflows).
    let max = block_at(&mut n, 1, u64::MAX);
    let err = n.app.verify_block(1, &max).unwrap_err();
    assert!(
        matches!(&err, AppError::Invalid(m) if m.contains("no room")),
        "{err}"
    );
    // Not after the parent (the genesis time).
    let same = block_at(&mut n, 1, T0);
    assert!(n.app.verify_block(1, &same).is_err());

    // A genesis at u64::MAX - 1: the proposer refuses to build rather than wrap (an empty
    // block, which fails verification everywhere), and verification refuses any time.
    let mut m = node(u64::MAX - 1);
    m.clock.store(5, Ordering::SeqCst);
    assert!(m.app.build_block(1, 0, m.key.public_key().0).is_empty());
}
