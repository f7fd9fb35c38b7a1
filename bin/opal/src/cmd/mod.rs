mod devnet;
mod keys;
mod node;
mod query;
mod testnet;
mod tx;

use crate::cli::{Cli, Command};
use anyhow::Result;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Devnet(a) => devnet::run(a, cli.output),
        Command::Keys(k) => keys::run(k, cli.output),
        Command::Tx(t) => tx::run(t, cli.output),
        Command::Query(q) => query::run(q, cli.output),
        Command::Node(n) => node::run(n, cli.output),
        Command::Testnet(a) => testnet::run(a, cli.output),
    }
}
