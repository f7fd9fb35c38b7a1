//! The node API's wire types: what `opal-node` serves and `opal-client` reads back.
//!
//! Design: one serde type per request and reply, shared by both ends, so the node and its
//! clients cannot drift apart on a field name. The JSON is the contract (docs/api.md); these
//! types only name it. Replies are additive: a client ignores fields it does not know, and a new
//! optional field is absent (not `null`) where an older node would not send it.
//!
//! Each type also derives a JSON Schema (`schemars`); [`schemas`] collects them, and the node's
//! OpenAPI document (`/openapi.json`) takes its component schemas from there, so the document
//! describes what the code sends.
//!
//! Typed: errors, the status, accounts, transactions (submit and status), inference
//! (`POST /api/infer`'s body and reply), zk proofs (`GET /api/proofs/{id}`), models, lineage,
//! datasets, services, verification cases and zk keys ([`registry`]), escrows, validators,
//! blocks, governance ([`gov`]: proposals, votes, `/api/params`, `/api/gov`), and the OpenAI
//! routes' replies ([`openai`]: models, completions and chunks, errors, in OpenAI's shape).
//! State values and settlement records with their proofs (`/api/state/{key}`,
//! `/api/receipts/{id}`) are [`registry::StateValue`] and [`registry::ReceiptStatus`]. Still
//! built with `serde_json::json!`: the light block (`/api/light/{height}`, whose bytes
//! `opal_verify::light::LightBlock` names) and the event stream's lines.

// No panics on the deterministic path: a fallible step returns an error (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::disallowed_types)]

pub mod gov;
pub mod openai;
pub mod registry;
pub mod shares;

use opal_ledger::params::InferenceParams;
use opal_ledger::{Event, Params};
use opal_types::registry::ModelSpec;
use opal_types::{Address, Amount, Hash, ModelRef, PublicKey, Tier};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every error reply: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable (`bad_nonce`, `too_large`, `not_found`, ...).
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
}

/// `GET /api/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    pub chain_id: String,
    pub height: u64,
    #[schemars(with = "String")]
    pub state_root: Hash,
    /// `None` before the first block.
    #[schemars(with = "Option<String>")]
    pub block_hash: Option<Hash>,
    pub block_time_ms: Option<u64>,
    /// The oldest height whose state (and block) this node still serves: 0 on an archive node;
    /// on a pruning node (`retain_heights`) older heights answer 410 `pruned`.
    #[serde(default)]
    pub earliest_height: u64,
    /// This node's consensus key.
    #[schemars(with = "String")]
    pub validator: PublicKey,
    pub mempool_size: usize,
    #[schemars(with = "String")]
    pub total_supply: Amount,
    #[schemars(with = "Value")]
    pub inference_params: InferenceParams,
    /// Where the supply that is not in accounts sits (the supply invariant, from outside).
    pub pools: Pools,
    #[schemars(with = "Value")]
    pub params: Params,
}

/// `GET /api/snapshots`: the heights whose state this node serves as state-sync chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotList {
    /// `snapshot_interval` in this node's config; `None` when it offers none.
    pub interval: Option<u64>,
    /// Offered heights, newest first.
    pub heights: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Pools {
    #[schemars(with = "String")]
    pub fees: Amount,
    #[schemars(with = "String")]
    pub bonded: Amount,
    #[schemars(with = "String")]
    pub unbonding: Amount,
    #[schemars(with = "String")]
    pub treasury: Amount,
    #[schemars(with = "String")]
    pub escrow: Amount,
    #[schemars(with = "String")]
    pub held: Amount,
    /// Governance deposits of open proposals.
    #[serde(default)]
    #[schemars(with = "String")]
    pub deposits: Amount,
    /// Minted rewards not yet paid out (commission, delegators' rewards, the performance pool).
    #[serde(default)]
    #[schemars(with = "String")]
    pub rewards: Amount,
    /// Royalties held for share holders (unclaimed, and remainders below a unit a share).
    #[serde(default)]
    #[schemars(with = "String")]
    pub shares: Amount,
    /// The native tokens resting buy orders escrow on the exchange.
    #[serde(default)]
    #[schemars(with = "String")]
    pub market: Amount,
}

/// `GET /api/accounts/{address}[?prove=true][&height=H]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Account {
    #[schemars(with = "String")]
    pub address: Address,
    #[schemars(with = "String")]
    pub balance: Amount,
    /// The nonce of the last committed transaction's successor.
    pub nonce: u64,
    pub height: u64,
    #[schemars(with = "String")]
    pub state_root: Hash,
    /// The nonce a new transaction should carry, counting this account's pending ones (only at
    /// the latest height).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_nonce: Option<u64>,
    /// With `prove=true`: the state key, the value (hex) and the JMT proof (hex) against
    /// `state_root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

impl Account {
    /// The nonce the next transaction from this account should carry.
    pub fn usable_nonce(&self) -> u64 {
        self.next_nonce.unwrap_or(self.nonce)
    }
}

/// `POST /api/txs` as JSON (the raw bytes may also be posted as `application/octet-stream`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubmitTx {
    /// Hex of the transaction's canonical bytes.
    pub tx: String,
}

/// `POST /api/txs` accepted (202), and `GET /api/txs/{hash}` of every state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    /// In this node's mempool.
    Pending {
        #[schemars(with = "String")]
        hash: Hash,
    },
    /// In a committed block: applied (`ok`) or rejected with `error` and its `code`.
    Committed {
        #[schemars(with = "String")]
        hash: Hash,
        height: u64,
        index: u32,
        ok: bool,
        error: Option<String>,
        code: Option<String>,
        #[schemars(with = "Vec<Value>")]
        events: Vec<Event>,
    },
    /// Removed by the proposer because it no longer applied (for example a stale nonce).
    Dropped {
        #[schemars(with = "String")]
        hash: Hash,
        error: String,
        /// The error's stable code (absent from nodes older than governance).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// Not known to this node (404).
    Unknown {
        #[schemars(with = "String")]
        hash: Hash,
    },
}

impl TxStatus {
    pub fn hash(&self) -> Hash {
        match self {
            TxStatus::Pending { hash }
            | TxStatus::Committed { hash, .. }
            | TxStatus::Dropped { hash, .. }
            | TxStatus::Unknown { hash } => *hash,
        }
    }

    /// Whether the transaction reached a final state (committed or dropped).
    pub fn is_final(&self) -> bool {
        matches!(self, TxStatus::Committed { .. } | TxStatus::Dropped { .. })
    }

    /// Why it was rejected in its block or dropped, if it was.
    pub fn error(&self) -> Option<&str> {
        match self {
            TxStatus::Committed { error, .. } => error.as_deref(),
            TxStatus::Dropped { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether it was committed and applied.
    pub fn applied(&self) -> bool {
        matches!(self, TxStatus::Committed { ok: true, .. })
    }
}

/// `POST /api/infer`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InferBody {
    /// Hex of the `SignedRequest`'s canonical (borsh) bytes.
    pub request: String,
    /// The input tensors, each `{"dtype", "shape", "data"}` (`opal_infer::Tensor`'s JSON).
    pub inputs: Vec<Value>,
}

/// `POST /api/infer`'s reply: the outputs and the signed receipt that commits to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Inferred {
    /// The output tensors, each `{"dtype", "shape", "data"}`.
    pub outputs: Vec<Value>,
    #[schemars(with = "String")]
    pub request_id: Hash,
    #[schemars(with = "String")]
    pub receipt_id: Hash,
    #[schemars(with = "String")]
    pub price: Amount,
    /// The height of the state the request was admitted against (the receipt's height).
    pub height: u64,
    /// Hex of the `ReceiptEnvelope`'s canonical bytes.
    pub receipt: String,
    /// The model's run time on the node (the node's own report).
    pub compute_ms: f64,
}

/// Where a served `zk` request's proof stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ProofState {
    Queued,
    /// `progress` in [0, 1].
    Proving {
        progress: f32,
    },
    Done {
        proof_bytes: usize,
        prove_ms: f64,
    },
    Failed {
        error: String,
    },
}

/// `GET /api/proofs/{request_id}`'s reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProofStatus {
    #[serde(flatten)]
    pub state: ProofState,
    #[schemars(with = "String")]
    pub request_id: Hash,
    /// Once done: the format version of `evidence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_version: Option<u16>,
    /// Once done: hex of `borsh(ZkEvidence)`, the receipt's `zk` attachment bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// A registered model version, as `GET /api/models` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Model {
    #[schemars(with = "String")]
    pub model: ModelRef,
    /// The name's owner now (who is paid the owner's share).
    #[schemars(with = "Option<String>")]
    pub owner: Option<Address>,
    /// The registration: content hash, size, format, schemas, price, licence, tiers, lineage.
    #[schemars(with = "Value")]
    pub spec: ModelSpec,
    #[schemars(with = "String")]
    pub registered_by: Address,
    pub registered_height: u64,
    /// Settled inferences of this version, and what callers paid for them in all.
    pub calls: u64,
    #[schemars(with = "String")]
    pub revenue: Amount,
}

/// A node's offer of a model, as `GET /api/models/{model}` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServingOffer {
    #[schemars(with = "String")]
    pub node: Address,
    /// The endpoint the node declared (its API's base URL).
    pub endpoint: String,
    #[schemars(with = "Vec<String>")]
    pub tiers: Vec<Tier>,
    /// The node's fee, on top of the model's price and licence fee.
    #[schemars(with = "String")]
    pub fee: Amount,
}

/// `GET /api/models/{model}`: one version and the nodes serving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub model: Model,
    pub height: u64,
    pub services: Vec<ServingOffer>,
}

/// `GET /api/blocks/{height}` and `/api/blocks/latest`: a committed block with its results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockReply {
    pub height: u64,
    #[schemars(with = "String")]
    pub hash: Hash,
    /// The state root after this block.
    #[schemars(with = "String")]
    pub state_root: Hash,
    #[schemars(with = "Value")]
    pub header: opal_types::BlockHeader,
    pub txs: Vec<BlockTx>,
    /// Events of begin-block and end-block (emission, audits drawn, proposals decided, ...).
    #[schemars(with = "Vec<Value>")]
    pub events: Vec<Event>,
    /// The commit certificate of this block (hex borsh).
    pub certificate: String,
    /// Who signed the previous block, as this block carries it (absent at height 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit_round: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub last_commit_signers: Vec<PublicKey>,
}

/// One transaction of a [`BlockReply`] and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockTx {
    #[schemars(with = "String")]
    pub hash: Hash,
    #[schemars(with = "Value")]
    pub tx: opal_types::Transaction,
    pub ok: bool,
    pub error: Option<String>,
    pub code: Option<String>,
    #[schemars(with = "Vec<Value>")]
    pub events: Vec<Event>,
}

/// `GET /api/validators`: every validator, the active set with voting power, and the staking
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Validators {
    pub height: u64,
    pub validators: Vec<ValidatorEntry>,
    /// The set that votes on the next height.
    #[schemars(with = "Vec<Value>")]
    pub active_set: Vec<opal_types::validator::ActiveValidator>,
    pub total_power: u64,
    #[schemars(with = "Value")]
    pub params: opal_ledger::StakingParams,
}

/// One validator in `GET /api/validators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValidatorEntry {
    #[schemars(with = "String")]
    pub operator: Address,
    pub name: String,
    #[schemars(with = "String")]
    pub consensus_key: PublicKey,
    #[schemars(with = "String")]
    pub tokens: Amount,
    pub jailed: bool,
    pub jailed_until_ms: u64,
    /// In the active set (then `power` is its voting power).
    pub active: bool,
    pub power: Option<u64>,
    /// Its commission on its rewards, in basis points.
    #[serde(default)]
    pub commission_bps: u32,
    /// Commit signatures missed in its current liveness window (of
    /// `params.signed_blocks_window`), and blocks recorded in it.
    #[serde(default)]
    pub missed_blocks: u64,
    #[serde(default)]
    pub window_blocks: u64,
}

/// `GET /api/escrows/{caller}/{node}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Escrow {
    pub height: u64,
    #[schemars(with = "String")]
    pub caller: Address,
    #[schemars(with = "String")]
    pub node: Address,
    #[schemars(with = "String")]
    pub balance: Amount,
    /// Set once the caller closed it: block time from which the rest can be withdrawn.
    pub unlock_ms: Option<u64>,
}

/// `POST /api/gossip/txs`: what became of a peer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GossipReceived {
    /// New here (and gossiped on).
    pub admitted: u64,
    /// Already in this mempool.
    pub known: u64,
    /// Refused by admission (bad signature, stale nonce, ...).
    pub refused: u64,
}

/// `POST /api/txs/batch`: what became of each transaction of a client's batch, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BatchReply {
    pub admitted: u64,
    pub refused: u64,
    pub results: Vec<BatchItem>,
}

/// One transaction of a batch: its hash if admitted (pending), else the error `POST /api/txs`
/// would have given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BatchItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub hash: Option<Hash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// The JSON Schemas of the API types, by type name, with references between them as
/// `#/components/schemas/<name>` (where an OpenAPI document keeps them).
pub fn schemas() -> serde_json::Map<String, Value> {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    g.subschema_for::<ErrorBody>();
    g.subschema_for::<Status>();
    g.subschema_for::<SnapshotList>();
    g.subschema_for::<BatchReply>();
    g.subschema_for::<Account>();
    g.subschema_for::<SubmitTx>();
    g.subschema_for::<TxStatus>();
    g.subschema_for::<GossipReceived>();
    g.subschema_for::<InferBody>();
    g.subschema_for::<Inferred>();
    g.subschema_for::<ProofStatus>();
    g.subschema_for::<Model>();
    g.subschema_for::<ModelDetail>();
    g.subschema_for::<registry::Models>();
    g.subschema_for::<registry::LineageReply>();
    g.subschema_for::<registry::DatasetReply>();
    g.subschema_for::<registry::Services>();
    g.subschema_for::<registry::Cases>();
    g.subschema_for::<registry::CaseReply>();
    g.subschema_for::<registry::ZkKey>();
    g.subschema_for::<registry::StateValue>();
    g.subschema_for::<registry::ReceiptStatus>();
    g.subschema_for::<Escrow>();
    g.subschema_for::<Validators>();
    g.subschema_for::<BlockReply>();
    g.subschema_for::<gov::Proposal>();
    g.subschema_for::<gov::Proposals>();
    g.subschema_for::<gov::Votes>();
    g.subschema_for::<gov::ParamsInForce>();
    g.subschema_for::<gov::GovOverview>();
    g.subschema_for::<gov::Rewards>();
    g.subschema_for::<shares::Streams>();
    g.subschema_for::<shares::StreamReply>();
    g.subschema_for::<shares::HoldingReply>();
    g.subschema_for::<shares::Book>();
    g.subschema_for::<shares::Trades>();
    g.subschema_for::<shares::OrderStatus>();
    g.subschema_for::<openai::ModelList>();
    g.subschema_for::<openai::ModelObject>();
    g.subschema_for::<openai::Completion>();
    g.subschema_for::<openai::ErrorReply>();
    g.take_definitions(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_status_json_is_the_documented_shape() {
        let h = Hash([7; 32]);
        let v = serde_json::to_value(TxStatus::Pending { hash: h }).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status": "pending", "hash": h.to_hex()})
        );
        let v = serde_json::to_value(TxStatus::Committed {
            hash: h,
            height: 3,
            index: 0,
            ok: false,
            error: Some("wrong nonce".into()),
            code: Some("bad_nonce".into()),
            events: vec![],
        })
        .unwrap();
        assert_eq!(v["status"], "committed");
        assert_eq!(v["code"], "bad_nonce");
        let back: TxStatus = serde_json::from_value(v).unwrap();
        assert!(back.is_final() && !back.applied());
    }

    #[test]
    fn a_committed_status_with_events_reads_back() {
        // Events carry a u128 (delegation shares) inside an internally tagged enum, itself
        // inside the tagged status: the client must still read it.
        let s = TxStatus::Committed {
            hash: Hash([1; 32]),
            height: 4,
            index: 1,
            ok: true,
            error: None,
            code: None,
            events: vec![Event::Delegated {
                delegator: Address([3; 20]),
                validator: Address([4; 20]),
                amount: Amount(7),
                shares: 7_000_000,
            }],
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<TxStatus>(&text).unwrap(), s);
    }

    #[test]
    fn a_receipt_status_carries_its_proof_fields_only_when_proven() {
        let mut r = registry::ReceiptStatus {
            request_id: Hash([1; 32]),
            height: 3,
            state_root: Hash([2; 32]),
            settled: false,
            record: None,
            proven: None,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("proof").is_none() && v.get("key").is_none(), "{v}");
        assert_eq!(
            serde_json::from_value::<registry::ReceiptStatus>(v).unwrap(),
            r
        );
        r.proven = Some(registry::ProvenValue {
            key: "00".into(),
            value: None,
            proof: "01".into(),
        });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["key"], "00");
        assert!(v["value"].is_null() && v.get("value").is_some());
        assert_eq!(
            serde_json::from_value::<registry::ReceiptStatus>(v).unwrap(),
            r
        );
    }

    #[test]
    fn account_without_proof_has_no_proof_fields() {
        let a = Account {
            address: "opal0000000000000000000000000000000000000000"
                .parse()
                .unwrap(),
            balance: Amount(5),
            nonce: 2,
            height: 9,
            state_root: Hash::ZERO,
            next_nonce: Some(4),
            key: None,
            value: None,
            proof: None,
        };
        let v = serde_json::to_value(&a).unwrap();
        assert!(v.get("proof").is_none() && v.get("key").is_none());
        assert_eq!(a.usable_nonce(), 4);
        assert_eq!(serde_json::from_value::<Account>(v).unwrap(), a);
    }
}
