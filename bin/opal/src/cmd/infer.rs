//! `opal infer` (`opal verify` is in `verify.rs`).

use crate::cli::{KeyringArg, NodeArg, Output, TxOpts};
use crate::cmd::tx::send;
use crate::keyring::resolve;
use crate::output::{print, s};
use clap::Args;
use opal_client::Client;
use opal_node::clock::now_ms;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use opal_infer::{Tensor, TensorSpec};
use opal_types::receipt::{InferenceRequest, ReceiptEnvelope, ZkEvidence, ZK_EVIDENCE_VERSION};
use opal_types::{Action, Address, Amount, Hash, ModelRef, Tier};
use opal_worker::tensors_hash;
use serde_json::{json, Value};
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

fn amount(v: &Value) -> Result<Amount> {
    serde_json::from_value(v.clone()).map_err(|e| anyhow!("bad amount {v}: {e}"))
}

pub fn run_infer(a: InferArgs, out: Output) -> Result<()> {
    let tier: Tier = a.tier.parse().map_err(|e: String| anyhow!("--tier: {e}"))?;
    let key = resolve(&a.from, &a.keyring.keyring)?.secret()?;
    let me = key.address();
    let c = Client::new(&a.node.node)?;
    let status = c.get("/api/status")?;
    let chain_id = s(&status, "chain_id");
    let m = c.get(&format!("/api/models/{}", a.model))?;
    let model: ModelRef = serde_json::from_value(m["model"].clone())?;
    let spec = &m["spec"];
    let model_hash = Hash::from_hex(&s(spec, "content_hash")).map_err(|e| anyhow!(e))?;
    let specs: Vec<TensorSpec> =
        serde_json::from_str(spec["input_schema"].as_str().unwrap_or("[]"))
            .context("the model's registered input schema is not readable")?;
    let inputs = read_inputs(&a.input, &specs)?;

    // A node that serves this model under the tier.
    let services = m["services"].as_array().cloned().unwrap_or_default();
    let svc = services
        .iter()
        .find(|x| {
            x["tiers"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(tier.as_str())))
        })
        .ok_or_else(|| anyhow!("no node serves {model} under tier {}", tier.as_str()))?;
    let node: Address = s(svc, "node").parse().map_err(|e| anyhow!("{e}"))?;
    let url = a.serve_url.clone().unwrap_or_else(|| s(svc, "endpoint"));
    let licence_fee = match spec["licence"]["kind"].as_str() {
        Some("commercial") => amount(&spec["licence"]["fee"])?,
        _ => Amount::ZERO,
    };
    let quote = amount(&spec["price"])?
        .checked_add(licence_fee)
        .and_then(|p| p.checked_add(amount(&svc["fee"]).unwrap_or(Amount(u128::MAX))))
        .map_err(|e| anyhow!("price: {e}"))?;
    let max_price = match &a.max_price {
        Some(p) => p.parse().map_err(|e| anyhow!("--max-price: {e}"))?,
        None => quote,
    };

    // Make sure the escrow with that node covers the price.
    let esc = c.get(&format!("/api/escrows/{me}/{node}"))?;
    if !esc["unlock_ms"].is_null() {
        bail!("your escrow with node {node} is closing; withdraw it after it unlocks, then fund a new one");
    }
    let balance = amount(&esc["balance"])?;
    if balance < quote {
        let deposit: Amount = a.deposit.parse().map_err(|e| anyhow!("--deposit: {e}"))?;
        let deposit = deposit.max(quote);
        eprintln!("funding your escrow with node {node}: {deposit} (it holds {balance}, the price is {quote})");
        let sent = send(
            Action::FundEscrow {
                node,
                amount: deposit,
            },
            &TxOpts {
                from: a.from.clone(),
                fee: None,
                no_wait: false,
                node: a.node.clone(),
                keyring: a.keyring.clone(),
            },
        )?;
        if !sent.status.applied() {
            bail!(
                "funding the escrow failed: {}",
                sent.status.error().unwrap_or("-")
            );
        }
    }

    let salt = now_ms()
        ^ ((std::process::id() as u64) << 40)
        ^ u64::from_le_bytes(tensors_hash(&inputs).0[..8].try_into().expect("8 bytes"));
    let request = InferenceRequest {
        chain_id,
        node,
        model: model.clone(),
        model_hash,
        input_hash: tensors_hash(&inputs),
        tier,
        max_price,
        commercial: a.commercial,
        salt,
        expires_ms: now_ms() + REQUEST_TTL_MS,
        escalation: opal_types::Escalation {
            audit_bps: a.audit_bps,
            dispute: a.dispute,
        },
    }
    .sign(&key);
    let request_id = request.id();
    let sc = Client::new(&url)?;
    let reply = sc.post_json(
        "/api/infer",
        &json!({"request": hex::encode(opal_types::encode(&request)), "inputs": inputs}),
    )?;

    // Check what came back before trusting it.
    let mut env = ReceiptEnvelope::from_bytes(
        &hex::decode(s(&reply, "receipt")).context("receipt is not hex")?,
    )
    .map_err(|e| anyhow!("the node's receipt is malformed: {e}"))?;
    env.verify()
        .map_err(|e| anyhow!("the node's receipt does not verify: {e}"))?;
    if env.receipt.body.request != request {
        bail!("the node's receipt answers a different request");
    }
    let outputs: Vec<Tensor> = serde_json::from_value(reply["outputs"].clone())
        .context("the node's outputs are not tensors")?;
    if tensors_hash(&outputs) != env.receipt.body.output_hash {
        bail!("the outputs do not match the receipt's output hash");
    }
    // The zk tier: wait for the node's proof and attach it to the receipt.
    let mut proof_note = None;
    if tier == Tier::Zk {
        match wait_for_proof(&sc, &request_id, Duration::from_secs(a.proof_timeout)) {
            Ok(ev) => {
                if opal_types::receipt::tensor_list_hash(&ev.outputs)
                    != env.receipt.body.output_hash
                {
                    bail!("the node's proof is about other outputs than its receipt");
                }
                proof_note = Some(json!({"proof_bytes": ev.proof.len()}));
                env.attachments.push(ev.to_attachment());
            }
            Err(e) => {
                eprintln!("warning: {e:#}; the receipt is saved without its proof");
                proof_note = Some(json!({"error": format!("{e:#}")}));
            }
        }
    }
    let file = a
        .receipt
        .clone()
        .unwrap_or_else(|| format!("receipt-{}.json", &request_id.to_hex()[..12]).into());
    let saved = receipt_json(&env, &outputs);
    crate::output::write_file(&file, &serde_json::to_vec_pretty(&saved)?)?;
    let v = json!({
        "model": model, "node": node, "tier": tier, "price": env.receipt.body.price,
        "request_id": request_id, "receipt_id": env.receipt.id(), "height": env.receipt.body.height,
        "outputs": outputs, "receipt_file": file.display().to_string(),
        "compute_ms": reply["compute_ms"], "proof": proof_note,
    });
    match out {
        Output::Json => print(out, &v, String::new),
        Output::Text => {
            // The outputs, as JSON, on stdout (for scripts); what happened on stderr.
            println!("{}", serde_json::to_string(&json!({"outputs": outputs}))?);
            for t in &outputs {
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

/// Poll the serving node for the zk proof of `id` with a progress bar, until it is done, it
/// failed, or `timeout` passed.
fn wait_for_proof(c: &Client, id: &Hash, timeout: Duration) -> Result<ZkEvidence> {
    let pb = indicatif::ProgressBar::new(1000);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message("proving");
    let t0 = Instant::now();
    let r = loop {
        let (status, v) = c.get_raw(&format!("/api/proofs/{id}"))?;
        if status >= 400 {
            break Err(anyhow!(
                "the node has no proof for this request: {}",
                s(&v["error"], "message")
            ));
        }
        match v["state"].as_str() {
            Some("done") => {
                if v["evidence_version"].as_u64() != Some(ZK_EVIDENCE_VERSION as u64) {
                    break Err(anyhow!("the node's proof has an unknown format version"));
                }
                let bytes = hex::decode(s(&v, "evidence")).context("evidence is not hex")?;
                break ZkEvidence::from_bytes(&bytes)
                    .map_err(|e| anyhow!("the node's proof is malformed: {e}"));
            }
            Some("failed") => {
                break Err(anyhow!("the node could not prove it: {}", s(&v, "error")))
            }
            Some("proving") => {
                pb.set_position((v["progress"].as_f64().unwrap_or(0.0) * 1000.0) as u64)
            }
            _ => {}
        }
        if t0.elapsed() > timeout {
            break Err(anyhow!(
                "no proof after {} s (raise --proof-timeout)",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    pb.finish_and_clear();
    if r.is_ok() {
        eprintln!("proved in {:.1} s", t0.elapsed().as_secs_f64());
    }
    r
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

/// The saved receipt file (`opal_verify::file::receipt_file`, which `opal verify` holds the
/// file to) with the outputs.
fn receipt_json(env: &ReceiptEnvelope, outputs: &[Tensor]) -> Value {
    let mut v = opal_verify::file::receipt_file(env);
    v.insert("outputs".into(), json!(outputs));
    Value::Object(v)
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
    pub tier: String,
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
    pub max_price: Option<String>,
    /// Declare commercial use (refused by non-commercial licences).
    #[arg(long)]
    pub commercial: bool,
    /// If the escrow with the node cannot cover the price, fund it with this much.
    #[arg(long, default_value = "1000000")]
    pub deposit: String,
    /// Where to write the receipt [default: receipt-<request id prefix>.json].
    #[arg(long, visible_alias = "receipt-out")]
    pub receipt: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeArg,
    #[command(flatten)]
    pub keyring: KeyringArg,
}
