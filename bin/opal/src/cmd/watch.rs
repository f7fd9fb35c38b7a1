//! `opal node watch`: re-execute the revealed results of canonical (`opal_quant`) models and act
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

use crate::cli::{Output, TxOpts};
use crate::client::Client;
use crate::cmd::tx::send;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use opal_types::{Action, Address, Hash, ModelRef};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditScope {
    /// Audits whose assigned auditors include the --from account (a validator's duty).
    Mine,
    /// Every open audit.
    All,
    /// None.
    None,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Watch only these models (NAME@VERSION, comma-separated); default: every canonical model.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Which audits to resolve.
    #[arg(long, value_enum, default_value_t = AuditScope::Mine)]
    pub audits: AuditScope,
    /// Time between passes over the open cases, in ms.
    #[arg(long, default_value_t = 1_000)]
    pub interval_ms: u64,
    /// Do one pass and exit (for scripts and cron).
    #[arg(long)]
    pub once: bool,
    /// Where downloaded GGUF models are kept between runs [default: ~/.cache/opal/watch].
    #[arg(long)]
    pub model_cache: Option<PathBuf>,
    #[command(flatten)]
    pub tx: TxOpts,
}

struct Watcher {
    client: Client,
    me: Address,
    models: Option<HashSet<ModelRef>>,
    files: HashMap<Hash, Vec<u8>>,
    handled: HashSet<Hash>,
    out: Output,
    /// Registered format of each model seen (`opal_quant`, `gguf`, ...).
    formats: HashMap<ModelRef, (String, Hash)>,
    llms: HashMap<Hash, std::sync::Arc<opal_llm::LlmModel>>,
    onnx_models: HashMap<Hash, std::sync::Arc<opal_infer::PreparedModel>>,
    /// LLM cases already checked: whether the output passed, and why not.
    checked: HashMap<Hash, (bool, String)>,
    /// Held LLM results this watcher disputed (not disputed twice).
    disputed: HashSet<Hash>,
    model_cache: PathBuf,
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

/// Marks a check that failed on the verifier's side (not a verdict on the node).
#[derive(Debug)]
struct VerifierFailed;

impl std::fmt::Display for VerifierFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the verifier itself failed")
    }
}

fn emit(out: Output, v: Value, text: String) {
    match out {
        Output::Json => println!("{v}"),
        Output::Text => println!("{text}"),
    }
}

pub fn run(a: WatchArgs, out: Output) -> Result<()> {
    let key = crate::keyring::resolve(&a.tx.from, &a.tx.keyring.keyring)
        .with_context(|| format!("--from {}", a.tx.from))?
        .secret()?;
    let models = if a.models.is_empty() {
        None
    } else {
        Some(
            a.models
                .iter()
                .map(|m| {
                    m.parse::<ModelRef>()
                        .map_err(|e| anyhow!("--models {m}: {e}"))
                })
                .collect::<Result<HashSet<_>>>()?,
        )
    };
    let mut w = Watcher {
        client: Client::new(&a.tx.node.node)?,
        me: key.address(),
        models,
        files: HashMap::new(),
        handled: HashSet::new(),
        out,
        formats: HashMap::new(),
        llms: HashMap::new(),
        onnx_models: HashMap::new(),
        checked: HashMap::new(),
        disputed: HashSet::new(),
        model_cache: a.model_cache.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir)
                .join(".cache/opal/watch")
        }),
    };
    let mut opts = a.tx.clone();
    opts.no_wait = true;
    emit(
        out,
        json!({"event": "watching", "node": a.tx.node.node, "account": w.me}),
        format!("watching {} as {}", a.tx.node.node, w.me),
    );
    loop {
        if let Err(e) = w.pass(a.audits, &opts) {
            if a.once {
                return Err(e);
            }
            emit(
                out,
                json!({"event": "error", "error": e.to_string()}),
                format!("pass failed (retrying): {e:#}"),
            );
        }
        if a.once {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(a.interval_ms));
    }
}

/// A case's revealed `inputs` or `outputs` (hex strings in the node's JSON), decoded.
fn revealed(c: &Value, k: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    c["revealed"][k]
        .as_array()
        .ok_or_else(|| format!("no revealed {k}"))?
        .iter()
        .map(|x| {
            hex::decode(x.as_str().unwrap_or_default()).map_err(|e| format!("revealed {k}: {e}"))
        })
        .collect()
}

impl Watcher {
    /// The registered format and content hash of a model (asked once).
    fn format(&mut self, model: &ModelRef) -> Result<(String, Hash)> {
        if let Some(f) = self.formats.get(model) {
            return Ok(f.clone());
        }
        let info = self.client.get(&format!("/api/models/{model}"))?;
        let spec = &info["spec"];
        let hash = Hash::from_hex(spec["content_hash"].as_str().unwrap_or_default())
            .map_err(|e| anyhow!("model {model}: content hash: {e}"))?;
        let f = (
            spec["format"].as_str().unwrap_or_default().to_string(),
            hash,
        );
        self.formats.insert(model.clone(), f.clone());
        Ok(f)
    }

    /// A registered GGUF model, loaded: from the cache directory if a file there has the
    /// registered hash, else downloaded from the node's artifact store and checked.
    fn llm(&mut self, model: &ModelRef, hash: Hash) -> Result<std::sync::Arc<opal_llm::LlmModel>> {
        if let Some(m) = self.llms.get(&hash) {
            return Ok(m.clone());
        }
        std::fs::create_dir_all(&self.model_cache)
            .with_context(|| format!("creating {}", self.model_cache.display()))?;
        let path = self.model_cache.join(format!("{}.gguf", hash.to_hex()));
        let cached = std::fs::read(&path)
            .ok()
            .is_some_and(|b| Hash(*blake3::hash(&b).as_bytes()) == hash);
        if !cached {
            emit(
                self.out,
                json!({"event": "downloading", "model": model, "content_hash": hash}),
                format!("downloading {model} ({hash}) from the node"),
            );
            let bytes = self.download(model, hash)?;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path)?;
        }
        let m = std::sync::Arc::new(
            opal_llm::LlmModel::load(&path).map_err(|e| anyhow!("loading {model}: {e}"))?,
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
                .map_err(|e| anyhow!("loading {model}: {e}").context(VerifierFailed))?,
        );
        self.onnx_models.insert(hash, m.clone());
        Ok(m)
    }

    /// Check a float ONNX case's revealed data (once per case): re-run the registered model on
    /// the revealed inputs (which the ledger checked against the caller's signed hash) and
    /// compare with the revealed outputs (checked against the node's) within the tolerance.
    fn check_float_case(
        &mut self,
        c: &Value,
        id: Hash,
        model: &ModelRef,
        hash: Hash,
    ) -> Result<(bool, String)> {
        if let Some(r) = self.checked.get(&id) {
            return Ok(r.clone());
        }
        let m = self.onnx(model, hash)?;
        let verdict = revealed(c, "inputs").and_then(|i| {
            let o = revealed(c, "outputs")?;
            crate::cmd::verify::rerun_float(&m, &i, &o)
                .map_err(|(code, why)| format!("{code}: {why}"))
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
        c: &Value,
        id: Hash,
        model: &ModelRef,
        hash: Hash,
    ) -> Result<(bool, String)> {
        if let Some(r) = self.checked.get(&id) {
            return Ok(r.clone());
        }
        let (inputs, outputs) = (
            revealed(c, "inputs").map_err(anyhow::Error::msg)?,
            revealed(c, "outputs").map_err(anyhow::Error::msg)?,
        );
        let m = self.llm(model, hash)?;
        // The commitment parameters are the chain's (read from it at every check, so a
        // governance change applies), never the commitment's.
        let params = crate::cmd::verify::chain_commit_params(&self.client)?;
        // The ledger checked the reveal against the signed hashes; what is left is whether the
        // output is this model's, and where its generation stopped.
        let verdict = (|| -> Result<()> {
            let [input] = inputs.as_slice() else {
                bail!("the reveal does not have one input");
            };
            let (tokens, commitment) = match outputs.as_slice() {
                [t] => (t, None),
                [t, c] => (t, Some(c)),
                _ => bail!("the reveal does not have tokens (and a commitment)"),
            };
            let input = opal_types::llm::LlmInput::from_bytes(input)
                .map_err(|e| anyhow!("the revealed input is malformed: {e}"))?;
            let tokens = opal_types::llm::tokens_from_bytes(tokens)
                .map_err(|e| anyhow!("the revealed tokens are malformed: {e}"))?;
            // The ledger checked the reveal's shape against the case's tier: a commitment for
            // `activations`, none for `signed`.
            let checked = match commitment {
                Some(c) => opal_verify::activations::verify(&m, &input, &tokens, c, &params),
                None => opal_verify::activations::verify_signed(&m, &input, &tokens),
            };
            match checked {
                Ok(()) => Ok(()),
                // The verifier's own failure (its backend, its disk) says nothing about the
                // node: no vote on it (the pass fails and is retried).
                Err(e) if opal_verify::activations::is_verifier_fault(&e) => {
                    Err(anyhow!("{e}").context(VerifierFailed))
                }
                Err(e) => bail!("{}: {e}", e.code()),
            }
        })();
        if let Err(e) = &verdict {
            if e.downcast_ref::<VerifierFailed>().is_some() {
                return Err(anyhow!("checking {id}: {e:#}"));
            }
        }
        let r = match verdict {
            Ok(()) => (true, String::new()),
            Err(e) => (false, format!("{e:#}")),
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
        c: &Value,
        id: Hash,
        model: &ModelRef,
        hash: Hash,
        how: Committee,
        audits: AuditScope,
        opts: &TxOpts,
    ) -> Result<bool> {
        let check = how.check_name();
        let kind = c["kind"].as_str().unwrap_or_default().to_string();
        let disputed = !c["dispute"].is_null();
        let me = self.me.to_string();
        let member = c["auditors"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(&me)));
        let voted = c["votes"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v["voter"].as_str() == Some(&me)));
        let vote_due = member && !voted && (kind == "audit" || disputed);
        let wants = match kind.as_str() {
            "audit" => vote_due && audits != AuditScope::None,
            _ if disputed => vote_due,
            _ => !self.disputed.contains(&id),
        };
        if !wants {
            // A held result this watcher disputed, whose dispute is not in a block yet: come
            // back (then its committee is known, and this account votes if it sits on it).
            let waiting = kind == "held" && !disputed && self.disputed.contains(&id);
            return Ok(!waiting);
        }
        let (valid, why) = match how {
            Committee::Activations | Committee::LlmTokens => {
                self.check_llm_case(c, id, model, hash)?
            }
            Committee::Float => self.check_float_case(c, id, model, hash)?,
        };
        if vote_due {
            let sent = send(
                Action::CommitteeVote {
                    request_id: id,
                    valid,
                },
                opts,
            )?;
            emit(
                self.out,
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
            emit(
                self.out,
                json!({"event": "verified", "request_id": id, "model": model}),
                format!("{id} ({model}): {check} passed"),
            );
            return Ok(true);
        }
        let sent = send(
            Action::Challenge {
                request_id: id,
                claimed_output_hash: Hash::ZERO,
                model: None,
            },
            opts,
        )?;
        self.disputed.insert(id);
        emit(
            self.out,
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
        if format != "opal_quant" {
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
            bail!("model {model}: the node served a file hashing to {got}, registered {hash}");
        }
        Ok(bytes)
    }

    fn pass(&mut self, audits: AuditScope, opts: &TxOpts) -> Result<()> {
        let v = self.client.get("/api/cases?limit=1000")?;
        let cases = v["cases"].as_array().cloned().unwrap_or_default();
        let mut open = HashSet::new();
        for c in cases {
            let id = Hash::from_hex(c["request_id"].as_str().unwrap_or_default())
                .map_err(|e| anyhow!("case id: {e}"))?;
            open.insert(id);
            if self.handled.contains(&id) || c["revealed"].is_null() {
                continue;
            }
            let model: ModelRef = serde_json::from_value(c["model"].clone())?;
            if self.models.as_ref().is_some_and(|m| !m.contains(&model)) {
                continue;
            }
            let (format, hash) = self.format(&model)?;
            // Committee cases: LLM `activations` and `signed` receipts, `signed` receipts of
            // float ONNX models (opal_ledger's `check_by`).
            let tier = c["tier"].as_str().unwrap_or_default();
            let committee = match (format.as_str(), tier) {
                ("gguf", "activations") => Some(Some(Committee::Activations)),
                ("gguf", "signed") => Some(Some(Committee::LlmTokens)),
                ("onnx", "signed") => Some(Some(Committee::Float)),
                ("gguf" | "onnx", _) => Some(None),
                _ => None,
            };
            if let Some(how) = committee {
                let tier_ok = how.is_some();
                if !tier_ok
                    || self.committee_case(&c, id, &model, hash, how.unwrap(), audits, opts)?
                {
                    self.handled.insert(id);
                }
                continue;
            }
            let kind = c["kind"].as_str().unwrap_or_default().to_string();
            let disputed = !c["dispute"].is_null();
            let assigned = c["auditors"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(&self.me.to_string())));
            let wants_audit = kind == "audit"
                && match audits {
                    AuditScope::Mine => assigned,
                    AuditScope::All => true,
                    AuditScope::None => false,
                };
            if !(kind == "held" || wants_audit) {
                continue;
            }
            let Some((_, file)) = self.model_file(&model)? else {
                self.handled.insert(id);
                continue;
            };
            let inputs: Vec<Vec<u8>> = c["revealed"]["inputs"]
                .as_array()
                .context("revealed inputs")?
                .iter()
                .map(|x| hex::decode(x.as_str().unwrap_or_default()))
                .collect::<Result<_, _>>()?;
            let claimed = Hash::from_hex(c["output_hash"].as_str().unwrap_or_default())
                .map_err(|e| anyhow!("output hash: {e}"))?;
            // The ledger's own re-execution (opal_verify::replay): a model that cannot run on
            // the signed inputs "outputs" the stand-in hash the chain convicts with, so a node
            // that answered such a request anyway is challenged.
            let truth = match opal_verify::replay::reexecution_hash(&file, &inputs, u64::MAX) {
                Ok(h) => h,
                Err(e) => {
                    emit(
                        self.out,
                        json!({"event": "cannot_execute", "request_id": id, "error": format!("{e:?}")}),
                        format!("{id}: cannot re-execute: {e:?}"),
                    );
                    self.handled.insert(id);
                    continue;
                }
            };
            let correct = truth == claimed;
            let action = match (kind.as_str(), disputed, correct) {
                ("held", false, true) => {
                    // Nothing to do: it is right.
                    emit(
                        self.out,
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
            let sent = send(action, opts)?;
            emit(
                self.out,
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
