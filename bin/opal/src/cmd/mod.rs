pub(crate) mod devnet;
pub(crate) mod gov;
pub(crate) mod infer;
pub(crate) mod keys;
pub(crate) mod llm;
pub(crate) mod market;
pub(crate) mod model;
pub(crate) mod node;
pub(crate) mod query;
pub(crate) mod shares;
pub(crate) mod tx;
pub(crate) mod verify;
pub(crate) mod watch;

use crate::cli::{Cli, Command};
use anyhow::Result;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Devnet(a) => devnet::run(a, cli.output),
        Command::Keys(k) => keys::run(k, cli.output),
        Command::Tx(t) => tx::run(t, cli.output),
        Command::Query(q) => query::run(q, cli.output),
        Command::Gov(g) => gov::run(g, cli.output),
        Command::Shares(c) => shares::run(c, cli.output),
        Command::Market(c) => market::run(c, cli.output),
        Command::Node(n) => node::run(n, cli.output),
        Command::Testnet(a) => devnet::run_testnet(a, cli.output),
        Command::Zk(z) => opal_zk::cli::run(z).inspect_err(|e| {
            // A proof directory for another model than the one named has its own exit status.
            if e.downcast_ref::<opal_zk::cli::IdMismatch>().is_some() {
                eprintln!("error: {e:#}");
                std::process::exit(opal_zk::cli::EXIT_ID_MISMATCH);
            }
        }),
        Command::Model(m) => model::run_model(m, cli.output),
        Command::Dataset(d) => model::run_dataset(d, cli.output),
        Command::Infer(a) => infer::run_infer(a, cli.output),
        Command::Verify(a) => verify::run_verify(a, cli.output),
        Command::Llm(l) => llm::run(l, cli.output),
    }
}
