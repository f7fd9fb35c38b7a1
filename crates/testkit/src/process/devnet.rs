//! A real `opal devnet` process: one validator with the demo accounts, models and services, in
//! a home the test owns, on free ports; started, killed (SIGKILL), stopped (SIGTERM, which must
//! exit cleanly) and restarted over the same home. Its stdout and stderr go to
//! `HOME.<start>.{out,err}.log` beside the home.

use super::{amount, wait_for, wait_tx_with};
use super::{cli, free_port, get_with, keys_in, opal_bin, post_tx_with, signal, submit_with};
use opal_types::{Address, Amount, SecretKey, Transaction};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo's own accounts, which [`Devnet::dev_keys`] leaves out (the inference node settles
/// receipts with its key; the others sign the demo's set-up).
const DEMO_ACCOUNTS: [&str; 4] = [
    "inference.json",
    "modeler.json",
    "curator.json",
    "llm-caller.json",
];

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
        Devnet::start_full(home, false, &[])
    }

    /// A devnet that also serves the demo LLM under /v1.
    pub fn start_with_llm(home: &Path) -> Devnet {
        Devnet::start_full(home, true, &[])
    }

    /// A devnet with the demo LLM whose process gets these extra environment variables.
    pub fn start_with_llm_env(home: &Path, env: &[(&str, &str)]) -> Devnet {
        Devnet::start_full(home, true, env)
    }

    /// A devnet whose process gets these extra environment variables.
    pub fn start_with_env(home: &Path, env: &[(&str, &str)]) -> Devnet {
        Devnet::start_full(home, false, env)
    }

    fn start_full(home: &Path, llm: bool, env: &[(&str, &str)]) -> Devnet {
        let api_port = free_port();
        let mut d = Devnet {
            child: None,
            home: home.to_path_buf(),
            url: format!("http://127.0.0.1:{api_port}"),
            api_port,
            p2p_port: free_port(),
            starts: 0,
            llm,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
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

    /// Wait until blocks flow and the demo set-up (which signs with alice's, bob's and the
    /// inference key) has finished: its last step declares the inference service.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "devnet exited early with {st}; see {}",
                    self.home.with_extension("*.log").display()
                );
            }
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

    /// SIGKILL, then start again over the same home and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The dev accounts' keys (alice, bob, carol, ...), in file-name order.
    pub fn dev_keys(&self) -> Vec<SecretKey> {
        keys_in(&self.home.join("keys"), &DEMO_ACCOUNTS)
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
        amount(&self.account(a)["balance"])
    }

    pub fn nonce(&self, a: &Address) -> u64 {
        self.account(a)["nonce"].as_u64().unwrap()
    }

    /// (chain id, minimum fee).
    pub fn chain(&self) -> (String, Amount) {
        let s = self.status();
        (
            s["chain_id"].as_str().unwrap().to_string(),
            Amount(amount(&s["params"]["min_fee"])),
        )
    }

    /// Poll until the transaction is committed; returns its status object.
    pub fn wait_tx(&self, hash: &str, timeout: Duration) -> Value {
        wait_tx_with(http(), &self.url, hash, timeout)
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The client for a devnet (30 s timeout: one call may run an LLM).
pub fn http() -> &'static reqwest::blocking::Client {
    static C: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| super::client(Duration::from_secs(30)))
}

pub fn get(base: &str, path: &str) -> reqwest::Result<(u16, Value)> {
    get_with(http(), base, path)
}

pub fn post_raw(base: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    post_tx_with(http(), base, content_type, body)
}

pub fn submit(base: &str, tx: &Transaction) -> (u16, Value) {
    submit_with(http(), base, tx)
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
