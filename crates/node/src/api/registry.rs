//! Read side of the registry and of inference settlement: models, datasets, lineage, services,
//! escrows, and settled receipts with a Merkle proof against a committed state root.

use super::error::ApiError;
use crate::app::Shared;
use axum::extract::{Path, Query, State};
use axum::Json;
use opal_api::registry::{
    CaseReply, Cases, DatasetReply, LineageReply, Models, ProvenValue, ReceiptStatus, Services,
    ZkKey,
};
use opal_ledger::components::{inference, registry, verification};
use opal_state::Overlay;
use opal_types::{Address, Hash, ModelRef};
use serde::Deserialize;
use std::sync::Arc;

type S = State<Arc<Shared>>;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn overlay(sh: &Shared) -> Result<(Overlay, u64), ApiError> {
    let snap = sh.snapshot().map_err(internal)?;
    let h = snap.version().unwrap_or(0);
    Ok((Overlay::new(snap), h))
}

fn address(s: &str) -> Result<Address, ApiError> {
    s.parse().map_err(|e: opal_types::crypto::CryptoError| {
        ApiError::bad_request("malformed_address", e.to_string())
    })
}

/// `name@version`, or a bare `name` for its newest version.
pub fn resolve_model(o: &Overlay, s: &str) -> Result<ModelRef, ApiError> {
    if s.contains('@') {
        return s
            .parse()
            .map_err(|e: String| ApiError::bad_request("malformed_model", e));
    }
    opal_types::registry::check_name(s).map_err(|e| ApiError::bad_request("malformed_model", e))?;
    let n = registry::name_info(o, s)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no model named {s}")))?;
    Ok(ModelRef::new(s, n.latest_version))
}

fn model_reply(o: &Overlay, info: registry::ModelInfo) -> Result<opal_api::Model, ApiError> {
    let model = info.spec.model_ref();
    Ok(opal_api::Model {
        owner: registry::owner_of(o, &model).map_err(internal)?,
        model,
        spec: info.spec,
        registered_by: info.registered_by,
        registered_height: info.registered_height,
        calls: info.calls,
        revenue: info.revenue,
    })
}

pub async fn models(State(sh): S) -> Result<Json<Models>, ApiError> {
    let (o, h) = overlay(&sh)?;
    let list = registry::models(&o).map_err(internal)?;
    let models = list
        .into_iter()
        .map(|m| model_reply(&o, m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Models { height: h, models }))
}

pub async fn model(
    State(sh): S,
    Path(r): Path<String>,
) -> Result<Json<opal_api::ModelDetail>, ApiError> {
    let (o, h) = overlay(&sh)?;
    let m = resolve_model(&o, &r)?;
    let info = registry::model(&o, &m)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no model {m}")))?;
    let services = registry::services(&o)
        .map_err(internal)?
        .into_iter()
        .filter_map(|s| {
            s.spec.offer(&m).map(|off| opal_api::ServingOffer {
                node: s.node,
                endpoint: s.spec.endpoint.clone(),
                tiers: off.tiers.clone(),
                fee: off.fee,
            })
        })
        .collect();
    Ok(Json(opal_api::ModelDetail {
        model: model_reply(&o, info)?,
        height: h,
        services,
    }))
}

pub async fn lineage(State(sh): S, Path(r): Path<String>) -> Result<Json<LineageReply>, ApiError> {
    let (o, h) = overlay(&sh)?;
    let m = resolve_model(&o, &r)?;
    let lineage = registry::lineage(&o, &m, 64)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no model {m}")))?;
    Ok(Json(LineageReply { lineage, height: h }))
}

pub async fn dataset(
    State(sh): S,
    Path(name): Path<String>,
) -> Result<Json<DatasetReply>, ApiError> {
    let (o, h) = overlay(&sh)?;
    opal_types::registry::check_name(&name)
        .map_err(|e| ApiError::bad_request("malformed_name", e))?;
    let dataset = registry::dataset(&o, &name)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no dataset named {name}")))?;
    let used_by = registry::dataset_users(&o, &name).map_err(internal)?;
    Ok(Json(DatasetReply {
        dataset,
        used_by,
        height: h,
    }))
}

#[derive(Deserialize)]
pub struct ServicesQuery {
    model: Option<String>,
}

pub async fn services(
    State(sh): S,
    Query(q): Query<ServicesQuery>,
) -> Result<Json<Services>, ApiError> {
    let (o, h) = overlay(&sh)?;
    let filter = match &q.model {
        Some(m) => Some(resolve_model(&o, m)?),
        None => None,
    };
    let services = registry::services(&o)
        .map_err(internal)?
        .into_iter()
        .filter(|s| filter.as_ref().is_none_or(|m| s.spec.offer(m).is_some()))
        .collect();
    Ok(Json(Services {
        height: h,
        services,
    }))
}

pub async fn escrow(
    State(sh): S,
    Path((caller, node)): Path<(String, String)>,
) -> Result<Json<opal_api::Escrow>, ApiError> {
    let (caller, node) = (address(&caller)?, address(&node)?);
    let (o, h) = overlay(&sh)?;
    let e = inference::escrow(&o, &caller, &node).map_err(internal)?;
    Ok(Json(opal_api::Escrow {
        height: h,
        caller,
        node,
        balance: e.balance,
        unlock_ms: e.unlock_ms,
    }))
}

#[derive(Deserialize)]
pub struct ReceiptQuery {
    #[serde(default)]
    prove: bool,
}

/// Whether a request was settled; with `?prove=true`, the state key, value and a Merkle proof
/// against the state root at the returned height (present or absent).
pub async fn receipt(
    State(sh): S,
    Path(id): Path<String>,
    Query(q): Query<ReceiptQuery>,
) -> Result<Json<ReceiptStatus>, ApiError> {
    let id = Hash::from_hex(&id).map_err(|e| ApiError::bad_request("malformed_hash", e))?;
    let snap = sh.snapshot().map_err(internal)?;
    let h = snap.version().unwrap_or(0);
    let o = Overlay::new(snap.clone());
    let record = inference::settled(&o, &id).map_err(internal)?;
    let proven = if q.prove {
        let key = opal_ledger::keys::inference::settled(&id);
        let (value, proof) = snap.get_with_proof(&key).map_err(internal)?;
        Some(ProvenValue {
            key: hex::encode(&key),
            value: value.map(hex::encode),
            proof: hex::encode(proof.to_bytes()),
        })
    } else {
        None
    };
    Ok(Json(ReceiptStatus {
        request_id: id,
        height: h,
        state_root: Hash(snap.root()),
        settled: record.is_some(),
        record,
        proven,
    }))
}

#[derive(Deserialize)]
pub struct CasesQuery {
    /// Only cases about this node's receipts.
    node: Option<String>,
    /// Only cases about this model (NAME@VERSION).
    model: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// Open verification cases (held results, audits, disputes) with their revealed data: what
/// watchers and auditors re-execute.
pub async fn cases(State(sh): S, Query(q): Query<CasesQuery>) -> Result<Json<Cases>, ApiError> {
    let node = q
        .node
        .as_deref()
        .map(|a| a.parse::<Address>())
        .transpose()
        .map_err(|e| ApiError::bad_request("malformed_address", e.to_string()))?;
    let model = q
        .model
        .as_deref()
        .map(|m| m.parse::<ModelRef>())
        .transpose()
        .map_err(|e| ApiError::bad_request("malformed_model", e))?;
    let limit = q.limit.unwrap_or(100).min(1000);
    let snap = sh.snapshot().map_err(internal)?;
    let h = snap.version().unwrap_or(0);
    let o = Overlay::new(snap);
    let cases: Vec<_> = verification::open_cases(&o, 100_000)
        .map_err(internal)?
        .into_iter()
        .filter(|c| node.is_none_or(|n| c.node == n))
        .filter(|c| model.as_ref().is_none_or(|m| &c.model == m))
        .take(limit)
        .collect();
    Ok(Json(Cases { height: h, cases }))
}

/// One request's verification case: open (`case`) or closed (`verdict`), or neither.
pub async fn case(State(sh): S, Path(id): Path<String>) -> Result<Json<CaseReply>, ApiError> {
    let id = Hash::from_hex(&id).map_err(|e| ApiError::bad_request("malformed_hash", e))?;
    let snap = sh.snapshot().map_err(internal)?;
    let h = snap.version().unwrap_or(0);
    let o = Overlay::new(snap);
    let case = verification::case(&o, &id).map_err(internal)?;
    let verdict = verification::verdict(&o, &id).map_err(internal)?;
    Ok(Json(CaseReply {
        request_id: id,
        height: h,
        case,
        verdict,
    }))
}

/// `GET /api/zk/keys/{id}`: a published opal-zk verifying key (`key`, hex), by its id (a
/// `zk`-tier model's weight commitment). `opal verify` checks zk receipts with it.
pub async fn zk_key(State(sh): S, Path(id): Path<String>) -> Result<Json<ZkKey>, ApiError> {
    let id = Hash::from_hex(&id).map_err(|e| ApiError::bad_request("malformed_hash", e))?;
    let (o, h) = overlay(&sh)?;
    let key = opal_ledger::components::zk::key_bytes(&o, &id)
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "no_zk_key",
                format!("no verifying key {id} is published"),
            )
        })?;
    Ok(Json(ZkKey {
        id,
        height: h,
        bytes: key.len() as u64,
        key: hex::encode(key),
    }))
}
