//! Start and stop real devnet processes; sign and submit transactions over HTTP.

pub use crate::support::{cli, free_port, opal_bin, signal, transfer};
use opal_node::home::KeyFile;
use opal_types::{Address, Amount, SecretKey, Transaction};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Devnet {
    pub child: Option<Child>,
    pub home: PathBuf,
    pub url: String,
    api_port: u16,
    p2p_port: u16,
    starts: u32,
    /// Set up the demo LLM (only the LLM tests need it: it loads a 100 MB model).
    llm: bool,
    /// Extra environment of the devnet process (fault injection).
    env: Vec<(String, String)>,
}

impl Devnet {
    pub fn start(home: &Path) -> Devnet {
        Devnet::start_opts(home, false)
    }

    /// A devnet that also serves the demo LLM under /v1.
    pub fn start_with_llm(home: &Path) -> Devnet {
        Devnet::start_opts(home, true)
    }

    /// A devnet with the demo LLM whose process gets these extra environment variables.
    pub fn start_with_llm_env(home: &Path, env: &[(&str, &str)]) -> Devnet {
        Devnet::start_full(home, true, env)
    }

    /// A devnet whose process gets these extra environment variables.
    pub fn start_with_env(home: &Path, env: &[(&str, &str)]) -> Devnet {
        Devnet::start_full(home, false, env)
    }

    fn start_opts(home: &Path, llm: bool) -> Devnet {
        Devnet::start_full(home, llm, &[])
    }

    fn start_full(home: &Path, llm: bool, env: &[(&str, &str)]) -> Devnet {
        let mut d = Devnet {
            child: None,
            home: home.to_path_buf(),
            url: String::new(),
            api_port: free_port(),
            p2p_port: free_port(),
            starts: 0,
            llm,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        d.url = format!("http://127.0.0.1:{}", d.api_port);
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = |kind: &str| {
            std::fs::File::create(
                self.home
                    .with_extension(format!("{}.{kind}.log", self.starts)),
            )
            .unwrap()
        };
        let child = Command::new(opal_bin())
            .args(["devnet", "--check-invariants", "--home"])
            .arg(&self.home)
            .args(["--api-addr", &format!("127.0.0.1:{}", self.api_port)])
            .args(["--p2p-addr", &format!("127.0.0.1:{}", self.p2p_port)])
            .args(if self.llm { &[][..] } else { &["--no-llm"][..] })
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .expect("starting opal devnet");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Wait until the API answers and at least one block past `min` is committed.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "devnet exited early with {st}; see {}",
                    self.home.with_extension("*.log").display()
                );
            }
            // Ready once blocks flow and the demo set-up (which signs with alice's, bob's and
            // the inference key) has finished: its last step declares the inference service.
            if let Ok((200, v)) = get(&self.url, "/api/status") {
                let services = get(&self.url, "/api/services")
                    .ok()
                    .and_then(|(_, s)| s["services"].as_array().map(|a| a.len()))
                    .unwrap_or(0);
                if v["height"].as_u64().unwrap_or(0) >= 1 && services > 0 {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "devnet not ready after 90 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal("TERM", c.id());
            let start = Instant::now();
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    assert!(st.success(), "devnet exited with {st} on SIGTERM");
                    return;
                }
                if start.elapsed() > Duration::from_secs(30) {
                    c.kill().ok();
                    panic!("devnet did not stop within 30 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn dev_keys(&self) -> Vec<SecretKey> {
        let mut paths: Vec<_> = std::fs::read_dir(self.home.join("keys"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            // The demo's own accounts (the inference node settles receipts with its key).
            .filter(|p| {
                ![
                    "inference.json",
                    "modeler.json",
                    "curator.json",
                    "llm-caller.json",
                ]
                .iter()
                .any(|n| p.ends_with(n))
            })
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| KeyFile::read(p).unwrap().secret().unwrap())
            .collect()
    }

    pub fn status(&self) -> Value {
        let (code, v) = get(&self.url, "/api/status").unwrap();
        assert_eq!(code, 200, "{v}");
        v
    }

    pub fn account(&self, a: &Address) -> Value {
        let (code, v) = get(&self.url, &format!("/api/accounts/{a}")).unwrap();
        assert_eq!(code, 200, "{v}");
        v
    }

    pub fn balance(&self, a: &Address) -> u128 {
        self.account(a)["balance"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn nonce(&self, a: &Address) -> u64 {
        self.account(a)["nonce"].as_u64().unwrap()
    }

    pub fn chain(&self) -> (String, Amount) {
        let s = self.status();
        (
            s["chain_id"].as_str().unwrap().to_string(),
            Amount(s["params"]["min_fee"].as_str().unwrap().parse().unwrap()),
        )
    }

    /// Poll until the transaction is committed; returns its status object.
    pub fn wait_tx(&self, hash: &str, timeout: Duration) -> Value {
        crate::support::wait_tx_with(http(), &self.url, hash, timeout)
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn http() -> &'static reqwest::blocking::Client {
    static C: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    })
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
    let amount = |v: &Value| v.as_str().unwrap().parse::<u128>().unwrap();
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

pub fn get(base: &str, path: &str) -> reqwest::Result<(u16, Value)> {
    crate::support::get_with(http(), base, path)
}

pub fn post_raw(base: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let r = http()
        .post(format!("{base}/api/txs"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

pub fn submit(base: &str, tx: &Transaction) -> (u16, Value) {
    crate::support::submit_with(http(), base, tx)
}

/// `opal verify RECEIPT --node URL -o json`: the exit code and the report.
pub fn verify_on_chain(receipt: &Path, url: &str) -> (i32, Value) {
    let (code, out, err) = cli(&[
        "verify",
        receipt.to_str().unwrap(),
        "--node",
        url,
        "-o",
        "json",
    ]);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, v)
}

/// Wait (up to a minute) until `model` is registered on the devnet at `url` and some node
/// offers it; its `GET /api/models/{model}` reply.
pub fn served_model(url: &str, model: &str) -> Value {
    wait_for(
        &format!("model {model} served"),
        Duration::from_secs(60),
        || {
            let (code, v) = get(url, &format!("/api/models/{model}")).ok()?;
            (code == 200 && !v["services"].as_array()?.is_empty()).then_some(v)
        },
    )
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

/// `opal infer MODEL --tier TIER` on the devnet's demo input, paid by the devnet's `carol` (the
/// CLI funds her escrow with `deposit` if needed), the receipt written to `receipt`, JSON output;
/// returns (exit code, stdout, stderr).
pub fn infer_cli(
    home: &Path,
    url: &str,
    model: &str,
    tier: &str,
    deposit: &str,
    receipt: &Path,
) -> (i32, String, String) {
    let input = home.join("demo/digits-input.json");
    let carol = home.join("keys/carol.json");
    cli(&[
        "infer",
        model,
        "--tier",
        tier,
        "--input",
        input.to_str().unwrap(),
        "--from",
        carol.to_str().unwrap(),
        "--deposit",
        deposit,
        "--receipt",
        receipt.to_str().unwrap(),
        "--node",
        url,
        "-o",
        "json",
    ])
}
