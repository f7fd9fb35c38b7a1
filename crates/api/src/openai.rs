//! Replies of the OpenAI-compatible routes (`/v1/...`): OpenAI's shapes, with Opal's additions
//! in fields of their own (`opal` on a model, `opal_receipt` on a completion) that OpenAI
//! clients ignore.
//!
//! One [`Completion`] type serves the four reply kinds: chat and text completions, whole or
//! streamed (a chunk is a completion with one choice, or none in the usage chunk). `logprobs` is
//! always `null` (this server does not return them) but present, as OpenAI sends it.

use opal_types::{Address, Amount, Hash, ModelRef, Tier};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelList {
    /// `list`.
    pub object: String,
    pub data: Vec<ModelObject>,
}

impl ModelList {
    pub fn new(data: Vec<ModelObject>) -> ModelList {
        ModelList {
            object: "list".into(),
            data,
        }
    }
}

/// `GET /v1/models/{model}`, and each entry of the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelObject {
    /// The name for the newest offered version, `NAME@VERSION` otherwise.
    pub id: String,
    /// `model`.
    pub object: String,
    /// Always 0: a model's age is its registration height (`opal.registered_height`).
    pub created: u64,
    /// The owner's address (empty if the model has none).
    pub owned_by: String,
    pub opal: OpalModel,
}

/// What Opal adds to a model entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OpalModel {
    #[schemars(with = "String")]
    pub model: ModelRef,
    #[schemars(with = "String")]
    pub content_hash: Hash,
    #[schemars(with = "Vec<String>")]
    pub tiers: Vec<Tier>,
    /// Per-token price: model price + licence fee + this node's fee.
    #[schemars(with = "String")]
    pub unit_price: Amount,
    pub registered_height: u64,
    /// The node serving it (the one answering).
    #[schemars(with = "String")]
    pub node: Address,
    /// Tokens of context, once the model is loaded.
    pub context_length: Option<usize>,
}

/// `POST /v1/chat/completions` and `POST /v1/completions`, whole or as one streamed chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Completion {
    /// `chatcmpl-...` or `cmpl-...`: the first 32 hex digits of the Opal request id.
    pub id: String,
    /// `chat.completion`, `chat.completion.chunk` or `text_completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
    /// `opal-` and the first 16 hex digits of the model file's hash.
    pub system_fingerprint: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The receipt file (`opal verify` reads it): on a whole reply, and on the last chunk of a
    /// stream (the usage chunk when usage is asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opal_receipt: Option<Value>,
}

/// One choice (always index 0: `n` is 1). A chat reply carries `message`, a chat chunk
/// `delta`, a text reply or chunk `text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Choice {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Always `null`.
    pub logprobs: Option<Value>,
    /// `stop` (an end token or a stop string), `length` (`max_tokens`) or `cancelled`; `null`
    /// on a chunk before the last.
    pub finish_reason: Option<String>,
}

impl Choice {
    fn empty(finish_reason: Option<&str>) -> Choice {
        Choice {
            index: 0,
            message: None,
            delta: None,
            text: None,
            logprobs: None,
            finish_reason: finish_reason.map(String::from),
        }
    }

    /// A whole chat reply's choice.
    pub fn message(content: &str, finish_reason: &str) -> Choice {
        Choice {
            message: Some(Message {
                role: "assistant".into(),
                content: content.into(),
                refusal: None,
            }),
            ..Choice::empty(Some(finish_reason))
        }
    }

    /// A text completion's choice, whole or streamed.
    pub fn text(text: &str, finish_reason: Option<&str>) -> Choice {
        Choice {
            text: Some(text.into()),
            ..Choice::empty(finish_reason)
        }
    }

    /// A chat chunk's choice: the first names the role, the last (with the finish reason)
    /// carries an empty delta.
    pub fn delta(text: &str, finish_reason: Option<&str>, first: bool) -> Choice {
        let delta = if finish_reason.is_some() {
            Delta::default()
        } else {
            Delta {
                role: first.then(|| "assistant".into()),
                content: Some(text.into()),
            }
        };
        Choice {
            delta: Some(delta),
            ..Choice::empty(finish_reason)
        }
    }
}

/// A whole chat reply's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// `assistant`.
    pub role: String,
    pub content: String,
    /// Always `null`.
    pub refusal: Option<String>,
}

/// What a chat chunk adds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// Tokens billed: the receipt's price is the unit price times `total_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// An OpenAI error reply: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorReply {
    pub error: OpenAiError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OpenAiError {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `insufficient_quota`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunks_have_openai_shape() {
        let c = serde_json::to_value(Choice::delta("hi", None, true)).unwrap();
        assert_eq!(
            c,
            json!({"index": 0, "delta": {"role": "assistant", "content": "hi"}, "logprobs": null, "finish_reason": null})
        );
        let last = serde_json::to_value(Choice::delta("", Some("stop"), false)).unwrap();
        assert_eq!(
            last,
            json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"})
        );
        let m = serde_json::to_value(Choice::message("x", "length")).unwrap();
        assert_eq!(
            m,
            json!({"index": 0, "message": {"role": "assistant", "content": "x", "refusal": null}, "logprobs": null, "finish_reason": "length"})
        );
        let t = serde_json::to_value(Choice::text("x", None)).unwrap();
        assert_eq!(
            t,
            json!({"index": 0, "text": "x", "logprobs": null, "finish_reason": null})
        );
        let back: Choice = serde_json::from_value(m).unwrap();
        assert_eq!(back, Choice::message("x", "length"));
    }
}
