//! Chain parameters, set in genesis (governance will change them later).

use opal_types::Amount;
use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct Params {
    /// Minimum fee per transaction, in base units.
    pub min_fee: Amount,
    /// Largest accepted transaction, in canonical bytes.
    pub max_tx_bytes: u32,
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Largest block body, in canonical bytes.
    pub max_block_bytes: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_fee: Amount(1_000),
            max_tx_bytes: 16 * 1024,
            max_block_txs: 5_000,
            max_block_bytes: 3 * 1024 * 1024,
        }
    }
}
