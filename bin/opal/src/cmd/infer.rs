//! `opal infer` (`opal verify` is in `verify.rs`).

use crate::cli::{KeyringArg, NodeArg, Output};
use crate::keyring::resolve;
use crate::output::print;
use clap::Args;
use opal_client::Client;
use opal_node::clock::now_ms;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use opal_infer::tensors_hash;
use opal_infer::{Tensor, TensorSpec};
use opal_types::receipt::ZkEvidence;
use opal_types::{Amount, Hash, Tier};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a request stays valid for the node.
const REQUEST_TTL_MS: u64 = 5 * 60 * 1000;

/// Read input tensors in any form `opal_infer::parse_inputs` accepts: a nested array, an object
/// of named arrays (one per model input), a tensor object or a list of them, or
/// `{"input_data": [[...]]}` (reshaped to the model's declared inputs).
pub(crate) fn read_inputs(path: &Path, specs: &[TensorSpec]) -> Result<Vec<Tensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    opal_infer::parse_inputs(&bytes, specs).map_err(|e| anyhow!("{}: {e}", path.display()))
}

pub fn run_infer(a: InferArgs, out: Output) -> Result<()> {
    let tier = a.tier;
    let key = resolve(&a.from, &a.keyring.keyring)?.secret()?;
    let c = Client::new(&a.node.node)?;
    let offer = opal_caller::offer(&c, &a.model, tier)?;
    let inputs = read_inputs(&a.input, &offer.inputs)?;
    let (node, quote) = (offer.node, offer.price);

    // Make sure the escrow with that node covers the price.
    let esc = opal_caller::ensure_escrow(&c, &key, &node, quote, a.deposit)?;
    if !esc.funded.is_zero() {
        eprintln!(
            "funded your escrow with node {node}: {} (it held {}, the price is {quote})",
            esc.funded, esc.balance
        );
    }

    let ask = opal_caller::Ask {
        max_price: a.max_price,
        commercial: a.commercial,
        escalation: opal_types::Escalation {
            audit_bps: a.audit_bps,
            dispute: a.dispute,
        },
        expires_ms: now_ms() + REQUEST_TTL_MS,
        salt: now_ms() ^ ((std::process::id() as u64) << 40) ^ tensors_hash(&inputs).le_u64(),
    };
    let request = opal_caller::request(&offer, &inputs, ask, &key);
    let request_id = request.id();
    let sc = Client::new(a.serve_url.as_deref().unwrap_or(&offer.endpoint))?;
    let mut answer = opal_caller::call(&sc, &request, &inputs)?;
    // The zk tier: wait for the node's proof and attach it to the receipt.
    let mut proof_note = None;
    if tier == Tier::Zk {
        match wait_for_proof(&sc, &request_id, Duration::from_secs(a.proof_timeout)) {
            Ok(ev) => {
                opal_caller::attach_proof(&mut answer, &ev)?;
                proof_note = Some(json!({"proof_bytes": ev.proof.len()}));
            }
            Err(e) => {
                eprintln!("warning: {e:#}; the receipt is saved without its proof");
                proof_note = Some(json!({"error": format!("{e:#}")}));
            }
        }
    }
    let env = &answer.envelope;
    let file = a
        .receipt
        .clone()
        .unwrap_or_else(|| format!("receipt-{}.json", &request_id.to_hex()[..12]).into());
    crate::output::write_file(
        &file,
        &serde_json::to_vec_pretty(&opal_caller::receipt_file(&answer))?,
    )?;
    let (model, outputs) = (&offer.model, &answer.outputs);
    let v = json!({
        "model": model, "node": node, "tier": tier, "price": env.receipt.body.price,
        "request_id": request_id, "receipt_id": env.receipt.id(), "height": env.receipt.body.height,
        "outputs": outputs, "receipt_file": file.display().to_string(),
        "compute_ms": answer.compute_ms, "proof": proof_note,
    });
    match out {
        Output::Json => print(out, &v, String::new),
        Output::Text => {
            // The outputs, as JSON, on stdout (for scripts); what happened on stderr.
            println!("{}", serde_json::to_string(&json!({"outputs": outputs}))?);
            for t in outputs {
                eprintln!("{}", describe_tensor(t));
            }
            eprintln!(
                "paid {} to node {node} for {model} ({}); receipt {} saved to {}",
                env.receipt.body.price,
                tier.as_str(),
                env.receipt.id(),
                file.display()
            );
            eprintln!(
                "check it with: opal verify {} --node {}",
                file.display(),
                a.node.node
            );
        }
    }
    Ok(())
}

/// [`opal_caller::wait_for_proof`] with a progress bar.
fn wait_for_proof(c: &Client, id: &Hash, timeout: Duration) -> Result<ZkEvidence> {
    let pb = indicatif::ProgressBar::new(1000);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message("proving");
    let t0 = Instant::now();
    let r = opal_caller::wait_for_proof(c, id, timeout, &mut |p| {
        pb.set_position((p * 1000.0) as u64)
    });
    pb.finish_and_clear();
    if r.is_ok() {
        eprintln!("proved in {:.1} s", t0.elapsed().as_secs_f64());
    }
    Ok(r?)
}

fn describe_tensor(t: &Tensor) -> String {
    let data = serde_json::to_value(t).unwrap_or_default();
    let d = data["data"].to_string();
    let short = if d.len() > 200 {
        format!("{}...", &d[..200])
    } else {
        d
    };
    format!("{} {:?}: {short}", t.dtype().name(), t.shape())
}

#[derive(Args, Debug)]
pub struct InferArgs {
    /// NAME@VERSION, or NAME for the newest version.
    pub model: String,
    /// Input JSON: a nested array, an object of named arrays (one per model input), a tensor
    /// {"dtype","shape","data"} or a list of them, or {"input_data": [[...]]}.
    #[arg(long)]
    pub input: PathBuf,
    /// Verification tier: signed (paid now, randomly audited), replay (paid after a
    /// challenge window) or zk (the node proves the result; paid once validators verify the
    /// proof). replay and zk need a canonical opal_quant model.
    #[arg(long, default_value = "signed")]
    pub tier: Tier,
    /// zk tier: how long to wait for the node's proof, with a progress bar, before saving the
    /// receipt without it (seconds).
    #[arg(long, default_value_t = 600)]
    pub proof_timeout: u64,
    /// Escalation: ask for this audit probability (basis points, up to 10000) instead of the
    /// chain's base rate; the extra expected audit cost is charged from your escrow.
    #[arg(long, default_value_t = 0)]
    pub audit_bps: u32,
    /// Escalation: hold the payment for the challenge window so the result can be disputed
    /// (canonical models, decided by re-execution; float ONNX models, decided by the committee).
    #[arg(long)]
    pub dispute: bool,
    /// The caller's key (pays from its escrow with the node).
    #[arg(long)]
    pub from: String,
    /// Inference node API URL [default: the endpoint the serving node declared on chain].
    #[arg(long)]
    pub serve_url: Option<String>,
    /// Most to pay for this inference [default: the quoted price].
    #[arg(long)]
    pub max_price: Option<Amount>,
    /// Declare commercial use (refused by non-commercial licences).
    #[arg(long)]
    pub commercial: bool,
    /// If the escrow with the node cannot cover the price, fund it with this much.
    #[arg(long, default_value = "1000000")]
    pub deposit: Amount,
    /// Where to write the receipt [default: receipt-<request id prefix>.json].
    #[arg(long, visible_alias = "receipt-out")]
    pub receipt: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeArg,
    #[command(flatten)]
    pub keyring: KeyringArg,
}
