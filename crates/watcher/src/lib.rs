//! The watcher role: the party that keeps inference nodes honest by checking their revealed
//! results and acting on the chain (docs/verification.md, docs/architecture.md §4).
//!
//! Design: a [`Watcher`] is a loop over the node's open cases (`GET /api/cases`), driven by one
//! account's key through the typed [`opal_client::Client`]. Canonical (`opal_quant`) results are
//! re-executed with the ledger's own re-execution (`opal_verify::replay`), so a fraud proof the
//! watcher posts is decided by the same bytes in the block; float ONNX and LLM results are
//! re-checked off chain ([`checks`], `opal_verify::activations`) and voted on. A failure of the
//! watcher itself ([`WatchError::Verifier`]) never becomes a vote. What the watcher does is
//! reported as it happens through a [`Report`] callback: the binary prints it, tests collect it.
//!
//! The same checks serve one holder of one receipt: [`receipt::check_receipt`] runs every check
//! that applies to a receipt file (what `opal verify` prints), with settlement proven as a
//! light client ([`light`]) from a trust start the holder chose.

pub mod checks;
pub mod light;
pub mod receipt;
mod watch;

pub use watch::Watcher;

use opal_types::{Amount, ModelRef};
use std::collections::HashSet;
use std::path::PathBuf;

/// Which audits the watcher resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditScope {
    /// Audits whose assigned auditors include the watcher's account (a validator's duty).
    Mine,
    /// Every open audit.
    All,
    /// None.
    None,
}

/// What a watcher watches and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// Only these models; `None`: every model.
    pub models: Option<HashSet<ModelRef>>,
    pub audits: AuditScope,
    /// Where downloaded GGUF models are kept between runs.
    pub model_cache: PathBuf,
    /// The fee of each transaction; `None`: the chain's minimum.
    pub fee: Option<Amount>,
}

impl Config {
    /// The default model cache: `~/.cache/opal/watch`.
    pub fn default_model_cache() -> PathBuf {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(".cache/opal/watch")
    }
}

/// One thing the watcher did or saw: as JSON (`event` names it) and as a line for people.
#[derive(Clone, Debug)]
pub struct Report {
    pub json: serde_json::Value,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Client(#[from] opal_client::ClientError),
    /// The node served something that does not fit the chain (a file with the wrong hash, a
    /// malformed case).
    #[error("{0}")]
    Node(String),
    /// The watcher's own failure (its backend, its disk): says nothing about the node.
    #[error("the verifier itself failed: {0}")]
    Verifier(String),
}

/// Why checking a receipt could not be carried out (a failed check is not an error: it is a
/// finding in the report).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The options given do not fit together, or a file given is not what it should be.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] opal_client::ClientError),
    /// The node sent bytes that cannot be read.
    #[error("{0}")]
    Malformed(String),
    /// A state proof the node sent does not verify.
    #[error("PROOF DOES NOT VERIFY {0}")]
    ProofInvalid(String),
    /// The checker's own failure (its scratch store).
    #[error("{0}")]
    Local(String),
}
