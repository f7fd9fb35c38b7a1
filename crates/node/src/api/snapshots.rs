//! State-sync snapshots (`statesync.rs`): which heights this node offers, and their chunks.

use super::ApiError;
use crate::app::Shared;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

type S = State<Arc<Shared>>;

pub async fn list(State(sh): S) -> Json<opal_api::SnapshotList> {
    Json(opal_api::SnapshotList {
        interval: sh.snapshot_interval,
        heights: crate::statesync::offered(&sh.store, sh.snapshot_interval),
    })
}

#[derive(Deserialize)]
pub struct ChunkQuery {
    #[serde(default)]
    after: String,
    limit: Option<usize>,
}

pub async fn chunk(
    State(sh): S,
    Path(height): Path<String>,
    Query(q): Query<ChunkQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let h: u64 = height
        .parse()
        .map_err(|_| ApiError::bad_request("malformed_height", format!("height {height:?}")))?;
    let after = if q.after.is_empty() {
        None
    } else {
        let b: [u8; 32] = hex::decode(&q.after)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                ApiError::bad_request("malformed_hash", "after: expected 64 hex digits")
            })?;
        Some(b)
    };
    let offered = crate::statesync::offered(&sh.store, sh.snapshot_interval);
    if !offered.contains(&h) {
        if h < sh.store.oldest_version() {
            return Err(ApiError::pruned(format!(
                "the state at height {h} was pruned; offered now: {offered:?}"
            )));
        }
        return Err(ApiError::not_found(format!(
            "no snapshot at height {h}; offered: {offered:?} (snapshot_interval {:?})",
            sh.snapshot_interval
        )));
    }
    let limit = q
        .limit
        .unwrap_or(crate::statesync::CHUNK_LEAVES)
        .clamp(1, opal_state::MAX_CHUNK_ENTRIES);
    let store = sh.store.clone();
    let chunk = tokio::task::spawn_blocking(move || {
        store.snapshot_at(h).and_then(|s| s.chunk(after, limit))
    })
    .await
    .map_err(ApiError::internal)??;
    #[cfg(feature = "fault-injection")]
    let chunk = corrupt(chunk);
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        chunk.to_bytes(),
    ))
}

/// `OPAL_FAULT_CORRUPT_CHUNKS=1` (test builds only): alter a value in every chunk served, as a
/// lying peer would.
#[cfg(feature = "fault-injection")]
fn corrupt(mut c: opal_state::Chunk) -> opal_state::Chunk {
    if std::env::var_os("OPAL_FAULT_CORRUPT_CHUNKS").is_some() {
        if let Some((_, v)) = c.entries.first_mut() {
            v.push(0xff);
        }
    }
    c
}
