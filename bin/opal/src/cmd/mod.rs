mod devnet;
mod keys;
mod query;
mod tx;

use crate::cli::{Cli, Command, NodeCmd};
use anyhow::Result;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Devnet(a) => devnet::run(a, cli.output),
        Command::Keys(k) => keys::run(k, cli.output),
        Command::Tx(t) => tx::run(t, cli.output),
        Command::Query(q) => query::run(q, cli.output),
        Command::Node(NodeCmd::Start { home, api_addr }) => devnet::start_existing(home, api_addr),
    }
}
