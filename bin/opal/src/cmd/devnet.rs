//! `opal devnet` and `opal node start`: the devnet library (`opal-devnet`) as commands.

use crate::cli::Output;
use crate::keyring::default_devnet_home;
use anyhow::Result;
use clap::Args;
use opal_devnet::DevnetOptions;
use std::net::SocketAddr;
use std::path::PathBuf;

pub fn run(a: DevnetArgs, out: Output) -> Result<()> {
    let opts = DevnetOptions {
        home: a.home.unwrap_or_else(default_devnet_home),
        api_addr: a.api_addr,
        p2p_addr: a.p2p_addr,
        accounts: a.accounts,
        reset: a.reset,
        check_invariants: a.check_invariants,
        no_llm: a.no_llm,
    };
    opal_devnet::run(opts, devnet_output(out))
}

/// `opal testnet`: validators as `opal node start` processes of this same executable.
pub fn run_testnet(a: TestnetArgs, out: Output) -> Result<()> {
    use anyhow::Context;
    let opts = opal_devnet::testnet::TestnetOptions {
        validators: a.validators,
        home: a
            .home
            .unwrap_or_else(|| crate::keyring::home_dir().join(".opal").join("testnet")),
        base_port: a.base_port,
        accounts: a.accounts,
        reset: a.reset,
        exe: std::env::current_exe().context("finding the opal executable")?,
        params: a.params,
        hosts: a.hosts,
        retain_heights: a.retain_heights,
        snapshot_interval: a.snapshot_interval,
        peers_only: a.peers_only,
        init_only: a.init_only,
    };
    opal_devnet::testnet::run(opts, devnet_output(out))
}

fn devnet_output(out: Output) -> opal_devnet::Output {
    match out {
        Output::Text => opal_devnet::Output::Text,
        Output::Json => opal_devnet::Output::Json,
    }
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
    /// Set a genesis parameter of a new testnet, KEY=VALUE as `opal gov params` lists them
    /// (e.g. governance.voting_period_ms=20000); repeatable. Ignored on resume.
    #[arg(long = "param")]
    pub params: Vec<opal_types::gov::ParamChange>,
    /// The address each validator listens on and the others dial, comma-separated, one per
    /// validator (e.g. 10.0.0.1,10.0.0.2,...: separate machines or network namespaces)
    /// [default: 127.0.0.1 for all; on resume, the stored addresses].
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<std::net::IpAddr>,
    /// Write a new testnet's homes (keys, genesis, configs) and exit without starting it; then
    /// run `opal node start --home HOME/nodeI` for each validator on its host.
    #[arg(long)]
    pub init_only: bool,
    /// Prune every validator of a new testnet to the last N heights (at least 16) [default:
    /// archive]. Ignored on resume (each node's config.toml has its own setting).
    #[arg(long)]
    pub retain_heights: Option<u64>,
    /// Every validator of a new testnet offers its state at multiples of this height for new
    /// nodes to join from (state sync) [default: none]. Ignored on resume.
    #[arg(long)]
    pub snapshot_interval: Option<u64>,
    /// Every validator of a new testnet holds p2p connections only to the other validators
    /// (no unknown node takes a slot in their mesh). Ignored on resume.
    #[arg(long)]
    pub peers_only: bool,
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
