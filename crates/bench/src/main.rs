//! `opal-bench`: micro-benchmarks of Opal's hot paths, timed with `std::time::Instant`.
//! Each subcommand prints a short table to stdout (progress goes to stderr) and writes nothing
//! else. `--quick` shrinks every size so CI can smoke-run all of them in seconds.
//! Results and the commands that produced them: docs/benchmarks.md.

mod commit;
mod common;
mod disk;
mod e2e;
mod e2e_net;
mod gov;
mod shares;
mod sigs;
mod stats;
mod sync;
mod transfers;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "opal-bench",
    about = "Opal micro-benchmarks (see docs/benchmarks.md)"
)]
struct Cli {
    /// Tiny sizes (a few seconds in total), for CI smoke runs; overrides size flags.
    #[arg(long, global = true)]
    quick: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// ed25519 verification per second: single and batched (64, 1024).
    Sigs(sigs::Args),
    /// Transfers per second through decode, stateless checks, execute_block and Store::commit.
    Transfers(transfers::Args),
    /// Durable commit time of a 1,000-update block as the state grows toward --accounts.
    Commit(commit::Args),
    /// Transfers per second and time to finality through a real one-validator node over HTTP.
    E2e(e2e::Args),
    /// The same through N validators in this process, then a validator's catch-up speed.
    E2eNet(e2e_net::Args),
    /// Governance and rewards with 10,000 delegators: a block's reward distribution, the
    /// stake-weighted tally of 10,000 votes, the end-block that closes voting, withdrawals.
    Gov(gov::Args),
    /// Revenue shares: one settlement's cost with a model's royalty stream not split, split
    /// with one holder, and split among 10,000 holders (it must not grow); claims.
    Shares(shares::Args),
    /// Disk use of the state file over a long run (default 10,000 blocks), archive against
    /// pruned (`retain_heights`).
    Disk(disk::Args),
    /// Time to get the state of a chain with 1,000,000 accounts: by verified snapshot chunks
    /// against by replaying its commits.
    Sync(sync::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The nodes a benchmark starts log to stderr when asked (`RUST_LOG=opal_node=debug`).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.cmd {
        Cmd::Sigs(a) => sigs::run(a, cli.quick),
        Cmd::Transfers(a) => transfers::run(a, cli.quick),
        Cmd::Commit(a) => commit::run(a, cli.quick),
        Cmd::E2e(a) => e2e::run(a, cli.quick),
        Cmd::E2eNet(a) => e2e_net::run(a, cli.quick),
        Cmd::Gov(a) => gov::run(a, cli.quick),
        Cmd::Shares(a) => shares::run(a, cli.quick),
        Cmd::Disk(a) => disk::run(a, cli.quick),
        Cmd::Sync(a) => sync::run(a, cli.quick),
    }
}
