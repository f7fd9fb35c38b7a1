//! Accounts and transfers: balances and nonces, and the protocol treasury's balance.

use super::{read, write};
use super::{TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::keys;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::{Address, Amount};
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Account {
    pub balance: Amount,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

pub fn get(s: &Overlay, a: &Address) -> Result<Account, LedgerError> {
    Ok(read(s, &keys::accounts::account(a))?.unwrap_or_default())
}

pub fn set(s: &mut Overlay, a: &Address, acct: &Account) {
    write(s, &keys::accounts::account(a), acct);
}

/// Take `amount` from `from`; typed error if the balance is short.
pub fn debit(
    s: &mut Overlay,
    from: &Address,
    amount: Amount,
) -> Result<Result<(), TxError>, LedgerError> {
    let mut acct = get(s, from)?;
    match acct.balance.checked_sub(amount) {
        Ok(b) => {
            acct.balance = b;
            set(s, from, &acct);
            Ok(Ok(()))
        }
        Err(_) => Ok(Err(TxError::InsufficientFunds {
            address: *from,
            need: amount,
            have: acct.balance,
        })),
    }
}

pub fn credit(
    s: &mut Overlay,
    to: &Address,
    amount: Amount,
) -> Result<Result<(), TxError>, LedgerError> {
    let mut acct = get(s, to)?;
    match acct.balance.checked_add(amount) {
        Ok(b) => {
            acct.balance = b;
            set(s, to, &acct);
            Ok(Ok(()))
        }
        Err(_) => Ok(Err(TxError::Overflow)),
    }
}

/// The protocol treasury's balance (slashes, shares of settled prices, audit premiums).
pub fn treasury(s: &Overlay) -> Result<Amount, LedgerError> {
    Ok(read(s, keys::TREASURY)?.unwrap_or_default())
}

/// Add `a` to the treasury. It holds part of the supply, so it cannot overflow but in a
/// corrupt state, reported as a node fault.
pub fn credit_treasury(s: &mut Overlay, a: Amount) -> Result<(), LedgerError> {
    if a.is_zero() {
        return Ok(());
    }
    let t = treasury(s)?
        .checked_add(a)
        .map_err(|e| LedgerError::Invariant(format!("treasury: {e}")))?;
    write(s, keys::TREASURY, &t);
    Ok(())
}

/// Take `a` from the treasury; `TreasuryShort` if it holds less.
pub fn debit_treasury(s: &mut Overlay, a: Amount) -> Result<Result<(), TxError>, LedgerError> {
    let t = treasury(s)?;
    match t.checked_sub(a) {
        Ok(left) => {
            write(s, keys::TREASURY, &left);
            Ok(Ok(()))
        }
        Err(_) => Ok(Err(TxError::TreasuryShort {
            amount: a,
            treasury: t,
        })),
    }
}

/// Check and bump the signer's nonce (replay protection).
pub fn use_nonce(
    s: &mut Overlay,
    who: &Address,
    nonce: u64,
) -> Result<Result<(), TxError>, LedgerError> {
    let mut acct = get(s, who)?;
    if acct.nonce != nonce {
        return Ok(Err(TxError::BadNonce {
            address: *who,
            expected: acct.nonce,
            got: nonce,
        }));
    }
    acct.nonce = match acct.nonce.checked_add(1) {
        Some(n) => n,
        None => return Ok(Err(TxError::Overflow)),
    };
    set(s, who, &acct);
    Ok(Ok(()))
}

/// `Action::Transfer`.
pub fn transfer(
    s: &mut Overlay,
    from: &Address,
    to: &Address,
    amount: Amount,
    events: &mut Vec<Event>,
) -> Result<Result<(), TxError>, LedgerError> {
    if amount.is_zero() {
        return Ok(Err(TxError::ZeroAmount));
    }
    if let Err(e) = debit(s, from, amount)? {
        return Ok(Err(e));
    }
    if let Err(e) = credit(s, to, amount)? {
        return Ok(Err(e));
    }
    events.push(Event::Transfer {
        from: *from,
        to: *to,
        amount,
    });
    Ok(Ok(()))
}

/// The `accounts` component ([`super::Component`]).
pub struct Accounts;

impl super::Component for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        let (sender, action) = (tx.sender, tx.action);
        use opal_types::Action as A;
        match action {
            A::Transfer { to, amount } => transfer(s, sender, to, *amount, ev),
            other => super::not_routed_here(self.name(), other),
        }
    }

    fn init_chain(&self, s: &mut Overlay, g: &crate::Genesis) -> super::Hook {
        for a in &g.accounts {
            set(
                s,
                &a.address,
                &Account {
                    balance: a.balance,
                    nonce: 0,
                },
            );
        }
        Ok(())
    }
}
