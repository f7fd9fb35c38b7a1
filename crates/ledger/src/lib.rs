//! Opal's ledger: a deterministic state machine over an authenticated key-value state.
//!
//! Design:
//! - Pure: every function here takes an [`opal_state::Overlay`] and data, and returns data. No
//!   clock (block time comes from the header), no randomness, no I/O, no floating point, no
//!   `HashMap` iteration. The node and the consensus engine drive it from outside.
//! - Components ([`components`]) each own their state keys and implement one trait
//!   ([`components::Component`]: init-chain, begin-block, deliver-tx, end-block). The app
//!   module ([`exec::Ledger`]) calls them in one fixed order: begin-block: fees, verification
//!   (the audit draw); then for each transaction the stateless checks, the nonce, the fee and
//!   the action's component ([`exec::owner`]); then end-block: fees, verification (cases past
//!   their deadline), staking, governance (periods that end: tallies and execution).
//! - A transaction runs in a fork of the block's overlay; if any step fails the fork is dropped,
//!   so a rejected transaction changes nothing (not even its nonce), and its typed error is
//!   recorded in the block's results.
//! - Total supply is stored in state and checked by [`invariants::check_supply`]: the sum of all
//!   balances plus module pools equals it. Only the rules may change it: a vetoed proposal's
//!   deposits are burned (fees move value to the block proposer, they do not burn it).

// No panics on the deterministic path: a fallible step returns an error (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::disallowed_types)]

/// Canonical execution lives with the verifiers (`opal_verify::canonical`); re-exported here.
pub use opal_verify::canonical;
pub mod components;
pub mod error;
pub mod events;
pub mod exec;
pub mod genesis;
pub mod invariants;
pub mod keys;
pub mod param_table;
pub mod params;

pub use components::staking::ActiveValidator;
pub use components::{BlockCtx, BlockFrame, Component, TxOutcome};
pub use error::{LedgerError, TxError};
pub use events::Event;
pub use exec::{
    check_tx_stateless, execute_block, signatures_ok, BlockResult, Built, Ledger, TxResult,
};
pub use genesis::{Genesis, GenesisAccount, GenesisValidator};
pub use params::{AllParams, GovParams, InferenceParams, Params, RewardParams, StakingParams};
