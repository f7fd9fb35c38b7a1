//! Deterministic inputs shared by the benchmarks.

use opal_ledger::{Genesis, GenesisAccount, GenesisValidator, Params};
use opal_types::{Address, Amount, SecretKey};

/// The benchmarks' seeded generator: the workspace's one SplitMix64.
pub use opal_quant::SplitMix64 as Rng;

/// The `i`-th benchmark key (a fixed seed per index, so runs are reproducible).
pub fn key(i: u64) -> SecretKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    seed[8..16].copy_from_slice(b"opalbnch");
    SecretKey::from_seed(seed)
}

/// The `i`-th synthetic account address (no key behind it; for state-size benchmarks).
pub fn address(i: u64) -> Address {
    let mut r = Rng::new(i ^ 0xA5A5_5A5A_0F0F_F0F0);
    let mut a = [0u8; 20];
    a[..8].copy_from_slice(&r.next_u64().to_le_bytes());
    a[8..16].copy_from_slice(&r.next_u64().to_le_bytes());
    a[16..].copy_from_slice(&i.to_le_bytes()[..4]);
    Address(a)
}

/// A benchmark chain: every address in `funded` holds 10^18, and `validator` is the one
/// validator.
pub fn genesis(chain_id: &str, funded: &[Address], validator: &SecretKey) -> Genesis {
    Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: 1_700_000_000_000,
        params: Params::default(),
        staking: Default::default(),
        inference: Default::default(),
        governance: Default::default(),
        rewards: Default::default(),
        accounts: funded
            .iter()
            .map(|a| GenesisAccount {
                address: *a,
                balance: Amount(1_000_000_000_000_000_000),
            })
            .collect(),
        validators: vec![GenesisValidator {
            name: "v0".into(),
            public_key: validator.public_key(),
            operator: None,
            stake: Amount(1_000_000_000_000),
            vrf_key: validator.vrf_public_key(),
        }],
    }
}

/// Block `height` of a benchmark chain: `txs` on top of `parent` and `prev_root`, proposed by
/// `proposer`, one second after the previous block.
pub fn block(
    chain_id: &str,
    genesis_time_ms: u64,
    height: u64,
    parent: opal_types::Hash,
    prev_root: opal_types::Hash,
    proposer: &SecretKey,
    txs: Vec<opal_types::Transaction>,
) -> opal_types::Block {
    let header = opal_types::BlockHeader {
        chain_id: chain_id.into(),
        height,
        time_ms: genesis_time_ms + height * 1000,
        parent_hash: parent,
        prev_state_root: prev_root,
        tx_root: opal_types::Block::tx_root(&txs),
        tx_count: txs.len() as u32,
        proposer: proposer.public_key(),
        beacon: proposer.vrf_beacon(chain_id, height),
    };
    opal_types::Block::new(header, txs)
}

/// The chain id of the benchmarks that execute blocks on a [`Chain`].
pub const CHAIN_ID: &str = "opal-bench";

/// A benchmark chain on a store on disk: blocks executed by `execute_block` and committed,
/// with the supply invariant checked after each.
pub struct Chain {
    pub store: opal_state::Store,
    pub height: u64,
    pub parent: opal_types::Hash,
    pub root: opal_types::Hash,
    pub proposer: SecretKey,
    pub time_ms: u64,
    chain_id: String,
}

impl Chain {
    /// `genesis` applied and committed in a fresh temporary directory (kept alive by the
    /// returned guard), `proposer` proposing every block.
    pub fn start(
        genesis: &Genesis,
        proposer: &SecretKey,
    ) -> anyhow::Result<(Chain, tempfile::TempDir)> {
        let dir = tempfile::tempdir()?;
        let store = opal_state::Store::open(&dir.path().join("state.redb"))?;
        let mut g = opal_state::Overlay::empty();
        genesis.apply(&mut g)?;
        let root = opal_types::Hash(store.commit(0, g.into_writes(), Default::default())?);
        let c = Chain {
            store,
            height: 0,
            parent: opal_types::Hash::ZERO,
            root,
            proposer: proposer.clone(),
            time_ms: genesis.genesis_time_ms,
            chain_id: genesis.chain_id.clone(),
        };
        Ok((c, dir))
    }

    /// Execute and commit one block a second after the last; fails if a transaction is
    /// rejected. Returns the milliseconds `execute_block` took.
    pub fn block(&mut self, txs: Vec<opal_types::Transaction>) -> anyhow::Result<f64> {
        use anyhow::Context;
        self.height += 1;
        self.time_ms += 1_000;
        let header = opal_types::BlockHeader {
            chain_id: self.chain_id.clone(),
            height: self.height,
            time_ms: self.time_ms,
            parent_hash: self.parent,
            prev_state_root: self.root,
            tx_root: opal_types::Block::tx_root(&txs),
            tx_count: txs.len() as u32,
            proposer: self.proposer.public_key(),
            beacon: self.proposer.vrf_beacon(&self.chain_id, self.height),
        };
        let block = opal_types::Block::new(header, txs);
        let mut o = opal_state::Overlay::new(self.store.snapshot()?);
        let t = std::time::Instant::now();
        let result = opal_ledger::execute_block(&mut o, &block)?;
        let took = crate::stats::ms(t.elapsed());
        if let Some(r) = result.txs.iter().find(|r| r.error.is_some()) {
            anyhow::bail!(
                "block {} rejected a transaction: {:?}",
                self.height,
                r.error
            );
        }
        opal_ledger::invariants::check_supply(&o)?;
        self.root = opal_types::Hash(
            self.store
                .commit(self.height, o.into_writes(), Default::default())
                .context("commit")?,
        );
        self.parent = block.header.hash();
        Ok(took)
    }

    /// The committed state.
    pub fn overlay(&self) -> anyhow::Result<opal_state::Overlay> {
        Ok(opal_state::Overlay::new(self.store.snapshot()?))
    }
}

/// `action` signed by `key` on the [`CHAIN_ID`] chain at `nonce`, with the minimum fee.
pub fn tx(key: &SecretKey, nonce: u64, action: opal_types::Action) -> opal_types::Transaction {
    opal_types::TxBody {
        chain_id: CHAIN_ID.into(),
        nonce,
        fee: Params::default().min_fee,
        action,
    }
    .sign(key)
}
