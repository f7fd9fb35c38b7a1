use crate::error::AdmitError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API error: an HTTP status, a stable machine-readable code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 410 `pruned`: the height existed but this node no longer keeps it.
    pub fn pruned(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::GONE, "pruned", message)
    }
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }
}

/// A request body that could not be read: over the route's limit (413 `too_large`) or broken
/// (`bad_body`).
impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, r.body_text())
    }
}

/// A pruned height is 410 `pruned` (it existed, this node no longer keeps it); any other store
/// failure is internal.
impl From<opal_state::StateError> for ApiError {
    fn from(e: opal_state::StateError) -> Self {
        match e {
            opal_state::StateError::Pruned { version, oldest } => ApiError::pruned(format!(
                "the state at height {version} was pruned: this node keeps heights {oldest} and \
                 later (retain_heights in its config.toml); ask an archive node"
            )),
            e => ApiError::internal(e),
        }
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        let status = match e {
            AdmitError::MempoolFull(_) | AdmitError::SenderLimit(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AdmitError::AlreadyKnown(_) => StatusCode::CONFLICT,
            AdmitError::Tx(opal_ledger::TxError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            AdmitError::Tx(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, &e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(opal_api::ErrorBody {
                error: opal_api::ErrorDetail {
                    code: self.code,
                    message: self.message,
                },
            }),
        )
            .into_response()
    }
}
