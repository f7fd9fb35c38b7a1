//! End to end through consensus with several validators on this machine: `--validators N` real
//! nodes (Malachite engine over libp2p on loopback, HTTP API, store with fsync) started in this
//! process with `Timeouts::dev()` and equal stake. Client threads sign transfers and POST them,
//! sender k to validator k mod N (each validator's mempool only proposes what it was sent);
//! finality is from "accepted (202)" to "its block committed" on the validator that accepted it.
//!
//! Then catch-up: the last validator is shut down, the others finalize `--catchup-blocks` more
//! blocks (with `--catchup-txs` transfers in them), and the validator is started again from its
//! home; its value-sync speed is reported in blocks per second.

use crate::stats::{median, percentile, table};
use anyhow::{bail, Context, Result};
use opal_ledger::{Genesis, Params};
use opal_node::app::NodeEvent;
use opal_node::home::{KeyFile, NodeConfig};
use opal_node::{start_node, Home, NodeHandle, NodeOptions};
use opal_types::{Action, Amount, Hash, SecretKey, TxBody};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Validators (separate nodes in this process, equal stake).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Transfers to send in the throughput phase.
    #[arg(long, default_value_t = 20_000)]
    pub n: usize,
    /// Sending accounts; one client thread per account keeps its nonces in order.
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    /// Blocks the last validator misses before it restarts (0: skip the catch-up phase).
    #[arg(long, default_value_t = 200)]
    pub catchup_blocks: u64,
    /// Transfers sent while it is down.
    #[arg(long, default_value_t = 20_000)]
    pub catchup_txs: usize,
    /// Each client also sends every transfer to all the other validators.
    #[arg(long)]
    pub broadcast: bool,
    /// Every sender sends to the first validator only (the issue's "sent to a single
    /// validator"); without it sender k sends to validator k mod N.
    #[arg(long)]
    pub to_first: bool,
    /// Pace the load: this many transfers per second in all (spread over the senders);
    /// without it each sender sends as fast as its node answers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Turn mempool gossip off (then a transfer waits for the turn of the validator it was sent
    /// to, as before gossip).
    #[arg(long)]
    pub no_gossip: bool,
}

const CHAIN: &str = "opal-bench-net";

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

type Commits = Arc<Mutex<HashMap<(usize, Hash), Instant>>>;

fn watch_commits(rt: &tokio::runtime::Runtime, i: usize, node: &NodeHandle, commits: &Commits) {
    let mut rx = node.shared.events.subscribe();
    let c = commits.clone();
    rt.spawn(async move {
        loop {
            match rx.recv().await {
                Ok(NodeEvent::Tx { hash, .. }) => {
                    c.lock().insert((i, hash), Instant::now());
                }
                Ok(_) => {}
                // Blocks far above this benchmark's rates can overrun the broadcast (`e2e`
                // uses the height watch for that reason): say so instead of waiting forever.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("node {i}: the event stream dropped {n} events; their transfers will not be seen committed");
                }
                Err(_) => break,
            }
        }
    });
}

fn height(node: &NodeHandle) -> u64 {
    *node.shared.height.borrow()
}

/// Sign `per` transfers from each key starting at `nonce0`; one list per key.
fn sign_all(keys: &[SecretKey], nonce0: u64, per: usize) -> Vec<Vec<(Hash, String)>> {
    let sink = SecretKey::generate().address();
    let fee = Params::default().min_fee;
    keys.iter()
        .map(|k| {
            (nonce0..nonce0 + per as u64)
                .map(|nonce| {
                    let tx = TxBody {
                        chain_id: CHAIN.into(),
                        nonce,
                        fee,
                        action: Action::Transfer {
                            to: sink,
                            amount: Amount(1),
                        },
                    }
                    .sign(k);
                    (
                        tx.hash(),
                        json!({"tx": hex::encode(tx.to_bytes())}).to_string(),
                    )
                })
                .collect()
        })
        .collect()
}

/// POST every list from its own thread to `urls[k % urls.len()]`; returns (hash -> (node, accepted at)).
/// Where and how fast the clients send.
#[derive(Clone, Copy)]
struct Load {
    broadcast: bool,
    to_first: bool,
    rate: Option<f64>,
}

fn submit_all(
    signed: Vec<Vec<(Hash, String)>>,
    urls: &[(usize, String)],
    load: Load,
) -> Result<HashMap<Hash, (usize, Instant)>> {
    let broadcast = load.broadcast;
    let submitted: Arc<Mutex<HashMap<Hash, (usize, Instant)>>> = Arc::default();
    let senders = signed.len();
    let t0 = Instant::now();
    let threads: Vec<_> = signed
        .into_iter()
        .enumerate()
        .map(|(k, txs)| {
            let (node, url) = if load.to_first {
                urls[0].clone()
            } else {
                urls[k % urls.len()].clone()
            };
            let others: Vec<String> = if broadcast {
                urls.iter()
                    .filter(|(i, _)| *i != node)
                    .map(|(_, u)| u.clone())
                    .collect()
            } else {
                vec![]
            };
            let submitted = submitted.clone();
            std::thread::spawn(move || -> Result<()> {
                let http = reqwest::blocking::Client::new();
                for (j, (h, body)) in txs.into_iter().enumerate() {
                    if let Some(rate) = load.rate {
                        // Transfer j of sender k is due at (j × senders + k) / rate seconds.
                        let due =
                            t0 + Duration::from_secs_f64((j * senders + k) as f64 / rate.max(1e-3));
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    loop {
                        let r = http
                            .post(format!("{url}/api/txs"))
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()?;
                        let code = r.status().as_u16();
                        if code == 202 {
                            submitted.lock().insert(h, (node, Instant::now()));
                            // Best effort: a copy refused elsewhere (mempool full) is fine.
                            for o in &others {
                                let _ = http
                                    .post(format!("{o}/api/txs"))
                                    .header("content-type", "application/json")
                                    .body(body.clone())
                                    .send();
                            }
                            break;
                        }
                        if code == 503 {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        bail!(
                            "submission refused: {code} {}",
                            r.text().unwrap_or_default()
                        );
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    let s = std::mem::take(&mut *submitted.lock());
    Ok(s)
}

fn wait_committed(sub: &HashMap<Hash, (usize, Instant)>, commits: &Commits) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = {
            let c = commits.lock();
            sub.iter().all(|(h, (i, _))| c.contains_key(&(*i, *h)))
        };
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("transfers not all committed after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run(a: Args, quick: bool) -> Result<()> {
    let (n, senders, catchup_blocks, catchup_txs) = if quick {
        (200, 2, 5, 100)
    } else {
        (a.n, a.senders.max(1), a.catchup_blocks, a.catchup_txs)
    };
    let nv = a.validators.max(1);
    let dir = tempfile::tempdir()?;
    let vkeys: Vec<SecretKey> = (0..nv).map(|_| SecretKey::generate()).collect();
    let keys: Vec<SecretKey> = (0..senders).map(|_| SecretKey::generate()).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    // From JSON so that every other parameter keeps its default.
    let genesis: Genesis = serde_json::from_value(json!({
        "chain_id": CHAIN,
        "genesis_time_ms": now,
        "accounts": keys.iter().map(|k| json!({
            "address": k.address(),
            "balance": Amount(1 << 100),
        })).collect::<Vec<_>>(),
        "validators": vkeys.iter().enumerate().map(|(i, k)| json!({
            "name": format!("v{i}"),
            "public_key": k.public_key(),
            "vrf_key": k.vrf_public_key(),
            "stake": Amount(1_000_000_000_000),
        })).collect::<Vec<_>>(),
    }))?;
    let addrs: Vec<(std::net::SocketAddr, std::net::SocketAddr)> =
        (0..nv).map(|_| (free_addr(), free_addr())).collect();
    let homes: Vec<Home> = (0..nv)
        .map(|i| -> Result<Home> {
            let home = Home::new(dir.path().join(format!("v{i}")));
            std::fs::create_dir_all(dir.path().join(format!("v{i}")))?;
            KeyFile::new("validator", &vkeys[i]).write(&home.node_key_path())?;
            home.write_genesis(&genesis)?;
            let peers: Vec<String> = (0..nv)
                .filter(|j| *j != i)
                .map(|j| addrs[j].1.to_string())
                .collect();
            let gossip: Vec<String> = (0..nv)
                .filter(|j| *j != i && !a.no_gossip)
                .map(|j| format!("http://{}", addrs[j].0))
                .collect();
            let cfg: NodeConfig = serde_json::from_value(json!({
                "moniker": format!("v{i}"),
                "api_addr": addrs[i].0.to_string(),
                "p2p_addr": addrs[i].1.to_string(),
                "peers": peers,
                "check_invariants": false,
                "dev_timeouts": true,
                "gossip_peers": gossip,
            }))?;
            home.write_config(&cfg)?;
            Ok(home)
        })
        .collect::<Result<_>>()?;

    let rt = tokio::runtime::Runtime::new()?;
    let mut nodes: Vec<Option<NodeHandle>> = Vec::new();
    for h in &homes {
        nodes.push(Some(rt.block_on(start_node(h, NodeOptions::default()))?));
    }
    let commits: Commits = Arc::default();
    for (i, nd) in nodes.iter().enumerate() {
        watch_commits(&rt, i, nd.as_ref().context("started")?, &commits);
    }
    let start = Instant::now();
    while nodes.iter().flatten().any(|nd| height(nd) < 2) {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("validators did not reach height 2 in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "{nv} validators at height >= 2 after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let urls: Vec<(usize, String)> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, nd)| nd.as_ref().map(|nd| (i, format!("http://{}", nd.api_addr))))
        .collect();

    // Throughput and finality.
    let per = n / senders;
    let signed = sign_all(&keys, 0, per);
    let h_start = height(nodes[0].as_ref().context("node 0")?);
    let t_start = Instant::now();
    let load = Load {
        broadcast: a.broadcast,
        to_first: a.to_first,
        rate: a.rate,
    };
    let sub = submit_all(signed, &urls, load)?;
    wait_committed(&sub, &commits)?;
    let (lat, last) = {
        let c = commits.lock();
        let lat: Vec<f64> = sub
            .iter()
            .filter_map(|(h, (i, s))| c.get(&(*i, *h)).map(|t| (*t - *s).as_secs_f64() * 1e3))
            .collect();
        let last = sub
            .iter()
            .filter_map(|(h, (i, _))| c.get(&(*i, *h)).copied())
            .max()
            .context("nothing committed")?;
        (lat, last)
    };
    let elapsed = last - t_start;
    let total = per * senders;
    let blocks = height(nodes[0].as_ref().context("node 0")?) - h_start;
    table(
        &[
            "validators",
            "sent to",
            "transfers",
            "blocks",
            "transfers/s",
            "finality median ms",
            "finality p99 ms",
        ],
        &[vec![
            nv.to_string(),
            format!(
                "{}{}{}",
                if a.broadcast {
                    "all"
                } else if a.to_first {
                    "v0"
                } else {
                    "one each"
                },
                a.rate.map(|r| format!(" at {r}/s")).unwrap_or_default(),
                if a.no_gossip { ", no gossip" } else { "" }
            ),
            total.to_string(),
            blocks.to_string(),
            format!("{:.0}", total as f64 / elapsed.as_secs_f64()),
            format!("{:.0}", median(&lat)),
            format!("{:.0}", percentile(&lat, 99.0)),
        ]],
    );
    for (i, node) in nodes.iter().enumerate() {
        if let Some(node) = node {
            println!("v{i}: {}", crate::e2e::executions(&node.shared.metrics));
        }
    }

    if catchup_blocks > 0 && nv > 1 {
        // Catch-up: the last validator goes down and misses `catchup_blocks` blocks.
        let last_i = nv - 1;
        let down = nodes[last_i].take().context("running")?;
        let down_at = height(&down);
        rt.block_on(down.shutdown());
        eprintln!("v{last_i} shut down at height {down_at}");
        let live: Vec<(usize, String)> =
            urls.iter().filter(|(i, _)| *i != last_i).cloned().collect();
        let per2 = catchup_txs / senders;
        if per2 > 0 {
            let sub2 = submit_all(sign_all(&keys, per as u64, per2), &live, load)?;
            wait_committed(&sub2, &commits)?;
        }
        let target = down_at + catchup_blocks;
        let t = Instant::now();
        while height(nodes[0].as_ref().context("node 0")?) < target {
            if t.elapsed() > Duration::from_secs(1200) {
                bail!("the others did not reach {target}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let target = height(nodes[0].as_ref().context("node 0")?);
        eprintln!("others at {target}; restarting v{last_i}");
        let t_restart = Instant::now();
        let node = rt.block_on(start_node(&homes[last_i], NodeOptions::default()))?;
        let started = t_restart.elapsed();
        let from = height(&node);
        let t = Instant::now();
        while height(&node) < target {
            if t.elapsed() > Duration::from_secs(1200) {
                bail!("v{last_i} did not catch up to {target}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let sync = t.elapsed();
        table(
            &[
                "missed blocks",
                "transfers in them",
                "node start s",
                "sync s",
                "catch-up blocks/s",
            ],
            &[vec![
                (target - from).to_string(),
                (per2 * senders).to_string(),
                format!("{:.2}", started.as_secs_f64()),
                format!("{:.2}", sync.as_secs_f64()),
                format!("{:.1}", (target - from) as f64 / sync.as_secs_f64()),
            ]],
        );
        nodes[last_i] = Some(node);
    }
    for nd in nodes.into_iter().flatten() {
        rt.block_on(nd.shutdown());
    }
    Ok(())
}
