//! The HTTP/JSON API. Every error is JSON: `{"error": {"code": "...", "message": "..."}}` with a
//! fitting HTTP status. Request bodies are size-limited before they are read.

mod error;
mod handlers;
mod infer;
pub mod openapi;
mod registry;

pub use error::ApiError;

use crate::app::Shared;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The API's routes over the node's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    // A hex-encoded transaction in a small JSON envelope is a bit over twice its byte size.
    let tx_body_limit = shared.params.max_tx_bytes as usize * 2 + 1024;
    Router::new()
        .route("/", get(handlers::index))
        .route("/api/status", get(handlers::status))
        .route(
            "/api/txs",
            post(handlers::submit_tx).layer(DefaultBodyLimit::max(tx_body_limit)),
        )
        .route("/api/txs/{hash}", get(handlers::tx_status))
        .route("/api/accounts/{address}", get(handlers::account))
        .route("/api/blocks/latest", get(handlers::latest_block))
        .route("/api/blocks/{height}", get(handlers::block))
        .route("/api/state/{key}", get(handlers::state_value))
        .route("/api/validators", get(handlers::validators))
        .route("/api/models", get(registry::models))
        .route("/api/models/{model}", get(registry::model))
        .route("/api/models/{model}/lineage", get(registry::lineage))
        .route("/api/datasets/{name}", get(registry::dataset))
        .route("/api/services", get(registry::services))
        .route("/api/escrows/{caller}/{node}", get(registry::escrow))
        .route("/api/receipts/{request_id}", get(registry::receipt))
        .route("/api/events", get(handlers::events))
        .route("/openapi.json", get(handlers::openapi))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(shared)
}

/// `POST /api/infer`: served when the node runs the inference role, otherwise a clear 404.
pub fn inference_router(svc: Option<Arc<crate::inference::InferenceService>>) -> Router {
    Router::new()
        .route("/api/infer", post(infer::infer))
        .layer(DefaultBodyLimit::max(infer::MAX_BODY))
        .with_state(svc)
}
