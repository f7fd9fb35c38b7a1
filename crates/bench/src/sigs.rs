//! `sigs`: ed25519 verification throughput on real transaction sign digests.

use crate::common::key;
use crate::stats::{group, median, percentile, table};
use opal_types::{crypto::verify_batch, Action, Amount, Hash, PublicKey, Signature, TxBody};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Signatures per repetition (distinct keys and messages).
    #[arg(long, default_value_t = 8192)]
    pub n: usize,
    /// Repetitions; the table shows the median and the p99 (slowest-side) rate over them.
    #[arg(long, default_value_t = 9)]
    pub reps: usize,
}

pub fn run(mut args: Args, quick: bool) -> anyhow::Result<()> {
    if quick {
        args.n = 1024;
        args.reps = 3;
    }
    let n = args.n.max(1024);
    eprintln!("sigs: signing {n} transfer transactions with {n} keys...");
    let items: Vec<(PublicKey, Hash, Signature)> = (0..n as u64)
        .map(|i| {
            let k = key(i);
            let body = TxBody {
                chain_id: "opal-bench".into(),
                nonce: i,
                fee: Amount(1_000),
                action: Action::Transfer {
                    to: key(i + 1).address(),
                    amount: Amount(1),
                },
            };
            let tx = body.sign(&k);
            (tx.signer, tx.body.sign_digest(), tx.signature)
        })
        .collect();

    let mut rows = Vec::new();
    // Single verification.
    let mut rates = Vec::new();
    for _ in 0..args.reps {
        let t = Instant::now();
        for (pk, d, sig) in &items {
            pk.verify(&d.0, sig)
                .map_err(|e| anyhow::anyhow!("verify: {e}"))?;
        }
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    rows.push(row("single (PublicKey::verify)", &rates));

    for batch in [64usize, 1024] {
        let mut rates = Vec::new();
        for _ in 0..args.reps {
            let t = Instant::now();
            for chunk in items.chunks(batch) {
                verify_batch(chunk.iter().map(|(pk, d, s)| (pk, &d.0[..], s)))
                    .map_err(|e| anyhow::anyhow!("verify_batch: {e}"))?;
            }
            rates.push(n as f64 / t.elapsed().as_secs_f64());
        }
        rows.push(row(&format!("batch of {batch} (verify_batch)"), &rates));
    }
    println!(
        "\nsigs: ed25519 (ZIP-215) verification, 1 thread, {n} signatures x {} reps",
        args.reps
    );
    table(
        &[
            "mode",
            "median sigs/s",
            "p99 sigs/s (slow side)",
            "median us/sig",
        ],
        &rows,
    );
    Ok(())
}

fn row(name: &str, rates: &[f64]) -> Vec<String> {
    let med = median(rates);
    vec![
        name.to_string(),
        group(med),
        group(percentile(rates, 1.0)),
        format!("{:.1}", 1e6 / med),
    ]
}
