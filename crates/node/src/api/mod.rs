//! The HTTP/JSON API. Every error is JSON: `{"error": {"code": "...", "message": "..."}}` with a
//! fitting HTTP status. Request bodies are size-limited before they are read.

mod batch;
mod error;
mod gov;
mod handlers;
mod infer;
mod openai;
pub mod openapi;
mod registry;
mod shares;
mod snapshots;

pub use error::ApiError;
pub(crate) use handlers::admit_bytes;

use crate::app::Shared;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The API's routes over the node's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    // A hex-encoded transaction in a small JSON envelope is a bit over twice its byte size.
    // The hard bound, not the parameters (governance changes those while the node runs);
    // admission checks the size against the parameters in force.
    let tx_body_limit = opal_types::tx::MAX_TX_BYTES_HARD * 2 + 1024;
    Router::new()
        .route("/", get(handlers::index))
        .route("/api/status", get(handlers::status))
        .route(
            "/api/txs",
            post(handlers::submit_tx).layer(DefaultBodyLimit::max(tx_body_limit)),
        )
        .route(
            "/api/txs/batch",
            post(batch::submit_batch).layer(DefaultBodyLimit::max(crate::gossip::MAX_GOSSIP_BYTES)),
        )
        .route(
            "/api/gossip/txs",
            post(handlers::gossip_txs)
                .layer(DefaultBodyLimit::max(crate::gossip::MAX_GOSSIP_BYTES)),
        )
        .route("/api/txs/{hash}", get(handlers::tx_status))
        .route("/api/accounts/{address}", get(handlers::account))
        .route("/api/blocks/latest", get(handlers::latest_block))
        .route("/api/blocks/{height}", get(handlers::block))
        .route("/api/light/{height}", get(handlers::light_block))
        .route("/api/state/{key}", get(handlers::state_value))
        .route("/api/snapshots", get(snapshots::list))
        .route("/api/snapshots/{height}/chunk", get(snapshots::chunk))
        .route("/api/validators", get(handlers::validators))
        .route("/api/models", get(registry::models))
        .route("/api/models/{model}", get(registry::model))
        .route("/api/models/{model}/lineage", get(registry::lineage))
        .route("/api/datasets/{name}", get(registry::dataset))
        .route("/api/services", get(registry::services))
        .route("/api/escrows/{caller}/{node}", get(registry::escrow))
        .route("/api/receipts/{request_id}", get(registry::receipt))
        .route("/api/cases", get(registry::cases))
        .route("/api/cases/{request_id}", get(registry::case))
        .route("/api/zk/keys/{id}", get(registry::zk_key))
        .route("/api/params", get(gov::params))
        .route("/api/gov", get(gov::overview))
        .route("/api/gov/proposals", get(gov::proposals))
        .route("/api/gov/proposals/{id}", get(gov::proposal))
        .route("/api/gov/proposals/{id}/votes", get(gov::votes))
        .route("/api/rewards/{address}", get(gov::rewards))
        .route("/api/shares", get(shares::streams))
        .route("/api/shares/{stream}", get(shares::stream))
        .route("/api/shares/{stream}/{address}", get(shares::holding))
        .route("/api/market/orders/{id}", get(shares::order))
        .route("/api/market/{stream}/book", get(shares::book))
        .route("/api/market/{stream}/trades", get(shares::trades))
        .route("/api/events", get(handlers::events))
        .route("/openapi.json", get(handlers::openapi))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(shared)
}

/// `POST /api/infer`: served when the node runs the inference role, otherwise a clear 404.
pub fn inference_router(svc: Option<Arc<opal_worker::InferenceService>>) -> Router {
    Router::new()
        .route("/api/infer", post(infer::infer))
        .route("/api/proofs/{request_id}", get(infer::proof))
        .layer(DefaultBodyLimit::max(infer::MAX_BODY))
        .with_state(svc)
}

/// The OpenAI-compatible API (`/v1/models`, `/v1/chat/completions`, `/v1/completions`): served
/// when the node runs the inference role, otherwise OpenAI-shaped 404s.
pub fn openai_router(llm: Option<Arc<opal_worker::llm::LlmService>>) -> Router {
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{model}", get(openai::model))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .layer(DefaultBodyLimit::max(openai::MAX_BODY))
        .with_state(llm)
}
