//! Verification by re-execution: held results (`replay` tier and disputable requests), random
//! audits of paid receipts, challenges, fraud proofs, slashing. Specified in
//! docs/verification.md; the incentive analysis that picks the defaults is there too.
//!
//! Only models in Opal's canonical quantized format (`ModelFormat::OpalQuant`) take part: their
//! output is a pure function of the bytes ([`crate::canonical`]), so every validator that
//! re-executes one gets the same answer, and the ledger itself can decide a dispute by running
//! the model inside block execution (every validator runs it; the cost is bounded by
//! `max_replay_cost` and the model file travels in the transaction, checked against the
//! registered content hash).
//!
//! A *case* (`infer/case/<request id>`) is opened for a receipt when
//! - it settles under the `replay` tier or with `escalation.dispute`: its price is *held*
//!   (moved from the escrow to the held pool) instead of paid; or
//! - it was paid and is then picked for audit: each paid receipt of a re-executable model
//!   enters the audit queue; at the next block, `BLAKE3(AuditSeed, parent hash || request id)`
//!   decides (with probability `max(audit_bps, the request's escalation.audit_bps)`) and picks
//!   `audit_committee` validators by stake to re-execute it. The node cannot know the parent
//!   hash of the next block when it answers or when it submits the settlement.
//!
//! Every case first waits `reveal_window_ms` for the node's `RevealData` (inputs and outputs,
//! checked against the hashes the caller and the node signed). A node that does not reveal is
//! treated as lying. Once revealed, a held result can be challenged for `challenge_window_ms`:
//! a `Challenge` with the model file is a fraud proof, decided at once; one without locks
//! `challenge_bond` until a `Resolve` re-executes the model. An audit waits the same window for a
//! `Resolve`. A proven lie slashes `fraud_slash` from the node's inference-node bond, jails it for
//! `jail_ms`, pays `challenger_reward_bps` of the slash to whoever proved it and refunds the
//! caller; a held price is then never paid. A result that stands is paid when its window ends
//! (or at once when a dispute is resolved in the node's favour); a challenger who was wrong
//! loses its bond to the node.

use super::payout::pay_out;
use super::{accounts, read, registry, staking, write};
use super::{BlockCtx, TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::{Event, Payout};
use crate::keys::{self, inference as k};
use crate::params::InferenceParams;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::receipt::tensor_list_hash;
use opal_types::receipt::Settled;
use opal_types::registry::{ModelFormat, BPS};
use opal_types::{Address, Amount, Domain, Hash, ModelRef, Role, Tier};
use serde::{Deserialize, Serialize};

/// Most tensors in one reveal (inputs or outputs).
pub const MAX_REVEAL_TENSORS: usize = 16;
/// Most due cases processed at the end of one block (the rest wait for the next).
pub const MAX_DUE_PER_BLOCK: usize = 1_000;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// The price is held until the challenge window ends.
    Held,
    /// A paid receipt picked for audit.
    Audit,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Revealed {
    #[serde(with = "hex_list")]
    pub inputs: Vec<Vec<u8>>,
    #[serde(with = "hex_list")]
    pub outputs: Vec<Vec<u8>>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Dispute {
    pub challenger: Address,
    pub bond: Amount,
    pub claimed_output_hash: Hash,
}

/// An open case, under `infer/case/<request id>`.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Case {
    pub request_id: Hash,
    pub kind: CaseKind,
    pub node: Address,
    pub caller: Address,
    pub model: ModelRef,
    pub tier: Tier,
    pub input_hash: Hash,
    pub output_hash: Hash,
    pub price: Amount,
    /// The receipt's billable units (an LLM reveal must have exactly that many tokens).
    #[serde(default)]
    pub units: u64,
    /// What a held result pays when it stands (empty for audits: already paid).
    pub payouts: Vec<Payout>,
    pub opened_height: u64,
    /// Reveal deadline until revealed; then the end of the challenge / resolve window.
    pub deadline_ms: u64,
    pub revealed: Option<Revealed>,
    pub dispute: Option<Dispute>,
    /// Validators assigned to re-execute (audits) or, for a committee case, its voters.
    pub auditors: Vec<Address>,
    /// Committee cases ([`CheckBy::Committee`]): the voting power of each of `auditors`
    /// (the active validator set when the audit or the dispute opened). Empty otherwise.
    #[serde(default)]
    pub powers: Vec<u64>,
    /// Votes cast so far (committee cases).
    #[serde(default)]
    pub votes: Vec<CastVote>,
    /// How many times this audit went to new auditors because the assigned ones did not
    /// resolve it in time (at most [`MAX_AUDIT_REASSIGN`]).
    #[serde(default)]
    pub reassigned: u32,
}

/// An audit whose assigned auditors let it lapse goes to others this many times before it
/// closes `audit_lapsed`. Each auditor that let it lapse loses `audit_fee` of its stake (the
/// fee it did not earn) to the treasury.
pub const MAX_AUDIT_REASSIGN: u32 = 2;

/// One committee member's vote on an LLM case.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CastVote {
    pub voter: Address,
    pub valid: bool,
}

/// How a case's result is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckBy {
    /// Every validator re-executes the canonical model inside block execution (`Resolve`,
    /// fraud-proof `Challenge`): the output is a pure function of the bytes.
    Reexecution,
    /// Checked off chain by every validator, within a tolerance (not bit-exact, so not inside
    /// block execution): an LLM reply's activation commitment and tokens (one prefill), a
    /// `signed` LLM reply's tokens alone (the same prefill), or a float ONNX
    /// model's outputs re-run with tract (`opal_verify::float`). Each posts a `CommitteeVote`
    /// and more than two thirds of the voting power decides.
    Committee,
}

/// How results of this model format and tier can be checked, if at all.
pub fn check_by(format: ModelFormat, tier: Tier) -> Option<CheckBy> {
    match (format, tier) {
        (ModelFormat::OpalQuant, _) => Some(CheckBy::Reexecution),
        (ModelFormat::Gguf, Tier::Activations | Tier::Signed) => Some(CheckBy::Committee),
        (ModelFormat::Onnx, Tier::Signed) => Some(CheckBy::Committee),
        _ => None,
    }
}

/// How a new result of `model` under `tier` can be checked, now: [`check_by`], except that
/// re-execution needs the registration's declared `replay_cost` within the chain's
/// `max_replay_cost` and not shown false (a result that could not be decided in a block is
/// neither held for disputes nor audited).
pub fn checker(
    s: &Overlay,
    model: &ModelRef,
    spec: &opal_types::registry::ModelSpec,
    tier: Tier,
) -> Result<Option<CheckBy>, LedgerError> {
    let by = check_by(spec.format, tier);
    if by != Some(CheckBy::Reexecution) {
        return Ok(by);
    }
    let limit = crate::params::inference(s)?.max_replay_cost;
    let decidable = spec.replay_cost.is_some_and(|c| c <= limit)
        && registry::replay_misdeclared(s, model)?.is_none();
    Ok(decidable.then_some(CheckBy::Reexecution))
}

/// How a case ended, under `infer/verdict/<request id>`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Held result paid after its window (or a dispute resolved for the node).
    Paid,
    /// Audit re-executed and matched.
    AuditPassed,
    /// Audit revealed but nobody resolved it in time.
    AuditLapsed,
    /// Re-execution proved the output wrong.
    Fraud,
    /// The node did not reveal in time.
    Withheld,
    /// Nobody can decide: the registered model costs more to re-execute than a block allows.
    /// The challenger's bond goes back, a held price goes back to the caller, nobody is
    /// slashed (the node offered a re-execution tier for a model the chain cannot re-execute).
    Undecidable,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: CaseKind,
    pub outcome: Outcome,
    pub node: Address,
    pub height: u64,
}

/// A paid receipt waiting for the next block's audit draw, under `infer/auditq/<height><id>`.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct AuditCandidate {
    pub request_id: Hash,
    pub rate_bps: u32,
    pub node: Address,
    pub caller: Address,
    pub model: ModelRef,
    pub tier: Tier,
    pub input_hash: Hash,
    pub output_hash: Hash,
    pub price: Amount,
    pub units: u64,
}

pub fn case(s: &Overlay, request_id: &Hash) -> Result<Option<Case>, LedgerError> {
    read(s, &k::case(request_id))
}

pub fn verdict(s: &Overlay, request_id: &Hash) -> Result<Option<Verdict>, LedgerError> {
    read(s, &k::verdict(request_id))
}

/// Open cases, in request-id order (at most `limit`).
pub fn open_cases(s: &Overlay, limit: usize) -> Result<Vec<Case>, LedgerError> {
    let mut out = Vec::new();
    for (_, v) in s.prefix(k::CASE_PREFIX)? {
        if out.len() >= limit {
            break;
        }
        out.push(borsh::from_slice(&v).map_err(|e| corrupt(&e.to_string()))?);
    }
    Ok(out)
}

pub fn held_pool(s: &Overlay) -> Result<Amount, LedgerError> {
    Ok(read(s, k::HELD_POOL)?.unwrap_or_default())
}

/// Block time until which a convicted node may not settle (`None` if it is not jailed).
pub fn jailed_until(s: &Overlay, node: &Address, now_ms: u64) -> Result<Option<u64>, LedgerError> {
    let until: Option<u64> = read(s, &k::jail(node))?;
    Ok(until.filter(|u| *u > now_ms))
}

/// The error for a request with no open case: closed (with its outcome) or never opened.
fn no_case(s: &Overlay, request_id: &Hash) -> Result<TxError, LedgerError> {
    Ok(match verdict(s, request_id)? {
        Some(v) => TxError::CaseClosed {
            request_id: *request_id,
            outcome: serde_json::to_value(v.outcome)
                .ok()
                .and_then(|x| x.as_str().map(str::to_string))
                .unwrap_or_default(),
        },
        None => TxError::NoCase {
            request_id: *request_id,
        },
    })
}

fn corrupt(reason: &str) -> LedgerError {
    LedgerError::Corrupt {
        key: "infer/case".into(),
        reason: reason.into(),
    }
}

fn add_held(s: &mut Overlay, a: Amount) -> Result<(), LedgerError> {
    let v = held_pool(s)?
        .checked_add(a)
        .map_err(|e| LedgerError::Invariant(format!("held pool: {e}")))?;
    write(s, k::HELD_POOL, &v);
    Ok(())
}

fn sub_held(s: &mut Overlay, a: Amount) -> Result<(), LedgerError> {
    let v = held_pool(s)?
        .checked_sub(a)
        .map_err(|e| LedgerError::Invariant(format!("held pool: {e}")))?;
    write(s, k::HELD_POOL, &v);
    Ok(())
}

fn put_case(s: &mut Overlay, c: &Case) {
    write(s, &k::case(&c.request_id), c);
    write(s, &k::due(c.deadline_ms, &c.request_id), &());
}

fn move_deadline(s: &mut Overlay, c: &mut Case, deadline_ms: u64) {
    s.delete(k::due(c.deadline_ms, &c.request_id));
    c.deadline_ms = deadline_ms;
    put_case(s, c);
}

fn close_case(
    s: &mut Overlay,
    ctx: &BlockCtx,
    c: &Case,
    outcome: Outcome,
) -> Result<(), LedgerError> {
    // The work of a case that ends paid is final: its points are earned (with the bonus of a
    // passed audit). A conviction earns none (and `convict` forfeits the epoch's); neither
    // does an undecidable case, whose price went back to the caller.
    match outcome {
        Outcome::Fraud | Outcome::Withheld | Outcome::Undecidable => {}
        _ => {
            super::reward_pool::award_work(s, &c.node, c.tier, c.units)?;
            if outcome == Outcome::AuditPassed {
                let points = crate::params::rewards(s)?.audit_pass_points;
                super::reward_pool::award(s, Role::InferenceNode, &c.node, points)?;
            }
        }
    }
    s.delete(k::case(&c.request_id));
    s.delete(k::past_auditors(&c.request_id));
    s.delete(k::due(c.deadline_ms, &c.request_id));
    write(
        s,
        &k::verdict(&c.request_id),
        &Verdict {
            kind: c.kind,
            outcome,
            node: c.node,
            height: ctx.height,
        },
    );
    Ok(())
}

/// Whether receipts of this model can be re-executed on chain.
pub fn reexecutable(format: ModelFormat) -> bool {
    format == ModelFormat::OpalQuant
}

/// Called by settlement for a held result: the price has left the escrow; keep it in the held
/// pool until the case ends.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hold(
    s: &mut Overlay,
    ctx: &BlockCtx,
    p: &InferenceParams,
    settled: &Settled,
    request_id: Hash,
    input_hash: Hash,
    units: u64,
    payouts: Vec<Payout>,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    add_held(s, settled.price)?;
    let c = Case {
        request_id,
        kind: CaseKind::Held,
        node: settled.node,
        caller: settled.caller,
        model: settled.model.clone(),
        tier: settled.tier,
        input_hash,
        output_hash: settled.output_hash,
        price: settled.price,
        units,
        payouts,
        opened_height: ctx.height,
        deadline_ms: ctx.time_ms.saturating_add(p.reveal_window_ms),
        revealed: None,
        dispute: None,
        auditors: vec![],
        powers: vec![],
        votes: vec![],
        reassigned: 0,
    };
    put_case(s, &c);
    events.push(Event::ReceiptHeld {
        request_id,
        node: c.node,
        price: c.price,
        reveal_by_ms: c.deadline_ms,
    });
    Ok(())
}

/// Called by settlement for a paid receipt of a re-executable model: queue it for the next
/// block's audit draw. Whether it was queued (not at an audit rate of 0).
pub(crate) fn enqueue_audit(s: &mut Overlay, ctx: &BlockCtx, cand: &AuditCandidate) -> bool {
    if cand.rate_bps == 0 {
        return false;
    }
    write(s, &k::audit_queue(ctx.height, &cand.request_id), cand);
    true
}

/// The audit draw for one receipt: a number in `0..10000` from the block's beacon (the
/// proposer's verified VRF output, docs/adr/0003-audit-beacon.md) and the request id.
pub fn audit_draw(beacon: &Hash, request_id: &Hash) -> (u32, Hash) {
    let seed = Hash::of_parts(Domain::AuditSeed, &[&beacon.0, &request_id.0]);
    let x = seed.le_u64();
    ((x % BPS as u64) as u32, seed)
}

/// Pick up to `n` distinct validators, each draw weighted by power, from `seed`.
fn pick_auditors(s: &Overlay, seed: &Hash, n: usize) -> Result<Vec<Address>, LedgerError> {
    pick_auditors_except(s, seed, n, &[])
}

/// As [`pick_auditors`], never picking one of `except`.
fn pick_auditors_except(
    s: &Overlay,
    seed: &Hash,
    n: usize,
    except: &[Address],
) -> Result<Vec<Address>, LedgerError> {
    let mut set = staking::active_set(s)?;
    set.retain(|v| !except.contains(&v.operator));
    let mut out = Vec::new();
    let mut i: u64 = 0;
    while out.len() < n && !set.is_empty() {
        let total: u128 = set.iter().map(|v| v.power as u128).sum();
        if total == 0 {
            break;
        }
        let h = Hash::of_parts(Domain::AuditSeed, &[&seed.0, &i.to_le_bytes()]);
        let mut x = h.le_u128() % total;
        let mut pick = 0;
        for (j, v) in set.iter().enumerate() {
            if x < v.power as u128 {
                pick = j;
                break;
            }
            x -= v.power as u128;
        }
        out.push(set.remove(pick).operator);
        i += 1;
    }
    Ok(out)
}

/// A committee case's electorate: every active validator (operator) with its power. All of
/// them check, as all of them re-execute a `Resolve`; the ledger trusts no smaller group than
/// the one it already trusts for consensus.
fn committee(s: &Overlay) -> Result<(Vec<Address>, Vec<u64>), LedgerError> {
    Ok(staking::active_set(s)?
        .into_iter()
        .map(|v| (v.operator, v.power))
        .unzip())
}

/// How a case is checked (from its model's registered format and its tier).
fn case_check(s: &Overlay, c: &Case) -> Result<Option<CheckBy>, LedgerError> {
    Ok(check_by(case_format(s, c)?, c.tier))
}

/// The registered format of a case's model.
fn case_format(s: &Overlay, c: &Case) -> Result<ModelFormat, LedgerError> {
    let Some(info) = registry::model(s, &c.model)? else {
        return Err(corrupt("case names a model that is not registered"));
    };
    Ok(info.spec.format)
}

/// Begin-block: draw audits for the receipts paid in earlier blocks, with this block's beacon
/// (unknown to anyone when those receipts were answered and submitted, and the same for every
/// variant of this block its proposer could try).
pub fn begin_block(
    s: &mut Overlay,
    ctx: &BlockCtx,
    beacon: &Hash,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    let p = crate::params::inference(s)?;
    for (key, v) in s.prefix(k::AUDIT_QUEUE_PREFIX)? {
        let h = key
            .get(k::AUDIT_QUEUE_PREFIX.len()..k::AUDIT_QUEUE_PREFIX.len() + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt("short audit queue key"))?;
        if h >= ctx.height {
            break;
        }
        s.delete(key);
        let cand: AuditCandidate = borsh::from_slice(&v).map_err(|e| corrupt(&e.to_string()))?;
        let (draw, seed) = audit_draw(beacon, &cand.request_id);
        if case(s, &cand.request_id)?.is_some() {
            continue; // its open case awards or forfeits its points when it closes
        }
        if draw >= cand.rate_bps {
            // Not audited: the work is final, its points are earned.
            super::reward_pool::award_work(s, &cand.node, cand.tier, cand.units)?;
            continue;
        }
        let info = registry::model(s, &cand.model)?
            .ok_or_else(|| corrupt("audit candidate names a model that is not registered"))?;
        let (auditors, powers) = match check_by(info.spec.format, cand.tier) {
            Some(CheckBy::Committee) => committee(s)?,
            _ => (pick_auditors(s, &seed, p.audit_committee as usize)?, vec![]),
        };
        let c = Case {
            request_id: cand.request_id,
            kind: CaseKind::Audit,
            node: cand.node,
            caller: cand.caller,
            model: cand.model,
            tier: cand.tier,
            input_hash: cand.input_hash,
            output_hash: cand.output_hash,
            price: cand.price,
            units: cand.units,
            payouts: vec![],
            opened_height: ctx.height,
            deadline_ms: ctx.time_ms.saturating_add(p.reveal_window_ms),
            revealed: None,
            dispute: None,
            auditors: auditors.clone(),
            powers,
            votes: vec![],
            reassigned: 0,
        };
        put_case(s, &c);
        events.push(Event::AuditOpened {
            request_id: c.request_id,
            node: c.node,
            auditors,
            reveal_by_ms: c.deadline_ms,
        });
    }
    Ok(())
}

/// `Action::RevealData`.
pub fn reveal(
    s: &mut Overlay,
    ctx: &BlockCtx,
    sender: &Address,
    request_id: &Hash,
    inputs: &[Vec<u8>],
    outputs: &[Vec<u8>],
    events: &mut Vec<Event>,
) -> TxOutcome {
    let p = crate::params::inference(s)?;
    let Some(mut c) = case(s, request_id)? else {
        return Ok(Err(no_case(s, request_id)?));
    };
    if c.node != *sender {
        return Ok(Err(TxError::NotYourCase { node: c.node }));
    }
    if c.revealed.is_some() {
        return Ok(Err(TxError::AlreadyRevealed));
    }
    if ctx.time_ms > c.deadline_ms {
        return Ok(Err(TxError::WindowClosed {
            ended_ms: c.deadline_ms,
        }));
    }
    let bytes: usize = inputs.iter().chain(outputs).map(Vec::len).sum();
    if inputs.len() > MAX_REVEAL_TENSORS
        || outputs.len() > MAX_REVEAL_TENSORS
        || bytes > p.max_reveal_bytes as usize
    {
        return Ok(Err(TxError::RevealTooLarge {
            bytes,
            limit: p.max_reveal_bytes as usize,
        }));
    }
    // An LLM reveal is the input, the tokens and (`activations`) the commitment; any other is
    // tensors.
    let llm = case_format(s, &c)? == ModelFormat::Gguf;
    let (input_hash, output_hash) = if llm {
        let with_commitment = c.tier == Tier::Activations;
        tx_try!(
            opal_types::llm::reveal_hashes(inputs, outputs, with_commitment)
                .map_err(|what| TxError::RevealMismatch { what })
        )
    } else {
        (tensor_list_hash(inputs), tensor_list_hash(outputs))
    };
    if input_hash != c.input_hash {
        return Ok(Err(TxError::RevealMismatch {
            what: "inputs".into(),
        }));
    }
    if output_hash != c.output_hash {
        return Ok(Err(TxError::RevealMismatch {
            what: "outputs".into(),
        }));
    }
    if llm {
        // The units the node billed (royalties were paid per unit) must be the tokens it
        // revealed: a node that under-counts cannot reveal, and is convicted as withholding.
        let counted = opal_types::llm::LlmInput::from_bytes(&inputs[0])
            .ok()
            .zip(opal_types::llm::tokens_from_bytes(&outputs[0]).ok())
            .map(|(i, t)| (i.prompt_tokens.len() + t.len()) as u64);
        if counted != Some(c.units) {
            return Ok(Err(TxError::RevealUnitsMismatch {
                billed: c.units,
                revealed: counted.map_or("an undecodable number".into(), |n| n.to_string()),
            }));
        }
    }
    c.revealed = Some(Revealed {
        inputs: inputs.to_vec(),
        outputs: outputs.to_vec(),
        at_ms: ctx.time_ms,
    });
    let until = ctx.time_ms.saturating_add(p.challenge_window_ms);
    move_deadline(s, &mut c, until);
    events.push(Event::DataRevealed {
        request_id: *request_id,
        node: c.node,
        window_ends_ms: until,
    });
    Ok(Ok(()))
}

/// Re-execute the case's model on its revealed inputs: the hash of the true outputs.
fn reexecute(
    s: &Overlay,
    p: &InferenceParams,
    c: &Case,
    model_file: &[u8],
) -> Result<Result<Hash, TxError>, LedgerError> {
    let Some(info) = registry::model(s, &c.model)? else {
        return Err(corrupt("case names a model that is not registered"));
    };
    if !reexecutable(info.spec.format) {
        return Ok(Err(TxError::NotReexecutable {
            model: c.model.to_string(),
        }));
    }
    let got = Hash(*blake3::hash(model_file).as_bytes());
    if got != info.spec.content_hash {
        return Ok(Err(TxError::WrongModelFile {
            expected: info.spec.content_hash,
            got,
        }));
    }
    let Some(rev) = &c.revealed else {
        return Ok(Err(TxError::NotRevealed));
    };
    // The same re-execution `opal verify --model-file` and the watcher run: a model that cannot
    // run on the inputs the caller signed "outputs" a stand-in hash fixed by the failure's
    // typed code alone, which no honest answer has.
    // It runs within the cost the registration declared (and the chain's limit): a file
    // (the registered one) that needs more than declared shows the declaration false.
    let declared = info.spec.replay_cost.unwrap_or(0);
    let limit = p.max_replay_cost;
    match opal_verify::replay::reexecution_hash(model_file, &rev.inputs, declared.min(limit)) {
        Ok(h) => Ok(Ok(h)),
        Err(opal_verify::replay::TooCostly { needed, .. }) if needed > declared => {
            Ok(Err(TxError::ReplayCostMisdeclared { declared, needed }))
        }
        Err(opal_verify::replay::TooCostly { needed, .. }) => {
            Ok(Err(TxError::ReplayTooCostly { needed, limit }))
        }
    }
}

pub use opal_verify::replay::failed_run_hash;

fn credit(s: &mut Overlay, to: &Address, a: Amount) -> Result<(), LedgerError> {
    if a.is_zero() {
        return Ok(());
    }
    accounts::credit(s, to, a)?.map_err(|e| LedgerError::Invariant(format!("credit: {e}")))
}

/// Pay whoever resolved a passing audit, from the treasury (as far as it goes).
fn pay_audit_fee(
    s: &mut Overlay,
    p: &InferenceParams,
    to: &Address,
) -> Result<Amount, LedgerError> {
    let t = accounts::treasury(s)?;
    let fee = if t < p.audit_fee { t } else { p.audit_fee };
    if !fee.is_zero() {
        accounts::debit_treasury(s, fee)?.map_err(|e| LedgerError::Invariant(e.to_string()))?;
        credit(s, to, fee)?;
    }
    Ok(fee)
}

/// Release a held price to its payees.
fn release(s: &mut Overlay, c: &Case, events: &mut Vec<Event>) -> Result<(), LedgerError> {
    sub_held(s, c.price)?;
    pay_out(s, &c.model, c.price, &c.payouts)?;
    events.push(Event::ReceiptSettled {
        request_id: c.request_id,
        caller: c.caller,
        node: c.node,
        model: c.model.clone(),
        tier: c.tier,
        price: c.price,
        payouts: c.payouts.clone(),
    });
    Ok(())
}

/// A dispute that failed (decided for the node, or a re-execution dispute nobody resolved):
/// the challenger's bond leaves the held pool to the node, and the held result is paid now.
fn dispute_lost(
    s: &mut Overlay,
    ctx: &BlockCtx,
    c: &Case,
    d: &Dispute,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    sub_held(s, d.bond)?;
    credit(s, &c.node, d.bond)?;
    release(s, c, events)?;
    close_case(s, ctx, c, Outcome::Paid)?;
    events.push(Event::DisputeLost {
        request_id: c.request_id,
        challenger: d.challenger,
        bond: d.bond,
    });
    Ok(())
}

/// The node lied (or withheld its data): slash, jail, pay the prover, make the caller whole
/// as far as the slash goes (a held price is refunded in full), close the case.
fn convict(
    s: &mut Overlay,
    ctx: &BlockCtx,
    p: &InferenceParams,
    c: &Case,
    prover: Option<Address>,
    outcome: Outcome,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    let slashed = staking::slash_role(s, Role::InferenceNode, &c.node, p.fraud_slash)?;
    let reward = if prover.is_some() {
        // A slashed stake is part of the supply, far below u128::MAX / 10_000.
        slashed
            .checked_bps(p.challenger_reward_bps)
            .map_err(|e| LedgerError::Invariant(format!("challenger reward: {e}")))?
    } else {
        Amount::ZERO
    };
    let mut rest = Amount(slashed.0 - reward.0);
    if let Some(to) = prover {
        credit(s, &to, reward)?;
    }
    let refund = match c.kind {
        CaseKind::Held => {
            sub_held(s, c.price)?;
            c.price
        }
        CaseKind::Audit => {
            // Already paid out: compensate from the slash, up to the price.
            let r = if rest < c.price { rest } else { c.price };
            rest = Amount(rest.0 - r.0);
            r
        }
    };
    credit(s, &c.caller, refund)?;
    accounts::credit_treasury(s, rest)?;
    let until = ctx.time_ms.saturating_add(p.jail_ms);
    write(s, &k::jail(&c.node), &until);
    // A convicted node's work this epoch earns no performance reward.
    super::reward_pool::forfeit(s, Role::InferenceNode, &c.node);
    close_case(s, ctx, c, outcome)?;
    events.push(Event::NodeConvicted {
        request_id: c.request_id,
        node: c.node,
        outcome,
        slashed,
        prover,
        reward,
        refund,
        jailed_until_ms: until,
    });
    Ok(())
}

/// A re-execution that did not give a verdict: a file too costly for a block, or costlier than
/// its registration declared, closes the case undecidable (and a misdeclared registration is
/// marked: none of its results is held or audited again); any other refusal stands.
fn cannot_decide(
    s: &mut Overlay,
    ctx: &BlockCtx,
    p: &InferenceParams,
    c: &Case,
    e: TxError,
    events: &mut Vec<Event>,
) -> TxOutcome {
    match e {
        TxError::ReplayTooCostly { needed, limit } => {
            undecidable(s, ctx, c, needed, limit, events)?;
            Ok(Ok(()))
        }
        TxError::ReplayCostMisdeclared { declared, needed } => {
            write(
                s,
                &keys::registry::replay_misdeclared(&c.model),
                &(declared, needed),
            );
            events.push(Event::ReplayCostMisdeclared {
                model: c.model.clone(),
                declared,
                needed,
            });
            undecidable(s, ctx, c, needed, p.max_replay_cost, events)?;
            Ok(Ok(()))
        }
        e => Ok(Err(e)),
    }
}

/// Close a case nobody can decide (the model file, checked against its registered hash, needs
/// `needed` operations, over the block's `limit`): no one loses what they staked on a decision.
fn undecidable(
    s: &mut Overlay,
    ctx: &BlockCtx,
    c: &Case,
    needed: u64,
    limit: u64,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    if let Some(d) = &c.dispute {
        sub_held(s, d.bond)?;
        credit(s, &d.challenger, d.bond)?;
    }
    let refund = match c.kind {
        CaseKind::Held => {
            sub_held(s, c.price)?;
            credit(s, &c.caller, c.price)?;
            c.price
        }
        // A signed receipt was paid when it settled; its audit just closes.
        CaseKind::Audit => Amount::ZERO,
    };
    close_case(s, ctx, c, Outcome::Undecidable)?;
    events.push(Event::CaseUndecidable {
        request_id: c.request_id,
        node: c.node,
        needed,
        limit,
        bond_returned: c.dispute.as_ref().map(|d| d.bond).unwrap_or_default(),
        refund,
    });
    Ok(())
}

/// `Action::Challenge`.
pub fn challenge(
    s: &mut Overlay,
    ctx: &BlockCtx,
    sender: &Address,
    request_id: &Hash,
    claimed: &Hash,
    model_file: Option<&[u8]>,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let p = crate::params::inference(s)?;
    let Some(mut c) = case(s, request_id)? else {
        return Ok(Err(no_case(s, request_id)?));
    };
    if c.kind != CaseKind::Held {
        return Ok(Err(TxError::NotChallengeable {
            reason: "audits are settled with Resolve".into(),
        }));
    }
    if c.revealed.is_none() {
        return Ok(Err(TxError::NotRevealed));
    }
    if ctx.time_ms > c.deadline_ms {
        return Ok(Err(TxError::WindowClosed {
            ended_ms: c.deadline_ms,
        }));
    }
    if c.dispute.is_some() {
        return Ok(Err(TxError::NotChallengeable {
            reason: "already disputed".into(),
        }));
    }
    if *claimed == c.output_hash {
        return Ok(Err(TxError::WrongClaim {
            reason: "the claimed output is the receipt's own".into(),
        }));
    }
    let by_committee = case_check(s, &c)? == Some(CheckBy::Committee);
    if by_committee && model_file.is_some() {
        return Ok(Err(TxError::NotReexecutable {
            model: c.model.to_string(),
        }));
    }
    match model_file {
        Some(file) => {
            let truth = match reexecute(s, &p, &c, file)? {
                Ok(t) => t,
                Err(e) => return cannot_decide(s, ctx, &p, &c, e, events),
            };
            if truth != *claimed {
                return Ok(Err(TxError::WrongClaim {
                    reason: if truth == c.output_hash {
                        "re-execution gives the receipt's output: the node was right".into()
                    } else {
                        "re-execution gives neither the receipt's nor the claimed output".into()
                    },
                }));
            }
            convict(s, ctx, &p, &c, Some(*sender), Outcome::Fraud, events)?;
        }
        None => {
            tx_try!(accounts::debit(s, sender, p.challenge_bond)?);
            add_held(s, p.challenge_bond)?;
            c.dispute = Some(Dispute {
                challenger: *sender,
                bond: p.challenge_bond,
                claimed_output_hash: *claimed,
            });
            if by_committee {
                (c.auditors, c.powers) = committee(s)?;
            }
            let until = ctx.time_ms.saturating_add(p.challenge_window_ms);
            move_deadline(s, &mut c, until);
            events.push(Event::Challenged {
                request_id: *request_id,
                challenger: *sender,
                bond: p.challenge_bond,
                resolve_by_ms: until,
            });
        }
    }
    Ok(Ok(()))
}

/// `Action::Resolve`.
pub fn resolve(
    s: &mut Overlay,
    ctx: &BlockCtx,
    sender: &Address,
    request_id: &Hash,
    model_file: &[u8],
    events: &mut Vec<Event>,
) -> TxOutcome {
    let p = crate::params::inference(s)?;
    let Some(c) = case(s, request_id)? else {
        return Ok(Err(no_case(s, request_id)?));
    };
    if c.revealed.is_none() {
        return Ok(Err(TxError::NotRevealed));
    }
    if c.kind == CaseKind::Held && c.dispute.is_none() {
        return Ok(Err(TxError::NothingToResolve));
    }
    let truth = match reexecute(s, &p, &c, model_file)? {
        Ok(t) => t,
        Err(e) => return cannot_decide(s, ctx, &p, &c, e, events),
    };
    let node_right = truth == c.output_hash;
    match (&c.kind, &c.dispute) {
        (CaseKind::Audit, _) => {
            if node_right {
                let fee = pay_audit_fee(s, &p, sender)?;
                close_case(s, ctx, &c, Outcome::AuditPassed)?;
                events.push(Event::AuditPassed {
                    request_id: *request_id,
                    node: c.node,
                    resolver: *sender,
                    fee,
                });
            } else {
                convict(s, ctx, &p, &c, Some(*sender), Outcome::Fraud, events)?;
            }
        }
        (CaseKind::Held, Some(d)) => {
            if node_right {
                // The challenger was wrong; the result is proven, so it is paid now.
                dispute_lost(s, ctx, &c, d, events)?;
                return Ok(Ok(()));
            }
            sub_held(s, d.bond)?;
            if truth == d.claimed_output_hash {
                credit(s, &d.challenger, d.bond)?;
                convict(s, ctx, &p, &c, Some(d.challenger), Outcome::Fraud, events)?;
            } else {
                // Both wrong: the node is convicted, the challenger's bond goes to the
                // resolver who found the truth.
                credit(s, sender, d.bond)?;
                convict(s, ctx, &p, &c, Some(*sender), Outcome::Fraud, events)?;
            }
        }
        (CaseKind::Held, None) => {
            return Err(LedgerError::Invariant(
                "a resolve reached an undisputed held case".into(),
            ))
        }
    }
    Ok(Ok(()))
}

/// `Action::CommitteeVote`: a committee member's verdict on an LLM case it checked off chain.
/// The vote that takes one side past two thirds of the committee's power decides the case.
pub fn vote(
    s: &mut Overlay,
    ctx: &BlockCtx,
    sender: &Address,
    request_id: &Hash,
    valid: bool,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let p = crate::params::inference(s)?;
    let Some(mut c) = case(s, request_id)? else {
        return Ok(Err(no_case(s, request_id)?));
    };
    if case_check(s, &c)? != Some(CheckBy::Committee) {
        return Ok(Err(TxError::NotCommitteeCase {
            reason: format!(
                "model {} is re-executed on chain (use Resolve or Challenge)",
                c.model
            ),
        }));
    }
    if c.revealed.is_none() {
        return Ok(Err(TxError::NotRevealed));
    }
    if ctx.time_ms > c.deadline_ms {
        return Ok(Err(TxError::WindowClosed {
            ended_ms: c.deadline_ms,
        }));
    }
    if c.kind == CaseKind::Held && c.dispute.is_none() {
        return Ok(Err(TxError::NotCommitteeCase {
            reason: "a held result is voted on only once it is disputed (Challenge it first)"
                .into(),
        }));
    }
    if !c.auditors.contains(sender) {
        return Ok(Err(TxError::NotOnCommittee { voter: *sender }));
    }
    if c.votes.iter().any(|v| v.voter == *sender) {
        return Ok(Err(TxError::AlreadyVoted { voter: *sender }));
    }
    c.votes.push(CastVote {
        voter: *sender,
        valid,
    });
    events.push(Event::CommitteeVoted {
        request_id: *request_id,
        voter: *sender,
        valid,
    });
    let power_of = |a: &Address| -> u64 {
        c.auditors
            .iter()
            .position(|x| x == a)
            .and_then(|i| c.powers.get(i).copied())
            .unwrap_or(0)
    };
    let total: u128 = c.powers.iter().map(|x| *x as u128).sum();
    let side: u128 = c
        .votes
        .iter()
        .filter(|v| v.valid == valid)
        .map(|v| power_of(&v.voter) as u128)
        .sum();
    if side * 3 <= total * 2 {
        // Not decided yet: keep the vote.
        write(s, &k::case(&c.request_id), &c);
        return Ok(Ok(()));
    }
    // Decided. The majority shares the audit fee by power.
    let majority: Vec<(Address, u64)> = c
        .votes
        .iter()
        .filter(|v| v.valid == valid)
        .map(|v| (v.voter, power_of(&v.voter)))
        .collect();
    let t = accounts::treasury(s)?;
    let budget = if t < p.audit_fee { t } else { p.audit_fee };
    let mut paid = Vec::with_capacity(majority.len());
    let mut sum: u128 = 0;
    for (who, power) in &majority {
        let share = budget.0.saturating_mul(*power as u128) / side.max(1);
        credit(s, who, Amount(share))?;
        paid.push((*who, Amount(share)));
        sum += share;
    }
    accounts::debit_treasury(s, Amount(sum))?.map_err(|e| LedgerError::Invariant(e.to_string()))?;
    events.push(Event::CommitteeDecided {
        request_id: *request_id,
        node: c.node,
        valid,
        power_for: side as u64,
        power_total: total as u64,
        paid,
    });
    match (c.kind, &c.dispute, valid) {
        (CaseKind::Audit, _, true) => close_case(s, ctx, &c, Outcome::AuditPassed)?,
        (CaseKind::Audit, _, false) => convict(s, ctx, &p, &c, None, Outcome::Fraud, events)?,
        (CaseKind::Held, Some(d), true) => dispute_lost(s, ctx, &c, d, events)?,
        (CaseKind::Held, Some(d), false) => {
            sub_held(s, d.bond)?;
            credit(s, &d.challenger, d.bond)?;
            convict(s, ctx, &p, &c, Some(d.challenger), Outcome::Fraud, events)?;
        }
        (CaseKind::Held, None, _) => {
            return Err(LedgerError::Invariant(
                "a vote decided an undisputed held case".into(),
            ))
        }
    }
    Ok(Ok(()))
}

/// End-block: close the cases whose deadline passed.
pub fn end_block(
    s: &mut Overlay,
    ctx: &BlockCtx,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    let p = crate::params::inference(s)?;
    for (key, _) in s.prefix(k::DUE_PREFIX)?.into_iter().take(MAX_DUE_PER_BLOCK) {
        let off = k::DUE_PREFIX.len();
        let deadline = key
            .get(off..off + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt("short due key"))?;
        if deadline >= ctx.time_ms {
            break;
        }
        let id = key
            .get(off + 8..off + 40)
            .and_then(|b| b.try_into().ok())
            .map(Hash)
            .ok_or_else(|| corrupt("short due key"))?;
        let Some(c) = case(s, &id)? else {
            s.delete(key);
            continue;
        };
        if c.deadline_ms != deadline {
            s.delete(key);
            continue;
        }
        if c.revealed.is_none() {
            convict(s, ctx, &p, &c, None, Outcome::Withheld, events)?;
            continue;
        }
        match (c.kind, &c.dispute) {
            (CaseKind::Held, None) => {
                release(s, &c, events)?;
                close_case(s, ctx, &c, Outcome::Paid)?;
            }
            (CaseKind::Held, Some(d)) if !c.powers.is_empty() => {
                // The committee did not decide in time: nobody proved anything, so the
                // challenger gets its bond back and the result is paid.
                sub_held(s, d.bond)?;
                credit(s, &d.challenger, d.bond)?;
                release(s, &c, events)?;
                close_case(s, ctx, &c, Outcome::Paid)?;
                events.push(Event::DisputeLapsed {
                    request_id: id,
                    challenger: d.challenger,
                    bond: d.bond,
                });
            }
            (CaseKind::Held, Some(d)) => {
                // Nobody re-executed in time: the challenger did not prove its claim.
                dispute_lost(s, ctx, &c, d, events)?;
            }
            (CaseKind::Audit, _) if c.powers.is_empty() => {
                lapsed_audit(s, ctx, &p, c, events)?;
            }
            (CaseKind::Audit, _) => {
                close_case(s, ctx, &c, Outcome::AuditLapsed)?;
                events.push(Event::AuditLapsed {
                    request_id: id,
                    node: c.node,
                });
            }
        }
    }
    Ok(())
}

/// A revealed re-execution audit that its assigned auditors did not resolve in time: each of
/// them loses `audit_fee` of its stake to the treasury, and the audit goes to validators not
/// yet assigned to it (up to [`MAX_AUDIT_REASSIGN`] times; then, or when nobody is left, it
/// closes `audit_lapsed`). A lapse no longer counts as a pass handed out for free.
fn lapsed_audit(
    s: &mut Overlay,
    ctx: &BlockCtx,
    p: &InferenceParams,
    mut c: Case,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    let mut missed = Vec::new();
    for a in &c.auditors {
        let took = staking::penalize(s, a, p.audit_fee)?;
        accounts::credit_treasury(s, took)?;
        missed.push((*a, took));
    }
    let all_before: Vec<Address> = c.auditors.clone();
    let fresh = if c.reassigned < MAX_AUDIT_REASSIGN {
        let seed = Hash::of_parts(
            Domain::AuditSeed,
            &[
                &c.request_id.0,
                b"reassign",
                &(c.reassigned + 1).to_le_bytes(),
            ],
        );
        let mut except = all_before.clone();
        except.extend(c.previous_auditors(s)?);
        pick_auditors_except(s, &seed, p.audit_committee as usize, &except)?
    } else {
        vec![]
    };
    if fresh.is_empty() {
        close_case(s, ctx, &c, Outcome::AuditLapsed)?;
        events.push(Event::AuditLapsed {
            request_id: c.request_id,
            node: c.node,
        });
        if !missed.is_empty() {
            events.push(Event::AuditorsPenalized {
                request_id: c.request_id,
                missed,
            });
        }
        return Ok(());
    }
    remember_auditors(s, &c.request_id, &all_before)?;
    c.reassigned += 1;
    c.auditors = fresh.clone();
    let until = ctx.time_ms.saturating_add(p.challenge_window_ms);
    move_deadline(s, &mut c, until);
    events.push(Event::AuditReassigned {
        request_id: c.request_id,
        node: c.node,
        missed,
        auditors: fresh,
        resolve_by_ms: until,
    });
    Ok(())
}

/// Auditors an audit had before its last reassignment (`infer/audited_by/<id>`), so a
/// reassignment never goes back to one that already let it lapse.
fn remember_auditors(s: &mut Overlay, id: &Hash, add: &[Address]) -> Result<(), LedgerError> {
    let key = k::past_auditors(id);
    let mut all: Vec<Address> = read(s, &key)?.unwrap_or_default();
    all.extend_from_slice(add);
    write(s, &key, &all);
    Ok(())
}

impl Case {
    fn previous_auditors(&self, s: &Overlay) -> Result<Vec<Address>, LedgerError> {
        Ok(read(s, &k::past_auditors(&self.request_id))?.unwrap_or_default())
    }
}

/// Held pool = held prices of open held cases + locked challenge bonds.
pub fn check_held_pool(s: &Overlay) -> Result<(), LedgerError> {
    let mut total: u128 = 0;
    for c in open_cases(s, usize::MAX)? {
        if c.kind == CaseKind::Held {
            total += c.price.0;
        }
        if let Some(d) = &c.dispute {
            total += d.bond.0;
        }
    }
    let pool = held_pool(s)?;
    if pool.0 != total {
        return Err(LedgerError::Invariant(format!(
            "held pool is {pool}, open cases hold {total}"
        )));
    }
    Ok(())
}

mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.into_iter()
            .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// The `verification` component ([`super::Component`]).
pub struct Verification;

impl super::Component for Verification {
    fn name(&self) -> &'static str {
        "verification"
    }

    fn begin_block(
        &self,
        s: &mut Overlay,
        b: super::BlockFrame,
        ev: &mut Vec<Event>,
    ) -> super::Hook {
        begin_block(s, b.ctx, b.beacon, ev)
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        let (ctx, sender, action) = (tx.ctx, tx.sender, tx.action);
        use opal_types::Action as A;
        match action {
            A::RevealData {
                request_id,
                inputs,
                outputs,
            } => reveal(s, ctx, sender, request_id, inputs, outputs, ev),
            A::Challenge {
                request_id,
                claimed_output_hash,
                model,
            } => challenge(
                s,
                ctx,
                sender,
                request_id,
                claimed_output_hash,
                model.as_deref(),
                ev,
            ),
            A::Resolve { request_id, model } => resolve(s, ctx, sender, request_id, model, ev),
            A::CommitteeVote { request_id, valid } => vote(s, ctx, sender, request_id, *valid, ev),
            other => super::not_routed_here(self.name(), other),
        }
    }

    fn end_block(&self, s: &mut Overlay, b: super::BlockFrame, ev: &mut Vec<Event>) -> super::Hook {
        end_block(s, b.ctx, ev)
    }
}
