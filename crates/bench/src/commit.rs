//! `commit`: cost of one durable state commit as the state grows toward `--accounts` accounts,
//! using the real account keys and borsh-encoded `Account` values.

use crate::common::{address, Rng};
use crate::stats::{group, median, mib, ms, table};
use opal_ledger::components::accounts::Account;
use opal_ledger::keys;
use opal_state::{Store, WriteSet};
use opal_types::Amount;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Grow the state to this many accounts.
    #[arg(long, default_value_t = 1_000_000)]
    pub accounts: u64,
    /// New accounts per fill commit.
    #[arg(long, default_value_t = 10_000)]
    pub fill_new: u64,
    /// Updates of existing accounts per fill commit.
    #[arg(long, default_value_t = 1_000)]
    pub fill_updates: u64,
    /// Measured block at each checkpoint: this many updates of existing accounts...
    #[arg(long, default_value_t = 1_000)]
    pub updates: u64,
    /// ...plus this many new accounts.
    #[arg(long, default_value_t = 100)]
    pub new: u64,
    /// Measured commits per checkpoint.
    #[arg(long, default_value_t = 7)]
    pub reps: usize,
    /// Stop growing after this many seconds and report the checkpoints reached.
    #[arg(long, default_value_t = 600)]
    pub time_limit_secs: u64,
}

/// A block's writes: `updates` random existing accounts, then `new` fresh ones (ids from `next`).
fn block(rng: &mut Rng, next: &mut u64, updates: u64, new: u64, version: u64) -> WriteSet {
    let mut w = WriteSet::new();
    let mut put = |id: u64, rng: &mut Rng| {
        let acct = Account {
            balance: Amount(rng.next_u64() as u128),
            nonce: version,
        };
        w.insert(
            keys::accounts::account(&address(id)),
            Some(opal_types::encode(&acct)),
        );
    };
    if *next > 0 {
        for _ in 0..updates {
            let id = rng.next_u64() % *next;
            put(id, rng);
        }
    }
    for _ in 0..new {
        put(*next, rng);
        *next += 1;
    }
    w
}

pub fn run(mut args: Args, quick: bool) -> anyhow::Result<()> {
    if quick {
        args.accounts = args.accounts.min(20_000);
        args.fill_new = args.fill_new.min(5_000);
        args.reps = 3;
    }
    let mut checkpoints: Vec<u64> = [10_000, 100_000, 250_000, 500_000, 1_000_000]
        .into_iter()
        .filter(|c| *c <= args.accounts)
        .collect();
    if checkpoints.last() != Some(&args.accounts) {
        checkpoints.push(args.accounts);
    }

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.redb");
    let store = Store::open(&path)?;
    let mut rng = Rng::new(42);
    let mut next = 0u64; // accounts created so far
    let mut version = 0u64;
    let start = Instant::now();
    let mut rows = Vec::new();
    let mut stopped_early = false;
    let mut fill_keys = 0u64;
    let mut fill_time = 0.0f64;

    for cp in checkpoints {
        // Grow to the checkpoint.
        while next < cp {
            if start.elapsed().as_secs() >= args.time_limit_secs {
                stopped_early = true;
                break;
            }
            let new = args.fill_new.min(cp - next);
            let w = block(&mut rng, &mut next, args.fill_updates, new, version);
            fill_keys += w.len() as u64;
            let t = Instant::now();
            store.commit(version, w, BTreeMap::new())?;
            fill_time += t.elapsed().as_secs_f64();
            version += 1;
        }
        if stopped_early {
            break;
        }
        // Measure.
        let at = next;
        let mut times = Vec::new();
        for _ in 0..args.reps {
            let w = block(&mut rng, &mut next, args.updates, args.new, version);
            let t = Instant::now();
            store.commit(version, w, BTreeMap::new())?;
            times.push(ms(t.elapsed()));
            version += 1;
        }
        let size = std::fs::metadata(&path)?.len();
        let max = times.iter().cloned().fold(0.0, f64::max);
        eprintln!(
            "commit: {} accounts: median {:.1} ms, file {} ({:.0}s elapsed)",
            group(at as f64),
            median(&times),
            mib(size),
            start.elapsed().as_secs_f64()
        );
        rows.push(vec![
            group(at as f64),
            format!("{:.1}", median(&times)),
            format!("{:.1}", max),
            mib(size),
            version.to_string(),
        ]);
    }

    println!(
        "\ncommit: one block of {} account updates + {} new accounts, {} reps per size; \
         state grown in commits of {} new + {} updates",
        args.updates, args.new, args.reps, args.fill_new, args.fill_updates
    );
    table(
        &[
            "accounts",
            "median commit ms",
            "max commit ms",
            "store file",
            "versions",
        ],
        &rows,
    );
    println!(
        "fill: {} account writes committed in {:.1}s of commit time ({} writes/s); total {:.0}s",
        group(fill_keys as f64),
        fill_time,
        group(fill_keys as f64 / fill_time.max(1e-9)),
        start.elapsed().as_secs_f64()
    );
    if stopped_early {
        println!(
            "STOPPED EARLY: --time-limit-secs {} reached at {} accounts (target {})",
            args.time_limit_secs,
            group(next as f64),
            group(args.accounts as f64)
        );
    }
    Ok(())
}
