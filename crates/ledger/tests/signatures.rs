//! Signatures verified once: a node skips the signature check of the transactions it verified
//! at admission (`Ledger::execute_block_with`), and the result must be the same bytes as a full
//! check, whatever it believes it verified. A forged transaction is a different transaction
//! (its hash covers the signature), so a verified twin does not let it through.

use opal_ledger::{Ledger, TxResult};
use opal_testkit::{key, TestChain};
use opal_types::{Hash, Signature};

fn outcome(results: &[TxResult]) -> Vec<Option<String>> {
    results.iter().map(|t| t.code.clone()).collect()
}

#[test]
fn skipping_verified_signatures_changes_no_byte() {
    let chain = TestChain::new();
    let (a, b) = (key(1), key(2));
    let txs = vec![
        chain.transfer(&a, &b, 10, chain.nonce(&a)),
        chain.transfer(&a, &b, 20, chain.nonce(&a) + 1),
        chain.transfer(&b, &a, 5, chain.nonce(&b)),
    ];
    let hashes: Vec<Hash> = txs.iter().map(|t| t.hash()).collect();
    let block = chain.next_block(txs);
    let ledger = Ledger::new();
    let mut full = chain.overlay();
    let r_full = ledger.execute_block(&mut full, &block).unwrap();
    for verified in [vec![], vec![hashes[1]], hashes.clone()] {
        let mut o = chain.overlay();
        let r = ledger
            .execute_block_with(&mut o, &block, &|h| verified.contains(h))
            .unwrap();
        assert_eq!(outcome(&r.txs), outcome(&r_full.txs));
        assert!(
            r.txs.iter().all(|t| t.code.is_none()),
            "{:?}",
            outcome(&r.txs)
        );
        assert_eq!(o.clone().into_writes(), full.clone().into_writes());
    }
}

#[test]
fn a_forgery_of_a_verified_transaction_is_still_refused() {
    let chain = TestChain::new();
    let (a, b, mallory) = (key(1), key(2), key(3));
    let honest = chain.transfer(&a, &b, 10, chain.nonce(&a));
    // Mallory takes a's signed transfer and re-aims it at herself, keeping a's signature; and
    // a second forgery keeps the body but carries a garbage signature.
    let mut redirected = chain.transfer(&a, &mallory, 1_000, chain.nonce(&a));
    redirected.signature = honest.signature;
    let mut garbage = honest.clone();
    garbage.signature = Signature([7; 64]);
    assert_ne!(redirected.hash(), honest.hash());
    assert_ne!(garbage.hash(), honest.hash());
    let ledger = Ledger::new();
    for forged in [redirected, garbage] {
        let block = chain.next_block(vec![forged]);
        // The node believes it verified the honest twin (and even everything else).
        let honest_hash = honest.hash();
        for verified in [
            Box::new(move |h: &Hash| *h == honest_hash) as Box<dyn Fn(&Hash) -> bool>,
            Box::new(|_: &Hash| false),
        ] {
            let mut o = chain.overlay();
            let r = ledger
                .execute_block_with(&mut o, &block, &*verified)
                .unwrap();
            assert_eq!(r.txs[0].code.as_deref(), Some("bad_signature"));
        }
    }
}
