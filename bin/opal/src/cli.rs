use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub const DEFAULT_NODE: &str = "http://127.0.0.1:8700";

#[derive(Parser, Debug)]
#[command(
    name = "opal",
    version,
    about = "Opal: a ledger for verifiable AI",
    long_about = "Opal: a ledger for verifiable AI.\n\nStart a local one-validator network with `opal devnet`, then send transfers with `opal tx transfer` and inspect the chain with `opal query`."
)]
pub struct Cli {
    /// Output format: human-readable text, or JSON for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a local one-validator network: creates its home (keys, genesis with funded
    /// development accounts) on first run, serves the API, resumes from its home on later runs.
    Devnet(crate::cmd::devnet::DevnetArgs),
    /// Manage account keys in a keyring directory.
    #[command(subcommand)]
    Keys(crate::cmd::keys::KeysCmd),
    /// Build, sign and submit transactions.
    #[command(subcommand)]
    Tx(crate::cmd::tx::TxCmd),
    /// Read chain state from a node.
    #[command(subcommand)]
    Query(crate::cmd::query::QueryCmd),
    /// Governance: propose parameter changes, treasury spends, enclave allowlist changes and
    /// upgrades; deposit; vote with your bonded stake; read proposals and the parameters in
    /// force.
    #[command(subcommand)]
    Gov(crate::cmd::gov::GovCmd),
    /// Revenue shares: split a model's or dataset's royalty stream into transferable shares,
    /// transfer them, claim what they earned, read streams and holdings.
    #[command(subcommand)]
    Shares(crate::cmd::shares::SharesCmd),
    /// The exchange: limit orders for revenue shares against the native token; books, trades.
    #[command(subcommand)]
    Market(crate::cmd::market::MarketCmd),
    /// Create a node's home (key, config) or run a node from an existing home directory.
    #[command(subcommand)]
    Node(crate::cmd::node::NodeCmd),
    /// Run a local N-validator network on 127.0.0.1, one process per validator.
    ///
    /// Creates HOME/node0..nodeN-1 (keys, one shared genesis, configs that peer with each
    /// other) on first run, starts `opal node start` for each (logs in HOME/nodeI/node.log),
    /// writes HOME/testnet.json (each validator's pid and API URL) and stays in the foreground;
    /// Ctrl-C or SIGTERM stops all validators. Run it again to resume the same chain.
    Testnet(crate::cmd::devnet::TestnetArgs),
    /// Models: upload files, register versions with price, licence and lineage, inspect them.
    #[command(subcommand)]
    Model(crate::cmd::model::ModelCmd),
    /// Datasets: register (content hash, licence, royalty share) and inspect.
    #[command(subcommand)]
    Dataset(crate::cmd::model::DatasetCmd),
    /// Run a registered model on an inference node; prints the output and saves the receipt.
    ///
    /// Finds a node serving MODEL (or uses --serve-url), funds your escrow with that node if it
    /// cannot cover the price, signs the request, checks the signed receipt it gets back, and
    /// writes it to --receipt (default: receipt-<id>.json) for `opal verify`.
    Infer(crate::cmd::infer::InferArgs),
    /// Check a receipt offline (signatures, hashes); with --node, also check that it was settled
    /// on chain, with a Merkle proof against a committed state root.
    Verify(crate::cmd::verify::VerifyArgs),
    /// LLMs behind a node's OpenAI-compatible API (`/v1`): `opal llm key` mints an API key.
    #[command(subcommand)]
    Llm(crate::cmd::llm::LlmCmd),
    /// Zero-knowledge proofs of inference: `opal zk prove` / `opal zk verify`.
    #[command(subcommand)]
    Zk(opal_zk::cli::ZkCmd),
}

#[derive(Args, Debug, Clone)]
pub struct KeyringArg {
    /// Keyring directory [default: $OPAL_KEYRING or ~/.opal/keys]
    #[arg(long, env = "OPAL_KEYRING")]
    pub keyring: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct NodeArg {
    /// URL of the node's API.
    #[arg(long, env = "OPAL_NODE", default_value = DEFAULT_NODE)]
    pub node: String,
}

/// Flags every transaction command shares.
#[derive(Args, Debug, Clone)]
pub struct TxOpts {
    /// Signer: a key name (keyring, then the devnet's keys) or the path of a key file.
    #[arg(long)]
    pub from: String,
    /// Fee in base units [default: the chain's minimum fee].
    #[arg(long)]
    pub fee: Option<opal_types::Amount>,
    /// Return once the node accepted the transaction, without waiting for its block.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub node: NodeArg,
    #[command(flatten)]
    pub keyring: KeyringArg,
}
