//! Admission: whether to serve a request, decided before any work is done, as a pure function
//! of the committed state, the clock and what the caller already owes.
//!
//! It checks what only a serving node checks (its own identity, a bounded expiry, the tiers a
//! tensor model is served in, the caller's maximum price, a closing escrow), then asks the
//! ledger's own settlement rule ([`opal_ledger::components::inference::terms`]) whether the
//! receipt it would sign would be paid, counting the caller's and the grant's unsettled
//! receipts. So the node never works for a receipt the ledger would refuse: a jailed or unbonded
//! node, a price below what the owner and the treasury are owed, an escrow that covers the
//! price but not the audit premium, a spent grant.

use crate::chain::Committed;
use crate::error::ServeError;
use opal_ledger::components::inference::{self, Settlement, Terms, Unsettled};
use opal_ledger::components::registry;
use opal_types::receipt::{ReceiptError, SignedRequest, MAX_AUDIT_BPS};
use opal_types::registry::ModelFormat;
use opal_types::{Address, Amount, Tier};

/// Farthest in the future a request may expire (ms after the node's clock).
pub const MAX_REQUEST_TTL_MS: u64 = 10 * 60 * 1000;

/// Who is admitting: the chain and the node's address.
#[derive(Debug, Clone, Copy)]
pub struct Admitter<'a> {
    pub chain_id: &'a str,
    pub node: Address,
}

/// An admitted request: its price, the height its receipt carries, and the ledger's terms.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub price: Amount,
    pub height: u64,
    pub terms: Terms,
}

impl Admitted {
    pub fn format(&self) -> ModelFormat {
        self.terms.info.spec.format
    }
}

/// The price a node charges for one call of a model it offers for `offer_fee`: the model's
/// price, its licence fee and the node's fee.
pub fn call_price(spec: &opal_types::registry::ModelSpec, offer_fee: Amount) -> Option<Amount> {
    spec.price
        .checked_add(spec.licence.fee())
        .and_then(|p| p.checked_add(offer_fee))
        .ok()
}

/// Decide whether `who` serves the tensor-model request `sr` at clock reading `now_ms`, given
/// the committed state `c` and what the caller (and the request's grant) already owe `who` for
/// receipts not yet settled.
pub fn admit(
    c: &Committed,
    who: Admitter,
    now_ms: u64,
    sr: &SignedRequest,
    unsettled: Unsettled,
) -> Result<Admitted, ServeError> {
    let req = &sr.request;
    sr.verify().map_err(|e| match e {
        ReceiptError::BadRequestSignature => ServeError::BadSignature,
        other => ServeError::BadGrant(other.to_string()),
    })?;
    if req.chain_id != who.chain_id {
        return Err(ServeError::WrongChain {
            expected: who.chain_id.to_string(),
            got: req.chain_id.clone(),
        });
    }
    if req.node != who.node {
        return Err(ServeError::WrongNode {
            asked: req.node,
            me: who.node,
        });
    }
    if req.expires_ms < now_ms {
        return Err(ServeError::Expired {
            expires_ms: req.expires_ms,
            now_ms,
        });
    }
    if req.expires_ms > now_ms.saturating_add(MAX_REQUEST_TTL_MS) {
        return Err(ServeError::ExpiryTooFar {
            max_ms: MAX_REQUEST_TTL_MS,
        });
    }
    let o = &c.state;
    let id = sr.id();
    if inference::settled(o, &id)?.is_some() {
        return Err(ServeError::Replayed(id));
    }
    let info = registry::model(o, &req.model)?
        .ok_or_else(|| ServeError::UnknownModel(req.model.to_string()))?;
    if info.spec.content_hash != req.model_hash {
        return Err(ServeError::ModelHashMismatch {
            model: req.model.to_string(),
            requested: req.model_hash,
            registered: info.spec.content_hash,
        });
    }
    let offer = registry::service(o, &who.node)?
        .and_then(|s| s.spec.offer(&req.model).cloned())
        .filter(|off| off.tiers.contains(&req.tier) && info.spec.tiers.contains(&req.tier))
        .ok_or_else(|| ServeError::NotOffered {
            model: req.model.to_string(),
            tier: req.tier.as_str().into(),
        })?;
    let canonical = info.spec.format == ModelFormat::OpalQuant;
    match req.tier {
        Tier::Signed => {}
        // The registry only lets canonical models into the replay and zk tiers.
        Tier::Replay | Tier::Zk if canonical => {}
        _ => return Err(ServeError::TierUnsupported(req.tier.as_str().into())),
    }
    if req.escalation.dispute && req.tier == Tier::Zk {
        return Err(ServeError::Malformed(
            "a zk-tier result is proved, not disputed: drop escalation.dispute".into(),
        ));
    }
    if req.escalation.dispute && !canonical {
        return Err(ServeError::TierUnsupported(
            "disputes (escalation.dispute) need a canonical opal_quant model".into(),
        ));
    }
    if req.escalation.audit_bps > MAX_AUDIT_BPS {
        return Err(ServeError::Malformed(
            "escalation.audit_bps above 10000".into(),
        ));
    }
    info.spec
        .licence
        .permits(&sr.caller_address(), req.commercial)
        .map_err(ServeError::Licence)?;
    let price = call_price(&info.spec, offer.fee)
        .ok_or_else(|| ServeError::Internal("the price overflows".into()))?;
    if price > req.max_price {
        return Err(ServeError::PriceAboveMax {
            price,
            max: req.max_price,
        });
    }
    if inference::escrow(o, &sr.caller_address(), &who.node)?
        .unlock_ms
        .is_some()
    {
        return Err(ServeError::EscrowClosing);
    }
    let at = Settlement {
        chain_id: who.chain_id,
        height: c.height,
        time_ms: now_ms,
        receipt_height: c.height,
    };
    let p = inference::params(o)?;
    // A zk-tier receipt is settled with its proof (`SettleProved`).
    let proved = req.tier == Tier::Zk;
    let terms = inference::terms(o, &at, &p, sr, price, 1, proved, unsettled)?
        .map_err(|e| ServeError::from_settle(e, id))?;
    Ok(Admitted {
        price,
        height: c.height,
        terms,
    })
}
