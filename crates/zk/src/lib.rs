//! opal-zk: proofs that `output = model(input)` for `opal-quant` models.
//!
//! Design note:
//! - Arithmetic is over Goldilocks (`p3-goldilocks`); every challenge and prover message lives in
//!   its degree-2 extension (`|EF| ≈ 2^128`), so each Schwartz-Zippel / sum-check step errs with
//!   probability `deg / 2^128`. Integers of the quantized model embed into F as signed values;
//!   `opal-quant` validation guarantees `|v| < 2^62 < p/2`, so the embedding is injective.
//! - Fiat-Shamir: one BLAKE3 transcript ([`transcript`]) binds the protocol id, the model (v2:
//!   the registered-model id = structure and weight commitments; v1: the whole canonical model),
//!   input, output, the witness commitment (v2) or clear witness vectors (v1/v1c) and every
//!   prover message, in that order, before any challenge that depends on them (the circuit is fixed before the first challenge: the 2025 FS-GKR attack
//!   needs a circuit chosen after seeing the hash; here the statement is hashed first).
//! - Linear layers: matrix-vector sum-check ([`dense`], built on [`sumcheck`]); convolutions
//!   by im2col ([`conv`]).
//! - [`v2`] (what `opal zk` runs, through the [`proof`] facade and `cli`, behind the `cli` feature): weights committed
//!   once at registration (with a proof that they are in range), every intermediate value
//!   committed per proof as 8-bit limbs (Ligero, [`pcs`]); requantization, ReLU and saturation
//!   proven by logUp range checks ([`logup`]), a rounding identity at random points and a
//!   product sum-check; a GKR-style chain from the public output to the public input; one
//!   batched opening of the witness. Not zero-knowledge (docs/zk.md, "What is hidden").
//! - [`mlp`] (v1, verifier holds the weights) and [`committed`] (v1c, committed weights) are
//!   the earlier protocols that send intermediate activations in the clear; kept for tests and
//!   fixtures.
//! - Proving (the `api::Setup` and `api::prove`, the registration proof, every `prove` of the
//!   protocol modules) is behind the default `prover` feature. The ledger builds without it: it
//!   verifies proofs and checks a published key against the model file (`api::check_key_for_file`,
//!   commitments only), and never proves.
//! - Untrusted proof bytes are decoded against the model: the exact length is computed from the
//!   model before any byte is read; field elements must be canonical; nothing panics.

pub mod api;
#[cfg(feature = "cli")]
pub mod cli;
pub mod committed;
pub mod conv;
pub mod dense;
pub mod error;
pub mod field;
pub mod logup;
pub mod mle;
pub mod mlp;
pub mod pcs;
pub mod proof;
pub mod sumcheck;
pub mod transcript;
pub mod v2;

pub use error::ZkError;
#[cfg(feature = "prover")]
pub use mlp::prove;
pub use mlp::{proof_len, soundness_bits, verify, MlpProof};
