//! Typed events emitted by execution; the node stores them with the block and streams them.

use opal_types::{Address, Amount, PublicKey};
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
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Transfer {
        from: Address,
        to: Address,
        amount: Amount,
    },
    FeePaid {
        payer: Address,
        amount: Amount,
    },
    FeesDistributed {
        proposer: PublicKey,
        to: Address,
        amount: Amount,
    },
}
