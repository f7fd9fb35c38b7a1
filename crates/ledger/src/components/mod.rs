//! Ledger components, one per concern, each owning its state keys. The fixed call order is
//! defined in [`crate::exec`]: fees, then the action's component (accounts, staking, registry,
//! inference); at the end of a block, fees then staking.

pub mod accounts;
pub mod fees;
pub mod inference;
pub mod registry;
pub mod staking;
pub mod verification;
pub mod zk;

use crate::error::LedgerError;
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

pub(crate) fn write<T: BorshSerialize>(s: &mut Overlay, key: &[u8], v: &T) {
    s.put(key.to_vec(), opal_types::encode(v));
}
