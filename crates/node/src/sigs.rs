//! Signature verification of many transactions at once: ed25519 batches (`exec::signatures_ok`,
//! one by one only inside a batch that fails) spread over the machine's cores. Used by batch
//! admission (`api/batch.rs`); the answer does not depend on the thread count.

use opal_ledger::exec;
use opal_types::{Hash, Transaction};

/// Threads for signature verification: the machine's cores, at most 8.
fn verify_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

/// Whether each transaction is validly signed, in parallel batches.
pub fn signatures_parallel(txs: &[Transaction]) -> Vec<bool> {
    let hashes: Vec<Hash> = txs.iter().map(Transaction::hash).collect();
    let threads = verify_threads().min(txs.len().max(1));
    if threads <= 1 || txs.len() < 64 {
        return exec::signatures_ok(txs, &hashes, &|_| false);
    }
    let per = txs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = txs
            .chunks(per)
            .zip(hashes.chunks(per))
            .map(|(t, h)| {
                (
                    t.len(),
                    s.spawn(move || exec::signatures_ok(t, h, &|_| false)),
                )
            })
            .collect();
        // A verifier thread that panicked counts its whole part as not verified.
        parts
            .into_iter()
            .flat_map(|(n, p)| p.join().unwrap_or_else(|_| vec![false; n]))
            .collect()
    })
}
