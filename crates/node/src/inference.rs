//! The inference-node role: serve registered ONNX models off the consensus path, answer with a
//! signed receipt, and settle receipts on chain in batches.
//!
//! Serving (`POST /api/infer`) checks, in order, everything the ledger will check at settlement
//! (signature, chain, node, expiry, model and content hash, the node's own offer and tier, the
//! licence, the price against the caller's maximum, the caller's escrow minus what this node has
//! served and not yet settled) plus the input hash, and only then runs the model. A request that
//! fails at any step gets a typed error and no receipt, so it can never be charged. A request id
//! is served at most once.
//!
//! Every receipt is written to `data/receipts.pending` (fsync) before the reply leaves, so a crash
//! never loses what the node is owed. A background task posts pending receipts in
//! `SettleReceipts` transactions signed by the node's account key, and forgets each once the
//! ledger has settled or rejected it.
//!
//! The `zk` tier: the node answers at once (the canonical output and a signed receipt), then a
//! background prover thread proves the answer with opal-zk (progress at `GET
//! /api/proofs/{request_id}`), keeps the evidence in `data/proofs/`, publishes the model's
//! verifying key on chain if nobody has, and settles the receipt with `SettleProved` so every
//! validator verifies the proof before the node is paid. A receipt whose proof is missing after
//! a restart is proved again from its reveal file.

use crate::app::Shared;
use crate::clock::now_ms;
use opal_artifacts::{ArtifactHash, ArtifactStore};
use opal_infer::{ModelCache, Tensor, TensorData};
use opal_ledger::canonical;
use opal_ledger::components::{inference, registry, verification};
use opal_state::Overlay;
use opal_types::receipt::{ReceiptBody, ReceiptEnvelope, SignedRequest, ZkEvidence};
use opal_types::registry::ModelFormat;
use opal_types::{Action, Address, Amount, Domain, Hash, Receipt, SecretKey, Tier};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most input tensors per request.
pub const MAX_INPUTS: usize = 16;
/// Farthest in the future a request may expire (ms after the node's clock).
pub const MAX_REQUEST_TTL_MS: u64 = 10 * 60 * 1000;

/// Hash of a list of tensors (the inputs or the outputs of one inference): each tensor's
/// canonical hash, in order, under their own domain.
pub fn tensors_hash(tensors: &[Tensor]) -> Hash {
    let hashes: Vec<[u8; 32]> = tensors.iter().map(|t| t.hash()).collect();
    let parts: Vec<&[u8]> = hashes.iter().map(|h| h.as_slice()).collect();
    Hash::of_parts(Domain::TensorList, &parts)
}

/// `OPAL_FAULT_WRONG_OUTPUT_BPS`: the share of requests (basis points) a test node answers
/// wrongly on purpose. Read only in builds with the `fault-injection` feature (the test
/// suite's); a release build ignores the variable and says so.
#[cfg(feature = "fault-injection")]
fn fault_injection_from_env() -> Option<u32> {
    let bps = std::env::var("OPAL_FAULT_WRONG_OUTPUT_BPS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    if let Some(bps) = bps {
        tracing::warn!(bps, "FAULT INJECTION: this node answers wrong outputs on purpose (OPAL_FAULT_WRONG_OUTPUT_BPS)");
    }
    bps
}

/// A wrong answer for fault injection: every float shifted by 0.5, every integer by 1 (far
/// beyond any committee's tolerance).
fn wrong_on_purpose(t: Tensor) -> Tensor {
    let shape = t.shape().to_vec();
    let data = match t.into_data() {
        TensorData::F32(v) => TensorData::F32(v.into_iter().map(|x| x + 0.5).collect()),
        TensorData::I64(v) => TensorData::I64(v.into_iter().map(|x| x.wrapping_add(1)).collect()),
        TensorData::I32(v) => TensorData::I32(v.into_iter().map(|x| x.wrapping_add(1)).collect()),
        TensorData::U8(v) => TensorData::U8(v.into_iter().map(|x| x.wrapping_add(1)).collect()),
    };
    Tensor::new(shape, data).expect("same shape and length")
}

#[cfg(not(feature = "fault-injection"))]
fn fault_injection_from_env() -> Option<u32> {
    if std::env::var_os("OPAL_FAULT_WRONG_OUTPUT_BPS").is_some() {
        tracing::warn!("OPAL_FAULT_WRONG_OUTPUT_BPS is ignored: this build has no fault injection (the `fault-injection` feature is for tests)");
    }
    None
}

/// Why a request was not served. Each has a stable code and an HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("the caller's signature over the request is invalid")]
    BadSignature,
    #[error("request is for chain {got:?}, this node is on {expected:?}")]
    WrongChain { expected: String, got: String },
    #[error("request is addressed to node {asked}, this node is {me}")]
    WrongNode { asked: Address, me: Address },
    #[error("request expired at {expires_ms} (now {now_ms})")]
    Expired { expires_ms: u64, now_ms: u64 },
    #[error("request expires too far ahead: at most {max_ms} ms from now")]
    ExpiryTooFar { max_ms: u64 },
    #[error("request {0} was already served")]
    Replayed(Hash),
    #[error("no model {0} is registered")]
    UnknownModel(String),
    #[error(
        "the request names content hash {requested}, model {model} is registered as {registered}"
    )]
    ModelHashMismatch {
        model: String,
        requested: Hash,
        registered: Hash,
    },
    #[error("this node does not offer {model} under tier {tier}")]
    NotOffered { model: String, tier: String },
    #[error("tier {0} is not served by this node")]
    TierUnsupported(String),
    #[error("licence: {0}")]
    Licence(String),
    #[error("price {price} exceeds the request's maximum {max}")]
    PriceAboveMax { price: Amount, max: Amount },
    #[error("escrow with this node holds {available} after unsettled requests, the price is {price}; fund it with `opal tx escrow fund`")]
    InsufficientEscrow { available: Amount, price: Amount },
    #[error("the caller's escrow with this node is closing")]
    EscrowClosing,
    #[error("the inputs hash to {actual}, the request says {expected}")]
    InputHashMismatch { expected: Hash, actual: Hash },
    #[error("model file {0} is not available on this node")]
    ModelUnavailable(String),
    #[error("inference failed: {0}")]
    Model(#[from] opal_infer::InferError),
    #[error("zk tier: {0}")]
    ZkSetup(String),
    #[error("too many unsettled receipts; try again shortly")]
    Busy,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServeError {
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::Malformed(_) => "malformed_request",
            ServeError::BadSignature => "bad_signature",
            ServeError::WrongChain { .. } => "wrong_chain",
            ServeError::WrongNode { .. } => "wrong_node",
            ServeError::Expired { .. } => "expired",
            ServeError::ExpiryTooFar { .. } => "expiry_too_far",
            ServeError::Replayed(_) => "replayed",
            ServeError::UnknownModel(_) => "unknown_model",
            ServeError::ModelHashMismatch { .. } => "model_hash_mismatch",
            ServeError::NotOffered { .. } => "not_offered",
            ServeError::TierUnsupported(_) => "tier_unsupported",
            ServeError::Licence(_) => "licence_forbids",
            ServeError::PriceAboveMax { .. } => "price_above_max",
            ServeError::InsufficientEscrow { .. } => "insufficient_escrow",
            ServeError::EscrowClosing => "escrow_closing",
            ServeError::InputHashMismatch { .. } => "input_hash_mismatch",
            ServeError::ModelUnavailable(_) => "model_unavailable",
            ServeError::Model(e) => e.code(),
            ServeError::ZkSetup(_) => "zk_unavailable",
            ServeError::Busy => "busy",
            ServeError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ServeError::Licence(_) => 403,
            ServeError::PriceAboveMax { .. }
            | ServeError::InsufficientEscrow { .. }
            | ServeError::EscrowClosing => 402,
            ServeError::Replayed(_) => 409,
            ServeError::UnknownModel(_) => 404,
            ServeError::ModelUnavailable(_) | ServeError::Busy | ServeError::ZkSetup(_) => 503,
            ServeError::Internal(_) => 500,
            ServeError::Model(e) if e.code() == "execution" => 500,
            _ => 400,
        }
    }
}

/// What the node answers.
#[derive(Debug, Clone, Serialize)]
pub struct Served {
    pub outputs: Vec<Tensor>,
    pub request_id: Hash,
    pub receipt_id: Hash,
    pub price: Amount,
    pub height: u64,
    /// The receipt envelope's canonical bytes, hex.
    pub receipt: String,
    /// Model execution time.
    pub compute_ms: f64,
}

struct PendingReceipt {
    receipt: Receipt,
    /// The settlement transaction carrying it, and when it was submitted.
    submitted: Option<(Hash, Instant)>,
}

#[derive(Default)]
struct Pending {
    receipts: BTreeMap<Hash, PendingReceipt>,
    /// Per caller: the requests served and not yet forgotten.
    by_caller: HashMap<Address, std::collections::BTreeSet<Hash>>,
}

impl Pending {
    fn add(&mut self, r: Receipt) {
        let caller = r.body.request.caller_address();
        self.by_caller
            .entry(caller)
            .or_default()
            .insert(r.request_id());
        self.receipts.insert(
            r.request_id(),
            PendingReceipt {
                receipt: r,
                submitted: None,
            },
        );
    }

    fn remove(&mut self, id: &Hash) {
        if let Some(p) = self.receipts.remove(id) {
            let caller = p.receipt.body.request.caller_address();
            if let Some(set) = self.by_caller.get_mut(&caller) {
                set.remove(id);
                if set.is_empty() {
                    self.by_caller.remove(&caller);
                }
            }
        }
    }

    /// What `caller` owes this node for requests served and not settled as of state `o` (a
    /// receipt already paid in `o` but not yet forgotten here is not counted twice).
    fn owed(&self, o: &Overlay, caller: &Address) -> Result<Amount, opal_ledger::LedgerError> {
        let mut owed: u128 = 0;
        for id in self.by_caller.get(caller).into_iter().flatten() {
            if inference::settled(o, id)?.is_none() {
                owed = owed.saturating_add(self.receipts[id].receipt.body.price.0);
            }
        }
        Ok(Amount(owed))
    }
}

/// Most unsettled receipts a node holds before it refuses new requests.
const MAX_PENDING: usize = 100_000;

pub struct InferenceService {
    key: SecretKey,
    address: Address,
    shared: Arc<Shared>,
    artifacts: Arc<ArtifactStore>,
    models: ModelCache,
    pending: Mutex<Pending>,
    pending_path: PathBuf,
    /// Serializes appends to the pending file.
    log: Mutex<()>,
    /// Loaded canonical models, by content hash.
    quant: Mutex<HashMap<String, Arc<opal_quant::QuantModel>>>,
    /// Threads for canonical execution (the bytes are the same for any count).
    quant_threads: usize,
    /// `data/reveal/`: inputs and outputs of canonical-model requests, kept until the ledger
    /// can no longer ask for them.
    reveal_dir: PathBuf,
    /// Reveals submitted recently (not resubmitted for 10 s).
    revealing: Mutex<HashMap<Hash, Instant>>,
    /// Testing only: answer wrong outputs for this many basis points of canonical requests.
    fault_wrong_output_bps: Option<u32>,
    /// `data/proofs/`: the zk evidence of served `zk` requests, `<request id>.bin` =
    /// borsh(`ZkEvidence`).
    proofs_dir: PathBuf,
    /// opal-zk setups of the models served in the `zk` tier, by content hash.
    zk_models: Mutex<HashMap<String, Arc<ZkModel>>>,
    /// Proof jobs and their state, by request id.
    proofs: Mutex<ProofQueue>,
    proof_ready: parking_lot::Condvar,
    /// Verifying keys submitted recently (not resubmitted for 30 s).
    publishing: Mutex<HashMap<Hash, Instant>>,
}

/// A model's opal-zk prover setup and its verifying key (whose id is the registered weight
/// commitment).
struct ZkModel {
    model: Arc<opal_quant::QuantModel>,
    setup: opal_zk::api::Setup,
    key: Vec<u8>,
}

/// Where a request's proof stands (`GET /api/proofs/{request_id}`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ProofState {
    Queued,
    Proving { progress: f32 },
    Done { proof_bytes: usize, prove_ms: f64 },
    Failed { error: String },
}

#[derive(Default)]
struct ProofQueue {
    jobs: VecDeque<Hash>,
    state: HashMap<Hash, ProofState>,
}

/// Most proof states remembered (finished ones are forgotten first).
const MAX_PROOF_STATES: usize = 100_000;

/// What admission found out about a request.
struct Admitted {
    price: Amount,
    content_hex: String,
    height: u64,
    format: ModelFormat,
    weight_commitment: Option<Hash>,
}

/// The inputs and outputs of one canonical-model request, as `RevealData` carries them.
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize)]
struct Reveal {
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
}

impl InferenceService {
    /// Open the service; reload unsettled receipts from `data/receipts.pending`.
    pub fn open(
        key: SecretKey,
        shared: Arc<Shared>,
        artifacts: Arc<ArtifactStore>,
        data_dir: PathBuf,
    ) -> Result<Arc<InferenceService>, String> {
        let pending_path = data_dir.join("receipts.pending");
        let reveal_dir = data_dir.join("reveal");
        let proofs_dir = data_dir.join("proofs");
        for d in [&reveal_dir, &proofs_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
        }
        let fault_wrong_output_bps = fault_injection_from_env();
        let mut pending = Pending::default();
        if pending_path.exists() {
            let text = std::fs::read_to_string(&pending_path)
                .map_err(|e| format!("read {}: {e}", pending_path.display()))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                // A torn last line (crash mid-append) is skipped; every earlier one was fsynced.
                let env = hex::decode(line.trim())
                    .ok()
                    .and_then(|b| ReceiptEnvelope::from_bytes(&b).ok());
                match env {
                    Some(e) => pending.add(e.receipt),
                    None => tracing::warn!(
                        "skipping unreadable line {} of {}",
                        i + 1,
                        pending_path.display()
                    ),
                }
            }
        }
        let svc = Arc::new(InferenceService {
            address: key.address(),
            key,
            shared,
            artifacts,
            models: ModelCache::new(8, opal_infer::Limits::default()),
            pending: Mutex::new(pending),
            pending_path,
            log: Mutex::new(()),
            quant: Mutex::new(HashMap::new()),
            quant_threads: std::env::var("OPAL_QUANT_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            reveal_dir,
            revealing: Mutex::new(HashMap::new()),
            fault_wrong_output_bps,
            proofs_dir,
            zk_models: Mutex::new(HashMap::new()),
            proofs: Mutex::new(ProofQueue::default()),
            proof_ready: parking_lot::Condvar::new(),
            publishing: Mutex::new(HashMap::new()),
        });
        svc.rewrite_pending()?;
        Ok(svc)
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn pending_count(&self) -> usize {
        self.pending.lock().receipts.len()
    }

    fn append_pending(&self, env: &ReceiptEnvelope) -> Result<(), String> {
        let _g = self.log.lock();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.pending_path)
            .map_err(|e| e.to_string())?;
        writeln!(f, "{}", hex::encode(env.to_bytes())).map_err(|e| e.to_string())?;
        f.sync_data().map_err(|e| e.to_string())
    }

    /// Rewrite the pending file with exactly the receipts still pending (atomic replace).
    fn rewrite_pending(&self) -> Result<(), String> {
        let _g = self.log.lock();
        let mut text = String::new();
        for p in self.pending.lock().receipts.values() {
            text.push_str(&hex::encode(
                ReceiptEnvelope::new(p.receipt.clone()).to_bytes(),
            ));
            text.push('\n');
        }
        crate::home::write_atomic(&self.pending_path, text.as_bytes(), false)
            .map_err(|e| e.to_string())
    }

    /// Check a request against chain state and this node's offer; return the price.
    fn admit(&self, sr: &SignedRequest) -> Result<Admitted, ServeError> {
        let req = &sr.request;
        sr.verify().map_err(|_| ServeError::BadSignature)?;
        if req.chain_id != self.shared.chain_id {
            return Err(ServeError::WrongChain {
                expected: self.shared.chain_id.clone(),
                got: req.chain_id.clone(),
            });
        }
        if req.node != self.address {
            return Err(ServeError::WrongNode {
                asked: req.node,
                me: self.address,
            });
        }
        let now = now_ms();
        if req.expires_ms < now {
            return Err(ServeError::Expired {
                expires_ms: req.expires_ms,
                now_ms: now,
            });
        }
        if req.expires_ms > now + MAX_REQUEST_TTL_MS {
            return Err(ServeError::ExpiryTooFar {
                max_ms: MAX_REQUEST_TTL_MS,
            });
        }
        let id = sr.id();
        let snap = self
            .shared
            .snapshot()
            .map_err(|e| ServeError::Internal(e.to_string()))?;
        let height = snap.version().unwrap_or(0);
        let o = Overlay::new(snap);
        let internal = |e: opal_ledger::LedgerError| ServeError::Internal(e.to_string());
        if self.pending.lock().receipts.contains_key(&id)
            || inference::settled(&o, &id).map_err(internal)?.is_some()
        {
            return Err(ServeError::Replayed(id));
        }
        let info = registry::model(&o, &req.model)
            .map_err(internal)?
            .ok_or_else(|| ServeError::UnknownModel(req.model.to_string()))?;
        if info.spec.content_hash != req.model_hash {
            return Err(ServeError::ModelHashMismatch {
                model: req.model.to_string(),
                requested: req.model_hash,
                registered: info.spec.content_hash,
            });
        }
        let offer = registry::service(&o, &self.address)
            .map_err(internal)?
            .and_then(|s| s.spec.offer(&req.model).cloned())
            .filter(|off| off.tiers.contains(&req.tier) && info.spec.tiers.contains(&req.tier))
            .ok_or_else(|| ServeError::NotOffered {
                model: req.model.to_string(),
                tier: req.tier.as_str().into(),
            })?;
        let canonical = info.spec.format == ModelFormat::OpalQuant;
        match req.tier {
            Tier::Signed => {}
            // The registry only lets canonical models into the replay and zk tiers.
            Tier::Replay | Tier::Zk if canonical => {}
            _ => return Err(ServeError::TierUnsupported(req.tier.as_str().into())),
        }
        if req.escalation.dispute && req.tier == Tier::Zk {
            return Err(ServeError::Malformed(
                "a zk-tier result is proved, not disputed: drop escalation.dispute".into(),
            ));
        }
        if req.escalation.dispute && !canonical {
            return Err(ServeError::TierUnsupported(
                "disputes (escalation.dispute) need a canonical opal_quant model".into(),
            ));
        }
        if req.escalation.audit_bps > opal_types::receipt::MAX_AUDIT_BPS {
            return Err(ServeError::Malformed(
                "escalation.audit_bps above 10000".into(),
            ));
        }
        info.spec
            .licence
            .permits(&sr.caller_address(), req.commercial)
            .map_err(ServeError::Licence)?;
        let price = info
            .spec
            .price
            .checked_add(info.spec.licence.fee())
            .and_then(|p| p.checked_add(offer.fee))
            .map_err(|e| ServeError::Internal(e.to_string()))?;
        if price > req.max_price {
            return Err(ServeError::PriceAboveMax {
                price,
                max: req.max_price,
            });
        }
        let escrow =
            inference::escrow(&o, &sr.caller_address(), &self.address).map_err(internal)?;
        if escrow.unlock_ms.is_some() {
            return Err(ServeError::EscrowClosing);
        }
        let p = self.pending.lock();
        if p.receipts.len() >= MAX_PENDING {
            return Err(ServeError::Busy);
        }
        let owed = p.owed(&o, &sr.caller_address()).map_err(internal)?;
        let available = Amount(escrow.balance.0.saturating_sub(owed.0));
        if available < price {
            return Err(ServeError::InsufficientEscrow { available, price });
        }
        Ok(Admitted {
            price,
            content_hex: info.spec.content_hash.to_hex(),
            height,
            format: info.spec.format,
            weight_commitment: info.spec.weight_commitment,
        })
    }

    /// Serve one request: admission, model run, signed receipt made durable, reply.
    pub fn serve(&self, sr: SignedRequest, inputs: Vec<Tensor>) -> Result<Served, ServeError> {
        if inputs.is_empty() || inputs.len() > MAX_INPUTS {
            return Err(ServeError::Malformed(format!(
                "1 to {MAX_INPUTS} input tensors expected, got {}",
                inputs.len()
            )));
        }
        let Admitted {
            price,
            content_hex,
            height,
            format,
            weight_commitment,
        } = self.admit(&sr)?;
        let actual = tensors_hash(&inputs);
        if actual != sr.request.input_hash {
            return Err(ServeError::InputHashMismatch {
                expected: sr.request.input_hash,
                actual,
            });
        }
        let ah = ArtifactHash::from_hex(&content_hex)
            .map_err(|e| ServeError::Internal(e.to_string()))?;
        if !self.artifacts.has(&ah) {
            return Err(ServeError::ModelUnavailable(content_hex));
        }
        let zk = sr.request.tier == Tier::Zk;
        if zk {
            // Before anything is served: the node must be able to prove for the registered
            // weight commitment, or it would be owed a receipt it can never settle.
            let registered = weight_commitment.ok_or_else(|| {
                ServeError::ZkSetup("the model has no registered weight commitment".into())
            })?;
            self.zk_model(&ah, &content_hex, registered)?;
        }
        let t0 = Instant::now();
        let (outputs, reveal) = if format == ModelFormat::OpalQuant {
            let (outputs, reveal) = self.run_canonical(&sr, &ah, &content_hex, &inputs)?;
            (outputs, Some(reveal))
        } else {
            // A float model's result is audited by the validators' committee, which re-runs
            // it within a tolerance: the node keeps what it would reveal, as for canonical ones.
            let mut outputs = self.run_onnx(&ah, &content_hex, &inputs)?;
            if self.fault_wrong_output(&sr.id()) {
                outputs = outputs.into_iter().map(wrong_on_purpose).collect();
            }
            let reveal = Reveal {
                inputs: inputs.iter().map(Tensor::canonical_bytes).collect(),
                outputs: outputs.iter().map(Tensor::canonical_bytes).collect(),
            };
            (outputs, Some(reveal))
        };
        let compute_ms = t0.elapsed().as_secs_f64() * 1e3;
        if let Some(r) = &reveal {
            // Kept until the ledger no longer needs it (a held result's reveal, or an audit).
            self.store_reveal(&sr.id(), r).map_err(|e| {
                ServeError::Internal(format!("cannot persist the reveal data: {e}"))
            })?;
        }
        let receipt = ReceiptBody {
            request: sr,
            output_hash: tensors_hash(&outputs),
            price,
            units: 1,
            height,
            node_key: self.key.public_key(),
        }
        .sign(&self.key);
        let env = ReceiptEnvelope::new(receipt.clone());
        {
            // Check-and-insert under the lock: the same request racing on two threads is
            // served once.
            let mut p = self.pending.lock();
            if p.receipts.contains_key(&receipt.request_id()) {
                return Err(ServeError::Replayed(receipt.request_id()));
            }
            p.add(receipt.clone());
        }
        if let Err(e) = self.append_pending(&env) {
            self.pending.lock().remove(&receipt.request_id());
            return Err(ServeError::Internal(format!(
                "cannot persist the receipt: {e}"
            )));
        }
        if zk {
            self.queue_proof(receipt.request_id());
        }
        Ok(Served {
            outputs,
            request_id: receipt.request_id(),
            receipt_id: receipt.id(),
            price,
            height,
            receipt: hex::encode(env.to_bytes()),
            compute_ms,
        })
    }

    fn run_onnx(
        &self,
        ah: &ArtifactHash,
        content_hex: &str,
        inputs: &[Tensor],
    ) -> Result<Vec<Tensor>, ServeError> {
        let mut io_error = None;
        let model = self
            .models
            .get_or_load_with(content_hex, || {
                std::fs::read(self.artifacts.path(ah)).map_err(|e| {
                    io_error = Some(e.to_string());
                    opal_infer::InferError::Execution {
                        reason: format!("reading the model file: {e}"),
                    }
                })
            })
            .map_err(|e| match io_error.take() {
                Some(io) => ServeError::ModelUnavailable(format!("{content_hex}: {io}")),
                None => ServeError::Model(e),
            })?;
        Ok(model.run(inputs)?)
    }

    /// The canonical model with this content hash, loaded once.
    fn quant_model(
        &self,
        ah: &ArtifactHash,
        content_hex: &str,
    ) -> Result<Arc<opal_quant::QuantModel>, ServeError> {
        if let Some(m) = self.quant.lock().get(content_hex).cloned() {
            return Ok(m);
        }
        let bytes = std::fs::read(self.artifacts.path(ah))
            .map_err(|e| ServeError::ModelUnavailable(format!("{content_hex}: {e}")))?;
        let m = Arc::new(
            canonical::load_model(&bytes).map_err(|e| ServeError::Malformed(e.to_string()))?,
        );
        let mut q = self.quant.lock();
        if q.len() >= 8 {
            q.clear();
        }
        q.insert(content_hex.to_string(), m.clone());
        Ok(m)
    }

    /// The opal-zk setup of a canonical model, made once; its verifying key must be the
    /// registered weight commitment `registered`.
    fn zk_model(
        &self,
        ah: &ArtifactHash,
        content_hex: &str,
        registered: Hash,
    ) -> Result<Arc<ZkModel>, ServeError> {
        if let Some(z) = self.zk_models.lock().get(content_hex).cloned() {
            return Ok(z);
        }
        let model = self.quant_model(ah, content_hex)?;
        let t0 = Instant::now();
        let setup = opal_zk::api::setup(&model).map_err(|e| ServeError::ZkSetup(e.to_string()))?;
        let key = opal_zk::api::verifying_key(&setup).to_bytes();
        let id = Hash(*blake3::hash(&key).as_bytes());
        if id != registered {
            return Err(ServeError::ZkSetup(format!(
                "this node's verifying key for the model is {id}, the registered weight commitment is {registered}"
            )));
        }
        tracing::info!(model = %content_hex, key = %id, ms = t0.elapsed().as_millis() as u64, "zk setup made");
        let z = Arc::new(ZkModel { model, setup, key });
        let mut m = self.zk_models.lock();
        if m.len() >= 8 {
            m.clear();
        }
        m.insert(content_hex.to_string(), z.clone());
        Ok(z)
    }

    /// Run a canonical quantized model ([`opal_ledger::canonical`], the function the ledger
    /// re-executes): bit-identical on every machine and thread count.
    fn run_canonical(
        &self,
        sr: &SignedRequest,
        ah: &ArtifactHash,
        content_hex: &str,
        inputs: &[Tensor],
    ) -> Result<(Vec<Tensor>, Reveal), ServeError> {
        let model = self.quant_model(ah, content_hex)?;
        let in_bytes: Vec<Vec<u8>> = inputs.iter().map(Tensor::canonical_bytes).collect();
        let opts = canonical::ExecOptions {
            threads: self.quant_threads,
            path: if opal_quant::portable_forced() {
                canonical::ExecPath::Portable
            } else {
                canonical::ExecPath::Auto
            },
        };
        let mut out_bytes = canonical::run(&model, &in_bytes, u64::MAX, opts)
            .map_err(|e| ServeError::Malformed(e.to_string()))?;
        if self.fault_wrong_output(&sr.id()) {
            if let Some(last) = out_bytes[0].last_mut() {
                *last ^= 0x01;
            }
        }
        let outputs = out_bytes
            .iter()
            .map(|b| Tensor::from_canonical_bytes(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            outputs,
            Reveal {
                inputs: in_bytes,
                outputs: out_bytes,
            },
        ))
    }

    fn reveal_path(&self, id: &Hash) -> PathBuf {
        self.reveal_dir.join(format!("{}.bin", id.to_hex()))
    }

    fn store_reveal(&self, id: &Hash, r: &Reveal) -> std::io::Result<()> {
        let path = self.reveal_path(id);
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&borsh::to_vec(r).map_err(std::io::Error::other)?)?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, &path)
    }

    /// Fault injection for tests of the verification machinery (`OPAL_FAULT_WRONG_OUTPUT_BPS`,
    /// only in builds with the `fault-injection` feature): whether this node answers request
    /// `id` wrongly on purpose (a deterministic fraction of requests, decided by the id).
    /// Always false in a normal build.
    pub fn fault_wrong_output(&self, id: &Hash) -> bool {
        self.fault_wrong_output_bps.is_some_and(|bps| {
            u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes")) % 10_000 < bps as u64
        })
    }

    /// Keep what `RevealData` would carry for request `id` (used by the LLM service for
    /// `activations` receipts), durably, until the ledger can no longer ask for it.
    pub fn store_reveal_data(
        &self,
        id: &Hash,
        inputs: Vec<Vec<u8>>,
        outputs: Vec<Vec<u8>>,
    ) -> std::io::Result<()> {
        self.store_reveal(id, &Reveal { inputs, outputs })
    }

    fn load_reveal(&self, id: &Hash) -> Option<Reveal> {
        let bytes = std::fs::read(self.reveal_path(id)).ok()?;
        borsh::from_slice(&bytes).ok()
    }

    /// Reveal the data of this node's open cases (held results, audits) that it has not
    /// revealed, and forget reveal files the ledger can no longer ask for.
    pub fn reveal_pass(&self) -> Result<(), String> {
        let snap = self.shared.snapshot()?;
        let height = snap.version().unwrap_or(0);
        let o = Overlay::new(snap);
        let cases = verification::open_cases(&o, 100_000).map_err(|e| e.to_string())?;
        let mut open = std::collections::HashSet::new();
        for c in cases.iter().filter(|c| c.node == self.address) {
            open.insert(c.request_id);
            if c.revealed.is_some() {
                continue;
            }
            {
                let mut r = self.revealing.lock();
                if r.get(&c.request_id)
                    .is_some_and(|at| at.elapsed() < Duration::from_secs(10))
                {
                    continue;
                }
                r.insert(c.request_id, Instant::now());
            }
            let Some(data) = self.load_reveal(&c.request_id) else {
                tracing::error!(request = %c.request_id, "asked to reveal a request whose data this node does not hold");
                continue;
            };
            let action = Action::RevealData {
                request_id: c.request_id,
                inputs: data.inputs,
                outputs: data.outputs,
            };
            match self.submit_action(action) {
                Ok(tx) => {
                    tracing::info!(request = %c.request_id, tx = %tx, kind = ?c.kind, "revealed inputs and outputs")
                }
                Err(e) => tracing::warn!(request = %c.request_id, "reveal: {e}"),
            }
        }
        self.revealing.lock().retain(|id, _| open.contains(id));
        // A file can go once its request settled (or was dropped) at least two blocks ago
        // (so its audit draw happened) and no case is open for it.
        let Ok(dir) = std::fs::read_dir(&self.reveal_dir) else {
            return Ok(());
        };
        for e in dir.flatten().take(10_000) {
            let name = e.file_name();
            let Some(hex_id) = name.to_str().and_then(|n| n.strip_suffix(".bin")) else {
                continue;
            };
            let Ok(id) = Hash::from_hex(hex_id) else {
                continue;
            };
            if open.contains(&id) || self.pending.lock().receipts.contains_key(&id) {
                continue;
            }
            let gone = match inference::settled(&o, &id).map_err(|e| e.to_string())? {
                Some(st) => st.height + 2 <= height,
                None => true,
            };
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d > Duration::from_secs(30));
            if gone && old {
                let _ = std::fs::remove_file(e.path());
            }
        }
        // Proofs: kept 15 minutes after their receipt left the pending log, for the caller.
        if let Ok(dir) = std::fs::read_dir(&self.proofs_dir) {
            for e in dir.flatten().take(10_000) {
                let name = e.file_name();
                let Some(id) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".bin"))
                    .and_then(|h| Hash::from_hex(h).ok())
                else {
                    continue;
                };
                if self.pending.lock().receipts.contains_key(&id) {
                    continue;
                }
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|d| d > Duration::from_secs(15 * 60));
                if old {
                    let _ = std::fs::remove_file(e.path());
                    self.proofs.lock().state.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// One pass of the settlement loop: forget settled or rejected receipts, resubmit stale
    /// submissions, submit new batches to the local mempool.
    pub fn settle_pass(&self) -> Result<(), String> {
        let snap = self.shared.snapshot()?;
        let o = Overlay::new(snap.clone());
        let p_inf = inference::params(&o).map_err(|e| e.to_string())?;
        let block_time = self
            .shared
            .stored_block(&snap, snap.version().unwrap_or(0))?
            .and_then(|b| b.block().ok())
            .map(|b| b.header.time_ms)
            .unwrap_or(0);
        let mut changed = false;
        {
            let mut p = self.pending.lock();
            let ids: Vec<Hash> = p.receipts.keys().copied().collect();
            for id in ids {
                let pr = &p.receipts[&id];
                let settled = inference::settled(&o, &id)
                    .map_err(|e| e.to_string())?
                    .is_some();
                let committed = match pr.submitted {
                    Some((tx, _)) => self.shared.tx_location(&snap, &tx)?.is_some(),
                    None => false,
                };
                let req = &pr.receipt.body.request.request;
                let too_late = block_time > req.expires_ms.saturating_add(p_inf.settle_grace_ms);
                if settled {
                    p.remove(&id);
                    changed = true;
                } else if committed || too_late {
                    tracing::warn!(request = %id, too_late, "receipt was not paid by the ledger; dropping it (see the block's ReceiptRejected event)");
                    p.remove(&id);
                    changed = true;
                } else if let Some((_, at)) = pr.submitted {
                    if at.elapsed() > Duration::from_secs(30) {
                        p.receipts.get_mut(&id).expect("present").submitted = None;
                    }
                }
            }
        }
        if changed {
            self.rewrite_pending()?;
        }
        self.zk_settle_pass(&o)?;
        loop {
            // As many receipts as fit in one transaction (count and byte limits).
            let budget = (self.shared.params.max_tx_bytes as usize).saturating_sub(512);
            let batch: Vec<Receipt> = {
                let p = self.pending.lock();
                let mut bytes = 0usize;
                p.receipts
                    .values()
                    // zk receipts settle one by one with their proofs (`zk_settle_pass`).
                    .filter(|r| {
                        r.submitted.is_none() && r.receipt.body.request.request.tier != Tier::Zk
                    })
                    .take(p_inf.max_receipts_per_tx as usize)
                    .take_while(|r| {
                        bytes += opal_types::encode(&r.receipt).len();
                        bytes <= budget
                    })
                    .map(|r| r.receipt.clone())
                    .collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            let ids: Vec<Hash> = batch.iter().map(|r| r.request_id()).collect();
            let hash = self.submit(batch)?;
            let mut p = self.pending.lock();
            for id in ids {
                if let Some(r) = p.receipts.get_mut(&id) {
                    r.submitted = Some((hash, Instant::now()));
                }
            }
        }
    }

    /// Settle the proved `zk` receipts (one `SettleProved` each, after the model's verifying
    /// key is on chain); queue the proofs a restart lost.
    fn zk_settle_pass(&self, o: &Overlay) -> Result<(), String> {
        let waiting: Vec<Receipt> = self
            .pending
            .lock()
            .receipts
            .values()
            .filter(|r| r.submitted.is_none() && r.receipt.body.request.request.tier == Tier::Zk)
            .map(|r| r.receipt.clone())
            .collect();
        for r in waiting {
            let id = r.request_id();
            let Some(evidence) = self.load_proof(&id) else {
                let known = self.proofs.lock().state.contains_key(&id);
                if !known {
                    // Served before a restart: prove it again from its reveal file.
                    self.queue_proof(id);
                }
                continue;
            };
            let req = &r.body.request.request;
            let Some(info) = registry::model(o, &req.model).map_err(|e| e.to_string())? else {
                continue;
            };
            let Some(wc) = info.spec.weight_commitment else {
                continue;
            };
            if opal_ledger::components::zk::key_bytes(o, &wc)
                .map_err(|e| e.to_string())?
                .is_none()
            {
                self.publish_key(&info.spec.content_hash.to_hex(), wc);
                continue;
            }
            // One refused submission (a full mempool) must not hold up the other settlements.
            let hash = match self.submit_action(Action::SettleProved {
                receipt: Box::new(r.clone()),
                evidence,
            }) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(request = %id, "proved settlement not submitted: {e}");
                    continue;
                }
            };
            tracing::info!(request = %id, tx = %hash, "proved settlement submitted");
            if let Some(p) = self.pending.lock().receipts.get_mut(&id) {
                p.submitted = Some((hash, Instant::now()));
            }
        }
        Ok(())
    }

    /// Publish a model's verifying key (the ledger needs it to check proofs); at most every 30 s.
    fn publish_key(&self, content_hex: &str, wc: Hash) {
        {
            let mut p = self.publishing.lock();
            if p.get(&wc)
                .is_some_and(|at| at.elapsed() < Duration::from_secs(30))
            {
                return;
            }
            p.insert(wc, Instant::now());
        }
        let z = ArtifactHash::from_hex(content_hex)
            .map_err(|e| ServeError::Internal(e.to_string()))
            .and_then(|ah| self.zk_model(&ah, content_hex, wc));
        match z.map_err(|e| e.to_string()).and_then(|z| {
            self.submit_action(Action::PublishZkKey {
                key: z.key.clone(),
                model: z.model.to_file_bytes(),
            })
        }) {
            Ok(tx) => {
                tracing::info!(key = %wc, tx = %tx, "publishing the model's zk verifying key")
            }
            Err(e) => tracing::warn!(key = %wc, "cannot publish the zk verifying key: {e}"),
        }
    }

    fn proof_path(&self, id: &Hash) -> PathBuf {
        self.proofs_dir.join(format!("{}.bin", id.to_hex()))
    }

    fn load_proof(&self, id: &Hash) -> Option<ZkEvidence> {
        let bytes = std::fs::read(self.proof_path(id)).ok()?;
        ZkEvidence::from_bytes(&bytes).ok()
    }

    fn queue_proof(&self, id: Hash) {
        let mut q = self.proofs.lock();
        if matches!(
            q.state.get(&id),
            Some(ProofState::Queued | ProofState::Proving { .. } | ProofState::Done { .. })
        ) {
            return;
        }
        if q.state.len() >= MAX_PROOF_STATES {
            q.state
                .retain(|_, st| matches!(st, ProofState::Queued | ProofState::Proving { .. }));
        }
        q.state.insert(id, ProofState::Queued);
        q.jobs.push_back(id);
        self.proof_ready.notify_one();
    }

    /// Where the proof of `id` stands, and its evidence once it is done. `None`: this node
    /// knows of no proof for that request.
    pub fn proof_status(&self, id: &Hash) -> Option<(ProofState, Option<ZkEvidence>)> {
        let st = self.proofs.lock().state.get(id).cloned();
        match st {
            Some(ProofState::Done { .. }) | None => {
                let ev = self.load_proof(id)?;
                let st = st.unwrap_or(ProofState::Done {
                    proof_bytes: ev.proof.len(),
                    prove_ms: 0.0,
                });
                Some((st, Some(ev)))
            }
            Some(st) => Some((st, None)),
        }
    }

    /// The prover thread: proves queued `zk` requests one at a time, in order.
    fn prover_loop(self: Arc<Self>) {
        loop {
            let id = {
                let mut q = self.proofs.lock();
                loop {
                    if let Some(id) = q.jobs.pop_front() {
                        break id;
                    }
                    self.proof_ready.wait(&mut q);
                }
            };
            self.proofs
                .lock()
                .state
                .insert(id, ProofState::Proving { progress: 0.0 });
            let t0 = Instant::now();
            let st = match self.prove_one(&id) {
                Ok(n) => {
                    let prove_ms = t0.elapsed().as_secs_f64() * 1e3;
                    tracing::info!(request = %id, proof_bytes = n, prove_ms, "proved");
                    ProofState::Done {
                        proof_bytes: n,
                        prove_ms,
                    }
                }
                Err(e) => {
                    tracing::error!(request = %id, "cannot prove: {e}");
                    ProofState::Failed { error: e }
                }
            };
            self.proofs.lock().state.insert(id, st);
        }
    }

    /// Prove one served request from its reveal file and keep the evidence; the proof's output
    /// must be the output the node answered.
    fn prove_one(&self, id: &Hash) -> Result<usize, String> {
        if let Some(ev) = self.load_proof(id) {
            return Ok(ev.proof.len());
        }
        let r = self
            .pending
            .lock()
            .receipts
            .get(id)
            .map(|p| p.receipt.clone())
            .ok_or("the receipt is no longer pending")?;
        let data = self
            .load_reveal(id)
            .ok_or("the request's inputs and outputs are not on this node")?;
        let req = &r.body.request.request;
        let o = Overlay::new(self.shared.snapshot()?);
        let info = registry::model(&o, &req.model)
            .map_err(|e| e.to_string())?
            .ok_or("the model is no longer registered")?;
        let wc = info
            .spec
            .weight_commitment
            .ok_or("the model has no weight commitment")?;
        let content_hex = info.spec.content_hash.to_hex();
        let ah = ArtifactHash::from_hex(&content_hex).map_err(|e| e.to_string())?;
        let z = self
            .zk_model(&ah, &content_hex, wc)
            .map_err(|e| e.to_string())?;
        let x = canonical::quantized_input(&z.model, &data.inputs).map_err(|e| e.to_string())?;
        let mut last = 0.0f32;
        let (y, proof) = opal_zk::api::prove(&z.model, &z.setup, &x, &mut |p| {
            if p - last >= 0.01 || p >= 1.0 {
                last = p;
                self.proofs
                    .lock()
                    .state
                    .insert(*id, ProofState::Proving { progress: p });
            }
        })
        .map_err(|e| e.to_string())?;
        if data.outputs.len() != 1 || canonical::output_tensor_bytes(&y) != data.outputs[0] {
            return Err(
                "the answered output is not what the model computes; it cannot be proved".into(),
            );
        }
        let ev = ZkEvidence {
            inputs: data.inputs,
            outputs: data.outputs,
            proof,
        };
        let n = ev.proof.len();
        crate::home::write_atomic(&self.proof_path(id), &opal_types::encode(&ev), false)
            .map_err(|e| format!("cannot keep the proof: {e}"))?;
        Ok(n)
    }

    fn submit(&self, receipts: Vec<Receipt>) -> Result<Hash, String> {
        self.submit_action(Action::SettleReceipts { receipts })
    }

    fn submit_action(&self, action: Action) -> Result<Hash, String> {
        let n = match &action {
            Action::SettleReceipts { receipts } => receipts.len(),
            _ => 0,
        };
        let h = crate::local::submit(&self.shared, &self.key, action).map_err(|e| e.to_string())?;
        if n > 0 {
            tracing::info!(tx = %h, receipts = n, "settlement submitted");
        }
        Ok(h)
    }

    /// Fetch the files of the models this node offers and does not hold yet from other nodes
    /// (the endpoints of every declared service, plus `extra_peers`), by content hash. The
    /// artifact store hashes what arrives and refuses a mismatching file, trying the next peer.
    pub async fn sync_artifacts(&self, http: &reqwest::Client, extra_peers: &[String]) {
        let Ok(snap) = self.shared.snapshot() else {
            return;
        };
        let o = Overlay::new(snap);
        let Ok(Some(mine)) = registry::service(&o, &self.address) else {
            return;
        };
        let mut peers: Vec<String> = registry::services(&o)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.node != self.address)
            .map(|s| s.spec.endpoint)
            .collect();
        peers.extend(extra_peers.iter().cloned());
        for offer in &mine.spec.offers {
            let Ok(Some(m)) = registry::model(&o, &offer.model) else {
                continue;
            };
            let h = ArtifactHash(m.spec.content_hash.0);
            if self.artifacts.has(&h) {
                continue;
            }
            if peers.is_empty() {
                tracing::warn!(model = %offer.model, "model file missing and no peer to fetch it from; upload it with `opal model upload`");
                continue;
            }
            match opal_artifacts::fetch_into_store_async(http, &peers, &h, self.artifacts.clone())
                .await
            {
                Ok(r) => {
                    tracing::info!(model = %offer.model, peer = %r.peer, bytes = r.size, "fetched model file")
                }
                Err(e) => {
                    tracing::warn!(model = %offer.model, "could not fetch the model file: {e}")
                }
            }
        }
    }

    /// Keep the offered models' files present: [`Self::sync_artifacts`] every `every`.
    pub fn spawn_artifact_sync(
        self: &Arc<Self>,
        every: Duration,
        extra_peers: Vec<String>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let http = match reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("artifact sync disabled: {e}");
                    return;
                }
            };
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                me.sync_artifacts(&http, &extra_peers).await;
            }
        })
    }

    /// Run the settlement loop until the process ends.
    pub fn spawn_settlement(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let prover = self.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("opal-zk-prover".into())
            .spawn(move || prover.prover_loop())
        {
            tracing::error!("zk prover thread not started: {e}");
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let m = me.clone();
                match tokio::task::spawn_blocking(move || {
                    m.settle_pass().and_then(|()| m.reveal_pass())
                })
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("settlement pass: {e}"),
                    Err(e) => tracing::error!("settlement pass panicked: {e}"),
                }
            }
        })
    }
}

/// What the OpenAI-compatible LLM service (`crate::llm`) shares with this service: the node's
/// key and state, the artifact store, and the one pending-receipt log and settlement loop, so an
/// LLM receipt is persisted, counted against the caller's escrow and settled like any other.
impl InferenceService {
    pub(crate) fn key(&self) -> &SecretKey {
        &self.key
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn artifacts(&self) -> &Arc<ArtifactStore> {
        &self.artifacts
    }

    /// What `caller` owes this node for served, unsettled requests as of state `o`.
    pub(crate) fn owed_by(
        &self,
        o: &Overlay,
        caller: &Address,
    ) -> Result<Amount, opal_ledger::LedgerError> {
        self.pending.lock().owed(o, caller)
    }

    /// Sum of the prices of the pending receipts of `caller` that `f` selects and that are not
    /// settled as of state `o`.
    pub(crate) fn pending_sum(
        &self,
        o: &Overlay,
        caller: &Address,
        f: impl Fn(&Receipt) -> bool,
    ) -> Result<Amount, opal_ledger::LedgerError> {
        let p = self.pending.lock();
        let mut sum: u128 = 0;
        for id in p.by_caller.get(caller).into_iter().flatten() {
            let r = &p.receipts[id].receipt;
            if f(r) && inference::settled(o, id)?.is_none() {
                sum = sum.saturating_add(r.body.price.0);
            }
        }
        Ok(Amount(sum))
    }

    /// Whether the node holds too many unsettled receipts to take new work.
    pub(crate) fn is_full(&self) -> bool {
        self.pending.lock().receipts.len() >= MAX_PENDING
    }

    /// Make a signed receipt durable (fsync) and queue it for settlement; a request id is
    /// recorded at most once.
    pub(crate) fn record_receipt(&self, env: &ReceiptEnvelope) -> Result<(), ServeError> {
        let receipt = &env.receipt;
        {
            let mut p = self.pending.lock();
            if p.receipts.contains_key(&receipt.request_id()) {
                return Err(ServeError::Replayed(receipt.request_id()));
            }
            p.add(receipt.clone());
        }
        if let Err(e) = self.append_pending(env) {
            self.pending.lock().remove(&receipt.request_id());
            return Err(ServeError::Internal(format!(
                "cannot persist the receipt: {e}"
            )));
        }
        Ok(())
    }
}
