//! The Malachite `Context`: the concrete types the engine is generic over.
//!
//! * `Address` is the validator's 32-byte ed25519 public key itself (no hashing), so a
//!   certificate signature maps straight to a key.
//! * `Value` is only the 32-byte id of a block (`blake3(block bytes)`); the block itself
//!   travels as streamed proposal parts and lives in the undecided store.
//! * The proposer of `(height, round)` is chosen stake-weighted from `height` and then
//!   rotates by one validator per round, so a dead proposer never stalls two rounds in a row.

use std::fmt;
use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use malachitebft_core_types::{
    self as core, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};
use malachitebft_signing_ed25519::{Ed25519, PublicKey};

use crate::Hash32;

/// Validator address: the ed25519 public key bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 32]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..8]))
    }
}
impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", hex::encode(self.0))
    }
}
impl core::Address for Address {}

/// Block height (newtype so that we can implement the engine's trait on it).
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct BlockHeight(pub u64);

impl fmt::Display for BlockHeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl core::Height for BlockHeight {
    const ZERO: Self = BlockHeight(0);
    const INITIAL: Self = BlockHeight(1);

    fn increment_by(&self, n: u64) -> Self {
        BlockHeight(self.0.saturating_add(n))
    }
    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(BlockHeight)
    }
    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// Identifier of a proposed block: `blake3(block bytes)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct ValueId(pub Hash32);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..8]))
    }
}
impl fmt::Debug for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValueId({})", hex::encode(self.0))
    }
}

/// The value consensus agrees on: the id of a block.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct Value {
    pub id: ValueId,
}

impl core::Value for Value {
    type Id = ValueId;
    fn id(&self) -> ValueId {
        self.id
    }
}

/// A (signed by the engine) proposal: it carries only the block id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: BlockHeight,
    pub round: Round,
    pub value: Value,
    pub pol_round: Round,
    pub proposer: Address,
}

impl core::Proposal<OpalContext> for Proposal {
    fn height(&self) -> BlockHeight {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &Value {
        &self.value
    }
    fn take_value(self) -> Value {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// Prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub vote_type: VoteType,
    pub height: BlockHeight,
    pub round: Round,
    pub value: NilOrVal<ValueId>,
    pub validator: Address,
    pub extension: Option<SignedExtension<OpalContext>>,
}

impl core::Vote<OpalContext> for Vote {
    fn height(&self) -> BlockHeight {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<ValueId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<ValueId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.vote_type
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<OpalContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<OpalContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<OpalContext>) -> Self {
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

/// First part of a streamed block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PartInit {
    pub height: u64,
    pub round: u32,
    pub pol_round: Option<u32>,
    pub proposer: Address,
    pub block_len: u32,
}

/// A streamed block: `Init`, then `Data` chunks, then `Fin` carrying the proposer's
/// signature over `(chain_id, init fields, blake3(block))`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalPart {
    Init(PartInit),
    Data(Vec<u8>),
    Fin([u8; 64]),
}

impl core::ProposalPart<OpalContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init(_))
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

/// A validator as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineValidator {
    pub address: Address,
    pub public_key: PublicKey,
    pub voting_power: VotingPower,
}

impl core::Validator<OpalContext> for EngineValidator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> VotingPower {
        self.voting_power
    }
}

/// Validator set sorted by address; never empty, total power fits in u64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Arc<Vec<EngineValidator>>,
    total: VotingPower,
}

/// Why a validator list from the executor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    #[error("validator set is empty (no validator with power > 0)")]
    Empty,
    #[error("validator public key {0} is not a valid ed25519 point")]
    BadKey(String),
    #[error("validator {0} appears twice")]
    Duplicate(String),
    #[error("total voting power overflows")]
    Overflow,
}

impl ValidatorSet {
    /// Build from the executor's list: zero-power entries are dropped, the rest sorted by key.
    pub fn new(list: &[crate::Validator]) -> Result<Self, ValidatorSetError> {
        let mut validators = Vec::with_capacity(list.len());
        let mut total: u64 = 0;
        for v in list.iter().filter(|v| v.power > 0) {
            let public_key = PublicKey::from_bytes(v.public_key)
                .map_err(|_| ValidatorSetError::BadKey(hex::encode(v.public_key)))?;
            total = total
                .checked_add(v.power)
                .ok_or(ValidatorSetError::Overflow)?;
            validators.push(EngineValidator {
                address: Address(v.public_key),
                public_key,
                voting_power: v.power,
            });
        }
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        // The engine's threshold arithmetic multiplies the total by 3.
        if total.checked_mul(3).is_none() {
            return Err(ValidatorSetError::Overflow);
        }
        validators.sort_by_key(|v| v.address);
        for w in validators.windows(2) {
            if w[0].address == w[1].address {
                return Err(ValidatorSetError::Duplicate(hex::encode(w[0].address.0)));
            }
        }
        Ok(Self {
            validators: Arc::new(validators),
            total,
        })
    }

    pub fn validators(&self) -> &[EngineValidator] {
        &self.validators
    }

    /// Index of the proposer for `(height, round)`; see the module doc.
    pub fn proposer_index(&self, height: u64, round: u32) -> usize {
        let n = self.validators.len();
        let mut hasher = blake3::Hasher::new();
        hasher.update(opal_domains::label::PROPOSER.as_bytes());
        hasher.update(&height.to_le_bytes());
        let digest = hasher.finalize();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest.as_bytes()[..8]);
        let target = u64::from_le_bytes(seed) % self.total.max(1);
        let mut acc: u64 = 0;
        let mut start = 0;
        for (i, v) in self.validators.iter().enumerate() {
            acc = acc.saturating_add(v.voting_power);
            if acc > target {
                start = i;
                break;
            }
        }
        (start + (round as usize % n)) % n
    }
}

impl core::ValidatorSet<OpalContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> VotingPower {
        self.total
    }
    fn get_by_address(&self, address: &Address) -> Option<&EngineValidator> {
        self.validators
            .binary_search_by(|v| v.address.cmp(address))
            .ok()
            .and_then(|i| self.validators.get(i))
    }
    fn get_by_index(&self, index: usize) -> Option<&EngineValidator> {
        self.validators.get(index)
    }
}

/// The Malachite context of Opal.
#[derive(Clone, Debug, Default)]
pub struct OpalContext;

impl core::Context for OpalContext {
    type Address = Address;
    type Height = BlockHeight;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = EngineValidator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = Value;
    type Vote = Vote;
    type Extension = Vec<u8>;
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: BlockHeight,
        round: Round,
    ) -> &'a EngineValidator {
        let idx = validator_set.proposer_index(height.0, round.as_u32().unwrap_or(0));
        // `ValidatorSet` is never empty and `proposer_index` is `< len`.
        &validator_set.validators[idx]
    }

    fn new_proposal(
        &self,
        height: BlockHeight,
        round: Round,
        value: Value,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: BlockHeight,
        round: Round,
        value_id: NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }

    fn new_precommit(
        &self,
        height: BlockHeight,
        round: Round,
        value_id: NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }
}
