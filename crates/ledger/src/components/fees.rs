//! Fees: each transaction pays its fee into a pool; at the end of the block the pool goes to the
//! block's proposer. Value moves, none is created or burned.

use super::{accounts, read, write};
use super::{TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::keys;
use crate::params::Params;
use opal_state::Overlay;
use opal_types::{Address, Amount, PublicKey};

pub fn pool(s: &Overlay) -> Result<Amount, LedgerError> {
    Ok(read(s, keys::fees::POOL)?.unwrap_or_default())
}

/// Begin-block hook: the previous block's end paid the pool out, so it must be empty.
pub fn begin_block(s: &Overlay) -> Result<(), LedgerError> {
    let p = pool(s)?;
    if !p.is_zero() {
        return Err(LedgerError::Invariant(format!(
            "fee pool holds {p} at the start of a block"
        )));
    }
    Ok(())
}

/// Deliver-tx hook: charge `fee` from `payer` into the pool.
pub fn charge(
    s: &mut Overlay,
    params: &Params,
    payer: &Address,
    fee: Amount,
    events: &mut Vec<Event>,
) -> Result<Result<(), TxError>, LedgerError> {
    if fee < params.min_fee {
        return Ok(Err(TxError::FeeTooLow {
            min: params.min_fee,
            got: fee,
        }));
    }
    if let Err(e) = accounts::debit(s, payer, fee)? {
        return Ok(Err(e));
    }
    let p = match pool(s)?.checked_add(fee) {
        Ok(p) => p,
        Err(_) => return Ok(Err(TxError::Overflow)),
    };
    write(s, keys::fees::POOL, &p);
    events.push(Event::FeePaid {
        payer: *payer,
        amount: fee,
    });
    Ok(Ok(()))
}

/// End-block hook: pay the pool to the proposer.
pub fn end_block(
    s: &mut Overlay,
    proposer: &PublicKey,
    events: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    let p = pool(s)?;
    if p.is_zero() {
        return Ok(());
    }
    let to = proposer.address();
    accounts::credit(s, &to, p)?
        .map_err(|e| LedgerError::Invariant(format!("paying fees to the proposer: {e}")))?;
    write(s, keys::fees::POOL, &Amount::ZERO);
    events.push(Event::FeesDistributed {
        proposer: *proposer,
        to,
        amount: p,
    });
    Ok(())
}

/// The `fees` component ([`super::Component`]).
pub struct Fees;

impl super::Component for Fees {
    fn name(&self) -> &'static str {
        "fees"
    }

    fn begin_block(
        &self,
        s: &mut Overlay,
        _b: super::BlockFrame,
        _ev: &mut Vec<Event>,
    ) -> super::Hook {
        begin_block(s)
    }

    /// Fees are charged by the app module before routing (the ante step), so no action is
    /// routed here.
    fn deliver_tx(&self, _s: &mut Overlay, tx: TxCall, _ev: &mut Vec<Event>) -> TxOutcome {
        super::not_routed_here(self.name(), tx.action)
    }

    fn end_block(&self, s: &mut Overlay, b: super::BlockFrame, ev: &mut Vec<Event>) -> super::Hook {
        end_block(s, b.proposer, ev)
    }
}
