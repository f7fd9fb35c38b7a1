//! Pruning (`retain_heights` in `config.toml`): the store keeps the state of the last N heights
//! (`opal_state::Retention::Last`), and this module drops, in the same commit, what the node
//! keeps beside the state for heights that fall out of that window: the block, its results and
//! commit certificate, and its transactions' index entries. Older heights then answer 410
//! `pruned` on the API, and value sync serves only the heights still held
//! (`history_min_height`). Without `retain_heights` the node is an archive: nothing is pruned.

use crate::app::AppError;
use crate::records::{self, StoredBlock};
use opal_state::Snapshot;
use std::collections::BTreeMap;

/// The fewest heights a pruning node keeps (the consensus engine reads the validator set of
/// recent heights, and a peer a few blocks behind must still be able to sync from it).
pub const MIN_RETAIN_HEIGHTS: u64 = 16;

/// Most blocks one commit prunes (a node switched from archive catches up over many commits).
pub const BLOCKS_PER_COMMIT: u64 = 64;

/// Aux key: the highest height whose block was pruned (absent: none).
pub const BLOCKS_PRUNED_KEY: &[u8] = b"meta/blocks_pruned_to";

/// The highest height whose block record was pruned (0: none).
pub fn blocks_pruned_to(snap: &Snapshot) -> Result<u64, AppError> {
    match snap
        .get_aux(BLOCKS_PRUNED_KEY)
        .map_err(|e| AppError::Store(e.to_string()))?
    {
        None => Ok(0),
        Some(b) => b
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| AppError::Corrupt("blocks_pruned_to is not 8 bytes".into())),
    }
}

/// Add to `aux` (the writes of the commit of `height`) the deletions of the block records that
/// keeping `retain` heights drops: heights below `height + 1 - retain` not pruned yet, at most
/// [`BLOCKS_PER_COMMIT`], and the new mark. `snap` is the state before this commit.
pub fn prune_blocks(
    snap: &Snapshot,
    height: u64,
    retain: u64,
    aux: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Result<(), AppError> {
    let keep_from = (height + 1).saturating_sub(retain);
    let done = blocks_pruned_to(snap)?;
    if keep_from <= done + 1 {
        return Ok(());
    }
    let upto = (keep_from - 1).min(done + BLOCKS_PER_COMMIT);
    for h in done + 1..=upto {
        let key = records::block_key(h);
        if let Some(bytes) = snap
            .get_aux(&key)
            .map_err(|e| AppError::Store(e.to_string()))?
        {
            let sb: StoredBlock = borsh::from_slice(&bytes)
                .map_err(|e| AppError::Corrupt(format!("block record at height {h}: {e}")))?;
            for t in &sb.result.txs {
                aux.insert(records::tx_key(&t.hash), None);
            }
            aux.insert(key, None);
        }
    }
    aux.insert(
        BLOCKS_PRUNED_KEY.to_vec(),
        Some(upto.to_be_bytes().to_vec()),
    );
    Ok(())
}
