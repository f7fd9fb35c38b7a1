//! # opal-verify: checks that trust nobody
//!
//! Opal's promise is that a caller trusts neither the node that served a request nor the node
//! it asks afterwards. This crate holds the verifiers that keep that promise and that every
//! tool calls (today `opal verify`; later the watcher, the SDK and the browser explorer).
//!
//! Design: pure functions over bytes and Opal's types. No clock (the caller passes `now`), no
//! I/O (the caller passes a `fetch` closure), no async runtime, no HTTP, no consensus engine.
//!
//! * [`light`]: light-client verification. A block is accepted only with a commit certificate
//!   signed by more than two thirds of the voting power of the validator set at its height,
//!   that set proven (Merkle proof) against the state root in the block's own header, and
//!   trust carried forward from a start the user chose (the genesis file or a checkpoint) by
//!   Tendermint's skipping rule (more than one third of the trusted set signed) within a
//!   trusting period. A settlement proof is then checked against a certified state root.
//!
//! Not here yet (issue 14): the per-tier receipt verifiers still live in `bin/opal`.

pub mod light;

pub use light::{
    Certificate, LightBlock, LightError, Options, Portable, SettlementProof, TrustedState,
};
