//! # opal-consensus: Tendermint BFT for Opal, via the Malachite engine
//!
//! This is the only crate that imports Malachite (`arc-malachitebft-*`, pinned `=0.8.2`).
//! It runs the real engine — libp2p networking, the consensus WAL, value sync — through
//! Malachite's channel API, and translates the engine's `AppMsg`s into calls on the
//! application's [`BlockExecutor`]. It knows nothing about transactions or ledger state:
//! a block is opaque bytes (at most [`MAX_BLOCK_BYTES`]).
//!
//! ## Design
//! * **Values.** Consensus votes on `value_id = blake3(block)` ([`value_id`]). The proposer
//!   streams the block to peers as proposal parts signed by it; receivers reassemble,
//!   check the proposer signature and [`BlockExecutor::verify_block`], and only then tell the
//!   engine about the value (invalid blocks get a nil prevote).
//! * **Crash safety.** Every proposed or received block is fsync'ed into
//!   `home/consensus.redb` (see `store`) *before* the engine hears of it. After a restart the
//!   engine replays its WAL (`home/wal/`), `StartedRound` replays stored blocks, and
//!   `GetValue` returns the block already built for `(height, round)` — a validator never
//!   proposes two different blocks at one height and round. Consensus restarts at
//!   `last_committed() + 1`; [`BlockExecutor::commit`] must be idempotent.
//! * **Commit.** On the engine's `Decided` the block and a [`CommitCertificate`] (an
//!   engine-independent, borsh-encodable form) go to [`BlockExecutor::commit`] in one call;
//!   the reply to the engine (which lets value sync serve the height) is sent only after it
//!   returns. `Finalized` then starts the next height, or restarts the height if the commit
//!   failed.
//! * **Validators.** The set for each height comes from [`BlockExecutor::validator_set`];
//!   a single validator with all the power (devnet) and N validators use the same code path.
//!   A validator's address is its ed25519 public key. The proposer is picked stake-weighted
//!   per height and rotates by one validator per round.
//! * **Untrusted input.** All peer bytes go through bounded borsh decoding (`codec`) and a
//!   bounded reassembly buffer (`streaming`); nothing panics on them.
//!
//! Files: `context` (engine types), `signing` (sign bytes, signer, verifier), `codec`
//! (wire/WAL formats), `streaming` (parts), `store` (undecided blocks), `host` (what a
//! validator does with each request of the core, sans I/O: the one implementation the node and
//! `opal-sim` both drive), `app` (the engine's `AppMsg` loop over `host`), `node` (engine
//! wiring, [`start`], [`ConsensusHandle`]), `cert` (certificates).

// No panics on the deterministic path: a fallible step returns an error (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(clippy::disallowed_types)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod app;
pub mod cert;
pub mod codec;
pub mod context;
pub mod host;
mod node;
pub mod signing;
mod store;
pub mod streaming;
pub mod time;

pub use cert::CertificateError;
pub use node::{start, ConsensusHandle};
pub use store::{StoreError, StoredProposal, UndecidedStore};

/// Block height; the first block is height 1, 0 means nothing committed (genesis).
pub type Height = u64;
/// A 32-byte hash.
pub type Hash32 = [u8; 32];

/// Largest block accepted from a proposer or a peer (4 MiB).
pub const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;

/// A validator: ed25519 public key and voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub public_key: [u8; 32],
    pub power: u64,
}

/// A commit certificate in a stable, engine-independent, borsh-encodable form.
///
/// Each signature is an ed25519 signature by `pubkey` over
/// [`signing::precommit_sign_bytes`]`(chain_id, height, round, value_id, pubkey)`.
/// Check one with [`CommitCertificate::verify`].
#[derive(Clone, Debug, borsh::BorshSerialize, borsh::BorshDeserialize, PartialEq, Eq)]
pub struct CommitCertificate {
    pub height: Height,
    pub round: u32,
    /// `blake3(block bytes)`, see [`value_id`].
    pub value_id: Hash32,
    /// (validator public key, 64-byte signature)
    pub signatures: Vec<([u8; 32], Vec<u8>)>,
}

/// The id consensus votes on for a block: `blake3(block)`.
pub fn value_id(block: &[u8]) -> Hash32 {
    *blake3::hash(block).as_bytes()
}

/// Opal's votes carry no extensions (its `ExtendVote` answers none), so any extension that
/// arrives, on a live precommit or inside a synced certificate, comes from a modified node and
/// is refused. The simulator applies the same rule.
pub fn vote_extension_verdict<X>(
    extension: Option<&X>,
) -> Result<(), malachitebft_core_consensus::VoteExtensionError> {
    match extension {
        None => Ok(()),
        Some(_) => Err(malachitebft_core_consensus::VoteExtensionError::InvalidVoteExtension),
    }
}

/// The ed25519 public key of a 32-byte secret seed.
pub fn public_key_from_seed(seed: &[u8; 32]) -> [u8; 32] {
    signing::OpalSigner::new(*seed, "").address().0
}

/// What the application implements. Called from the consensus loop (one call at a time).
pub trait BlockExecutor: Send + 'static {
    /// Why a block was refused or could not be committed; the engine logs it (a refused
    /// proposal is a nil vote, a failed commit halts the node).
    type Error: std::fmt::Display + Send + 'static;
    /// Height of the last committed block (0 if none). Called at start and restart.
    fn last_committed(&self) -> Height;
    /// The validator set that votes on `height` (from stake; constant in single-validator mode).
    fn validator_set(&self, height: Height) -> Vec<Validator>;
    /// Proposer: build the block for (height, round); at most [`MAX_BLOCK_BYTES`].
    /// It reaps the mempool.
    fn build_block(&mut self, height: Height, round: u32, proposer: [u8; 32]) -> Vec<u8>;
    /// Check a block as a function of committed state only (no local clock): used for blocks
    /// that arrive through value sync, and by [`BlockExecutor::verify_proposal`].
    /// Err(reason) => the block is invalid.
    fn verify_block(&self, height: Height, block: &[u8]) -> Result<(), Self::Error>;
    /// Non-proposer: check a block proposed in `round` before prevoting for it. `pol_round` is
    /// the proposal's proof-of-lock round (a re-proposal of a block that already had a polka).
    /// The place for checks against the local clock ([`time::check_timely`] on fresh
    /// proposals). Err(reason) => vote nil. The default is [`BlockExecutor::verify_block`].
    fn verify_proposal(
        &self,
        height: Height,
        round: u32,
        pol_round: Option<u32>,
        block: &[u8],
    ) -> Result<(), Self::Error> {
        let _ = (round, pol_round);
        self.verify_block(height, block)
    }
    /// Execute and durably commit a decided block with its certificate, in one atomic write.
    /// Idempotent: if `height <= last_committed()` it must return Ok without re-applying.
    fn commit(
        &mut self,
        height: Height,
        block: &[u8],
        certificate: &CommitCertificate,
    ) -> Result<Hash32, Self::Error>;
    /// For value sync: a committed block and its certificate, if still held.
    fn decided(&self, height: Height) -> Option<(Vec<u8>, CommitCertificate)>;
    /// Lowest height still held (for sync), usually 1.
    fn history_min_height(&self) -> Height;
    /// Evidence of misbehaviour observed by this node (borsh of [`codec::Evidence`]).
    /// Store it for a later block; may be a no-op.
    fn report_evidence(&mut self, evidence: Vec<u8>) {
        let _ = evidence;
    }
}

/// Consensus timeouts (Tendermint's `timeout_propose`, `_prevote`, `_precommit`,
/// `_commit`). Each round adds `*_delta` to the first three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub propose: Duration,
    pub propose_delta: Duration,
    pub prevote: Duration,
    pub prevote_delta: Duration,
    pub precommit: Duration,
    pub precommit_delta: Duration,
    /// Minimum time from the start of a height to the start of the next one
    /// (the engine's `target_time`); `Duration::ZERO` means go on at once.
    pub commit: Duration,
}

impl Timeouts {
    /// Short timeouts for a devnet: a single validator commits a block about every 0.5 s.
    pub fn dev() -> Self {
        Self {
            propose: Duration::from_millis(1000),
            propose_delta: Duration::from_millis(250),
            prevote: Duration::from_millis(500),
            prevote_delta: Duration::from_millis(250),
            precommit: Duration::from_millis(500),
            precommit_delta: Duration::from_millis(250),
            commit: Duration::from_millis(500),
        }
    }
}

#[cfg(test)]
mod extension_tests {
    #[test]
    fn vote_extensions_are_refused() {
        assert!(super::vote_extension_verdict::<Vec<u8>>(None).is_ok());
        assert!(super::vote_extension_verdict(Some(&vec![1u8, 2, 3])).is_err());
        assert!(super::vote_extension_verdict(Some(&Vec::<u8>::new())).is_err());
    }
}

impl Default for Timeouts {
    /// Values for a network of machines (CometBFT-like).
    fn default() -> Self {
        Self {
            propose: Duration::from_secs(3),
            propose_delta: Duration::from_millis(500),
            prevote: Duration::from_secs(1),
            prevote_delta: Duration::from_millis(500),
            precommit: Duration::from_secs(1),
            precommit_delta: Duration::from_millis(500),
            commit: Duration::from_secs(1),
        }
    }
}

/// Configuration of one consensus node.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// The engine's WAL (`home/wal/`) and the undecided-block store
    /// (`home/consensus.redb`) live here.
    pub home: PathBuf,
    /// ed25519 secret seed of this validator.
    pub signing_key: [u8; 32],
    /// p2p listen address, e.g. 127.0.0.1:26656.
    pub listen_addr: SocketAddr,
    /// Persistent peers (empty for a single validator).
    pub peers: Vec<SocketAddr>,
    /// Hold connections only to and from `peers` (the engine's `persistent_peers_only`): no
    /// unknown node takes a slot in this node's mesh.
    pub peers_only: bool,
    pub timeouts: Timeouts,
    pub chain_id: String,
}

/// Errors of the consensus crate's public API.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("consensus store: {0}")]
    Store(#[from] StoreError),
    #[error("invalid validator set at height {height}: {reason}")]
    ValidatorSet { height: Height, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("consensus engine: {0}")]
    Engine(String),
    #[error("executor: {0}")]
    Executor(String),
}
