//! Blocks and block headers.
//!
//! Execution happens after a block is decided (the CometBFT model): the header of block `h`
//! carries the state root *after* block `h-1` (`prev_state_root`); the state root after block `h`
//! is stored beside the block once it is executed, and appears in the header of `h+1`.

use crate::crypto::PublicKey;
use crate::encoding::{decode, encode, DecodeError};
use crate::hash::{Domain, Hash};
use crate::merkle;
use crate::tx::Transaction;
use crate::vrf::VrfBeacon;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// No block can be larger than this (decoding bound for blocks received from peers).
pub const MAX_BLOCK_BYTES_HARD: usize = 8 << 20;

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BlockHeader {
    pub chain_id: String,
    pub height: u64,
    /// Milliseconds since the Unix epoch, chosen by the proposer; strictly increasing.
    pub time_ms: u64,
    /// Hash of the previous block's header (`Hash::ZERO` for height 1).
    pub parent_hash: Hash,
    /// State root after executing the previous block (after genesis for height 1).
    pub prev_state_root: Hash,
    /// Merkle root of the transaction ids, in block order.
    pub tx_root: Hash,
    pub tx_count: u32,
    pub proposer: PublicKey,
    /// The proposer's VRF over (chain id, height): the audit randomness no block variant
    /// changes (docs/adr/0003-audit-beacon.md).
    pub beacon: VrfBeacon,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<Transaction>,
    /// The commit signatures of the previous block, as its proposer saw them: who signed
    /// height − 1. `None` only at height 1. Every validator checks it before voting (more than
    /// two thirds of the power of the set that voted on height − 1, every signature valid);
    /// the ledger reads its signers for liveness and base rewards.
    #[serde(default)]
    pub last_commit: Option<LastCommit>,
}

/// The precommits that decided a block: the round and each signer's (consensus key,
/// 64-byte ed25519 signature over the engine's precommit bytes).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct LastCommit {
    pub round: u32,
    pub signatures: Vec<(PublicKey, Vec<u8>)>,
}

impl LastCommit {
    /// The consensus keys that signed.
    pub fn signers(&self) -> impl Iterator<Item = &PublicKey> {
        self.signatures.iter().map(|(k, _)| k)
    }
}

impl BlockHeader {
    pub fn hash(&self) -> Hash {
        Hash::of(Domain::BlockHeader, &encode(self))
    }
}

impl Block {
    /// A block without commit information (height 1, and tests that do not model it).
    pub fn new(header: BlockHeader, txs: Vec<Transaction>) -> Block {
        Block {
            header,
            txs,
            last_commit: None,
        }
    }

    pub fn tx_root(txs: &[Transaction]) -> Hash {
        let ids: Vec<Hash> = txs.iter().map(|t| t.hash()).collect();
        merkle::root(&ids)
    }

    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Block, DecodeError> {
        decode("block", bytes, MAX_BLOCK_BYTES_HARD)
    }
}
