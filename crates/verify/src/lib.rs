//! # opal-verify: checks that trust nobody
//!
//! Opal's promise is that a caller trusts neither the node that served a request nor the node
//! it asks afterwards. This crate holds the verifiers that keep that promise, and every tool
//! calls them: `opal verify`, `opal node watch`, the ledger's settlement of disputes, audits
//! and proofs, and later the SDK and the browser explorer.
//!
//! Design: pure functions over bytes and Opal's types, each returning a typed error with a
//! stable `code()` ([`report::Failure`]). No clock (the caller passes `now`), no I/O (the
//! caller passes bytes, or a `fetch` closure), no async runtime, no HTTP, no consensus engine.
//!
//! * [`file`]: the receipt file (`opal infer`'s, or an OpenAI reply's `opal_receipt`) and the
//!   rule that its readable fields say what its signed envelope says.
//! * One verifier per tier:
//!   - [`signed`]: signatures, the price bound, and that shown data (outputs, inputs, an
//!     LLM's tokens, billed units) is what was signed. Every tier starts here.
//!   - [`replay`]: canonical re-execution ([`canonical`]) of a quantized model.
//!   - [`activations`] (feature `activations`): an LLM's activation commitment recomputed
//!     from the model with the chain's parameters.
//!   - [`zk`]: the attached proof under a key made from the receipt's model file.
//!   - [`tee`]: the slot enclave attestation (issue 17) will fill; fails today.
//! * [`float`]: the committee's comparison of a float (ONNX) model's outputs within a tolerance.
//! * [`settlement`]: the ledger's record that a receipt was paid, once, for what it says.
//! * [`light`]: light-client verification. A block is accepted only with a commit certificate
//!   signed by more than two thirds of the voting power of the validator set at its height,
//!   that set proven (Merkle proof) against the state root in the block's own header, and
//!   trust carried forward from a start the user chose (the genesis file or a checkpoint) by
//!   Tendermint's skipping rule (more than one third of the trusted set signed) within a
//!   trusting period. A settlement proof is then checked against a certified state root.
//! * [`report`]: the typed list of checks a tool ran over one receipt.

// No panics on the deterministic path: a fallible step returns an error (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::disallowed_types)]

#[cfg(feature = "activations")]
pub mod activations;
pub mod canonical;
pub mod file;
pub mod float;
pub mod light;
pub mod replay;
pub mod report;
pub mod settlement;
pub mod signed;
pub mod tee;
pub mod zk;

pub use file::ReceiptFile;
pub use light::{
    Certificate, LightBlock, LightError, Options, Portable, SettlementProof, TrustedState,
};
pub use report::{Check, Failure, Report};

impl Failure for LightError {
    fn code(&self) -> &'static str {
        LightError::code(self)
    }
}
