//! Acceptance tests against real `opal devnet` processes over HTTP.

mod bad_inputs;
mod common;
mod crash;
mod governance;
mod inference;
mod light;
mod llm;
mod staking;
#[path = "../support/mod.rs"]
mod support;
mod transfers;
mod verification;
mod zk;
