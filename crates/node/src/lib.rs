//! The Opal node: wires the ledger, the authenticated store, the mempool and the HTTP API to the
//! consensus engine.
//!
//! Design:
//! - [`app::OpalApp`] implements the engine-agnostic [`opal_consensus::BlockExecutor`]: it builds
//!   blocks from the mempool, verifies proposed blocks, and on a decision executes the block with
//!   [`opal_ledger::execute_block`] and commits state, block, results, certificate and the
//!   transaction index in **one** durable store transaction (version = height). A crash at any
//!   instant leaves the store at the old or the new height; commit is idempotent.
//! - Readers (the API) use store snapshots and never block block execution.
//! - [`mempool::Mempool`] admits a transaction only after decoding it with a bound, checking
//!   size, chain id, fee, signature, nonce (allowing consecutive pending nonces per sender) and
//!   balance against the pending spend of that sender.
//! - [`home::Home`] is the on-disk layout of a node's directory (keys, genesis, config, data).
//! - [`worker`] runs the inference-worker role (`opal-worker`) over this node's chain.
//! - [`run::start_node`] starts everything and returns a handle that stops it cleanly.

pub mod ahead;
pub mod api;
pub mod app;
pub mod clock;
pub mod error;
pub mod gossip;
pub mod home;
pub mod local;
pub mod mempool;
pub mod metrics;
pub mod penalty;
pub mod prune;
pub mod records;
pub mod run;
pub mod sigs;
pub mod statesync;
pub mod worker;

pub use error::NodeError;
pub use home::Home;
pub use run::{start_node, NodeHandle, NodeOptions};
