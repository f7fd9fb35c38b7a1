//! The harness for tests that run Opal as a user does: real `opal` processes (a devnet, an
//! N-validator testnet) in temporary homes with free ports, driven over HTTP and the CLI, killed
//! and restarted. [`devnet::Devnet`] and [`testnet::Testnet`] own their processes and kill them
//! when dropped (a testnet prints its nodes' logs first if the test is failing).
//!
//! The binary under test is `OPAL_BIN` when set, else the `opal` that cargo built beside the
//! test executable (`target/<profile>/opal`, where `cargo test` and `cargo nextest` put it for
//! the integration tests of `bin/opal`).
//!
//! Behind the `process` feature: only the process-level suites pull in an HTTP client.

pub mod cluster;
pub mod devnet;
pub mod netns;
pub mod testnet;

use opal_types::{Action, Address, Amount, SecretKey, Transaction, TxBody};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `opal` binary under test.
pub fn opal_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("OPAL_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        // target/<profile>/deps/<test>-<hash> -> target/<profile>/opal
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let bin = dir.join(format!("opal{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.exists(),
            "no opal binary at {} (build it, or set OPAL_BIN)",
            bin.display()
        );
        bin
    })
    .clone()
}

/// POST `body` as `application/octet-stream` to `base` + `path`: (status, JSON reply or null).
pub fn post_octets(base: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let r = testnet::http()
        .post(format!("{base}{path}"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or_default())
}

/// `opal node init` of a node that is not a validator of `genesis`'s chain: its own key, free
/// local ports, `peers` (p2p addresses) to dial, `extra` flags; then the chain's genesis file.
/// Returns the home and the API URL.
pub fn init_extra_node(
    home: &Path,
    moniker: &str,
    peers: &[String],
    genesis: &Path,
    extra: &[&str],
) -> (PathBuf, String) {
    let api = format!("127.0.0.1:{}", free_port());
    let p2p = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "node",
        "init",
        "--home",
        home.to_str().expect("a UTF-8 path"),
        "--moniker",
        moniker,
        "--p2p-addr",
        &p2p,
        "--api-addr",
        &api,
        "--dev-timeouts",
    ];
    let joined = peers.join(",");
    if !peers.is_empty() {
        args.extend(["--peers", joined.as_str()]);
    }
    args.extend_from_slice(extra);
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "opal node init: {out}{err}");
    std::fs::copy(genesis, home.join("genesis.json")).expect("copying the genesis file");
    (home.to_path_buf(), format!("http://{api}"))
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

/// Whether process `pid` still exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The last 15 lines of a log file (empty if it cannot be read).
pub fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
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

/// Run the `opal` CLI (without `OPAL_HOME`); returns (exit code, stdout, stderr).
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

/// The secret keys of the key files (`*.json`) in `dir`, in file-name order, leaving out the
/// files named in `except`.
pub fn keys_in(dir: &Path, except: &[&str]) -> Vec<SecretKey> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !except.iter().any(|n| p.ends_with(n)))
        .collect();
    paths.sort();
    paths.iter().map(|p| read_key(p)).collect()
}

/// The secret key of one key file (the format `opal keys new` writes).
pub fn read_key(path: &Path) -> SecretKey {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let hex = v["secret_key"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no secret_key", path.display()));
    SecretKey::from_hex(hex).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Poll `f` every 200 ms until it returns `Some`, failing the test after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A blocking HTTP client with a timeout.
pub fn client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap()
}

/// `GET base+path` with `http`: the status and the JSON body (`null` if it is not JSON).
pub fn get_with(
    http: &reqwest::blocking::Client,
    base: &str,
    path: &str,
) -> reqwest::Result<(u16, Value)> {
    let r = http.get(format!("{base}{path}")).send()?;
    let code = r.status().as_u16();
    Ok((code, r.json().unwrap_or(Value::Null)))
}

/// POST `body` with `content_type` to `base`'s `/api/txs` with `http`: the status and reply.
pub fn post_tx_with(
    http: &reqwest::blocking::Client,
    base: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let r = http
        .post(format!("{base}/api/txs"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

/// Submit `tx` as JSON to `base`'s `/api/txs` with `http`: the status and the reply.
pub fn submit_with(http: &reqwest::blocking::Client, base: &str, tx: &Transaction) -> (u16, Value) {
    let body = serde_json::json!({"tx": hex::encode(tx.to_bytes())}).to_string();
    post_tx_with(http, base, "application/json", body.into_bytes())
}

/// Poll `base` with `http` until transaction `hash` is committed; its status object. Fails the
/// test if it is dropped or `timeout` passes.
pub fn wait_tx_with(
    http: &reqwest::blocking::Client,
    base: &str,
    hash: &str,
    timeout: Duration,
) -> Value {
    let start = Instant::now();
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An amount field of a JSON reply (amounts travel as decimal strings).
pub fn amount(v: &Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an amount: {v}"))
}

/// POST `len` bytes of JSON whitespace to `path` and return the status the server answers. A
/// server that refuses an oversized body answers (413) and closes before the body is all sent;
/// a client that writes the whole body first then sees a broken pipe or a reset, and the reply
/// may be lost. So the reply is read on one thread while the body is written on another, and
/// write errors after the reply are expected.
pub fn post_oversized(base: &str, path: &str, len: usize) -> u16 {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
    );
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let chunk = vec![b' '; 64 << 10];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).is_err() {
                return; // the server answered and closed: expected
            }
            left -= n;
        }
    });
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the status line is complete (or the connection ends).
    while !reply.windows(2).any(|w| w == b"\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    let _ = sender.join();
    let line = String::from_utf8_lossy(&reply);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status from {base}{path}: {line:?}"))
}

/// (total supply, the sum of every pool outside accounts) from one `/api/status` reply (one
/// state snapshot: emission changes the supply every block).
pub fn supply_and_pools(st: &Value) -> (u128, u128) {
    let pools = [
        "fees",
        "bonded",
        "unbonding",
        "treasury",
        "escrow",
        "held",
        "deposits",
        "rewards",
    ]
    .iter()
    .map(|p| amount(&st["pools"][p]))
    .sum();
    (amount(&st["total_supply"]), pools)
}

/// A validator of a hand-made genesis, from what `opal node init -o json` printed for it.
pub fn genesis_validator(name: &str, init: &Value) -> opal_ledger::GenesisValidator {
    opal_ledger::GenesisValidator {
        name: name.into(),
        public_key: opal_types::PublicKey::from_hex(init["public_key"].as_str().unwrap()).unwrap(),
        operator: None,
        stake: Amount(1_000_000_000_000),
        vrf_key: serde_json::from_value(init["vrf_key"].clone()).unwrap(),
    }
}

/// A genesis that starts now, with default parameters, these validators and no accounts.
pub fn genesis_now(
    chain_id: &str,
    validators: Vec<opal_ledger::GenesisValidator>,
) -> opal_ledger::Genesis {
    opal_ledger::Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
        params: Default::default(),
        staking: Default::default(),
        inference: Default::default(),
        governance: Default::default(),
        rewards: Default::default(),
        accounts: vec![],
        validators,
    }
}

/// An `opal node start --home HOME` process (stdout and stderr to `HOME/node.log`), killed
/// when dropped unless it was stopped.
pub struct NodeProcess(pub std::process::Child);

impl NodeProcess {
    /// Start it, with `env` added to its environment.
    pub fn start(home: &Path, env: &[(&str, &str)]) -> NodeProcess {
        let log = std::fs::File::create(home.join("node.log")).unwrap();
        let child = Command::new(opal_bin())
            .args(["node", "start", "--home"])
            .arg(home)
            .env_remove("OPAL_HOME")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting opal node start");
        NodeProcess(child)
    }

    /// SIGTERM and wait (up to 20 s, then SIGKILL).
    pub fn stop(&mut self) {
        signal("TERM", self.0.id());
        let start = Instant::now();
        while !matches!(self.0.try_wait(), Ok(Some(_))) {
            if start.elapsed() > Duration::from_secs(20) {
                self.0.kill().ok();
                self.0.wait().ok();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}
