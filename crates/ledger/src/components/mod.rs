//! Ledger components, one per concern, each owning its state keys (built in [`crate::keys`])
//! and each a [`Component`]: init-chain, begin-block, deliver-tx, end-block. The fixed call
//! order and the action router are in one app module, [`crate::exec`] ([`crate::exec::Ledger`]).
//! Components import only those below them, with no cycles (docs/layout.md): accounts <
//! staking < registry (with zk_keys) < shares (< market) < payout < verification < inference (settlement) < zk;
//! liveness (downtime) sits above staking; reward_pool sits on accounts, below staking (which settles delegations' rewards) and
//! settlement (which awards performance points); rewards (emission) sits above staking;
//! governance reads staking and writes every parameter set.
//! What they share is here: [`Component`], [`BlockCtx`] and [`BlockFrame`], [`TxOutcome`] and
//! `tx_try!`, [`read`] / [`write`], and [`required`] for values genesis always writes.

/// Stop a transaction handler with the transaction's own error (`Ok(Err(e))`): the
/// transaction fails (its fork is dropped: no fee, no nonce), the block goes on. Node faults use `?` instead.
macro_rules! tx_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

pub mod accounts;
pub mod fees;
pub mod governance;
pub mod inference;
pub mod liveness;
pub mod market;
pub mod payout;
pub mod registry;
pub mod reward_pool;
pub mod rewards;
pub mod shares;
pub mod staking;
pub mod verification;
pub mod zk;
pub mod zk_keys;

use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::genesis::Genesis;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::{Action, Address, Hash, PublicKey};

/// Read and decode a typed value. State is written only by the ledger, so a value that fails to
/// decode is corruption (a node fault), reported as such rather than panicking.
pub(crate) fn read<T: BorshDeserialize>(s: &Overlay, key: &[u8]) -> Result<Option<T>, LedgerError> {
    match s.get(key)? {
        None => Ok(None),
        Some(bytes) => T::try_from_slice(&bytes)
            .map(Some)
            .map_err(|e| LedgerError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: e.to_string(),
            }),
    }
}

/// Decode every value under `prefix`, in key order (corruption reported, never a panic).
pub(crate) fn read_all<T: BorshDeserialize>(
    s: &Overlay,
    prefix: &[u8],
) -> Result<Vec<T>, LedgerError> {
    s.prefix(prefix)?
        .into_iter()
        .map(|(key, v)| {
            T::try_from_slice(&v).map_err(|e| LedgerError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Read a value genesis always writes (the parameters): missing is corruption, never a
/// default, so no node runs with values the chain did not agree on. The one rule for a
/// missing parameter.
pub(crate) fn required<T: BorshDeserialize>(
    s: &Overlay,
    key: &[u8],
    what: &str,
) -> Result<T, LedgerError> {
    read(s, key)?.ok_or_else(|| LedgerError::Corrupt {
        key: what.into(),
        reason: "missing (genesis not applied?)".into(),
    })
}

/// What a transaction handler returns: `Err` is a node fault (corrupt state, a broken
/// invariant) that stops the block; `Ok(Err)` is the transaction's own failure.
pub type TxOutcome = Result<Result<(), TxError>, LedgerError>;

/// Where a block is being executed: what components need besides state.
#[derive(Debug, Clone)]
pub struct BlockCtx {
    pub chain_id: String,
    pub height: u64,
    pub time_ms: u64,
}

pub(crate) fn write<T: BorshSerialize>(s: &mut Overlay, key: &[u8], v: &T) {
    s.put(key.to_vec(), opal_types::encode(v));
}

/// What begin-block and end-block see besides the [`BlockCtx`]: the block's proposer, its
/// verified audit beacon, and who signed the previous block (its last commit, verified once
/// per block by [`liveness::last_signers`]; `None` at height 1 or where a block carries no
/// commit).
#[derive(Debug, Clone, Copy)]
pub struct BlockFrame<'a> {
    pub ctx: &'a BlockCtx,
    pub proposer: &'a PublicKey,
    pub beacon: &'a Hash,
    pub last_signers: Option<&'a LastSigners>,
}

/// The previous block's verified signers: the set that voted on it, and which of its members
/// signed.
#[derive(Debug, Clone)]
pub struct LastSigners {
    pub set: Vec<opal_types::validator::ActiveValidator>,
    pub signed: std::collections::BTreeSet<PublicKey>,
}

impl LastSigners {
    /// The members of the set that signed, with their power then.
    pub fn signing_members(&self) -> Vec<opal_types::validator::ActiveValidator> {
        self.set
            .iter()
            .filter(|v| self.signed.contains(&v.public_key))
            .cloned()
            .collect()
    }
}

/// What a component's block hook returns: `Err` is a node fault that stops the block.
pub type Hook = Result<(), LedgerError>;

/// One transaction's action as the component it is routed to sees it: the block, the sender
/// (whose nonce and fee were already taken) and the action.
#[derive(Debug, Clone, Copy)]
pub struct TxCall<'a> {
    pub ctx: &'a BlockCtx,
    pub sender: &'a Address,
    pub action: &'a Action,
}

/// One ledger component: a concern that owns its state keys and the actions routed to it.
///
/// The app module ([`crate::exec::Ledger`]) calls every component's hooks in one fixed order
/// (the order of [`crate::exec::Ledger::components`]) and routes each action to exactly one
/// component ([`crate::exec::owner`], an exhaustive match). A hook that returns `Err` is a node
/// fault and stops the block; [`Component::deliver_tx`] returns the transaction's own failure
/// as `Ok(Err(_))`, and the transaction's fork is then dropped.
///
/// Adding a component: a module here with its keys in [`crate::keys`], an impl of this trait,
/// a place in [`crate::exec::Ledger::new`] and its actions' arms in [`crate::exec::owner`].
pub trait Component: Send + Sync {
    /// A short name, used in errors and by [`crate::exec::owner`].
    fn name(&self) -> &'static str;

    /// Write this component's part of the genesis state (after [`Genesis::validate`]).
    fn init_chain(&self, _s: &mut Overlay, _genesis: &Genesis) -> Hook {
        Ok(())
    }

    /// Before the block's transactions.
    fn begin_block(&self, _s: &mut Overlay, _b: BlockFrame, _events: &mut Vec<Event>) -> Hook {
        Ok(())
    }

    /// Apply one action routed to this component, after the transaction's nonce and fee were
    /// taken. Only actions [`crate::exec::owner`] routes here arrive.
    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, events: &mut Vec<Event>) -> TxOutcome;

    /// After the block's transactions.
    fn end_block(&self, _s: &mut Overlay, _b: BlockFrame, _events: &mut Vec<Event>) -> Hook {
        Ok(())
    }
}

/// The refusal of a component handed an action it does not own: a routing bug in
/// [`crate::exec::owner`], reported as a node fault rather than applied anywhere.
pub(crate) fn not_routed_here(component: &str, action: &Action) -> TxOutcome {
    Err(LedgerError::Invariant(format!(
        "action {} was routed to component {component}, which does not handle it",
        action.name()
    )))
}
