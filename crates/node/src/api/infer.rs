//! `POST /api/infer`: run a registered model for a signed request; reply with the outputs and
//! the signed receipt. Body: `{"request": "<hex of the SignedRequest's canonical bytes>",
//! "inputs": [<tensor>, ...]}`.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use opal_api::{InferBody, Inferred, ProofStatus};
use opal_infer::Tensor;
use opal_types::receipt::SignedRequest;
use opal_types::Hash;
use opal_worker::InferenceService;
use std::sync::Arc;

/// Largest request body (inputs included).
pub const MAX_BODY: usize = 8 << 20;
/// Largest signed request, in canonical bytes.
const MAX_REQUEST_BYTES: usize = 4096;

pub async fn infer(
    State(svc): State<Option<Arc<InferenceService>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Inferred>, ApiError> {
    let Some(svc) = svc else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "inference_disabled",
            "this node does not serve inference (start it with `opal node serve --key KEY`)",
        ));
    };
    let body = body.map_err(ApiError::from)?;
    let b: InferBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("expected {{\"request\": \"<hex>\", \"inputs\": [tensor, ...]}}: {e}"),
        )
    })?;
    let raw = hex::decode(b.request.trim()).map_err(|e| {
        ApiError::bad_request("malformed_request", format!("request is not hex: {e}"))
    })?;
    let sr: SignedRequest = opal_types::decode("inference request", &raw, MAX_REQUEST_BYTES)
        .map_err(|e| ApiError::bad_request("malformed_request", e.to_string()))?;
    let inputs = b
        .inputs
        .iter()
        .map(|v| Tensor::from_json(v.to_string().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let served = tokio::task::spawn_blocking(move || svc.serve(sr, inputs))
        .await
        .map_err(|e| ApiError::internal(format!("inference task failed: {e}")))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.code(),
                e.to_string(),
            )
        })?;
    let outputs = served
        .outputs
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(Inferred {
        outputs,
        request_id: served.request_id,
        receipt_id: served.receipt_id,
        price: served.price,
        height: served.height,
        receipt: served.receipt,
        compute_ms: served.compute_ms,
    }))
}

/// `GET /api/proofs/{request_id}`: where the zk proof of a served `zk`-tier request stands
/// (`queued`, `proving` with `progress` in [0, 1], `done`, `failed` with `error`). Once done,
/// `evidence` is the hex of `borsh(ZkEvidence)`, the bytes of the receipt's `zk` attachment
/// (version `evidence_version`).
pub async fn proof(
    State(svc): State<Option<Arc<InferenceService>>>,
    Path(id): Path<String>,
) -> Result<Json<ProofStatus>, ApiError> {
    let Some(svc) = svc else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "inference_disabled",
            "this node does not serve inference (start it with `opal node serve --key KEY`)",
        ));
    };
    let id = Hash::from_hex(id.trim())
        .map_err(|e| ApiError::bad_request("malformed_id", format!("request id: {e}")))?;
    let (state, evidence) = tokio::task::spawn_blocking(move || svc.proof_status(&id))
        .await
        .map_err(|e| ApiError::internal(format!("proof lookup failed: {e}")))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_proof",
                format!("this node has no zk proof for request {id} (not a zk-tier request it served, or forgotten)"),
            )
        })?;
    let done = evidence.is_some();
    Ok(Json(ProofStatus {
        state,
        request_id: id,
        evidence_version: done.then_some(opal_types::receipt::ZK_EVIDENCE_VERSION),
        evidence: evidence.map(|ev| hex::encode(opal_types::encode(&ev))),
    }))
}
