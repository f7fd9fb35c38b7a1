//! Refusals of an LLM call in OpenAI's terms (status, `type`, `code`, `param`), and how the
//! worker's and the engine's errors map onto them.

use super::*;

/// Why an LLM request was refused, in OpenAI's terms: HTTP status, `type`, `code`, `param`.
#[derive(Debug, Clone)]
pub struct LlmServeError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<String>,
    pub param: Option<String>,
    pub message: String,
}

impl std::fmt::Display for LlmServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl LlmServeError {
    pub fn invalid(param: Option<&str>, code: Option<&str>, message: impl Into<String>) -> Self {
        LlmServeError {
            status: 400,
            kind: "invalid_request_error",
            code: code.map(String::from),
            param: param.map(String::from),
            message: message.into(),
        }
    }
    pub fn auth(message: impl Into<String>) -> Self {
        LlmServeError {
            status: 401,
            kind: "invalid_request_error",
            code: Some("invalid_api_key".into()),
            param: None,
            message: message.into(),
        }
    }
    pub fn model_not_found(model: &str) -> Self {
        LlmServeError {
            status: 404,
            kind: "invalid_request_error",
            code: Some("model_not_found".into()),
            param: Some("model".into()),
            message: format!(
                "The model `{model}` does not exist or this node does not serve it (GET /v1/models lists what it serves)."
            ),
        }
    }
    /// Payment refusals: OpenAI's quota error (429 `insufficient_quota`, not retried).
    pub fn quota(message: impl Into<String>) -> Self {
        LlmServeError {
            status: 429,
            kind: "insufficient_quota",
            code: Some("insufficient_quota".into()),
            param: None,
            message: message.into(),
        }
    }
    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        LlmServeError {
            status: 503,
            kind: "server_error",
            code: Some(code.into()),
            param: None,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        LlmServeError {
            status: 500,
            kind: "server_error",
            code: Some("internal".into()),
            param: None,
            message: message.into(),
        }
    }

    /// OpenAI's error body.
    /// The reply body, OpenAI's error shape.
    pub fn body(&self) -> opal_api::openai::ErrorReply {
        opal_api::openai::ErrorReply {
            error: opal_api::openai::OpenAiError {
                message: self.message.clone(),
                kind: self.kind.into(),
                param: self.param.clone(),
                code: self.code.clone(),
            },
        }
    }

    pub(super) fn from_llm(e: LlmError) -> Self {
        match e {
            LlmError::ContextTooLong { tokens, max } => LlmServeError::invalid(
                Some("messages"),
                Some("context_length_exceeded"),
                format!("This model's maximum context length is {max} tokens. However, your messages resulted in {tokens} tokens. Please reduce the length of the messages."),
            ),
            other => LlmServeError::internal(format!("the model failed: {other}")),
        }
    }
}

impl From<ServeError> for LlmServeError {
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::Busy => LlmServeError::unavailable("busy", e.to_string()),
            ServeError::Replayed(_) => LlmServeError {
                status: 409,
                kind: "invalid_request_error",
                code: Some("replayed".into()),
                param: None,
                message: e.to_string(),
            },
            other => LlmServeError {
                status: other.status(),
                kind: if other.status() >= 500 {
                    "server_error"
                } else {
                    "invalid_request_error"
                },
                code: Some(other.code().into()),
                param: None,
                message: other.to_string(),
            },
        }
    }
}
