//! A real `opal testnet` (N `opal node start` processes under one orchestrator) in a temporary
//! home with free ports: read its `testnet.json`, kill and restart validators, compare their
//! chains block by block.

use super::cluster::Cluster;
use super::{amount, get_with, keys_in, opal_bin, signal, submit_with, tail, wait_tx_with};
use opal_types::{Address, Amount, SecretKey, Transaction};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
#[allow(dead_code)] // p2p_addr: read for completeness of the testnet.json format
pub struct ValidatorInfo {
    pub name: String,
    pub home: PathBuf,
    pub pid: u32,
    pub api_url: String,
    pub p2p_addr: String,
}

pub struct Testnet {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    orchestrator: Option<Child>,
    pub validators: Vec<ValidatorInfo>,
    pub chain_id: String,
    /// Validators restarted by the test (not children of `opal testnet`).
    restarted: Vec<(usize, Child)>,
    started: Instant,
    /// The validators' APIs (heights, blocks, fork checks), through `Deref`.
    cluster: Cluster,
}

impl std::ops::Deref for Testnet {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

pub fn log(t0: Instant, msg: impl AsRef<str>) {
    println!("[{:>6.2} s] {}", t0.elapsed().as_secs_f64(), msg.as_ref());
}

impl Testnet {
    /// `opal testnet --validators n --home TMP/tn --base-port 0`, then wait for testnet.json and
    /// for every API to report height >= 2.
    pub fn start(n: usize) -> Testnet {
        Testnet::start_with(n, &[])
    }

    /// [`Testnet::start`] with more `opal testnet` arguments (e.g. `--param K=V`).
    pub fn start_with(n: usize, extra: &[&str]) -> Testnet {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tn");
        let mut t = Testnet {
            _dir: dir,
            root,
            orchestrator: None,
            validators: vec![],
            chain_id: String::new(),
            restarted: vec![],
            started,
            cluster: Cluster::default(),
        };
        let n_arg = n.to_string();
        let mut args = vec!["--validators", n_arg.as_str(), "--base-port", "0"];
        args.extend_from_slice(extra);
        t.spawn_orchestrator(&args);
        let all: Vec<usize> = (0..n).collect();
        t.wait_heights(&all, 2, Duration::from_secs(40));
        log(
            started,
            format!("all {n} validators at height >= 2: {:?}", t.heights(&all)),
        );
        t
    }

    /// `opal testnet --home ROOT ARGS`, then wait for its testnet.json.
    fn spawn_orchestrator(&mut self, args: &[&str]) {
        let out = std::fs::File::create(self._dir.path().join("testnet.out")).unwrap();
        let err = std::fs::File::create(self._dir.path().join("testnet.err")).unwrap();
        let child = Command::new(opal_bin())
            .arg("testnet")
            .args(args)
            .arg("--home")
            .arg(&self.root)
            .env_remove("OPAL_HOME")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting opal testnet");
        self.orchestrator = Some(child);
        self.wait_testnet_json();
        log(
            self.started,
            format!(
                "testnet.json: chain {}, {} validators, pids {:?}",
                self.chain_id,
                self.validators.len(),
                self.validators.iter().map(|v| v.pid).collect::<Vec<_>>()
            ),
        );
    }

    /// SIGTERM `opal testnet` and wait for it to stop its validators and exit; returns its
    /// exit status and stderr.
    pub fn stop(&mut self) -> (std::process::ExitStatus, String) {
        let mut c = self.orchestrator.take().expect("opal testnet is running");
        signal("TERM", c.id());
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                let err = std::fs::read_to_string(self._dir.path().join("testnet.err"))
                    .unwrap_or_default();
                return (st, err);
            }
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "opal testnet did not stop within 40 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run `opal testnet --home ROOT` again (no other flags) on the stopped testnet.
    pub fn resume(&mut self) {
        self.spawn_orchestrator(&[]);
    }

    pub fn testnet_json(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.root.join("testnet.json")).unwrap())
            .unwrap()
    }

    /// Whether process `pid` still exists (and is not a zombie).
    pub fn alive(pid: u32) -> bool {
        super::alive(pid)
    }

    pub fn t0(&self) -> Instant {
        self.started
    }

    fn wait_testnet_json(&mut self) {
        let path = self.root.join("testnet.json");
        let pid = self.orchestrator.as_ref().map(|c| c.id()).unwrap();
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(st))) = self.orchestrator.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "opal testnet exited early with {st}: {}",
                    std::fs::read_to_string(self._dir.path().join("testnet.err"))
                        .unwrap_or_default()
                );
            }
            if let Ok(s) = std::fs::read_to_string(&path) {
                let v: Value =
                    serde_json::from_str(&s).expect("testnet.json is written atomically");
                if v["orchestrator_pid"].as_u64() == Some(pid as u64) && v["running"] == true {
                    self.chain_id = v["chain_id"].as_str().unwrap().to_string();
                    self.validators = v["validators"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| ValidatorInfo {
                            name: v["name"].as_str().unwrap().into(),
                            home: v["home"].as_str().unwrap().into(),
                            pid: v["pid"].as_u64().unwrap() as u32,
                            api_url: v["api_url"].as_str().unwrap().into(),
                            p2p_addr: v["p2p_addr"].as_str().unwrap().into(),
                        })
                        .collect();
                    self.cluster = Cluster {
                        urls: self.validators.iter().map(|v| v.api_url.clone()).collect(),
                    };
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no testnet.json after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL validator i (the pid from testnet.json, or the process the test restarted).
    pub fn kill(&mut self, i: usize) {
        if let Some(pos) = self.restarted.iter().position(|(j, _)| *j == i) {
            let (_, mut c) = self.restarted.remove(pos);
            c.kill().ok();
            c.wait().ok();
        } else {
            signal("KILL", self.validators[i].pid);
        }
        // Wait until its API is gone.
        let start = Instant::now();
        while self.status(i).is_some() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            self.status(i).is_none(),
            "node{i} still answers after SIGKILL"
        );
    }

    /// `opal node start --home DIR/nodeI --api-addr <its API address>`.
    pub fn restart(&mut self, i: usize) {
        self.restart_with_env(i, &[]);
    }

    /// [`Testnet::restart`] with `env` added to the node's environment (e.g. a fault to inject).
    pub fn restart_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        let v = &self.validators[i];
        let api_addr = v.api_url.trim_start_matches("http://").to_string();
        let log = |kind: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(v.home.join(format!("restart.{kind}.log")))
                .unwrap()
        };
        let child = Command::new(opal_bin())
            .args(["node", "start", "--api-addr", &api_addr, "--home"])
            .arg(&v.home)
            .env_remove("OPAL_HOME")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .expect("starting opal node start");
        self.restarted.push((i, child));
        let start = Instant::now();
        while self.status(i).is_none() {
            if let Some((_, c)) = self.restarted.iter_mut().find(|(j, _)| *j == i) {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "restarted node{i} exited with {st}: {}",
                        tail(&self.validators[i].home.join("restart.err.log"))
                    );
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "restarted node{i} API not up in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The dev accounts' keys, in file-name order.
    pub fn dev_keys(&self) -> Vec<SecretKey> {
        keys_in(&self.root.join("keys"), &[])
    }

    pub fn account(&self, i: usize, a: &Address) -> Value {
        let (code, v) = get(self.url(i), &format!("/api/accounts/{a}")).unwrap();
        assert_eq!(code, 200, "{v}");
        v
    }

    pub fn balance(&self, i: usize, a: &Address) -> u128 {
        amount(&self.account(i, a)["balance"])
    }

    pub fn min_fee(&self, i: usize) -> Amount {
        let s = self.status(i).unwrap();
        Amount(amount(&s["params"]["min_fee"]))
    }

    /// `GET /api/gov/proposals/{id}` on node i.
    pub fn proposal(&self, i: usize, id: u64) -> Value {
        let (code, v) = get(self.url(i), &format!("/api/gov/proposals/{id}")).unwrap();
        assert_eq!(code, 200, "{v}");
        v
    }

    /// Poll node i until the transaction is committed; returns its status object.
    pub fn wait_tx(&self, i: usize, hash: &str, timeout: Duration) -> Value {
        wait_tx_with(http(), self.url(i), hash, timeout)
    }

    fn print_logs(&self) {
        for v in &self.validators {
            println!(
                "--- {} node.log (tail) ---\n{}",
                v.name,
                tail(&v.home.join("node.log"))
            );
            let r = v.home.join("restart.err.log");
            if r.exists() {
                println!("--- {} restart.err.log (tail) ---\n{}", v.name, tail(&r));
            }
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for (_, c) in &mut self.restarted {
            c.kill().ok();
            c.wait().ok();
        }
        if let Some(mut c) = self.orchestrator.take() {
            signal("TERM", c.id());
            let start = Instant::now();
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if start.elapsed() > Duration::from_secs(30) => {
                        c.kill().ok();
                        c.wait().ok();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        // Whatever is left (the orchestrator was killed, or did not stop them): SIGKILL.
        for v in &self.validators {
            if Path::new(&format!("/proc/{}", v.pid)).exists() {
                let cmdline = std::fs::read(format!("/proc/{}/cmdline", v.pid)).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&*v.home.to_string_lossy()) {
                    signal("KILL", v.pid);
                }
            }
        }
    }
}

/// The client for a testnet (3 s timeout: a node that does not answer soon counts as down).
pub fn http() -> &'static reqwest::blocking::Client {
    static C: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| super::client(Duration::from_secs(3)))
}

pub fn get(base: &str, path: &str) -> reqwest::Result<(u16, Value)> {
    get_with(http(), base, path)
}

pub fn submit(base: &str, tx: &Transaction) -> (u16, Value) {
    submit_with(http(), base, tx)
}
