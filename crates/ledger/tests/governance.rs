//! Governance scenarios on a three-validator chain (4, 3 and 3 million bonded): every proposal
//! kind through its lifecycle, the tally by stake with a delegator's override, deposits
//! refunded or burned to the base unit, and the bad inputs the issue names, each refused with
//! its typed error and changing nothing. TestChain checks the supply invariant (deposit pool
//! and burns included) after every block.

use opal_ledger::components::governance::{self, tally, Proposal, ProposalStatus, Tally};
use opal_ledger::*;
use opal_testkit::*;
use opal_types::gov::{Measurement, ParamChange, ProposalContent, TeePlatform, VoteOption};
use opal_types::*;

const M: u128 = 1_000_000;
const FEE: u128 = 1_000; // default min_fee
const MIN_DEPOSIT: u128 = 10 * M; // default min_deposit

fn validators() -> [SecretKey; 3] {
    [key(10), key(11), key(12)]
}

fn chain() -> TestChain {
    let [a, b, c] = validators();
    let mut g = committee_genesis([&a, &b, &c]);
    for acct in g.accounts.iter_mut() {
        acct.balance = Amount(100 * M);
    }
    g.governance.voting_period_ms = 10_000;
    g.governance.max_deposit_period_ms = 20_000;
    g.inference.audit_bps = 0;
    TestChain::with_genesis(g)
}

fn submit(c: &TestChain, who: &SecretKey, content: ProposalContent, deposit: u128) -> Transaction {
    c.tx(
        who,
        0,
        Action::SubmitProposal {
            title: "a proposal".into(),
            summary: "why".into(),
            content,
            deposit: Amount(deposit),
        },
    )
}

/// Submit in a block of its own; the new proposal's id.
fn propose(c: &mut TestChain, who: &SecretKey, content: ProposalContent, deposit: u128) -> u64 {
    let tx = submit(c, who, content, deposit);
    let (codes, events) = c.block_outcome(vec![tx]);
    assert_eq!(codes, vec![None], "{events:?}");
    events
        .iter()
        .find_map(|e| match e {
            Event::ProposalSubmitted { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a ProposalSubmitted event")
}

fn vote(c: &TestChain, who: &SecretKey, id: u64, option: VoteOption) -> Transaction {
    c.tx(
        who,
        0,
        Action::Vote {
            proposal: id,
            option,
        },
    )
}

/// Validators A and B (7M of 10M) vote yes on `id` in one block; both votes apply.
fn majority_yes(c: &mut TestChain, id: u64) {
    let [a, b, _] = validators();
    let votes = vec![
        vote(c, &a, id, VoteOption::Yes),
        vote(c, &b, id, VoteOption::Yes),
    ];
    assert_eq!(c.run(votes), vec![None, None]);
}

fn prop(c: &TestChain, id: u64) -> Proposal {
    governance::proposal(&c.overlay(), id).unwrap().unwrap()
}

/// Empty blocks until the voting period of `id` has ended (its end-block decided it).
fn finish(c: &mut TestChain, id: u64) -> Proposal {
    let end = prop(c, id).voting_end_ms.expect("voting started");
    c.advance_time_to(end);
    prop(c, id)
}

fn params_change(key: &str, value: u128) -> ProposalContent {
    ProposalContent::ParamChange {
        changes: vec![ParamChange {
            key: key.into(),
            value,
        }],
    }
}

fn supply(c: &TestChain) -> Amount {
    invariants::check_supply(&c.overlay()).unwrap()
}

/// The supply less everything emission minted since genesis: what only burns can change.
fn supply_net_of_emission(c: &TestChain) -> Amount {
    let o = c.overlay();
    let minted: Amount = o
        .get(keys::rewards::MINTED)
        .unwrap()
        .map(|b| borsh::from_slice(&b).unwrap())
        .unwrap_or_default();
    Amount(supply(c).0 - minted.0)
}

#[test]
fn a_passed_parameter_change_is_in_force_from_the_next_block() {
    let mut c = chain();
    let proposer = key(1);
    let before = c.balance(&proposer);
    let id = propose(
        &mut c,
        &proposer,
        params_change("inference.audit_bps", 10_000),
        MIN_DEPOSIT,
    );
    assert_eq!(prop(&c, id).status, ProposalStatus::VotingPeriod);
    majority_yes(&mut c, id);
    // Still the genesis value while voting.
    assert_eq!(params::inference(&c.overlay()).unwrap().audit_bps, 0);
    let p = finish(&mut c, id);
    assert_eq!(p.status, ProposalStatus::Passed);
    assert_eq!(p.execution_error, None);
    assert_eq!(
        p.final_tally.unwrap(),
        Tally {
            yes: Amount(7 * M),
            no: Amount::ZERO,
            abstain: Amount::ZERO,
            no_with_veto: Amount::ZERO,
            bonded: Amount(10 * M),
        }
    );
    assert_eq!(params::inference(&c.overlay()).unwrap().audit_bps, 10_000);
    assert_eq!(
        governance::param_source(&c.overlay(), "inference.audit_bps").unwrap(),
        Some(id)
    );
    assert_eq!(
        governance::param_source(&c.overlay(), "inference.audit_fee").unwrap(),
        None
    );
    // The deposit came back whole; the proposer paid one fee.
    assert_eq!(c.balance(&proposer), Amount(before.0 - FEE));
    assert_eq!(
        governance::deposit_pool(&c.overlay()).unwrap(),
        Amount::ZERO
    );

    // The next block's audit draw reads the new rate: a settled receipt of the re-executable
    // demo model is audited (at the genesis rate of 0 it never would be).
    let file = demo_model_file();
    offer_demo_model(
        &mut c,
        [&owner(), &node(), &caller()],
        &file,
        vec![Tier::Signed],
        None,
        200_000,
    );
    let r = receipt(
        &c,
        Call {
            model: ModelRef::new("digits-q", 1),
            model_hash: Hash(*blake3::hash(&file).as_bytes()),
            input_hash: Hash([1; 32]),
            tier: Tier::Signed,
            escalation: Default::default(),
            salt: 1,
            output_hash: Hash([2; 32]),
            price: Amount(200),
            units: 1,
        },
    );
    c.settle_and_draw(&r);
}

#[test]
fn the_events_tell_each_step() {
    let mut c = chain();
    let [a, _, _] = validators();
    let tx = submit(&c, &key(1), ProposalContent::Text, MIN_DEPOSIT);
    let (_, ev) = c.block_outcome(vec![tx]);
    let kinds: Vec<&str> = ev
        .iter()
        .filter_map(|e| match e {
            Event::ProposalSubmitted { kind, .. } => Some(kind.as_str()),
            Event::ProposalDeposit { .. } => Some("deposit"),
            Event::VotingStarted { .. } => Some("voting"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["text", "deposit", "voting"]);
    let (_, ev) = c.block_outcome(vec![vote(&c, &a, 1, VoteOption::Yes)]);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Voted {
            id: 1,
            option: VoteOption::Yes,
            replaced: false,
            ..
        }
    )));
    let end = prop(&c, 1).voting_end_ms.unwrap();
    while c.time_ms + 1_000 < end {
        c.block(vec![]);
    }
    let (_, ev) = c.block_outcome(vec![]);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::ProposalDecided { id: 1, status } if status == "passed")),
        "{ev:?}"
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::ProposalExecuted { id: 1, error: None })));
    assert!(ev.iter().any(
        |e| matches!(e, Event::DepositsRefunded { id: 1, amount } if amount.0 == MIN_DEPOSIT)
    ));
}

#[test]
fn a_vetoed_proposal_burns_its_deposit() {
    let mut c = chain();
    let [a, b, _] = validators();
    let proposer = key(1);
    let before = c.balance(&proposer);
    let id = propose(&mut c, &proposer, ProposalContent::Text, MIN_DEPOSIT);
    c.run(vec![
        vote(&c, &a, id, VoteOption::NoWithVeto),
        vote(&c, &b, id, VoteOption::Yes),
    ]);
    let supply_before = supply_net_of_emission(&c);
    let p = finish(&mut c, id);
    // 4M of 7M voted veto: past 33.4%.
    assert_eq!(p.status, ProposalStatus::Vetoed);
    assert_eq!(c.balance(&proposer), Amount(before.0 - FEE - MIN_DEPOSIT));
    assert_eq!(
        supply_net_of_emission(&c),
        Amount(supply_before.0 - MIN_DEPOSIT)
    );
    assert_eq!(
        governance::deposit_pool(&c.overlay()).unwrap(),
        Amount::ZERO
    );
}

#[test]
fn a_proposal_short_of_quorum_refunds_its_deposit() {
    let mut c = chain();
    let [_, _, cv] = validators();
    let proposer = key(1);
    let before = c.balance(&proposer);
    let id = propose(
        &mut c,
        &proposer,
        params_change("chain.min_fee", 5),
        MIN_DEPOSIT,
    );
    // 3M of 10M voted: short of the 40% quorum.
    c.run(vec![vote(&c, &cv, id, VoteOption::Yes)]);
    let p = finish(&mut c, id);
    assert_eq!(p.status, ProposalStatus::NoQuorum);
    assert_eq!(c.balance(&proposer), Amount(before.0 - FEE));
    assert_eq!(exec::params(&c.overlay()).unwrap().min_fee, Amount(FEE));
}

/// Fill the treasury with what settling a few receipts pays it (5% of each price).
fn fund_treasury(c: &mut TestChain) -> Amount {
    let file = demo_model_file();
    offer_demo_model(
        c,
        [&owner(), &node(), &caller()],
        &file,
        vec![Tier::Signed],
        None,
        200_000,
    );
    for salt in 0..4 {
        let r = receipt(
            c,
            Call {
                model: ModelRef::new("digits-q", 1),
                model_hash: Hash(*blake3::hash(&file).as_bytes()),
                input_hash: Hash([1; 32]),
                tier: Tier::Signed,
                escalation: Default::default(),
                salt,
                output_hash: Hash([2; 32]),
                price: Amount(1_000),
                units: 1,
            },
        );
        assert_eq!(c.settle_one(&node(), &r), None);
    }
    let t = c.treasury();
    assert!(t.0 > 0, "settlement paid the treasury");
    t
}

#[test]
fn a_treasury_spend_pays_exactly_and_a_second_that_no_longer_fits_fails_to_execute() {
    let mut c = chain();
    let t = fund_treasury(&mut c);
    let to = Address([0xee; 20]);
    let spend = |amount: u128| ProposalContent::TreasurySpend {
        to,
        amount: Amount(amount),
    };
    // Above the treasury: refused at submission.
    let codes = c.run(vec![submit(&c, &key(1), spend(t.0 + 1), MIN_DEPOSIT)]);
    assert_eq!(codes, vec![Some("treasury_short".into())]);
    // Two spends of most of it: each fits alone, both pass, only the first can be paid.
    let first = propose(&mut c, &key(1), spend(t.0 - 1), MIN_DEPOSIT);
    let second = propose(&mut c, &key(2), spend(t.0 - 1), MIN_DEPOSIT);
    majority_yes(&mut c, first);
    majority_yes(&mut c, second);
    let key2_before = c.balance(&key(2));
    let supply_before = supply_net_of_emission(&c);
    finish(&mut c, first);
    let p2 = finish(&mut c, second);
    assert_eq!(prop(&c, first).status, ProposalStatus::Passed);
    assert_eq!(prop(&c, first).execution_error, None);
    let acct = components::accounts::get(&c.overlay(), &to).unwrap();
    assert_eq!(acct.balance, Amount(t.0 - 1));
    assert_eq!(c.treasury(), Amount(1));
    assert_eq!(p2.status, ProposalStatus::Passed);
    assert!(
        p2.execution_error.as_deref().unwrap().contains("treasury"),
        "{p2:?}"
    );
    // Its deposit is refunded all the same, and no value appeared or vanished.
    assert_eq!(c.balance(&key(2)), Amount(key2_before.0 + MIN_DEPOSIT));
    assert_eq!(supply_net_of_emission(&c), supply_before);
}

#[test]
fn a_delegators_override_changes_the_tally() {
    let mut c = chain();
    let [a, b, _] = validators();
    let delegator = key(1);
    assert_eq!(
        c.run(vec![c.tx(
            &delegator,
            0,
            Action::Delegate {
                validator: a.address(),
                amount: Amount(2 * M),
            },
        )]),
        vec![None]
    );
    let id = propose(&mut c, &key(2), ProposalContent::Text, MIN_DEPOSIT);
    c.run(vec![
        vote(&c, &a, id, VoteOption::Yes),
        vote(&c, &b, id, VoteOption::No),
    ]);
    // The delegator inherits A's vote: 6M yes, 3M no.
    let t = tally::tally(&c.overlay(), id).unwrap();
    assert_eq!(
        (t.yes, t.no, t.bonded),
        (Amount(6 * M), Amount(3 * M), Amount(12 * M))
    );
    // It overrides it: A keeps its own 4M, the delegator's 2M go to no.
    c.run(vec![vote(&c, &delegator, id, VoteOption::No)]);
    let t = tally::tally(&c.overlay(), id).unwrap();
    assert_eq!((t.yes, t.no), (Amount(4 * M), Amount(5 * M)));
    assert_eq!(finish(&mut c, id).status, ProposalStatus::Rejected);
}

#[test]
fn a_second_vote_replaces_the_first() {
    let mut c = chain();
    let [a, b, _] = validators();
    let id = propose(&mut c, &key(1), ProposalContent::Text, MIN_DEPOSIT);
    c.run(vec![
        vote(&c, &a, id, VoteOption::No),
        vote(&c, &b, id, VoteOption::Yes),
    ]);
    let (codes, ev) = c.block_outcome(vec![vote(&c, &a, id, VoteOption::Yes)]);
    assert_eq!(codes, vec![None]);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Voted { replaced: true, .. })));
    let votes = governance::read_votes(&c.overlay(), id).unwrap();
    assert_eq!(votes.len(), 2);
    assert_eq!(finish(&mut c, id).final_tally.unwrap().yes, Amount(7 * M));
}

#[test]
fn deposits_open_voting_when_they_reach_the_minimum_and_a_short_proposal_lapses() {
    let mut c = chain();
    let (p1, p2, p3) = (key(1), key(2), key(3));
    let before = [c.balance(&p1), c.balance(&p2), c.balance(&p3)];
    // Below the initial minimum (25% of min_deposit): refused.
    let codes = c.run(vec![submit(
        &c,
        &p1,
        ProposalContent::Text,
        MIN_DEPOSIT / 4 - 1,
    )]);
    assert_eq!(codes, vec![Some("deposit_too_low".into())]);
    let filled = propose(&mut c, &p1, ProposalContent::Text, MIN_DEPOSIT / 4);
    let short = propose(&mut c, &p2, ProposalContent::Text, MIN_DEPOSIT / 2);
    assert_eq!(prop(&c, filled).status, ProposalStatus::DepositPeriod);
    // Voting is not open yet.
    let codes = c.run(vec![vote(&c, &validators()[0], filled, VoteOption::Yes)]);
    assert_eq!(codes, vec![Some("wrong_proposal_status".into())]);
    let codes = c.run(vec![c.tx(
        &p3,
        0,
        Action::DepositProposal {
            proposal: filled,
            amount: Amount(MIN_DEPOSIT - MIN_DEPOSIT / 4),
        },
    )]);
    assert_eq!(codes, vec![None]);
    assert_eq!(prop(&c, filled).status, ProposalStatus::VotingPeriod);
    // A deposit once voting is open is refused.
    let codes = c.run(vec![c.tx(
        &p3,
        0,
        Action::DepositProposal {
            proposal: filled,
            amount: Amount(1),
        },
    )]);
    assert_eq!(codes, vec![Some("wrong_proposal_status".into())]);
    let deposit_end = prop(&c, short).deposit_end_ms;
    c.advance_time_to(deposit_end);
    assert_eq!(prop(&c, short).status, ProposalStatus::Lapsed);
    finish(&mut c, filled);
    assert_eq!(prop(&c, filled).status, ProposalStatus::NoQuorum);
    // Every deposit came back; each paid one fee (the refused transactions cost nothing).
    assert_eq!(c.balance(&p1), Amount(before[0].0 - FEE));
    assert_eq!(c.balance(&p2), Amount(before[1].0 - FEE));
    assert_eq!(c.balance(&p3), Amount(before[2].0 - FEE));
    assert_eq!(
        governance::deposit_pool(&c.overlay()).unwrap(),
        Amount::ZERO
    );
}

#[test]
fn measurements_and_upgrades_are_recorded_when_passed() {
    let mut c = chain();
    let sgx = Measurement {
        platform: TeePlatform::IntelSgx,
        value: vec![7; 32],
    };
    let tdx = Measurement {
        platform: TeePlatform::IntelTdx,
        value: vec![8; 48],
    };
    let add = propose(
        &mut c,
        &key(1),
        ProposalContent::EnclaveMeasurements {
            add: vec![sgx.clone(), tdx.clone()],
            remove: vec![],
        },
        MIN_DEPOSIT,
    );
    let upgrade = propose(
        &mut c,
        &key(2),
        ProposalContent::Upgrade {
            name: "v2".into(),
            height: 1_000,
            info: "opal 0.2".into(),
        },
        MIN_DEPOSIT,
    );
    for id in [add, upgrade] {
        majority_yes(&mut c, id);
    }
    finish(&mut c, add);
    finish(&mut c, upgrade);
    let o = c.overlay();
    assert_eq!(
        governance::tee_measurements(&o).unwrap(),
        vec![tdx.clone(), sgx.clone()]
    );
    assert!(governance::trusts_measurement(&o, &sgx).unwrap());
    let plan = governance::upgrade_plan(&o).unwrap().unwrap();
    assert_eq!(
        (plan.name.as_str(), plan.height, plan.proposal),
        ("v2", 1_000, upgrade)
    );
    let remove = propose(
        &mut c,
        &key(1),
        ProposalContent::EnclaveMeasurements {
            add: vec![],
            remove: vec![sgx.clone()],
        },
        MIN_DEPOSIT,
    );
    majority_yes(&mut c, remove);
    finish(&mut c, remove);
    assert_eq!(
        governance::tee_measurements(&c.overlay()).unwrap(),
        vec![tdx]
    );
}

/// Each bad input is refused with its code, and the sender's balance and nonce are as before
/// (a refused transaction's fork is dropped: no fee, no nonce).
#[test]
fn bad_inputs_are_refused_with_typed_errors_and_change_nothing() {
    let mut c = chain();
    let [a, _, _] = validators();
    let id = propose(&mut c, &key(1), ProposalContent::Text, MIN_DEPOSIT);
    let cases: Vec<(SecretKey, Action, &str)> = vec![
        (
            key(2),
            Action::Vote {
                proposal: id,
                option: VoteOption::Yes,
            },
            "not_staker",
        ),
        (
            a.clone(),
            Action::Vote {
                proposal: 99,
                option: VoteOption::Yes,
            },
            "unknown_proposal",
        ),
        (
            key(2),
            Action::DepositProposal {
                proposal: 99,
                amount: Amount(1),
            },
            "unknown_proposal",
        ),
        (
            key(2),
            submit_action(params_change("inference.audit_bps", 10_001)),
            "param_out_of_bounds",
        ),
        (
            key(2),
            submit_action(params_change("governance.quorum_bps", 3_000)),
            "param_out_of_bounds",
        ),
        (
            key(2),
            submit_action(params_change("inference.no_such_thing", 1)),
            "unknown_param",
        ),
        (
            key(2),
            submit_action(ProposalContent::ParamChange {
                changes: vec![
                    "inference.settle_grace_ms=200000".parse().unwrap(),
                    "inference.escrow_unlock_ms=100000".parse().unwrap(),
                ],
            }),
            "params_inconsistent",
        ),
        (
            key(2),
            submit_action(ProposalContent::TreasurySpend {
                to: key(2).address(),
                amount: Amount(1),
            }),
            "treasury_short",
        ),
        (
            key(2),
            submit_action(ProposalContent::Upgrade {
                name: "past".into(),
                height: 1,
                info: String::new(),
            }),
            "invalid_proposal",
        ),
        (
            key(2),
            submit_action(ProposalContent::EnclaveMeasurements {
                add: vec![Measurement {
                    platform: TeePlatform::IntelTdx,
                    value: vec![1; 32],
                }],
                remove: vec![],
            }),
            "invalid_proposal",
        ),
    ];
    for (who, action, code) in cases {
        let (balance, nonce) = (c.balance(&who), c.nonce(&who));
        let proposals = governance::proposals(&c.overlay()).unwrap().len();
        let codes = c.run(vec![c.tx(&who, 0, action.clone())]);
        assert_eq!(codes, vec![Some(code.to_string())], "{action:?}");
        if who.address() != a.address() {
            // (a validator's account also receives the block's fees)
            assert_eq!(c.balance(&who), balance, "{code}");
        }
        assert_eq!(c.nonce(&who), nonce, "{code}");
        assert_eq!(
            governance::proposals(&c.overlay()).unwrap().len(),
            proposals
        );
    }
    // After the period: a vote is refused as closed.
    finish(&mut c, id);
    let codes = c.run(vec![vote(&c, &a, id, VoteOption::Yes)]);
    assert_eq!(codes, vec![Some("voting_closed".into())]);
    // A vote in the block whose time reaches the end is refused: voting is over.
    let id2 = propose(&mut c, &key(1), ProposalContent::Text, MIN_DEPOSIT);
    let end = prop(&c, id2).voting_end_ms.unwrap();
    while c.time_ms + 1_000 < end {
        c.block(vec![]);
    }
    let codes = c.run(vec![vote(&c, &a, id2, VoteOption::Yes)]);
    assert_eq!(codes, vec![Some("voting_closed".into())]);
    assert_eq!(prop(&c, id2).status, ProposalStatus::NoQuorum);
}

fn submit_action(content: ProposalContent) -> Action {
    Action::SubmitProposal {
        title: "t".into(),
        summary: String::new(),
        content,
        deposit: Amount(MIN_DEPOSIT),
    }
}

#[test]
fn a_proposal_cannot_set_a_power_reduction_that_would_stop_consensus() {
    let [a, b, cv] = validators();
    let mut g = committee_genesis([&a, &b, &cv]);
    for acct in g.accounts.iter_mut() {
        acct.balance = Amount(100 * M);
    }
    // 5 * 10^18 bonded: fine at the default 10^6 tokens per unit of power, beyond the
    // engine's headroom (u64::MAX / 4) at 1.
    g.validators[0].stake = Amount(5_000_000_000_000_000_000);
    let mut c = TestChain::with_genesis(g);
    let codes = c.run(vec![submit(
        &c,
        &key(1),
        params_change("staking.power_reduction", 1),
        MIN_DEPOSIT,
    )]);
    assert_eq!(codes, vec![Some("params_inconsistent".into())]);
    let codes = c.run(vec![submit(
        &c,
        &key(1),
        params_change("staking.power_reduction", 10),
        MIN_DEPOSIT,
    )]);
    assert_eq!(codes, vec![None]);
    let codes = c.run(vec![submit(
        &c,
        &key(2),
        ProposalContent::ParamChange { changes: vec![] },
        MIN_DEPOSIT,
    )]);
    assert_eq!(codes, vec![Some("invalid_proposal".into())]);
}

#[test]
fn too_many_open_proposals_are_refused() {
    let mut g = {
        let [a, b, cv] = validators();
        committee_genesis([&a, &b, &cv])
    };
    for acct in g.accounts.iter_mut() {
        acct.balance = Amount(100 * M);
    }
    g.governance.max_active_proposals = 2;
    let mut c = TestChain::with_genesis(g);
    propose(&mut c, &key(1), ProposalContent::Text, MIN_DEPOSIT);
    propose(&mut c, &key(2), ProposalContent::Text, MIN_DEPOSIT);
    let codes = c.run(vec![submit(
        &c,
        &key(3),
        ProposalContent::Text,
        MIN_DEPOSIT,
    )]);
    assert_eq!(codes, vec![Some("too_many_proposals".into())]);
}

/// The attack a stake minority would try: a third of the stake (3M of 10M here: validator C)
/// proposes to pay itself the treasury and votes for it. Alone it cannot reach quorum; if the
/// others vote no it is outvoted; and its veto cannot sink a proposal everyone votes on.
#[test]
fn a_one_third_minority_cannot_pass_a_spend_or_veto_alone() {
    let mut c = chain();
    let [a, b, minority] = validators();
    fund_treasury(&mut c);
    let t = c.treasury();
    let grab = ProposalContent::TreasurySpend {
        to: minority.address(),
        amount: t,
    };
    // Alone: 30% of the stake voted, short of the 40% quorum.
    let id = propose(&mut c, &key(1), grab.clone(), MIN_DEPOSIT);
    c.run(vec![vote(&c, &minority, id, VoteOption::Yes)]);
    assert_eq!(finish(&mut c, id).status, ProposalStatus::NoQuorum);
    // With the others voting no: 3M yes against 7M no.
    let id = propose(&mut c, &key(1), grab, MIN_DEPOSIT);
    c.run(vec![
        vote(&c, &minority, id, VoteOption::Yes),
        vote(&c, &a, id, VoteOption::No),
        vote(&c, &b, id, VoteOption::No),
    ]);
    assert_eq!(finish(&mut c, id).status, ProposalStatus::Rejected);
    assert!(c.treasury() >= t, "the treasury kept its funds");
    // Its veto of a proposal everyone votes on: 3M of 10M is below 33.4%.
    let id = propose(&mut c, &key(2), ProposalContent::Text, MIN_DEPOSIT);
    c.run(vec![
        vote(&c, &minority, id, VoteOption::NoWithVeto),
        vote(&c, &a, id, VoteOption::Yes),
        vote(&c, &b, id, VoteOption::Yes),
    ]);
    assert_eq!(finish(&mut c, id).status, ProposalStatus::Passed);
}
