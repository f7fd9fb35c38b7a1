//! The LLM side of the inference-node role: serve registered GGUF models (`opal-llm`, candle)
//! behind the OpenAI-compatible API (the node's `api::openai`), with an Opal receipt for every reply, paid
//! per token from the caller's escrow under a spend grant, and settled by the same pending log
//! and settlement loop as ONNX receipts ([`crate::InferenceService`]).
//!
//! Authorization: the OpenAI client cannot sign each request, so the caller's credential is the
//! API key, a [`SignedGrant`] (`opal llm key`): the caller signs, once, "node N may charge my
//! escrow up to `max_total` until `expires_ms`". For each call the node composes the
//! [`InferenceRequest`] itself (with the grant in place of a per-request signature), runs it,
//! signs the receipt and persists it before the reply leaves. The ledger checks the grant (its
//! signature, node, chain, expiry, and that the total charged under it stays within
//! `max_total`) at settlement, so the node can never charge more than the caller granted.
//!
//! Admission, in order (each refusal is typed, with no receipt and no charge): the key (decodes,
//! signature, chain, node, expiry), the request body, the model (registered as GGUF, offered by
//! this node under the tier asked), the licence, the prompt (chat template, tokenizer), the
//! context (prompt + `max_tokens` within the model's context length), then payment: the
//! worst-case price `unit price x (prompt tokens + max_tokens)` must fit both the caller's
//! escrow (minus what this node has served to the caller and not settled, minus what other calls
//! in flight have reserved) and the grant's remaining allowance (its `max_total` minus what the
//! ledger has charged under it, minus unsettled receipts under it, minus reservations); last, the
//! ledger's settlement rule (`inference::terms`) at that worst case, so a call the ledger would
//! not pay for (a jailed or unbonded node, a price below the owner's and the treasury's shares)
//! is not run. The reservation is released once the receipt is recorded.
//!
//! Pricing (per token): `unit price = model price + licence fee + the node's fee`, all read
//! from the chain (the model's registered `price` and licence, the `fee` of this node's
//! `DeclareService` offer, each interpreted per token for a GGUF model), and the receipt's price
//! is `unit price x (prompt tokens + completion tokens)`; the request's `max_price` is the
//! worst case, `unit price x (prompt tokens + max_tokens)`.
//!
//! Hashes (`opal_types::llm`, shared with the ledger and the CLI): `input_hash =
//! BLAKE3-derive("opal 2026 llm input v1", borsh(LlmInput))` where [`LlmInput`] holds the model,
//! the prompt's token ids (after the chat template), `max_tokens`, the sampling parameters
//! including the seed (the caller's `seed`, or one the node draws and records), and the stop
//! strings; `output_hash` is over the output token ids and, for the `activations` tier, the
//! BLAKE3 of the activation commitment, so the signature binds the commitment too. The reply
//! carries the input and the tokens in readable form so `opal verify` recomputes both hashes.
//!
//! Audits and disputes: an `activations` receipt is drawn for audit (or held for disputes) like a
//! canonical model's; the node keeps its reveal (`[borsh(LlmInput)]`, `[tokens, commitment]`) in
//! `data/reveal/` until the ledger can no longer ask for it, and the reveal pass publishes it
//! when a case opens. The validators check it off chain and vote (docs/verification.md).

use crate::backend::LanguageModel;
use crate::{InferenceService, ServeError};
use opal_artifacts::ArtifactHash;
use opal_ledger::components::{inference, registry};
use opal_llm::{
    ChatMessage, CommitParams, FinishReason, GenerateRequest, LlmError, SamplingParams,
};
use opal_state::Overlay;
use opal_types::receipt::{
    Attachment, Escalation, InferenceRequest, ReceiptBody, ReceiptEnvelope, SignedGrant,
    SignedRequest,
};
use opal_types::registry::{ModelFormat, ModelSpec, ServiceOffer};
use opal_types::{Address, Amount, Hash, ModelRef, Tier};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

pub use opal_types::llm::{LlmInput, LLM_INPUT_CONTEXT, LLM_OUTPUT_CONTEXT};
/// Version of the `activations` attachment bytes (`opal_llm::ActivationCommitment::to_bytes`).
pub const ACTIVATIONS_ATTACHMENT_VERSION: u16 = 1;
/// How long a composed request stays valid (it also never outlives its grant).
pub const LLM_REQUEST_TTL_MS: u64 = 10 * 60 * 1000;
/// `max_tokens` when the caller gives none (chat): the rest of the context, at most this.
pub const DEFAULT_CHAT_MAX_TOKENS: u32 = 512;
/// `max_tokens` when the caller gives none (completions): OpenAI's default.
pub const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 16;
/// Most stop strings (OpenAI allows 4).
pub const MAX_STOP: usize = 4;

mod admission;
mod error;
mod generate;

pub use error::LlmServeError;

fn random_u64() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

/// The output hash of a `signed`-tier LLM reply (over its output token ids).
pub fn llm_output_hash(tokens: &[u32]) -> Hash {
    opal_types::llm::output_hash(tokens, None)
}

/// The prompt of a call.
#[derive(Debug, Clone)]
pub enum Prompt {
    Chat(Vec<ChatMessage>),
    Text(String),
}

/// One OpenAI call, parsed and validated by the API layer.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The model as the caller named it (`NAME` or `NAME@VERSION`).
    pub model: String,
    pub prompt: Prompt,
    pub max_tokens: Option<u32>,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: u32,
    pub repetition_penalty: f64,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub tier: Tier,
    pub commercial: bool,
    /// Audit rate and disputability the caller asked for (`opal_audit_bps`, `opal_dispute`);
    /// only `activations` receipts can be audited or disputed.
    pub escalation: Escalation,
}

/// A GGUF model this node offers, as listed under `/v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct OfferedModel {
    /// The OpenAI model id: the name for the newest offered version, `NAME@VERSION` otherwise.
    pub id: String,
    pub model: ModelRef,
    pub owner: Option<Address>,
    pub content_hash: Hash,
    pub tiers: Vec<Tier>,
    /// Per-token price: model price + licence fee + this node's fee.
    pub unit_price: Amount,
    pub registered_height: u64,
}

struct Resolved {
    model: ModelRef,
    id: String,
    spec: ModelSpec,
    offer: ServiceOffer,
    unit_price: Amount,
}

/// Amounts reserved by calls admitted and not yet recorded.
#[derive(Default)]
struct Reserved {
    by_caller: HashMap<Address, u128>,
    by_grant: HashMap<Hash, u128>,
}

/// A reservation, released on drop.
struct Reservation {
    svc: Arc<LlmService>,
    caller: Address,
    grant: Hash,
    /// Reserved from the grant's allowance (the worst-case price).
    amount: u128,
    /// Reserved from the escrow (the worst-case price plus any audit premium).
    escrow_amount: u128,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut r = self.svc.reserved.lock();
        if let Some(v) = r.by_caller.get_mut(&self.caller) {
            *v = v.saturating_sub(self.escrow_amount);
            if *v == 0 {
                r.by_caller.remove(&self.caller);
            }
        }
        if let Some(v) = r.by_grant.get_mut(&self.grant) {
            *v = v.saturating_sub(self.amount);
            if *v == 0 {
                r.by_grant.remove(&self.grant);
            }
        }
    }
}

/// An admitted call, ready to run: the composed request and everything needed to sign its
/// receipt.
pub struct Prepared {
    pub id: String,
    pub model_ref: ModelRef,
    pub request: SignedRequest,
    pub input: LlmInput,
    pub unit_price: Amount,
    pub height: u64,
    /// The chain's activation-commitment parameters when the call was admitted (verifiers
    /// require exactly these; governance may change them, so they are read per call).
    commit: CommitParams,
    model: Arc<dyn LanguageModel>,
    _reservation: Reservation,
}

impl Prepared {
    pub fn request_id(&self) -> Hash {
        self.request.id()
    }
    pub fn prompt_tokens(&self) -> usize {
        self.input.prompt_tokens.len()
    }
}

/// A finished call.
#[derive(Debug, Clone)]
pub struct LlmServed {
    pub text: String,
    pub finish_reason: &'static str,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub envelope: ReceiptEnvelope,
    /// The `opal_receipt` object of the reply (also a file `opal verify` reads).
    pub receipt_json: Value,
    pub compute_ms: f64,
}

pub struct LlmService {
    inf: Arc<InferenceService>,
    reserved: Mutex<Reserved>,
    /// Generations running at once (each uses every core it can; more would only interleave).
    slots: Arc<tokio::sync::Semaphore>,
}

impl LlmService {
    pub fn new(inf: Arc<InferenceService>) -> Arc<LlmService> {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        Arc::new(LlmService {
            inf,
            reserved: Mutex::new(Reserved::default()),
            slots: Arc::new(tokio::sync::Semaphore::new(n)),
        })
    }

    /// Permits to run a generation.
    pub fn slots(&self) -> Arc<tokio::sync::Semaphore> {
        self.slots.clone()
    }

    pub fn node(&self) -> Address {
        self.inf.address()
    }

    fn state(&self) -> Result<(Overlay, u64), LlmServeError> {
        let c = self
            .inf
            .chain()
            .committed()
            .map_err(|e| LlmServeError::internal(e.to_string()))?;
        Ok((c.state, c.height))
    }

    /// The GGUF models this node offers (its declared service), newest version of each name
    /// listed under the bare name.
    pub fn offered(&self) -> Result<Vec<OfferedModel>, LlmServeError> {
        let (o, _) = self.state()?;
        let internal = |e: opal_ledger::LedgerError| LlmServeError::internal(e.to_string());
        let Some(svc) = registry::service(&o, &self.node()).map_err(internal)? else {
            return Ok(vec![]);
        };
        let mut out: Vec<OfferedModel> = Vec::new();
        for offer in &svc.spec.offers {
            let Some(info) = registry::model(&o, &offer.model).map_err(internal)? else {
                continue;
            };
            if info.spec.format != ModelFormat::Gguf {
                continue;
            }
            let tiers: Vec<Tier> = offer
                .tiers
                .iter()
                .copied()
                .filter(|t| info.spec.tiers.contains(t))
                .collect();
            if tiers.is_empty() {
                continue;
            }
            let unit_price = unit_price(&info.spec, offer)?;
            out.push(OfferedModel {
                id: offer.model.to_string(),
                model: offer.model.clone(),
                owner: registry::owner_of(&o, &offer.model).map_err(internal)?,
                content_hash: info.spec.content_hash,
                tiers,
                unit_price,
                registered_height: info.registered_height,
            });
        }
        // The newest offered version of each name is listed by its bare name.
        let mut newest: HashMap<String, u32> = HashMap::new();
        for m in &out {
            let v = newest.entry(m.model.name.clone()).or_insert(0);
            *v = (*v).max(m.model.version);
        }
        for m in &mut out {
            if newest.get(&m.model.name) == Some(&m.model.version) {
                m.id = m.model.name.clone();
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn resolve(&self, o: &Overlay, name: &str) -> Result<Resolved, LlmServeError> {
        let offered = self.offered()?;
        let found = offered
            .iter()
            .find(|m| m.id == name || m.model.to_string() == name)
            .ok_or_else(|| LlmServeError::model_not_found(name))?;
        let internal = |e: opal_ledger::LedgerError| LlmServeError::internal(e.to_string());
        let info = registry::model(o, &found.model)
            .map_err(internal)?
            .ok_or_else(|| LlmServeError::model_not_found(name))?;
        let offer = registry::service(o, &self.node())
            .map_err(internal)?
            .and_then(|s| s.spec.offer(&found.model).cloned())
            .ok_or_else(|| LlmServeError::model_not_found(name))?;
        Ok(Resolved {
            model: found.model.clone(),
            id: found.id.clone(),
            unit_price: unit_price(&info.spec, &offer)?,
            spec: info.spec,
            offer,
        })
    }

    /// The language model with this content hash: its plan, made once by the worker's GGUF
    /// backend from the artifact store and kept with the worker's other plans. Blocking.
    pub fn load(&self, content_hash: &Hash) -> Result<Arc<dyn LanguageModel>, LlmServeError> {
        let ah = ArtifactHash(content_hash.0);
        if !self.inf.artifacts().has(&ah) {
            return Err(LlmServeError::unavailable(
                "model_unavailable",
                format!("the model file {content_hash} is not on this node yet (upload it with `opal model upload`)"),
            ));
        }
        let plan = self.inf.plan(&ah, ModelFormat::Gguf).map_err(|e| match e {
            ServeError::ModelLoad(why) => LlmServeError::unavailable(
                "model_unavailable",
                format!("the model file {content_hash} cannot be loaded: {why}"),
            ),
            other => other.into(),
        })?;
        plan.language().ok_or_else(|| {
            LlmServeError::internal(format!(
                "the plan of {content_hash} is not a language model"
            ))
        })
    }

    /// Load every GGUF model this node offers (so the first call does not wait). Blocking.
    pub fn preload(&self) -> Vec<(String, Result<(), String>)> {
        let offered = match self.offered() {
            Ok(o) => o,
            Err(e) => return vec![("*".into(), Err(e.message))],
        };
        offered
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    self.load(&m.content_hash)
                        .map(|_| ())
                        .map_err(|e| e.message),
                )
            })
            .collect()
    }

    /// The context length of a loaded model, if it is loaded.
    pub fn context_length(&self, content_hash: &Hash) -> Option<usize> {
        let plan = self.inf.loaded_plan(&ArtifactHash(content_hash.0))?;
        Some(plan.language()?.info().context_length)
    }
}

fn mul(a: Amount, n: u128) -> Result<Amount, LlmServeError> {
    a.0.checked_mul(n)
        .map(Amount)
        .ok_or_else(|| LlmServeError::internal("price overflow"))
}

/// Per-token price of a GGUF model on this node: model price + licence fee + node fee.
pub fn unit_price(spec: &ModelSpec, offer: &ServiceOffer) -> Result<Amount, LlmServeError> {
    spec.price
        .checked_add(spec.licence.fee())
        .and_then(|p| p.checked_add(offer.fee))
        .map_err(|e| LlmServeError::internal(e.to_string()))
}

/// The `opal_receipt` object of a reply: the canonical envelope (hex) plus readable fields, and
/// the LLM input and output tokens so `opal verify` can recompute both hashes. Saved to a file
/// as is, it is what `opal verify FILE` reads.
pub fn receipt_json(
    env: &ReceiptEnvelope,
    input: &LlmInput,
    output_tokens: &[u32],
    unit_price: Amount,
    model_id: &str,
) -> Value {
    let mut v = opal_verify::file::receipt_file(env);
    v.insert("model_id".into(), json!(model_id));
    v.insert("unit_price".into(), json!(unit_price));
    v.insert("llm_input".into(), json!(input));
    v.insert("output_tokens".into(), json!(output_tokens));
    Value::Object(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_openai_shape() {
        let e = LlmServeError::model_not_found("nope");
        let b = serde_json::to_value(e.body()).unwrap();
        assert_eq!(e.status, 404);
        assert_eq!(b["error"]["code"], "model_not_found");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(b["error"]["message"].as_str().unwrap().contains("nope"));
        let e = LlmServeError::from_llm(LlmError::ContextTooLong {
            tokens: 9000,
            max: 8192,
        });
        assert_eq!(e.status, 400);
        assert_eq!(
            e.body().error.code.as_deref(),
            Some("context_length_exceeded")
        );
    }
}
