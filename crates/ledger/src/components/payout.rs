//! Payouts: crediting a settled price's parts (accounts, share pools and the treasury). The layer below settlement ([`super::inference`]) and verification
//! ([`super::verification`]), which both pay out, so that verification does not import
//! settlement.

use super::{accounts, registry, shares};
use crate::error::LedgerError;
use crate::events::Payout;
use opal_state::Overlay;
use opal_types::{Amount, ModelRef};

/// Credit a settled price's payouts and count the call on the model. The payouts add up to
/// `price` (see [`split`]), which the caller has already taken out of an escrow or the held pool.
pub(crate) fn pay_out(
    s: &mut Overlay,
    model: &ModelRef,
    price: Amount,
    payouts: &[Payout],
) -> Result<(), LedgerError> {
    for pay in payouts {
        if pay.amount.is_zero() {
            continue;
        }
        if let Some(stream) = &pay.shares {
            shares::distribute(s, stream, pay.amount)?;
            continue;
        }
        match pay.to {
            Some(to) => accounts::credit(s, &to, pay.amount)?
                .map_err(|e| LedgerError::Invariant(format!("payout: {e}")))?,
            None => accounts::credit_treasury(s, pay.amount)?,
        }
    }
    let mut info = registry::model(s, model)?.ok_or_else(|| LedgerError::Corrupt {
        key: format!("registry model {model}"),
        reason: "paid model vanished".into(),
    })?;
    info.calls = info.calls.saturating_add(1);
    info.revenue = Amount(info.revenue.0.saturating_add(price.0));
    registry::put_model(s, &info);
    Ok(())
}
