//! Ledger components, one per concern, each owning its state keys (built in [`crate::keys`]).
//! The fixed call order is defined in [`crate::exec`]: fees, then the action's component; at
//! the end of a block, fees then staking. Components import only those below them, with no
//! cycles (docs/layout.md): accounts < staking < registry (with zk_keys) < payout <
//! verification < inference (settlement) < zk. What they share is here: [`BlockCtx`],
//! [`TxResult`] and `tx_try!`, [`read`] / [`write`], and [`required`] for values genesis
//! always writes.

/// Stop a transaction handler with the transaction's own error (`Ok(Err(e))`): the
/// transaction fails (its fork is dropped: no fee, no nonce), the block goes on. Node faults use `?` instead.
macro_rules! tx_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

pub mod accounts;
pub mod fees;
pub mod inference;
pub mod payout;
pub mod registry;
pub mod staking;
pub mod verification;
pub mod zk;
pub mod zk_keys;

use crate::error::{LedgerError, TxError};
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;

/// Read and decode a typed value. State is written only by the ledger, so a value that fails to
/// decode is corruption (a node fault), reported as such rather than panicking.
pub(crate) fn read<T: BorshDeserialize>(s: &Overlay, key: &[u8]) -> Result<Option<T>, LedgerError> {
    match s.get(key)? {
        None => Ok(None),
        Some(bytes) => T::try_from_slice(&bytes)
            .map(Some)
            .map_err(|e| LedgerError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: e.to_string(),
            }),
    }
}

/// Read a value genesis always writes (the parameters): missing is corruption, never a
/// default, so no node runs with values the chain did not agree on. The one rule for a
/// missing parameter.
pub(crate) fn required<T: BorshDeserialize>(
    s: &Overlay,
    key: &[u8],
    what: &str,
) -> Result<T, LedgerError> {
    read(s, key)?.ok_or_else(|| LedgerError::Corrupt {
        key: what.into(),
        reason: "missing (genesis not applied?)".into(),
    })
}

/// What a transaction handler returns: `Err` is a node fault (corrupt state, a broken
/// invariant) that stops the block; `Ok(Err)` is the transaction's own failure.
pub(crate) type TxResult = Result<Result<(), TxError>, LedgerError>;

/// Where a block is being executed: what components need besides state.
#[derive(Debug, Clone)]
pub struct BlockCtx {
    pub chain_id: String,
    pub height: u64,
    pub time_ms: u64,
}

pub(crate) fn write<T: BorshSerialize>(s: &mut Overlay, key: &[u8], v: &T) {
    s.put(key.to_vec(), opal_types::encode(v));
}
