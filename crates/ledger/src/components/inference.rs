//! Inference payments: per-(caller, node) escrows and batch settlement of signed receipts.
//!
//! Design (see docs/inference.md): a caller prepays into an escrow earmarked for one node
//! (`FundEscrow`). The node serves requests off chain as long as the escrow, minus what it has
//! served but not yet settled, covers the price, and it posts receipts in batches
//! (`SettleReceipts`). A receipt embeds the caller's signed request (so a node cannot charge for
//! work nobody asked for, or more than the caller's `max_price`) and the node's signature over the
//! output (so the caller holds proof of what was answered). A caller cannot run away with the
//! money: closing an escrow (`CloseEscrow`) only unlocks it `escrow_unlock_ms` later, longer than
//! the settlement grace, so the node can always settle what it served before it saw the close.
//! A request id is settled at most once (`infer/settled/<id>`), so no receipt is paid twice, and a
//! request that failed has no receipt, so it is never charged.
//!
//! A settled price is split: `treasury_bps` to the treasury; the model's royalties (its price
//! plus the licence fee) to the parent model's owner and the datasets' owners by their basis
//! points, the remainder of the royalties to the model's owner; what is left to the node. A
//! royalty whose stream (the model name, the parent's name, the dataset) is split into shares
//! goes to its holders instead ([`super::shares`]). Integer
//! division rounds down and every remainder goes to a named party, so the credits always add up
//! to the price exactly.

use super::payout::pay_out;
use super::{accounts, read, registry, shares, verification, write};
use super::{BlockCtx, TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::{Event, Payout};
use crate::keys::inference as k;
use crate::params::InferenceParams;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::registry::{ModelFormat, BPS};
use opal_types::shares::RoyaltyStream;
use opal_types::{Address, Amount, Hash, Receipt, Tier};
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Escrow {
    pub balance: Amount,
    /// Set by `CloseEscrow`: block time from which the rest can be withdrawn.
    pub unlock_ms: Option<u64>,
}

/// The record of a paid receipt (its type lives in `opal-types`, where light clients read it).
pub use opal_types::receipt::Settled;

pub fn params(s: &Overlay) -> Result<InferenceParams, LedgerError> {
    crate::params::inference(s)
}

pub fn escrow(s: &Overlay, caller: &Address, node: &Address) -> Result<Escrow, LedgerError> {
    Ok(read(s, &k::escrow(caller, node))?.unwrap_or_default())
}

pub fn escrow_pool(s: &Overlay) -> Result<Amount, LedgerError> {
    Ok(read(s, k::ESCROW_POOL)?.unwrap_or_default())
}

pub fn settled(s: &Overlay, request_id: &Hash) -> Result<Option<Settled>, LedgerError> {
    read(s, &k::settled(request_id))
}

/// What has been charged so far under a spend grant.
pub fn grant_spent(s: &Overlay, grant_id: &Hash) -> Result<Amount, LedgerError> {
    Ok(read(s, &k::grant_spent(grant_id))?.unwrap_or_default())
}

fn set_pool(s: &mut Overlay, v: Amount) {
    write(s, k::ESCROW_POOL, &v);
}

fn set_escrow(s: &mut Overlay, caller: &Address, node: &Address, e: &Escrow) {
    if e.balance.is_zero() && e.unlock_ms.is_none() {
        s.delete(k::escrow(caller, node));
    } else {
        write(s, &k::escrow(caller, node), e);
    }
}

/// `Action::FundEscrow`.
pub fn fund(
    s: &mut Overlay,
    caller: &Address,
    node: &Address,
    amount: Amount,
    events: &mut Vec<Event>,
) -> TxOutcome {
    if amount.is_zero() {
        return Ok(Err(TxError::ZeroAmount));
    }
    let mut e = escrow(s, caller, node)?;
    if e.unlock_ms.is_some() {
        return Ok(Err(TxError::EscrowClosing { node: *node }));
    }
    tx_try!(accounts::debit(s, caller, amount)?);
    e.balance = tx_try!(e.balance.checked_add(amount).map_err(|_| TxError::Overflow));
    let pool = tx_try!(escrow_pool(s)?
        .checked_add(amount)
        .map_err(|_| TxError::Overflow));
    set_pool(s, pool);
    set_escrow(s, caller, node, &e);
    events.push(Event::EscrowFunded {
        caller: *caller,
        node: *node,
        amount,
        balance: e.balance,
    });
    Ok(Ok(()))
}

/// `Action::CloseEscrow`.
pub fn close(
    s: &mut Overlay,
    ctx: &BlockCtx,
    caller: &Address,
    node: &Address,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let mut e = escrow(s, caller, node)?;
    if e.balance.is_zero() && e.unlock_ms.is_none() {
        return Ok(Err(TxError::NoEscrow { node: *node }));
    }
    if e.unlock_ms.is_some() {
        return Ok(Err(TxError::EscrowClosing { node: *node }));
    }
    let unlock_ms = ctx.time_ms.saturating_add(params(s)?.escrow_unlock_ms);
    e.unlock_ms = Some(unlock_ms);
    set_escrow(s, caller, node, &e);
    events.push(Event::EscrowClosing {
        caller: *caller,
        node: *node,
        unlock_ms,
    });
    Ok(Ok(()))
}

/// `Action::WithdrawEscrow`.
pub fn withdraw(
    s: &mut Overlay,
    ctx: &BlockCtx,
    caller: &Address,
    node: &Address,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let e = escrow(s, caller, node)?;
    let Some(unlock_ms) = e.unlock_ms else {
        if e.balance.is_zero() {
            return Ok(Err(TxError::NoEscrow { node: *node }));
        }
        return Ok(Err(TxError::EscrowNotClosed { node: *node }));
    };
    if ctx.time_ms < unlock_ms {
        return Ok(Err(TxError::EscrowLocked { unlock_ms }));
    }
    let pool = escrow_pool(s)?
        .checked_sub(e.balance)
        .map_err(|_| corrupt("escrow pool is smaller than an escrow"))?;
    set_pool(s, pool);
    tx_try!(accounts::credit(s, caller, e.balance)?);
    s.delete(k::escrow(caller, node));
    events.push(Event::EscrowWithdrawn {
        caller: *caller,
        node: *node,
        amount: e.balance,
    });
    Ok(Ok(()))
}

fn corrupt(reason: &str) -> LedgerError {
    LedgerError::Corrupt {
        key: "infer".into(),
        reason: reason.into(),
    }
}

/// Why one receipt of a batch was not paid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    #[error("{0}")]
    InvalidReceipt(String),
    #[error("request is for chain {got:?}, this is {expected:?}")]
    WrongChain { expected: String, got: String },
    #[error("already settled")]
    AlreadySettled,
    #[error("too late: the request expired at {expires_ms} and the grace ended at {deadline_ms}")]
    Expired { expires_ms: u64, deadline_ms: u64 },
    #[error("receipt height {height} is above the current height {current}")]
    FutureHeight { height: u64, current: u64 },
    #[error("no model {0}")]
    UnknownModel(String),
    #[error("the request names content hash {requested}, model {model} is {registered}")]
    ModelHashMismatch {
        model: String,
        requested: Hash,
        registered: Hash,
    },
    #[error("tier {0} does not settle yet: its evidence verifier is not built")]
    TierNotSettleable(String),
    #[error("a zk-tier receipt settles only with its proof (SettleProved)")]
    ProofRequired,
    #[error("tier {tier} is not allowed for {model}")]
    TierNotAllowed { model: String, tier: String },
    #[error("the node does not offer {model} under tier {tier}")]
    NotOffered { model: String, tier: String },
    #[error("the node's inference-node bond is below the minimum")]
    NodeNotBonded,
    #[error("licence: {0}")]
    Licence(String),
    #[error("price {price} is below what the model's owner and the treasury are owed ({owed})")]
    PriceTooLow { price: Amount, owed: Amount },
    #[error("escrow holds {have}, the receipt charges {price}")]
    EscrowShort { have: Amount, price: Amount },
    #[error("the spend grant allows {max_total} in all; {spent} was already charged, this receipt charges {price}")]
    GrantExhausted {
        max_total: Amount,
        spent: Amount,
        price: Amount,
    },
    #[error("results of model {0} under this tier cannot be checked on chain, so they cannot be held for disputes (only opal_quant models, and GGUF models under the activations tier, can)")]
    NotReexecutable(String),
    #[error("{units} billable units on a {format} model's receipt: only LLM (gguf) receipts count more than one")]
    BadUnits { units: u64, format: String },
    #[error("the node is jailed until {until_ms} for a proven fraud")]
    NodeJailed { until_ms: u64 },
    #[error("arithmetic overflow")]
    Overflow,
}

impl SettleError {
    /// Stable machine-readable code, reported in `ReceiptRejected` events.
    pub fn code(&self) -> &'static str {
        match self {
            SettleError::InvalidReceipt(_) => "invalid_receipt",
            SettleError::WrongChain { .. } => "wrong_chain",
            SettleError::AlreadySettled => "already_settled",
            SettleError::Expired { .. } => "expired",
            SettleError::FutureHeight { .. } => "future_height",
            SettleError::UnknownModel(_) => "unknown_model",
            SettleError::ModelHashMismatch { .. } => "model_hash_mismatch",
            SettleError::TierNotSettleable(_) => "tier_not_settleable",
            SettleError::ProofRequired => "proof_required",
            SettleError::TierNotAllowed { .. } => "tier_not_allowed",
            SettleError::NotOffered { .. } => "not_offered",
            SettleError::NodeNotBonded => "node_not_bonded",
            SettleError::Licence(_) => "licence",
            SettleError::PriceTooLow { .. } => "price_too_low",
            SettleError::EscrowShort { .. } => "escrow_short",
            SettleError::GrantExhausted { .. } => "grant_exhausted",
            SettleError::NotReexecutable(_) => "not_reexecutable",
            SettleError::BadUnits { .. } => "bad_units",
            SettleError::NodeJailed { .. } => "node_jailed",
            SettleError::Overflow => "overflow",
        }
    }
}

fn mul_bps(a: Amount, bps: u32) -> Result<Amount, SettleError> {
    a.checked_bps(bps).map_err(|_| SettleError::Overflow)
}

fn sub(a: Amount, b: Amount) -> Result<Amount, SettleError> {
    a.checked_sub(b).map_err(|_| SettleError::Overflow)
}

/// The credits one settled price makes, in a fixed order. Their amounts add up to `price`.
pub fn split(
    s: &Overlay,
    info: &registry::ModelInfo,
    node: &Address,
    price: Amount,
    units: u64,
    p: &InferenceParams,
) -> Result<Result<Vec<Payout>, SettleError>, LedgerError> {
    let spec = &info.spec;
    let treasury = match mul_bps(price, p.treasury_bps) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    // Royalties are per billable unit: per call, or per token for an LLM.
    let royalties = match spec
        .price
        .checked_add(spec.licence.fee())
        .ok()
        .and_then(|r| r.0.checked_mul(units as u128))
    {
        Some(v) => Amount(v),
        None => return Ok(Err(SettleError::Overflow)),
    };
    let owed = match treasury.checked_add(royalties) {
        Ok(v) => v,
        Err(_) => return Ok(Err(SettleError::Overflow)),
    };
    if owed > price {
        return Ok(Err(SettleError::PriceTooLow { price, owed }));
    }
    let mut out = Vec::new();
    let mut owner_part = royalties;
    let m = |r: Result<Amount, SettleError>| r;
    if let Some(parent) = &spec.parent {
        let amount = match m(mul_bps(royalties, spec.parent_bps)) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        owner_part = match sub(owner_part, amount) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let to = registry::owner_of(s, parent)?.ok_or_else(|| corrupt("parent has no owner"))?;
        out.push(royalty(
            s,
            "parent".into(),
            to,
            RoyaltyStream::Model(parent.name.clone()),
            amount,
        )?);
    }
    for d in &spec.datasets {
        let amount = match mul_bps(royalties, d.bps) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        owner_part = match sub(owner_part, amount) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let to = registry::dataset(s, &d.dataset)?
            .ok_or_else(|| corrupt("lineage dataset is not registered"))?
            .owner;
        let stream = RoyaltyStream::Dataset(d.dataset.clone());
        out.push(royalty(
            s,
            format!("dataset:{}", d.dataset),
            to,
            stream,
            amount,
        )?);
    }
    let owner =
        registry::owner_of(s, &spec.model_ref())?.ok_or_else(|| corrupt("model has no owner"))?;
    let stream = RoyaltyStream::Model(spec.name.clone());
    out.push(royalty(s, "owner".into(), owner, stream, owner_part)?);
    out.push(Payout {
        role: "treasury".into(),
        to: None,
        amount: treasury,
        shares: None,
    });
    // owed <= price was checked above.
    let node_part = Amount(price.0 - owed.0);
    out.push(Payout {
        role: "node".into(),
        to: Some(*node),
        amount: node_part,
        shares: None,
    });
    Ok(Ok(out))
}

/// A royalty to an asset's owner, or to its share holders once the owner split its stream.
fn royalty(
    s: &Overlay,
    role: String,
    owner: Address,
    stream: RoyaltyStream,
    amount: Amount,
) -> Result<Payout, LedgerError> {
    Ok(if shares::is_split(s, &stream)? {
        Payout {
            role,
            to: None,
            amount,
            shares: Some(stream),
        }
    } else {
        Payout {
            role,
            to: Some(owner),
            amount,
            shares: None,
        }
    })
}

/// Check one receipt and, if it holds, pay it. `Ok(Err(_))` leaves `s` untouched. `proved`:
/// the receipt's zk proof was verified by the caller.
/// What a caller pays on top of the price for asking `audit_bps` (above the chain's base rate):
/// the expected extra audit cost, `ceil(audit_fee x (audit_bps - base) / 10000)`, charged from
/// the escrow into the treasury at settlement of an auditable receipt.
pub fn audit_premium(p: &InferenceParams, audit_bps: u32) -> Amount {
    if audit_bps <= p.audit_bps {
        return Amount::ZERO;
    }
    let extra = audit_bps.saturating_sub(p.audit_bps) as u128;
    Amount((p.audit_fee.0.saturating_mul(extra)).div_ceil(BPS as u128))
}

/// What a request's receipt is checked against besides the state: the chain, the block's
/// height and time (for a node about to serve, its latest committed state's height and its own
/// clock), and the height the receipt will carry.
#[derive(Debug, Clone, Copy)]
pub struct Settlement<'a> {
    pub chain_id: &'a str,
    pub height: u64,
    pub time_ms: u64,
    pub receipt_height: u64,
}

/// What the same caller already owes the node for receipts served and not yet settled: in
/// all, and under the request's spend grant. Zero on chain, where each receipt is settled on
/// its own; a node about to serve counts its unsettled receipts, so that a caller cannot be
/// served twice against one escrow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsettled {
    pub escrow: Amount,
    pub grant: Amount,
}

/// What settling one request would do, when the ledger would pay it.
#[derive(Debug, Clone)]
pub struct Terms {
    pub info: registry::ModelInfo,
    /// Held for its challenge window (the `replay` tier, or a request that asked for disputes).
    pub held: bool,
    /// The result can be re-executed or checked by the validators' committee.
    pub checkable: bool,
    /// The credits of the price, in their fixed order.
    pub payouts: Vec<Payout>,
    /// The extra audit rate's cost the caller pays on top of the price.
    pub premium: Amount,
    /// `price + premium`, taken from the escrow.
    pub charge: Amount,
    /// The caller's escrow with the node, as the state holds it.
    pub escrow: Escrow,
    /// What the spend grant will have been charged in all after this receipt, if the request
    /// carries one.
    pub grant_total: Option<Amount>,
}

/// The settlement rule: whether the ledger pays the receipt of `sr`, charging `price` for
/// `units` billable units, and what paying it does. Read-only: [`settle_one`] applies the
/// terms, and an inference node calls the same function before it serves, so it never does
/// work whose receipt the ledger would refuse. The checks run in one fixed order (the first
/// failing one is the reason reported).
#[allow(clippy::too_many_arguments)]
pub fn terms(
    s: &Overlay,
    at: &Settlement,
    p: &InferenceParams,
    sr: &opal_types::receipt::SignedRequest,
    price: Amount,
    units: u64,
    proved: bool,
    unsettled: Unsettled,
) -> Result<Result<Terms, SettleError>, LedgerError> {
    macro_rules! st {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            }
        };
    }
    let req = &sr.request;
    if req.chain_id != at.chain_id {
        return Ok(Err(SettleError::WrongChain {
            expected: at.chain_id.to_string(),
            got: req.chain_id.clone(),
        }));
    }
    if settled(s, &sr.id())?.is_some() {
        return Ok(Err(SettleError::AlreadySettled));
    }
    let deadline_ms = req.expires_ms.saturating_add(p.settle_grace_ms);
    if at.time_ms > deadline_ms {
        return Ok(Err(SettleError::Expired {
            expires_ms: req.expires_ms,
            deadline_ms,
        }));
    }
    if at.receipt_height > at.height {
        return Ok(Err(SettleError::FutureHeight {
            height: at.receipt_height,
            current: at.height,
        }));
    }
    let Some(info) = registry::model(s, &req.model)? else {
        return Ok(Err(SettleError::UnknownModel(req.model.to_string())));
    };
    if info.spec.content_hash != req.model_hash {
        return Ok(Err(SettleError::ModelHashMismatch {
            model: req.model.to_string(),
            requested: req.model_hash,
            registered: info.spec.content_hash,
        }));
    }
    if !info.spec.tiers.contains(&req.tier) {
        return Ok(Err(SettleError::TierNotAllowed {
            model: req.model.to_string(),
            tier: req.tier.as_str().into(),
        }));
    }
    // `signed` pays now (and may be audited); `replay` (and any request that asked for
    // disputes) is held for its challenge window; `activations` pays like `signed` (its
    // commitment is checked off chain, see docs/llm.md); `zk` pays only through
    // `SettleProved`, whose proof the caller (`super::zk::settle_proved`) has verified. `tee`
    // needs an attestation verifier, which is not built.
    match req.tier {
        Tier::Signed | Tier::Replay | Tier::Activations => {}
        Tier::Zk if proved => {}
        Tier::Zk => return Ok(Err(SettleError::ProofRequired)),
        Tier::Tee => {
            return Ok(Err(SettleError::TierNotSettleable(
                req.tier.as_str().into(),
            )))
        }
    }
    // A proved result is final: it is neither held for disputes nor audited.
    let held = req.tier == Tier::Replay || (req.escalation.dispute && !proved);
    // Re-executable (canonical models) or checked by the validators' committee (LLM
    // `activations` receipts, `signed` receipts of float ONNX models): such results can be
    // held for disputes and audited.
    let checkable = verification::checker(s, &req.model, &info.spec, req.tier)?.is_some();
    if held && !checkable {
        return Ok(Err(SettleError::NotReexecutable(req.model.to_string())));
    }
    if let Some(until_ms) = verification::jailed_until(s, &req.node, at.time_ms)? {
        return Ok(Err(SettleError::NodeJailed { until_ms }));
    }
    let node = req.node;
    let offered = registry::service(s, &node)?
        .and_then(|svc| svc.spec.offer(&req.model).cloned())
        .is_some_and(|o| o.tiers.contains(&req.tier));
    if !offered {
        return Ok(Err(SettleError::NotOffered {
            model: req.model.to_string(),
            tier: req.tier.as_str().into(),
        }));
    }
    if registry::check_inference_node(s, &node)?.is_err() {
        return Ok(Err(SettleError::NodeNotBonded));
    }
    let caller = sr.caller_address();
    st!(info
        .spec
        .licence
        .permits(&caller, req.commercial)
        .map_err(SettleError::Licence));
    // Billable units: one per call, except LLM replies (one per prompt and completion token).
    if info.spec.format != ModelFormat::Gguf && units != 1 {
        return Ok(Err(SettleError::BadUnits {
            units,
            format: format!("{:?}", info.spec.format).to_lowercase(),
        }));
    }
    let payouts = st!(split(s, &info, &node, price, units, p)?);
    // A caller that asked for more audits than the base rate pays their expected cost.
    let premium = if checkable && !proved {
        audit_premium(p, req.escalation.audit_bps)
    } else {
        Amount::ZERO
    };
    let charge = st!(price
        .checked_add(premium)
        .map_err(|_| SettleError::Overflow));
    let escrow = escrow(s, &caller, &node)?;
    let have = Amount(escrow.balance.0.saturating_sub(unsettled.escrow.0));
    if have < charge {
        return Ok(Err(SettleError::EscrowShort {
            have,
            price: charge,
        }));
    }
    let grant_total = match &sr.grant {
        Some(g) => {
            let spent = st!(grant_spent(s, &g.id())?
                .checked_add(unsettled.grant)
                .map_err(|_| SettleError::Overflow));
            let total = st!(spent.checked_add(price).map_err(|_| SettleError::Overflow));
            if total > g.grant.max_total {
                return Ok(Err(SettleError::GrantExhausted {
                    max_total: g.grant.max_total,
                    spent,
                    price,
                }));
            }
            Some(total)
        }
        None => None,
    };
    Ok(Ok(Terms {
        info,
        held,
        checkable,
        payouts,
        premium,
        charge,
        escrow,
        grant_total,
    }))
}

pub(crate) fn settle_one(
    s: &mut Overlay,
    ctx: &BlockCtx,
    p: &InferenceParams,
    r: &Receipt,
    proved: bool,
    events: &mut Vec<Event>,
) -> Result<Result<(), SettleError>, LedgerError> {
    macro_rules! st {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            }
        };
    }
    st!(r
        .verify()
        .map_err(|e| SettleError::InvalidReceipt(e.to_string())));
    let at = Settlement {
        chain_id: &ctx.chain_id,
        height: ctx.height,
        time_ms: ctx.time_ms,
        receipt_height: r.body.height,
    };
    let price = r.body.price;
    let units = r.body.units;
    let Terms {
        info: _,
        held,
        checkable,
        payouts,
        premium,
        charge,
        escrow: mut e,
        grant_total,
    } = st!(terms(
        s,
        &at,
        p,
        &r.body.request,
        price,
        units,
        proved,
        Unsettled::default()
    )?);
    let req = &r.body.request.request;
    let id = r.request_id();
    let node = req.node;
    let caller = r.body.request.caller_address();
    if let (Some(g), Some(total)) = (&r.body.request.grant, grant_total) {
        write(s, &k::grant_spent(&g.id()), &total);
    }
    // All checks passed: move the money.
    e.balance = Amount(e.balance.0 - charge.0);
    set_escrow(s, &caller, &node, &e);
    let pool = escrow_pool(s)?
        .checked_sub(charge)
        .map_err(|_| corrupt("escrow pool is smaller than an escrow"))?;
    set_pool(s, pool);
    if !premium.is_zero() {
        accounts::credit_treasury(s, premium)?;
        events.push(Event::AuditPremium {
            request_id: id,
            caller,
            amount: premium,
        });
    }
    let record = Settled {
        receipt_id: r.id(),
        caller,
        node,
        model: req.model.clone(),
        tier: req.tier,
        price,
        output_hash: r.body.output_hash,
        height: ctx.height,
    };
    write(s, &k::settled(&id), &record);
    if held {
        verification::hold(
            s,
            ctx,
            p,
            &record,
            id,
            req.input_hash,
            units,
            payouts,
            events,
        )?;
        return Ok(Ok(()));
    }
    pay_out(s, &req.model, price, &payouts)?;
    // Points for the work once it is final: now, or after the audit draw (and the audit, if
    // drawn) for a receipt queued for one; a held result earns them when its case pays.
    let queued = checkable
        && !proved
        && verification::enqueue_audit(
            s,
            ctx,
            &verification::AuditCandidate {
                request_id: id,
                rate_bps: p.audit_bps.max(req.escalation.audit_bps),
                node,
                caller,
                model: req.model.clone(),
                tier: req.tier,
                input_hash: req.input_hash,
                output_hash: r.body.output_hash,
                price,
                units,
            },
        );
    if !queued {
        super::reward_pool::award_work(s, &node, req.tier, units)?;
    }
    events.push(Event::ReceiptSettled {
        request_id: id,
        caller,
        node,
        model: req.model.clone(),
        tier: req.tier,
        price,
        payouts,
    });
    Ok(Ok(()))
}

/// `Action::SettleReceipts`. The batch is refused as a whole only if it is empty, too large, or
/// carries a receipt served by someone other than the signer; otherwise each receipt is paid or
/// reported as `ReceiptRejected` on its own, atomically.
pub fn settle(
    s: &mut Overlay,
    ctx: &BlockCtx,
    sender: &Address,
    receipts: &[Receipt],
    events: &mut Vec<Event>,
) -> TxOutcome {
    let p = params(s)?;
    if receipts.is_empty() {
        return Ok(Err(TxError::EmptySettlement));
    }
    if receipts.len() > p.max_receipts_per_tx as usize {
        return Ok(Err(TxError::TooManyReceipts {
            got: receipts.len(),
            limit: p.max_receipts_per_tx as usize,
        }));
    }
    for (index, r) in receipts.iter().enumerate() {
        if r.node() != *sender {
            return Ok(Err(TxError::NotYourReceipt {
                index,
                node: r.node(),
            }));
        }
    }
    for r in receipts {
        let mut fork = s.fork();
        let mut ev = Vec::new();
        match settle_one(&mut fork, ctx, &p, r, false, &mut ev)? {
            Ok(()) => {
                s.apply(fork);
                events.extend(ev);
            }
            Err(e) => events.push(Event::ReceiptRejected {
                request_id: r.request_id(),
                code: e.code().to_string(),
                reason: e.to_string(),
            }),
        }
    }
    Ok(Ok(()))
}

/// The `inference` component ([`super::Component`]).
pub struct Inference;

impl super::Component for Inference {
    fn name(&self) -> &'static str {
        "inference"
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        let (ctx, sender, action) = (tx.ctx, tx.sender, tx.action);
        use opal_types::Action as A;
        match action {
            A::FundEscrow { node, amount } => fund(s, sender, node, *amount, ev),
            A::CloseEscrow { node } => close(s, ctx, sender, node, ev),
            A::WithdrawEscrow { node } => withdraw(s, ctx, sender, node, ev),
            A::SettleReceipts { receipts } => settle(s, ctx, sender, receipts, ev),
            other => super::not_routed_here(self.name(), other),
        }
    }

    fn init_chain(&self, s: &mut Overlay, g: &crate::Genesis) -> super::Hook {
        super::write(s, crate::keys::inference::PARAMS, &g.inference);
        Ok(())
    }
}
