//! Transactions: a body (chain id, nonce, fee, action) signed by one ed25519 key.
//!
//! The signer signs `BLAKE3-derive("opal 2026 tx sign v1", borsh(body))`. The chain id inside the
//! body stops a transaction from being replayed on another chain; the nonce, which must equal the
//! signer's account nonce, stops it from being replayed on this one.

use crate::amount::Amount;
use crate::crypto::{Address, CryptoError, PublicKey, SecretKey, Signature};
use crate::encoding::{decode, encode, DecodeError};
use crate::hash::{Domain, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// No transaction can be larger than this, whatever the chain parameters say (decoding bound).
pub const MAX_TX_BYTES_HARD: usize = 1 << 20;

/// What a transaction does. New kinds are appended as new variants (the borsh tag is the index),
/// so old transactions keep their encoding.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Move `amount` from the signer's account to `to`.
    Transfer { to: Address, amount: Amount },
    /// Become a validator operated by the signer, with `consensus_key` signing votes, bonding
    /// `amount` as self-delegation. Joins the validator set at the next epoch.
    CreateValidator {
        consensus_key: PublicKey,
        name: String,
        amount: Amount,
        /// The VRF key of the consensus key's holder (`SecretKey::vrf_public_key`).
        vrf_key: crate::vrf::VrfPublicKey,
    },
    /// Delegate `amount` to the validator operated by `validator`.
    Delegate { validator: Address, amount: Amount },
    /// Start unbonding `amount` of the signer's delegation to `validator`; it is paid back after
    /// the unbonding time and stays slashable until then.
    Undelegate { validator: Address, amount: Amount },
    /// Bond stake for a non-validator role (inference node, data node).
    BondRole { role: Role, amount: Amount },
    /// Start unbonding stake from a role.
    UnbondRole { role: Role, amount: Amount },
    /// Bring the signer's jailed validator back once its jail time is over.
    Unjail,
    /// Report a validator that signed two conflicting votes.
    SubmitEvidence {
        evidence: crate::evidence::DoubleSignEvidence,
    },
    /// Register a dataset (the signer becomes its owner).
    RegisterDataset { spec: crate::registry::DatasetSpec },
    /// Register a model version (the signer becomes, or must be, the name's owner).
    RegisterModel { spec: crate::registry::ModelSpec },
    /// Hand a model name (all its versions) to another owner.
    TransferModel { name: String, new_owner: Address },
    /// Declare (or replace) the signer's inference service; needs the inference-node role bond.
    DeclareService { spec: crate::registry::ServiceSpec },
    /// Move `amount` from the signer's balance into its escrow with inference node `node`.
    FundEscrow { node: Address, amount: Amount },
    /// Start closing the signer's escrow with `node`: the node stops serving from it, and the
    /// rest can be withdrawn once the unlock delay has passed.
    CloseEscrow { node: Address },
    /// Take back what is left of a closed escrow after its unlock delay.
    WithdrawEscrow { node: Address },
    /// Settle a batch of receipts (signer = the node that served them).
    SettleReceipts {
        receipts: Vec<crate::receipt::Receipt>,
    },
    /// The node publishes the inputs and outputs (canonical tensor bytes) of a receipt whose
    /// payment is held (`replay` tier, disputable) or that was picked for audit, so anyone can
    /// re-execute it. Signer = the node that served it.
    RevealData {
        request_id: Hash,
        inputs: Vec<Vec<u8>>,
        outputs: Vec<Vec<u8>>,
    },
    /// Dispute a held result. With `model` (the registered canonical model file) it is a fraud
    /// proof, checked at once by re-execution; without, the challenger's bond is locked until
    /// someone posts `Resolve` (or the dispute lapses and the bond is lost).
    Challenge {
        request_id: Hash,
        /// Hash of the outputs the challenger says are right (`tensor_list_hash`).
        claimed_output_hash: Hash,
        model: Option<Vec<u8>>,
    },
    /// Settle an open audit or dispute by deterministic re-execution of the registered model
    /// (every validator runs it). Anyone may post it; the resolver is paid the audit fee.
    Resolve { request_id: Hash, model: Vec<u8> },
    /// Publish an opal-zk verifying key (`opal_zk::api::VerifyingKey` bytes) with the `.opalq`
    /// model file it was made from. The ledger checks the key (bounded decoding, weight-range
    /// proof) and that it is that file's key: the file hashes to the key's file hash, and
    /// committing to the file's weights gives exactly the key's registered structure and
    /// commitments (`opal_zk::api::check_key_for_file`). It stores the key (not the file) under
    /// its id, the BLAKE3 hash of the key's bytes, which is what a `zk`-tier model registers
    /// as its `weight_commitment`. Anyone may publish a key; publishing the same key twice is
    /// refused.
    PublishZkKey { key: Vec<u8>, model: Vec<u8> },
    /// Settle one `zk`-tier receipt with its proof (signer = the node that served it). Every
    /// validator verifies the proof against the model's published verifying key before the
    /// receipt may pay.
    SettleProved {
        /// Boxed to keep `Action` small (same encoding as the receipt itself).
        receipt: Box<crate::receipt::Receipt>,
        evidence: crate::receipt::ZkEvidence,
    },
    /// A member of an LLM case's committee (the validators drawn for an audit or a dispute of
    /// an `activations` receipt) says whether the revealed output passes the activation check
    /// it ran off chain. A two-thirds quorum of the committee decides the case.
    CommitteeVote { request_id: Hash, valid: bool },
    /// Submit a governance proposal with an initial deposit (at least the governance
    /// `min_initial_deposit_bps` share of `min_deposit`); voting opens once the deposits reach
    /// `min_deposit`.
    SubmitProposal {
        title: String,
        summary: String,
        content: crate::gov::ProposalContent,
        deposit: Amount,
    },
    /// Add to a proposal's deposit while it waits for `min_deposit`.
    DepositProposal {
        proposal: crate::gov::ProposalId,
        amount: Amount,
    },
    /// Vote on a proposal in its voting period, weighted by the signer's bonded stake. A second
    /// vote replaces the first.
    Vote {
        proposal: crate::gov::ProposalId,
        option: crate::gov::VoteOption,
    },
    /// Claim the signer's rewards: those of every delegation it holds (its validator's
    /// self-delegation included) and, as an operator, its validator's commission.
    WithdrawRewards,
    /// Set the commission the signer's validator takes from its rewards (basis points, at most
    /// the chain's `max_commission_bps`), from the next block.
    SetCommission { bps: u32 },
    /// Split a royalty stream the signer owns (a model name, all its versions, or a dataset)
    /// into `shares` transferable shares, all to the signer. From then on every payout to the
    /// stream goes to its holders pro rata. Once per stream; the count is fixed.
    SplitShares {
        stream: crate::shares::RoyaltyStream,
        shares: u64,
    },
    /// Give `shares` of the signer's shares in `stream` to `to`. What the shares earned before
    /// stays claimable by the signer.
    TransferShares {
        stream: crate::shares::RoyaltyStream,
        to: Address,
        shares: u64,
    },
    /// Take what the signer's shares in `stream` have earned.
    ClaimShares {
        stream: crate::shares::RoyaltyStream,
    },
    /// Place a limit order on the exchange: a buy escrows `price x shares` from the signer's
    /// balance, a sell locks the shares. It matches resting orders at once (price-time
    /// priority, at the resting order's price); the rest rests on the book.
    PlaceOrder { order: crate::market::OrderSpec },
    /// Cancel the signer's resting order (anyone's, once past its expiry): what is left of its
    /// escrow or locked shares goes back to its owner.
    CancelOrder { id: u64 },
}

/// Roles that stake without validating.
impl Action {
    /// The action's name in snake case (as its serde tag), for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Transfer { .. } => "transfer",
            Action::CreateValidator { .. } => "create_validator",
            Action::Delegate { .. } => "delegate",
            Action::Undelegate { .. } => "undelegate",
            Action::BondRole { .. } => "bond_role",
            Action::UnbondRole { .. } => "unbond_role",
            Action::Unjail => "unjail",
            Action::SubmitEvidence { .. } => "submit_evidence",
            Action::RegisterDataset { .. } => "register_dataset",
            Action::RegisterModel { .. } => "register_model",
            Action::TransferModel { .. } => "transfer_model",
            Action::DeclareService { .. } => "declare_service",
            Action::FundEscrow { .. } => "fund_escrow",
            Action::CloseEscrow { .. } => "close_escrow",
            Action::WithdrawEscrow { .. } => "withdraw_escrow",
            Action::SettleReceipts { .. } => "settle_receipts",
            Action::RevealData { .. } => "reveal_data",
            Action::Challenge { .. } => "challenge",
            Action::Resolve { .. } => "resolve",
            Action::PublishZkKey { .. } => "publish_zk_key",
            Action::SettleProved { .. } => "settle_proved",
            Action::CommitteeVote { .. } => "committee_vote",
            Action::SubmitProposal { .. } => "submit_proposal",
            Action::DepositProposal { .. } => "deposit_proposal",
            Action::Vote { .. } => "vote",
            Action::WithdrawRewards => "withdraw_rewards",
            Action::SetCommission { .. } => "set_commission",
            Action::SplitShares { .. } => "split_shares",
            Action::TransferShares { .. } => "transfer_shares",
            Action::ClaimShares { .. } => "claim_shares",
            Action::PlaceOrder { .. } => "place_order",
            Action::CancelOrder { .. } => "cancel_order",
        }
    }
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    InferenceNode,
    DataNode,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::InferenceNode => "inference_node",
            Role::DataNode => "data_node",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct TxBody {
    pub chain_id: String,
    /// Must equal the signer's account nonce; the account nonce then increases by one.
    pub nonce: u64,
    /// Paid by the signer to the fee pool; must be at least the chain's `min_fee`.
    pub fee: Amount,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Transaction {
    pub body: TxBody,
    pub signer: PublicKey,
    pub signature: Signature,
}

impl TxBody {
    /// The digest the signer signs.
    pub fn sign_digest(&self) -> Hash {
        Hash::of(Domain::TxSign, &encode(self))
    }

    pub fn sign(self, key: &SecretKey) -> Transaction {
        let signature = key.sign(&self.sign_digest().0);
        Transaction {
            body: self,
            signer: key.public_key(),
            signature,
        }
    }
}

impl Transaction {
    /// The transaction id: a hash of its canonical bytes (body, signer and signature).
    pub fn hash(&self) -> Hash {
        Hash::of(Domain::TxId, &encode(self))
    }

    pub fn sender(&self) -> Address {
        self.signer.address()
    }

    pub fn verify_signature(&self) -> Result<(), CryptoError> {
        self.signer
            .verify(&self.body.sign_digest().0, &self.signature)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decode untrusted bytes (bounded by `limit`, itself capped by [`MAX_TX_BYTES_HARD`]).
    pub fn from_bytes(bytes: &[u8], limit: usize) -> Result<Transaction, DecodeError> {
        decode("transaction", bytes, limit.min(MAX_TX_BYTES_HARD))
    }
}
