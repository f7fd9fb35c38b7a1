//! From equivocation in a simulated network to a slash on chain: the evidence honest
//! validators' consensus cores report is converted by the node (`evidence_from_engine`), put in
//! a `SubmitEvidence` transaction and executed by the ledger against a genesis whose validators
//! are the simulated ones; the Byzantine validator is slashed and jailed and leaves the set.

use opal_ledger::components::staking;
use opal_ledger::Genesis;
use opal_sim::{run, seeds, Byzantine, SimConfig};
use opal_testkit::TestChain;
use opal_types::{Action, Address, Amount, PublicKey, SecretKey};

const STAKE: u128 = 10_000_000;

/// The secret key of simulated validator `i` (as `opal_sim` derives it).
fn sim_key(i: usize) -> SecretKey {
    SecretKey::from_seed(blake3::derive_key(
        "opal-sim validator key v1",
        &(i as u64).to_le_bytes(),
    ))
}

fn genesis(keys: &[[u8; 32]], reporter: Address) -> Genesis {
    let to = |v: serde_json::Result<serde_json::Value>| v.unwrap();
    let validators: Vec<serde_json::Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            serde_json::json!({
                "name": format!("sim{i}"),
                "public_key": to(serde_json::to_value(PublicKey(*k))),
                "stake": to(serde_json::to_value(Amount(STAKE))),
                "vrf_key": to(serde_json::to_value(sim_key(i).vrf_public_key())),
            })
        })
        .collect();
    // Built from JSON so that parameters keep their defaults.
    serde_json::from_value(serde_json::json!({
        "chain_id": "opal-sim",
        "genesis_time_ms": 1_000,
        "accounts": [{
            "address": to(serde_json::to_value(reporter)),
            "balance": to(serde_json::to_value(Amount(STAKE))),
        }],
        "validators": validators,
    }))
    .unwrap()
}

#[test]
fn simulated_equivocation_is_slashed_on_chain() {
    let seed = seeds(1)[0];
    let byz = (seed % 4) as usize;
    let mut c = SimConfig::new(seed, 4);
    c.byzantine = vec![(byz, Byzantine::Equivocate)];
    c.target_height = 8;
    let report = run(c).unwrap_or_else(|f| panic!("{f}"));
    let offender = PublicKey(report.public_keys[byz]);

    // What an honest node would put in a transaction.
    let list: Vec<_> = report
        .evidence
        .iter()
        .flat_map(|(_, bytes)| opal_node::app::evidence_from_engine(bytes).unwrap())
        .collect();
    assert!(
        !list.is_empty(),
        "seed {seed}: the equivocation was observed"
    );
    let ev = list[0].clone();
    assert_eq!(ev.a.validator, offender);

    let reporter = SecretKey::from_seed([9; 32]);
    let g = genesis(&report.public_keys, reporter.address());
    let proposer = sim_key((byz + 1) % 4);
    assert_eq!(proposer.public_key().0, report.public_keys[(byz + 1) % 4]);
    let mut chain = TestChain::with_genesis(g);
    chain.proposer = proposer;
    chain.signing_keys = (0..4).map(sim_key).collect();
    let operator = offender.address();
    let before = staking::validator(&chain.overlay(), &operator)
        .unwrap()
        .expect("the simulated validator is a genesis validator");
    assert!(!before.jailed);
    while chain.height < ev.a.height {
        chain.block(vec![]);
    }
    let tx = chain.tx(
        &reporter,
        0,
        Action::SubmitEvidence {
            evidence: ev.clone(),
        },
    );
    let r = chain.block(vec![tx]);
    assert_eq!(r.txs[0].code, None, "{:?}", r.txs[0].error);

    let after = staking::validator(&chain.overlay(), &operator)
        .unwrap()
        .unwrap();
    assert!(after.jailed, "the equivocator is jailed");
    assert!(after.tokens < before.tokens, "and slashed");
    let set: Vec<PublicKey> = staking::active_set(&chain.overlay())
        .unwrap()
        .into_iter()
        .map(|v| v.public_key)
        .collect();
    assert!(
        !set.contains(&offender),
        "a jailed validator leaves the set"
    );
    assert_eq!(set.len(), 3);

    // The same evidence again is refused.
    let again = chain.tx(&reporter, 0, Action::SubmitEvidence { evidence: ev });
    let r = chain.block(vec![again]);
    assert_eq!(r.txs[0].code.as_deref(), Some("duplicate_evidence"));
}
