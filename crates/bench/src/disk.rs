//! `disk`: the state file of a node over a long run, archive against pruned. Each block is
//! real: `--txs` signed transfers executed by the ledger over the on-disk store, a commit
//! certificate of `--validators` ed25519 precommit signatures, and the node's own aux records
//! (`opal_node::records::commit_aux`: block, results, certificate, transaction index, and when
//! pruning, the deletion of what falls out of the window), committed durably per block as the
//! node does. Prints the file size every `--every` blocks for both modes.

use crate::common::key;
use crate::stats::{group, mib, table};
use anyhow::{bail, Context};
use opal_state::{Overlay, Retention, Store};
use opal_types::{Action, Amount, Hash, Transaction, TxBody};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blocks per run.
    #[arg(long, default_value_t = 10_000)]
    pub blocks: u64,
    /// Transfers per block.
    #[arg(long, default_value_t = 20)]
    pub txs: u64,
    /// Funded accounts; senders rotate over them.
    #[arg(long, default_value_t = 1_000)]
    pub accounts: u64,
    /// The pruned run keeps this many heights.
    #[arg(long, default_value_t = 1_000)]
    pub retain: u64,
    /// Signatures in each block's commit certificate.
    #[arg(long, default_value_t = 4)]
    pub validators: u64,
    /// Report the file size every this many blocks.
    #[arg(long, default_value_t = 2_000)]
    pub every: u64,
}

const CHAIN_ID: &str = "opal-bench";

struct Run {
    /// (blocks, file bytes, bytes of pages in use) at each report.
    sizes: Vec<(u64, u64, u64)>,
    secs: f64,
    stats: opal_state::StoreStats,
}

pub fn run(mut args: Args, quick: bool) -> anyhow::Result<()> {
    if quick {
        args.blocks = 300;
        args.txs = 5;
        args.accounts = 50;
        args.retain = 50;
        args.every = 100;
    }
    if args.accounts < 2 || args.every == 0 || args.retain == 0 {
        bail!("--accounts must be >= 2, --every and --retain >= 1");
    }
    let archive = one(&args, Retention::Archive)?;
    let pruned = one(&args, Retention::Last(args.retain))?;
    println!(
        "\ndisk: {} blocks x {} transfers, {} accounts, {}-signature certificates, state file (redb) after each {} blocks",
        args.blocks, args.txs, args.accounts, args.validators, args.every
    );
    let rows: Vec<Vec<String>> = archive
        .sizes
        .iter()
        .zip(&pruned.sizes)
        .map(|((b, af, au), (_, pf, pu))| {
            vec![group(*b as f64), mib(*af), mib(*au), mib(*pf), mib(*pu)]
        })
        .collect();
    let pf = format!("pruned (last {}) file", args.retain);
    table(
        &[
            "blocks",
            "archive file",
            "archive in use",
            &pf,
            "pruned in use",
        ],
        &rows,
    );
    let (blocks, _, a_used) = archive.sizes.last().copied().unwrap_or((1, 0, 0));
    let p_max = pruned.sizes.iter().map(|s| s.2).max().unwrap_or(0);
    println!(
        "archive: {} in use per 10,000 blocks; pruned: at most {} in use at any report \
         (bounded once the window is full); run time archive {:.1} s, pruned {:.1} s",
        mib(a_used * 10_000 / blocks.max(1)),
        mib(p_max),
        archive.secs,
        pruned.secs
    );
    println!("table entries at the end: archive {:?}", archive.stats);
    println!("                          pruned  {:?}", pruned.stats);
    Ok(())
}

fn one(args: &Args, retention: Retention) -> anyhow::Result<Run> {
    let keys: Vec<_> = (0..args.accounts).map(key).collect();
    let addrs: Vec<_> = keys.iter().map(|k| k.address()).collect();
    let validators: Vec<_> = (0..args.validators.max(1))
        .map(|i| key(u64::MAX - i))
        .collect();
    let proposer = &validators[0];
    let genesis = crate::common::genesis(CHAIN_ID, &addrs, proposer);
    let params = genesis.params.clone();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.redb");
    let store = Store::open(&path)?;
    let mut g = Overlay::empty();
    genesis.apply(&mut g)?;
    store.commit(0, g.into_writes(), Default::default())?;
    store.set_retention(retention)?;
    eprintln!("disk: {retention:?}: {} blocks...", args.blocks);

    let ledger = opal_ledger::Ledger::new();
    let (mut parent, mut prev_root) = (Hash::ZERO, Hash(store.root_at(0)?));
    let mut sizes = vec![];
    let started = Instant::now();
    for height in 1..=args.blocks {
        let txs: Vec<Transaction> = (0..args.txs)
            .map(|i| {
                let n = (height - 1) * args.txs + i;
                let s = n % args.accounts;
                let to = (s + 1 + n.wrapping_mul(7919) % (args.accounts - 1)) % args.accounts;
                TxBody {
                    chain_id: CHAIN_ID.into(),
                    nonce: n / args.accounts,
                    fee: params.min_fee,
                    action: Action::Transfer {
                        to: addrs[to as usize],
                        amount: Amount(1),
                    },
                }
                .sign(&keys[s as usize])
            })
            .collect();
        let block = crate::common::block(
            CHAIN_ID,
            genesis.genesis_time_ms,
            height,
            parent,
            prev_root,
            proposer,
            txs,
        );
        let bytes = block.to_bytes();
        let base = store.snapshot()?;
        let mut overlay = Overlay::new(base.clone());
        // Signatures count as verified at admission, as for a node's own mempool.
        let result = ledger.execute_block_with(&mut overlay, &block, &|_| true)?;
        if let Some(r) = result.txs.iter().find(|r| r.error.is_some()) {
            bail!("block {height}: a transfer failed: {:?}", r.error);
        }
        let value_id = opal_consensus::value_id(&bytes);
        let certificate = opal_consensus::CommitCertificate {
            height,
            round: 0,
            value_id,
            signatures: validators
                .iter()
                .map(|v| {
                    let pk = v.public_key().0;
                    let msg = opal_consensus::signing::precommit_sign_bytes(
                        CHAIN_ID, height, 0, value_id, pk,
                    );
                    (pk, v.sign(&msg).0.to_vec())
                })
                .collect(),
        };
        let aux = opal_node::records::commit_aux(
            Some(&base),
            retention,
            height,
            &bytes,
            &result,
            borsh::to_vec(&certificate)?,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        drop(base);
        let root = store
            .commit(height, overlay.into_writes(), aux)
            .context("commit")?;
        parent = block.header.hash();
        prev_root = Hash(root);
        if height % args.every == 0 || height == args.blocks {
            let size = std::fs::metadata(&path)?.len();
            let (used, _) = store.space()?;
            eprintln!(
                "  {height} blocks: file {}, pages in use {}",
                mib(size),
                mib(used)
            );
            sizes.push((height, size, used));
        }
    }
    Ok(Run {
        sizes,
        secs: started.elapsed().as_secs_f64(),
        stats: store.stats()?,
    })
}
