//! `opal devnet` and `opal node start`: the devnet library (`opal-devnet`) as commands.

use crate::cli::{DevnetArgs, Output};
use crate::keyring::default_devnet_home;
use anyhow::Result;
use opal_devnet::DevnetOptions;

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
pub fn run_testnet(a: crate::cli::TestnetArgs, out: Output) -> Result<()> {
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
    };
    opal_devnet::testnet::run(opts, devnet_output(out))
}

fn devnet_output(out: Output) -> opal_devnet::Output {
    match out {
        Output::Text => opal_devnet::Output::Text,
        Output::Json => opal_devnet::Output::Json,
    }
}
