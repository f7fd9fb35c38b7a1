use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
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
    Devnet(DevnetArgs),
    /// Manage account keys in a keyring directory.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Build, sign and submit transactions.
    #[command(subcommand)]
    Tx(TxCmd),
    /// Read chain state from a node.
    #[command(subcommand)]
    Query(QueryCmd),
    /// Run a node from an existing home directory.
    #[command(subcommand)]
    Node(NodeCmd),
}

#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Home directory of the devnet [default: $OPAL_HOME or ~/.opal/devnet]
    #[arg(long, env = "OPAL_HOME")]
    pub home: Option<PathBuf>,
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub api_addr: SocketAddr,
    /// Address consensus p2p listens on.
    #[arg(long, default_value = "127.0.0.1:8701")]
    pub p2p_addr: SocketAddr,
    /// Number of funded development accounts created on first run.
    #[arg(long, default_value_t = 4)]
    pub accounts: usize,
    /// Delete the devnet's home first and start a fresh chain.
    #[arg(long)]
    pub reset: bool,
    /// Check the ledger invariants (total supply) after every block.
    #[arg(long)]
    pub check_invariants: bool,
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Start the node whose home is given (created by `opal devnet` or by hand).
    Start {
        #[arg(long, env = "OPAL_HOME")]
        home: PathBuf,
        /// Override the API address of the home's config.toml.
        #[arg(long)]
        api_addr: Option<SocketAddr>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct KeyringArg {
    /// Keyring directory [default: $OPAL_KEYRING or ~/.opal/keys]
    #[arg(long, env = "OPAL_KEYRING")]
    pub keyring: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a new key and save it in the keyring.
    New {
        name: String,
        #[command(flatten)]
        keyring: KeyringArg,
    },
    /// List the keys in the keyring.
    List {
        #[command(flatten)]
        keyring: KeyringArg,
    },
    /// Show a key's address and public key (the secret only with --secret).
    Show {
        /// A key name in the keyring, or the path of a key file.
        key: String,
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        keyring: KeyringArg,
    },
}

#[derive(Args, Debug, Clone)]
pub struct NodeArg {
    /// URL of the node's API.
    #[arg(long, env = "OPAL_NODE", default_value = DEFAULT_NODE)]
    pub node: String,
}

#[derive(Subcommand, Debug)]
pub enum TxCmd {
    /// Transfer tokens; waits until the transaction is committed unless --no-wait.
    Transfer {
        /// Sender: a key name (keyring, then the devnet's keys) or the path of a key file.
        #[arg(long)]
        from: String,
        /// Recipient address (opal...).
        #[arg(long)]
        to: String,
        /// Amount in base units.
        #[arg(long)]
        amount: String,
        /// Fee in base units [default: the chain's minimum fee].
        #[arg(long)]
        fee: Option<String>,
        /// Return once the node accepted the transaction, without waiting for its block.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        node: NodeArg,
        #[command(flatten)]
        keyring: KeyringArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum QueryCmd {
    /// Chain id, height, state root, latest block.
    Status {
        #[command(flatten)]
        node: NodeArg,
    },
    /// Balance and nonce of an account; with --prove, fetch and check a Merkle proof of it
    /// against the state root of the committed block at that height.
    Account {
        address: String,
        #[arg(long)]
        prove: bool,
        #[arg(long)]
        height: Option<u64>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A committed block, with its state root.
    Block {
        /// A height, or "latest".
        height: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A transaction's status and result.
    Tx {
        hash: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A raw state value by hex key, with its proof checked against the state root.
    State {
        key: String,
        #[arg(long)]
        height: Option<u64>,
        #[command(flatten)]
        node: NodeArg,
    },
}
