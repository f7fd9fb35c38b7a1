//! # opal-sim: deterministic multi-validator simulation of Opal consensus
//!
//! A whole validator network in one thread, driven by a seeded discrete-event scheduler with
//! simulated time. Each validator runs Malachite's sans-IO consensus core
//! (`arc-malachitebft-core-consensus`, the same pinned version `opal-consensus` embeds) with
//! Opal's own [`OpalContext`](opal_consensus::context::OpalContext), signer, verifier and
//! wire codec. The application side is the node's own: each validator runs
//! [`opal_consensus::host::Host`], the sans-IO host that the real node's engine loop also
//! drives (`StartedRound`, `GetValue`, received blocks, `Decided`, `Finalized`, value sync),
//! over an in-memory executor and store that survive crashes. What the engine's actors do
//! around it (timers, gossip, the write-ahead log, sync requests) is done here against
//! simulated time and a simulated network.
//!
//! Everything that varies (latency, loss, duplication, which Byzantine message a peer sees,
//! sync peer choice, fault times picked by tests) comes from one [`Rng`] seeded by
//! [`SimConfig::seed`], and all maps are ordered, so a seed replays the same run event for
//! event. A failure ([`SimFailure`]) says which seed to rerun.
//!
//! Checked on every run:
//! * **agreement**: no two honest validators commit different blocks at one height (checked
//!   at every decision, and again over the final chains);
//! * **valid commits**: every decision an honest validator makes has a commit certificate that
//!   verifies with [`opal_consensus::CommitCertificate::verify`] and a block that extends its
//!   own committed chain (the [`executor::MemExecutor`] refuses anything else);
//! * **liveness**: once the last scheduled fault has happened, every honest validator that is
//!   up reaches [`SimConfig::target_height`] before [`SimConfig::max_sim_ms`] of simulated time.
//!
//! See `docs/network.md` for the fault model.

mod rng;
mod world;

pub mod executor;

pub use rng::Rng;
pub use world::run;

use std::fmt;
use std::time::Duration;

/// A scheduled fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The validator stops: its volatile state (consensus state, timers, buffers) is lost; its
    /// committed chain, undecided-block store and write-ahead log survive.
    Crash(usize),
    /// A crashed validator starts again from its disk (WAL replay, then sync).
    Restart(usize),
    /// Split the network: messages between different groups are dropped (validators not
    /// listed form one more group).
    Partition(Vec<Vec<usize>>),
    /// Remove any partition.
    Heal,
    /// Change the message loss probability (per message and recipient).
    SetLoss(f64),
}

/// What a Byzantine validator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// Signs two different proposals (two blocks) when it proposes, and for every vote it
    /// casts also signs a conflicting one (nil for a value, a random value for nil), and sends
    /// each peer one of them, or both in either order.
    Equivocate,
    /// Colluding split brain: for every slot where it knows two blocks (its own two when it
    /// proposes, or a Byzantine proposer's two), it proposes and votes for the lower block id
    /// to the lower half of the validators (by index) and for the higher id to the upper half.
    /// Two such validators out of four (more than a third of the power) can make honest
    /// validators commit different blocks: the tests use that to show the agreement check
    /// catches a fork.
    SplitBrain,
    /// Otherwise honest, but writes block times `ahead_ms` ahead of the true time into the
    /// blocks it proposes (trying to close reveal windows and challenge deadlines early).
    FutureTime { ahead_ms: u64 },
}

/// One simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Voting power of each validator (all must be > 0).
    pub powers: Vec<u64>,
    /// Byzantine validators (index, behaviour).
    pub byzantine: Vec<(usize, Byzantine)>,
    /// One-way message latency, uniform in `[min, max]` milliseconds.
    pub latency_ms: (u64, u64),
    /// Probability that a message to one recipient is lost.
    pub loss: f64,
    /// Probability that a delivered message is delivered twice.
    pub duplicate: f64,
    /// Faults at given simulated times (ms).
    pub faults: Vec<(u64, Fault)>,
    /// Every honest validator that is up must commit this height (liveness).
    pub target_height: u64,
    /// Simulated time limit (ms); not reaching the target by then is a liveness failure.
    pub max_sim_ms: u64,
    pub timeouts: opal_consensus::Timeouts,
    /// Validators that stay down at the end (crashed and never restarted) are allowed only if
    /// listed here; they are excluded from the liveness check.
    pub allowed_down_at_end: Vec<usize>,
    /// Validators start at random times in `[0, start_jitter_ms]`.
    pub start_jitter_ms: u64,
    /// The proposal-time bounds every validator applies (`opal_consensus::time`).
    pub time_bounds: opal_consensus::time::TimeBounds,
}

impl SimConfig {
    /// `n` equal validators, 5–50 ms latency, no loss, no faults, target height 10.
    pub fn new(seed: u64, n: usize) -> Self {
        Self {
            seed,
            powers: vec![10; n],
            byzantine: Vec::new(),
            latency_ms: (5, 50),
            loss: 0.0,
            duplicate: 0.0,
            faults: Vec::new(),
            target_height: 10,
            max_sim_ms: 600_000,
            timeouts: opal_consensus::Timeouts {
                commit: Duration::ZERO,
                ..opal_consensus::Timeouts::dev()
            },
            allowed_down_at_end: Vec::new(),
            start_jitter_ms: 20,
            time_bounds: Default::default(),
        }
    }
}

/// Counters of a finished run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub events: u64,
    pub messages_sent: u64,
    pub dropped_loss: u64,
    pub dropped_partition: u64,
    pub dropped_down: u64,
    pub undecodable: u64,
    pub decisions: u64,
    pub sync_decisions: u64,
    pub wal_replays: u64,
    pub max_round: u32,
}

/// Result of a run that kept all the properties.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub seed: u64,
    /// Simulated milliseconds until every live honest validator reached the target.
    pub sim_ms: u64,
    /// Committed height per validator at the end.
    pub heights: Vec<u64>,
    /// The committed chain (value ids) agreed by the honest validators, by height.
    pub chain: Vec<[u8; 32]>,
    /// Evidence reports (borsh `opal_consensus::codec::Evidence`) from honest validators.
    pub evidence: Vec<(usize, Vec<u8>)>,
    /// The time written in each committed block of `chain`.
    pub block_times: Vec<u64>,
    /// When each block of `chain` was first committed by an honest validator (simulated ms).
    pub commit_times: Vec<u64>,
    /// Consensus public key of each validator.
    pub public_keys: Vec<[u8; 32]>,
    pub stats: SimStats,
    /// blake3 over every processed event: equal digests mean identical runs.
    pub digest: [u8; 32],
}

/// Which property failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Two honest validators committed different blocks at one height.
    Agreement,
    /// An honest validator decided something it cannot commit.
    InvalidDecision,
    /// The target height was not reached in time.
    Liveness,
    /// The simulation itself hit a limit or an engine error.
    Internal,
}

/// A violated property, with the seed that reproduces it.
#[derive(Clone, Debug)]
pub struct SimFailure {
    pub seed: u64,
    pub kind: FailureKind,
    pub reason: String,
    pub sim_ms: u64,
    /// The last events before the failure.
    pub trace: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation failed ({:?}) at t={} ms: {}",
            self.kind, self.sim_ms, self.reason
        )?;
        writeln!(f, "last events:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(
            f,
            "reproduce with: OPAL_SIM_SEED={} cargo test -p opal-sim",
            self.seed
        )
    }
}

impl std::error::Error for SimFailure {}

/// Seeds for a test: `OPAL_SIM_SEED` alone if set; otherwise `count` seeds (or
/// `OPAL_SIM_SEEDS` of them) from `OPAL_SIM_SEED_BASE` (default 1).
pub fn seeds(count: u64) -> Vec<u64> {
    if let Some(s) = std::env::var("OPAL_SIM_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return vec![s];
    }
    let n = std::env::var("OPAL_SIM_SEEDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(count);
    let base: u64 = std::env::var("OPAL_SIM_SEED_BASE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    (base..base + n).collect()
}

/// Run `make(seed)` for every seed of [`seeds`]`(count)`; a failure panics with its report and
/// the command that replays exactly it (`test_file`: the test target, `name`: the test).
pub fn check_seeds(
    test_file: &str,
    name: &str,
    count: u64,
    make: impl Fn(u64) -> SimConfig,
) -> Vec<SimReport> {
    seeds(count)
        .into_iter()
        .map(|seed| match run(make(seed)) {
            Ok(r) => r,
            Err(f) => panic!(
                "[{name}] {f}\nexact test: OPAL_SIM_SEED={} cargo test -p opal-sim --test {test_file} {name}",
                f.seed
            ),
        })
        .collect()
}
