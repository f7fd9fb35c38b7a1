//! `TestChain`: blocks executed directly (no consensus) over a real on-disk store, with every
//! ledger invariant checked after every block. Shared by the ledger's scenario tests.
#![allow(dead_code)]

use opal_ledger::*;
use opal_state::{Overlay, Store};
use opal_types::*;

pub struct TestChain {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub height: u64,
    pub time_ms: u64,
    pub parent: Hash,
    pub proposer: SecretKey,
    pub chain_id: String,
}

pub fn key(i: u8) -> SecretKey {
    SecretKey::from_seed([i; 32])
}

/// The scenario tests' accounts: 1 a watcher (or a data-set owner), 2 the model owner, 3 the
/// caller, 4 the inference node.
pub fn owner() -> SecretKey {
    key(2)
}
pub fn caller() -> SecretKey {
    key(3)
}
pub fn node() -> SecretKey {
    key(4)
}

pub fn genesis() -> Genesis {
    Genesis {
        chain_id: "test-chain".into(),
        genesis_time_ms: 1_000,
        params: Params::default(),
        staking: Default::default(),
        inference: Default::default(),
        accounts: (1..=4)
            .map(|i| GenesisAccount {
                address: key(i).address(),
                balance: Amount(1_000_000),
            })
            .collect(),
        validators: vec![GenesisValidator {
            name: "v".into(),
            public_key: key(100).public_key(),
            operator: None,
            stake: Amount(10_000_000),
            vrf_key: key(100).vrf_public_key(),
        }],
    }
}

impl TestChain {
    pub fn new() -> TestChain {
        TestChain::with_genesis(genesis())
    }

    pub fn with_genesis(g: Genesis) -> TestChain {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let mut o = Overlay::new(store.snapshot().unwrap());
        g.apply(&mut o).unwrap();
        store
            .commit(0, o.into_writes(), Default::default())
            .unwrap();
        TestChain {
            _dir: dir,
            store,
            height: 0,
            time_ms: g.genesis_time_ms,
            parent: Hash::ZERO,
            proposer: key(100),
            chain_id: g.chain_id,
        }
    }

    pub fn overlay(&self) -> Overlay {
        Overlay::new(self.store.snapshot().unwrap())
    }

    pub fn balance(&self, k: &SecretKey) -> Amount {
        components::accounts::get(&self.overlay(), &k.address())
            .unwrap()
            .balance
    }

    pub fn nonce(&self, k: &SecretKey) -> u64 {
        components::accounts::get(&self.overlay(), &k.address())
            .unwrap()
            .nonce
    }

    pub fn root(&self) -> [u8; 32] {
        self.store.snapshot().unwrap().root()
    }

    /// The key that proposes the next block: `proposer` while it is in the active set, else
    /// the first member of the set among the test keys `key(0..=255)` (its VRF beacon must
    /// verify against a validator's registered key).
    pub fn next_proposer(&self) -> SecretKey {
        let set = opal_ledger::components::staking::active_set(&self.overlay()).unwrap();
        if set
            .iter()
            .any(|v| v.public_key == self.proposer.public_key())
        {
            return self.proposer.clone();
        }
        (0..=255u8)
            .map(key)
            .find(|k| set.iter().any(|v| v.public_key == k.public_key()))
            .expect("a test key in the validator set")
    }

    /// Execute and commit one block; check the supply invariant.
    pub fn block(&mut self, txs: Vec<Transaction>) -> BlockResult {
        self.height += 1;
        self.time_ms += 1_000;
        let proposer = self.next_proposer();
        let header = BlockHeader {
            chain_id: self.chain_id.clone(),
            height: self.height,
            time_ms: self.time_ms,
            parent_hash: self.parent,
            prev_state_root: Hash(self.root()),
            tx_root: Block::tx_root(&txs),
            tx_count: txs.len() as u32,
            proposer: proposer.public_key(),
            beacon: proposer.vrf_beacon(&self.chain_id, self.height),
        };
        let block = Block { header, txs };
        let mut o = self.overlay();
        let result = execute_block(&mut o, &block).unwrap();
        invariants::check_supply(&o).expect("supply invariant");
        self.store
            .commit(self.height, o.into_writes(), Default::default())
            .unwrap();
        self.parent = block.hash();
        result
    }

    pub fn transfer(
        &self,
        from: &SecretKey,
        to: &SecretKey,
        amount: u128,
        nonce: u64,
    ) -> Transaction {
        TxBody {
            chain_id: self.chain_id.clone(),
            nonce,
            fee: Params::default().min_fee,
            action: Action::Transfer {
                to: to.address(),
                amount: Amount(amount),
            },
        }
        .sign(from)
    }

    /// Sign `action` from `from` with its current committed nonce plus `offset`.
    pub fn tx(&self, from: &SecretKey, offset: u64, action: Action) -> Transaction {
        TxBody {
            chain_id: self.chain_id.clone(),
            nonce: self.nonce(from) + offset,
            fee: Params::default().min_fee,
            action,
        }
        .sign(from)
    }

    /// Run one block with these transactions and return each one's error code (None = applied).
    pub fn run(&mut self, txs: Vec<Transaction>) -> Vec<Option<String>> {
        self.block(txs).txs.into_iter().map(|t| t.code).collect()
    }

    /// Run one block: each transaction's error code (None = applied), and every event of the
    /// block (begin- and end-block's first, then each transaction's) in order.
    pub fn block_outcome(&mut self, txs: Vec<Transaction>) -> (Vec<Option<String>>, Vec<Event>) {
        let r = self.block(txs);
        let mut events = r.events;
        let mut codes = vec![];
        for t in r.txs {
            codes.push(t.code);
            events.extend(t.events);
        }
        (codes, events)
    }

    /// Settle one receipt from `node` in a block of its own: `None` if it was accepted, else
    /// the code it was rejected with (the settlement transaction itself must apply).
    pub fn settle_one(&mut self, node: &SecretKey, receipt: &receipt::Receipt) -> Option<String> {
        let tx = self.tx(
            node,
            0,
            Action::SettleReceipts {
                receipts: vec![receipt.clone()],
            },
        );
        let (codes, events) = self.block_outcome(vec![tx]);
        assert_eq!(codes, vec![None], "the settlement transaction applies");
        events.iter().find_map(|e| match e {
            Event::ReceiptRejected { code, .. } => Some(code.clone()),
            _ => None,
        })
    }

    /// Empty blocks until block time passes `ms`.
    /// The open verification case of a request.
    pub fn case(&self, request_id: &Hash) -> Option<components::verification::Case> {
        components::verification::case(&self.overlay(), request_id).unwrap()
    }

    /// How a request's verification case was closed.
    pub fn verdict(&self, request_id: &Hash) -> Option<components::verification::Outcome> {
        components::verification::verdict(&self.overlay(), request_id)
            .unwrap()
            .map(|v| v.outcome)
    }

    /// The inference role bond of [`node`].
    pub fn node_bond(&self) -> Amount {
        let o = self.overlay();
        components::staking::role_bond(&o, Role::InferenceNode, &node().address()).unwrap()
    }

    /// A committee member's vote on a request's case.
    pub fn vote(&self, who: &SecretKey, request_id: Hash, valid: bool) -> Transaction {
        self.tx(who, 0, Action::CommitteeVote { request_id, valid })
    }

    pub fn advance_time_to(&mut self, ms: u64) {
        while self.time_ms < ms {
            self.block(vec![]);
        }
    }
}

/// The bytes of the canonical demo model, `models/digits/model.opalq`.
pub fn demo_model_file() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.opalq"
    ))
    .expect("models/digits/model.opalq")
}

/// One digit for the demo model: a canonical `f32` tensor of shape `[1, 64]`.
pub fn digit_tensor(v: &[f32]) -> Vec<u8> {
    opal_ledger::canonical::f32_tensor_bytes(&[1, v.len() as u64], v)
}

/// `owner` registers the demo model file as `digits-q@1` (opal_quant, price 100, in `tiers`, with
/// `weight_commitment`); `node` bonds `node_bond` as an inference node and offers it in the same
/// tiers (fee 90); `caller` funds an escrow of 600,000 with `node`. Asserts every step applied.
pub fn offer_demo_model(
    c: &mut TestChain,
    parties: [&SecretKey; 3],
    file: &[u8],
    tiers: Vec<Tier>,
    weight_commitment: Option<Hash>,
    node_bond: u128,
) {
    offer_model(
        c,
        parties,
        demo_spec(file, tiers, weight_commitment),
        node_bond,
        90,
    );
}

/// What a canonical model file costs to re-execute (`canonical::cost`), as `opal model
/// register` measures it for the registration's `replay_cost`.
pub fn replay_cost_of(file: &[u8]) -> Option<u64> {
    let m = opal_ledger::canonical::load_model(file).ok()?;
    Some(opal_ledger::canonical::cost(&m))
}

/// The registration of the demo model file as `digits-q@1` (opal_quant, price 100, in `tiers`,
/// with `weight_commitment` and the file's true `replay_cost`).
pub fn demo_spec(
    file: &[u8],
    tiers: Vec<Tier>,
    weight_commitment: Option<Hash>,
) -> opal_types::registry::ModelSpec {
    use opal_types::registry::{Licence, ModelFormat, ModelSpec};
    ModelSpec {
        name: "digits-q".into(),
        version: 1,
        parent: None,
        parent_bps: 0,
        datasets: vec![],
        content_hash: Hash(*blake3::hash(file).as_bytes()),
        size: file.len() as u64,
        format: ModelFormat::OpalQuant,
        input_schema: "[]".into(),
        output_schema: "[]".into(),
        price: Amount(100),
        licence: Licence::Open,
        tiers,
        weight_commitment,
        replay_cost: replay_cost_of(file),
    }
}

/// `owner` registers `spec`; `node` bonds `node_bond` as an inference node and offers the model
/// in the spec's tiers for `fee`; `caller` funds an escrow of 600,000 with `node`. Asserts every
/// step applied.
pub fn offer_model(
    c: &mut TestChain,
    [owner, node, caller]: [&SecretKey; 3],
    spec: opal_types::registry::ModelSpec,
    node_bond: u128,
    fee: u128,
) {
    use opal_types::registry::{ServiceOffer, ServiceSpec};
    let (model, tiers) = (ModelRef::new(&spec.name, spec.version), spec.tiers.clone());
    let r = c.run(vec![
        c.tx(owner, 0, Action::RegisterModel { spec }),
        c.tx(
            node,
            0,
            Action::BondRole {
                role: Role::InferenceNode,
                amount: Amount(node_bond),
            },
        ),
        c.tx(
            caller,
            0,
            Action::FundEscrow {
                node: node.address(),
                amount: Amount(600_000),
            },
        ),
    ]);
    assert_eq!(r, vec![None, None, None]);
    let r = c.run(vec![c.tx(
        node,
        0,
        Action::DeclareService {
            spec: ServiceSpec {
                endpoint: "http://127.0.0.1:9000".into(),
                offers: vec![ServiceOffer {
                    model,
                    tiers,
                    fee: Amount(fee),
                }],
            },
        },
    )]);
    assert_eq!(r, vec![None]);
}

/// The test genesis with three validators whose operators are `validators`, staking 4, 3 and
/// 3 million (two thirds of the power needs the first and one other), each with the fees of a
/// few votes.
pub fn committee_genesis(validators: [&SecretKey; 3]) -> Genesis {
    let mut g = genesis();
    g.validators = validators
        .iter()
        .enumerate()
        .map(|(i, v)| GenesisValidator {
            name: format!("v{i}"),
            public_key: v.public_key(),
            operator: None,
            stake: Amount(if i == 0 { 4_000_000 } else { 3_000_000 }),
            vrf_key: v.vrf_public_key(),
        })
        .collect();
    for v in validators {
        g.accounts.push(GenesisAccount {
            address: v.address(),
            balance: Amount(10_000),
        });
    }
    g
}
