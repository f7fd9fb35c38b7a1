//! Real multi-process validator networks: `opal testnet --validators 4`, then faults (SIGKILL,
//! restarts) observed over each validator's HTTP API. Every test runs in its own temporary home
//! with free ports and prints what it observes (`cargo nextest run -p opal --test testnet
//! --no-capture`).

mod catchup;
mod cli;
mod common;
mod crash;
mod downtime;
mod flood;
mod foreign;
mod gossip;
mod governance;
mod halt;
mod mempool;
mod netns;
mod network;
mod operator;
mod partition;
mod peers;
mod prune;
mod resume;
mod statesync;
