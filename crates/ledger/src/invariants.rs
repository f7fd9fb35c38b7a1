//! Invariants that tests (and the node, in debug builds) check after every block.

use crate::components::{accounts::Account, fees, read};
use crate::error::LedgerError;
use crate::keys;
use opal_state::Overlay;
use opal_types::Amount;

/// The sum of every account balance plus the fee pool equals the recorded total supply.
pub fn check_supply(s: &Overlay) -> Result<Amount, LedgerError> {
    let supply: Amount = read(s, keys::SUPPLY)?.unwrap_or_default();
    let mut sum = fees::pool(s)?;
    for (k, v) in s.prefix(keys::accounts::PREFIX)? {
        let a: Account = borsh::from_slice(&v).map_err(|e| LedgerError::Corrupt {
            key: hex_key(&k),
            reason: e.to_string(),
        })?;
        sum = sum
            .checked_add(a.balance)
            .map_err(|e| LedgerError::Invariant(e.to_string()))?;
    }
    if sum != supply {
        return Err(LedgerError::Invariant(format!(
            "total supply is {supply} but balances and pools sum to {sum}"
        )));
    }
    Ok(supply)
}

fn hex_key(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}
