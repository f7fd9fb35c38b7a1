//! `opal node init` (a validator key and a config, for an operator joining a network) and
//! `opal node start` (run any complete home).

use crate::cli::{KeyringArg, Output};
use crate::output;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use opal_node::home::KeyFile;
use opal_node::Home;
use opal_types::SecretKey;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;

pub fn run(cmd: NodeCmd, out: Output) -> Result<()> {
    match cmd {
        NodeCmd::Init(a) => init(a, out),
        NodeCmd::Start { home, api_addr } => start(home, api_addr, None),
        NodeCmd::Watch(a) => crate::cmd::watch::run(a, out),
        NodeCmd::Serve {
            home,
            key,
            api_addr,
            keyring,
        } => {
            let k = crate::keyring::resolve(&key, &keyring.keyring)
                .or_else(|_| {
                    let p = home.join("keys").join(format!("{key}.json"));
                    KeyFile::read(&p).map_err(anyhow::Error::from)
                })
                .with_context(|| format!("--key {key}"))?
                .secret()?;
            start(home, api_addr, Some(k))
        }
    }
}

fn start(
    home_dir: PathBuf,
    api_addr: Option<SocketAddr>,
    inference_key: Option<SecretKey>,
) -> Result<()> {
    opal_devnet::home::check_startable(&Home::new(&home_dir))?;
    opal_devnet::start_existing(home_dir, api_addr, inference_key)
}

fn init(a: NodeInitArgs, out: Output) -> Result<()> {
    let home = Home::new(&a.home);
    let key = opal_devnet::home::init_operator(
        &home,
        &opal_devnet::home::OperatorNode {
            moniker: a.moniker.clone(),
            api_addr: a.api_addr,
            p2p_addr: a.p2p_addr,
            peers: a.peers.clone(),
            dev_timeouts: a.dev_timeouts,
            check_invariants: a.check_invariants,
            gossip_peers: a.gossip_peers.clone(),
            retain_heights: a.retain_heights,
            snapshot_interval: a.snapshot_interval,
            state_sync_peers: a.state_sync.clone(),
            peers_only: a.peers_only,
        },
    )?;
    let v = json!({
        "home": home.root,
        "moniker": a.moniker,
        "public_key": key.public_key().to_hex(),
        "vrf_key": hex::encode(key.vrf_public_key().0),
        "address": key.address().to_string(),
        "node_key": home.node_key_path(),
        "config": home.config_path(),
        "p2p_addr": a.p2p_addr.to_string(),
        "api_addr": a.api_addr.to_string(),
        "peers": a.peers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
    });
    output::print(out, &v, || {
        format!(
            "Created node home {}\n  moniker     {}\n  public key  {}\n  VRF key     {}\n  address     {}\n  p2p         {}\n  API         {}\n\
             Next: list this public key as a validator in the chain's genesis.json (name, public_key, vrf_key, stake),\n\
             copy that genesis.json to {}, set `peers` in {} and run\n  opal node start --home {}",
            home.root.display(),
            a.moniker,
            key.public_key().to_hex(),
            hex::encode(key.vrf_public_key().0),
            key.address(),
            a.p2p_addr,
            a.api_addr,
            home.genesis_path().display(),
            home.config_path().display(),
            home.root.display()
        )
    });
    Ok(())
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
    /// API URLs (http://host:port) of the nodes to gossip admitted transactions to: the other
    /// validators, so a transaction sent to this node is proposed by whoever proposes next.
    #[arg(long, value_delimiter = ',')]
    pub gossip_peers: Vec<String>,
    /// Use short consensus timeouts (for local test networks).
    #[arg(long)]
    pub dev_timeouts: bool,
    /// Check the ledger invariants (total supply) after every block.
    #[arg(long)]
    pub check_invariants: bool,
    /// Keep the state, blocks and transaction index of only the last N heights (at least 16);
    /// older heights answer 410 `pruned` [default: archive, keep everything].
    #[arg(long)]
    pub retain_heights: Option<u64>,
    /// Offer the state at every multiple of this height for other nodes to join from (state
    /// sync) [default: none].
    #[arg(long)]
    pub snapshot_interval: Option<u64>,
    /// Join by state sync from these nodes' API URLs (comma-separated) on first start: verify
    /// a recent state root from the genesis validators' signatures and fetch the state in
    /// checked chunks, instead of replaying every block.
    #[arg(long, value_delimiter = ',')]
    pub state_sync: Vec<String>,
    /// Hold p2p connections only to and from --peers (list the other validators and the full
    /// nodes this one serves): no unknown node takes a slot in its mesh.
    #[arg(long)]
    pub peers_only: bool,
}
