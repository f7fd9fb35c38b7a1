//! Every state key the ledger uses is built here, one section per component.

use opal_types::Address;

pub const PARAMS: &[u8] = b"params";
pub const CHAIN_ID: &[u8] = b"chain/id";
pub const SUPPLY: &[u8] = b"supply";
pub const VALIDATORS: &[u8] = b"validators";
pub const GENESIS_TIME: &[u8] = b"chain/genesis_time_ms";

pub mod accounts {
    use super::*;
    pub const PREFIX: &[u8] = b"accounts/";
    pub fn account(a: &Address) -> Vec<u8> {
        let mut k = PREFIX.to_vec();
        k.extend_from_slice(&a.0);
        k
    }
}

pub mod fees {
    /// Fees collected during the current block, paid out at its end.
    pub const POOL: &[u8] = b"fees/pool";
}
