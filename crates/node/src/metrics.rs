//! Prometheus metrics, served as OpenMetrics text at `GET /metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    pub height: Gauge,
    pub mempool_size: Gauge,
    pub txs_committed: Counter,
    pub txs_failed: Counter,
    pub txs_admitted: Counter,
    /// Refused at admission, by error code.
    pub txs_refused: Family<Vec<(String, String)>, Counter>,
    pub block_commit_seconds: Histogram,
    /// Building this node's proposal: reaping the mempool, selecting what applies, the header.
    pub block_build_seconds: Histogram,
    /// The state transition of a decided block (part of `block_commit_seconds`).
    pub block_execute_seconds: Histogram,
    /// The durable write of a decided block's state and records (part of `block_commit_seconds`).
    pub block_store_seconds: Histogram,
    /// Where each committed block's state transition ran: `build` (this node proposed it),
    /// `ahead` (a background thread, once the proposal was found valid) or `commit`.
    pub block_executions: Family<Vec<(String, String)>, Counter>,
    pub block_txs: Histogram,
    /// Mempool gossip (`gossip.rs`).
    pub gossip: GossipCounters,
    /// Transactions received from gossip peers, by outcome (`admitted`, `known`, `refused`).
    pub gossip_received: Family<Vec<(String, String)>, Counter>,
}

/// The outbound gossip's counters (clones count into the same metrics).
#[derive(Clone, Default)]
pub struct GossipCounters {
    pub sent_txs: Counter,
    pub dropped_txs: Counter,
    pub dropped_batches: Counter,
    pub failed_batches: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("opal");
        let m = Metrics {
            height: Gauge::default(),
            mempool_size: Gauge::default(),
            txs_committed: Counter::default(),
            txs_failed: Counter::default(),
            txs_admitted: Counter::default(),
            txs_refused: Family::default(),
            block_commit_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            block_build_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            block_execute_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            block_store_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            block_executions: Family::default(),
            block_txs: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            gossip: GossipCounters::default(),
            gossip_received: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "height",
            "Height of the last committed block",
            m.height.clone(),
        );
        r.register(
            "mempool_size",
            "Transactions waiting in the mempool",
            m.mempool_size.clone(),
        );
        r.register(
            "txs_committed",
            "Transactions applied in committed blocks",
            m.txs_committed.clone(),
        );
        r.register(
            "txs_failed",
            "Transactions included in blocks but rejected by execution",
            m.txs_failed.clone(),
        );
        r.register(
            "txs_admitted",
            "Transactions admitted to the mempool",
            m.txs_admitted.clone(),
        );
        r.register(
            "txs_refused",
            "Transactions refused at admission, by error code",
            m.txs_refused.clone(),
        );
        r.register(
            "block_commit_seconds",
            "Time to execute a decided block and durably commit it",
            m.block_commit_seconds.clone(),
        );
        r.register(
            "block_build_seconds",
            "Time to build this node's proposal (reap the mempool, select, header)",
            m.block_build_seconds.clone(),
        );
        r.register(
            "block_execute_seconds",
            "Time to execute a decided block (part of block_commit_seconds)",
            m.block_execute_seconds.clone(),
        );
        r.register(
            "block_store_seconds",
            "Time to durably write a decided block's state and records (part of block_commit_seconds)",
            m.block_store_seconds.clone(),
        );
        r.register(
            "block_executions",
            "Committed blocks by where their state transition ran (build, ahead, commit)",
            m.block_executions.clone(),
        );
        r.register(
            "block_txs",
            "Transactions per committed block",
            m.block_txs.clone(),
        );
        r.register(
            "gossip_sent_txs",
            "Transactions batched for the gossip peers",
            m.gossip.sent_txs.clone(),
        );
        r.register(
            "gossip_dropped_txs",
            "Admitted transactions not gossiped: the outbound queue was full",
            m.gossip.dropped_txs.clone(),
        );
        r.register(
            "gossip_dropped_batches",
            "Gossip batches dropped for a peer whose queue was full",
            m.gossip.dropped_batches.clone(),
        );
        r.register(
            "gossip_failed_batches",
            "Gossip batches a peer did not take (unreachable, or an error status)",
            m.gossip.failed_batches.clone(),
        );
        r.register(
            "gossip_received_txs",
            "Transactions received from gossip peers, by outcome",
            m.gossip_received.clone(),
        );
        Metrics { registry: r, ..m }
    }
}

impl Metrics {
    pub fn gossip_received(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.gossip_received
                .get_or_create(&vec![("outcome".to_string(), outcome.to_string())])
                .inc_by(n);
        }
    }

    pub fn block_executed(&self, source: &str) {
        self.block_executions
            .get_or_create(&vec![("at".to_string(), source.to_string())])
            .inc();
    }

    /// Committed blocks whose state transition ran at `source` (`build`, `ahead`, `commit`).
    pub fn blocks_executed(&self, source: &str) -> u64 {
        self.block_executions
            .get_or_create(&vec![("at".to_string(), source.to_string())])
            .get()
    }

    pub fn refused(&self, code: &str) {
        self.txs_refused
            .get_or_create(&vec![("code".to_string(), code.to_string())])
            .inc();
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        s
    }
}
