//! `sync`: time for a new node to get the state of a chain with `--accounts` accounts, by
//! snapshot against by replay, in one process on one disk.
//!
//! The source chain is grown like `commit`'s: blocks of `--per-block` new accounts (real keys
//! and borsh `Account` values), each a durable commit. Then, into fresh stores:
//! - **snapshot**: every chunk of the latest version is produced by the source
//!   (`Snapshot::chunk`, 2,000 leaves with a range proof), encoded, decoded and checked
//!   by `Restore::add` against the root, then `Restore::finish`; no HTTP;
//! - **replay (storage only)**: the same write sets committed again, block by block, durably.
//!   Real replay also decodes, verifies signatures of and executes every transaction, and
//!   goes through consensus value sync, so this is a lower bound on replay time and the ratio
//!   shown favours replay.

use crate::common::address;
use crate::stats::{group, mib, table};
use anyhow::bail;
use opal_ledger::components::accounts::Account;
use opal_ledger::keys;
use opal_state::{Chunk, Store, WriteSet};
use opal_types::Amount;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Accounts in the state.
    #[arg(long, default_value_t = 1_000_000)]
    pub accounts: u64,
    /// New accounts per block of the source chain.
    #[arg(long, default_value_t = 10_000)]
    pub per_block: u64,
    /// Leaves per state-sync chunk.
    #[arg(long, default_value_t = opal_node::statesync::CHUNK_LEAVES)]
    pub chunk: usize,
}

fn block(first: u64, n: u64, version: u64) -> WriteSet {
    (first..first + n)
        .map(|id| {
            let acct = Account {
                balance: Amount(1_000 + id as u128),
                nonce: version,
            };
            (
                keys::accounts::account(&address(id)),
                Some(opal_types::encode(&acct)),
            )
        })
        .collect()
}

pub fn run(mut args: Args, quick: bool) -> anyhow::Result<()> {
    if quick {
        args.accounts = 5_000;
        args.per_block = 1_000;
        args.chunk = 500;
    }
    if args.per_block == 0 || args.accounts == 0 {
        bail!("--accounts and --per-block must be positive");
    }
    let blocks = args.accounts.div_ceil(args.per_block);
    let dir = tempfile::tempdir()?;
    let src = Store::open(&dir.path().join("source.redb"))?;
    eprintln!(
        "sync: growing the source to {} accounts in {blocks} blocks...",
        args.accounts
    );
    let t = Instant::now();
    for v in 0..blocks {
        let n = args.per_block.min(args.accounts - v * args.per_block);
        src.commit(v, block(v * args.per_block, n, v), Default::default())?;
    }
    let grow_s = t.elapsed().as_secs_f64();
    let latest = blocks - 1;
    let root = src.root_at(latest)?;

    // By snapshot.
    eprintln!("sync: restoring from chunks...");
    let dst = Store::open(&dir.path().join("snapshot.redb"))?;
    let t = Instant::now();
    let snap = src.snapshot_at(latest)?;
    let mut r = dst.restore(latest, root)?;
    let (mut chunks, mut bytes) = (0u64, 0u64);
    let mut serve_s = 0.0;
    while !r.is_done() {
        let ts = Instant::now();
        let wire = snap.chunk(r.after(), args.chunk)?.to_bytes();
        serve_s += ts.elapsed().as_secs_f64();
        bytes += wire.len() as u64;
        r.add(&Chunk::from_bytes(&wire)?)?;
        chunks += 1;
    }
    let leaves = r.leaves();
    if r.finish()? != root {
        bail!("the restored root differs");
    }
    let snap_s = t.elapsed().as_secs_f64();
    drop(snap);

    // By replay of the same writes.
    eprintln!("sync: replaying {blocks} blocks of writes...");
    let rep = Store::open(&dir.path().join("replay.redb"))?;
    let t = Instant::now();
    for v in 0..blocks {
        let n = args.per_block.min(args.accounts - v * args.per_block);
        rep.commit(v, block(v * args.per_block, n, v), Default::default())?;
    }
    let replay_s = t.elapsed().as_secs_f64();
    if rep.root_at(latest)? != root {
        bail!("the replayed root differs");
    }

    println!(
        "\nsync: {} accounts ({blocks} blocks of {} new accounts; growing the source took {grow_s:.1} s)",
        group(args.accounts as f64),
        group(args.per_block as f64)
    );
    table(
        &["way to join", "seconds", "detail"],
        &[
            vec![
                "snapshot (chunks produced, encoded, verified, restored)".into(),
                format!("{snap_s:.1}"),
                format!(
                    "{leaves} leaves in {chunks} chunks of {}, {} on the wire; producing them: {serve_s:.1} s",
                    args.chunk,
                    mib(bytes)
                ),
            ],
            vec![
                "replay, storage only (a lower bound)".into(),
                format!("{replay_s:.1}"),
                format!("{blocks} durable commits of the same writes"),
            ],
        ],
    );
    println!(
        "replay / snapshot: {:.2}x (real replay also executes and verifies every transaction)",
        replay_s / snap_s
    );
    Ok(())
}
