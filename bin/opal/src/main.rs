//! `opal`: the command-line interface. This file only parses arguments and dispatches.

mod cli;
mod cmd;
mod keyring;
mod output;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cmd::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
