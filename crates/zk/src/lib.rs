//! opal-zk: proofs that `output = model(input)` for `opal-quant` models.
//!
//! Design note:
//! - Arithmetic is over Goldilocks (`p3-goldilocks`); every challenge and prover message lives in
//!   its degree-2 extension (`|EF| ≈ 2^128`), so each Schwartz-Zippel / sum-check step errs with
//!   probability `deg / 2^128`. Integers of the quantized model embed into F as signed values;
//!   `opal-quant` validation guarantees `|v| < 2^62 < p/2`, so the embedding is injective.
//! - Fiat-Shamir: one BLAKE3 transcript ([`transcript`]) binds the protocol id, the model id
//!   (hash of the whole canonical model: circuit description and weights), input, output, every
//!   clear witness vector and every prover message, in that order, before any challenge that
//!   depends on them (the circuit is fixed before the first challenge: the 2025 FS-GKR attack
//!   needs a circuit chosen after seeing the hash; here the statement is hashed first).
//! - Linear layers: matrix-vector sum-check ([`dense`], built on [`sumcheck`]).
//! - Weights: [`committed`] (protocol v1c) commits to each Dense layer's weight table once at
//!   registration with the Ligero-style PCS in [`pcs`]; the verifier holds only the stripped
//!   model and the commitments. [`mlp`] (v1) is the same protocol with the verifier holding the
//!   weights.
//! - Limitation, stated plainly: intermediate activations are sent in the clear and Requant
//!   layers are checked directly by the verifier; [`logup`] (range checks by logUp-GKR) exists
//!   but is not wired in. Nothing is hidden: this is a sound proof, not a zero-knowledge one.
//!   See docs/zk.md.
//! - Untrusted proof bytes are decoded against the model: the exact length is computed from the
//!   model before any byte is read; field elements must be canonical; nothing panics.

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
pub use mlp::{proof_len, prove, soundness_bits, verify, MlpProof};
