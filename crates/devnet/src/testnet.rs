//! `opal testnet`: N validators as separate `opal node start` processes on 127.0.0.1, sharing one
//! genesis, all in one home directory:
//!
//! ```text
//! HOME/node0 .. HOME/nodeN-1   complete node homes (config.toml, genesis.json, node_key.json,
//!                              data/), each with its log in node.log
//! HOME/keys/NAME.json          funded development accounts
//! HOME/genesis.json            the shared genesis (a copy; each node reads its own)
//! HOME/testnet.json            what runs: chain id, each validator's pid, API URL, p2p address
//! ```
//!
//! The command stays in the foreground; Ctrl-C or SIGTERM stops every validator it started with
//! SIGTERM (each finishes its block and closes its store) and waits for them. Run it again on the
//! same home to resume the same chain.

use crate::{now_ms, Output, DEV_BALANCE, DEV_NAMES};
use anyhow::{anyhow, bail, Context, Result};
use opal_ledger::{Genesis, GenesisAccount, GenesisValidator, Params};
use opal_node::home::{write_atomic, KeyFile, NodeConfig};
use opal_node::Home;
use opal_types::{Amount, SecretKey};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHAIN_ID: &str = "opal-testnet";
/// Every validator's self-delegated stake: 10^12 base units, so equal voting power.
const VALIDATOR_STAKE: u128 = 1_000_000_000_000;
/// What each validator's operator account holds at genesis, for its fees.
const OPERATOR_BALANCE: u128 = 1_000_000_000;
pub const DEFAULT_VALIDATORS: usize = 4;
pub const MAX_VALIDATORS: usize = 32;
pub const DEFAULT_BASE_PORT: u16 = 8800;
/// A validator that fails this soon after start is a configuration problem: stop everything.
const EARLY_EXIT: Duration = Duration::from_secs(3);

fn node_home(root: &Path, i: usize) -> Home {
    Home::new(root.join(format!("node{i}")))
}

/// The testnet's validator homes, in order: node0, node1, ... as long as they exist.
fn existing_nodes(root: &Path) -> Vec<Home> {
    (0..)
        .map(|i| node_home(root, i))
        .take_while(|h| h.root.is_dir())
        .collect()
}

struct Validator {
    name: String,
    home: Home,
    config: NodeConfig,
    public_key: String,
}

/// How `opal testnet` runs.
#[derive(Clone, Debug)]
pub struct TestnetOptions {
    /// Number of validators; `None`: 4, or the existing testnet's count.
    pub validators: Option<usize>,
    /// Home directory of the testnet.
    pub home: PathBuf,
    /// First port (validator i: API on BASE+2i, p2p on BASE+2i+1; 0 picks free ports); `None`:
    /// the stored ports on resume, 8800 for a new testnet.
    pub base_port: Option<u16>,
    /// Funded development accounts created on first run.
    pub accounts: usize,
    /// Delete the home first and start a fresh chain.
    pub reset: bool,
    /// The `opal` executable each validator runs as `opal node start --home HOME/nodeI`.
    pub exe: PathBuf,
    /// Genesis parameters to set on first run (`section.field=value`, as governance names
    /// them; each within its governance bounds). Ignored on resume: the chain has its genesis.
    pub params: Vec<opal_types::gov::ParamChange>,
    /// The address each validator listens on and the others dial, one per validator (e.g. the
    /// machines of a real network, or network namespaces); empty: 127.0.0.1 for all. On
    /// resume, empty keeps the stored addresses.
    pub hosts: Vec<IpAddr>,
    /// Prune every validator of a new testnet to the last N heights (`None`: archive).
    pub retain_heights: Option<u64>,
    /// Every validator of a new testnet offers state-sync snapshots at multiples of this.
    pub snapshot_interval: Option<u64>,
    /// Every validator of a new testnet holds connections only to the other validators.
    pub peers_only: bool,
    /// Write a new testnet's homes and exit without running it: each validator is then started
    /// with `opal node start --home HOME/nodeI` on its host.
    pub init_only: bool,
}

/// `opal testnet`: create or resume the testnet, run its validators until a signal, stop them.
pub fn run(a: TestnetOptions, out: Output) -> Result<()> {
    let root = a.home.clone();
    // Absolute, so that testnet.json and the validators' command lines name it unambiguously.
    let root = std::path::absolute(&root)
        .with_context(|| format!("resolving the home directory {}", root.display()))?;
    if let Some(n) = a.validators {
        if n == 0 || n > MAX_VALIDATORS {
            bail!("--validators must be between 1 and {MAX_VALIDATORS} (got {n})");
        }
    }
    if a.accounts == 0 || a.accounts > DEV_NAMES.len() {
        bail!(
            "--accounts must be between 1 and {} (got {})",
            DEV_NAMES.len(),
            a.accounts
        );
    }
    if let Some(n) = a.validators {
        if !a.hosts.is_empty() && a.hosts.len() != n {
            bail!(
                "--hosts names {} addresses for {n} validators; give one per validator",
                a.hosts.len()
            );
        }
    }
    if let Some(r) = a.retain_heights {
        if r < opal_node::prune::MIN_RETAIN_HEIGHTS {
            bail!(
                "--retain-heights {r}: a pruning node keeps at least {} heights",
                opal_node::prune::MIN_RETAIN_HEIGHTS
            );
        }
    }
    if !a.hosts.is_empty() && a.base_port == Some(0) {
        bail!(
            "--base-port 0 picks free ports on this machine; with --hosts give a fixed base port"
        );
    }
    refuse_if_running(&root)?;
    if a.reset && root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }

    let fresh = !node_home(&root, 0).config_path().is_file();
    let validators = if fresh {
        clear_partial_init(&root)?;
        let n = a.validators.unwrap_or(if a.hosts.is_empty() {
            DEFAULT_VALIDATORS
        } else {
            a.hosts.len()
        });
        let hosts = hosts_or_local(&a.hosts, n);
        let ports = choose_ports(n, a.base_port.unwrap_or(DEFAULT_BASE_PORT))?;
        let mut vs = init(&root, n, a.accounts, &hosts, &ports, &a.params)?;
        if let Some(r) = a.retain_heights {
            for v in &mut vs {
                v.config.retain_heights = Some(r);
            }
        }
        if let Some(k) = a.snapshot_interval {
            for v in &mut vs {
                v.config.snapshot_interval = Some(k);
            }
        }
        if a.peers_only {
            for v in &mut vs {
                v.config.peers_only = true;
            }
        }
        for v in &vs {
            v.home.write_config(&v.config)?;
        }
        vs
    } else if a.init_only {
        bail!(
            "{} already holds a testnet; --init-only writes a new one (pass --reset to replace it)",
            root.display()
        );
    } else {
        let vs = load(&root)?;
        if let Some(n) = a.validators {
            if n != vs.len() {
                bail!(
                    "{} holds a {}-validator testnet, not {n}; pass --validators {} to resume it, \
                     or --reset to delete it and start a new {n}-validator chain",
                    root.display(),
                    vs.len(),
                    vs.len()
                );
            }
        }
        if !a.hosts.is_empty() && a.hosts.len() != vs.len() {
            bail!(
                "--hosts names {} addresses for this {}-validator testnet; give one per validator",
                a.hosts.len(),
                vs.len()
            );
        }
        if a.base_port.is_some() || !a.hosts.is_empty() {
            let hosts = if a.hosts.is_empty() {
                vs.iter().map(|v| v.config.p2p_addr.ip()).collect()
            } else {
                a.hosts.clone()
            };
            let ports = match a.base_port {
                Some(base) => choose_ports(vs.len(), base)?,
                None => vs
                    .iter()
                    .map(|v| (v.config.api_addr.port(), v.config.p2p_addr.port()))
                    .collect(),
            };
            reassign(vs, &hosts, &ports)?
        } else {
            vs
        }
    };
    if a.init_only {
        print_init_only(&root, &validators, out);
        return Ok(());
    }
    check_ports_free(&validators)?;
    serve(&root, validators, fresh, &a.exe, out)
}

/// Refuse to start a second set of processes on a home whose testnet still runs.
fn refuse_if_running(root: &Path) -> Result<()> {
    let Ok(s) = std::fs::read_to_string(root.join("testnet.json")) else {
        return Ok(());
    };
    let Ok(v) = serde_json::from_str::<Value>(&s) else {
        return Ok(());
    };
    let mut live = vec![];
    if let Some(pid) = v["orchestrator_pid"].as_u64() {
        if pid as u32 != std::process::id() && process_runs(pid as u32, root) {
            live.push(format!("opal testnet (pid {pid})"));
        }
    }
    for val in v["validators"].as_array().into_iter().flatten() {
        if let (Some(pid), Some(name)) = (val["pid"].as_u64(), val["name"].as_str()) {
            if process_runs(pid as u32, root) {
                live.push(format!("{name} (pid {pid})"));
            }
        }
    }
    if !live.is_empty() {
        bail!(
            "the testnet in {} is still running: {}; stop it first (Ctrl-C in its terminal, or \
             `kill <pid>`)",
            root.display(),
            live.join(", ")
        );
    }
    Ok(())
}

/// Whether `pid` is alive and (where /proc exists) is an opal process using `root`.
fn process_runs(pid: u32, root: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if Path::new("/proc/self").exists() {
        let Ok(cmdline) = std::fs::read(proc.join("cmdline")) else {
            return false;
        };
        if let Ok(stat) = std::fs::read_to_string(proc.join("stat")) {
            // A zombie (state Z) has exited already.
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
            {
                return false;
            }
        }
        let cmdline = String::from_utf8_lossy(&cmdline);
        let root = root.to_string_lossy();
        return cmdline.contains(root.as_ref()) || cmdline.contains("testnet");
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A first run interrupted before every config was written leaves homes without data: start
/// over. Anything else in the directory is not ours to delete.
fn clear_partial_init(root: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Ok(());
    };
    let mut ours = vec![];
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let is_node = name
            .strip_prefix("node")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_node && e.path().join("data").exists() {
            bail!(
                "{} holds chain data but node0 has no config.toml; it is not a testnet this \
                 command can resume. Repair node0/config.toml, or pass --reset to delete it all",
                root.display()
            );
        }
        if is_node
            || ["keys", "genesis.json", "testnet.json"].contains(&name.as_str())
            || name.starts_with('.')
        {
            ours.push(e.path());
        } else {
            bail!(
                "{} is not empty and is not a testnet home (it holds {name:?}); choose another \
                 --home or an empty directory",
                root.display()
            );
        }
    }
    for p in ours {
        if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        }
        .with_context(|| format!("removing the unfinished {}", p.display()))?;
    }
    Ok(())
}

/// (api, p2p) for each validator: BASE+2i and BASE+2i+1, or free ports when `base` is 0.
fn choose_ports(n: usize, base: u16) -> Result<Vec<(u16, u16)>> {
    if base == 0 {
        // Hold every listener until all are chosen, so no port is picked twice.
        let mut held = vec![];
        for _ in 0..2 * n {
            let l = TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
            held.push(l);
        }
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<_>>()?;
        return Ok(ports.chunks(2).map(|c| (c[0], c[1])).collect());
    }
    let last = base as usize + 2 * n - 1;
    if last > u16::MAX as usize {
        bail!(
            "--base-port {base} leaves no room for {n} validators (ports up to {last} needed; \
             the highest is 65535)"
        );
    }
    Ok((0..n)
        .map(|i| (base + 2 * i as u16, base + 2 * i as u16 + 1))
        .collect())
}

/// The given hosts, or 127.0.0.1 for each of `n` validators.
fn hosts_or_local(hosts: &[IpAddr], n: usize) -> Vec<IpAddr> {
    if hosts.is_empty() {
        vec![IpAddr::from([127, 0, 0, 1]); n]
    } else {
        hosts.to_vec()
    }
}

fn config_for(name: &str, hosts: &[IpAddr], ports: &[(u16, u16)], i: usize) -> NodeConfig {
    let addr = |j: usize, port: u16| SocketAddr::new(hosts[j], port);
    NodeConfig {
        moniker: name.to_string(),
        api_addr: addr(i, ports[i].0),
        p2p_addr: addr(i, ports[i].1),
        peers: ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, p)| addr(j, p.1))
            .collect(),
        check_invariants: true,
        dev_timeouts: true,
        inference_key: None,
        artifact_peers: vec![],
        // Every other validator's API: a transaction sent to any of them reaches all.
        retain_heights: None,
        peers_only: false,
        snapshot_interval: None,
        state_sync_peers: vec![],
        gossip_peers: ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, p)| format!("http://{}", addr(j, p.0)))
            .collect(),
    }
}

/// Create the homes: keys first, then the shared genesis, then the configs (a home with a
/// config is complete; node0's config is written last of all).
fn init(
    root: &Path,
    n: usize,
    accounts: usize,
    hosts: &[IpAddr],
    ports: &[(u16, u16)],
    params: &[opal_types::gov::ParamChange],
) -> Result<Vec<Validator>> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let mut keys = vec![];
    for i in 0..n {
        let home = node_home(root, i);
        let name = format!("node{i}");
        let key = SecretKey::generate();
        KeyFile::new(&name, &key)
            .write(&home.node_key_path())
            .with_context(|| format!("writing {}", home.node_key_path().display()))?;
        keys.push((name, home, key));
    }
    let mut genesis_accounts = vec![];
    for name in &DEV_NAMES[..accounts] {
        let k = SecretKey::generate();
        let p = root.join("keys").join(format!("{name}.json"));
        KeyFile::new(name, &k)
            .write(&p)
            .with_context(|| format!("writing {}", p.display()))?;
        genesis_accounts.push(GenesisAccount {
            address: k.address(),
            balance: Amount(DEV_BALANCE),
        });
    }
    // Each validator's operator account pays the fees of its own transactions (votes,
    // unjail).
    for (_, _, k) in &keys {
        genesis_accounts.push(GenesisAccount {
            address: k.address(),
            balance: Amount(OPERATOR_BALANCE),
        });
    }
    let mut genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: now_ms(),
        params: Params::default(),
        staking: Default::default(),
        inference: Default::default(),
        governance: Default::default(),
        rewards: Default::default(),
        accounts: genesis_accounts,
        validators: keys
            .iter()
            .map(|(name, _, k)| GenesisValidator {
                name: name.clone(),
                public_key: k.public_key(),
                operator: None,
                stake: Amount(VALIDATOR_STAKE),
                vrf_key: k.vrf_public_key(),
            })
            .collect(),
    };
    if !params.is_empty() {
        let all = opal_ledger::param_table::apply(&genesis.all_params(), params)
            .map_err(|e| anyhow!("--param: {e}"))?;
        genesis.params = all.chain;
        genesis.staking = all.staking;
        genesis.inference = all.inference;
        genesis.governance = all.governance;
        genesis.rewards = all.rewards;
    }
    genesis
        .validate()
        .map_err(|e| anyhow!("the testnet genesis is invalid: {e}"))?;
    write_atomic(
        &root.join("genesis.json"),
        genesis.to_json().as_bytes(),
        false,
    )?;
    for (_, home, _) in &keys {
        home.write_genesis(&genesis)?;
    }
    let mut out = vec![];
    for (i, (name, home, key)) in keys.into_iter().enumerate().rev() {
        let config = config_for(&name, hosts, ports, i);
        home.write_config(&config)?;
        out.push(Validator {
            name,
            home,
            config,
            public_key: key.public_key().to_hex(),
        });
    }
    out.reverse();
    Ok(out)
}

/// Read an existing testnet: every home complete and on the same genesis.
fn load(root: &Path) -> Result<Vec<Validator>> {
    let homes = existing_nodes(root);
    let mut genesis: Option<Genesis> = None;
    let mut out = vec![];
    for home in homes {
        if let Some(missing) = crate::home::missing_parts(&home) {
            bail!(
                "{} is incomplete (missing {missing}); repair it, or pass --reset to delete the \
                 whole testnet and start a new chain",
                home.root.display()
            );
        }
        let g = home
            .read_genesis()
            .with_context(|| format!("reading {}", home.genesis_path().display()))?;
        match &genesis {
            None => genesis = Some(g),
            Some(first) if *first != g => bail!(
                "{} has a different genesis.json than node0; every validator of a testnet must \
                 share one. Pass --reset to start over",
                home.genesis_path().display()
            ),
            Some(_) => {}
        }
        let config = home.read_config()?;
        let key = home.node_key()?;
        let name = home
            .root
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        out.push(Validator {
            name,
            home,
            config,
            public_key: key.public_key().to_hex(),
        });
    }
    if out.is_empty() {
        bail!(
            "{} holds no validator homes (node0, node1, ...)",
            root.display()
        );
    }
    Ok(out)
}

/// Move a resumed testnet's validators to new addresses: their own, their peers' and their
/// gossip peers'.
fn reassign(vs: Vec<Validator>, hosts: &[IpAddr], ports: &[(u16, u16)]) -> Result<Vec<Validator>> {
    let mut out = vec![];
    for (i, mut v) in vs.into_iter().enumerate() {
        let c = config_for(&v.name, hosts, ports, i);
        v.config.api_addr = c.api_addr;
        v.config.p2p_addr = c.p2p_addr;
        v.config.peers = c.peers;
        v.config.gossip_peers = c.gossip_peers;
        v.home.write_config(&v.config)?;
        out.push(v);
    }
    Ok(out)
}

fn check_ports_free(vs: &[Validator]) -> Result<()> {
    for v in vs {
        for (what, a) in [("API", v.config.api_addr), ("p2p", v.config.p2p_addr)] {
            if let Err(e) = TcpListener::bind(a) {
                bail!(
                    "{}'s {what} address {a} cannot be used ({e}); stop whatever listens there, or \
                     pass --base-port P to move the whole testnet (0 picks free ports)",
                    v.name
                );
            }
        }
    }
    Ok(())
}

fn spawn(v: &Validator, exe: &Path) -> Result<Child> {
    let log_path = v.home.root.join("node.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let log2 = log.try_clone()?;
    let mut cmd = Command::new(exe);
    cmd.args(["node", "start", "--home"])
        .arg(&v.home.root)
        .env_remove("OPAL_HOME")
        // Plain text in node.log, no terminal colour codes.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // Own process group: a Ctrl-C reaches only this command, which then stops the validators
    // in order (and a validator killed by hand does not take the others with it).
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.spawn().with_context(|| {
        format!(
            "starting {} (`opal node start --home {}`)",
            v.name,
            v.home.root.display()
        )
    })
}

fn testnet_json(root: &Path, vs: &[Validator], pids: &[Option<u32>], running: bool) -> Value {
    let accounts: Vec<Value> = KeyFile::read_dir(&root.join("keys"))
        .into_iter()
        .filter_map(|(p, k)| {
            k.ok()
                .map(|k| json!({"name": k.name, "address": k.address, "key_file": p}))
        })
        .collect();
    json!({
        "chain_id": CHAIN_ID,
        "home": root,
        "running": running,
        "orchestrator_pid": std::process::id(),
        "validators": vs.iter().zip(pids).map(|(v, pid)| json!({
            "name": v.name,
            "home": v.home.root,
            "pid": pid,
            "api_url": format!("http://{}", v.config.api_addr),
            "p2p_addr": v.config.p2p_addr.to_string(),
            "public_key": v.public_key,
            "log": v.home.root.join("node.log"),
        })).collect::<Vec<_>>(),
        "accounts": accounts,
    })
}

fn write_testnet_json(root: &Path, v: &Value) -> Result<()> {
    let p = root.join("testnet.json");
    let s = serde_json::to_string_pretty(v).context("encoding testnet.json")?;
    write_atomic(&p, s.as_bytes(), false).with_context(|| format!("writing {}", p.display()))
}

fn log_tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

fn serve(root: &Path, vs: Vec<Validator>, fresh: bool, exe: &Path, out: Output) -> Result<()> {
    let mut children: Vec<Option<Child>> = vec![];
    for v in &vs {
        match spawn(v, exe) {
            Ok(c) => children.push(Some(c)),
            Err(e) => {
                stop_all(&vs, &mut children);
                return Err(e);
            }
        }
    }
    let pids: Vec<Option<u32>> = children
        .iter()
        .map(|c| c.as_ref().map(|c| c.id()))
        .collect();
    let info = testnet_json(root, &vs, &pids, true);
    if let Err(e) = write_testnet_json(root, &info) {
        stop_all(&vs, &mut children);
        return Err(e);
    }
    print_summary(root, &info, fresh, out);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = Instant::now();
    let result = rt.block_on(async {
        let mut signal = Box::pin(wait_for_signal());
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = &mut signal => return Ok(()),
                _ = tick.tick() => {}
            }
            for (i, slot) in children.iter_mut().enumerate() {
                let Some(c) = slot.as_mut() else { continue };
                if let Ok(Some(status)) = c.try_wait() {
                    let log = vs[i].home.root.join("node.log");
                    *slot = None;
                    // Exiting on its own with an error right away is a configuration problem;
                    // a validator killed by a signal (an operator or a test) is not.
                    if started.elapsed() < EARLY_EXIT && status.code().is_some_and(|c| c != 0) {
                        return Err(anyhow!(
                            "{} exited at start with {status}; its log ({}) ends with:\n{}",
                            vs[i].name,
                            log.display(),
                            log_tail(&log)
                        ));
                    }
                    eprintln!(
                        "{} (pid {}) exited with {status}; see {}. The others keep running; \
                         restart it with `opal node start --home {}`",
                        vs[i].name,
                        pids[i].unwrap_or(0),
                        log.display(),
                        vs[i].home.root.display()
                    );
                }
            }
        }
    });
    drop(rt);
    eprintln!("stopping {} validators…", vs.len());
    let clean = stop_all(&vs, &mut children);
    let none: Vec<Option<u32>> = vec![None; vs.len()];
    let _ = write_testnet_json(root, &testnet_json(root, &vs, &none, false));
    result?;
    if !clean {
        bail!("some validators did not stop within 30 s of SIGTERM and were killed; see their node.log");
    }
    eprintln!(
        "stopped cleanly; run `opal testnet --home {}` again to resume",
        root.display()
    );
    Ok(())
}

/// SIGTERM every running child, wait up to 30 s, then SIGKILL what is left. `true` if all
/// stopped on SIGTERM.
fn stop_all(vs: &[Validator], children: &mut [Option<Child>]) -> bool {
    let pids: Vec<String> = children
        .iter_mut()
        .filter_map(|c| c.as_mut())
        .filter_map(|c| matches!(c.try_wait(), Ok(None)).then(|| c.id().to_string()))
        .collect();
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut clean = true;
    for (i, slot) in children.iter_mut().enumerate() {
        let Some(c) = slot.as_mut() else { continue };
        loop {
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    eprintln!("{} did not stop in time; killing it", vs[i].name);
                    let _ = c.kill();
                    let _ = c.wait();
                    clean = false;
                    break;
                }
            }
        }
        *slot = None;
    }
    clean
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// What `--init-only` wrote, and how to start each validator.
fn print_init_only(root: &Path, vs: &[Validator], out: Output) {
    if out == Output::Json {
        let vals: Vec<Value> = vs
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "home": v.home.root,
                    "api_addr": v.config.api_addr.to_string(),
                    "p2p_addr": v.config.p2p_addr.to_string(),
                    "public_key": v.public_key,
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "home": root, "chain_id": CHAIN_ID, "validators": vals })
        );
        return;
    }
    println!(
        "Opal testnet, chain {CHAIN_ID}, {} validators written to {} (not started)",
        vs.len(),
        root.display()
    );
    println!("  start each validator on its host:");
    for v in vs {
        println!(
            "  {:<6} API {}  p2p {}  opal node start --home {}",
            v.name,
            v.config.api_addr,
            v.config.p2p_addr,
            v.home.root.display()
        );
    }
    println!(
        "  funded development accounts: key files in {}",
        root.join("keys").display()
    );
}

fn print_summary(root: &Path, info: &Value, fresh: bool, out: Output) {
    if out == Output::Json {
        let mut v = info.clone();
        v["fresh"] = json!(fresh);
        println!("{v}");
        return;
    }
    let vals = info["validators"].as_array().cloned().unwrap_or_default();
    println!(
        "Opal testnet, chain {CHAIN_ID}, {} validators ({})",
        vals.len(),
        if fresh { "new" } else { "resumed" }
    );
    println!(
        "  home      {}   (details: {})",
        root.display(),
        root.join("testnet.json").display()
    );
    for v in &vals {
        println!(
            "  {:<6} pid {:<8} API {}  p2p {}  log {}",
            v["name"].as_str().unwrap_or("?"),
            v["pid"],
            v["api_url"].as_str().unwrap_or("?"),
            v["p2p_addr"].as_str().unwrap_or("?"),
            v["log"].as_str().unwrap_or("?"),
        );
    }
    println!(
        "  funded development accounts (key files in {}):",
        root.join("keys").display()
    );
    for a in info["accounts"].as_array().into_iter().flatten() {
        println!(
            "    {:<6} {}",
            a["name"].as_str().unwrap_or("?"),
            a["address"].as_str().unwrap_or("?")
        );
    }
    let accts = info["accounts"].as_array().cloned().unwrap_or_default();
    if let (Some(v), Some(a)) = (vals.first(), accts.first()) {
        let to = accts.get(1).unwrap_or(a);
        let url = v["api_url"].as_str().unwrap_or("?");
        println!("  try:");
        println!("    opal query status --node {url}");
        println!(
            "    opal tx transfer --from {} --to {} --amount 1000 --node {url}",
            a["key_file"].as_str().unwrap_or("?"),
            to["address"].as_str().unwrap_or("?")
        );
    }
    println!("Press Ctrl-C to stop all validators; run again to resume.");
}
