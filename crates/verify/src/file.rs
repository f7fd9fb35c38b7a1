//! The receipt file: what `opal infer` saves, what an OpenAI-compatible reply carries as
//! `opal_receipt`, and what `opal verify` reads (format in docs/formats.md).
//!
//! The file is JSON. Its `envelope` field (hex of the borsh [`ReceiptEnvelope`]) is the only
//! part verification trusts; every other field is a readable copy. Copies of signed values must
//! say what the envelope says ([`ReceiptFile::readable_mismatches`]): a file whose `"model"` or
//! `"price"` was edited is not a receipt of that model or price.

use crate::light::Portable;
use crate::report::Failure;
use opal_types::receipt::ReceiptEnvelope;
use opal_types::Amount;
use serde_json::{json, Value};

/// The largest receipt file read (a zk proof attachment is the bulk of a large one).
pub const MAX_RECEIPT_FILE_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is {len} bytes, more than a receipt file may be ({MAX_RECEIPT_FILE_BYTES})")]
    TooLarge { len: usize },
    #[error("not a receipt file (JSON): {0}")]
    NotJson(String),
    #[error("the file has no \"envelope\" field")]
    NoEnvelope,
    #[error("the envelope is not hex")]
    EnvelopeNotHex,
    #[error("the receipt envelope is malformed: {0}")]
    EnvelopeMalformed(String),
    #[error("the field {field} is malformed: {reason}")]
    Field { field: &'static str, reason: String },
}

impl Failure for FileError {
    fn code(&self) -> &'static str {
        match self {
            FileError::TooLarge { .. } => "file_too_large",
            FileError::NotJson(_) => "file_not_json",
            FileError::NoEnvelope => "file_no_envelope",
            FileError::EnvelopeNotHex => "envelope_not_hex",
            FileError::EnvelopeMalformed(_) => "envelope_malformed",
            FileError::Field { .. } => "file_field_malformed",
        }
    }
}

/// A parsed receipt file: the decoded envelope and the readable JSON around it.
#[derive(Debug, Clone)]
pub struct ReceiptFile {
    /// The receipt object (an OpenAI reply's `opal_receipt`, unwrapped).
    pub json: Value,
    pub envelope: ReceiptEnvelope,
}

impl ReceiptFile {
    /// Parse a receipt file, or a whole OpenAI-compatible reply (or its last streamed chunk)
    /// that carries one as `opal_receipt`. Bounded; never panics on garbage.
    pub fn parse(bytes: &[u8]) -> Result<ReceiptFile, FileError> {
        if bytes.len() > MAX_RECEIPT_FILE_BYTES {
            return Err(FileError::TooLarge { len: bytes.len() });
        }
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| FileError::NotJson(e.to_string()))?;
        let json = match v.get("opal_receipt") {
            Some(r) if r.is_object() => r.clone(),
            _ => v,
        };
        let env_hex = json["envelope"].as_str().ok_or(FileError::NoEnvelope)?;
        let raw = hex::decode(env_hex).map_err(|_| FileError::EnvelopeNotHex)?;
        let envelope = ReceiptEnvelope::from_bytes(&raw)
            .map_err(|e| FileError::EnvelopeMalformed(e.to_string()))?;
        Ok(ReceiptFile { json, envelope })
    }

    /// The readable output tensors (`outputs`), as JSON, when the file has them.
    pub fn outputs(&self) -> Option<&Value> {
        self.json.get("outputs")
    }

    /// An LLM reply's readable input (prompt tokens, sampling, seed), when present.
    pub fn llm_input(&self) -> Option<Result<opal_types::llm::LlmInput, FileError>> {
        self.json.get("llm_input").map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| FileError::Field {
                field: "llm_input",
                reason: e.to_string(),
            })
        })
    }

    /// An LLM reply's readable output tokens, when present.
    pub fn output_tokens(&self) -> Option<Result<Vec<u32>, FileError>> {
        self.json.get("output_tokens").map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| FileError::Field {
                field: "output_tokens",
                reason: e.to_string(),
            })
        })
    }

    /// The portable settlement proof saved with the file (`opal verify --save-portable`).
    pub fn portable(&self) -> Option<Result<Portable, FileError>> {
        self.json.get("portable").map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| FileError::Field {
                field: "portable",
                reason: e.to_string(),
            })
        })
    }

    /// The readable fields (as `opal infer` and the node's LLM receipts write them) that copy
    /// signed values, and which of those present differ from the envelope. `unit_price` is not
    /// signed; it must at least multiply with the signed units to the signed price. Only
    /// `model_id` (the OpenAI name the caller used) is left unchecked.
    pub fn readable_mismatches(&self) -> Vec<String> {
        readable_mismatches(&self.json, &self.envelope)
    }
}

/// The readable copies of the envelope's signed fields, as a receipt file writes them.
pub fn readable_fields(env: &ReceiptEnvelope) -> Vec<(&'static str, Value)> {
    let b = &env.receipt.body;
    let req = &b.request.request;
    vec![
        ("format", json!("opal-receipt")),
        ("version", json!(env.version)),
        ("request_id", json!(env.receipt.request_id())),
        ("receipt_id", json!(env.receipt.id())),
        ("model", json!(req.model)),
        ("model_hash", json!(req.model_hash)),
        ("tier", json!(req.tier)),
        ("caller", json!(b.request.caller_address())),
        ("node", json!(req.node)),
        ("grant_id", json!(b.request.grant.as_ref().map(|g| g.id()))),
        ("price", json!(b.price)),
        ("units", json!(b.units)),
        ("max_price", json!(req.max_price)),
        ("height", json!(b.height)),
        ("input_hash", json!(req.input_hash)),
        ("output_hash", json!(b.output_hash)),
    ]
}

/// The attachments' summary a receipt file carries (tier, version, size; the bytes are in the
/// envelope).
fn attachments_summary(env: &ReceiptEnvelope) -> Value {
    let list: Vec<Value> = env
        .attachments
        .iter()
        .map(|a| json!({"tier": a.tier, "version": a.version, "bytes": a.bytes.len()}))
        .collect();
    json!(list)
}

/// A receipt file for `env`, the one way every writer builds it (`opal infer`, the node's
/// OpenAI replies): the readable fields, the attachments' summary and the envelope. A writer
/// adds what its kind of request has (`outputs`; or `llm_input`, `output_tokens`, `unit_price`,
/// `model_id`).
pub fn receipt_file(env: &ReceiptEnvelope) -> serde_json::Map<String, Value> {
    let mut v: serde_json::Map<String, Value> = readable_fields(env)
        .into_iter()
        .map(|(k, val)| (k.to_string(), val))
        .collect();
    v.insert("attachments".into(), attachments_summary(env));
    v.insert("envelope".into(), json!(hex::encode(env.to_bytes())));
    v
}

fn readable_mismatches(file: &Value, env: &ReceiptEnvelope) -> Vec<String> {
    let b = &env.receipt.body;
    let mut bad: Vec<String> = readable_fields(env)
        .iter()
        .filter(|(k, want)| file.get(*k).is_some_and(|got| got != want))
        .map(|(k, _)| k.to_string())
        .collect();
    if let Some(got) = file.get("attachments") {
        if got != &attachments_summary(env) {
            bad.push("attachments".into());
        }
    }
    if let Some(up) = file.get("unit_price") {
        let consistent = serde_json::from_value::<Amount>(up.clone())
            .ok()
            .and_then(|u| u.0.checked_mul(u128::from(b.units)))
            == Some(b.price.0);
        if !consistent {
            bad.push("unit_price".into());
        }
    }
    bad
}
