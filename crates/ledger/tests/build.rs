//! `Ledger::build_block`: a proposer builds and executes its block in one pass. What it leaves
//! in the state must be exactly what executing the decided block does, or a proposer that
//! reuses it (the node does, `docs/architecture.md`) would commit a different state from every
//! other validator.

use opal_ledger::*;
use opal_state::Overlay;
use opal_testkit::*;
use opal_types::*;
use proptest::prelude::*;

/// Build from `candidates` on top of `c`'s committed state, as the proposer of the next block.
fn build(c: &TestChain, candidates: Vec<Transaction>) -> (Built, Overlay) {
    let template = c.next_block(vec![]);
    let mut o = c.overlay();
    let built = Ledger::new()
        .build_block(&mut o, template.header, template.last_commit, candidates)
        .unwrap();
    (built, o)
}

/// Build, then check the built state against an independent execution of the built block.
fn check_against_execution(c: &TestChain, candidates: Vec<Transaction>) -> Built {
    let (built, built_state) = build(c, candidates.clone());
    let mut executed = c.overlay();
    let result = execute_block(&mut executed, &built.block).unwrap();
    assert_eq!(
        result, built.result,
        "the built result is the executed result"
    );
    assert_eq!(
        built_state.into_writes(),
        executed.into_writes(),
        "the built state is the executed state, byte for byte"
    );
    assert!(built.result.txs.iter().all(|t| t.error.is_none()));
    // Kept: exactly those that apply when every candidate is put in a block as is (a refused
    // transaction leaves no trace, so the others see the same state); refused: the others, in
    // order, with the error that execution gives them.
    let mut all = c.overlay();
    let everything = execute_block(&mut all, &c.next_block(candidates.clone())).unwrap();
    let applied: Vec<Hash> = everything
        .txs
        .iter()
        .filter(|t| t.error.is_none())
        .map(|t| t.hash)
        .collect();
    let refused: Vec<(Hash, String)> = everything
        .txs
        .iter()
        .filter_map(|t| Some((t.hash, t.code.clone()?)))
        .collect();
    let kept: Vec<Hash> = built.block.txs.iter().map(Transaction::hash).collect();
    assert_eq!(kept, applied);
    let rejected: Vec<(Hash, String)> = built
        .rejected
        .iter()
        .map(|(h, e)| (*h, e.code().to_string()))
        .collect();
    assert_eq!(rejected, refused);
    assert_eq!(built.block.header.tx_count as usize, kept.len());
    assert_eq!(built.block.header.tx_root, Block::tx_root(&built.block.txs));
    built
}

#[test]
fn keeps_what_applies_in_order_and_refuses_the_rest() {
    let mut c = TestChain::new();
    c.block(vec![]); // height 2 carries a last commit, liveness and rewards run
    let mut other_chain = c.transfer(&key(4), &key(2), 10, 0).body;
    other_chain.chain_id = "other".into();
    let built = check_against_execution(
        &c,
        vec![
            c.transfer(&key(1), &key(2), 10, 0),
            c.transfer(&key(1), &key(2), 10, 2), // nonce gap
            c.transfer(&key(1), &key(2), 10, 1),
            c.transfer(&key(3), &key(2), 5_000_000, 0), // overdraft
            other_chain.sign(&key(4)),
            c.transfer(&key(3), &key(2), 1, 0),
        ],
    );
    let kept: Vec<(u64, Address)> = built
        .block
        .txs
        .iter()
        .map(|t| (t.body.nonce, t.sender()))
        .collect();
    assert_eq!(
        kept,
        [
            (0, key(1).address()),
            (1, key(1).address()),
            (0, key(3).address())
        ]
    );
    let codes: Vec<&str> = built.rejected.iter().map(|(_, e)| e.code()).collect();
    assert_eq!(codes, ["bad_nonce", "insufficient_funds", "wrong_chain"]);
}

#[test]
fn stops_at_the_block_limits_and_leaves_the_rest_untouched() {
    let mut g = genesis();
    g.params.max_block_txs = 3;
    let c = TestChain::with_genesis(g);
    let candidates: Vec<Transaction> = (0..5).map(|n| c.transfer(&key(1), &key(2), 1, n)).collect();
    let built = check_against_execution(&c, candidates[..3].to_vec());
    assert_eq!(built.block.txs.len(), 3);
    let (built, _) = build(&c, candidates);
    assert_eq!(built.block.txs.len(), 3, "max_block_txs");
    assert!(
        built.rejected.is_empty(),
        "what does not fit is not refused: it waits for the next block"
    );
}

#[test]
fn an_empty_build_is_an_empty_block() {
    let mut c = TestChain::new();
    c.block(vec![]);
    let built = check_against_execution(&c, vec![]);
    assert!(built.block.txs.is_empty() && built.rejected.is_empty());
    assert_eq!(built.block.header.tx_root, Block::tx_root(&[]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random mixes of good, replayed, gapped, overdrawn and foreign-chain transfers, on a
    /// chain a few blocks in: the built state is the executed state.
    #[test]
    fn the_built_state_is_the_executed_state(
        history in 0usize..3,
        picks in prop::collection::vec((1u8..=4, 1u8..=4, 0u8..4, 0u8..6), 0..40),
    ) {
        let mut c = TestChain::new();
        for h in 0..history {
            c.block(vec![c.transfer(&key(1), &key(2), 7, h as u64)]);
        }
        let mut next: std::collections::HashMap<u8, u64> = (1..=4).map(|i| (i, c.nonce(&key(i)))).collect();
        let candidates: Vec<Transaction> = picks
            .into_iter()
            .map(|(from, to, amount, nonce)| {
                let n = next.get_mut(&from).unwrap();
                let nonce = match nonce {
                    0 => { *n += 1; *n - 1 }           // the next one
                    1 => n.saturating_sub(1),           // a replay
                    2 => *n + 2,                        // a gap
                    _ => { *n += 1; *n - 1 }
                };
                let amount = match amount { 0 => 0, 1 => 1, 2 => 400_000, _ => 5_000_000 };
                let mut body = c.transfer(&key(from), &key(to), amount, nonce).body;
                if amount == 400_000 && to == 4 {
                    body.chain_id = "elsewhere".into();
                }
                body.sign(&key(from))
            })
            .collect();
        check_against_execution(&c, candidates);
    }
}
