//! Every way an artifact operation can fail, with a stable code and an HTTP status.

use crate::hash::ArtifactHash;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An artifact store, server or client failure.
///
/// Each variant carries the facts a caller needs and maps to a stable machine-readable
/// [`code`](ArtifactError::code) and an HTTP [`status`](ArtifactError::status). Over HTTP it is
/// sent as `{"error": {"code": "...", "message": "..."}}`, the node API's error shape.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A string that is not 64 hexadecimal characters was given as a content hash.
    #[error("bad artifact hash {input:?}: {reason}")]
    BadHash {
        /// The offending input (shortened when long).
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// The declared or actual artifact size is above [`Limits::max_artifact_bytes`](crate::Limits).
    #[error("artifact of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The size that was asked for.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// One chunk is above [`Limits::max_chunk_bytes`](crate::Limits).
    #[error("chunk of {len} bytes is larger than the chunk limit of {limit} bytes")]
    ChunkTooLarge {
        /// The chunk's length (or a lower bound when the body was cut off at the limit).
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Accepting the artifact would take the store above [`Limits::max_total_bytes`](crate::Limits).
    #[error("store quota exceeded: {needed} more bytes wanted, {used} of {limit} bytes in use")]
    Quota {
        /// Bytes the refused operation needed.
        needed: u64,
        /// Bytes held or reserved by complete artifacts and uploads in progress.
        used: u64,
        /// The configured total.
        limit: u64,
    },
    /// A chunk did not start where the upload stands; uploads are append-only.
    #[error("upload of {hash} has {expected} bytes; a chunk at offset {got} does not continue it")]
    BadOffset {
        /// The upload.
        hash: ArtifactHash,
        /// The bytes received so far: the only offset accepted.
        expected: u64,
        /// The offset that was sent.
        got: u64,
    },
    /// A chunk would take the upload past the size declared when it began.
    #[error(
        "a chunk of {len} bytes at offset {offset} goes past the declared size {size} of {hash}"
    )]
    BeyondSize {
        /// The upload.
        hash: ArtifactHash,
        /// The chunk's offset.
        offset: u64,
        /// The chunk's length.
        len: u64,
        /// The size declared at `begin`.
        size: u64,
    },
    /// A chunk was sent for a hash with no upload in progress (call `begin` first).
    #[error("no upload in progress for {hash}; begin it first")]
    UnknownUpload {
        /// The hash the chunk was sent for.
        hash: ArtifactHash,
    },
    /// `begin` declared a size different from the upload or artifact already held for the hash.
    #[error("{hash} is already held or being uploaded with size {existing}, not {requested}")]
    SizeConflict {
        /// The hash.
        hash: ArtifactHash,
        /// The size already on record.
        existing: u64,
        /// The size that was asked for.
        requested: u64,
    },
    /// The received bytes do not hash to the address they were sent for; they were discarded.
    #[error("content hash mismatch: expected {expected}, got {actual}; the bytes were discarded")]
    HashMismatch {
        /// The hash the bytes were announced as.
        expected: ArtifactHash,
        /// The hash of the bytes that arrived.
        actual: ArtifactHash,
    },
    /// No complete artifact with this hash is stored.
    #[error("artifact {hash} not found")]
    NotFound {
        /// The hash that was asked for.
        hash: ArtifactHash,
    },
    /// A malformed request (missing or unparsable query parameter, and the like).
    #[error("bad request: {message}")]
    BadRequest {
        /// What was wrong.
        message: String,
    },
    /// A file system operation failed.
    #[error("storage I/O error while {context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A remote artifact API answered with an error.
    #[error("{url} refused ({status} {code}): {message}")]
    Remote {
        /// The request's URL.
        url: String,
        /// The HTTP status of the reply.
        status: u16,
        /// The remote error code (`"http"` when the reply carried no JSON error).
        code: String,
        /// The remote message.
        message: String,
    },
    /// A remote artifact API could not be reached, or the connection broke.
    #[error("cannot talk to {url}: {message}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// No peer delivered the artifact with the right hash.
    #[error("no peer delivered {hash}: {}", failures.join("; "))]
    Unavailable {
        /// The artifact wanted.
        hash: ArtifactHash,
        /// One line per peer tried, saying why it failed.
        failures: Vec<String>,
    },
}

impl ArtifactError {
    /// A stable, machine-readable code for this kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            ArtifactError::BadHash { .. } => "bad_hash",
            ArtifactError::TooLarge { .. } => "too_large",
            ArtifactError::ChunkTooLarge { .. } => "chunk_too_large",
            ArtifactError::Quota { .. } => "quota",
            ArtifactError::BadOffset { .. } => "bad_offset",
            ArtifactError::BeyondSize { .. } => "beyond_size",
            ArtifactError::UnknownUpload { .. } => "unknown_upload",
            ArtifactError::SizeConflict { .. } => "size_conflict",
            ArtifactError::HashMismatch { .. } => "hash_mismatch",
            ArtifactError::NotFound { .. } => "not_found",
            ArtifactError::BadRequest { .. } => "bad_request",
            ArtifactError::Io { .. } => "io",
            ArtifactError::Remote { .. } => "remote",
            ArtifactError::Transport { .. } => "transport",
            ArtifactError::Unavailable { .. } => "unavailable",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ArtifactError::BadHash { .. }
            | ArtifactError::BeyondSize { .. }
            | ArtifactError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ArtifactError::TooLarge { .. } | ArtifactError::ChunkTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ArtifactError::Quota { .. } => StatusCode::INSUFFICIENT_STORAGE,
            ArtifactError::BadOffset { .. } | ArtifactError::SizeConflict { .. } => {
                StatusCode::CONFLICT
            }
            ArtifactError::UnknownUpload { .. } | ArtifactError::NotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            ArtifactError::HashMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ArtifactError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ArtifactError::Remote { .. }
            | ArtifactError::Transport { .. }
            | ArtifactError::Unavailable { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// Wraps an I/O error with what the store was doing.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ArtifactError {
        ArtifactError::Io {
            context: context.into(),
            source,
        }
    }
}

impl IntoResponse for ArtifactError {
    fn into_response(self) -> Response {
        if matches!(self, ArtifactError::Io { .. }) {
            tracing::error!(error = %self, "artifact store I/O error");
        }
        (
            self.status(),
            Json(json!({"error": {"code": self.code(), "message": self.to_string()}})),
        )
            .into_response()
    }
}
