//! `transfers`: the ledger path of a block without consensus: decode + stateless checks (with
//! signature) of every transaction, `execute_block` on an overlay over the on-disk store, and the
//! durable `Store::commit`.

use crate::common::key;
use crate::stats::{group, median, ms, percentile, table};
use anyhow::{bail, Context};
use opal_ledger::{check_tx_stateless, execute_block};
use opal_state::{Overlay, Store};
use opal_types::{Action, Amount, Hash, Transaction, TxBody};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Transactions per block.
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    /// Blocks (after one untimed warm-up block).
    #[arg(long, default_value_t = 20)]
    pub blocks: usize,
    /// Funded genesis accounts; senders rotate over them.
    #[arg(long, default_value_t = 1000)]
    pub accounts: u64,
}

const CHAIN_ID: &str = "opal-bench";

pub fn run(mut args: Args, quick: bool) -> anyhow::Result<()> {
    if quick {
        args.n = 200;
        args.blocks = 3;
        args.accounts = 100;
    }
    let (n, k, a) = (args.n, args.blocks, args.accounts.max(2));
    let keys: Vec<_> = (0..a).map(key).collect();
    let addrs: Vec<_> = keys.iter().map(|k| k.address()).collect();
    let proposer = key(u64::MAX);
    let genesis = crate::common::genesis(CHAIN_ID, &addrs, &proposer);
    let params = genesis.params.clone();

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.redb");
    let store = Store::open(&path)?;
    let mut g = Overlay::empty();
    genesis.apply(&mut g)?;
    store.commit(0, g.into_writes(), BTreeMap::new())?;

    // Pre-sign every transaction (untimed) and keep only canonical bytes, as a node receives them.
    let total_blocks = k + 1;
    eprintln!(
        "transfers: signing {} txs ({} blocks x {n}) from {a} accounts...",
        total_blocks * n,
        total_blocks
    );
    let blocks_bytes: Vec<Vec<Vec<u8>>> = (0..total_blocks)
        .map(|b| {
            (0..n)
                .map(|i| {
                    let g = (b * n + i) as u64;
                    let s = g % a;
                    let to = (s + 1 + (g.wrapping_mul(7919)) % (a - 1)) % a;
                    TxBody {
                        chain_id: CHAIN_ID.into(),
                        nonce: g / a,
                        fee: params.min_fee,
                        action: Action::Transfer {
                            to: addrs[to as usize],
                            amount: Amount(1),
                        },
                    }
                    .sign(&keys[s as usize])
                    .to_bytes()
                })
                .collect()
        })
        .collect();
    let tx_bytes: usize = blocks_bytes[0].iter().map(Vec::len).sum::<usize>() / n;

    let (mut t_dec, mut t_exe, mut t_com, mut t_all) = (vec![], vec![], vec![], vec![]);
    // The same execution with every signature counted as verified at admission, as a node
    // runs it for the transactions of its own mempool (not part of the end-to-end time).
    let mut t_exe_once = vec![];
    let ledger = opal_ledger::Ledger::new();
    let mut parent = Hash::ZERO;
    let mut prev_root = Hash(store.root_at(0)?);
    for (b, raw) in blocks_bytes.iter().enumerate() {
        let height = b as u64 + 1;
        let t0 = Instant::now();
        // 1. decode + stateless checks incl. signature (the node does this at admission and when
        //    it verifies a proposed block), and assemble the block (tx_root).
        let mut txs = Vec::with_capacity(n);
        for bytes in raw {
            let tx = Transaction::from_bytes(bytes, params.max_tx_bytes as usize)?;
            check_tx_stateless(&tx, bytes.len(), CHAIN_ID, &params, true)
                .map_err(|e| anyhow::anyhow!("stateless check: {e}"))?;
            txs.push(tx);
        }
        let block = crate::common::block(
            CHAIN_ID,
            genesis.genesis_time_ms,
            height,
            parent,
            prev_root,
            &proposer,
            txs,
        );
        let t1 = Instant::now();
        // 2. execute (includes execute_block's own batch signature check).
        let mut overlay = Overlay::new(store.snapshot()?);
        let result = execute_block(&mut overlay, &block)?;
        let writes = overlay.into_writes();
        let t2 = Instant::now();
        let mut again = Overlay::new(store.snapshot()?);
        let t_again = Instant::now();
        ledger.execute_block_with(&mut again, &block, &|_| true)?;
        let exe_once = ms(t_again.elapsed());
        if again.into_writes() != writes {
            bail!(
                "block {height}: executing with the admission's signature checks wrote other bytes"
            );
        }
        let t2b = Instant::now();
        // 3. durable commit of the state writes (version = height).
        let root = store
            .commit(height, writes, BTreeMap::new())
            .context("commit")?;
        let t3 = Instant::now();

        if let Some((i, r)) = result
            .txs
            .iter()
            .enumerate()
            .find(|(_, r)| r.error.is_some())
        {
            bail!("block {height} tx {i} rejected: {:?}", r.error);
        }
        parent = block.header.hash();
        prev_root = Hash(root);
        if b == 0 {
            continue; // warm-up
        }
        t_dec.push(ms(t1 - t0));
        t_exe.push(ms(t2 - t1));
        t_exe_once.push(exe_once);
        t_com.push(ms(t3 - t2b));
        t_all.push(ms(t3 - t0) - ms(t2b - t2));
    }

    let total_ms: f64 = t_all.iter().sum();
    let tps = (k * n) as f64 / (total_ms / 1e3);
    let file = std::fs::metadata(&path)?.len();
    println!(
        "\ntransfers: {k} blocks x {n} txs ({tx_bytes} B each), {a} funded accounts, redb store on disk (fsync per commit)"
    );
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    let row = |name: &str, v: &[f64]| {
        vec![
            name.to_string(),
            format!("{:.1}", median(v)),
            format!("{:.1}", percentile(v, 99.0)),
            format!("{:.0}%", 100.0 * sum(v) / total_ms),
            group((k * n) as f64 / (sum(v) / 1e3)),
        ]
    };
    table(
        &[
            "phase",
            "median ms/block",
            "p99 ms/block",
            "share",
            "txs/s if alone",
        ],
        &[
            row(
                "decode + stateless check (1 sig verify/tx) + tx_root",
                &t_dec,
            ),
            row("execute_block (incl. its batch sig verify)", &t_exe),
            row(
                "  the same, signatures verified at admission (not in end to end)",
                &t_exe_once,
            ),
            row("Store::commit (JMT + redb, fsync)", &t_com),
            row("end to end", &t_all),
        ],
    );
    println!(
        "end to end: {} txs/s over {} txs (median block {} txs/s); store file {}",
        group(tps),
        k * n,
        group(n as f64 / (median(&t_all) / 1e3)),
        crate::stats::mib(file)
    );
    Ok(())
}
