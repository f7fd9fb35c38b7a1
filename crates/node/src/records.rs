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

/// What the node writes beside the state when it commits `height`: the block record (bytes,
/// results, certificate), each transaction's location, and, when the store prunes
/// (`Retention::Last`), the deletion of the records that fall out of the window
/// ([`crate::prune::prune_blocks`]). `base` is the state before this commit.
pub fn commit_aux(
    base: Option<&opal_state::Snapshot>,
    retention: opal_state::Retention,
    height: u64,
    block_bytes: &[u8],
    result: &BlockResult,
    certificate: Vec<u8>,
) -> Result<std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>, crate::app::AppError> {
    let mut aux = std::collections::BTreeMap::new();
    for (i, r) in result.txs.iter().enumerate() {
        let loc = TxLocation {
            height,
            index: i as u32,
        };
        aux.insert(tx_key(&r.hash), Some(opal_types::encode(&loc)));
    }
    let stored = StoredBlock {
        block_bytes: block_bytes.to_vec(),
        result: result.clone(),
        certificate,
    };
    aux.insert(block_key(height), Some(opal_types::encode(&stored)));
    if let (opal_state::Retention::Last(n), Some(base)) = (retention, base) {
        crate::prune::prune_blocks(base, height, n, &mut aux)?;
    }
    Ok(aux)
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
