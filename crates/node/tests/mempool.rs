//! Mempool admission and upkeep.

use opal_ledger::TxError;
use opal_node::error::AdmitError;
use opal_node::mempool::{Mempool, MempoolLimits, SenderState};
use opal_types::*;

fn tx(from: u8, nonce: u64, amount: u128) -> Transaction {
    TxBody {
        chain_id: "c".into(),
        nonce,
        fee: Amount(10),
        action: Action::Transfer {
            to: SecretKey::from_seed([99; 32]).address(),
            amount: Amount(amount),
        },
    }
    .sign(&SecretKey::from_seed([from; 32]))
}

fn rich(nonce: u64) -> SenderState {
    SenderState {
        nonce,
        balance: Amount(1_000_000),
    }
}

#[test]
fn consecutive_nonces_are_admitted_gaps_and_replays_are_not() {
    let mut m = Mempool::new(MempoolLimits::default());
    m.admit(tx(1, 5, 1), 100, rich(5)).unwrap();
    m.admit(tx(1, 6, 1), 100, rich(5)).unwrap();
    let gap = m.admit(tx(1, 8, 1), 100, rich(5)).unwrap_err();
    assert!(
        matches!(
            gap,
            AdmitError::Tx(TxError::BadNonce {
                expected: 7,
                got: 8,
                ..
            })
        ),
        "{gap}"
    );
    let replay = m.admit(tx(1, 4, 1), 100, rich(5)).unwrap_err();
    assert!(matches!(
        replay,
        AdmitError::Tx(TxError::BadNonce {
            expected: 7,
            got: 4,
            ..
        })
    ));
    let dup = m.admit(tx(1, 6, 1), 100, rich(5)).unwrap_err();
    assert!(matches!(dup, AdmitError::AlreadyKnown(_)));
    assert_eq!(m.len(), 2);
    assert_eq!(
        m.pending_count(&SecretKey::from_seed([1; 32]).address(), 5),
        2
    );
}

#[test]
fn admission_is_right_while_a_committed_block_is_not_yet_pruned() {
    // Nonces 0..3 pending; a block with 0 and 1 has been committed (state nonce 2) but the
    // mempool has not been told yet. The next transaction is nonce 4, and the spends of the
    // committed ones must not count against the new balance.
    let mut m = Mempool::new(MempoolLimits::default());
    for n in 0..4 {
        m.admit(
            tx(1, n, 100),
            100,
            SenderState {
                nonce: 0,
                balance: Amount(1_000),
            },
        )
        .unwrap();
    }
    assert_eq!(
        m.pending_count(&SecretKey::from_seed([1; 32]).address(), 2),
        2
    );
    let after_block = || SenderState {
        nonce: 2,
        balance: Amount(1_000 - 2 * 110),
    };
    m.admit(tx(1, 4, 100), 100, after_block())
        .expect("nonce 4 follows the live pending 2 and 3");
    let e = m.admit(tx(1, 5, 500), 100, after_block()).unwrap_err();
    assert!(
        matches!(e, AdmitError::Tx(TxError::InsufficientFunds { .. })),
        "{e}"
    );
}

#[test]
fn pending_spends_count_against_the_balance() {
    let mut m = Mempool::new(MempoolLimits::default());
    let s = || SenderState {
        nonce: 0,
        balance: Amount(100),
    };
    m.admit(tx(2, 0, 40), 100, s()).unwrap(); // 50 with fee
    m.admit(tx(2, 1, 40), 100, s()).unwrap(); // 100
    let e = m.admit(tx(2, 2, 1), 100, s()).unwrap_err();
    assert!(
        matches!(e, AdmitError::Tx(TxError::InsufficientFunds { .. })),
        "{e}"
    );
}

#[test]
fn limits_are_enforced() {
    let mut m = Mempool::new(MempoolLimits {
        max_txs: 2,
        max_bytes: 1_000,
        max_per_sender: 10,
        max_age: std::time::Duration::from_secs(600),
    });
    m.admit(tx(1, 0, 1), 100, rich(0)).unwrap();
    m.admit(tx(2, 0, 1), 100, rich(0)).unwrap();
    assert!(matches!(
        m.admit(tx(3, 0, 1), 100, rich(0)),
        Err(AdmitError::MempoolFull(2))
    ));
    let mut m = Mempool::new(MempoolLimits {
        max_txs: 10,
        max_bytes: 150,
        max_per_sender: 10,
        max_age: std::time::Duration::from_secs(600),
    });
    m.admit(tx(1, 0, 1), 100, rich(0)).unwrap();
    assert!(matches!(
        m.admit(tx(2, 0, 1), 100, rich(0)),
        Err(AdmitError::MempoolFull(_))
    ));
}

fn tx_fee(from: u8, nonce: u64, fee: u128) -> Transaction {
    TxBody {
        chain_id: "c".into(),
        nonce,
        fee: Amount(fee),
        action: Action::Transfer {
            to: SecretKey::from_seed([99; 32]).address(),
            amount: Amount(1),
        },
    }
    .sign(&SecretKey::from_seed([from; 32]))
}

#[test]
fn one_sender_cannot_fill_the_mempool() {
    let mut m = Mempool::new(MempoolLimits {
        max_txs: 100,
        max_bytes: 1 << 20,
        max_per_sender: 3,
        max_age: std::time::Duration::from_secs(600),
    });
    for n in 0..3 {
        m.admit(tx(1, n, 1), 100, rich(0)).unwrap();
    }
    let e = m.admit(tx(1, 3, 1), 100, rich(0)).unwrap_err();
    assert!(matches!(e, AdmitError::SenderLimit(3)), "{e}");
    assert_eq!(e.code(), "sender_limit");
    // Others still get in; and the sender again once its transactions are in a block.
    m.admit(tx(2, 0, 1), 100, rich(0)).unwrap();
    let included: Vec<Hash> = (0..3).map(|n| tx(1, n, 1).hash()).collect();
    m.on_committed(&included, |_| Some(3));
    m.admit(tx(1, 3, 1), 100, rich(3)).unwrap();
}

#[test]
fn a_full_mempool_evicts_the_cheapest_tail_for_a_higher_fee() {
    let mut m = Mempool::new(MempoolLimits {
        max_txs: 3,
        max_bytes: 1 << 20,
        max_per_sender: 10,
        max_age: std::time::Duration::from_secs(600),
    });
    // Sender 1: fees 50 then 20 (its tail pays 20); sender 2: fee 30.
    m.admit(tx_fee(1, 0, 50), 100, rich(0)).unwrap();
    m.admit(tx_fee(1, 1, 20), 100, rich(0)).unwrap();
    m.admit(tx_fee(2, 0, 30), 100, rich(0)).unwrap();
    // Not more per byte than the cheapest tail: refused, nothing evicted.
    let e = m.admit(tx_fee(3, 0, 20), 100, rich(0)).unwrap_err();
    assert!(matches!(e, AdmitError::MempoolFull(3)), "{e}");
    assert_eq!(m.len(), 3);
    // More: sender 1's tail (fee 20) goes, not its head, and its status says why.
    let evicted = tx_fee(1, 1, 20).hash();
    m.admit(tx_fee(3, 0, 25), 100, rich(0)).unwrap();
    assert_eq!(m.len(), 3);
    assert!(!m.contains(&evicted));
    assert!(m.contains(&tx_fee(1, 0, 50).hash()));
    assert_eq!(m.dropped_reason(&evicted).unwrap().1, "evicted");
    // A sender never evicts its own queue: sender 3 at a huge fee finds only others' tails
    // (sender 2's, fee 30, and sender 1's head-now-tail, fee 50) and takes the cheapest.
    m.admit(tx_fee(3, 1, 1_000), 100, rich(0)).unwrap();
    assert!(!m.contains(&tx_fee(2, 0, 30).hash()));
    assert!(m.contains(&tx_fee(3, 0, 25).hash()));
    // Per byte, not per transaction: a fee of 60 over 300 bytes pays less than 50 over 100.
    let e = m.admit(tx_fee(4, 0, 60), 300, rich(0)).unwrap_err();
    assert!(matches!(e, AdmitError::MempoolFull(_)), "{e}");
}

#[test]
fn eviction_follows_the_tails_as_queues_change() {
    let mut m = Mempool::new(MempoolLimits {
        max_txs: 4,
        max_bytes: 1 << 20,
        max_per_sender: 10,
        max_age: std::time::Duration::from_secs(600),
    });
    // Sender 1: fees 90, 10 (tail 10); sender 2: 40; sender 3: 70.
    m.admit(tx_fee(1, 0, 90), 100, rich(0)).unwrap();
    m.admit(tx_fee(1, 1, 10), 100, rich(0)).unwrap();
    m.admit(tx_fee(2, 0, 40), 100, rich(0)).unwrap();
    m.admit(tx_fee(3, 0, 70), 100, rich(0)).unwrap();
    // Sender 1's tail is included in a block: its tail is now its fee-90 head, and the
    // cheapest tail is sender 2's.
    m.on_committed(&[tx_fee(1, 1, 10).hash()], |_| Some(0));
    m.admit(tx_fee(4, 0, 50), 100, rich(0)).unwrap(); // room again: nothing evicted
    assert_eq!(m.len(), 4);
    m.admit(tx_fee(5, 0, 45), 100, rich(0)).unwrap();
    assert!(
        !m.contains(&tx_fee(2, 0, 40).hash()),
        "sender 2's tail (40) goes"
    );
    // Next cheapest tail is 45 (sender 5): a 44 is refused, a 46 evicts it.
    assert!(m.admit(tx_fee(6, 0, 44), 100, rich(0)).is_err());
    m.admit(tx_fee(6, 0, 46), 100, rich(0)).unwrap();
    assert!(!m.contains(&tx_fee(5, 0, 45).hash()));
    for h in [
        tx_fee(1, 0, 90),
        tx_fee(3, 0, 70),
        tx_fee(4, 0, 50),
        tx_fee(6, 0, 46),
    ] {
        assert!(m.contains(&h.hash()));
    }
}

#[test]
fn reap_is_deterministic_and_in_nonce_order() {
    let mut m = Mempool::new(MempoolLimits::default());
    for n in 0..3 {
        m.admit(tx(2, n, 1), 100, rich(0)).unwrap();
        m.admit(tx(1, n, 1), 100, rich(0)).unwrap();
    }
    let r = m.reap(100);
    assert_eq!(r.len(), 6);
    for w in r.windows(2) {
        if w[0].sender() == w[1].sender() {
            assert_eq!(w[0].body.nonce + 1, w[1].body.nonce);
        } else {
            assert!(w[0].sender() < w[1].sender());
        }
    }
    assert_eq!(m.reap(4).len(), 4);
}

#[test]
fn commit_and_invalidation_upkeep() {
    let mut m = Mempool::new(MempoolLimits::default());
    let txs: Vec<_> = (0..4).map(|n| tx(1, n, 1)).collect();
    for t in &txs {
        m.admit(t.clone(), 100, rich(0)).unwrap();
    }
    // Block included nonce 0; the chain nonce is now 2 (nonce 1 arrived through another node).
    m.on_committed(&[txs[0].hash()], |_| Some(2));
    assert_eq!(m.len(), 2, "nonce 0 included, nonce 1 stale");
    assert!(m.contains(&txs[2].hash()) && m.contains(&txs[3].hash()));
    // Block building found nonce 2 invalid: it and everything after it go, with a reason.
    m.drop_invalid(&[(txs[2].hash(), TxError::ZeroAmount)]);
    assert!(m.is_empty());
    let (reason, code) = m.dropped_reason(&txs[2].hash()).unwrap();
    assert!(reason.contains("zero"), "{reason}");
    assert_eq!(code, "zero_amount");
    assert_eq!(
        m.dropped_reason(&txs[3].hash()).unwrap().1,
        "earlier_dropped"
    );
}

#[test]
fn transactions_that_wait_too_long_expire_with_the_rest_of_their_queue() {
    let mut m = Mempool::new(MempoolLimits {
        max_age: std::time::Duration::from_millis(200),
        ..MempoolLimits::default()
    });
    let old0 = m.admit(tx(1, 0, 1), 100, rich(0)).unwrap();
    let old1 = m.admit(tx(1, 1, 1), 100, rich(0)).unwrap();
    let t_mid = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(250));
    let young = m.admit(tx(2, 0, 1), 100, rich(0)).unwrap();
    // Nothing has waited 200 ms at t_mid.
    assert_eq!(m.expire(t_mid), 0);
    assert_eq!(
        m.expire(std::time::Instant::now()),
        2,
        "sender 1's queue expired"
    );
    assert!(!m.contains(&old0) && !m.contains(&old1));
    assert!(
        m.contains(&young),
        "a younger transaction of another sender stays"
    );
    assert_eq!(m.dropped_reason(&old0).unwrap().1, "expired");
    assert_eq!(m.dropped_reason(&old1).unwrap().1, "earlier_dropped");
    // The sender can start again from its committed nonce.
    m.admit(tx(1, 0, 2), 100, rich(0)).unwrap();
}
