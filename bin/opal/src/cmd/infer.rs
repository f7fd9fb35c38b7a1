//! `opal infer` and `opal verify`.

use crate::cli::{InferArgs, Output, TxOpts, VerifyArgs};
use crate::client::Client;
use crate::cmd::tx::send;
use crate::keyring::resolve;
use crate::output::{print, s};

use anyhow::{anyhow, bail, Context, Result};
use opal_infer::{Tensor, TensorSpec};
use opal_ledger::components::inference::Settled;
use opal_node::inference::tensors_hash;
use opal_types::receipt::{InferenceRequest, ReceiptEnvelope, ZkEvidence, ZK_EVIDENCE_VERSION};
use opal_types::{Action, Address, Amount, Hash, ModelRef, Tier};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a request stays valid for the node.
const REQUEST_TTL_MS: u64 = 5 * 60 * 1000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

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
        if sent.value["ok"].as_bool() != Some(true) {
            bail!("funding the escrow failed: {}", s(&sent.value, "error"));
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

/// The saved receipt file: the canonical envelope (what verification reads) plus readable fields.
fn receipt_json(env: &ReceiptEnvelope, outputs: &[Tensor]) -> Value {
    let b = &env.receipt.body;
    json!({
        "format": "opal-receipt",
        "version": env.version,
        "request_id": env.receipt.request_id(),
        "receipt_id": env.receipt.id(),
        "model": b.request.request.model,
        "model_hash": b.request.request.model_hash,
        "tier": b.request.request.tier,
        "caller": b.request.caller_address(),
        "node": b.request.request.node,
        "price": b.price,
        "height": b.height,
        "input_hash": b.request.request.input_hash,
        "output_hash": b.output_hash,
        "outputs": outputs,
        "envelope": hex::encode(env.to_bytes()),
    })
}

/// The readable fields of a receipt file (as `receipt_json` here and the node's LLM receipt
/// write them) that copy signed values, and which of those present in `file` differ from the
/// envelope. `unit_price` is not signed; it must at least multiply with the signed units to the
/// signed price. Only `model_id` (the OpenAI name the caller used) is left unchecked.
fn readable_field_mismatches(file: &Value, env: &ReceiptEnvelope) -> Vec<String> {
    let b = &env.receipt.body;
    let req = &b.request.request;
    let signed: [(&str, Value); 16] = [
        ("format", json!("opal-receipt")),
        ("version", json!(env.version)),
        ("request_id", json!(env.receipt.request_id())),
        ("receipt_id", json!(env.receipt.id())),
        ("model", json!(req.model)),
        ("model_hash", json!(req.model_hash)),
        ("tier", json!(req.tier)),
        ("caller", json!(b.request.caller_address())),
        ("node", json!(req.node)),
        ("grant_id", json!(b.request.grant.as_ref().map(|g| g.id()))),
        ("price", json!(b.price)),
        ("units", json!(b.units)),
        ("max_price", json!(req.max_price)),
        ("height", json!(b.height)),
        ("input_hash", json!(req.input_hash)),
        ("output_hash", json!(b.output_hash)),
    ];
    let mut bad: Vec<String> = signed
        .iter()
        .filter(|(k, want)| file.get(*k).is_some_and(|got| got != want))
        .map(|(k, _)| k.to_string())
        .collect();
    if let Some(got) = file.get("attachments") {
        let want: Vec<Value> = env
            .attachments
            .iter()
            .map(|a| json!({"tier": a.tier, "version": a.version, "bytes": a.bytes.len()}))
            .collect();
        if got != &json!(want) {
            bad.push("attachments".into());
        }
    }
    if let Some(up) = file.get("unit_price") {
        let consistent = serde_json::from_value::<Amount>(up.clone())
            .ok()
            .and_then(|u| u.0.checked_mul(u128::from(b.units)))
            == Some(b.price.0);
        if !consistent {
            bad.push("unit_price".into());
        }
    }
    bad
}

/// Whether the settled record proven under `root` (state after `height`) is this receipt's;
/// the detail, and the height of the block that settled it.
fn settled_record(
    bytes: Option<&[u8]>,
    r: &opal_types::Receipt,
    root: Hash,
    height: u64,
) -> (bool, String, Option<u64>) {
    match bytes {
        None => (
            false,
            format!("not settled as of height {height} (proof of absence checked against {root})"),
            None,
        ),
        Some(b) => match borsh::from_slice::<Settled>(b) {
            Err(e) => (false, format!("settled record unreadable: {e}"), None),
            Ok(rec) if rec.receipt_id != r.id() => (
                false,
                format!(
                    "a different receipt {} was settled for this request",
                    rec.receipt_id
                ),
                None,
            ),
            Ok(rec) if rec.output_hash != r.body.output_hash || rec.price != r.body.price => (
                false,
                "the settled record differs from the receipt".into(),
                None,
            ),
            Ok(rec) => (
                true,
                format!("settled in block {}", rec.height),
                Some(rec.height),
            ),
        },
    }
}

pub fn run_verify(a: VerifyArgs, out: Output) -> Result<()> {
    let text =
        std::fs::read(&a.receipt).with_context(|| format!("reading {}", a.receipt.display()))?;
    if text.len() > 64 << 20 {
        bail!("{} is too large to be a receipt", a.receipt.display());
    }
    let file: Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a receipt file (JSON)", a.receipt.display()))?;
    // A whole OpenAI-compatible reply (or its last streamed chunk) carries it as `opal_receipt`.
    let file = match file.get("opal_receipt") {
        Some(r) if r.is_object() => r.clone(),
        _ => file,
    };
    let env_hex = file["envelope"]
        .as_str()
        .ok_or_else(|| anyhow!("{} has no \"envelope\" field", a.receipt.display()))?;
    let mut checks: Vec<(String, bool, String)> = Vec::new();
    let env = ReceiptEnvelope::from_bytes(&hex::decode(env_hex).context("envelope is not hex")?)
        .map_err(|e| anyhow!("the receipt envelope is malformed: {e}"))?;
    let sig = env.verify();
    checks.push((
        "signatures (caller's request, node's receipt) and price bound".into(),
        sig.is_ok(),
        sig.err().map(|e| e.to_string()).unwrap_or_default(),
    ));
    let r = &env.receipt;
    // Readable copies of signed fields must say what the envelope says: a file whose "model" or
    // "price" was edited is not a valid receipt of that model or price.
    let mismatched = readable_field_mismatches(&file, &env);
    checks.push((
        "readable fields agree with the signed envelope".into(),
        mismatched.is_empty(),
        if mismatched.is_empty() {
            String::new()
        } else {
            format!(
                "differs from the signed envelope: {}",
                mismatched.join(", ")
            )
        },
    ));
    // The readable copy of the outputs, or --outputs, must hash to the signed output hash.
    let outputs_v = match &a.outputs {
        Some(p) => Some(
            serde_json::from_slice::<Value>(
                &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not JSON", p.display()))?,
        ),
        None => file.get("outputs").cloned(),
    };
    if let Some(ov) = outputs_v {
        let ov = ov.get("outputs").cloned().unwrap_or(ov);
        let ok = serde_json::from_value::<Vec<Tensor>>(ov)
            .map(|o| tensors_hash(&o) == r.body.output_hash)
            .unwrap_or(false);
        checks.push((
            "outputs match the signed output hash".into(),
            ok,
            String::new(),
        ));
    }
    // An LLM reply's receipt: its readable input (tokens, sampling, seed) and output tokens must
    // hash to the signed input and output hashes.
    if let Some(li) = file.get("llm_input") {
        let ok = serde_json::from_value::<opal_types::llm::LlmInput>(li.clone())
            .map(|i| i.hash() == r.body.request.request.input_hash)
            .unwrap_or(false);
        checks.push((
            "LLM input (prompt tokens, sampling, seed) matches the signed input hash".into(),
            ok,
            String::new(),
        ));
    }
    if let Some(ot) = file.get("output_tokens") {
        // `activations` tier: the signed hash also binds the attached commitment.
        let commitment =
            (r.body.request.request.tier == opal_types::Tier::Activations).then(|| {
                env.attachments
                    .iter()
                    .find(|x| x.tier == opal_types::Tier::Activations)
                    .map(|a| a.bytes.as_slice())
            });
        let ok = match (serde_json::from_value::<Vec<u32>>(ot.clone()), commitment) {
            (Ok(t), None) => opal_types::llm::output_hash(&t, None) == r.body.output_hash,
            (Ok(t), Some(Some(c))) => {
                opal_types::llm::output_hash(&t, Some(c)) == r.body.output_hash
            }
            _ => false,
        };
        checks.push((
            "LLM output tokens (and the activation commitment) match the signed output hash".into(),
            ok,
            String::new(),
        ));
    }
    // An LLM receipt bills one unit per prompt and completion token (royalties are per unit).
    if let (Some(li), Some(ot)) = (file.get("llm_input"), file.get("output_tokens")) {
        let counted = serde_json::from_value::<opal_types::llm::LlmInput>(li.clone())
            .ok()
            .zip(serde_json::from_value::<Vec<u32>>(ot.clone()).ok())
            .map(|(i, t)| (i.prompt_tokens.len() + t.len()) as u64);
        checks.push((
            "billed units equal the prompt and completion tokens".into(),
            counted == Some(r.body.units),
            format!("billed {}, counted {counted:?}", r.body.units),
        ));
    }
    // The `activations` tier: the commitment attached to the envelope, re-checked against the
    // model (only with --llm-model: it runs the model over the prompt and the output).
    let commitment = env
        .attachments
        .iter()
        .find(|x| x.tier == opal_types::Tier::Activations);
    if let (Some(att), Some(path)) = (commitment, &a.llm_model) {
        // The chain's commitment parameters, never the commitment's: from --node's chain, or
        // the defaults, either overridden by --llm-commit-chunk / --llm-commit-top-k.
        let mut params = match &a.node {
            Some(node) => chain_commit_params(&Client::new(node)?)?,
            None => commit_params(&opal_ledger::Params::default()),
        };
        if let Some(v) = a.llm_commit_chunk {
            params.chunk_size = v;
        }
        if let Some(v) = a.llm_commit_top_k {
            params.top_k = v;
        }
        let (ok, why) = match check_activations(
            &file,
            &r.body.request.request.model_hash,
            &att.bytes,
            path,
            &params,
        ) {
            Ok(()) => (true, String::new()),
            Err(e) => (false, format!("{e:#}")),
        };
        checks.push((
            "activation commitment recomputed from the model".into(),
            ok,
            why,
        ));
    }
    // The `zk` tier: the attached proof, checked against the verifying key derived from the
    // model file (offline) or published on chain for the model's weight commitment (--node).
    let zk_att = env.attachments.iter().find(|x| x.tier == Tier::Zk);
    if r.body.request.request.tier == Tier::Zk || zk_att.is_some() {
        let (ok, why) = match check_zk(r, zk_att, a.model_file.as_deref(), a.node.as_deref()) {
            Ok(what) => (true, what),
            Err(e) => (false, format!("{e:#}")),
        };
        checks.push(("zk proof of the output".into(), ok, why));
    }
    if let Some(p) = &a.input {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let v: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not JSON", p.display()))?;
        let ins: Result<Vec<Tensor>> = match v {
            Value::Array(items) => items
                .iter()
                .map(|t| Tensor::from_json(t.to_string().as_bytes()).map_err(|e| anyhow!("{e}")))
                .collect(),
            _ => Tensor::from_json(&bytes)
                .map(|t| vec![t])
                .map_err(|e| anyhow!("{e}")),
        };
        let ok = ins
            .map(|i| tensors_hash(&i) == r.body.request.request.input_hash)
            .unwrap_or(false);
        checks.push((
            "input matches the signed input hash".into(),
            ok,
            String::new(),
        ));
    }
    let mut settled = Value::Null;
    let mut trusted = Value::Null;
    // A light-client failure (forged root, short certificate, ...) decides the exit code.
    let mut light_failure: Option<opal_verify::LightError> = None;
    let trust_start = match (&a.genesis, &a.trust) {
        (Some(_), Some(_)) => bail!("give either --genesis or --trust, not both"),
        (Some(g), None) => {
            let (t, unbonding_ms) = crate::cmd::light::trust_genesis(g)?;
            Some((t, unbonding_ms))
        }
        (None, Some(spec)) => {
            let node = a
                .node
                .as_deref()
                .ok_or_else(|| anyhow!("--trust needs --node (the checkpoint is fetched)"))?;
            let t = crate::cmd::light::trust_checkpoint(&Client::new(node)?, spec)?;
            Some((t, 7 * 24 * 3_600_000))
        }
        (None, None) => None,
    };
    let light_opts = trust_start.as_ref().map(|(_, default_ms)| {
        let period_ms = match a.trusting_period {
            Some(0) => None,
            Some(secs) => Some(secs.saturating_mul(1_000)),
            None => Some(*default_ms),
        };
        opal_verify::Options::new(now_ms(), period_ms)
    });
    let settled_key = opal_ledger::keys::inference::settled(&r.request_id());
    let portable_in_file: Option<opal_verify::Portable> = match file.get("portable") {
        Some(p) => Some(
            serde_json::from_value(p.clone())
                .map_err(|e| anyhow!("the receipt file's portable proof is malformed: {e}"))?,
        ),
        None => None,
    };
    let mut portable_out = None;
    if let (Some((t, _)), Some(opts)) = (&trust_start, &light_opts) {
        trusted = crate::cmd::light::describe_trust(t);
        if opts.trusting_period_ms.is_none() {
            eprintln!("warning: --trusting-period 0: the trust start never expires (validators that unbonded since could sign a forged chain)");
        }
        let outcome = match (&a.node, &portable_in_file) {
            (Some(node), _) => {
                crate::cmd::light::prove_via_light_client(&Client::new(node)?, t, &settled_key, opts)?
            }
            (None, Some(p)) if p.state.key == settled_key => {
                p.verify(t, opts).map(|v| (p.clone(), v))
            }
            (None, Some(_)) => bail!("the portable proof in the file is about another key"),
            (None, None) => bail!(
                "--genesis/--trust check settlement: give --node, or a receipt file saved with --save-portable"
            ),
        };
        match outcome {
            Ok((portable, v)) => {
                let (ok, why, at) =
                    settled_record(v.value.as_deref(), r, v.state_root, v.certified_by - 1);
                if ok {
                    settled = json!({"height": at, "proof_height": v.certified_by - 1, "state_root": v.state_root, "certified_by_block": v.certified_by, "light_client_path": v.path});
                }
                checks.push((
                    format!(
                        "settled on chain (light client: block {} certified by more than 2/3 of its validators, trusted from {}; Merkle proof against its state root)",
                        v.certified_by,
                        match &v.trusted.source {
                            opal_verify::light::TrustSource::Genesis { .. } => "the genesis file".to_string(),
                            opal_verify::light::TrustSource::Checkpoint { height, .. } => format!("checkpoint {height}"),
                        }
                    ),
                    ok,
                    why,
                ));
                portable_out = Some(portable);
            }
            Err(e) => {
                checks.push((
                    "settled on chain (light client)".into(),
                    false,
                    format!("{}: {e}", e.code()),
                ));
                light_failure = Some(e);
            }
        }
    } else if let Some(node) = &a.node {
        // No trust start: the node is trusted for its state root. Said so in the output.
        trusted = json!({"source": {"kind": "node", "url": node}, "note": "the state root is the node's word; pass --genesis or --trust for a light-client check"});
        let c = Client::new(node)?;
        let id = r.request_id();
        let v = c.get(&format!("/api/receipts/{id}?prove=true"))?;
        let root = s(&v, "state_root");
        let (ok, why, at) = match crate::cmd::query::check_proof(&v, &root) {
            Err(e) => (false, e.to_string(), None),
            Ok(bytes) => settled_record(
                bytes.as_deref(),
                r,
                Hash::from_hex(&root).unwrap_or(Hash::ZERO),
                s(&v, "height").parse().unwrap_or(0),
            ),
        };
        if ok {
            settled = json!({"height": at, "proof_height": v["height"], "state_root": root});
        }
        checks.push((
            format!(
                "settled on chain (Merkle proof against the node's state root at height {}; not certified: no --genesis or --trust)",
                s(&v, "height")
            ),
            ok,
            why,
        ));
        // The root the proof was checked against must be the committed block's.
        let same = c
            .get(&format!("/api/blocks/{}", s(&v, "height")))
            .map(|b| s(&b, "state_root") == root);
        checks.push((
            "proof root is the committed block's state root (as the node reports it)".into(),
            matches!(same, Ok(true)),
            match same {
                Ok(true) => String::new(),
                Ok(false) => "the node reports another root for that block".into(),
                Err(e) => format!("could not read the block: {e:#}"),
            },
        ));
    }
    if let Some(out_path) = &a.save_portable {
        let Some(p) = &portable_out else {
            bail!("--save-portable needs a light-client check that succeeded (--node with --genesis or --trust)");
        };
        let mut f = file.clone();
        f["portable"] = serde_json::to_value(p)?;
        crate::output::write_file(out_path, &serde_json::to_vec_pretty(&f)?)?;
        eprintln!(
            "saved the receipt with its portable settlement proof to {} (check it offline: opal verify {} --genesis GENESIS)",
            out_path.display(),
            out_path.display()
        );
    }
    let mut verification = Value::Null;
    if let Some(node) = &a.node {
        // Held results, audits and disputes (docs/verification.md).
        let c = Client::new(node)?;
        let v = c.get(&format!("/api/cases/{}", r.request_id()))?;
        let outcome = v["verdict"]["outcome"].as_str().map(str::to_string);
        if let Some(o) = &outcome {
            let ok = !matches!(o.as_str(), "fraud" | "withheld" | "undecidable");
            checks.push((
                format!("verification case closed: {o}"),
                ok,
                match o.as_str() {
                    "undecidable" => "nobody could re-execute the model in a block: the caller was refunded, the node not paid".into(),
                    _ if !ok => "the node was convicted for this receipt; it was not (or no longer) paid".into(),
                    _ => String::new(),
                },
            ));
        }
        if !v["case"].is_null() {
            checks.push((
                format!(
                    "verification case open ({}): decided after block time {}",
                    s(&v["case"], "kind"),
                    s(&v["case"], "deadline_ms")
                ),
                true,
                String::new(),
            ));
        }
        verification = json!({"case": v["case"], "verdict": v["verdict"]});
    }
    let all_ok = checks.iter().all(|(_, ok, _)| *ok);
    let v = json!({
        "valid": all_ok,
        "verification": verification,
        "request_id": r.request_id(),
        "receipt_id": r.id(),
        "model": r.body.request.request.model,
        "node": r.node(),
        "tier": r.body.request.request.tier,
        "price": r.body.price,
        "settled": settled,
        "trusted": trusted,
        "checks": checks.iter().map(|(what, ok, why)| json!({"check": what, "ok": ok, "detail": why})).collect::<Vec<_>>(),
    });
    print(out, &v, || {
        let mut lines = vec![format!(
            "receipt {} for {} from node {} ({})",
            r.id(),
            r.body.request.request.model,
            r.node(),
            r.body.request.request.tier.as_str()
        )];
        for (what, ok, why) in &checks {
            lines.push(format!(
                "  [{}] {what}{}",
                if *ok { "ok" } else { "FAIL" },
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ));
        }
        lines.push(if all_ok {
            "VALID".into()
        } else {
            "INVALID".into()
        });
        lines.join("\n")
    });
    if let Some(e) = &light_failure {
        std::process::exit(crate::cmd::light::exit_code(e));
    }
    if !all_ok {
        std::process::exit(3);
    }
    Ok(())
}

/// Check a `zk` attachment: its inputs and outputs must hash to what the receipt signed, and its
/// proof must verify against the model's verifying key: derived from `model_file` (which must
/// hash to the receipt's model hash; with `node` too, the derived key's id must be the
/// registered weight commitment), or fetched from `node` (the key published on chain whose id
/// is the model's registered weight commitment; it must name the receipt's model file). Returns
/// what the proof was checked against.
fn check_zk(
    r: &opal_types::Receipt,
    att: Option<&opal_types::receipt::Attachment>,
    model_file: Option<&Path>,
    node: Option<&str>,
) -> Result<String> {
    use opal_types::receipt::tensor_list_hash;
    let att = att.ok_or_else(|| anyhow!("no zk proof is attached to this receipt"))?;
    if att.version != ZK_EVIDENCE_VERSION {
        bail!("zk attachment format version {} is unknown", att.version);
    }
    let ev = ZkEvidence::from_bytes(&att.bytes).map_err(|e| anyhow!("{e}"))?;
    let req = &r.body.request.request;
    if tensor_list_hash(&ev.inputs) != req.input_hash {
        bail!("the proof's inputs are not the ones the caller signed");
    }
    if tensor_list_hash(&ev.outputs) != r.body.output_hash {
        bail!("the proof's outputs are not the ones the node signed");
    }
    let (vk, source) = match (model_file, node) {
        (Some(path), _) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if Hash(*blake3::hash(&bytes).as_bytes()) != req.model_hash {
                bail!(
                    "{} is not the receipt's model (content hash differs)",
                    path.display()
                );
            }
            // The key re-derived from the file names the file (its hash is the receipt's).
            let vk = opal_zk::api::key_for_file(&bytes).map_err(|e| anyhow!("zk setup: {e}"))?;
            let id = Hash(vk.id());
            if let Some(node) = node {
                // The registered weight commitment must be this file's key: a commitment to
                // another key would settle another model's proofs as this one's.
                let c = Client::new(node)?;
                let m = c.get(&format!("/api/models/{}", req.model))?;
                let wc = Hash::from_hex(&s(&m["spec"], "weight_commitment"))
                    .map_err(|_| anyhow!("model {} has no zk weight commitment", req.model))?;
                if wc != id {
                    bail!(
                        "model {} is registered with the zk key {wc}, but the key of {} is {id}: the registered key is not this file's",
                        req.model,
                        path.display()
                    );
                }
            }
            (vk, format!("the key derived from {} ({id})", path.display()))
        }
        (None, Some(node)) => {
            let c = Client::new(node)?;
            let m = c.get(&format!("/api/models/{}", req.model))?;
            let id = Hash::from_hex(&s(&m["spec"], "weight_commitment"))
                .map_err(|_| anyhow!("model {} has no zk weight commitment", req.model))?;
            let k = c.get(&format!("/api/zk/keys/{id}"))?;
            let bytes = hex::decode(s(&k, "key")).context("key is not hex")?;
            if Hash(*blake3::hash(&bytes).as_bytes()) != id {
                bail!("the node served a key that is not {id}");
            }
            let vk = opal_zk::api::VerifyingKey::from_bytes(&bytes)
                .map_err(|e| anyhow!("the published key is invalid: {e}"))?;
            let key_file = Hash(vk.file_hash());
            if key_file != req.model_hash {
                bail!(
                    "the published key {id} was made from the model file {key_file}, not the receipt's model {} ({})",
                    req.model,
                    req.model_hash
                );
            }
            (vk, format!("the key published on chain for the weight commitment ({id})"))
        }
        (None, None) => bail!(
            "give the model file (--model-file MODEL.opalq) or a node (--node URL) to check the proof against"
        ),
    };
    let x = opal_ledger::canonical::quantized_input(&vk.registered().structure, &ev.inputs)?;
    let y = opal_ledger::canonical::parse_output(&ev.outputs)?;
    let t0 = Instant::now();
    opal_zk::api::verify(&vk, &x, &y, &ev.proof).map_err(|e| anyhow!("invalid proof: {e}"))?;
    Ok(format!(
        "verified against {source} in {:.1} ms ({} proof bytes)",
        t0.elapsed().as_secs_f64() * 1e3,
        ev.proof.len()
    ))
}

/// Check an `activations` attachment: the GGUF at `path` must be the receipt's model, and the
/// reply must pass [`check_llm_output`] with the commitment parameters `params` (the chain's).
fn check_activations(
    file: &Value,
    model_hash: &Hash,
    bytes: &[u8],
    path: &Path,
    params: &opal_llm::CommitParams,
) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if Hash(*opal_artifacts::ArtifactHash::of_bytes(&data).as_bytes()) != *model_hash {
        bail!(
            "{} is not the receipt's model (content hash differs)",
            path.display()
        );
    }
    drop(data);
    let input: opal_types::llm::LlmInput = serde_json::from_value(file["llm_input"].clone())
        .context("the receipt file has no readable llm_input")?;
    let output: Vec<u32> = serde_json::from_value(file["output_tokens"].clone())
        .context("the receipt file has no readable output_tokens")?;
    let model = opal_llm::LlmModel::load(path).map_err(|e| anyhow!("loading the model: {e}"))?;
    check_llm_output(&model, &input, &output, bytes, params)
        .map_err(|e| anyhow!("{}: {e}", e.code()))
}

/// The commitment parameters a chain requires (its `Params::llm_commit_chunk` /
/// `llm_commit_top_k`).
pub fn commit_params(p: &opal_ledger::Params) -> opal_llm::CommitParams {
    opal_llm::CommitParams {
        chunk_size: p.llm_commit_chunk,
        top_k: p.llm_commit_top_k,
    }
}

/// The commitment parameters of the chain a node serves, from its `/api/status`.
pub fn chain_commit_params(c: &Client) -> Result<opal_llm::CommitParams> {
    let status = c.get("/api/status")?;
    let p: opal_ledger::Params = serde_json::from_value(status["params"].clone())
        .context("the node's status has no readable params")?;
    Ok(commit_params(&p))
}

/// The off-chain check of an `activations` reply (what `opal verify --llm-model` and a
/// validator voting on an LLM case run; `opal_llm::verify_reply`): the commitment decodes, was
/// made with the chain's commitment parameters `params` (never the ones it names) and with
/// exactly the sampling parameters and seed of the caller's signed input, generation stopped
/// where it had to (the first end-of-turn token, the first stop sequence, or exactly
/// `max_tokens`: tokens sampled and billed past that are padding), and the committed
/// activations and sampled tokens match the model within the verifier's tolerance
/// (docs/llm.md).
pub fn check_llm_output(
    model: &opal_llm::LlmModel,
    input: &opal_types::llm::LlmInput,
    output: &[u32],
    commitment: &[u8],
    params: &opal_llm::CommitParams,
) -> std::result::Result<(), opal_llm::VerifyError> {
    let c = opal_llm::ActivationCommitment::from_bytes(commitment)?;
    let spec = opal_llm::ReplySpec {
        prompt_tokens: &input.prompt_tokens,
        sampling: opal_llm::SamplingParams {
            seed: input.seed,
            temperature: input.temperature,
            top_p: input.top_p,
            top_k: input.top_k as usize,
            repetition_penalty: input.repetition_penalty,
        },
        max_tokens: input.max_tokens as usize,
        stop: &input.stop,
    };
    opal_llm::verify_reply(model, &spec, output, &c, params).map(|_| ())
}
