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
    /// Create a node's home (key, config) or run a node from an existing home directory.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Run a local N-validator network on 127.0.0.1, one process per validator.
    ///
    /// Creates HOME/node0..nodeN-1 (keys, one shared genesis, configs that peer with each
    /// other) on first run, starts `opal node start` for each (logs in HOME/nodeI/node.log),
    /// writes HOME/testnet.json (each validator's pid and API URL) and stays in the foreground;
    /// Ctrl-C or SIGTERM stops all validators. Run it again to resume the same chain.
    Testnet(TestnetArgs),
    /// Models: upload files, register versions with price, licence and lineage, inspect them.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Datasets: register (content hash, licence, royalty share) and inspect.
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Run a registered model on an inference node; prints the output and saves the receipt.
    ///
    /// Finds a node serving MODEL (or uses --serve-url), funds your escrow with that node if it
    /// cannot cover the price, signs the request, checks the signed receipt it gets back, and
    /// writes it to --receipt (default: receipt-<id>.json) for `opal verify`.
    Infer(InferArgs),
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

#[derive(Args, Debug)]
pub struct TestnetArgs {
    /// Number of validators (separate processes) [default: 4, or the existing testnet's count].
    #[arg(long)]
    pub validators: Option<usize>,
    /// Home directory of the testnet; holds node0..nodeN-1, keys/ and testnet.json
    /// [default: ~/.opal/testnet].
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// First port: validator i serves its API on BASE+2i and consensus p2p on BASE+2i+1.
    /// 0 picks free ports. On resume, the stored ports are kept unless this is given
    /// [default: 8800 for a new testnet].
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Number of funded development accounts (key files in HOME/keys/) created on first run.
    #[arg(long, default_value_t = 4)]
    pub accounts: usize,
    /// Delete the testnet's home first and start a fresh chain.
    #[arg(long)]
    pub reset: bool,
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
    /// Do not set up the demo LLM (smollm2-135m under /v1), e.g. when the model cannot be
    /// fetched or is not needed.
    #[arg(long)]
    pub no_llm: bool,
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Create a node home: a new validator key (node_key.json) and config.toml, no genesis.
    ///
    /// Prints the validator's public key and address: give them to whoever writes the chain's
    /// genesis, put that genesis.json in the home, then run `opal node start`.
    Init(NodeInitArgs),
    /// Start the node whose home is given (created by `opal devnet`, `opal testnet`, or
    /// `opal node init` plus a genesis.json).
    Start {
        /// Home directory of the node (config.toml, genesis.json, node_key.json, data/).
        #[arg(long, env = "OPAL_HOME")]
        home: PathBuf,
        /// Override the API address of the home's config.toml.
        #[arg(long)]
        api_addr: Option<SocketAddr>,
    },
    /// Start the node whose home is given and serve inference with an account key that has
    /// bonded the inference-node role (declare what it serves with `opal tx declare-service`).
    Serve {
        /// Home directory of the node.
        #[arg(long, env = "OPAL_HOME")]
        home: PathBuf,
        /// The inference node's account key: a key name (keyring, then the home's keys) or the
        /// path of a key file.
        #[arg(long)]
        key: String,
        /// Override the API address of the home's config.toml.
        #[arg(long)]
        api_addr: Option<SocketAddr>,
        #[command(flatten)]
        keyring: KeyringArg,
    },
    /// Watch a node's open verification cases: re-execute revealed results of canonical
    /// (opal_quant) models, post fraud proofs against wrong ones, resolve disputes and the
    /// audits assigned to the --from account. Runs until stopped (or one pass with --once).
    Watch(crate::cmd::watch::WatchArgs),
}

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Upload a model (or any artifact) file to a node's content-addressed store, in resumable
    /// chunks with a progress bar. Prints its BLAKE3 hash.
    Upload {
        file: PathBuf,
        /// Chunk size in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        chunk_size: usize,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Register a model version from its file: hash, size and (for ONNX) input/output schema are
    /// read from the file, which is also uploaded to the node unless --no-upload.
    Register(ModelRegisterArgs),
    /// One model version (NAME@VERSION, or NAME for the newest), with the nodes serving it.
    Show {
        model: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Every registered model version.
    List {
        #[command(flatten)]
        node: NodeArg,
    },
    /// A model's lineage: datasets, ancestors (fine-tuned from), descendants.
    Lineage {
        model: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Quantize an ONNX model into Opal's canonical integer model file (.opalq: the semantics
    /// the `replay` tier re-executes and the `zk` tier proves), calibrating scales on the rows of
    /// a CSV file (header row; every column but the label column is an input feature).
    Quantize {
        /// The float ONNX model.
        #[arg(long)]
        onnx: PathBuf,
        /// CSV of calibration inputs (e.g. the model's registered data set).
        #[arg(long)]
        calibration: PathBuf,
        /// Column to leave out of the features [default: `label` if the header has it].
        #[arg(long)]
        label_column: Option<String>,
        /// Hold out rows i with i % N == N - 1 (not used for calibration; with a label column,
        /// their float and canonical accuracy is reported). The digits demo split is 4.
        #[arg(long)]
        holdout_every: Option<usize>,
        /// Bits of activations and input (2..=16).
        #[arg(long, default_value_t = 8)]
        act_bits: u8,
        /// Bits of weights (2..=16).
        #[arg(long, default_value_t = 8)]
        weight_bits: u8,
        /// Where to write the .opalq model file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Hand a model name (every version, and its future royalties) to another owner.
    Transfer {
        name: String,
        /// The new owner's address.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        opts: TxOpts,
    },
}

#[derive(Args, Debug)]
pub struct ModelRegisterArgs {
    /// The model file (.onnx or .gguf).
    pub file: PathBuf,
    /// Model name: lowercase letters, digits, '.', '_', '-'.
    #[arg(long)]
    pub name: String,
    /// Version [default: 1 for a new name, else the newest + 1].
    #[arg(long)]
    pub version: Option<u32>,
    /// Royalty per inference, in base units (split between owner, parent and datasets).
    #[arg(long)]
    pub price: String,
    /// open, non-commercial, commercial:FEE, or allow:ADDR,ADDR,...
    #[arg(long, default_value = "open")]
    pub licence: String,
    /// The model this one was fine-tuned from (NAME@VERSION).
    #[arg(long)]
    pub parent: Option<String>,
    /// Share of royalties paid to the parent's owner, in basis points.
    #[arg(long, default_value_t = 0)]
    pub parent_share: u32,
    /// A dataset it was trained on, with its royalty share: NAME:BPS (repeatable).
    #[arg(long = "dataset")]
    pub datasets: Vec<String>,
    /// Tiers it may be served under, comma-separated [default: signed; signed,replay for a
    /// canonical .opalq model, the only format the replay tier accepts].
    #[arg(long, value_delimiter = ',')]
    pub tiers: Vec<String>,
    /// Register without uploading the file to the node.
    #[arg(long)]
    pub no_upload: bool,
    #[command(flatten)]
    pub opts: TxOpts,
}

#[derive(Subcommand, Debug)]
pub enum DatasetCmd {
    /// Register a dataset from its file (BLAKE3 hash and size are computed locally).
    Register {
        file: PathBuf,
        #[arg(long)]
        name: String,
        /// Terms for models trained on it: open, non-commercial, allow:ADDR,...
        #[arg(long, default_value = "open")]
        licence: String,
        /// Least royalty share, in basis points, that a model naming it must pay it.
        #[arg(long, default_value_t = 0)]
        min_share: u32,
        /// Also upload the file to the node's artifact store.
        #[arg(long)]
        upload: bool,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// A dataset and the models that name it.
    Show {
        name: String,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Args, Debug)]
pub struct InferArgs {
    /// NAME@VERSION, or NAME for the newest version.
    pub model: String,
    /// Input JSON: a nested array, an object of named arrays (one per model input), a tensor
    /// {"dtype","shape","data"} or a list of them, or {"input_data": [[...]]}.
    #[arg(long)]
    pub input: PathBuf,
    /// Verification tier: signed (paid now, randomly audited), replay (paid after a
    /// challenge window) or zk (the node proves the result; paid once validators verify the
    /// proof). replay and zk need a canonical opal_quant model.
    #[arg(long, default_value = "signed")]
    pub tier: String,
    /// zk tier: how long to wait for the node's proof, with a progress bar, before saving the
    /// receipt without it (seconds).
    #[arg(long, default_value_t = 600)]
    pub proof_timeout: u64,
    /// Escalation: ask for this audit probability (basis points, up to 10000) instead of the
    /// chain's base rate; the extra expected audit cost is charged from your escrow.
    #[arg(long, default_value_t = 0)]
    pub audit_bps: u32,
    /// Escalation: hold the payment for the challenge window so the result can be disputed
    /// (canonical models, decided by re-execution; float ONNX models, decided by the committee).
    #[arg(long)]
    pub dispute: bool,
    /// The caller's key (pays from its escrow with the node).
    #[arg(long)]
    pub from: String,
    /// Inference node API URL [default: the endpoint the serving node declared on chain].
    #[arg(long)]
    pub serve_url: Option<String>,
    /// Most to pay for this inference [default: the quoted price].
    #[arg(long)]
    pub max_price: Option<String>,
    /// Declare commercial use (refused by non-commercial licences).
    #[arg(long)]
    pub commercial: bool,
    /// If the escrow with the node cannot cover the price, fund it with this much.
    #[arg(long, default_value = "1000000")]
    pub deposit: String,
    /// Where to write the receipt [default: receipt-<request id prefix>.json].
    #[arg(long, visible_alias = "receipt-out")]
    pub receipt: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeArg,
    #[command(flatten)]
    pub keyring: KeyringArg,
}

#[derive(Args, Debug)]
pub struct NodeInitArgs {
    /// Home directory to create; must not already hold a node key.
    #[arg(long)]
    pub home: PathBuf,
    /// A name for this node, shown in logs and in the genesis' validator list.
    #[arg(long)]
    pub moniker: String,
    /// Address consensus p2p listens on.
    #[arg(long, default_value = "0.0.0.0:26656")]
    pub p2p_addr: SocketAddr,
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub api_addr: SocketAddr,
    /// Persistent peers' p2p addresses (host:port), comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<SocketAddr>,
    /// Use short consensus timeouts (for local test networks).
    #[arg(long)]
    pub dev_timeouts: bool,
    /// Check the ledger invariants (total supply) after every block.
    #[arg(long)]
    pub check_invariants: bool,
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

/// Flags every transaction command shares.
#[derive(Args, Debug, Clone)]
pub struct TxOpts {
    /// Signer: a key name (keyring, then the devnet's keys) or the path of a key file.
    #[arg(long)]
    pub from: String,
    /// Fee in base units [default: the chain's minimum fee].
    #[arg(long)]
    pub fee: Option<String>,
    /// Return once the node accepted the transaction, without waiting for its block.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub node: NodeArg,
    #[command(flatten)]
    pub keyring: KeyringArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    InferenceNode,
    DataNode,
}

#[derive(Subcommand, Debug)]
pub enum TxCmd {
    /// Transfer tokens; waits until the transaction is committed unless --no-wait.
    Transfer {
        /// Recipient address (opal...).
        #[arg(long)]
        to: String,
        /// Amount in base units.
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Become a validator operated by the signer, bonding AMOUNT as self-delegation.
    /// It joins the validator set at the next epoch boundary if its stake is high enough.
    CreateValidator {
        /// The validator's consensus public key (hex), or a node key file (node_key.json).
        #[arg(long)]
        consensus_key: String,
        /// The validator's VRF key (hex, as `opal node init` prints it); not needed when
        /// --consensus-key is a node key file.
        #[arg(long)]
        vrf_key: Option<String>,
        #[arg(long)]
        name: String,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Delegate AMOUNT to the validator operated by VALIDATOR (an address).
    Delegate {
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Start unbonding AMOUNT of a delegation; paid back after the unbonding time, slashable until then.
    Undelegate {
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Bond stake for a non-validator role.
    Bond {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Start unbonding stake from a role.
    Unbond {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Bring the signer's jailed validator back after its jail time.
    Unjail {
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Put AMOUNT in escrow with an inference node (pays for your requests to it).
    EscrowFund {
        /// The inference node's address.
        #[arg(long)]
        node_address: String,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Start closing your escrow with a node; withdraw the rest after the unlock delay.
    EscrowClose {
        #[arg(long)]
        node_address: String,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Withdraw what is left of a closed escrow once it has unlocked.
    EscrowWithdraw {
        #[arg(long)]
        node_address: String,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Declare the models this inference node serves (replaces an earlier declaration).
    /// Needs the inference-node role bond (`opal tx bond --role inference-node`).
    DeclareService {
        /// The URL callers reach this node's API at.
        #[arg(long)]
        endpoint: String,
        /// MODEL@VERSION:TIER[+TIER...]:FEE, repeatable (e.g. digits@1:signed:50).
        #[arg(long = "offer", required = true)]
        offers: Vec<String>,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Report a validator that signed two conflicting votes (a JSON file with fields `a` and `b`,
    /// each a signed vote: vote_type, height, round, value, validator, signature).
    Evidence {
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        opts: TxOpts,
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
    /// All validators: stake, jail status, and the active consensus set with voting power.
    Validators {
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
