//! Admission of many transactions at once: a client's batch (`POST /api/txs/batch`) and a
//! gossip peer's (`POST /api/gossip/txs`). Each transaction meets exactly the checks of
//! `POST /api/txs`, in the same order per sender; what differs is the cost: the stateless checks
//! run first without the signature, then every signature is verified in ed25519 batches spread
//! over the machine's cores (one by one only inside a batch that fails), and the mempool is
//! locked once for the whole batch.

use super::handlers::{internal, submission_limit};
use super::ApiError;
use crate::app::{sender_state, Shared};
use crate::error::AdmitError;
use crate::sigs::signatures_parallel;
use opal_ledger::{exec, TxError};
use opal_types::{Hash, Transaction};

/// Admit each of `batch` (encoded transactions) as `POST /api/txs` would, in order. Blocking
/// (signature checks are CPU work): call it off the async threads.
pub fn admit_batch(sh: &Shared, batch: &[Vec<u8>]) -> Vec<Result<Hash, ApiError>> {
    let params = match sh.params() {
        Ok(p) => p,
        Err(e) => return batch.iter().map(|_| Err(internal(&e))).collect(),
    };
    let limit = submission_limit(&params);
    // 1. Decode and the stateless checks but the signature.
    let mut out: Vec<Result<Hash, ApiError>> = Vec::with_capacity(batch.len());
    let mut decoded: Vec<(usize, Transaction)> = Vec::with_capacity(batch.len());
    for (i, bytes) in batch.iter().enumerate() {
        let r = (|| {
            if bytes.len() > limit {
                return Err(ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("transaction is {} bytes, the limit is {limit}", bytes.len()),
                ));
            }
            let tx = Transaction::from_bytes(bytes, limit)
                .map_err(|e| ApiError::bad_request("malformed_transaction", e.to_string()))?;
            exec::check_tx_stateless(&tx, bytes.len(), &sh.chain_id, &params, false)
                .map_err(|e| ApiError::from(AdmitError::Tx(e)))?;
            Ok(tx)
        })();
        match r {
            Ok(tx) => {
                out.push(Ok(Hash::ZERO));
                decoded.push((i, tx));
            }
            Err(e) => out.push(Err(e)),
        }
    }
    // 2. Every signature, in parallel batches.
    let (index, txs): (Vec<usize>, Vec<Transaction>) = decoded.into_iter().unzip();
    let ok = signatures_parallel(&txs);
    // 3. The mempool, locked once, against one committed state (locked before the state is
    // read, as for a single submission).
    let mut mempool = sh.mempool.lock();
    let snap = match sh.snapshot() {
        Ok(s) => s,
        Err(e) => return batch.iter().map(|_| Err(internal(&e))).collect(),
    };
    for ((i, tx), good) in index.into_iter().zip(txs).zip(ok) {
        out[i] = if !good {
            Err(ApiError::from(AdmitError::Tx(TxError::BadSignature)))
        } else {
            let len = batch[i].len();
            sender_state(&snap, &tx.sender())
                .map_err(internal)
                .and_then(|s| Ok(mempool.admit(tx, len, s)?))
        };
    }
    out
}

/// `POST /api/txs/batch`: up to 4,096 encoded transactions in one body (borsh `GossipBatch`,
/// `application/octet-stream`, at most 4 MiB), each admitted as by `POST /api/txs`, in order
/// (so one sender's consecutive nonces may share a batch). 200 with each one's hash or error;
/// a body that is not a batch is refused whole (400 `malformed_batch`, 413).
pub async fn submit_batch(
    axum::extract::State(sh): axum::extract::State<std::sync::Arc<Shared>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::Json<opal_api::BatchReply>, ApiError> {
    let body = body?;
    let batch = crate::gossip::GossipBatch::from_bytes(&body)
        .map_err(|e| ApiError::bad_request("malformed_batch", e))?;
    let sh2 = sh.clone();
    let results = tokio::task::spawn_blocking(move || {
        let results = admit_batch(&sh2, &batch.txs);
        for (tx, r) in batch.txs.into_iter().zip(&results) {
            if r.is_ok() {
                sh2.gossip.offer(tx);
            }
        }
        results
    })
    .await
    .map_err(internal)?;
    let mut reply = opal_api::BatchReply {
        admitted: 0,
        refused: 0,
        results: Vec::with_capacity(results.len()),
    };
    for r in results {
        match r {
            Ok(hash) => {
                reply.admitted += 1;
                sh.metrics.txs_admitted.inc();
                reply.results.push(opal_api::BatchItem {
                    hash: Some(hash),
                    error: None,
                });
            }
            Err(e) => {
                reply.refused += 1;
                sh.metrics.refused(&e.code);
                reply.results.push(opal_api::BatchItem {
                    hash: None,
                    error: Some(opal_api::ErrorDetail {
                        code: e.code,
                        message: e.message,
                    }),
                });
            }
        }
    }
    Ok(axum::Json(reply))
}
