//! What the node stores beside the authenticated state (the store's non-verifiable `aux` table),
//! written in the same transaction as the state of each height.

use borsh::{BorshDeserialize, BorshSerialize};
use opal_ledger::BlockResult;
use opal_types::{Block, Hash};

pub const BLOCK_PREFIX: &[u8] = b"blk/";
pub const TX_PREFIX: &[u8] = b"txi/";

pub fn block_key(height: u64) -> Vec<u8> {
    let mut k = BLOCK_PREFIX.to_vec();
    k.extend_from_slice(&height.to_be_bytes());
    k
}

pub fn tx_key(hash: &Hash) -> Vec<u8> {
    let mut k = TX_PREFIX.to_vec();
    k.extend_from_slice(&hash.0);
    k
}

/// A committed block with its execution results and commit certificate. The state root after it
/// is the store's root at version `height`.
#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
pub struct StoredBlock {
    /// Canonical bytes of the block as decided by consensus (the certificate signs their hash).
    pub block_bytes: Vec<u8>,
    pub result: BlockResult,
    pub certificate: Vec<u8>,
}

/// Where a committed transaction is.
#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

impl StoredBlock {
    pub fn block(&self) -> Result<Block, opal_types::DecodeError> {
        Block::from_bytes(&self.block_bytes)
    }
}
