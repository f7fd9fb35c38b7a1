//! Opal's test kit: what the tests of several crates share, so that no suite grows its own copy.
//!
//! - [`chain`]: [`TestChain`], blocks executed by the real ledger over a real store with the
//!   supply invariant checked after each one, and the test keys and genesis.
//! - [`fixtures`]: the demo model file, its registration, the offer of a model by a bonded node
//!   with a funded escrow, a committee genesis.
//! - [`seed`]: the one seed every randomized test derives from (`SEED`), printed so a failure
//!   can be replayed.
//! - [`process`] (feature `process`): real `opal devnet` and `opal testnet` processes in
//!   temporary homes, driven over HTTP and the CLI, killed and restarted.
//!
//! A dev-dependency only: nothing shipped links it.

pub mod chain;
pub mod fixtures;
#[cfg(feature = "process")]
pub mod process;
pub mod seed;

pub use chain::{caller, genesis, key, node, owner, TestChain};
pub use fixtures::{
    committee_genesis, demo_model_file, demo_request, demo_spec, digit_tensor, offer_demo_model,
    offer_model, receipt, replay_cost_of, Call,
};
