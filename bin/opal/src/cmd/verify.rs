//! `opal verify`: every check is `opal_verify`'s; this file only gathers the bytes (files, and
//! what a node serves, which is never trusted unless the output says so) and prints the report.

use crate::cli::{Output, VerifyArgs};
use crate::output::{print, s};
use opal_client::Client;
use opal_node::clock::now_ms;

use anyhow::{anyhow, bail, Context, Result};
use opal_infer::Tensor;
use opal_types::receipt::Receipt;
use opal_types::{Hash, Tier};
use opal_verify::light::TrustSource;
use opal_verify::report::Failure;
use opal_verify::{ReceiptFile, Report};
use opal_watcher::checks::{chain_commit_params, commit_params, rerun_float};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Tensors given as JSON (an array of tensor objects, one tensor object, or `{"outputs": ...}`
/// as `opal infer` prints them), as canonical bytes.
fn tensor_bytes(v: &Value) -> Result<Vec<Vec<u8>>> {
    let v = v.get("outputs").unwrap_or(v);
    let ts: Vec<Tensor> = match v {
        Value::Array(items) => items
            .iter()
            .map(|t| Tensor::from_json(t.to_string().as_bytes()).map_err(|e| anyhow!("{e}")))
            .collect::<Result<_>>()?,
        _ => vec![Tensor::from_json(v.to_string().as_bytes()).map_err(|e| anyhow!("{e}"))?],
    };
    Ok(ts.iter().map(Tensor::canonical_bytes).collect())
}

fn json_file(path: &Path) -> Result<Value> {
    serde_json::from_slice(&read(path)?).with_context(|| format!("{} is not JSON", path.display()))
}

/// A check the CLI ran around a verifier (reading its data, fetching a key or a model): its
/// failure code and text.
struct CliFailure(&'static str, String);
impl std::fmt::Display for CliFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}
impl Failure for CliFailure {
    fn code(&self) -> &'static str {
        self.0
    }
}

fn ok<E>(r: std::result::Result<(), E>) -> std::result::Result<String, E> {
    r.map(|()| String::new())
}

pub fn run_verify(a: VerifyArgs, out: Output) -> Result<()> {
    let text = read(&a.receipt)?;
    let rf = ReceiptFile::parse(&text).map_err(|e| anyhow!("{}: {e}", a.receipt.display()))?;
    let env = &rf.envelope;
    let r = &env.receipt;
    let req = &r.body.request.request;
    let mut rep = Report::new();

    // What every tier starts with (opal_verify::signed, opal_verify::file).
    rep.record(
        "signatures",
        "signatures (caller's request, node's receipt) and price bound",
        ok(opal_verify::signed::verify_envelope(env)),
    );
    let mismatched = rf.readable_mismatches();
    rep.record(
        "readable_fields",
        "readable fields agree with the signed envelope",
        ok(if mismatched.is_empty() {
            Ok(())
        } else {
            Err(opal_verify::signed::SignedError::ReadableFields(mismatched))
        }),
    );
    let outputs_v = match &a.outputs {
        Some(p) => Some(json_file(p)?),
        None => rf.outputs().cloned(),
    };
    let mut claimed_outputs = None;
    if let Some(ov) = outputs_v {
        let label = "outputs match the signed output hash";
        match tensor_bytes(&ov) {
            Ok(o) => {
                rep.record(
                    "outputs",
                    label,
                    ok(opal_verify::signed::check_outputs(r, &o)),
                );
                claimed_outputs = Some(o);
            }
            Err(e) => rep.record(
                "outputs",
                label,
                Err::<String, _>(CliFailure("unreadable", format!("{e:#}"))),
            ),
        }
    }
    let llm_input = rf.llm_input().transpose();
    let output_tokens = rf.output_tokens().transpose();
    match &llm_input {
        Ok(Some(i)) => rep.record(
            "llm_input",
            "LLM input (prompt tokens, sampling, seed) matches the signed input hash",
            ok(opal_verify::signed::check_llm_input(r, i)),
        ),
        Ok(None) => {}
        Err(e) => rep.record(
            "llm_input",
            "LLM input is readable",
            Err::<String, _>(e.clone()),
        ),
    }
    match &output_tokens {
        Ok(Some(t)) => rep.record(
            "llm_output",
            "LLM output tokens (and the activation commitment) match the signed output hash",
            ok(opal_verify::signed::check_llm_output(env, t)),
        ),
        Ok(None) => {}
        Err(e) => rep.record(
            "llm_output",
            "LLM output tokens are readable",
            Err::<String, _>(e.clone()),
        ),
    }
    if let (Ok(Some(i)), Ok(Some(t))) = (&llm_input, &output_tokens) {
        rep.record(
            "units",
            "billed units equal the prompt and completion tokens",
            opal_verify::signed::check_billed_units(r, i, t)
                .map(|()| format!("billed {}", r.body.units)),
        );
    }

    // The input, when given: it must be the signed one; with a canonical model file too, the
    // receipt is re-executed (opal_verify::replay), whatever tier it was bought under.
    let input_bytes = match &a.input {
        Some(p) => Some(tensor_bytes(&json_file(p)?).with_context(|| format!("{}", p.display()))),
        None => None,
    };
    if let Some(ib) = &input_bytes {
        let label = "input matches the signed input hash";
        match ib {
            Ok(i) => rep.record("inputs", label, ok(opal_verify::signed::check_inputs(r, i))),
            Err(e) => rep.record(
                "inputs",
                label,
                Err::<String, _>(CliFailure("unreadable", format!("{e:#}"))),
            ),
        }
    }
    let model_file = a.model_file.as_deref().map(read).transpose()?;
    if let (Some(mf), Some(Ok(inputs))) = (&model_file, &input_bytes) {
        if opal_verify::canonical::load_model(mf).is_ok() {
            let t0 = Instant::now();
            rep.record(
                "replay",
                "re-executed the model on the input (canonical execution)",
                opal_verify::replay::verify(r, mf, inputs, u64::MAX).map(|h| {
                    format!(
                        "same output {h} in {:.1} ms",
                        t0.elapsed().as_secs_f64() * 1e3
                    )
                }),
            );
        } else if req.tier != Tier::Zk {
            // A float (ONNX) model: re-run with tract and compared within the tolerance the
            // validators' committee audits with.
            let t0 = Instant::now();
            rep.record(
                "float_rerun",
                "re-ran the model on the input (tract, within the committee's tolerance)",
                float_rerun(r, mf, inputs, claimed_outputs.as_deref()).map(|()| {
                    format!(
                        "outputs agree, in {:.1} ms",
                        t0.elapsed().as_secs_f64() * 1e3
                    )
                }),
            );
        }
    }

    // The tier's own evidence.
    let commitment = env.attachments.iter().find(|x| x.tier == Tier::Activations);
    let is_llm = matches!(llm_input, Ok(Some(_)));
    if let (Some(path), true) = (&a.llm_model, commitment.is_some() || is_llm) {
        let params = llm_params(&a)?;
        let outcome = check_llm(
            &llm_input,
            &output_tokens,
            req.model_hash,
            commitment.map(|att| att.bytes.as_slice()),
            path,
            &params,
        );
        match commitment {
            Some(_) => rep.record(
                "activations",
                "activation commitment recomputed from the model",
                ok(outcome),
            ),
            // A `signed` LLM reply: its tokens, re-checked against the model's logits.
            None => rep.record(
                "llm_tokens",
                "every token follows from the model, the signed sampling and seed",
                ok(outcome),
            ),
        }
    }
    let zk_att = env.attachments.iter().find(|x| x.tier == Tier::Zk);
    if req.tier == Tier::Zk || zk_att.is_some() {
        let outcome = zk_key(
            r,
            model_file.as_deref(),
            a.model_file.as_deref(),
            a.node.as_deref(),
        )
        .and_then(|(vk, source)| {
            let t0 = Instant::now();
            opal_verify::zk::verify(r, zk_att, &vk)
                .map(|v| {
                    format!(
                        "verified against {source} in {:.1} ms ({} proof bytes)",
                        t0.elapsed().as_secs_f64() * 1e3,
                        v.proof_bytes
                    )
                })
                .map_err(|e| CliFailure(e.code(), e.to_string()))
        });
        rep.record("zk_proof", "zk proof of the output", outcome);
    }
    if req.tier == Tier::Tee {
        let att = env.attachments.iter().find(|x| x.tier == Tier::Tee);
        rep.record(
            "tee",
            "enclave attestation",
            ok(opal_verify::tee::verify(r, att)),
        );
    }

    // Settlement: as a light client (--genesis / --trust), or on the node's word (--node alone).
    let mut settled = Value::Null;
    let mut trusted = Value::Null;
    let light_failure = check_settlement(&a, &rf, &mut rep, &mut settled, &mut trusted)?;

    let mut verification = Value::Null;
    if let Some(node) = &a.node {
        // Held results, audits and disputes (docs/verification.md).
        let c = Client::new(node)?;
        let v = c.get(&format!("/api/cases/{}", r.request_id()))?;
        if let Some(o) = v["verdict"]["outcome"].as_str() {
            let label = format!("verification case closed: {o}");
            match o {
                "undecidable" => rep.fail("case", label, "undecidable", "nobody could re-execute the model in a block: the caller was refunded, the node not paid"),
                "fraud" | "withheld" => rep.fail("case", label, "convicted", "the node was convicted for this receipt; it was not (or no longer) paid"),
                _ => rep.pass("case", label, ""),
            }
        }
        if !v["case"].is_null() {
            rep.pass(
                "case",
                format!(
                    "verification case open ({}): decided after block time {}",
                    s(&v["case"], "kind"),
                    s(&v["case"], "deadline_ms")
                ),
                "",
            );
        }
        verification = json!({"case": v["case"], "verdict": v["verdict"]});
    }
    let all_ok = rep.valid();
    let v = json!({
        "valid": all_ok,
        "verification": verification,
        "request_id": r.request_id(),
        "receipt_id": r.id(),
        "model": req.model,
        "node": r.node(),
        "tier": req.tier,
        "price": r.body.price,
        "settled": settled,
        "trusted": trusted,
        "checks": rep.checks,
    });
    print(out, &v, || {
        let mut lines = vec![format!(
            "receipt {} for {} from node {} ({})",
            r.id(),
            req.model,
            r.node(),
            req.tier.as_str()
        )];
        for c in &rep.checks {
            lines.push(format!(
                "  [{}] {}{}",
                if c.ok { "ok" } else { "FAIL" },
                c.check,
                if c.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.detail)
                }
            ));
        }
        lines.push(if all_ok { "VALID" } else { "INVALID" }.into());
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

/// The chain's commitment parameters, never the commitment's: from --node's chain, or the
/// defaults, either overridden by --llm-commit-chunk / --llm-commit-top-k.
fn llm_params(a: &VerifyArgs) -> Result<opal_llm::CommitParams> {
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
    Ok(params)
}

/// The settlement checks; returns the light client's failure, which decides the exit code.
fn check_settlement(
    a: &VerifyArgs,
    rf: &ReceiptFile,
    rep: &mut Report,
    settled: &mut Value,
    trusted: &mut Value,
) -> Result<Option<opal_verify::LightError>> {
    let r = &rf.envelope.receipt;
    let trust_start = match (&a.genesis, &a.trust) {
        (Some(_), Some(_)) => bail!("give either --genesis or --trust, not both"),
        (Some(g), None) => Some(crate::cmd::light::trust_genesis(g)?),
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
    let key = opal_verify::settlement::settled_key(&r.request_id());
    let portable_in_file = rf
        .portable()
        .transpose()
        .map_err(|e| anyhow!("the receipt file's portable proof: {e}"))?;
    let mut portable_out = None;
    let mut light_failure = None;
    if let Some((t, default_ms)) = &trust_start {
        let period_ms = match a.trusting_period {
            Some(0) => None,
            Some(secs) => Some(secs.saturating_mul(1_000)),
            None => Some(*default_ms),
        };
        let opts = opal_verify::Options::new(now_ms(), period_ms);
        *trusted = crate::cmd::light::describe_trust(t);
        if opts.trusting_period_ms.is_none() {
            eprintln!("warning: --trusting-period 0: the trust start never expires (validators that unbonded since could sign a forged chain)");
        }
        let outcome = match (&a.node, &portable_in_file) {
            (Some(node), _) => {
                crate::cmd::light::prove_via_light_client(&Client::new(node)?, t, &key, &opts)?
            }
            (None, Some(p)) if p.state.key == key => p.verify(t, &opts).map(|v| (p.clone(), v)),
            (None, Some(_)) => bail!("the portable proof in the file is about another key"),
            (None, None) => bail!(
                "--genesis/--trust check settlement: give --node, or a receipt file saved with --save-portable"
            ),
        };
        match outcome {
            Ok((portable, v)) => {
                let proof_height = v.certified_by - 1;
                let from = match &v.trusted.source {
                    TrustSource::Genesis { .. } => "the genesis file".to_string(),
                    TrustSource::Checkpoint { height, .. } => format!("checkpoint {height}"),
                };
                let checked = opal_verify::settlement::check_settled(
                    v.value.as_deref(),
                    r,
                    v.state_root,
                    proof_height,
                );
                if let Ok(rec) = &checked {
                    *settled = json!({"height": rec.height, "proof_height": proof_height, "state_root": v.state_root, "certified_by_block": v.certified_by, "light_client_path": v.path});
                }
                rep.record(
                    "settlement",
                    format!(
                        "settled on chain (light client: block {} certified by more than 2/3 of its validators, trusted from {from}; Merkle proof against its state root)",
                        v.certified_by
                    ),
                    checked.map(|rec| format!("settled in block {}", rec.height)),
                );
                portable_out = Some(portable);
            }
            Err(e) => {
                rep.fail(
                    "settlement",
                    "settled on chain (light client)",
                    e.code(),
                    format!("{}: {e}", e.code()),
                );
                light_failure = Some(e);
            }
        }
    } else if let Some(node) = &a.node {
        // No trust start: the node is trusted for its state root. Said so in the output.
        *trusted = json!({"source": {"kind": "node", "url": node}, "note": "the state root is the node's word; pass --genesis or --trust for a light-client check"});
        let c = Client::new(node)?;
        let v = c.get(&format!("/api/receipts/{}?prove=true", r.request_id()))?;
        let root = s(&v, "state_root");
        let height: u64 = s(&v, "height").parse().unwrap_or(0);
        let checked = crate::cmd::query::check_proof(&v, &root)
            .map_err(|e| CliFailure("proof_invalid", e.to_string()))
            .and_then(|bytes| {
                let root = Hash::from_hex(&root).unwrap_or(Hash::ZERO);
                opal_verify::settlement::check_settled(bytes.as_deref(), r, root, height)
                    .map_err(|e| CliFailure(e.code(), e.to_string()))
            });
        if let Ok(rec) = &checked {
            *settled =
                json!({"height": rec.height, "proof_height": v["height"], "state_root": root});
        }
        rep.record(
            "settlement",
            format!(
                "settled on chain (Merkle proof against the node's state root at height {height}; not certified: no --genesis or --trust)"
            ),
            checked.map(|rec| format!("settled in block {}", rec.height)),
        );
        // The root the proof was checked against must be the committed block's.
        let same = c
            .get(&format!("/api/blocks/{height}"))
            .map(|b| s(&b, "state_root") == root);
        let label = "proof root is the committed block's state root (as the node reports it)";
        match same {
            Ok(true) => rep.pass("settlement_root", label, ""),
            Ok(false) => rep.fail(
                "settlement_root",
                label,
                "root_differs",
                "the node reports another root for that block",
            ),
            Err(e) => rep.fail(
                "settlement_root",
                label,
                "unreadable",
                format!("could not read the block: {e:#}"),
            ),
        }
    }
    if let Some(out_path) = &a.save_portable {
        let Some(p) = &portable_out else {
            bail!("--save-portable needs a light-client check that succeeded (--node with --genesis or --trust)");
        };
        let mut f = rf.json.clone();
        f["portable"] = serde_json::to_value(p)?;
        crate::output::write_file(out_path, &serde_json::to_vec_pretty(&f)?)?;
        eprintln!(
            "saved the receipt with its portable settlement proof to {} (check it offline: opal verify {} --genesis GENESIS)",
            out_path.display(),
            out_path.display()
        );
    }
    Ok(light_failure)
}

/// Re-run a float (ONNX) model file on the signed inputs with tract and compare with the
/// claimed outputs within `opal_verify::float::ONNX_TOLERANCE` (what a committee member of an
/// audit runs, `opal node watch`).
fn float_rerun(
    r: &Receipt,
    model_file: &[u8],
    inputs: &[Vec<u8>],
    claimed: Option<&[Vec<u8>]>,
) -> std::result::Result<(), CliFailure> {
    let got = Hash(*blake3::hash(model_file).as_bytes());
    if got != r.body.request.request.model_hash {
        return Err(CliFailure(
            "wrong_model_file",
            format!(
                "the model file hashes to {got}, the receipt's model is {}",
                r.body.request.request.model_hash
            ),
        ));
    }
    let claimed = claimed.ok_or_else(|| {
        CliFailure(
            "no_outputs",
            "the receipt file has no readable outputs to compare (give --outputs)".into(),
        )
    })?;
    let m = opal_infer::PreparedModel::load(model_file, &opal_infer::Limits::default())
        .map_err(|e| CliFailure("model", format!("the model file does not load: {e}")))?;
    rerun_float(&m, inputs, claimed).map_err(|(code, why)| CliFailure(code, why))
}

/// The verifying key a zk receipt is checked against, and where it came from: derived from the
/// model file (`opal_verify::zk::key_from_model_file`; with `node` too, the derived key's id
/// must be the registered weight commitment), or fetched from `node` by the registered weight
/// commitment (`key_from_published`: the bytes must hash to it; `opal_verify::zk::verify` then
/// checks that it names the receipt's model file).
fn zk_key(
    r: &Receipt,
    model_file: Option<&[u8]>,
    path: Option<&Path>,
    node: Option<&str>,
) -> std::result::Result<(opal_zk::api::VerifyingKey, String), CliFailure> {
    let req = &r.body.request.request;
    let fail = |e: opal_verify::zk::ZkCheckError| CliFailure(e.code(), e.to_string());
    let net = |e: opal_client::ClientError| CliFailure("node", e.to_string());
    let registered = |node: &str| -> std::result::Result<Hash, CliFailure> {
        let m = Client::new(node)
            .map_err(net)?
            .get(&format!("/api/models/{}", req.model))
            .map_err(net)?;
        Hash::from_hex(&s(&m["spec"], "weight_commitment")).map_err(|_| {
            CliFailure(
                "not_zk_model",
                format!("model {} has no zk weight commitment", req.model),
            )
        })
    };
    match (model_file, node) {
        (Some(bytes), _) => {
            let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
            let vk = opal_verify::zk::key_from_model_file(bytes, &req.model_hash).map_err(|e| {
                CliFailure(e.code(), format!("{shown}: {e}"))
            })?;
            let id = Hash(vk.id());
            if let Some(node) = node {
                // The registered weight commitment must be this file's key: a commitment to
                // another key would settle another model's proofs as this one's.
                let wc = registered(node)?;
                if wc != id {
                    return Err(CliFailure(
                        "key_not_registered",
                        format!("model {} is registered with the zk key {wc}, but the key of {shown} is {id}: the registered key is not this file's", req.model),
                    ));
                }
            }
            Ok((vk, format!("the key derived from {shown} ({id})")))
        }
        (None, Some(node)) => {
            let id = registered(node)?;
            let k = Client::new(node).map_err(net)?.get(&format!("/api/zk/keys/{id}")).map_err(net)?;
            let bytes = hex::decode(s(&k, "key"))
                .map_err(|_| CliFailure("key_invalid", "the served key is not hex".into()))?;
            let vk = opal_verify::zk::key_from_published(&id, &bytes).map_err(fail)?;
            Ok((vk, format!("the key published on chain for the weight commitment ({id})")))
        }
        (None, None) => Err(CliFailure(
            "no_key",
            "give the model file (--model-file MODEL.opalq) or a node (--node URL) to check the proof against".into(),
        )),
    }
}

/// The check of an LLM reply with the GGUF at `path` (which must be the receipt's model): its
/// activation commitment when it has one (`activations`), else its tokens alone (`signed`).
fn check_llm(
    input: &std::result::Result<Option<opal_types::llm::LlmInput>, opal_verify::file::FileError>,
    output: &std::result::Result<Option<Vec<u32>>, opal_verify::file::FileError>,
    model_hash: Hash,
    commitment: Option<&[u8]>,
    path: &Path,
    params: &opal_llm::CommitParams,
) -> std::result::Result<(), CliFailure> {
    let data = read(path).map_err(|e| CliFailure("unreadable", format!("{e:#}")))?;
    if Hash(*opal_artifacts::ArtifactHash::of_bytes(&data).as_bytes()) != model_hash {
        return Err(CliFailure(
            "wrong_model_file",
            format!(
                "{} is not the receipt's model (content hash differs)",
                path.display()
            ),
        ));
    }
    drop(data);
    let (Ok(Some(input)), Ok(Some(output))) = (input, output) else {
        return Err(CliFailure(
            "unreadable",
            "the receipt file has no readable llm_input and output_tokens".into(),
        ));
    };
    let model = opal_llm::LlmModel::load(path)
        .map_err(|e| CliFailure("model", format!("loading the model: {e}")))?;
    match commitment {
        Some(c) => opal_verify::activations::verify(&model, input, output, c, params),
        None => opal_verify::activations::verify_signed(&model, input, output),
    }
    .map_err(|e| {
        CliFailure(
            opal_llm::VerifyError::code(&e),
            format!("{}: {e}", e.code()),
        )
    })
}
