//! Typed events emitted by execution; the node stores them with the block and streams them.

use opal_types::{Address, Amount, PublicKey, Role};
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
    ValidatorCreated {
        operator: Address,
        consensus_key: PublicKey,
        amount: Amount,
    },
    Delegated {
        delegator: Address,
        validator: Address,
        amount: Amount,
        shares: u128,
    },
    Undelegated {
        delegator: Address,
        validator: Address,
        amount: Amount,
        completion_ms: u64,
    },
    RoleBonded {
        who: Address,
        role: Role,
        amount: Amount,
        total: Amount,
    },
    RoleUnbonding {
        who: Address,
        role: Role,
        amount: Amount,
        completion_ms: u64,
    },
    UnbondingCompleted {
        owner: Address,
        amount: Amount,
    },
    Slashed {
        validator: Address,
        amount: Amount,
        infraction_height: u64,
        reporter: Address,
        reporter_reward: Amount,
    },
    Jailed {
        validator: Address,
        until_ms: u64,
    },
    Unjailed {
        validator: Address,
    },
    ValidatorSetChanged {
        validators: u32,
        total_power: u64,
    },
}
