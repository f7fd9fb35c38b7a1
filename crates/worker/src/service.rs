//! The worker: serve requests under admission, keep every receipt in the log, and settle,
//! reveal and prove in passes that a node's timer drives.

use crate::admission::{self, Admitted, Admitter};
use crate::backend::{Backends, Plan, Reveal, Run};
use crate::chain::{Chain, ChainError, Committed};
use crate::clock::Clock;
use crate::error::ServeError;
use crate::files::IdFiles;
use crate::log::{LogError, ReceiptLog};
use crate::prover::{ProofQueue, ProofState};
use crate::{fault, tensors_hash};
use opal_artifacts::{ArtifactHash, ArtifactStore};
use opal_infer::Tensor;
use opal_ledger::canonical;
use opal_ledger::components::{inference, registry, verification};
use opal_types::receipt::{ReceiptBody, ReceiptEnvelope, SignedRequest, ZkEvidence};
use opal_types::registry::ModelFormat;
use opal_types::{Action, Address, Amount, Hash, Receipt, SecretKey, Tier};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Most input tensors per request.
pub const MAX_INPUTS: usize = 16;
/// A settlement not committed after this long is submitted again.
const RESUBMIT_MS: u64 = 30_000;
/// A reveal is not submitted twice within this long.
const REVEAL_AGAIN_MS: u64 = 10_000;
/// A verifying key is not published twice within this long.
const PUBLISH_AGAIN_MS: u64 = 30_000;
/// Proofs are kept this long after their receipt left the log, for the caller to fetch.
const PROOF_KEEP_MS: u64 = 15 * 60 * 1000;
/// Models whose plans are kept loaded (the cache is cleared when it is full).
const PLANS: usize = 8;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Threads for canonical execution (the bytes are the same for any count).
    pub quant_threads: usize,
    /// Testing only: answer wrong outputs for this many basis points of requests.
    pub fault_wrong_output_bps: Option<u32>,
}

impl Options {
    /// `OPAL_QUANT_THREADS` (default 1), and `OPAL_FAULT_WRONG_OUTPUT_BPS` in builds with
    /// fault injection.
    pub fn from_env() -> Options {
        Options {
            quant_threads: std::env::var("OPAL_QUANT_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            fault_wrong_output_bps: fault::from_env(),
        }
    }
}

/// Why the worker could not open or run a pass (its files or the chain beneath it).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl From<opal_ledger::LedgerError> for WorkerError {
    fn from(e: opal_ledger::LedgerError) -> WorkerError {
        WorkerError::Chain(e.into())
    }
}

/// What the node answers.
#[derive(Debug, Clone)]
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

/// A model's opal-zk prover setup and its verifying key (whose id is the registered weight
/// commitment).
struct ZkModel {
    model: Arc<opal_quant::QuantModel>,
    setup: opal_zk::api::Setup,
    key: Vec<u8>,
}

/// What is made once per model file, by content hash: at most [`PLANS`] of them, all forgotten
/// when full. (Two requests racing on a new model may both make it; one is kept.)
/// Values made once per key (plans, zk setups). Each key has its own slot, locked while its
/// value is made, so a model is loaded once however many requests ask for it at the same time,
/// and loading one model does not hold up requests for another.
struct Loaded<T: ?Sized>(Mutex<HashMap<String, Slot<T>>>);

type Slot<T> = Arc<Mutex<Option<Arc<T>>>>;

impl<T: ?Sized> Default for Loaded<T> {
    fn default() -> Self {
        Loaded(Mutex::new(HashMap::new()))
    }
}

impl<T: ?Sized> Loaded<T> {
    fn get_or_make(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Arc<T>, ServeError>,
    ) -> Result<Arc<T>, ServeError> {
        let slot = {
            let mut m = self.0.lock();
            if !m.contains_key(key) && m.len() >= PLANS {
                // Full: forget what is loaded (requests in flight keep their own Arc).
                m.clear();
            }
            m.entry(key.to_string()).or_default().clone()
        };
        let mut g = slot.lock();
        if let Some(v) = g.as_ref() {
            return Ok(v.clone());
        }
        let v = make()?;
        *g = Some(v.clone());
        Ok(v)
    }

    /// The value for `key` if it is made, without waiting for one being made.
    fn peek(&self, key: &str) -> Option<Arc<T>> {
        let slot = self.0.lock().get(key).cloned()?;
        let g = slot.try_lock()?;
        g.clone()
    }
}

pub struct InferenceService {
    key: SecretKey,
    address: Address,
    chain: Arc<dyn Chain>,
    clock: Arc<dyn Clock>,
    artifacts: Arc<ArtifactStore>,
    backends: Backends,
    options: Options,
    log: ReceiptLog,
    /// Loaded plans, by content hash.
    plans: Loaded<dyn Plan>,
    /// `data/reveal/`: inputs and outputs of served requests, kept until the ledger can no
    /// longer ask for them.
    reveals: IdFiles,
    /// Reveals submitted recently, with the clock reading.
    revealing: Mutex<HashMap<Hash, u64>>,
    /// `data/proofs/`: the zk evidence of served `zk` requests, borsh(`ZkEvidence`).
    proofs: IdFiles,
    /// opal-zk setups of the models served in the `zk` tier, by content hash.
    zk_models: Loaded<ZkModel>,
    proof_queue: ProofQueue,
    /// Verifying keys submitted recently, with the clock reading.
    publishing: Mutex<HashMap<Hash, u64>>,
}

impl InferenceService {
    /// Open the worker over `data_dir`: reload unsettled receipts from `receipts.pending`.
    pub fn open(
        key: SecretKey,
        chain: Arc<dyn Chain>,
        clock: Arc<dyn Clock>,
        artifacts: Arc<ArtifactStore>,
        data_dir: PathBuf,
        options: Options,
    ) -> Result<Arc<InferenceService>, WorkerError> {
        let files = |name: &'static str| {
            let path = data_dir.join(name);
            IdFiles::open(path.clone()).map_err(|source| WorkerError::Io {
                what: "create",
                path,
                source,
            })
        };
        Ok(Arc::new(InferenceService {
            address: key.address(),
            key,
            chain,
            clock,
            artifacts,
            backends: Backends::all(options.quant_threads),
            log: ReceiptLog::open(data_dir.join("receipts.pending"))?,
            options,
            plans: Loaded::default(),
            reveals: files("reveal")?,
            revealing: Mutex::new(HashMap::new()),
            proofs: files("proofs")?,
            zk_models: Loaded::default(),
            proof_queue: ProofQueue::default(),
            publishing: Mutex::new(HashMap::new()),
        }))
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    pub fn chain(&self) -> &Arc<dyn Chain> {
        &self.chain
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn artifacts(&self) -> &Arc<ArtifactStore> {
        &self.artifacts
    }

    /// The receipt log (what the node is owed), shared with the node's LLM service.
    pub fn log(&self) -> &ReceiptLog {
        &self.log
    }

    pub fn pending_count(&self) -> usize {
        self.log.len()
    }

    /// Whether this node answers request `id` wrongly on purpose (fault injection, tests only;
    /// always false in a normal build).
    pub fn fault_wrong_output(&self, id: &Hash) -> bool {
        fault::lies_on(self.options.fault_wrong_output_bps, id)
    }

    /// Admission of a tensor-model request at the worker's clock: [`admission::admit`] over the
    /// latest committed state, counting the caller's unsettled receipts.
    pub fn admit(&self, sr: &SignedRequest) -> Result<Admitted, ServeError> {
        let id = sr.id();
        if self.log.contains(&id) {
            return Err(ServeError::Replayed(id));
        }
        if self.log.is_full() {
            return Err(ServeError::Busy);
        }
        let c = self.chain.committed()?;
        let grant = sr.grant.as_ref().map(|g| g.id());
        let unsettled = self
            .log
            .unsettled(&c.state, &sr.caller_address(), grant.as_ref())?;
        let who = Admitter {
            chain_id: self.chain.chain_id(),
            node: self.address,
        };
        admission::admit(&c, who, self.clock.now_ms(), sr, unsettled)
    }

    /// Serve one request: admission, model run, signed receipt made durable, reply.
    pub fn serve(&self, sr: SignedRequest, inputs: Vec<Tensor>) -> Result<Served, ServeError> {
        if inputs.is_empty() || inputs.len() > MAX_INPUTS {
            return Err(ServeError::Malformed(format!(
                "1 to {MAX_INPUTS} input tensors expected, got {}",
                inputs.len()
            )));
        }
        let admitted = self.admit(&sr)?;
        let actual = tensors_hash(&inputs);
        if actual != sr.request.input_hash {
            return Err(ServeError::InputHashMismatch {
                expected: sr.request.input_hash,
                actual,
            });
        }
        let spec = &admitted.terms.info.spec;
        let content_hex = spec.content_hash.to_hex();
        let ah = ArtifactHash(spec.content_hash.0);
        if !self.artifacts.has(&ah) {
            return Err(ServeError::ModelUnavailable(content_hex));
        }
        let zk = sr.request.tier == Tier::Zk;
        if zk {
            // Before anything is served: the node must be able to prove for the registered
            // weight commitment, or it would be owed a receipt it can never settle.
            let registered = spec.weight_commitment.ok_or_else(|| {
                ServeError::ZkSetup("the model has no registered weight commitment".into())
            })?;
            self.zk_model(&ah, registered)?;
        }
        let t0 = Instant::now();
        if admitted.format() == ModelFormat::Gguf {
            return Err(ServeError::TierUnsupported(
                "GGUF models are not served at /api/infer (LLMs: the OpenAI API at /v1)".into(),
            ));
        }
        let plan = self.plan(&ah, admitted.format())?;
        let mut run: Run = plan.session()?.run(&inputs)?;
        if self.fault_wrong_output(&sr.id()) {
            run = fault::corrupt(run, admitted.format())?;
        }
        let compute_ms = t0.elapsed().as_secs_f64() * 1e3;
        // Kept until the ledger no longer needs it (a held result's reveal, or an audit).
        self.store_reveal(&sr.id(), &run.reveal)
            .map_err(|e| ServeError::Internal(format!("cannot persist the reveal data: {e}")))?;
        let receipt = ReceiptBody {
            request: sr,
            output_hash: tensors_hash(&run.outputs),
            price: admitted.price,
            units: 1,
            height: admitted.height,
            node_key: self.key.public_key(),
        }
        .sign(&self.key);
        let env = ReceiptEnvelope::new(receipt.clone());
        self.log.record(&env)?;
        if zk {
            self.proof_queue.enqueue(receipt.request_id());
        }
        Ok(Served {
            outputs: run.outputs,
            request_id: receipt.request_id(),
            receipt_id: receipt.id(),
            price: admitted.price,
            height: admitted.height,
            receipt: hex::encode(env.to_bytes()),
            compute_ms,
        })
    }

    /// The plan of the model file with content hash `ah`, in `format`, made once (by the
    /// backend for `format`, from the artifact store). Blocking: it may load the model.
    pub fn plan(
        &self,
        ah: &ArtifactHash,
        format: ModelFormat,
    ) -> Result<Arc<dyn Plan>, ServeError> {
        let content_hex = ah.to_hex();
        self.plans.get_or_make(&content_hex, || {
            let backend = self.backends.for_format(format).ok_or_else(|| {
                ServeError::TierUnsupported(format!("no backend serves {format:?} models"))
            })?;
            if !self.artifacts.has(ah) {
                return Err(ServeError::ModelUnavailable(content_hex.clone()));
            }
            let t0 = Instant::now();
            let plan = backend.plan(&self.artifacts.path(ah))?;
            tracing::info!(model = %content_hex, ?format, ms = t0.elapsed().as_millis() as u64, "model loaded");
            Ok(plan)
        })
    }

    /// The plan of the model file with content hash `ah` if it is loaded (never waits).
    pub fn loaded_plan(&self, ah: &ArtifactHash) -> Option<Arc<dyn Plan>> {
        self.plans.peek(&ah.to_hex())
    }

    /// The opal-zk setup of a canonical model, made once; its verifying key must be the
    /// registered weight commitment `registered`.
    fn zk_model(&self, ah: &ArtifactHash, registered: Hash) -> Result<Arc<ZkModel>, ServeError> {
        let content_hex = ah.to_hex();
        self.zk_models.get_or_make(&content_hex, || {
            self.make_zk_model(ah, &content_hex, registered)
        })
    }

    fn make_zk_model(
        &self,
        ah: &ArtifactHash,
        content_hex: &str,
        registered: Hash,
    ) -> Result<Arc<ZkModel>, ServeError> {
        let model = self
            .plan(ah, ModelFormat::OpalQuant)?
            .quant()
            .ok_or_else(|| ServeError::ZkSetup("the model is not canonical".into()))?;
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
        Ok(Arc::new(ZkModel { model, setup, key }))
    }

    fn store_reveal(&self, id: &Hash, r: &Reveal) -> std::io::Result<()> {
        self.reveals
            .put(id, &borsh::to_vec(r).map_err(std::io::Error::other)?)
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
        borsh::from_slice(&self.reveals.get(id)?).ok()
    }

    /// Reveal the data of this node's open cases (held results, audits) that it has not
    /// revealed, and forget reveal and proof files nobody can ask for any more.
    pub fn reveal_pass(&self) -> Result<(), WorkerError> {
        let Committed {
            state: o, height, ..
        } = self.chain.committed()?;
        let now = self.clock.now_ms();
        let cases = verification::open_cases(&o, 100_000)?;
        let mut open = BTreeSet::new();
        for c in cases.iter().filter(|c| c.node == self.address) {
            open.insert(c.request_id);
            if c.revealed.is_some() {
                continue;
            }
            {
                let mut r = self.revealing.lock();
                if r.get(&c.request_id)
                    .is_some_and(|at| now.saturating_sub(*at) < REVEAL_AGAIN_MS)
                {
                    continue;
                }
                r.insert(c.request_id, now);
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
            match self.chain.submit(&self.key, action) {
                Ok(tx) => {
                    tracing::info!(request = %c.request_id, tx = %tx, kind = ?c.kind, "revealed inputs and outputs")
                }
                Err(e) => tracing::warn!(request = %c.request_id, "reveal: {e}"),
            }
        }
        self.revealing.lock().retain(|id, _| open.contains(id));
        // A file can go once its request settled (or was dropped) at least two blocks ago (so
        // its audit draw happened), no case is open for it, and it is 30 s old.
        for (id, age_ms) in self.reveals.list(now, 10_000) {
            if open.contains(&id) || self.log.contains(&id) {
                continue;
            }
            let gone = match inference::settled(&o, &id)? {
                Some(st) => st.height + 2 <= height,
                None => true,
            };
            if gone && age_ms > 30_000 {
                self.reveals.remove(&id);
            }
        }
        for (id, age_ms) in self.proofs.list(now, 10_000) {
            if !self.log.contains(&id) && age_ms > PROOF_KEEP_MS {
                self.proofs.remove(&id);
                self.proof_queue.forget(&id);
            }
        }
        Ok(())
    }

    /// One pass of the settlement loop: forget settled or refused receipts, resubmit stale
    /// submissions, submit new batches.
    pub fn settle_pass(&self) -> Result<(), WorkerError> {
        let c = self.chain.committed()?;
        let block_time = self.chain.block_time_ms(c.height)?;
        let p_inf = inference::params(&c.state)?;
        let now = self.clock.now_ms();
        let mut done = vec![];
        for e in self.log.standings() {
            let id = e.id;
            let settled = inference::settled(&c.state, &id)?.is_some();
            let committed = match e.submitted {
                Some((tx, _)) => self.chain.is_committed(&tx)?,
                None => false,
            };
            let too_late = block_time > e.expires_ms.saturating_add(p_inf.settle_grace_ms);
            if settled {
                done.push(id);
            } else if committed || too_late {
                tracing::warn!(request = %id, too_late, "receipt was not paid by the ledger; dropping it (see the block's ReceiptRejected event)");
                done.push(id);
            } else if let Some((_, at)) = e.submitted {
                if now.saturating_sub(at) > RESUBMIT_MS {
                    self.log.clear_submitted(&id);
                }
            }
        }
        self.log.forget(&done)?;
        self.zk_settle_pass(&c)?;
        // As many receipts per transaction as the count and byte limits allow.
        let budget = (self.chain.max_tx_bytes() as usize).saturating_sub(512);
        loop {
            let batch = self
                .log
                .next_batch(p_inf.max_receipts_per_tx as usize, budget);
            if batch.is_empty() {
                return Ok(());
            }
            let ids: Vec<Hash> = batch.iter().map(Receipt::request_id).collect();
            let n = batch.len();
            let tx = self
                .chain
                .submit(&self.key, Action::SettleReceipts { receipts: batch })?;
            tracing::info!(tx = %tx, receipts = n, "settlement submitted");
            self.log.mark_submitted(&ids, tx, self.clock.now_ms());
        }
    }

    /// Settle the proved `zk` receipts (one `SettleProved` each, after the model's verifying
    /// key is on chain); queue the proofs a restart lost.
    fn zk_settle_pass(&self, c: &Committed) -> Result<(), WorkerError> {
        for r in self.log.waiting_zk() {
            let id = r.request_id();
            let Some(evidence) = self.load_proof(&id) else {
                if self.proof_queue.state(&id).is_none() {
                    // Served before a restart: prove it again from its reveal file.
                    self.proof_queue.enqueue(id);
                }
                continue;
            };
            let req = &r.body.request.request;
            let Some(info) = registry::model(&c.state, &req.model)? else {
                continue;
            };
            let Some(wc) = info.spec.weight_commitment else {
                continue;
            };
            if opal_ledger::components::zk::key_bytes(&c.state, &wc)?.is_none() {
                self.publish_key(&ArtifactHash(info.spec.content_hash.0), wc);
                continue;
            }
            // One refused submission (a full mempool) must not hold up the other settlements.
            let action = Action::SettleProved {
                receipt: Box::new(r.clone()),
                evidence,
            };
            match self.chain.submit(&self.key, action) {
                Ok(tx) => {
                    tracing::info!(request = %id, tx = %tx, "proved settlement submitted");
                    self.log.mark_submitted(&[id], tx, self.clock.now_ms());
                }
                Err(e) => tracing::warn!(request = %id, "proved settlement not submitted: {e}"),
            }
        }
        Ok(())
    }

    /// Publish a model's verifying key (the ledger needs it to check proofs), at most every
    /// 30 s.
    fn publish_key(&self, ah: &ArtifactHash, wc: Hash) {
        let now = self.clock.now_ms();
        {
            let mut p = self.publishing.lock();
            if p.get(&wc)
                .is_some_and(|at| now.saturating_sub(*at) < PUBLISH_AGAIN_MS)
            {
                return;
            }
            p.insert(wc, now);
        }
        let published = self
            .zk_model(ah, wc)
            .map_err(|e| e.to_string())
            .and_then(|z| {
                self.chain
                    .submit(
                        &self.key,
                        Action::PublishZkKey {
                            key: z.key.clone(),
                            model: z.model.to_file_bytes(),
                        },
                    )
                    .map_err(|e| e.to_string())
            });
        match published {
            Ok(tx) => {
                tracing::info!(key = %wc, tx = %tx, "publishing the model's zk verifying key")
            }
            Err(e) => tracing::warn!(key = %wc, "cannot publish the zk verifying key: {e}"),
        }
    }

    fn load_proof(&self, id: &Hash) -> Option<ZkEvidence> {
        ZkEvidence::from_bytes(&self.proofs.get(id)?).ok()
    }

    /// Where the proof of `id` stands, and its evidence once it is done. `None`: this node
    /// knows of no proof for that request.
    pub fn proof_status(&self, id: &Hash) -> Option<(ProofState, Option<ZkEvidence>)> {
        let st = self.proof_queue.state(id);
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

    /// The prover: proves queued `zk` requests one at a time, in order, until the process
    /// ends. Run it on a thread of its own.
    pub fn prover_loop(&self) {
        loop {
            let id = self.proof_queue.next();
            self.proof_queue
                .set(id, ProofState::Proving { progress: 0.0 });
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
            self.proof_queue.set(id, st);
        }
    }

    /// Prove one served request from its reveal file and keep the evidence; the proof's output
    /// must be the output the node answered.
    fn prove_one(&self, id: &Hash) -> Result<usize, String> {
        if let Some(ev) = self.load_proof(id) {
            return Ok(ev.proof.len());
        }
        let r = self
            .log
            .receipt(id)
            .ok_or("the receipt is no longer pending")?;
        let data = self
            .load_reveal(id)
            .ok_or("the request's inputs and outputs are not on this node")?;
        let req = &r.body.request.request;
        let c = self.chain.committed().map_err(|e| e.to_string())?;
        let info = registry::model(&c.state, &req.model)
            .map_err(|e| e.to_string())?
            .ok_or("the model is no longer registered")?;
        let wc = info
            .spec
            .weight_commitment
            .ok_or("the model has no weight commitment")?;
        let z = self
            .zk_model(&ArtifactHash(info.spec.content_hash.0), wc)
            .map_err(|e| e.to_string())?;
        let x = canonical::quantized_input(&z.model, &data.inputs).map_err(|e| e.to_string())?;
        let mut last = 0.0f32;
        let (y, proof) = opal_zk::api::prove(&z.model, &z.setup, &x, &mut |p| {
            if p - last >= 0.01 || p >= 1.0 {
                last = p;
                self.proof_queue
                    .set(*id, ProofState::Proving { progress: p });
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
        self.proofs
            .put(id, &opal_types::encode(&ev))
            .map_err(|e| format!("cannot keep the proof: {e}"))?;
        Ok(n)
    }
}
