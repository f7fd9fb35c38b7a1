//! Mempool gossip: a transaction this node admits for the first time, from a client or from a
//! peer, is pushed to every gossip peer (`gossip_peers` in `config.toml`: their API URLs), so it
//! reaches the mempool of every validator and the next proposer includes it, whoever that is.
//! Without it a transaction waits for the turn of the validator it was sent to.
//!
//! Flooding with deduplication: a peer admits each transaction through the same checks as
//! `POST /api/txs` (size, chain, fee, signature, nonce, balance) and forwards only those it had
//! not seen, so a transaction crosses each link at most once in each direction and loops end.
//! Nothing is trusted: a peer's batch is bounded ([`MAX_GOSSIP_BYTES`], [`MAX_GOSSIP_TXS`]),
//! garbage is refused whole, and a bad transaction inside a batch is refused alone.
//!
//! Transport: batches (up to [`BATCH_TXS`] transactions or [`BATCH_BYTES`], or what arrived in
//! [`BATCH_WAIT`]) are POSTed as borsh bytes to `POST /api/gossip/txs` on each peer, one queue
//! and one sender task per peer, so a slow or dead peer delays only itself. When a queue is full
//! the batch is dropped for that peer (counted in `gossip_dropped_batches`): gossip is an
//! optimisation, the transaction stays in this mempool and is proposed by this validator in
//! its turn. The consensus engine's libp2p network has fixed channels (consensus, liveness,
//! proposal parts, sync), so gossip uses the API's HTTP instead.

use borsh::{BorshDeserialize, BorshSerialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Largest gossip request body a node accepts.
pub const MAX_GOSSIP_BYTES: usize = 4 << 20;
/// Most transactions in one gossip batch.
pub const MAX_GOSSIP_TXS: usize = 4096;
/// A batch is sent once it holds this many transactions...
pub const BATCH_TXS: usize = 512;
/// ... or this many bytes...
pub const BATCH_BYTES: usize = 1 << 20;
/// ... or this long after its first transaction arrived.
pub const BATCH_WAIT: Duration = Duration::from_millis(10);
/// Transactions waiting to be batched.
const QUEUE_TXS: usize = 50_000;
/// Batches waiting for one peer.
const PEER_QUEUE: usize = 64;
/// How long one peer has to answer a batch.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// What `POST /api/gossip/txs` carries: encoded transactions.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct GossipBatch {
    pub txs: Vec<Vec<u8>>,
}

impl GossipBatch {
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decode untrusted bytes: at most [`MAX_GOSSIP_BYTES`], at most [`MAX_GOSSIP_TXS`]
    /// transactions, nothing left over.
    pub fn from_bytes(bytes: &[u8]) -> Result<GossipBatch, String> {
        if bytes.len() > MAX_GOSSIP_BYTES {
            return Err(format!(
                "a gossip batch is at most {MAX_GOSSIP_BYTES} bytes, this one {}",
                bytes.len()
            ));
        }
        let b: GossipBatch = opal_types::decode("gossip batch", bytes, MAX_GOSSIP_BYTES)
            .map_err(|e| e.to_string())?;
        if b.txs.len() > MAX_GOSSIP_TXS {
            return Err(format!(
                "a gossip batch holds at most {MAX_GOSSIP_TXS} transactions, this one {}",
                b.txs.len()
            ));
        }
        Ok(b)
    }
}

/// The outbound side: where newly admitted transactions are offered. Cheap to clone.
#[derive(Clone, Default)]
pub struct Gossip {
    queue: Option<mpsc::Sender<Vec<u8>>>,
    metrics: Option<crate::metrics::GossipCounters>,
}

impl Gossip {
    /// No peers: offers are dropped.
    pub fn disabled() -> Gossip {
        Gossip::default()
    }

    /// Gossip to `peers` (API base URLs). Spawns the batching task and one sender task per
    /// peer on the current tokio runtime. With no peers, [`Gossip::disabled`].
    pub fn start(peers: Vec<String>, metrics: crate::metrics::GossipCounters) -> Gossip {
        let peers: Vec<String> = peers
            .into_iter()
            .map(|p| p.trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if peers.is_empty() {
            return Gossip::disabled();
        }
        let client = match reqwest::Client::builder().timeout(PEER_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("gossip disabled: no HTTP client: {e}");
                return Gossip::disabled();
            }
        };
        let mut outs = Vec::new();
        for peer in peers {
            let (tx, rx) = mpsc::channel::<Arc<Vec<u8>>>(PEER_QUEUE);
            tokio::spawn(send_to_peer(
                client.clone(),
                peer.clone(),
                rx,
                metrics.clone(),
            ));
            outs.push((peer, tx));
        }
        let (queue, rx) = mpsc::channel(QUEUE_TXS);
        tokio::spawn(batch(rx, outs, metrics.clone()));
        Gossip {
            queue: Some(queue),
            metrics: Some(metrics),
        }
    }

    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Offer a transaction this node has just admitted (its encoded bytes). Never blocks.
    pub fn offer(&self, tx: Vec<u8>) {
        if let Some(q) = &self.queue {
            if q.try_send(tx).is_err() {
                if let Some(m) = &self.metrics {
                    m.dropped_txs.inc();
                }
            }
        }
    }
}

/// Collect offered transactions into batches and hand each to every peer's queue.
async fn batch(
    mut rx: mpsc::Receiver<Vec<u8>>,
    peers: Vec<(String, mpsc::Sender<Arc<Vec<u8>>>)>,
    metrics: crate::metrics::GossipCounters,
) {
    while let Some(first) = rx.recv().await {
        let mut bytes = first.len();
        let mut txs = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while txs.len() < BATCH_TXS && bytes < BATCH_BYTES {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(t)) => {
                    bytes += t.len();
                    txs.push(t);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let n = txs.len() as u64;
        let body = Arc::new(GossipBatch { txs }.to_bytes());
        for (peer, q) in &peers {
            if q.try_send(body.clone()).is_err() {
                tracing::debug!(%peer, "gossip queue full: a batch dropped for this peer");
                metrics.dropped_batches.inc();
            }
        }
        metrics.sent_txs.inc_by(n);
    }
}

/// POST each batch to one peer, in order.
async fn send_to_peer(
    client: reqwest::Client,
    peer: String,
    mut rx: mpsc::Receiver<Arc<Vec<u8>>>,
    metrics: crate::metrics::GossipCounters,
) {
    let url = format!("{peer}/api/gossip/txs");
    while let Some(body) = rx.recv().await {
        let r = client
            .post(&url)
            .header("content-type", "application/octet-stream")
            .body(body.as_ref().clone())
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => {
                metrics.failed_batches.inc();
                tracing::debug!(%peer, status = %resp.status(), "gossip batch refused");
            }
            Err(e) => {
                metrics.failed_batches.inc();
                tracing::debug!(%peer, error = %e, "gossip batch not delivered");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_untrusted_bytes_are_bounded() {
        let b = GossipBatch {
            txs: vec![vec![1, 2, 3], vec![]],
        };
        assert_eq!(GossipBatch::from_bytes(&b.to_bytes()).unwrap(), b);
        // Garbage, a truncated batch and trailing bytes are refused, never a panic.
        assert!(GossipBatch::from_bytes(&[0xff; 16]).is_err());
        let bytes = b.to_bytes();
        assert!(GossipBatch::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(GossipBatch::from_bytes(&longer).is_err());
        // A length prefix that claims more than the bytes hold.
        let mut claim = (u32::MAX).to_le_bytes().to_vec();
        claim.extend_from_slice(&[0; 8]);
        assert!(GossipBatch::from_bytes(&claim).is_err());
        // Too many transactions.
        let many = GossipBatch {
            txs: vec![vec![]; MAX_GOSSIP_TXS + 1],
        };
        let e = GossipBatch::from_bytes(&many.to_bytes()).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        // Too many bytes.
        assert!(GossipBatch::from_bytes(&vec![0; MAX_GOSSIP_BYTES + 1]).is_err());
    }

    #[test]
    fn a_disabled_gossip_takes_offers_and_does_nothing() {
        let g = Gossip::disabled();
        assert!(!g.enabled());
        g.offer(vec![1, 2, 3]);
    }
}
