//! `opal verify`: every check is `opal_watcher::receipt::check_receipt`'s (which runs
//! `opal_verify`'s verifiers); this file reads the files named on the command line, sets up the
//! trust start, prints the report and picks the exit code.

use crate::cli::Output;
use crate::output::print;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use opal_client::Client;
use opal_node::clock::now_ms;
use opal_verify::ReceiptFile;
use opal_watcher::light::{trust_start, TrustFrom};
use opal_watcher::receipt::{check_receipt, Evidence, Trust};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A receipt file written by `opal infer`.
    pub receipt: PathBuf,
    /// Also check on this node that the receipt was settled (with a Merkle proof).
    #[arg(long)]
    pub node: Option<String>,
    /// Also check that these outputs (JSON, as `opal infer` prints them) match the receipt.
    #[arg(long)]
    pub outputs: Option<PathBuf>,
    /// Also check that this input file matches the receipt. With --model-file too, the model
    /// is run on it and its output compared with the receipt's: re-executed bit-exactly for a
    /// canonical .opalq model, re-run with tract within the committee's tolerance for ONNX.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// The GGUF file of an LLM receipt's model (it must hash to the receipt's model hash):
    /// checks that generation stopped where it had to (first end-of-turn token, first stop
    /// sequence, or max_tokens) and that every token follows from the model's logits with the
    /// signed sampling and seed; for `activations`, also the commitment, recomputed with the
    /// chain's commitment parameters (read from --node, else the defaults).
    #[arg(long)]
    pub llm_model: Option<PathBuf>,
    /// Positions per commitment chunk to require, overriding the chain's (--node) or the
    /// default (32), e.g. offline for a chain whose parameters changed.
    #[arg(long)]
    pub llm_commit_chunk: Option<u32>,
    /// Activations per commitment chunk to require, overriding the chain's or the default (128).
    #[arg(long)]
    pub llm_commit_top_k: Option<u32>,
    /// The receipt's model file. With --input: the model is run on the input (see --input).
    /// For a zk receipt (.opalq): checks the attached proof offline against the
    /// verifying key derived from it (the file must hash to the receipt's model hash; with
    /// --node too, that key's id must be the model's registered weight commitment). Without
    /// it, --node supplies the key published on chain for the model's weight commitment, which
    /// must name the receipt's model file.
    #[arg(long)]
    pub model_file: Option<PathBuf>,
    /// Check settlement as a light client, trusting only this genesis file (its validator set
    /// and state root): every block used is checked against its commit certificate. With
    /// --node the node supplies the bytes; without it, the portable proof saved in the receipt
    /// file (--save-portable) is checked offline.
    #[arg(long, value_name = "GENESIS_FILE")]
    pub genesis: Option<PathBuf>,
    /// Like --genesis, but start from a block you trust (with --node): HEIGHT:HASH, e.g. from
    /// `opal query block latest` on a node of your own.
    #[arg(long, value_name = "HEIGHT:HASH")]
    pub trust: Option<String>,
    /// How long a trusted state stays trusted, in seconds (default: the chain's unbonding time
    /// from --genesis, 7 days with --trust; 0: never expires).
    #[arg(long, value_name = "SECS")]
    pub trusting_period: Option<u64>,
    /// Write the receipt file with its portable settlement proof (state proof, blocks,
    /// certificates, validator sets) to this path, for offline checks with --genesis.
    #[arg(long, value_name = "FILE")]
    pub save_portable: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn json_file(path: &Path) -> Result<Value> {
    serde_json::from_slice(&read(path)?).with_context(|| format!("{} is not JSON", path.display()))
}

/// The trust start of --genesis or --trust, with its trusting period.
fn trust(a: &VerifyArgs, node: Option<&Client>) -> Result<Option<Trust>> {
    let (name, text);
    let from = match (&a.genesis, &a.trust, node) {
        (Some(_), Some(_), _) => bail!("give either --genesis or --trust, not both"),
        (Some(g), None, _) => {
            name = g.display().to_string();
            text = std::fs::read_to_string(g).with_context(|| format!("reading {name}"))?;
            TrustFrom::Genesis {
                name: &name,
                text: &text,
            }
        }
        (None, Some(spec), Some(node)) => TrustFrom::Checkpoint { node, spec },
        (None, Some(_), None) => bail!("--trust needs --node (the checkpoint is fetched)"),
        (None, None, _) => return Ok(None),
    };
    if a.trusting_period == Some(0) {
        eprintln!("warning: --trusting-period 0: the trust start never expires (validators that unbonded since could sign a forged chain)");
    }
    Ok(Some(trust_start(from, a.trusting_period)?))
}

pub fn run_verify(a: VerifyArgs, out: Output) -> Result<()> {
    let text = read(&a.receipt)?;
    let rf = ReceiptFile::parse(&text).map_err(|e| anyhow!("{}: {e}", a.receipt.display()))?;
    let node = a.node.as_deref().map(Client::new).transpose()?;
    let model_bytes = a.model_file.as_deref().map(read).transpose()?;
    let model_name = a.model_file.as_ref().map(|p| p.display().to_string());
    let ev = Evidence {
        outputs: a.outputs.as_deref().map(json_file).transpose()?,
        input: a.input.as_deref().map(json_file).transpose()?,
        model_file: model_name.as_deref().zip(model_bytes.as_deref()),
        llm_model: a.llm_model.as_deref(),
        llm_commit_chunk: a.llm_commit_chunk,
        llm_commit_top_k: a.llm_commit_top_k,
    };
    let trust = trust(&a, node.as_ref())?;
    let o = check_receipt(&rf, &ev, node.as_ref(), trust.as_ref(), now_ms())?;
    if let Some(path) = &a.save_portable {
        let Some(p) = &o.portable else {
            bail!("--save-portable needs a light-client check that succeeded (--node with --genesis or --trust)");
        };
        let mut f = rf.json.clone();
        f["portable"] = serde_json::to_value(p)?;
        crate::output::write_file(path, &serde_json::to_vec_pretty(&f)?)?;
        let shown = path.display();
        eprintln!("saved the receipt with its portable settlement proof to {shown} (check it offline: opal verify {shown} --genesis GENESIS)");
    }
    let r = &rf.envelope.receipt;
    let req = &r.body.request.request;
    let all_ok = o.report.valid();
    let v = json!({
        "valid": all_ok,
        "verification": o.verification,
        "request_id": r.request_id(),
        "receipt_id": r.id(),
        "model": req.model,
        "node": r.node(),
        "tier": req.tier,
        "price": r.body.price,
        "settled": o.settled,
        "trusted": o.trusted,
        "checks": o.report.checks,
    });
    print(out, &v, || {
        let mut lines = vec![format!(
            "receipt {} for {} from node {} ({})",
            r.id(),
            req.model,
            r.node(),
            req.tier.as_str()
        )];
        for c in &o.report.checks {
            let mark = if c.ok { "ok" } else { "FAIL" };
            let detail = if c.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", c.detail)
            };
            lines.push(format!("  [{mark}] {}{detail}", c.check));
        }
        lines.push(if all_ok { "VALID" } else { "INVALID" }.into());
        lines.join("\n")
    });
    if let Some(e) = &o.light_failure {
        std::process::exit(e.exit_code());
    }
    if !all_ok {
        std::process::exit(3);
    }
    Ok(())
}
