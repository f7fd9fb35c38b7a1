//! The `opal zk` subcommands as a standalone binary (same code as `opal zk`, without building
//! the node stack): `cargo run --release -p opal-zk --example opal_zk -- prove --model ...`.
use clap::Parser;

#[derive(Parser)]
#[command(name = "opal-zk")]
struct Cli {
    #[command(subcommand)]
    cmd: opal_zk::cli::ZkCmd,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = opal_zk::cli::run(cli.cmd) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
