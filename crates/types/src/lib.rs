//! Opal's core types and their one canonical encoding.
//!
//! Design: everything that is signed or hashed is encoded with borsh (deterministic, no maps with
//! unspecified order) and hashed with BLAKE3 in *derive-key* mode, one context string per kind of
//! object ([`hash::Domain`]), so a signature or hash over one kind can never be replayed as another.
//! Untrusted bytes are decoded only through [`encoding::decode`], which checks a size bound first,
//! rejects trailing bytes and non-canonical encodings, and never panics.
//!
//! Signatures are ed25519 with the ZIP-215 validation rules (`ed25519-consensus`), the same rule set
//! the consensus engine uses, so that every node agrees on edge-case signatures.
//!
//! This crate has no I/O, no clock and no randomness except [`crypto::SecretKey::generate`].

// No panics on the deterministic path: a fallible step returns an error (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::disallowed_types)]

pub mod amount;
pub mod block;
pub mod crypto;
pub mod encoding;
pub mod evidence;
pub mod gov;
pub mod hash;
pub mod llm;
pub mod market;
pub mod merkle;
pub mod receipt;
pub mod registry;
pub mod shares;
pub mod tx;
pub mod validator;
pub mod vrf;

pub use amount::{Amount, AmountError};
pub use block::{Block, BlockHeader};
pub use crypto::{Address, PublicKey, SecretKey, Signature};
pub use encoding::{decode, encode, DecodeError};
pub use evidence::{DoubleSignEvidence, VoteEvidence};
pub use hash::{Domain, Hash};
pub use receipt::{Escalation, Receipt, ReceiptEnvelope, SignedGrant, SignedRequest, SpendGrant};
pub use registry::{ModelRef, Tier};
pub use tx::{Action, Role, Transaction, TxBody};
