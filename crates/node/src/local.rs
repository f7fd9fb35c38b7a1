//! Submitting transactions from inside the node process (the devnet's demo setup, the
//! inference service), with the same admission checks as the API.

use crate::app::{sender_state, AppError, Shared};
use opal_ledger::TxResult;
use opal_types::{Action, Hash, SecretKey, TxBody};
use std::time::{Duration, Instant};

/// Why a transaction the node submitted itself did not land.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// It could not be signed or admitted (the store, or the mempool refused it).
    #[error(transparent)]
    App(#[from] AppError),
    #[error("transaction {hash} not committed after {after:?}")]
    Timeout { hash: Hash, after: Duration },
    /// Its block is recorded but not readable.
    #[error("the record of transaction {0} is missing or out of range")]
    Missing(Hash),
    /// The ledger executed it and refused it (its message).
    #[error("{0}")]
    Refused(String),
}

/// Sign `action` with `key` at its next nonce (counting its pending transactions) and admit it
/// to the mempool.
pub fn submit(shared: &Shared, key: &SecretKey, action: Action) -> Result<Hash, LocalError> {
    let mut mempool = shared.mempool.lock();
    let snap = shared.snapshot()?;
    let me = key.address();
    let state = sender_state(&snap, &me)?;
    let nonce = state.nonce + mempool.pending_count(&me, state.nonce) as u64;
    let tx = TxBody {
        chain_id: shared.chain_id.clone(),
        nonce,
        fee: shared.params()?.min_fee,
        action,
    }
    .sign(key);
    let bytes = opal_types::encode(&tx);
    let hash = mempool
        .admit(tx, bytes.len(), state)
        .map_err(AppError::from)?;
    drop(mempool);
    // Like a client's: the next proposer, whoever it is, should have it.
    shared.gossip.offer(bytes);
    Ok(hash)
}

/// Wait until transaction `hash` is committed and return its result.
pub async fn wait(shared: &Shared, hash: &Hash, timeout: Duration) -> Result<TxResult, LocalError> {
    let start = Instant::now();
    loop {
        let snap = shared.snapshot()?;
        if let Some(loc) = shared.tx_location(&snap, hash)? {
            let sb = shared
                .stored_block(&snap, loc.height)?
                .ok_or(LocalError::Missing(*hash))?;
            return sb
                .result
                .txs
                .get(loc.index as usize)
                .cloned()
                .ok_or(LocalError::Missing(*hash));
        }
        if start.elapsed() > timeout {
            return Err(LocalError::Timeout {
                hash: *hash,
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submit and wait; an action the ledger rejects is an error carrying its message.
pub async fn submit_and_wait(
    shared: &Shared,
    key: &SecretKey,
    action: Action,
) -> Result<TxResult, LocalError> {
    let h = submit(shared, key, action)?;
    let r = wait(shared, &h, Duration::from_secs(60)).await?;
    match &r.error {
        Some(e) => Err(LocalError::Refused(e.clone())),
        None => Ok(r),
    }
}
