//! What the process-level test suites (`tests/devnet`, `tests/testnet`) share: the binary
//! under test, free ports, signals, a signed transfer and a CLI run. Each suite adds its own
//! harness (`Devnet`, `Testnet`) and HTTP client (their timeouts differ) in its `common.rs`, and
//! passes it to the HTTP helpers here (`get_with`, `submit_with`, `wait_tx_with`).
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

/// `GET base+path` with `http`: the status and the JSON body (`null` if it is not JSON).
pub fn get_with(
    http: &reqwest::blocking::Client,
    base: &str,
    path: &str,
) -> reqwest::Result<(u16, serde_json::Value)> {
    let r = http.get(format!("{base}{path}")).send()?;
    let code = r.status().as_u16();
    Ok((code, r.json().unwrap_or(serde_json::Value::Null)))
}

/// Submit `tx` as JSON to `base`'s `/api/txs` with `http`: the status and the reply.
pub fn submit_with(
    http: &reqwest::blocking::Client,
    base: &str,
    tx: &Transaction,
) -> (u16, serde_json::Value) {
    let r = http
        .post(format!("{base}/api/txs"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"tx": hex::encode(tx.to_bytes())}).to_string())
        .send()
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(serde_json::Value::Null))
}

/// Poll `base` with `http` until transaction `hash` is committed; its status object. Fails the
/// test if it is dropped or `timeout` passes.
pub fn wait_tx_with(
    http: &reqwest::blocking::Client,
    base: &str,
    hash: &str,
    timeout: std::time::Duration,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let (_, v) = get_with(http, base, &format!("/api/txs/{hash}")).unwrap();
        if v["status"] == "committed" {
            return v;
        }
        assert!(v["status"] != "dropped", "transaction {hash} dropped: {v}");
        assert!(
            start.elapsed() < timeout,
            "transaction {hash} not committed in {timeout:?}: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
