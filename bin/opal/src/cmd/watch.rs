//! `opal node watch`: re-execute the revealed results of canonical (`opal_quant`) models and act
//! on what the chain asks (docs/verification.md):
//! - a held result (`replay` tier or a disputable request) whose output is wrong: post a fraud
//!   proof (`Challenge` carrying the model file), decided at once by re-execution; the watcher
//!   earns `challenger_reward_bps` of the slash;
//! - an open dispute: post `Resolve` (whoever is right gets the bond);
//! - an audit assigned to this account (or any audit with `--audits all`): post `Resolve`, paid
//!   `audit_fee` when it passes, the reward when it convicts.
//!
//! Each action is printed as it happens (a JSON object per line with `-o json`).

use crate::cli::{Output, TxOpts};
use crate::client::Client;
use crate::cmd::tx::send;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use opal_ledger::canonical::{self, ExecOptions};
use opal_types::receipt::tensor_list_hash;
use opal_types::{Action, Address, Hash, ModelRef};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
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

impl Watcher {
    /// The registered file of a canonical model, fetched once and checked against its hash.
    fn model_file(&mut self, model: &ModelRef) -> Result<Option<(Hash, Vec<u8>)>> {
        let info = self.client.get(&format!("/api/models/{model}"))?;
        let spec = &info["spec"];
        if spec["format"] != "opal_quant" {
            return Ok(None);
        }
        let hash = Hash::from_hex(spec["content_hash"].as_str().unwrap_or_default())
            .map_err(|e| anyhow!("model {model}: content hash: {e}"))?;
        if let Some(f) = self.files.get(&hash) {
            return Ok(Some((hash, f.clone())));
        }
        let bytes = self
            .client
            .get_bytes(&format!("/api/artifacts/{}", hash.to_hex()))?;
        let got = Hash(*blake3::hash(&bytes).as_bytes());
        if got != hash {
            bail!("model {model}: the node served a file hashing to {got}, registered {hash}");
        }
        self.files.insert(hash, bytes.clone());
        Ok(Some((hash, bytes)))
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
            let m = canonical::load_model(&file)?;
            let truth = match canonical::run(&m, &inputs, u64::MAX, ExecOptions::default()) {
                Ok(o) => tensor_list_hash(&o),
                Err(e) => {
                    emit(
                        self.out,
                        json!({"event": "cannot_execute", "request_id": id, "error": e.to_string()}),
                        format!("{id}: cannot re-execute: {e}"),
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
        Ok(())
    }
}
