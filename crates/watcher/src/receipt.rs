//! Checking one receipt file, as its caller (or anyone who holds it) does: every check is
//! `opal_verify`'s; this module gathers what they need (the evidence the caller gives, and what
//! a node serves, which is never trusted unless the outcome says so) into one [`Report`].
//! `opal verify` is this function and a printer.

use crate::checks::{chain_commit_params, commit_params, rerun_float};
use crate::{light, CheckError};
use opal_client::Client;
use opal_infer::Tensor;
use opal_ledger::components::verification::Outcome as CaseOutcome;
use opal_types::receipt::Receipt;
use opal_types::{Hash, Tier};
use opal_verify::light::{LightError, Options, Portable, TrustSource, TrustedState};
use opal_verify::report::Failure;
use opal_verify::{ReceiptFile, Report};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

/// What the holder of a receipt gives besides the file (each optional; each adds checks).
#[derive(Default)]
pub struct Evidence<'a> {
    /// Outputs as JSON (as `opal infer` prints them); default: the file's own.
    pub outputs: Option<Value>,
    /// The input as JSON: checked against the signed hash, and re-run with `model_file`.
    pub input: Option<Value>,
    /// The model file (`.opalq` or ONNX) and how to name it in messages.
    pub model_file: Option<(&'a str, &'a [u8])>,
    /// The GGUF of an LLM receipt's model.
    pub llm_model: Option<&'a Path>,
    /// Overrides of the chain's activation-commitment parameters (chunk size, top-k).
    pub llm_commit_chunk: Option<u32>,
    pub llm_commit_top_k: Option<u32>,
}

/// Where settlement is checked from: a trust start the holder chose (a genesis file or a
/// checkpoint) and how long it stays trusted (`None`: forever).
pub struct Trust {
    pub state: TrustedState,
    pub period_ms: Option<u64>,
}

/// What [`check_receipt`] found.
pub struct Outcome {
    pub report: Report,
    /// Where the receipt settled (height, proof height, state root), when that was proven.
    pub settled: Value,
    /// What the settlement check trusted (the trust start, or the node's word).
    pub trusted: Value,
    /// The node's verification case and verdict for the request, when a node was asked.
    pub verification: Value,
    /// The light client's failure, when it had one (it decides `opal verify`'s exit code).
    pub light_failure: Option<LightError>,
    /// The portable settlement proof the light client checked, to keep beside the receipt.
    pub portable: Option<Portable>,
}

/// A finding of a check made around a verifier (reading data, fetching a key or a model).
struct Finding(&'static str, String);
impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}
impl Failure for Finding {
    fn code(&self) -> &'static str {
        self.0
    }
}

fn ok<E>(r: Result<(), E>) -> Result<String, E> {
    r.map(|()| String::new())
}

fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}

/// Tensors given as JSON (an array of tensor objects, one tensor object, or `{"outputs": ...}`
/// as `opal infer` prints them), as canonical bytes.
pub fn tensor_bytes(v: &Value) -> Result<Vec<Vec<u8>>, String> {
    let v = v.get("outputs").unwrap_or(v);
    let one = |t: &Value| Tensor::from_json(t.to_string().as_bytes()).map_err(|e| e.to_string());
    let ts: Vec<Tensor> = match v {
        Value::Array(items) => items.iter().map(one).collect::<Result<_, _>>()?,
        _ => vec![one(v)?],
    };
    Ok(ts.iter().map(Tensor::canonical_bytes).collect())
}

/// Every check that applies to `file` with the evidence given; settlement from `trust` (as a
/// light client, through `node`'s bytes or the file's portable proof) or on `node`'s word; the
/// node's verification case. `now_ms` is the holder's clock (trust expiry).
pub fn check_receipt(
    file: &ReceiptFile,
    ev: &Evidence,
    node: Option<&Client>,
    trust: Option<&Trust>,
    now_ms: u64,
) -> Result<Outcome, CheckError> {
    let mut rep = Report::new();
    let claimed_outputs = check_signed(file, ev, &mut rep);
    check_execution(file, ev, claimed_outputs.as_deref(), &mut rep);
    check_tier(file, ev, node, &mut rep)?;
    let mut out = Outcome {
        report: rep,
        settled: Value::Null,
        trusted: Value::Null,
        verification: Value::Null,
        light_failure: None,
        portable: None,
    };
    check_settlement(file, node, trust, now_ms, &mut out)?;
    if let Some(c) = node {
        out.verification = check_case(c, &file.envelope.receipt, &mut out.report)?;
    }
    Ok(out)
}

/// Signatures, readable fields, outputs, LLM input and output: what every tier starts with.
/// Returns the claimed outputs as canonical bytes, when readable.
fn check_signed(file: &ReceiptFile, ev: &Evidence, rep: &mut Report) -> Option<Vec<Vec<u8>>> {
    let env = &file.envelope;
    let r = &env.receipt;
    rep.record(
        "signatures",
        "signatures (caller's request, node's receipt) and price bound",
        ok(opal_verify::signed::verify_envelope(env)),
    );
    let mismatched = file.readable_mismatches();
    rep.record(
        "readable_fields",
        "readable fields agree with the signed envelope",
        ok(if mismatched.is_empty() {
            Ok(())
        } else {
            Err(opal_verify::signed::SignedError::ReadableFields(mismatched))
        }),
    );
    let mut claimed = None;
    if let Some(ov) = ev.outputs.as_ref().or(file.outputs()) {
        let label = "outputs match the signed output hash";
        match tensor_bytes(ov) {
            Ok(o) => {
                rep.record(
                    "outputs",
                    label,
                    ok(opal_verify::signed::check_outputs(r, &o)),
                );
                claimed = Some(o);
            }
            Err(e) => rep.record("outputs", label, Err::<String, _>(Finding("unreadable", e))),
        }
    }
    let llm_input = file.llm_input().transpose();
    let output_tokens = file.output_tokens().transpose();
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
    claimed
}

/// The input, when given, must be the signed one; with a model file too, the receipt is
/// re-executed (canonical models, `opal_verify::replay`) or re-run within the committee's
/// tolerance (ONNX), whatever tier it was bought under.
fn check_execution(
    file: &ReceiptFile,
    ev: &Evidence,
    claimed: Option<&[Vec<u8>]>,
    rep: &mut Report,
) {
    let r = &file.envelope.receipt;
    let Some(iv) = &ev.input else { return };
    let inputs = match tensor_bytes(iv) {
        Ok(i) => i,
        Err(e) => {
            let f = Finding("unreadable", e);
            return rep.record(
                "inputs",
                "input matches the signed input hash",
                Err::<String, _>(f),
            );
        }
    };
    rep.record(
        "inputs",
        "input matches the signed input hash",
        ok(opal_verify::signed::check_inputs(r, &inputs)),
    );
    let Some((_, mf)) = ev.model_file else { return };
    let t0 = Instant::now();
    if opal_verify::canonical::load_model(mf).is_ok() {
        rep.record(
            "replay",
            "re-executed the model on the input (canonical execution)",
            opal_verify::replay::verify(r, mf, &inputs, u64::MAX)
                .map(|h| format!("same output {h} in {:.1} ms", ms_since(t0))),
        );
    } else if r.body.request.request.tier != Tier::Zk {
        rep.record(
            "float_rerun",
            "re-ran the model on the input (tract, within the committee's tolerance)",
            float_rerun(r, mf, &inputs, claimed)
                .map(|()| format!("outputs agree, in {:.1} ms", ms_since(t0))),
        );
    }
}

/// The tier's own evidence: the activation commitment or the tokens of an LLM reply, the zk
/// proof, the enclave attestation.
fn check_tier(
    file: &ReceiptFile,
    ev: &Evidence,
    node: Option<&Client>,
    rep: &mut Report,
) -> Result<(), CheckError> {
    let env = &file.envelope;
    let r = &env.receipt;
    let req = &r.body.request.request;
    let commitment = env.attachments.iter().find(|x| x.tier == Tier::Activations);
    let llm_input = file.llm_input().transpose();
    if let (Some(path), true) = (
        ev.llm_model,
        commitment.is_some() || matches!(llm_input, Ok(Some(_))),
    ) {
        let mut params = match node {
            Some(c) => chain_commit_params(c)?,
            None => commit_params(&opal_ledger::Params::default()),
        };
        params.chunk_size = ev.llm_commit_chunk.unwrap_or(params.chunk_size);
        params.top_k = ev.llm_commit_top_k.unwrap_or(params.top_k);
        let outcome = check_llm(
            &llm_input,
            &file.output_tokens().transpose(),
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
        let outcome = zk_key(r, ev.model_file, node).and_then(|(vk, source)| {
            let t0 = Instant::now();
            opal_verify::zk::verify(r, zk_att, &vk)
                .map(|v| {
                    format!(
                        "verified against {source} in {:.1} ms ({} proof bytes)",
                        ms_since(t0),
                        v.proof_bytes
                    )
                })
                .map_err(|e| Finding(e.code(), e.to_string()))
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
    Ok(())
}

/// Settlement: as a light client from `trust`, or on the node's word (a node and no trust).
fn check_settlement(
    file: &ReceiptFile,
    node: Option<&Client>,
    trust: Option<&Trust>,
    now_ms: u64,
    out: &mut Outcome,
) -> Result<(), CheckError> {
    let r = &file.envelope.receipt;
    let key = opal_verify::settlement::settled_key(&r.request_id());
    let Some(t) = trust else {
        if let Some(c) = node {
            settled_by_node(c, r, out)?;
        }
        return Ok(());
    };
    let opts = Options::new(now_ms, t.period_ms);
    out.trusted = light::describe_trust(&t.state);
    let portable_in_file = file
        .portable()
        .transpose()
        .map_err(|e| CheckError::Usage(format!("the receipt file's portable proof: {e}")))?;
    let outcome = match (node, &portable_in_file) {
        (Some(c), _) => light::prove_via_light_client(c, &t.state, &key, &opts)?,
        (None, Some(p)) if p.state.key == key => p.verify(&t.state, &opts).map(|v| (p.clone(), v)),
        (None, Some(_)) => {
            return Err(CheckError::Usage("the portable proof in the file is about another key".into()))
        }
        (None, None) => return Err(CheckError::Usage(
            "--genesis/--trust check settlement: give --node, or a receipt file saved with --save-portable".into(),
        )),
    };
    let (portable, v) = match outcome {
        Ok(x) => x,
        Err(e) => {
            let why = format!("{}: {e}", e.code());
            out.report.fail(
                "settlement",
                "settled on chain (light client)",
                e.code(),
                why,
            );
            out.light_failure = Some(e);
            return Ok(());
        }
    };
    let proof_height = v.certified_by - 1;
    let from = match &v.trusted.source {
        TrustSource::Genesis { .. } => "the genesis file".to_string(),
        TrustSource::Checkpoint { height, .. } => format!("checkpoint {height}"),
    };
    let checked =
        opal_verify::settlement::check_settled(v.value.as_deref(), r, v.state_root, proof_height);
    if let Ok(rec) = &checked {
        out.settled = json!({"height": rec.height, "proof_height": proof_height, "state_root": v.state_root, "certified_by_block": v.certified_by, "light_client_path": v.path});
    }
    out.report.record(
        "settlement",
        format!(
            "settled on chain (light client: block {} certified by more than 2/3 of its validators, trusted from {from}; Merkle proof against its state root)",
            v.certified_by
        ),
        checked.map(|rec| format!("settled in block {}", rec.height)),
    );
    out.portable = Some(portable);
    Ok(())
}

/// No trust start: the node is trusted for its state root, and the outcome says so.
fn settled_by_node(c: &Client, r: &Receipt, out: &mut Outcome) -> Result<(), CheckError> {
    out.trusted = json!({"source": {"kind": "node", "url": c.base()}, "note": "the state root is the node's word; pass --genesis or --trust for a light-client check"});
    let v = c.receipt_status(&r.request_id(), true)?;
    let (root, height) = (v.state_root, v.height);
    let checked = v
        .proven
        .as_ref()
        .ok_or_else(|| Finding("proof_invalid", "the node sent no proof".into()))
        .and_then(|p| {
            light::check_proven(p, &root).map_err(|e| Finding("proof_invalid", e.to_string()))
        })
        .and_then(|bytes| {
            opal_verify::settlement::check_settled(bytes.as_deref(), r, root, height)
                .map_err(|e| Finding(e.code(), e.to_string()))
        });
    if let Ok(rec) = &checked {
        out.settled = json!({"height": rec.height, "proof_height": height, "state_root": root});
    }
    out.report.record(
        "settlement",
        format!(
            "settled on chain (Merkle proof against the node's state root at height {height}; not certified: no --genesis or --trust)"
        ),
        checked.map(|rec| format!("settled in block {}", rec.height)),
    );
    // The root the proof was checked against must be the committed block's.
    let label = "proof root is the committed block's state root (as the node reports it)";
    match c.block(Some(height)) {
        Ok(b) if b.state_root == root => out.report.pass("settlement_root", label, ""),
        Ok(_) => out.report.fail(
            "settlement_root",
            label,
            "root_differs",
            "the node reports another root for that block",
        ),
        Err(e) => out.report.fail(
            "settlement_root",
            label,
            "unreadable",
            format!("could not read the block: {e}"),
        ),
    }
    Ok(())
}

/// Held results, audits and disputes (docs/verification.md): the node's case for the request.
fn check_case(c: &Client, r: &Receipt, rep: &mut Report) -> Result<Value, CheckError> {
    let v = c.case(&r.request_id())?;
    if let Some(verdict) = &v.verdict {
        let o = serde_json::to_value(verdict.outcome).unwrap_or_default();
        let label = format!("verification case closed: {}", o.as_str().unwrap_or("-"));
        match verdict.outcome {
            CaseOutcome::Undecidable => rep.fail("case", label, "undecidable", "nobody could re-execute the model in a block: the caller was refunded, the node not paid"),
            CaseOutcome::Fraud | CaseOutcome::Withheld => rep.fail("case", label, "convicted", "the node was convicted for this receipt; it was not (or no longer) paid"),
            _ => rep.pass("case", label, ""),
        }
    }
    if let Some(case) = &v.case {
        let kind = serde_json::to_value(case.kind).unwrap_or_default();
        rep.pass(
            "case",
            format!(
                "verification case open ({}): decided after block time {}",
                kind.as_str().unwrap_or("-"),
                case.deadline_ms
            ),
            "",
        );
    }
    Ok(json!({"case": v.case, "verdict": v.verdict}))
}

/// Re-run a float (ONNX) model file on the signed inputs with tract and compare with the
/// claimed outputs within `opal_verify::float::ONNX_TOLERANCE` (what a committee member of an
/// audit runs).
fn float_rerun(
    r: &Receipt,
    model_file: &[u8],
    inputs: &[Vec<u8>],
    claimed: Option<&[Vec<u8>]>,
) -> Result<(), Finding> {
    let got = Hash(*blake3::hash(model_file).as_bytes());
    let want = r.body.request.request.model_hash;
    if got != want {
        let why = format!("the model file hashes to {got}, the receipt's model is {want}");
        return Err(Finding("wrong_model_file", why));
    }
    let claimed = claimed.ok_or_else(|| {
        Finding(
            "no_outputs",
            "the receipt file has no readable outputs to compare (give --outputs)".into(),
        )
    })?;
    let m = opal_infer::PreparedModel::load(model_file, &opal_infer::Limits::default())
        .map_err(|e| Finding("model", format!("the model file does not load: {e}")))?;
    rerun_float(&m, inputs, claimed).map_err(|(code, why)| Finding(code, why))
}

/// The verifying key a zk receipt is checked against, and where it came from: derived from the
/// model file (`opal_verify::zk::key_from_model_file`; with a node too, the derived key's id
/// must be the registered weight commitment), or fetched from the node by the registered weight
/// commitment (`key_from_published`: the bytes must hash to it; `opal_verify::zk::verify` then
/// checks that it names the receipt's model file).
fn zk_key(
    r: &Receipt,
    model_file: Option<(&str, &[u8])>,
    node: Option<&Client>,
) -> Result<(opal_zk::api::VerifyingKey, String), Finding> {
    let req = &r.body.request.request;
    let net = |e: opal_client::ClientError| Finding("node", e.to_string());
    let registered = |c: &Client| -> Result<Hash, Finding> {
        let m = c.model(&req.model.to_string()).map_err(net)?;
        m.model.spec.weight_commitment.ok_or_else(|| {
            let why = format!("model {} has no zk weight commitment", req.model);
            Finding("not_zk_model", why)
        })
    };
    match (model_file, node) {
        (Some((shown, bytes)), _) => {
            let vk = opal_verify::zk::key_from_model_file(bytes, &req.model_hash)
                .map_err(|e| Finding(e.code(), format!("{shown}: {e}")))?;
            let id = Hash(vk.id());
            if let Some(c) = node {
                // The registered weight commitment must be this file's key: a commitment to
                // another key would settle another model's proofs as this one's.
                let wc = registered(c)?;
                if wc != id {
                    return Err(Finding(
                        "key_not_registered",
                        format!("model {} is registered with the zk key {wc}, but the key of {shown} is {id}: the registered key is not this file's", req.model),
                    ));
                }
            }
            Ok((vk, format!("the key derived from {shown} ({id})")))
        }
        (None, Some(c)) => {
            let id = registered(c)?;
            let k = c.zk_key(&id).map_err(net)?.ok_or_else(|| {
                Finding("no_zk_key", format!("no verifying key {id} is published"))
            })?;
            let bytes = hex::decode(&k.key)
                .map_err(|_| Finding("key_invalid", "the served key is not hex".into()))?;
            let vk = opal_verify::zk::key_from_published(&id, &bytes)
                .map_err(|e| Finding(e.code(), e.to_string()))?;
            Ok((vk, format!("the key published on chain for the weight commitment ({id})")))
        }
        (None, None) => Err(Finding(
            "no_key",
            "give the model file (--model-file MODEL.opalq) or a node (--node URL) to check the proof against".into(),
        )),
    }
}

/// The check of an LLM reply with the GGUF at `path` (which must be the receipt's model): its
/// activation commitment when it has one (`activations`), else its tokens alone (`signed`).
fn check_llm(
    input: &Result<Option<opal_types::llm::LlmInput>, opal_verify::file::FileError>,
    output: &Result<Option<Vec<u32>>, opal_verify::file::FileError>,
    model_hash: Hash,
    commitment: Option<&[u8]>,
    path: &Path,
    params: &opal_llm::CommitParams,
) -> Result<(), Finding> {
    let data = std::fs::read(path)
        .map_err(|e| Finding("unreadable", format!("reading {}: {e}", path.display())))?;
    if Hash(*blake3::hash(&data).as_bytes()) != model_hash {
        let why = format!(
            "{} is not the receipt's model (content hash differs)",
            path.display()
        );
        return Err(Finding("wrong_model_file", why));
    }
    drop(data);
    let (Ok(Some(input)), Ok(Some(output))) = (input, output) else {
        return Err(Finding(
            "unreadable",
            "the receipt file has no readable llm_input and output_tokens".into(),
        ));
    };
    let model = opal_llm::LlmModel::load(path)
        .map_err(|e| Finding("model", format!("loading the model: {e}")))?;
    match commitment {
        Some(c) => opal_verify::activations::verify(&model, input, output, c, params),
        None => opal_verify::activations::verify_signed(&model, input, output),
    }
    .map_err(|e| {
        Finding(
            opal_llm::VerifyError::code(&e),
            format!("{}: {e}", e.code()),
        )
    })
}
