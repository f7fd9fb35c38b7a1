//! The HTTP API of an artifact store, mounted by the node under `/api/artifacts`.
//!
//! Every reply body is JSON except a download; every error is
//! `{"error": {"code": "...", "message": "..."}}` with the status of
//! [`ArtifactError::status`]. The protocol is specified in `docs/artifacts.md`.

use crate::error::ArtifactError;
use crate::hash::ArtifactHash;
use crate::store::{ArtifactInfo, ArtifactStatus, ArtifactStore};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The response header carrying the served artifact's hash (informational: a fetcher must hash
/// the bytes itself).
pub const HASH_HEADER: &str = "x-opal-blake3";

/// The reply of `PUT /api/artifacts/{hash}`, the chunk route and the status route.
///
/// Serialized flat: `{"hash": "…", "state": "partial", "received": 0, "size": 10,
/// "max_chunk_bytes": 4194304}` (`received` and `size` as the state has them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// The artifact.
    pub hash: ArtifactHash,
    /// Where it stands.
    #[serde(flatten)]
    pub status: ArtifactStatus,
    /// The largest chunk body this server accepts; clients size their chunks to fit.
    pub max_chunk_bytes: u64,
}

/// The reply of `GET /api/artifacts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListReply {
    /// Every complete artifact, sorted by hash.
    pub artifacts: Vec<ArtifactInfo>,
    /// Bytes in use, counting the full declared size of uploads in progress.
    pub used_bytes: u64,
    /// The store's total capacity in bytes.
    pub max_total_bytes: u64,
    /// The largest single artifact accepted.
    pub max_artifact_bytes: u64,
}

#[derive(Deserialize)]
struct SizeQuery {
    size: u64,
}

#[derive(Deserialize)]
struct OffsetQuery {
    offset: u64,
}

/// The artifact routes over `store`:
///
/// - `GET /api/artifacts`: list complete artifacts ([`ListReply`]);
/// - `PUT /api/artifacts/{hash}?size=N`: begin or look up an upload ([`StatusReply`]);
/// - `POST /api/artifacts/{hash}/chunks?offset=K`: append the raw body ([`StatusReply`]),
///   body limited to [`Limits::max_chunk_bytes`](crate::Limits);
/// - `GET /api/artifacts/{hash}/status`: [`StatusReply`];
/// - `GET /api/artifacts/{hash}`: the artifact's bytes, streamed with `content-length`
///   (`Range: bytes=K-` is honoured with a 206), or a 404 JSON error.
///
/// The chunk route sets its own body limit, which takes precedence over a
/// `DefaultBodyLimit` layered over the merged router.
///
/// The routes carry their own state, so the returned router fits any outer state type: the
/// node merges it into its own router before or after that router's `with_state`, e.g.
/// `Router::new().route(..).merge(opal_artifacts::router(store)).with_state(shared)`.
pub fn router<S: Clone + Send + Sync + 'static>(store: Arc<ArtifactStore>) -> Router<S> {
    let chunk_limit = usize::try_from(store.limits().max_chunk_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/api/artifacts", get(list))
        .route("/api/artifacts/{hash}", get(download).put(begin))
        .route("/api/artifacts/{hash}/status", get(status))
        .route(
            "/api/artifacts/{hash}/chunks",
            post(chunk).layer(DefaultBodyLimit::max(chunk_limit)),
        )
        .with_state(store)
}

type Reply<T> = Result<T, ArtifactError>;

async fn list(State(store): State<Arc<ArtifactStore>>) -> Reply<Json<ListReply>> {
    let s = store.clone();
    let artifacts = blocking(move || s.list()).await?;
    let limits = store.limits();
    Ok(Json(ListReply {
        artifacts,
        used_bytes: store.used_bytes(),
        max_total_bytes: limits.max_total_bytes,
        max_artifact_bytes: limits.max_artifact_bytes,
    }))
}

async fn begin(
    State(store): State<Arc<ArtifactStore>>,
    hash: Result<Path<String>, PathRejection>,
    query: Result<Query<SizeQuery>, QueryRejection>,
) -> Reply<Json<StatusReply>> {
    let hash = parse_hash(hash)?;
    let Query(SizeQuery { size }) = query.map_err(|e| ArtifactError::BadRequest {
        message: format!("PUT needs ?size=<bytes>: {}", e.body_text()),
    })?;
    let s = store.clone();
    let status = blocking(move || s.begin(&hash, size)).await?;
    Ok(reply(&store, hash, status))
}

async fn chunk(
    State(store): State<Arc<ArtifactStore>>,
    hash: Result<Path<String>, PathRejection>,
    query: Result<Query<OffsetQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<Json<StatusReply>> {
    let hash = parse_hash(hash)?;
    let Query(OffsetQuery { offset }) = query.map_err(|e| ArtifactError::BadRequest {
        message: format!(
            "a chunk needs ?offset=<bytes received so far>: {}",
            e.body_text()
        ),
    })?;
    let limit = store.limits().max_chunk_bytes;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            let len = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(limit.saturating_add(1));
            ArtifactError::ChunkTooLarge { len, limit }
        } else {
            ArtifactError::BadRequest {
                message: format!("reading the chunk body: {}", e.body_text()),
            }
        }
    })?;
    let s = store.clone();
    let status = blocking(move || s.write_chunk(&hash, offset, &body)).await?;
    Ok(reply(&store, hash, status))
}

async fn status(
    State(store): State<Arc<ArtifactStore>>,
    hash: Result<Path<String>, PathRejection>,
) -> Reply<Json<StatusReply>> {
    let hash = parse_hash(hash)?;
    let s = store.clone();
    let status = blocking(move || s.status(&hash)).await?;
    Ok(reply(&store, hash, status))
}

async fn download(
    State(store): State<Arc<ArtifactStore>>,
    hash: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Reply<Response> {
    let hash = parse_hash(hash)?;
    let s = store.clone();
    let (file, size) = blocking(move || {
        let f = s.open_artifact(&hash)?;
        let len = f
            .metadata()
            .map_err(|e| ArtifactError::io(format!("reading artifact {hash}"), e))?
            .len();
        Ok((f, len))
    })
    .await?;
    let start = range_start(&headers).filter(|s| *s > 0 && *s < size);
    let mut file = tokio::fs::File::from_std(file);
    if let Some(start) = start {
        file.seek(io::SeekFrom::Start(start))
            .await
            .map_err(|e| ArtifactError::io(format!("seeking in artifact {hash}"), e))?;
    }
    let offset = start.unwrap_or(0);
    let remaining = size - offset;
    let stream = futures::stream::try_unfold((file, remaining), |(mut f, left)| async move {
        if left == 0 {
            return Ok::<_, io::Error>(None);
        }
        let want = usize::try_from(left.min(256 * 1024)).unwrap_or(256 * 1024);
        let mut buf = vec![0u8; want];
        let got = f.read(&mut buf).await?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "artifact shrank while being served",
            ));
        }
        buf.truncate(got);
        Ok(Some((Bytes::from(buf), (f, left - got as u64))))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(remaining));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&hash.to_hex()) {
        h.insert(HASH_HEADER, v);
    }
    if start.is_some() {
        let range = format!("bytes {offset}-{}/{size}", size - 1);
        if let Ok(v) = HeaderValue::from_str(&range) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(resp)
}

/// The start of a `Range: bytes=K-` header; other range forms are ignored (served whole).
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    let start = spec.strip_suffix('-')?;
    start.trim().parse().ok()
}

fn parse_hash(p: Result<Path<String>, PathRejection>) -> Result<ArtifactHash, ArtifactError> {
    let Path(s) = p.map_err(|e| ArtifactError::BadRequest {
        message: e.body_text(),
    })?;
    ArtifactHash::from_hex(&s)
}

fn reply(store: &ArtifactStore, hash: ArtifactHash, status: ArtifactStatus) -> Json<StatusReply> {
    Json(StatusReply {
        hash,
        status,
        max_chunk_bytes: store.limits().max_chunk_bytes,
    })
}

/// Runs a store operation (file I/O, possibly hashing) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArtifactError> + Send + 'static,
) -> Result<T, ArtifactError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ArtifactError::io("running a storage task", io::Error::other(e.to_string())))?
}
