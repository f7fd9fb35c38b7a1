//! What the process-level test suites (`tests/devnet`, `tests/testnet`) share: the binary
//! under test, free ports, signals, a signed transfer and a CLI run. Each suite adds its own
//! harness (`Devnet`, `Testnet`) and HTTP client (their timeouts differ) in its `common.rs`.
#![allow(dead_code)] // each suite uses a different part

use opal_types::{Action, Address, Amount, SecretKey, Transaction, TxBody};
use std::net::TcpListener;
use std::process::{Command, Stdio};

/// The `opal` binary cargo built for these tests.
pub fn opal_bin() -> &'static str {
    env!("CARGO_BIN_EXE_opal")
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Send `sig` (`TERM`, `KILL`, `STOP`, `CONT`) to a process.
pub fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A signed transfer of `amount` base units.
pub fn transfer(
    chain_id: &str,
    fee: Amount,
    from: &SecretKey,
    to: Address,
    amount: u128,
    nonce: u64,
) -> Transaction {
    TxBody {
        chain_id: chain_id.into(),
        nonce,
        fee,
        action: Action::Transfer {
            to,
            amount: Amount(amount),
        },
    }
    .sign(from)
}

/// Run the `opal` CLI; returns (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(opal_bin())
        .args(args)
        .env_remove("OPAL_HOME")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}
