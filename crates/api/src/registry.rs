//! Replies of the registry and verification read routes: the model list, lineage, datasets,
//! services, verification cases and published zk keys.

use opal_ledger::components::registry::{DatasetInfo, Lineage, ServiceInfo};
use opal_ledger::components::verification::{Case, Verdict};
use opal_types::{Hash, ModelRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Model;

/// `GET /api/models`: every registered model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Models {
    pub height: u64,
    pub models: Vec<Model>,
}

/// `GET /api/models/{model}/lineage`: the datasets it was trained on, the models it was
/// fine-tuned from (with theirs), and the models fine-tuned from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LineageReply {
    #[serde(flatten)]
    #[schemars(with = "Value")]
    pub lineage: Lineage,
    pub height: u64,
}

/// `GET /api/datasets/{name}`: a dataset's registration and the models that name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetReply {
    #[serde(flatten)]
    #[schemars(with = "Value")]
    pub dataset: DatasetInfo,
    #[schemars(with = "Vec<String>")]
    pub used_by: Vec<ModelRef>,
    pub height: u64,
}

/// `GET /api/services[?model=M]`: the nodes' declared services (endpoint, offers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Services {
    pub height: u64,
    #[schemars(with = "Vec<Value>")]
    pub services: Vec<ServiceInfo>,
}

/// `GET /api/cases`: open verification cases (held results, audits, disputes) with what was
/// revealed for them, which watchers re-execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Cases {
    pub height: u64,
    #[schemars(with = "Vec<Value>")]
    pub cases: Vec<Case>,
}

/// `GET /api/cases/{request_id}`: one request's case while open, its verdict once closed, or
/// neither (never held, audited or disputed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseReply {
    #[schemars(with = "String")]
    pub request_id: Hash,
    pub height: u64,
    #[schemars(with = "Option<Value>")]
    pub case: Option<Case>,
    #[schemars(with = "Option<Value>")]
    pub verdict: Option<Verdict>,
}

/// `GET /api/zk/keys/{id}`: a published opal-zk verifying key, by its id (the model's weight
/// commitment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ZkKey {
    #[schemars(with = "String")]
    pub id: Hash,
    pub height: u64,
    pub bytes: u64,
    /// Hex of the key bytes; `opal_verify::zk::key_from_published` checks they hash to `id`.
    pub key: String,
}

/// A state value with its Merkle proof against a state root: `key` and `value` in hex (`value`
/// null: the proof shows the key is absent), `proof` the hex of an `opal_state::StateProof`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProvenValue {
    pub key: String,
    pub value: Option<String>,
    pub proof: String,
}

/// `GET /api/state/{key}[?height=H]`: a raw state value and its proof against `state_root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StateValue {
    pub height: u64,
    #[schemars(with = "String")]
    pub state_root: Hash,
    #[serde(flatten)]
    pub proven: ProvenValue,
}

/// `GET /api/receipts/{request_id}[?prove=true]`: whether a request was settled, and with
/// `prove=true` the settlement record's state key, value and proof against `state_root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReceiptStatus {
    #[schemars(with = "String")]
    pub request_id: Hash,
    pub height: u64,
    #[schemars(with = "String")]
    pub state_root: Hash,
    pub settled: bool,
    #[schemars(with = "Option<Value>")]
    pub record: Option<opal_types::receipt::Settled>,
    #[serde(flatten)]
    pub proven: Option<ProvenValue>,
}
