//! [`TestChain`]: blocks executed directly (no consensus) over a real on-disk store, with the
//! supply invariant checked after every block; the test accounts and genesis.

use opal_ledger::*;
use opal_state::{Overlay, Store};
use opal_types::*;

/// A chain under test: a real store, the last block's height, time and hash, and the key that
/// proposes while it is a validator.
pub struct TestChain {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub height: u64,
    pub time_ms: u64,
    pub parent: Hash,
    pub proposer: SecretKey,
    pub chain_id: String,
    /// Validator keys besides the test keys `key(0..=255)` that sign the last commits.
    pub signing_keys: Vec<SecretKey>,
}

/// Test key number `i` (seed `[i; 32]`); 100 is the genesis validator.
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

/// Chain `test-chain` at time 1,000: accounts 1 to 4 with 1,000,000 each, validator `key(100)`.
pub fn genesis() -> Genesis {
    Genesis {
        chain_id: "test-chain".into(),
        genesis_time_ms: 1_000,
        params: Params::default(),
        staking: Default::default(),
        inference: Default::default(),
        governance: Default::default(),
        rewards: Default::default(),
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

impl Default for TestChain {
    fn default() -> TestChain {
        TestChain::new()
    }
}

impl TestChain {
    /// A chain at [`genesis`].
    pub fn new() -> TestChain {
        TestChain::with_genesis(genesis())
    }

    /// A chain at `g`, applied and committed at height 0 in a fresh temporary store.
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
            signing_keys: vec![],
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

    /// The protocol treasury's balance.
    pub fn treasury(&self) -> Amount {
        components::accounts::treasury(&self.overlay()).unwrap()
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

    /// The next block with `txs`: a second after the last, from [`TestChain::next_proposer`],
    /// carrying the previous block's commit signed by `signers` (default: every member of the
    /// set that voted on it), each a real precommit over the previous block's value id by the
    /// test key `key(0..=255)` with that public key (the ledger verifies them).
    pub fn next_block_signed(
        &self,
        txs: Vec<Transaction>,
        signers: Option<Vec<PublicKey>>,
    ) -> Block {
        let (height, time_ms) = (self.height + 1, self.time_ms + 1_000);
        let proposer = self.next_proposer();
        let header = BlockHeader {
            chain_id: self.chain_id.clone(),
            height,
            time_ms,
            parent_hash: self.parent,
            prev_state_root: Hash(self.root()),
            tx_root: Block::tx_root(&txs),
            tx_count: txs.len() as u32,
            proposer: proposer.public_key(),
            beacon: proposer.vrf_beacon(&self.chain_id, height),
        };
        let last_commit = (height >= 2).then(|| {
            let signers = signers.unwrap_or_else(|| {
                components::staking::voted_on(&self.overlay(), height - 1)
                    .unwrap()
                    .into_iter()
                    .map(|v| v.public_key)
                    .collect()
            });
            let value_id: Hash = self
                .overlay()
                .get(keys::LAST_VALUE_ID)
                .unwrap()
                .map(|b| borsh::from_slice(&b).unwrap())
                .expect("the previous block's value id");
            opal_types::block::LastCommit {
                round: 0,
                signatures: signers
                    .into_iter()
                    .map(|pk| (pk, self.precommit(&pk, height - 1, value_id)))
                    .collect(),
            }
        });
        Block {
            header,
            txs,
            last_commit,
        }
    }

    /// The precommit of the test key with public key `pk` for block `height` (`value_id`).
    fn precommit(&self, pk: &PublicKey, height: u64, value_id: Hash) -> Vec<u8> {
        let sk = (0..=255u8)
            .map(key)
            .chain(self.signing_keys.iter().cloned())
            .find(|k| k.public_key() == *pk)
            .expect("signers are test keys or in signing_keys");
        let vote = opal_types::evidence::VoteEvidence {
            vote_type: opal_types::evidence::PRECOMMIT,
            height,
            round: 0,
            value: Some(value_id.0),
            validator: *pk,
            signature: Signature([0; 64]),
        };
        sk.sign(&vote.sign_bytes(&self.chain_id)).0.to_vec()
    }

    /// The next block with `txs` and the default last commit (apply it with
    /// [`TestChain::apply_block`]).
    pub fn next_block(&self, txs: Vec<Transaction>) -> Block {
        self.next_block_signed(txs, None)
    }

    /// The state writes the next block with `txs` would make, without committing it. A block
    /// of refused transactions writes exactly what an empty block writes (its per-block
    /// bookkeeping: emission, the fee pool), which is how tests check "changes nothing".
    pub fn writes_of(
        &self,
        txs: Vec<Transaction>,
    ) -> std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        let block = self.next_block(txs);
        let mut o = self.overlay();
        execute_block(&mut o, &block).unwrap();
        // The block's own value id differs with its bytes.
        let mut w = o.into_writes();
        w.remove(keys::LAST_VALUE_ID);
        w
    }

    /// Execute and commit one block; check the supply invariant.
    pub fn block(&mut self, txs: Vec<Transaction>) -> BlockResult {
        let block = self.next_block(txs);
        self.commit_block(block)
    }

    /// [`TestChain::block`] whose last commit carries only `signers` (a validator left out
    /// missed the previous block).
    pub fn block_signed_by(
        &mut self,
        txs: Vec<Transaction>,
        signers: Vec<PublicKey>,
    ) -> BlockResult {
        let block = self.next_block_signed(txs, Some(signers));
        self.commit_block(block)
    }

    /// Execute and commit `block` (made by [`TestChain::next_block`] here or on a chain in the
    /// same state); check the supply invariant.
    pub fn apply_block(&mut self, block: Block) -> BlockResult {
        self.commit_block(block)
    }

    fn commit_block(&mut self, block: Block) -> BlockResult {
        self.height += 1;
        self.time_ms += 1_000;
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

    /// No block for `ms` of block time (a halted chain): the next block comes that much later.
    pub fn pause(&mut self, ms: u64) {
        self.time_ms += ms;
    }

    /// Empty blocks until block time passes `ms`.
    pub fn advance_time_to(&mut self, ms: u64) {
        while self.time_ms < ms {
            self.block(vec![]);
        }
    }
}
