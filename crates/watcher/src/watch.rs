//! The watcher (`opal node watch`): re-execute the revealed results of canonical (`opal_quant`) models and act
//! on what the chain asks (docs/verification.md):
//! - a held result (`replay` tier or a disputable request) whose output is wrong: post a fraud
//!   proof (`Challenge` carrying the model file), decided at once by re-execution; the watcher
//!   earns `challenger_reward_bps` of the slash;
//! - an open dispute: post `Resolve` (whoever is right gets the bond);
//! - an audit assigned to this account (or any audit with `--audits all`): post `Resolve`, paid
//!   `audit_fee` when it passes, the reward when it convicts.
//!
//! LLM receipts of the `activations` tier (GGUF models) and `signed` receipts of float ONNX
//! models cannot be re-executed bit-exactly inside a block; every active validator checks them
//! off chain and votes (docs/verification.md, "LLM cases" and "Float models"):
//! - an audit or a disputed held result on whose committee the --from account sits: download
//!   the registered model (checked against its content hash; GGUFs cached in --model-cache),
//!   run the activation check (`opal verify --llm-model` runs the same) or re-run the ONNX
//!   model with tract and compare within `opal_verify::float::ONNX_TOLERANCE`, post
//!   `CommitteeVote`;
//! - a held, undisputed result that fails the check: dispute it (`Challenge` without a model,
//!   locking the challenge bond), then vote on it once the dispute is open.
//!
//! Each action is printed as it happens (a JSON object per line with `-o json`).

use crate::checks::{chain_commit_params, rerun_float};
use crate::{AuditScope, Config, Report, WatchError};
use opal_client::{Client, SendOptions, Sent};
use opal_ledger::components::verification::{check_by, Case, CaseKind, CheckBy};
use opal_types::registry::ModelFormat;
use opal_types::{Action, Address, Hash, ModelRef, SecretKey, Tier};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

type Result<T, E = WatchError> = std::result::Result<T, E>;

/// One watcher: its account, its caches, and what it has done in the cases still open.
pub struct Watcher {
    client: Client,
    key: SecretKey,
    me: Address,
    config: Config,
    report: Box<dyn FnMut(Report)>,
    files: HashMap<Hash, Vec<u8>>,
    handled: HashSet<Hash>,
    /// Registered format of each model seen (`opal_quant`, `gguf`, ...).
    formats: HashMap<ModelRef, (ModelFormat, Hash)>,
    llms: HashMap<Hash, Arc<opal_llm::LlmModel>>,
    onnx_models: HashMap<Hash, Arc<opal_infer::PreparedModel>>,
    /// Cases already checked: whether the output passed, and why not.
    checked: HashMap<Hash, (bool, String)>,
    /// Held results this watcher disputed (not disputed twice).
    disputed: HashSet<Hash>,
}

/// How a committee case is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Committee {
    /// An LLM reply's activation commitment, recomputed (`opal_verify::activations`).
    Activations,
    /// A `signed` LLM reply's tokens, re-checked against the model's logits
    /// (`opal_verify::activations::verify_signed`).
    LlmTokens,
    /// A float ONNX model re-run with tract, outputs compared within
    /// `opal_verify::float::ONNX_TOLERANCE`.
    Float,
}

impl Committee {
    fn check_name(self) -> &'static str {
        match self {
            Committee::Activations => "activation check",
            Committee::LlmTokens => "token check",
            Committee::Float => "re-run within tolerance",
        }
    }
}

/// What the node revealed for a case (inputs, outputs), checked by the ledger against the
/// signed hashes.
fn revealed(c: &Case) -> Result<(&[Vec<u8>], &[Vec<u8>]), String> {
    c.revealed
        .as_ref()
        .map(|r| (r.inputs.as_slice(), r.outputs.as_slice()))
        .ok_or_else(|| "nothing revealed".to_string())
}

/// A case's kind as the API and the events name it.
fn kind_name(k: CaseKind) -> &'static str {
    match k {
        CaseKind::Held => "held",
        CaseKind::Audit => "audit",
    }
}

fn node_err(e: impl std::fmt::Display) -> WatchError {
    WatchError::Node(e.to_string())
}

fn verifier_err(e: impl std::fmt::Display) -> WatchError {
    WatchError::Verifier(e.to_string())
}

impl Watcher {
    /// A watcher acting as `key` against the node `client` talks to; what it does is told to
    /// `report` as it happens.
    pub fn new(
        client: Client,
        key: SecretKey,
        config: Config,
        report: Box<dyn FnMut(Report)>,
    ) -> Watcher {
        Watcher {
            client,
            me: key.address(),
            key,
            config,
            report,
            files: HashMap::new(),
            handled: HashSet::new(),
            formats: HashMap::new(),
            llms: HashMap::new(),
            onnx_models: HashMap::new(),
            checked: HashMap::new(),
            disputed: HashSet::new(),
        }
    }

    /// The account this watcher acts as.
    pub fn account(&self) -> Address {
        self.me
    }

    /// Pass over the open cases every `interval` until a pass fails with `once`, or forever;
    /// a failed pass is reported and retried.
    pub fn run(&mut self, interval: Duration, once: bool) -> Result<()> {
        loop {
            if let Err(e) = self.pass() {
                if once {
                    return Err(e);
                }
                self.emit(
                    json!({"event": "error", "error": e.to_string()}),
                    format!("pass failed (retrying): {e}"),
                );
            }
            if once {
                return Ok(());
            }
            std::thread::sleep(interval);
        }
    }

    fn emit(&mut self, json: Value, text: String) {
        (self.report)(Report { json, text });
    }

    fn send(&self, action: Action) -> Result<Sent> {
        let opts = SendOptions {
            fee: self.config.fee,
            wait: None,
        };
        Ok(self.client.send(&self.key, action, &opts)?)
    }

    /// The registered format and content hash of a model (asked once).
    fn format(&mut self, model: &ModelRef) -> Result<(ModelFormat, Hash)> {
        if let Some(f) = self.formats.get(model) {
            return Ok(f.clone());
        }
        let spec = self.client.model(&model.to_string())?.model.spec;
        let f = (spec.format, spec.content_hash);
        self.formats.insert(model.clone(), f.clone());
        Ok(f)
    }

    /// A registered GGUF model, loaded: from the cache directory if a file there has the
    /// registered hash, else downloaded from the node's artifact store and checked.
    fn llm(&mut self, model: &ModelRef, hash: Hash) -> Result<std::sync::Arc<opal_llm::LlmModel>> {
        if let Some(m) = self.llms.get(&hash) {
            return Ok(m.clone());
        }
        let cache = self.config.model_cache.clone();
        std::fs::create_dir_all(&cache)
            .map_err(|e| verifier_err(format!("creating {}: {e}", cache.display())))?;
        let path = cache.join(format!("{}.gguf", hash.to_hex()));
        let cached = std::fs::read(&path)
            .ok()
            .is_some_and(|b| Hash(*blake3::hash(&b).as_bytes()) == hash);
        if !cached {
            self.emit(
                json!({"event": "downloading", "model": model, "content_hash": hash}),
                format!("downloading {model} ({hash}) from the node"),
            );
            let bytes = self.download(model, hash)?;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| verifier_err(format!("writing {}: {e}", path.display())))?;
        }
        let m = std::sync::Arc::new(
            opal_llm::LlmModel::load(&path)
                .map_err(|e| verifier_err(format!("loading {model}: {e}")))?,
        );
        self.llms.insert(hash, m.clone());
        Ok(m)
    }

    /// A registered float ONNX model, prepared once (downloaded and checked against its hash).
    fn onnx(
        &mut self,
        model: &ModelRef,
        hash: Hash,
    ) -> Result<std::sync::Arc<opal_infer::PreparedModel>> {
        if let Some(m) = self.onnx_models.get(&hash) {
            return Ok(m.clone());
        }
        let bytes = self.download(model, hash)?;
        let m = std::sync::Arc::new(
            opal_infer::PreparedModel::load(&bytes, &opal_infer::Limits::default())
                .map_err(|e| verifier_err(format!("loading {model}: {e}")))?,
        );
        self.onnx_models.insert(hash, m.clone());
        Ok(m)
    }

    /// Check a float ONNX case's revealed data (once per case): re-run the registered model on
    /// the revealed inputs (which the ledger checked against the caller's signed hash) and
    /// compare with the revealed outputs (checked against the node's) within the tolerance.
    fn check_float_case(
        &mut self,
        c: &Case,
        id: Hash,
        model: &ModelRef,
        hash: Hash,
    ) -> Result<(bool, String)> {
        if let Some(r) = self.checked.get(&id) {
            return Ok(r.clone());
        }
        let m = self.onnx(model, hash)?;
        let verdict = revealed(c).and_then(|(i, o)| {
            rerun_float(&m, i, o).map_err(|(code, why)| format!("{code}: {why}"))
        });
        let r = match verdict {
            Ok(()) => (true, String::new()),
            Err(why) => (false, why),
        };
        self.checked.insert(id, r.clone());
        Ok(r)
    }

    /// Check an LLM case's revealed data (once per case).
    fn check_llm_case(
        &mut self,
        c: &Case,
        id: Hash,
        model: &ModelRef,
        hash: Hash,
    ) -> Result<(bool, String)> {
        if let Some(r) = self.checked.get(&id) {
            return Ok(r.clone());
        }
        let (inputs, outputs) = revealed(c).map_err(node_err)?;
        let m = self.llm(model, hash)?;
        // The commitment parameters are the chain's (read from it at every check, so a
        // governance change applies), never the commitment's.
        let params = chain_commit_params(&self.client)?;
        // The ledger checked the reveal against the signed hashes; what is left is whether the
        // output is this model's, and where its generation stopped.
        // Ok(Err(why)): the output is not this model's; Err: the verifier itself failed (its
        // backend, its disk), which says nothing about the node: no vote (the pass fails and is
        // retried).
        let verdict = (|| -> Result<Result<(), String>> {
            let [input] = inputs else {
                return Ok(Err("the reveal does not have one input".into()));
            };
            let (tokens, commitment) = match outputs {
                [t] => (t, None),
                [t, c] => (t, Some(c)),
                _ => {
                    return Ok(Err(
                        "the reveal does not have tokens (and a commitment)".into()
                    ))
                }
            };
            let input = match opal_types::llm::LlmInput::from_bytes(input) {
                Ok(i) => i,
                Err(e) => return Ok(Err(format!("the revealed input is malformed: {e}"))),
            };
            let tokens = match opal_types::llm::tokens_from_bytes(tokens) {
                Ok(t) => t,
                Err(e) => return Ok(Err(format!("the revealed tokens are malformed: {e}"))),
            };
            // The ledger checked the reveal's shape against the case's tier: a commitment for
            // `activations`, none for `signed`.
            let checked = match commitment {
                Some(c) => opal_verify::activations::verify(&m, &input, &tokens, c, &params),
                None => opal_verify::activations::verify_signed(&m, &input, &tokens),
            };
            match checked {
                Ok(()) => Ok(Ok(())),
                Err(e) if opal_verify::activations::is_verifier_fault(&e) => {
                    Err(verifier_err(format!("checking {id}: {e}")))
                }
                Err(e) => Ok(Err(format!("{}: {e}", e.code()))),
            }
        })()?;
        let r = match verdict {
            Ok(()) => (true, String::new()),
            Err(why) => (false, why),
        };
        self.checked.insert(id, r.clone());
        Ok(r)
    }

    /// A committee case (an LLM `activations` or `signed` receipt, a float ONNX `signed` one):
    /// check it if this account has something to do, then vote or dispute. Returns true once
    /// nothing is left to do for it.
    #[allow(clippy::too_many_arguments)]
    fn committee_case(
        &mut self,
        c: &Case,
        id: Hash,
        model: &ModelRef,
        hash: Hash,
        how: Committee,
    ) -> Result<bool> {
        let audits = self.config.audits;
        let check = how.check_name();
        let kind = kind_name(c.kind);
        let disputed = c.dispute.is_some();
        let member = c.auditors.contains(&self.me);
        let voted = c.votes.iter().any(|v| v.voter == self.me);
        let vote_due = member && !voted && (c.kind == CaseKind::Audit || disputed);
        let wants = match c.kind {
            CaseKind::Audit => vote_due && audits != AuditScope::None,
            CaseKind::Held if disputed => vote_due,
            CaseKind::Held => !self.disputed.contains(&id),
        };
        if !wants {
            // A held result this watcher disputed, whose dispute is not in a block yet: come
            // back (then its committee is known, and this account votes if it sits on it).
            let waiting = c.kind == CaseKind::Held && !disputed && self.disputed.contains(&id);
            return Ok(!waiting);
        }
        let (valid, why) = match how {
            Committee::Activations | Committee::LlmTokens => {
                self.check_llm_case(c, id, model, hash)?
            }
            Committee::Float => self.check_float_case(c, id, model, hash)?,
        };
        if vote_due {
            let sent = self.send(Action::CommitteeVote {
                request_id: id,
                valid,
            })?;
            self.emit(
                json!({"event": "vote", "request_id": id, "model": model, "kind": kind,
                       "valid": valid, "reason": why, "tx": sent.hash}),
                format!(
                    "{id} ({model}, {kind}): {check} {} -> vote tx {}",
                    if valid {
                        "passed".to_string()
                    } else {
                        format!("FAILED ({why})")
                    },
                    sent.hash
                ),
            );
            return Ok(true);
        }
        // A held, undisputed result.
        if valid {
            self.emit(
                json!({"event": "verified", "request_id": id, "model": model}),
                format!("{id} ({model}): {check} passed"),
            );
            return Ok(true);
        }
        let sent = self.send(Action::Challenge {
            request_id: id,
            claimed_output_hash: Hash::ZERO,
            model: None,
        })?;
        self.disputed.insert(id);
        self.emit(
            json!({"event": "dispute", "request_id": id, "model": model, "reason": why, "tx": sent.hash}),
            format!(
                "{id} ({model}): {check} FAILED ({why}) -> dispute tx {}",
                sent.hash
            ),
        );
        // Come back: once the dispute is open its committee is known, and this account votes if
        // it sits on it.
        Ok(false)
    }

    /// The registered file of a canonical model, fetched once and checked against its hash.
    fn model_file(&mut self, model: &ModelRef) -> Result<Option<(Hash, Vec<u8>)>> {
        let (format, hash) = self.format(model)?;
        if format != ModelFormat::OpalQuant {
            return Ok(None);
        }
        if let Some(f) = self.files.get(&hash) {
            return Ok(Some((hash, f.clone())));
        }
        let bytes = self.download(model, hash)?;
        self.files.insert(hash, bytes.clone());
        Ok(Some((hash, bytes)))
    }

    /// A model's registered file from the node's artifact store, checked against its hash.
    fn download(&self, model: &ModelRef, hash: Hash) -> Result<Vec<u8>> {
        let bytes = self
            .client
            .get_bytes(&format!("/api/artifacts/{}", hash.to_hex()))?;
        let got = Hash(*blake3::hash(&bytes).as_bytes());
        if got != hash {
            return Err(node_err(format!(
                "model {model}: the node served a file hashing to {got}, registered {hash}"
            )));
        }
        Ok(bytes)
    }

    /// One pass over the open cases: check what this account should, and act on it.
    pub fn pass(&mut self) -> Result<()> {
        let audits = self.config.audits;
        let cases = self.client.cases(1000)?.cases;
        let mut open = HashSet::new();
        for c in cases {
            let id = c.request_id;
            open.insert(id);
            if self.handled.contains(&id) || c.revealed.is_none() {
                continue;
            }
            let model = c.model.clone();
            if self
                .config
                .models
                .as_ref()
                .is_some_and(|m| !m.contains(&model))
            {
                continue;
            }
            let (format, hash) = self.format(&model)?;
            // Committee cases: LLM `activations` and `signed` receipts, `signed` receipts of
            // float ONNX models; canonical models are re-executed (the ledger's `check_by`).
            match check_by(format, c.tier) {
                // A tier no one can check for this format: nothing to do.
                None => {
                    self.handled.insert(id);
                    continue;
                }
                Some(CheckBy::Committee) => {
                    let how = match (format, c.tier) {
                        (ModelFormat::Gguf, Tier::Activations) => Committee::Activations,
                        (ModelFormat::Gguf, _) => Committee::LlmTokens,
                        _ => Committee::Float,
                    };
                    if self.committee_case(&c, id, &model, hash, how)? {
                        self.handled.insert(id);
                    }
                    continue;
                }
                Some(CheckBy::Reexecution) => {}
            }
            let kind = kind_name(c.kind);
            let disputed = c.dispute.is_some();
            let assigned = c.auditors.contains(&self.me);
            let wants_audit = c.kind == CaseKind::Audit
                && match audits {
                    AuditScope::Mine => assigned,
                    AuditScope::All => true,
                    AuditScope::None => false,
                };
            if !(c.kind == CaseKind::Held || wants_audit) {
                continue;
            }
            let Some((_, file)) = self.model_file(&model)? else {
                self.handled.insert(id);
                continue;
            };
            let (inputs, _) = revealed(&c).map_err(|e| node_err(format!("case {id}: {e}")))?;
            let claimed = c.output_hash;
            // The ledger's own re-execution (opal_verify::replay): a model that cannot run on
            // the signed inputs "outputs" the stand-in hash the chain convicts with, so a node
            // that answered such a request anyway is challenged.
            let truth = match opal_verify::replay::reexecution_hash(&file, inputs, u64::MAX) {
                Ok(h) => h,
                Err(e) => {
                    self.emit(
                        json!({"event": "cannot_execute", "request_id": id, "error": format!("{e:?}")}),
                        format!("{id}: cannot re-execute: {e:?}"),
                    );
                    self.handled.insert(id);
                    continue;
                }
            };
            let correct = truth == claimed;
            let action = match (kind, disputed, correct) {
                ("held", false, true) => {
                    // Nothing to do: it is right.
                    self.emit(
                        json!({"event": "verified", "request_id": id, "model": model}),
                        format!("{id} ({model}): output verified"),
                    );
                    self.handled.insert(id);
                    continue;
                }
                ("held", false, false) => Action::Challenge {
                    request_id: id,
                    claimed_output_hash: truth,
                    model: Some(file),
                },
                _ => Action::Resolve {
                    request_id: id,
                    model: file,
                },
            };
            let what = match &action {
                Action::Challenge { .. } => "fraud_proof",
                _ => "resolve",
            };
            let sent = self.send(action)?;
            self.emit(
                json!({"event": what, "request_id": id, "model": model, "kind": kind,
                       "output_correct": correct, "tx": sent.hash}),
                format!(
                    "{id} ({model}, {kind}): output {} -> {what} tx {}",
                    if correct { "correct" } else { "WRONG" },
                    sent.hash
                ),
            );
            self.handled.insert(id);
        }
        // Forget what is no longer open (bounded memory).
        self.handled.retain(|id| open.contains(id));
        self.checked.retain(|id, _| open.contains(id));
        self.disputed.retain(|id| open.contains(id));
        Ok(())
    }
}
