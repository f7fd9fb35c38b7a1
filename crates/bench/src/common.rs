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
