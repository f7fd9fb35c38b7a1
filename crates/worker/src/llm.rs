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

use crate::{InferenceService, ServeError};
use opal_artifacts::ArtifactHash;
use opal_ledger::components::{inference, registry};
use opal_llm::{
    ChatMessage, CommitParams, FinishReason, GenerateRequest, LlmError, LlmModel, SamplingParams,
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

fn random_u64() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

/// The output hash of a `signed`-tier LLM reply (over its output token ids).
pub fn llm_output_hash(tokens: &[u32]) -> Hash {
    opal_types::llm::output_hash(tokens, None)
}

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
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }

    fn from_llm(e: LlmError) -> Self {
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
    model: Arc<LlmModel>,
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

/// One model's load slot: locked while the model loads, so it is loaded once.
type ModelSlot = Arc<Mutex<Option<Arc<LlmModel>>>>;

pub struct LlmService {
    inf: Arc<InferenceService>,
    /// Loaded models by content hash; each slot's lock is held while that model loads, so a
    /// model is loaded once however many calls ask for it at the same time.
    models: Mutex<HashMap<Hash, ModelSlot>>,
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
            models: Mutex::new(HashMap::new()),
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

    /// Load (once) the model file with this content hash from the artifact store. Blocking.
    pub fn load(&self, content_hash: &Hash) -> Result<Arc<LlmModel>, LlmServeError> {
        let slot = self
            .models
            .lock()
            .entry(*content_hash)
            .or_insert_with(|| Arc::new(Mutex::new(None)))
            .clone();
        let mut g = slot.lock();
        if let Some(m) = g.as_ref() {
            return Ok(m.clone());
        }
        let ah = ArtifactHash(content_hash.0);
        if !self.inf.artifacts().has(&ah) {
            return Err(LlmServeError::unavailable(
                "model_unavailable",
                format!("the model file {content_hash} is not on this node yet (upload it with `opal model upload`)"),
            ));
        }
        let path = self.inf.artifacts().path(&ah);
        let t0 = Instant::now();
        let m = LlmModel::load(&path).map_err(|e| {
            LlmServeError::unavailable(
                "model_unavailable",
                format!("the model file {content_hash} cannot be loaded: {e}"),
            )
        })?;
        tracing::info!(model = %content_hash, ms = t0.elapsed().as_millis() as u64, "loaded LLM");
        let m = Arc::new(m);
        *g = Some(m.clone());
        Ok(m)
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
        let slot = self.models.lock().get(content_hash).cloned()?;
        let g = slot.try_lock()?;
        g.as_ref().map(|m| m.info().context_length)
    }

    /// Check an API key: a spend grant signed by the caller, for this chain and node, unexpired.
    pub fn authorize(&self, api_key: &str) -> Result<SignedGrant, LlmServeError> {
        let g = SignedGrant::from_api_key(api_key.trim()).map_err(|e| {
            LlmServeError::auth(format!(
                "Incorrect API key provided: it is not an Opal spend grant ({e}). Mint one with `opal llm key --node NODE --max AMOUNT --ttl DURATION`."
            ))
        })?;
        g.verify().map_err(|e| {
            LlmServeError::auth(format!(
                "Incorrect API key provided: the grant's signature does not verify ({e})."
            ))
        })?;
        let chain = self.inf.chain().chain_id();
        if g.grant.chain_id != chain {
            return Err(LlmServeError::auth(format!(
                "This API key is for chain {:?}; this node is on {chain:?}.",
                g.grant.chain_id
            )));
        }
        if g.grant.node != self.node() {
            return Err(LlmServeError::auth(format!(
                "This API key grants spending to node {}; this node is {}.",
                g.grant.node,
                self.node()
            )));
        }
        if g.grant.expires_ms <= self.inf.clock().now_ms() {
            return Err(LlmServeError::auth(format!(
                "This API key expired at {} (ms since the epoch); mint a new one with `opal llm key`.",
                g.grant.expires_ms
            )));
        }
        Ok(g)
    }

    /// Admission (everything but running the model): resolve the model, load it, apply the
    /// chat template and tokenize, check the context and the payment, compose the request and
    /// reserve its worst-case price. Blocking (it may load the model).
    pub fn prepare(
        self: &Arc<Self>,
        grant: &SignedGrant,
        ask: &Ask,
    ) -> Result<Prepared, LlmServeError> {
        let (o, height) = self.state()?;
        let internal = |e: opal_ledger::LedgerError| LlmServeError::internal(e.to_string());
        let r = self.resolve(&o, &ask.model)?;
        if !r.offer.tiers.contains(&ask.tier) || !r.spec.tiers.contains(&ask.tier) {
            return Err(LlmServeError::invalid(
                Some("opal_tier"),
                Some("tier_not_offered"),
                format!(
                    "This node does not serve {} under tier `{}` (offered: {}).",
                    r.id,
                    ask.tier.as_str(),
                    r.offer
                        .tiers
                        .iter()
                        .filter(|t| r.spec.tiers.contains(t))
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !matches!(ask.tier, Tier::Signed | Tier::Activations) {
            return Err(LlmServeError::invalid(
                Some("opal_tier"),
                Some("tier_unsupported"),
                format!(
                    "Tier `{}` is not served for LLMs (use `signed` or `activations`).",
                    ask.tier.as_str()
                ),
            ));
        }
        let caller = grant.caller.address();
        r.spec
            .licence
            .permits(&caller, ask.commercial)
            .map_err(|why| LlmServeError {
                status: 403,
                kind: "invalid_request_error",
                code: Some("licence_forbids".into()),
                param: None,
                message: format!("The model's licence does not allow this call: {why}"),
            })?;
        let model = self.load(&r.spec.content_hash)?;
        let ctx = model.info().context_length;
        let (text, param) = match &ask.prompt {
            Prompt::Chat(messages) => (
                model.apply_chat_template(messages).map_err(|e| match e {
                    LlmError::ContextTooLong { .. } => LlmServeError::from_llm(e),
                    e => LlmServeError::invalid(
                        Some("messages"),
                        Some("invalid_messages"),
                        format!(
                            "The messages cannot be rendered with the model's chat template: {e}"
                        ),
                    ),
                })?,
                "messages",
            ),
            Prompt::Text(t) => (t.clone(), "prompt"),
        };
        let prompt_tokens = model.tokenize(&text).map_err(|e| match e {
            LlmError::ContextTooLong { .. } => LlmServeError::from_llm(e),
            e => LlmServeError::invalid(
                Some(param),
                None,
                format!("The {param} cannot be tokenized: {e}"),
            ),
        })?;
        if prompt_tokens.is_empty() {
            return Err(LlmServeError::invalid(
                Some(param),
                None,
                format!("The {param} is empty."),
            ));
        }
        let n_prompt = prompt_tokens.len();
        let room = ctx.saturating_sub(n_prompt);
        let max_tokens = match ask.max_tokens {
            Some(m) => m,
            None => {
                let default = match ask.prompt {
                    Prompt::Chat(_) => DEFAULT_CHAT_MAX_TOKENS,
                    Prompt::Text(_) => DEFAULT_COMPLETION_MAX_TOKENS,
                };
                default.min(room as u32)
            }
        };
        if n_prompt >= ctx || max_tokens == 0 || n_prompt + max_tokens as usize > ctx {
            return Err(LlmServeError::invalid(
                Some(param),
                Some("context_length_exceeded"),
                format!(
                    "This model's maximum context length is {ctx} tokens. However, you requested {} tokens ({n_prompt} in the {param}, {max_tokens} in the completion). Please reduce the length of the {param} or completion.",
                    n_prompt + max_tokens as usize
                ),
            ));
        }

        // Payment: the worst case must fit the escrow and the grant; a higher audit rate also
        // charges the escrow its premium at settlement.
        let max_price = mul(r.unit_price, (n_prompt + max_tokens as usize) as u128)?;
        let premium = inference::audit_premium(
            &inference::params(&o).map_err(internal)?,
            ask.escalation.audit_bps,
        );
        // (The settlement rule below checks the same again, with every other condition.)
        let escrow = inference::escrow(&o, &caller, &self.node()).map_err(internal)?;
        if escrow.unlock_ms.is_some() {
            return Err(LlmServeError::quota(format!(
                "Your escrow with node {} is closing; fund a new one (`opal tx escrow fund`).",
                self.node()
            )));
        }
        if self.inf.log().is_full() {
            return Err(LlmServeError::unavailable(
                "busy",
                "This node holds too many unsettled receipts; try again shortly.",
            ));
        }
        let gid = grant.id();
        let owed = self
            .inf
            .log()
            .unsettled_sum(&o, &caller, |_| true)
            .map_err(internal)?;
        let pending_under_grant = self
            .inf
            .log()
            .unsettled_sum(&o, &caller, |rc| {
                rc.body.request.grant.as_ref().map(|g| g.id()) == Some(gid)
            })
            .map_err(internal)?;
        let charged = inference::grant_spent(&o, &gid).map_err(internal)?;
        let mut res = self.reserved.lock();
        let held_caller = res.by_caller.get(&caller).copied().unwrap_or(0);
        let held_grant = res.by_grant.get(&gid).copied().unwrap_or(0);
        let escrow_left = escrow
            .balance
            .0
            .saturating_sub(owed.0)
            .saturating_sub(held_caller);
        let escrow_need = max_price.0.saturating_add(premium.0);
        if escrow_left < escrow_need {
            return Err(LlmServeError::quota(format!(
                "Your escrow with node {} holds {escrow_left} after unsettled and in-flight calls; this call may cost up to {max_price} ({n_prompt} prompt tokens + max_tokens {max_tokens}, at {} per token){}. Fund it with `opal tx escrow fund` or lower max_tokens.",
                self.node(),
                r.unit_price,
                if premium.is_zero() { String::new() } else { format!(" plus an audit premium of {premium}") }
            )));
        }
        let grant_left = grant
            .grant
            .max_total
            .0
            .saturating_sub(charged.0)
            .saturating_sub(pending_under_grant.0)
            .saturating_sub(held_grant);
        if grant_left < max_price.0 {
            return Err(LlmServeError::quota(format!(
                "This API key's allowance has {grant_left} left of {}; this call may cost up to {max_price} ({n_prompt} prompt tokens + max_tokens {max_tokens}, at {} per token). Mint a new key or lower max_tokens.",
                grant.grant.max_total, r.unit_price
            )));
        }
        *res.by_caller.entry(caller).or_insert(0) += escrow_need;
        *res.by_grant.entry(gid).or_insert(0) += max_price.0;
        drop(res);
        let reservation = Reservation {
            svc: self.clone(),
            caller,
            grant: gid,
            amount: max_price.0,
            escrow_amount: escrow_need,
        };

        let input = LlmInput {
            model: r.model.clone(),
            prompt_tokens,
            max_tokens,
            seed: ask.seed.unwrap_or_else(random_u64),
            temperature: ask.temperature as f32,
            top_p: ask.top_p as f32,
            top_k: ask.top_k,
            repetition_penalty: ask.repetition_penalty as f32,
            stop: ask.stop.clone(),
        };
        let request = InferenceRequest {
            chain_id: self.inf.chain().chain_id().to_string(),
            node: self.node(),
            model: r.model.clone(),
            model_hash: r.spec.content_hash,
            input_hash: input.hash(),
            tier: ask.tier,
            max_price,
            commercial: ask.commercial,
            salt: random_u64(),
            expires_ms: (self.inf.clock().now_ms() + LLM_REQUEST_TTL_MS)
                .min(grant.grant.expires_ms),
            escalation: ask.escalation,
        }
        .under_grant(grant.clone());
        // The ledger's settlement rule at the worst case (max_tokens generated, on top of what
        // is unsettled and in flight): a call this node could not be paid for (it is jailed or
        // unbonded, or its price does not cover what the owner and the treasury are owed) is
        // not run.
        let at = inference::Settlement {
            chain_id: self.inf.chain().chain_id(),
            height,
            time_ms: self.inf.clock().now_ms(),
            receipt_height: height,
        };
        let unsettled = inference::Unsettled {
            escrow: Amount(owed.0.saturating_add(held_caller)),
            grant: Amount(pending_under_grant.0.saturating_add(held_grant)),
        };
        let units = (n_prompt + max_tokens as usize) as u64;
        let p_inf = inference::params(&o).map_err(internal)?;
        let chain = opal_ledger::exec::params(&o).map_err(internal)?;
        let commit = CommitParams {
            chunk_size: chain.llm_commit_chunk,
            top_k: chain.llm_commit_top_k,
        };
        inference::terms(
            &o, &at, &p_inf, &request, max_price, units, false, unsettled,
        )
        .map_err(internal)?
        .map_err(|e| LlmServeError::from(ServeError::from_settle(e, request.id())))?;
        Ok(Prepared {
            id: r.id,
            model_ref: r.model,
            request,
            input,
            unit_price: r.unit_price,
            height,
            commit,
            model,
            _reservation: reservation,
        })
    }

    /// Run an admitted call: generate (calling `on_token` for each token; it returns false to
    /// stop), sign the receipt for the tokens produced, make it durable, return the reply.
    /// Blocking.
    pub fn run(
        &self,
        p: Prepared,
        on_token: &mut dyn FnMut(&str) -> bool,
    ) -> Result<LlmServed, LlmServeError> {
        let activations = p.request.request.tier == Tier::Activations;
        let req = GenerateRequest {
            prompt_tokens: p.input.prompt_tokens.clone(),
            max_tokens: p.input.max_tokens as usize,
            sampling: SamplingParams {
                seed: p.input.seed,
                temperature: p.input.temperature,
                top_p: p.input.top_p,
                top_k: p.input.top_k as usize,
                repetition_penalty: p.input.repetition_penalty,
            },
            stop: p.input.stop.clone(),
            // The chain's commitment parameters: verifiers require exactly these.
            commit_activations: activations.then_some(p.commit),
        };
        let t0 = Instant::now();
        // A checkable reply must end where generation ends (an end-of-turn token, a stop
        // sequence or max_tokens; verifiers refuse a reply cut short). So when the client of an
        // `activations` call goes away, the generation runs on, unstreamed, to its end, and the
        // receipt bills what was generated (within the max_tokens the caller signed and
        // reserved). Other tiers stop at once.
        let mut client_gone = false;
        let mut gen = p
            .model
            .generate(&req, &mut |ev| {
                if client_gone {
                    return true;
                }
                if on_token(&ev.text) {
                    return true;
                }
                client_gone = true;
                activations
            })
            .map_err(LlmServeError::from_llm)?;
        if self.inf.fault_wrong_output(&p.request.id()) && gen.tokens.len() >= 2 {
            // Fault injection (tests only): bill and sign a changed middle token.
            let mid = gen.tokens.len() / 2;
            gen.tokens[mid] = gen.tokens[mid].wrapping_add(1) % p.model.info().vocab_size as u32;
        }
        let compute_ms = t0.elapsed().as_secs_f64() * 1e3;
        let prompt_tokens = p.input.prompt_tokens.len() as u32;
        let completion_tokens = gen.tokens.len() as u32;
        let price = mul(
            p.unit_price,
            prompt_tokens as u128 + completion_tokens as u128,
        )?;
        let commitment = if activations {
            Some(
                gen.commitment
                    .as_ref()
                    .ok_or_else(|| {
                        LlmServeError::internal("the model produced no activation commitment")
                    })?
                    .to_bytes(),
            )
        } else {
            None
        };
        {
            // What the node must reveal if the receipt is audited or disputed (both tiers are
            // checked by the validators' committee): the signed input, the tokens and, for
            // `activations`, the commitment. Durable before the receipt exists.
            let mut outputs = vec![opal_types::llm::tokens_to_bytes(&gen.tokens)];
            outputs.extend(commitment.clone());
            self.inf
                .store_reveal_data(&p.request.id(), vec![p.input.to_bytes()], outputs)
                .map_err(|e| {
                    LlmServeError::internal(format!("cannot persist the reveal data: {e}"))
                })?;
        }
        let key = self.inf.key();
        let receipt = ReceiptBody {
            request: p.request.clone(),
            output_hash: opal_types::llm::output_hash(&gen.tokens, commitment.as_deref()),
            price,
            units: prompt_tokens as u64 + completion_tokens as u64,
            height: p.height,
            node_key: key.public_key(),
        }
        .sign(key);
        let mut envelope = ReceiptEnvelope::new(receipt);
        if let Some(bytes) = commitment {
            envelope.attachments.push(Attachment {
                tier: Tier::Activations,
                version: ACTIVATIONS_ATTACHMENT_VERSION,
                bytes,
            });
        }
        self.inf.log().record(&envelope)?;
        let finish_reason = match gen.finish_reason {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        };
        let receipt_json = receipt_json(&envelope, &p.input, &gen.tokens, p.unit_price, &p.id);
        Ok(LlmServed {
            text: gen.text,
            finish_reason,
            prompt_tokens,
            completion_tokens,
            envelope,
            receipt_json,
            compute_ms,
        })
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

    fn input() -> LlmInput {
        LlmInput {
            model: ModelRef::new("smollm2-135m", 1),
            prompt_tokens: vec![1, 2, 3],
            max_tokens: 8,
            seed: 42,
            temperature: 0.7,
            top_p: 0.9,
            top_k: 0,
            repetition_penalty: 1.0,
            stop: vec!["\n".into()],
        }
    }

    #[test]
    fn input_hash_binds_every_field() {
        let base = input().hash();
        assert_eq!(base, input().hash());
        type Change = Box<dyn Fn(&mut LlmInput)>;
        let variants: Vec<Change> = vec![
            Box::new(|i| i.model.version = 2),
            Box::new(|i| i.prompt_tokens.push(4)),
            Box::new(|i| i.max_tokens = 9),
            Box::new(|i| i.seed = 43),
            Box::new(|i| i.temperature = 0.8),
            Box::new(|i| i.top_p = 1.0),
            Box::new(|i| i.top_k = 40),
            Box::new(|i| i.repetition_penalty = 1.1),
            Box::new(|i| i.stop.clear()),
        ];
        for (n, f) in variants.iter().enumerate() {
            let mut i = input();
            f(&mut i);
            assert_ne!(i.hash(), base, "variant {n} did not change the input hash");
        }
        // The readable copy round-trips through JSON to the same hash.
        let back: LlmInput =
            serde_json::from_value(serde_json::to_value(input()).unwrap()).unwrap();
        assert_eq!(back.hash(), base);
    }

    #[test]
    fn output_hash_is_over_the_token_ids() {
        assert_eq!(llm_output_hash(&[1, 2]), llm_output_hash(&[1, 2]));
        assert_ne!(llm_output_hash(&[1, 2]), llm_output_hash(&[2, 1]));
        assert_ne!(llm_output_hash(&[]), llm_output_hash(&[0]));
    }

    #[test]
    fn errors_have_openai_shape() {
        let e = LlmServeError::model_not_found("nope");
        let b = e.body();
        assert_eq!(e.status, 404);
        assert_eq!(b["error"]["code"], "model_not_found");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(b["error"]["message"].as_str().unwrap().contains("nope"));
        let e = LlmServeError::from_llm(LlmError::ContextTooLong {
            tokens: 9000,
            max: 8192,
        });
        assert_eq!(e.status, 400);
        assert_eq!(e.body()["error"]["code"], "context_length_exceeded");
    }
}
