//! Acceptance tests against real `opal devnet` processes over HTTP.

mod bad_inputs;
mod common;
mod crash;
mod governance;
mod inference;
mod light;
mod llm;
mod shares;
mod staking;
mod transfers;
mod verification;
mod zk;
