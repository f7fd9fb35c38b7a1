//! Staking scenarios: bond, delegate, unbond and wait, slashing in proportion, jail and the
//! validator set, supply conserved throughout (TestChain checks it after every block), and the
//! bad inputs the issue names.

use opal_ledger::components::staking::{self, ValidatorInfo};
use opal_ledger::*;
use opal_testkit::*;
use opal_types::evidence::{DoubleSignEvidence, VoteEvidence, PRECOMMIT, PREVOTE};
use opal_types::*;

const MIN: u128 = 1_000_000; // default min_validator_stake

fn chain() -> TestChain {
    let mut g = genesis();
    g.staking.epoch_blocks = 2;
    g.staking.unbonding_time_ms = 5_000;
    g.staking.jail_time_ms = 10_000;
    for a in g.accounts.iter_mut() {
        a.balance = Amount(100 * MIN);
    }
    TestChain::with_genesis(g)
}

fn val(c: &TestChain, op: &SecretKey) -> ValidatorInfo {
    staking::validator(&c.overlay(), &op.address())
        .unwrap()
        .expect("validator exists")
}

fn set_keys(c: &TestChain) -> Vec<PublicKey> {
    staking::active_set(&c.overlay())
        .unwrap()
        .into_iter()
        .map(|v| v.public_key)
        .collect()
}

fn vote(chain_id: &str, signer: &SecretKey, height: u64, value: u8) -> VoteEvidence {
    let mut v = VoteEvidence {
        vote_type: PRECOMMIT,
        height,
        round: 0,
        value: Some([value; 32]),
        validator: signer.public_key(),
        signature: Signature([0; 64]),
    };
    v.signature = signer.sign(&v.sign_bytes(chain_id));
    v
}

fn double_sign(c: &TestChain, consensus: &SecretKey, height: u64) -> DoubleSignEvidence {
    DoubleSignEvidence {
        a: vote(&c.chain_id, consensus, height, 1),
        b: vote(&c.chain_id, consensus, height, 2),
    }
}

/// key(1) runs a validator with consensus key key(51) and `stake` self-delegated.
fn create(c: &mut TestChain, stake: u128) {
    let tx = c.tx(
        &key(1),
        0,
        Action::CreateValidator {
            consensus_key: key(51).public_key(),
            name: "v1".into(),
            amount: Amount(stake),
            vrf_key: key(51).vrf_public_key(),
        },
    );
    assert_eq!(c.run(vec![tx]), vec![None]);
}

#[test]
fn create_validator_joins_the_set_at_the_epoch_boundary() {
    let mut c = chain();
    assert_eq!(set_keys(&c), vec![key(100).public_key()]);
    c.block(vec![]); // height 1
    create(&mut c, 5 * MIN); // height 2: an epoch boundary (epoch_blocks = 2)
    let set = staking::active_set(&c.overlay()).unwrap();
    assert_eq!(set.len(), 2);
    let v1 = set
        .iter()
        .find(|v| v.public_key == key(51).public_key())
        .unwrap();
    assert_eq!(v1.power, 5, "power = tokens / power_reduction");
    assert_eq!(
        c.balance(&key(1)),
        Amount(100 * MIN - 5 * MIN - 1_000),
        "stake and fee left the balance"
    );
}

#[test]
fn delegate_undelegate_and_wait_for_unbonding() {
    let mut g = genesis();
    g.staking.unbonding_time_ms = 5_000;
    for a in g.accounts.iter_mut() {
        a.balance = Amount(100 * MIN);
    }
    let mut c = TestChain::with_genesis(g);
    create(&mut c, 10 * MIN);
    let before = c.balance(&key(2));
    let d = c.tx(
        &key(2),
        0,
        Action::Delegate {
            validator: key(1).address(),
            amount: Amount(4 * MIN),
        },
    );
    assert_eq!(c.run(vec![d]), vec![None]);
    assert_eq!(val(&c, &key(1)).tokens, Amount(14 * MIN));
    assert_eq!(c.balance(&key(2)), Amount(before.0 - 4 * MIN - 1_000));

    let u = c.tx(
        &key(2),
        0,
        Action::Undelegate {
            validator: key(1).address(),
            amount: Amount(3 * MIN),
        },
    );
    let r = c.block(vec![u]);
    assert_eq!(r.txs[0].code, None);
    let Event::Undelegated { completion_ms, .. } = r.txs[0].events.last().unwrap().clone() else {
        panic!("no Undelegated event")
    };
    assert_eq!(val(&c, &key(1)).tokens, Amount(11 * MIN));
    let locked = c.balance(&key(2));
    c.block(vec![]);
    assert_eq!(
        c.balance(&key(2)),
        locked,
        "nothing paid before the unbonding time"
    );
    c.advance_time_to(completion_ms);
    assert_eq!(
        c.balance(&key(2)),
        Amount(locked.0 + 3 * MIN),
        "paid when the unbonding completes"
    );
    // What is left of the delegation is worth 1 MIN.
    let v = val(&c, &key(1));
    let shares =
        staking::delegation_shares(&c.overlay(), &key(1).address(), &key(2).address()).unwrap();
    assert_eq!(staking::delegation_value(&v, shares), Amount(MIN));
}

#[test]
fn slashing_reaches_delegators_in_proportion_and_jails() {
    let mut g = genesis();
    g.staking.epoch_blocks = 1_000; // only jailing changes the set in this test
    g.staking.jail_time_ms = 10_000;
    for a in g.accounts.iter_mut() {
        a.balance = Amount(100 * MIN);
    }
    let mut c = TestChain::with_genesis(g);
    create(&mut c, 8 * MIN);
    c.run(vec![c.tx(
        &key(2),
        0,
        Action::Delegate {
            validator: key(1).address(),
            amount: Amount(2 * MIN),
        },
    )]);
    // Force the set to include v1 (as an epoch would).
    let p = staking::params(&c.overlay()).unwrap();
    {
        let mut o = c.overlay();
        staking::update_validator_set(&mut o, &p, c.height, &mut vec![]).unwrap();
        c.height += 1;
        c.store
            .commit(c.height, o.into_writes(), Default::default())
            .unwrap();
    }
    assert!(set_keys(&c).contains(&key(51).public_key()));
    let infraction = c.height;
    // After the infraction, key(2) starts unbonding half of its delegation: still slashable.
    c.run(vec![c.tx(
        &key(2),
        0,
        Action::Undelegate {
            validator: key(1).address(),
            amount: Amount(MIN),
        },
    )]);
    let v = val(&c, &key(1));
    let self_shares =
        staking::delegation_shares(&c.overlay(), &key(1).address(), &key(1).address()).unwrap();
    let del_shares =
        staking::delegation_shares(&c.overlay(), &key(1).address(), &key(2).address()).unwrap();
    let (self_before, del_before) = (
        staking::delegation_value(&v, self_shares),
        staking::delegation_value(&v, del_shares),
    );
    assert_eq!((self_before, del_before), (Amount(8 * MIN), Amount(MIN)));
    let reporter_before = c.balance(&key(3));

    let ev = double_sign(&c, &key(51), infraction);
    let r = c.block(vec![c.tx(
        &key(3),
        0,
        Action::SubmitEvidence {
            evidence: ev.clone(),
        },
    )]);
    assert_eq!(r.txs[0].code, None, "{:?}", r.txs[0].error);

    // 5% of the validator's 9 MIN and of the 1 MIN unbonding since the infraction.
    let v = val(&c, &key(1));
    assert!(v.jailed);
    assert_eq!(v.tokens, Amount(9 * MIN - 9 * MIN / 20));
    let self_after = staking::delegation_value(&v, self_shares);
    let del_after = staking::delegation_value(&v, del_shares);
    assert_eq!(self_after, Amount(self_before.0 - self_before.0 / 20));
    assert_eq!(
        del_after,
        Amount(del_before.0 - del_before.0 / 20),
        "the delegator loses the same fraction"
    );
    let total_slashed = 9 * MIN / 20 + MIN / 20;
    assert_eq!(
        c.balance(&key(3)).0,
        reporter_before.0 - 1_000 + total_slashed / 10,
        "reporter gets 10%"
    );
    let treasury = c.treasury();
    assert_eq!(treasury.0, total_slashed - total_slashed / 10);
    assert!(
        !set_keys(&c).contains(&key(51).public_key()),
        "a jailed validator leaves the set at once"
    );

    // The same evidence again, or with its votes swapped, is refused.
    let swapped = DoubleSignEvidence {
        a: ev.b.clone(),
        b: ev.a.clone(),
    };
    assert_eq!(
        c.run(vec![
            c.tx(&key(4), 0, Action::SubmitEvidence { evidence: ev }),
            c.tx(&key(4), 0, Action::SubmitEvidence { evidence: swapped }),
        ]),
        vec![
            Some("duplicate_evidence".into()),
            Some("duplicate_evidence".into())
        ]
    );
    // Unjail: too early, then after the jail time, back in the set at the next recompute.
    assert_eq!(
        c.run(vec![c.tx(&key(1), 0, Action::Unjail)]),
        vec![Some("still_jailed".into())]
    );
    c.advance_time_to(v.jailed_until_ms);
    assert_eq!(c.run(vec![c.tx(&key(1), 0, Action::Unjail)]), vec![None]);
    assert!(set_keys(&c).contains(&key(51).public_key()));
    assert_eq!(
        c.run(vec![c.tx(&key(1), 0, Action::Unjail)]),
        vec![Some("not_jailed".into())]
    );
}

#[test]
fn role_bonds_respect_minimums_and_unbond_after_delay() {
    let mut c = chain();
    let min = staking::params(&c.overlay())
        .unwrap()
        .min_inference_node_stake
        .0;
    let bond = |c: &TestChain, n, amount| {
        c.tx(
            &key(2),
            n,
            Action::BondRole {
                role: Role::InferenceNode,
                amount: Amount(amount),
            },
        )
    };
    assert_eq!(
        c.run(vec![bond(&c, 0, min - 1)]),
        vec![Some("below_minimum_stake".into())]
    );
    assert_eq!(c.run(vec![bond(&c, 0, min * 2)]), vec![None]);
    assert_eq!(
        staking::role_bond(&c.overlay(), Role::InferenceNode, &key(2).address()).unwrap(),
        Amount(2 * min)
    );
    let unbond = |c: &TestChain, amount| {
        c.tx(
            &key(2),
            0,
            Action::UnbondRole {
                role: Role::InferenceNode,
                amount: Amount(amount),
            },
        )
    };
    assert_eq!(
        c.run(vec![unbond(&c, 3 * min)]),
        vec![Some("insufficient_stake".into())],
        "unbonding more than bonded"
    );
    assert_eq!(
        c.run(vec![unbond(&c, 2 * min - 1)]),
        vec![Some("below_minimum_stake".into())],
        "leaving dust below the minimum"
    );
    let before = c.balance(&key(2));
    assert_eq!(c.run(vec![unbond(&c, 2 * min)]), vec![None]);
    let after_fee = c.balance(&key(2));
    assert_eq!(after_fee.0, before.0 - 1_000);
    c.advance_time_to(c.time_ms + 5_000);
    assert_eq!(c.balance(&key(2)).0, after_fee.0 + 2 * min);
}

#[test]
fn bad_staking_inputs_are_refused_and_change_nothing() {
    let mut c = chain();
    create(&mut c, 5 * MIN); // height 1
    c.block(vec![]); // height 2: epoch boundary, v1 joins the set
                     // The refused block is height 3, not a boundary.
    let ck = |k: u8| key(k).public_key();
    let bad_forged = {
        let mut e = double_sign(&c, &key(51), 1);
        e.b.signature.0[3] ^= 1;
        e
    };
    let same_value = DoubleSignEvidence {
        a: vote(&c.chain_id, &key(51), 1, 1),
        b: vote(&c.chain_id, &key(51), 1, 1),
    };
    let two_signers = DoubleSignEvidence {
        a: vote(&c.chain_id, &key(51), 1, 1),
        b: vote(&c.chain_id, &key(52), 1, 2),
    };
    let other_heights = DoubleSignEvidence {
        a: vote(&c.chain_id, &key(51), 1, 1),
        b: vote(&c.chain_id, &key(51), 2, 2),
    };
    let mut prevote_vs_precommit = double_sign(&c, &key(51), 1);
    prevote_vs_precommit.b.vote_type = PREVOTE;
    let unknown_key = double_sign(&c, &key(60), 1);
    let future = double_sign(&c, &key(51), 1_000);
    let other_chain = DoubleSignEvidence {
        a: vote("elsewhere", &key(51), 1, 1),
        b: vote("elsewhere", &key(51), 1, 2),
    };
    let ev = |n, e| c.tx(&key(3), n, Action::SubmitEvidence { evidence: e });
    let txs = vec![
        c.tx(
            &key(2),
            0,
            Action::CreateValidator {
                consensus_key: ck(52),
                name: "small".into(),
                amount: Amount(MIN - 1),
                vrf_key: key(52).vrf_public_key(),
            },
        ),
        c.tx(
            &key(2),
            0,
            Action::CreateValidator {
                consensus_key: ck(51),
                name: "dup key".into(),
                amount: Amount(MIN),
                vrf_key: key(51).vrf_public_key(),
            },
        ),
        c.tx(
            &key(1),
            0,
            Action::CreateValidator {
                consensus_key: ck(53),
                name: "again".into(),
                amount: Amount(MIN),
                vrf_key: key(53).vrf_public_key(),
            },
        ),
        c.tx(
            &key(2),
            0,
            Action::CreateValidator {
                consensus_key: ck(54),
                name: "".into(),
                amount: Amount(MIN),
                vrf_key: key(54).vrf_public_key(),
            },
        ),
        c.tx(
            &key(2),
            0,
            Action::Delegate {
                validator: key(9).address(),
                amount: Amount(10),
            },
        ),
        c.tx(
            &key(2),
            0,
            Action::Undelegate {
                validator: key(1).address(),
                amount: Amount(1),
            },
        ),
        c.tx(
            &key(1),
            0,
            Action::Undelegate {
                validator: key(1).address(),
                amount: Amount(5 * MIN + 1),
            },
        ),
        c.tx(&key(2), 0, Action::Unjail),
        ev(0, bad_forged),
        ev(0, same_value),
        ev(0, two_signers),
        ev(0, other_heights),
        ev(0, prevote_vs_precommit),
        ev(0, unknown_key),
        ev(0, future),
        ev(0, other_chain),
    ];
    // Refused transactions write nothing beyond what an empty block writes (emission, fees).
    assert!(
        c.writes_of(txs.clone()) == c.writes_of(vec![]),
        "refused staking transactions change nothing"
    );
    let codes = c.run(txs);
    let want = [
        "below_minimum_stake",
        "consensus_key_in_use",
        "validator_exists",
        "invalid_name",
        "unknown_validator",
        "insufficient_stake",
        "insufficient_stake",
        "unknown_validator",
        "invalid_evidence",
        "invalid_evidence",
        "invalid_evidence",
        "invalid_evidence",
        "invalid_evidence",
        "invalid_evidence",
        "evidence_too_old",
        "invalid_evidence",
    ];
    assert_eq!(
        codes,
        want.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>()
    );
}
