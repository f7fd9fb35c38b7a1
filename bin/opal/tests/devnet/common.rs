//! The devnet suite's harness lives in the test kit ([`opal_testkit::process`]): real devnet
//! processes, HTTP and CLI helpers.

pub use opal_testkit::process::devnet::*;
pub use opal_testkit::process::*;
