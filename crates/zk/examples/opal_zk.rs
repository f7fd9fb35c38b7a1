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
        // Same exit statuses as `opal zk`: 4 for a proof of another model than --model-id.
        let mismatch = e.downcast_ref::<opal_zk::cli::IdMismatch>().is_some();
        std::process::exit(if mismatch {
            opal_zk::cli::EXIT_ID_MISMATCH
        } else {
            1
        });
    }
}
