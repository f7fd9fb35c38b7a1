//! From equivocation in a simulated network to a slash on chain: the evidence honest
//! validators' consensus cores report is converted by the node (`evidence_from_engine`), put in
//! a `SubmitEvidence` transaction and executed by the ledger against a genesis whose validators
//! are the simulated ones; the Byzantine validator is slashed and jailed and leaves the set.

use opal_ledger::components::staking;
use opal_ledger::{execute_block, invariants, Genesis};
use opal_sim::{run, seeds, Byzantine, SimConfig};
use opal_state::{Overlay, Store};
use opal_types::{
    Action, Address, Amount, Block, BlockHeader, Hash, PublicKey, SecretKey, Transaction, TxBody,
};

const STAKE: u128 = 10_000_000;

struct Chain {
    _dir: tempfile::TempDir,
    store: Store,
    height: u64,
    time_ms: u64,
    parent: Hash,
    proposer: SecretKey,
}

impl Chain {
    fn new(g: &Genesis, proposer: SecretKey) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let mut o = Overlay::new(store.snapshot().unwrap());
        g.apply(&mut o).unwrap();
        store
            .commit(0, o.into_writes(), Default::default())
            .unwrap();
        Chain {
            _dir: dir,
            store,
            height: 0,
            time_ms: g.genesis_time_ms,
            parent: Hash::ZERO,
            proposer,
        }
    }

    fn overlay(&self) -> Overlay {
        Overlay::new(self.store.snapshot().unwrap())
    }

    fn block(&mut self, txs: Vec<Transaction>) -> opal_ledger::BlockResult {
        self.height += 1;
        self.time_ms += 1_000;
        let header = BlockHeader {
            chain_id: "opal-sim".into(),
            height: self.height,
            time_ms: self.time_ms,
            parent_hash: self.parent,
            prev_state_root: Hash(self.store.snapshot().unwrap().root()),
            tx_root: Block::tx_root(&txs),
            tx_count: txs.len() as u32,
            proposer: self.proposer.public_key(),
            beacon: self.proposer.vrf_beacon("opal-sim", self.height),
        };
        let block = Block { header, txs };
        let mut o = self.overlay();
        let result = execute_block(&mut o, &block).unwrap();
        invariants::check_supply(&o).expect("supply is conserved");
        self.store
            .commit(self.height, o.into_writes(), Default::default())
            .unwrap();
        self.parent = block.hash();
        result
    }
}

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
    let mut chain = Chain::new(&g, proposer);
    let operator = offender.address();
    let before = staking::validator(&chain.overlay(), &operator)
        .unwrap()
        .expect("the simulated validator is a genesis validator");
    assert!(!before.jailed);
    while chain.height < ev.a.height {
        chain.block(vec![]);
    }
    let tx = TxBody {
        chain_id: "opal-sim".into(),
        nonce: 0,
        fee: g.params.min_fee,
        action: Action::SubmitEvidence {
            evidence: ev.clone(),
        },
    }
    .sign(&reporter);
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
    let again = TxBody {
        chain_id: "opal-sim".into(),
        nonce: 1,
        fee: g.params.min_fee,
        action: Action::SubmitEvidence { evidence: ev },
    }
    .sign(&reporter);
    let r = chain.block(vec![again]);
    assert_eq!(r.txs[0].code.as_deref(), Some("duplicate_evidence"));
}
