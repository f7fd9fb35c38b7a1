//! The caller's role: pay a node to run a model and keep proof of the answer.
//!
//! Design note: a caller trusts no node. [`offer`] reads what the chain says (the model, its
//! price, a node that offers it under the tier); [`request`] signs the request the caller
//! means; [`call`] posts it and accepts the answer only if the receipt is well formed, signed
//! by the node, for exactly that request, and its output hash is the hash of the outputs that
//! came with it; [`wait_for_proof`] and [`attach_proof`] do the same for a `zk` proof. What is
//! left (settlement on chain, re-execution) is `opal verify`'s (`opal-watcher`). The CLI's
//! `opal infer` is these functions ([`ensure_escrow`] funds the escrow that pays the node) and
//! printing; the SDK will be too.

use opal_api::ProofState;
use opal_client::{Client, ClientError};
use opal_infer::{tensors_hash, Tensor, TensorSpec};
use opal_types::receipt::{InferenceRequest, ReceiptEnvelope, SignedRequest, ZkEvidence};
use opal_types::{Address, Amount, Escalation, Hash, ModelRef, SecretKey, Tier};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Why a call did not give a checked answer.
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("no node serves {model} under tier {tier}")]
    NoService { model: String, tier: String },
    /// The chain's records could not be read as expected.
    #[error("the chain's record of {what} is not readable: {why}")]
    Record { what: &'static str, why: String },
    /// The node answered something a caller must not accept.
    #[error("the node's answer is refused: {0}")]
    Node(String),
    #[error("the node has no proof for this request: {0}")]
    NoProof(String),
    #[error("the node could not prove it: {0}")]
    ProofFailed(String),
    #[error("no proof after {0:?} (raise --proof-timeout)")]
    ProofTimeout(Duration),
    /// The escrow with the node cannot pay for the call.
    #[error("{0}")]
    Escrow(String),
}

type Result<T> = std::result::Result<T, CallerError>;

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// What the chain says about calling a model under a tier: where, for how much, on what.
#[derive(Debug, Clone)]
pub struct Offer {
    pub chain_id: String,
    pub model: ModelRef,
    pub model_hash: Hash,
    pub tier: Tier,
    pub node: Address,
    /// The endpoint the node declared on chain.
    pub endpoint: String,
    /// The model's price, its licence fee and the node's fee.
    pub price: Amount,
    /// The model's registered inputs.
    pub inputs: Vec<TensorSpec>,
}

/// The first node that offers `model` (NAME@VERSION, or NAME for the newest) under `tier`, as
/// the chain behind `c` records it.
pub fn offer(c: &Client, model: &str, tier: Tier) -> Result<Offer> {
    let chain_id = c.status()?.chain_id;
    let m = c.model(model)?;
    let spec = &m.model.spec;
    let inputs: Vec<TensorSpec> =
        serde_json::from_str(&spec.input_schema).map_err(|e| CallerError::Record {
            what: "the model's input schema",
            why: e.to_string(),
        })?;
    let svc = m
        .services
        .iter()
        .find(|x| x.tiers.contains(&tier))
        .ok_or_else(|| CallerError::NoService {
            model: m.model.model.to_string(),
            tier: tier.as_str().into(),
        })?;
    let price = spec
        .price
        .checked_add(spec.licence.fee())
        .and_then(|p| p.checked_add(svc.fee))
        .map_err(|e| CallerError::Record {
            what: "the price",
            why: e.to_string(),
        })?;
    Ok(Offer {
        chain_id,
        model: m.model.model.clone(),
        model_hash: spec.content_hash,
        tier,
        node: svc.node,
        endpoint: svc.endpoint.clone(),
        price,
        inputs,
    })
}

/// What [`ensure_escrow`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escrowed {
    /// The escrow's balance before.
    pub balance: Amount,
    /// What was added to it (zero when it already held enough).
    pub funded: Amount,
}

/// Make sure the caller's escrow with `node` holds at least `need`, funding it when it holds
/// less with the larger of `deposit` and what is missing, and waiting for that transaction's
/// block. A closing escrow is refused (it cannot take funds: withdraw it once it unlocks, then
/// fund a new one), and so is a funding transaction the chain rejects.
pub fn ensure_escrow(
    c: &Client,
    key: &SecretKey,
    node: &Address,
    need: Amount,
    deposit: Amount,
) -> Result<Escrowed> {
    let esc = c.escrow(&key.address(), node)?;
    if esc.unlock_ms.is_some() {
        return Err(CallerError::Escrow(format!(
            "your escrow with node {node} is closing; withdraw it after it unlocks, then fund a new one"
        )));
    }
    let balance = esc.balance;
    if balance >= need {
        return Ok(Escrowed {
            balance,
            funded: Amount::ZERO,
        });
    }
    let amount = deposit.max(Amount(need.0 - balance.0));
    let opts = opal_client::SendOptions {
        fee: None,
        wait: Some(Duration::from_secs(60)),
    };
    let sent = c.send(
        key,
        opal_types::Action::FundEscrow {
            node: *node,
            amount,
        },
        &opts,
    )?;
    if !sent.status.applied() {
        return Err(CallerError::Escrow(format!(
            "funding the escrow failed: {}",
            sent.status.error().unwrap_or("-")
        )));
    }
    Ok(Escrowed {
        balance,
        funded: amount,
    })
}

/// What the caller asks for beyond the offer.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// Most to pay [default: the offer's price].
    pub max_price: Option<Amount>,
    pub commercial: bool,
    pub escalation: Escalation,
    /// When the request expires (ms since the epoch).
    pub expires_ms: u64,
    /// Makes the request unique (two identical calls are two requests).
    pub salt: u64,
}

/// The request for `offer` on `inputs`, signed by `key`.
pub fn request(offer: &Offer, inputs: &[Tensor], ask: Ask, key: &SecretKey) -> SignedRequest {
    InferenceRequest {
        chain_id: offer.chain_id.clone(),
        node: offer.node,
        model: offer.model.clone(),
        model_hash: offer.model_hash,
        input_hash: tensors_hash(inputs),
        tier: offer.tier,
        max_price: ask.max_price.unwrap_or(offer.price),
        commercial: ask.commercial,
        salt: ask.salt,
        expires_ms: ask.expires_ms,
        escalation: ask.escalation,
    }
    .sign(key)
}

/// A checked answer: the outputs, and the receipt that binds them to the request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub envelope: ReceiptEnvelope,
    pub outputs: Vec<Tensor>,
    /// The node's own report of the model's run time.
    pub compute_ms: Option<f64>,
}

/// Post `request` with `inputs` to the serving node behind `serving`, and accept the answer
/// only if its receipt is well formed, verifies, answers exactly `request`, and commits to the
/// outputs that came with it.
pub fn call(serving: &Client, request: &SignedRequest, inputs: &[Tensor]) -> Result<Answer> {
    let body = opal_api::InferBody {
        request: hex::encode(opal_types::encode(request)),
        inputs: inputs.iter().map(|t| json!(t)).collect(),
    };
    let refused = |why: String| CallerError::Node(why);
    let reply: opal_api::Inferred = serde_json::from_value(serving.post_json("/api/infer", &body)?)
        .map_err(|e| refused(format!("the reply is not an inference reply: {e}")))?;
    let bytes =
        hex::decode(&reply.receipt).map_err(|e| refused(format!("the receipt is not hex: {e}")))?;
    let envelope = ReceiptEnvelope::from_bytes(&bytes)
        .map_err(|e| refused(format!("the receipt is malformed: {e}")))?;
    envelope
        .verify()
        .map_err(|e| refused(format!("the receipt does not verify: {e}")))?;
    if &envelope.receipt.body.request != request {
        return Err(refused("the receipt answers a different request".into()));
    }
    let outputs: Vec<Tensor> = serde_json::from_value(Value::Array(reply.outputs))
        .map_err(|e| refused(format!("the outputs are not tensors: {e}")))?;
    if tensors_hash(&outputs) != envelope.receipt.body.output_hash {
        return Err(refused(
            "the outputs do not match the receipt's output hash".into(),
        ));
    }
    Ok(Answer {
        envelope,
        outputs,
        compute_ms: Some(reply.compute_ms),
    })
}

/// Poll the serving node for the zk proof of request `id` until it is done, it failed, or
/// `timeout` passed; `progress` hears the prover's progress in [0, 1].
pub fn wait_for_proof(
    serving: &Client,
    id: &Hash,
    timeout: Duration,
    progress: &mut dyn FnMut(f64),
) -> Result<ZkEvidence> {
    let t0 = Instant::now();
    loop {
        let (status, v) = serving.get_raw(&format!("/api/proofs/{id}"))?;
        if status >= 400 {
            return Err(CallerError::NoProof(text(&v["error"]["message"])));
        }
        let p: opal_api::ProofStatus = serde_json::from_value(v)
            .map_err(|e| CallerError::Node(format!("the proof status is not readable: {e}")))?;
        match p.state {
            ProofState::Done { .. } => {
                if p.evidence_version != Some(opal_types::receipt::ZK_EVIDENCE_VERSION) {
                    return Err(CallerError::Node(
                        "the proof has an unknown format version".into(),
                    ));
                }
                let bytes = hex::decode(p.evidence.unwrap_or_default())
                    .map_err(|e| CallerError::Node(format!("the evidence is not hex: {e}")))?;
                return ZkEvidence::from_bytes(&bytes)
                    .map_err(|e| CallerError::Node(format!("the proof is malformed: {e}")));
            }
            ProofState::Failed { error } => return Err(CallerError::ProofFailed(error)),
            ProofState::Proving { progress: at } => progress(at as f64),
            ProofState::Queued => {}
        }
        if t0.elapsed() > timeout {
            return Err(CallerError::ProofTimeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Attach a zk proof to the answer's receipt, if it is about the receipt's outputs.
pub fn attach_proof(answer: &mut Answer, ev: &ZkEvidence) -> Result<()> {
    if opal_types::receipt::tensor_list_hash(&ev.outputs)
        != answer.envelope.receipt.body.output_hash
    {
        return Err(CallerError::Node(
            "the proof is about other outputs than the receipt".into(),
        ));
    }
    answer.envelope.attachments.push(ev.to_attachment());
    Ok(())
}

/// The receipt file of an answer (`opal_verify::file::receipt_file`, which `opal verify` holds
/// the file to) with its outputs.
pub fn receipt_file(answer: &Answer) -> Value {
    let mut v = opal_verify::file::receipt_file(&answer.envelope);
    v.insert("outputs".into(), json!(answer.outputs));
    Value::Object(v)
}
