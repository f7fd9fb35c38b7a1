//! The consensus validator set as the ledger stores it (state key `validators`): shared by the
//! ledger, which writes it, and light clients, which read it with a Merkle proof.

use crate::vrf::VrfPublicKey;
use crate::{Address, PublicKey};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A member of the consensus validator set.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ActiveValidator {
    pub name: String,
    pub operator: Address,
    pub public_key: PublicKey,
    pub power: u64,
    /// Its VRF key: what the beacon in the headers it proposes is checked against.
    pub vrf_key: VrfPublicKey,
}
