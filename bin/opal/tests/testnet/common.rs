//! The testnet suite's harness lives in the test kit ([`opal_testkit::process`]): real
//! multi-validator testnets, HTTP and CLI helpers.

pub use opal_testkit::process::testnet::*;
pub use opal_testkit::process::*;
