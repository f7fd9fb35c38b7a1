//! Downtime: a validator that signs too few of the last `signed_blocks_window` commits is
//! jailed and slashed `downtime_slash_bps`, leaves the set, and may unjail after
//! `downtime_jail_ms`; one within the limit is not; base rewards go only to the signers; a
//! block whose last commit is not backed by the set is refused.

use opal_ledger::components::{liveness, reward_pool, staking};
use opal_ledger::*;
use opal_testkit::*;
use opal_types::*;

const WINDOW: u64 = 10;

fn chain() -> (TestChain, [SecretKey; 3]) {
    let vals = [key(10), key(11), key(12)];
    let mut g = committee_genesis([&vals[0], &vals[1], &vals[2]]);
    g.staking.signed_blocks_window = WINDOW;
    g.staking.min_signed_bps = 5_000; // at most 5 misses in 10
    g.staking.downtime_slash_bps = 100;
    g.staking.downtime_jail_ms = 20_000;
    g.governance.voting_period_ms = 5_000;
    for a in g.accounts.iter_mut() {
        a.balance = Amount(1_000_000_000_000_000);
    }
    (TestChain::with_genesis(g), vals)
}

fn tokens(c: &TestChain, k: &SecretKey) -> Amount {
    staking::validator(&c.overlay(), &k.address())
        .unwrap()
        .unwrap()
        .tokens
}

fn in_set(c: &TestChain, k: &SecretKey) -> bool {
    staking::active_set(&c.overlay())
        .unwrap()
        .iter()
        .any(|v| v.public_key == k.public_key())
}

#[test]
fn a_validator_that_stops_signing_is_jailed_slashed_and_may_unjail_after_the_delay() {
    let (mut c, [a, b, v]) = chain();
    c.block(vec![]); // height 1: no last commit
    let signers = vec![a.public_key(), b.public_key()];
    let stake = tokens(&c, &v);
    let treasury0 = c.treasury();
    let mut jailed_at = None;
    for _ in 0..WINDOW + 2 {
        let r = c.block_signed_by(vec![], signers.clone());
        if let Some(Event::DowntimeJailed {
            validator,
            missed,
            window,
            slashed,
            ..
        }) = r
            .events
            .iter()
            .find(|e| matches!(e, Event::DowntimeJailed { .. }))
        {
            assert_eq!(*validator, v.address());
            assert_eq!((*missed, *window), (WINDOW, WINDOW));
            assert_eq!(slashed.0, stake.0 / 100);
            jailed_at = Some(c.height);
            break;
        }
    }
    // The window fills at its tenth recorded block: jailed then, not before.
    assert_eq!(jailed_at, Some(1 + WINDOW));
    let info = staking::validator(&c.overlay(), &v.address())
        .unwrap()
        .unwrap();
    assert!(info.jailed);
    assert_eq!(info.tokens.0, stake.0 - stake.0 / 100);
    assert_eq!(c.treasury().0, treasury0.0 + stake.0 / 100);
    assert!(
        !in_set(&c, &v),
        "the set was recomputed at the end of that block"
    );
    assert_eq!(
        liveness::signing_info(&c.overlay(), &v.address())
            .unwrap()
            .index,
        0
    );

    // Too early: still jailed. After the delay: back, with a fresh window.
    let codes = c.run(vec![c.tx(&v, 0, Action::Unjail)]);
    assert_eq!(codes, vec![Some("still_jailed".into())]);
    c.advance_time_to(info.jailed_until_ms);
    let codes = c.run(vec![c.tx(&v, 0, Action::Unjail)]);
    assert_eq!(codes, vec![None]);
    assert!(in_set(&c, &v));
    c.block(vec![]);
    c.block(vec![]);
    assert!(
        !staking::validator(&c.overlay(), &v.address())
            .unwrap()
            .unwrap()
            .jailed
    );
}

#[test]
fn misses_within_the_limit_do_not_jail_and_signing_again_heals_the_window() {
    let (mut c, [a, b, v]) = chain();
    c.block(vec![]);
    let all = vec![a.public_key(), b.public_key(), v.public_key()];
    let two = vec![a.public_key(), b.public_key()];
    // 5 misses, 5 signatures, then 5 misses more: the first 5 have left the window.
    for i in 0..3 * 5 {
        let signers = if (i / 5) % 2 == 0 {
            two.clone()
        } else {
            all.clone()
        };
        let r = c.block_signed_by(vec![], signers);
        assert!(
            !r.events
                .iter()
                .any(|e| matches!(e, Event::DowntimeJailed { .. })),
            "jailed at block {}",
            c.height
        );
    }
    let info = liveness::signing_info(&c.overlay(), &v.address()).unwrap();
    assert_eq!((info.index, info.missed), (15, 5));
    // One more miss makes 6 in the window: jailed.
    let r = c.block_signed_by(vec![], two);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, Event::DowntimeJailed { .. })));
}

#[test]
fn a_new_window_size_starts_every_record_afresh() {
    let (mut c, [a, b, v]) = chain();
    c.block(vec![]);
    let two = vec![a.public_key(), b.public_key()];
    for _ in 0..4 {
        c.block_signed_by(vec![], two.clone());
    }
    assert_eq!(
        liveness::signing_info(&c.overlay(), &v.address())
            .unwrap()
            .missed,
        4
    );
    // Governance doubles the window (every block from here on signed by all three).
    let submit = c.tx(
        &key(1),
        0,
        Action::SubmitProposal {
            title: "a longer window".into(),
            summary: String::new(),
            content: opal_types::gov::ProposalContent::ParamChange {
                changes: vec![format!("staking.signed_blocks_window={}", 2 * WINDOW)
                    .parse()
                    .unwrap()],
            },
            deposit: GovParams::default().min_deposit,
        },
    );
    assert_eq!(c.run(vec![submit]), vec![None]);
    let vote = |c: &TestChain, k: &SecretKey| {
        c.tx(
            k,
            0,
            Action::Vote {
                proposal: 1,
                option: opal_types::gov::VoteOption::Yes,
            },
        )
    };
    assert_eq!(c.run(vec![vote(&c, &a), vote(&c, &b)]), vec![None, None]);
    let end = components::governance::proposal(&c.overlay(), 1)
        .unwrap()
        .unwrap()
        .voting_end_ms
        .unwrap();
    c.advance_time_to(end);
    assert_eq!(
        staking::params(&c.overlay()).unwrap().signed_blocks_window,
        2 * WINDOW
    );
    c.block_signed_by(vec![], two);
    let info = liveness::signing_info(&c.overlay(), &v.address()).unwrap();
    assert_eq!((info.index, info.missed, info.window), (1, 1, 2 * WINDOW));
}

#[test]
fn base_rewards_go_to_the_validators_that_signed() {
    let (mut c, [a, b, v]) = chain();
    c.block(vec![]);
    c.block(vec![]);
    let before =
        [&a, &b, &v].map(|k| reward_pool::outstanding(&c.overlay(), &k.address()).unwrap());
    c.block_signed_by(vec![], vec![a.public_key(), b.public_key()]);
    let after = [&a, &b, &v].map(|k| reward_pool::outstanding(&c.overlay(), &k.address()).unwrap());
    assert!(after[0] > before[0] && after[1] > before[1]);
    assert_eq!(after[2], before[2], "no reward for a block it did not sign");
}

#[test]
fn a_last_commit_the_set_does_not_back_is_an_invalid_block() {
    let (mut c, [a, _, v]) = chain();
    c.block(vec![]);
    let exec = |signers: Vec<PublicKey>| {
        let block = c.next_block_signed(vec![], Some(signers));
        let mut o = c.overlay();
        execute_block(&mut o, &block)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    // 4M + 3M of 10M is more than two thirds; 4M alone, or 3M + 3M, is not.
    let e = exec(vec![a.public_key()]);
    assert!(e.contains("two thirds"), "{e}");
    let e = exec(vec![key(11).public_key(), v.public_key()]);
    assert!(e.contains("two thirds"), "{e}");
    let e = exec(vec![
        a.public_key(),
        key(11).public_key(),
        key(99).public_key(),
    ]);
    assert!(e.contains("not a member"), "{e}");
    let e = exec(vec![a.public_key(), a.public_key(), v.public_key()]);
    assert!(e.contains("twice"), "{e}");
    // Real keys, forged signatures: the ledger verifies them itself.
    let run = |edit: &dyn Fn(&mut opal_types::block::LastCommit)| {
        let mut block = c.next_block_signed(vec![], None);
        edit(block.last_commit.as_mut().unwrap());
        let mut o = c.overlay();
        execute_block(&mut o, &block)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = run(&|lc| lc.signatures[0].1[5] ^= 1);
    assert!(e.contains("signature is invalid"), "{e}");
    let e = run(&|lc| lc.round = 3); // signed for round 0
    assert!(e.contains("signature is invalid"), "{e}");
    let e = run(&|lc| lc.signatures[1].1.truncate(10));
    assert!(e.contains("not 64 bytes"), "{e}");
    // And the honest one applies.
    let block = c.next_block_signed(vec![], None);
    assert!(execute_block(&mut c.overlay(), &block).is_ok());
}

#[test]
fn double_signing_keeps_the_larger_slash() {
    let g = chain().0;
    let all = AllParams::load(&g.overlay()).unwrap();
    let e = param_table::apply(
        &all,
        &["staking.downtime_slash_bps=600".parse().unwrap()], // above the 500 of double signing
    )
    .unwrap_err();
    assert_eq!(e.code(), "params_inconsistent");
}
