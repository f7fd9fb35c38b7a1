//! End to end through consensus: a real one-validator node (Malachite engine, HTTP API, store)
//! started in this process with `Timeouts::dev()`; client threads sign transfers and POST them
//! over HTTP; the node's event stream timestamps each commit. Reports transfers/s from the first
//! submission to the last commit, and time to finality (submission accepted → block committed).

use crate::stats::{median, percentile, table};
use anyhow::{bail, Context, Result};
use opal_ledger::{Genesis, GenesisAccount, GenesisValidator, Params};
use opal_node::home::{KeyFile, NodeConfig};
use opal_node::{start_node, Home, NodeOptions};
use opal_types::{Action, Amount, Hash, SecretKey, TxBody};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Transfers to send in total.
    #[arg(long, default_value_t = 20_000)]
    pub n: usize,
    /// Sending accounts; one client thread per account keeps its nonces in order.
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    /// Transactions per request: 0 sends each alone (`POST /api/txs`, JSON); N > 0 sends
    /// batches of N (`POST /api/txs/batch`, borsh), whose signatures the node verifies in
    /// parallel batches.
    #[arg(long, default_value_t = 0)]
    pub batch: usize,
    /// The chain's `max_block_txs` (default: the genesis default, 5,000).
    #[arg(long)]
    pub max_block_txs: Option<u32>,
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn run(a: Args, quick: bool) -> Result<()> {
    let (n, senders) = if quick {
        (200, 2)
    } else {
        (a.n, a.senders.max(1))
    };
    let batch = if quick && a.batch > 0 { 50 } else { a.batch };
    let dir = tempfile::tempdir()?;
    let home = Home::new(dir.path());
    let validator = SecretKey::generate();
    KeyFile::new("validator", &validator).write(&home.node_key_path())?;
    let keys: Vec<SecretKey> = (0..senders).map(|_| SecretKey::generate()).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let genesis = Genesis {
        chain_id: "opal-bench".into(),
        genesis_time_ms: now,
        params: Params {
            max_block_txs: a.max_block_txs.unwrap_or(Params::default().max_block_txs),
            ..Params::default()
        },
        staking: Default::default(),
        inference: Default::default(),
        governance: Default::default(),
        rewards: Default::default(),
        accounts: keys
            .iter()
            .map(|k| GenesisAccount {
                address: k.address(),
                balance: Amount(1 << 100),
            })
            .collect(),
        validators: vec![GenesisValidator {
            name: "v".into(),
            public_key: validator.public_key(),
            operator: None,
            stake: Amount(1_000_000_000_000),
            vrf_key: validator.vrf_public_key(),
        }],
    };
    home.write_genesis(&genesis)?;
    home.write_config(&NodeConfig {
        moniker: "bench".into(),
        api_addr: free_addr(),
        p2p_addr: free_addr(),
        peers: vec![],
        check_invariants: false,
        dev_timeouts: true,
        inference_key: None,
        artifact_peers: vec![],
        gossip_peers: vec![],
        retain_heights: None,
        peers_only: false,
        snapshot_interval: None,
        state_sync_peers: vec![],
    })?;

    let rt = tokio::runtime::Runtime::new()?;
    let node = rt.block_on(start_node(&home, NodeOptions::default()))?;
    let url = format!("http://{}", node.api_addr);
    let clock = HeightClock::start(&rt, &node.shared);
    let min_fee = Params::default().min_fee;
    let sink = SecretKey::generate().address();
    let per = n / senders;
    // Sign everything first so the measurement is the node, not the client's signing.
    let txs: Vec<Vec<opal_types::Transaction>> = keys
        .iter()
        .map(|k| {
            (0..per as u64)
                .map(|nonce| {
                    TxBody {
                        chain_id: "opal-bench".into(),
                        nonce,
                        fee: min_fee,
                        action: Action::Transfer {
                            to: sink,
                            amount: Amount(1),
                        },
                    }
                    .sign(k)
                })
                .collect()
        })
        .collect();
    // The limit on this machine, measured in this run: the same signatures verified in
    // parallel batches, as batch admission does, with nothing else running.
    let all: Vec<opal_types::Transaction> = txs.iter().flatten().cloned().collect();
    let t = Instant::now();
    let ok = opal_node::sigs::signatures_parallel(&all);
    let verify_rate = all.len() as f64 / t.elapsed().as_secs_f64();
    if ok.iter().any(|x| !x) {
        bail!("a pre-signed transfer does not verify");
    }
    drop(all);
    let signed: Vec<Vec<(Hash, Vec<u8>)>> = txs
        .iter()
        .map(|list| {
            list.iter()
                .map(|tx| {
                    let body = if batch == 0 {
                        serde_json::json!({"tx": hex::encode(tx.to_bytes())})
                            .to_string()
                            .into_bytes()
                    } else {
                        tx.to_bytes()
                    };
                    (tx.hash(), body)
                })
                .collect()
        })
        .collect();
    let last_of_each: Vec<Option<Hash>> = txs.iter().map(|l| l.last().map(|t| t.hash())).collect();
    drop(txs);
    let submitted: Arc<Mutex<HashMap<Hash, Instant>>> = Arc::default();
    let start = Instant::now();
    let threads: Vec<_> = signed
        .into_iter()
        .map(|txs| {
            let (url, submitted) = (url.clone(), submitted.clone());
            std::thread::spawn(move || -> Result<()> {
                let http = reqwest::blocking::Client::new();
                if batch > 0 {
                    return send_batches(&http, &url, txs, batch, &submitted);
                }
                for (h, body) in txs {
                    loop {
                        let r = http
                            .post(format!("{url}/api/txs"))
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()?;
                        let code = r.status().as_u16();
                        if code == 202 {
                            submitted.lock().insert(h, Instant::now());
                            break;
                        }
                        if code == 503 {
                            std::thread::sleep(Duration::from_millis(20)); // mempool full: back off
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
    let total = per * senders;
    let sub = submitted.lock();
    // Senders' transfers commit in nonce order: all are in once each sender's last one is.
    let lasts: Vec<Hash> = last_of_each.iter().flatten().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    while clock.locate(&node.shared, &lasts)?.len() < lasts.len() {
        if Instant::now() > deadline {
            bail!("not all {total} transfers committed after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let hashes: Vec<Hash> = sub.keys().copied().collect();
    let com = clock.locate(&node.shared, &hashes)?;
    if com.len() != total {
        bail!("{} of {total} transfers found committed", com.len());
    }
    let last = com
        .values()
        .map(|(t, _)| *t)
        .max()
        .context("nothing committed")?;
    let elapsed = last - start;
    let lat: Vec<f64> = sub
        .iter()
        .filter_map(|(h, s)| com.get(h).map(|(c, _)| (*c - *s).as_secs_f64() * 1e3))
        .collect();
    let heights: std::collections::BTreeSet<u64> = com.values().map(|(_, h)| *h).collect();
    let tps = total as f64 / elapsed.as_secs_f64();
    table(
        &[
            "transfers",
            "per request",
            "blocks",
            "txs/block",
            "transfers/s",
            "finality median ms",
            "finality p99 ms",
            "batch sig verify /s (same run)",
            "ratio",
        ],
        &[vec![
            total.to_string(),
            if batch == 0 {
                "1 (JSON)".into()
            } else {
                format!("{batch} (batch)")
            },
            heights.len().to_string(),
            format!("{:.0}", total as f64 / heights.len().max(1) as f64),
            format!("{tps:.0}"),
            format!("{:.0}", median(&lat)),
            format!("{:.0}", percentile(&lat, 99.0)),
            format!("{verify_rate:.0}"),
            format!("{:.2}", tps / verify_rate),
        ]],
    );
    drop(sub);
    phases(&node.shared.metrics, elapsed, heights.len());
    rt.block_on(node.shutdown());
    Ok(())
}

/// When each height was committed, from the node's height watch. Unlike the event broadcast,
/// which a reader drops behind on blocks of 15,000 transactions (it lags and loses events), a
/// watch cannot be overrun; a jump of several heights gives them all the same time.
struct HeightClock(Arc<Mutex<HashMap<u64, Instant>>>);

impl HeightClock {
    fn start(rt: &tokio::runtime::Runtime, shared: &opal_node::app::Shared) -> Self {
        let times: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let mut rx = shared.height.subscribe();
        let t = times.clone();
        rt.spawn(async move {
            let mut seen = *rx.borrow_and_update();
            while rx.changed().await.is_ok() {
                let h = *rx.borrow_and_update();
                let now = Instant::now();
                let mut t = t.lock();
                for height in seen + 1..=h {
                    t.insert(height, now);
                }
                seen = seen.max(h);
            }
        });
        HeightClock(times)
    }

    /// Commit time and height of those of `hashes` that are committed (the node's tx index).
    fn locate(
        &self,
        shared: &opal_node::app::Shared,
        hashes: &[Hash],
    ) -> Result<HashMap<Hash, (Instant, u64)>> {
        let snap = shared.snapshot().map_err(|e| anyhow::anyhow!("{e}"))?;
        let times = self.0.lock();
        let mut out = HashMap::new();
        for h in hashes {
            let loc = shared
                .tx_location(&snap, h)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(at) = loc.and_then(|l| times.get(&l.height).map(|t| (*t, l.height))) {
                out.insert(*h, at);
            }
        }
        Ok(out)
    }
}

/// Where the node ran its blocks' state transitions (`opal_block_executions_total`).
pub fn executions(m: &opal_node::metrics::Metrics) -> String {
    format!(
        "blocks executed while built {}, ahead of the decision {}, at commit {}",
        m.blocks_executed("build"),
        m.blocks_executed("ahead"),
        m.blocks_executed("commit")
    )
}

/// Where a block's time goes, from the node's own histograms (`/metrics`): mean per block of
/// each phase, against the mean time between the run's blocks.
pub fn phases(m: &opal_node::metrics::Metrics, elapsed: Duration, blocks: usize) {
    let metrics = &m.render();
    let read = |name: &str| -> Option<f64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    let cycle_ms = elapsed.as_secs_f64() * 1e3 / blocks.max(1) as f64;
    let mut rows = vec![];
    for (phase, what) in [
        ("build", "block_build_seconds"),
        ("execute", "block_execute_seconds"),
        ("store (state + records, fsync)", "block_store_seconds"),
        ("commit (execute + store + upkeep)", "block_commit_seconds"),
    ] {
        let (Some(sum), Some(count)) = (
            read(&format!("opal_{what}_sum")),
            read(&format!("opal_{what}_count")),
        ) else {
            continue;
        };
        let mean = sum * 1e3 / count.max(1.0);
        rows.push(vec![
            phase.to_string(),
            format!("{count:.0}"),
            format!("{mean:.1}"),
            format!("{:.0}%", 100.0 * mean / cycle_ms),
        ]);
    }
    println!("mean time between blocks in the run: {cycle_ms:.1} ms");
    println!("{}", executions(m));
    table(&["phase", "blocks", "mean ms", "of block interval"], &rows);
}

/// One sender's transfers in batches of `size` (`POST /api/txs/batch`); a refused one (a full
/// mempool) is sent again from there after a pause.
fn send_batches(
    http: &reqwest::blocking::Client,
    url: &str,
    txs: Vec<(Hash, Vec<u8>)>,
    size: usize,
    submitted: &Mutex<HashMap<Hash, Instant>>,
) -> Result<()> {
    let mut next = 0;
    while next < txs.len() {
        let end = (next + size).min(txs.len());
        let want = end - next;
        let body = opal_node::gossip::GossipBatch {
            txs: txs[next..end].iter().map(|(_, b)| b.clone()).collect(),
        }
        .to_bytes();
        let r = http
            .post(format!("{url}/api/txs/batch"))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()?;
        if r.status().as_u16() != 200 {
            bail!(
                "batch refused: {} {}",
                r.status(),
                r.text().unwrap_or_default()
            );
        }
        let reply: opal_api::BatchReply = r.json()?;
        let now = Instant::now();
        let mut accepted = 0;
        for item in &reply.results {
            match (&item.hash, &item.error) {
                (Some(h), _) => {
                    submitted.lock().insert(*h, now);
                    accepted += 1;
                }
                (None, Some(e)) if e.code == "mempool_full" || e.code == "sender_limit" => break,
                (None, e) => bail!("a transfer was refused: {e:?}"),
            }
        }
        next += accepted;
        if accepted < want {
            std::thread::sleep(Duration::from_millis(20)); // mempool full: back off
        }
    }
    Ok(())
}
