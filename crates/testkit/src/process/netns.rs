//! Validators on a real network: each `opal node start` runs in a Linux network namespace the
//! lab creates, with its own address on a bridge; links are cut and healed with iptables
//! (DROP rules inside the namespaces, which also stop established TCP connections), and slowed
//! with `tc` (a token-bucket rate limit, or netem delay where the kernel has it).
//!
//! Layout, for lab tag `T` (from the test's pid) and validator `i`:
//!
//! ```text
//! root namespace:  bridge obT, address 10.A.B.254/24 (the test talks to the APIs from here)
//! namespace opal-T-i: eth0 = 10.A.B.(i+1)/24, the other end ovTxi enslaved to obT
//! ```
//!
//! The homes come from `opal testnet --init-only --hosts ...`, so the configs are the ones a
//! user deploying to separate machines gets. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN),
//! `ip` (iproute2), `iptables` and `tc`: [`NetLab::start`] returns why not, and the caller skips
//! loudly. Everything is removed on drop, processes first.

use super::cluster::Cluster;
use super::{opal_bin, tail};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The consensus and API ports every validator uses (each namespace has its own port space).
const BASE_PORT: u16 = 26_600;

pub struct NetLab {
    _dir: tempfile::TempDir,
    /// The testnet home (`node0`.. `nodeN-1`, `keys/`).
    pub root: PathBuf,
    tag: u32,
    subnet: [u8; 2],
    iptables: &'static str,
    nodes: Vec<Option<Child>>,
    cluster: Cluster,
    /// Whether netem (delay) exists in this kernel.
    pub netem: bool,
    started: Instant,
}

impl std::ops::Deref for NetLab {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

/// Run a command; its stderr on failure.
fn sh(prog: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{prog} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why this machine cannot run the lab, if it cannot.
fn unavailable() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("network namespaces need Linux".into());
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some(format!("needs root (effective uid is {uid:?})"));
    }
    for (prog, arg) in [("ip", "-V"), ("tc", "-V")] {
        if sh(prog, &[arg]).is_err() {
            return Some(format!("`{prog}` is missing (Debian package iproute2)"));
        }
    }
    let probe = format!("opal-probe-{}", std::process::id());
    if let Err(e) = sh("ip", &["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {e}"));
    }
    let _ = sh("ip", &["netns", "del", &probe]);
    None
}

/// The iptables that works here (the nftables backend, else the legacy one).
fn find_iptables() -> Option<&'static str> {
    ["iptables", "iptables-legacy"]
        .into_iter()
        .find(|p| sh(p, &["-V"]).is_ok())
}

impl NetLab {
    /// Create `n` namespaces on a bridge, write a testnet for their addresses, start a
    /// validator in each and wait until all are at height 2. `Err` says why this machine cannot
    /// (the caller skips with that message).
    pub fn start(n: usize) -> Result<NetLab, String> {
        assert!((1..=50).contains(&n));
        if let Some(why) = unavailable() {
            return Err(why);
        }
        let iptables = find_iptables()
            .ok_or("`iptables` is missing (Debian package iptables; scripts/test installs it)")?;
        remove_stale();
        let started = Instant::now();
        let tag = std::process::id();
        let subnet = [200 + ((tag >> 8) % 50) as u8, (tag & 0xff) as u8];
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let root = dir.path().join("tn");
        let netem = probe_netem(tag);
        let mut lab = NetLab {
            _dir: dir,
            root,
            tag,
            subnet,
            iptables,
            nodes: (0..n).map(|_| None).collect(),
            cluster: Cluster::default(),
            netem,
            started,
        };
        // From here on, Drop removes whatever was made.
        lab.make_links(n)?;
        lab.cluster.urls = (0..n)
            .map(|i| format!("http://{}:{}", lab.ip(i), BASE_PORT + 2 * i as u16))
            .collect();
        let hosts: Vec<String> = (0..n).map(|i| lab.ip(i).to_string()).collect();
        let out = Command::new(opal_bin())
            .args(["testnet", "--init-only", "--validators", &n.to_string()])
            .args([
                "--base-port",
                &BASE_PORT.to_string(),
                "--hosts",
                &hosts.join(","),
            ])
            .arg("--home")
            .arg(&lab.root)
            .env_remove("OPAL_HOME")
            .output()
            .map_err(|e| format!("running opal testnet --init-only: {e}"))?;
        assert!(
            out.status.success(),
            "opal testnet --init-only failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for i in 0..n {
            lab.start_node(i);
        }
        let all: Vec<usize> = (0..n).collect();
        lab.wait_heights(&all, 2, Duration::from_secs(60));
        lab.log(format!(
            "{n} validators in namespaces opal-{tag}-0..{}, on 10.{}.{}.0/24, at height >= 2 (netem {})",
            n - 1,
            subnet[0],
            subnet[1],
            if netem { "available" } else { "missing: delays use a rate limit" }
        ));
        Ok(lab)
    }

    pub fn log(&self, msg: impl AsRef<str>) {
        super::testnet::log(self.started, msg)
    }

    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    /// Validator i's address.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], i as u8 + 1)
    }

    /// Validator i's p2p (consensus) address.
    pub fn p2p_addr(&self, i: usize) -> std::net::SocketAddr {
        (self.ip(i), BASE_PORT + 2 * i as u16 + 1).into()
    }

    /// `k` more addresses on the bridge, 10.A.B.100 and up: the sources of strangers that dial
    /// the validators from outside their namespaces (a test binds its sockets to them). They
    /// go with the bridge.
    pub fn stranger_addrs(&self, k: usize) -> Vec<Ipv4Addr> {
        assert!(k <= 150, "10.A.B.100..249");
        (0..k)
            .map(|j| {
                let ip = Ipv4Addr::new(10, self.subnet[0], self.subnet[1], 100 + j as u8);
                sh(
                    "ip",
                    &["addr", "add", &format!("{ip}/24"), "dev", &self.bridge()],
                )
                .unwrap_or_else(|e| panic!("adding {ip} to the bridge: {e}"));
                ip
            })
            .collect()
    }

    fn ns(&self, i: usize) -> String {
        format!("opal-{}-{i}", self.tag)
    }

    fn bridge(&self) -> String {
        format!("ob{}", self.tag)
    }

    pub fn home(&self, i: usize) -> PathBuf {
        self.root.join(format!("node{i}"))
    }

    fn make_links(&self, n: usize) -> Result<(), String> {
        let br = self.bridge();
        let gw = format!("10.{}.{}.254/24", self.subnet[0], self.subnet[1]);
        sh("ip", &["link", "add", &br, "type", "bridge"])?;
        sh("ip", &["addr", "add", &gw, "dev", &br])?;
        sh("ip", &["link", "set", &br, "up"])?;
        for i in 0..n {
            let ns = self.ns(i);
            let host = format!("ov{}x{i}", self.tag);
            let peer = format!("op{}x{i}", self.tag);
            let addr = format!("{}/24", self.ip(i));
            sh("ip", &["netns", "add", &ns])?;
            sh(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &peer],
            )?;
            sh("ip", &["link", "set", &peer, "netns", &ns])?;
            sh("ip", &["link", "set", &host, "master", &br])?;
            sh("ip", &["link", "set", &host, "up"])?;
            sh("ip", &["-n", &ns, "link", "set", &peer, "name", "eth0"])?;
            sh("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            sh("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// `ip netns exec opal-T-i opal node start --home HOME/nodeI` (`ip` execs the node, so the
    /// child is the node itself).
    pub fn start_node(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node{i} runs already");
        let home = self.home(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("node.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(i)])
            .arg(opal_bin())
            .args(["node", "start", "--home"])
            .arg(&home)
            .env_remove("OPAL_HOME")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting a validator in its namespace");
        self.nodes[i] = Some(child);
    }

    /// SIGKILL validator i.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            c.kill().ok();
            c.wait().ok();
        }
    }

    /// Run iptables in validator i's namespace.
    fn iptables(&self, i: usize, args: &[&str]) {
        let ns = self.ns(i);
        let mut all = vec!["netns", "exec", ns.as_str(), self.iptables];
        all.extend_from_slice(args);
        sh("ip", &all).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Cut the link between validators a and b, both ways (packets dropped at both ends).
    pub fn cut(&self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            let peer = self.ip(y).to_string();
            self.iptables(x, &["-A", "INPUT", "-s", &peer, "-j", "DROP"]);
            self.iptables(x, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"]);
        }
    }

    /// Cut every link between different groups (validators in no group form one more).
    pub fn partition(&self, groups: &[&[usize]]) {
        let group = |i: usize| groups.iter().position(|g| g.contains(&i));
        for a in 0..self.n() {
            for b in a + 1..self.n() {
                if group(a) != group(b) {
                    self.cut(a, b);
                }
            }
        }
        self.log(format!(
            "partition {groups:?} (iptables DROP across groups)"
        ));
    }

    /// Restore every link: flush the rules, remove rate limits and delays.
    pub fn heal(&self) {
        for i in 0..self.n() {
            self.iptables(i, &["-F"]);
            let _ = sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    &self.ns(i),
                    "tc",
                    "qdisc",
                    "del",
                    "dev",
                    "eth0",
                    "root",
                ],
            );
        }
        self.log("healed: all links restored");
    }

    /// `tc qdisc replace dev eth0 root QDISC...` in validator i's namespace.
    fn qdisc(&self, i: usize, qdisc: &[&str]) -> Result<(), String> {
        let ns = self.ns(i);
        let mut args = vec![
            "netns",
            "exec",
            ns.as_str(),
            "tc",
            "qdisc",
            "replace",
            "dev",
            "eth0",
            "root",
        ];
        args.extend_from_slice(qdisc);
        sh("ip", &args)
    }

    /// Limit validator i's outgoing link to `kbit` kbit/s (tbf; packets queue, so they are
    /// delayed, and dropped past 1 s of queue).
    pub fn throttle(&self, i: usize, kbit: u32) {
        let rate = format!("{kbit}kbit");
        self.qdisc(
            i,
            &["tbf", "rate", &rate, "burst", "16kbit", "latency", "1s"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.log(format!("node{i}: outgoing link limited to {rate}/s"));
    }

    /// Delay every packet validator i sends by `ms` (netem); `Err` if this kernel has no netem.
    pub fn delay(&self, i: usize, ms: u32) -> Result<(), String> {
        let d = format!("{ms}ms");
        self.qdisc(i, &["netem", "delay", &d])?;
        self.log(format!("node{i}: outgoing packets delayed {d}"));
        Ok(())
    }

    fn print_logs(&self) {
        for i in 0..self.n() {
            println!(
                "--- node{i} node.log (tail) ---\n{}",
                tail(&self.home(i).join("node.log"))
            );
        }
    }
}

/// The lines a command prints (none if it fails).
fn lines(prog: &str, args: &[&str]) -> Vec<String> {
    Command::new(prog)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Namespaces and bridges of labs whose test process is gone (killed before its drop ran).
fn remove_stale() {
    let gone = |tag: &str| {
        tag.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{tag}")).exists()
    };
    for line in lines("ip", &["netns", "list"]) {
        let name = line.split_whitespace().next().unwrap_or("");
        if let Some(tag) = name.strip_prefix("opal-").and_then(|r| r.split('-').next()) {
            if gone(tag) {
                let _ = sh("ip", &["netns", "del", name]);
            }
        }
    }
    for line in lines("ip", &["-o", "link", "show", "type", "bridge"]) {
        let name = line.split(':').nth(1).unwrap_or("").trim();
        if let Some(tag) = name.strip_prefix("ob") {
            if gone(tag) {
                let _ = sh("ip", &["link", "del", name]);
            }
        }
    }
}

/// Whether netem exists: try it on a throwaway veth pair.
fn probe_netem(tag: u32) -> bool {
    let (a, b) = (format!("oq{tag}a"), format!("oq{tag}b"));
    if sh(
        "ip",
        &["link", "add", &a, "type", "veth", "peer", "name", &b],
    )
    .is_err()
    {
        return false;
    }
    let ok = sh(
        "tc",
        &["qdisc", "add", "dev", &a, "root", "netem", "delay", "1ms"],
    )
    .is_ok();
    let _ = sh("ip", &["link", "del", &a]);
    ok
}

impl Drop for NetLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for i in 0..self.n() {
            self.kill(i);
        }
        for i in 0..self.n() {
            let _ = sh("ip", &["netns", "del", &self.ns(i)]);
        }
        // Deleting a namespace deletes its veth end, and with it the host end.
        let _ = sh("ip", &["link", "del", &self.bridge()]);
    }
}

/// Skip a test that needs the lab, loudly: the reason goes to stdout and stderr.
pub fn skip(test: &str, why: &str) {
    let msg = format!(
        "\n*** SKIPPED {test}: the network-namespace lab cannot run here: {why}.\n*** It needs root, iproute2 and iptables (scripts/test installs the packages when it runs as root).\n"
    );
    println!("{msg}");
    eprintln!("{msg}");
}
