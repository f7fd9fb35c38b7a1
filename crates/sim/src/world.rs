//! The scheduler, the simulated network and the per-validator host logic.
//!
//! The application side is `opal_consensus::host::Host`, the same code the node's engine loop
//! (crates/consensus/src/app.rs) drives; this file does what the engine's actors do around
//! it, without tokio, libp2p or disk:
//! * timers are events at `now + LinearTimeouts::duration_for(timeout)`, cancellable;
//! * `PublishConsensusMsg` / liveness messages are encoded with `OpalCodec`, sent to every
//!   peer through the network model and decoded again on arrival;
//! * blocks travel as `ProposalPart`s (Init, Data, Fin with the proposer's signature over
//!   `parts_sign_bytes`), reassembled here and handed to `Host::accept_block`, which
//!   authenticates, verifies and stores them before the core hears of them;
//! * `WalAppend` entries are kept per height and replayed after a crash exactly as the engine
//!   does (`record_recovered_own_precommit_extensions`, `index_wal_entries`, replay,
//!   `reset_entries_index`);
//! * value sync: validators broadcast their tip every second; one behind requests up to ten
//!   decided blocks with certificates from a peer ahead, and feeds them to the core one
//!   height at a time as `SyncValueResponse`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use bytes::Bytes;
use malachitebft_codec::Codec;
use malachitebft_core_consensus::{
    process, ConsensusMsg, Effect, Input, LivenessMsg, LocallyProposedValue, Params, Resumable,
    Resume, SignedConsensusMsg, State, ThresholdParams,
};
use malachitebft_core_types::{
    CommitCertificate as EngineCert, ExtendedCommitCertificate, LinearTimeouts, NilOrVal, Round,
    Timeout, TimeoutKind, Validity, ValueOrigin, ValuePayload, ValueResponse,
};
use malachitebft_metrics::Metrics;
use malachitebft_peer::PeerId;
use malachitebft_signing::{Signer, Verifier, VerifierExt};
use malachitebft_sync::{RawDecidedValue, Response as SyncResponse};
use opal_consensus::cert;
use opal_consensus::codec::{Evidence, OpalCodec, MAX_SYNC_RESPONSE, MAX_SYNC_VALUES};
use opal_consensus::context::{
    Address, BlockHeight, OpalContext, PartInit, Proposal, ProposalPart, Value, ValueId, Vote,
};
use opal_consensus::host::{linear_timeouts, Decision, Host, MemStore, ProposalStore};
use opal_consensus::signing::{OpalSigner, OpalVerifier};
use opal_consensus::streaming::AssembledBlock;
use opal_consensus::StoredProposal;
use opal_consensus::{value_id, BlockExecutor, Validator};

use crate::executor::MemExecutor;
use crate::{Byzantine, FailureKind, Fault, Rng, SimConfig, SimFailure, SimReport, SimStats};

const CHAIN_ID: &str = "opal-sim";
const STATUS_INTERVAL_MS: u64 = 1_000;
const SYNC_REQUEST_TIMEOUT_MS: u64 = 5_000;
const SYNC_BATCH: u64 = 10;
const MAX_EVENTS: u64 = 20_000_000;
const TRACE_LINES: usize = 60;
/// Drive a future that never waits (signing, verification) to completion.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = TaskContext::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("signing and verification futures complete at once"),
    }
}

// ------------------------------------------------------------------ events

#[derive(Clone, Debug)]
enum Msg {
    Consensus(Bytes),
    Liveness(Bytes),
    Parts(Vec<Bytes>),
    Status { tip: u64 },
    SyncRequest { start: u64, end: u64 },
    SyncResponse(Bytes),
}

impl Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Consensus(_) => "consensus",
            Msg::Liveness(_) => "liveness",
            Msg::Parts(_) => "parts",
            Msg::Status { .. } => "status",
            Msg::SyncRequest { .. } => "sync-req",
            Msg::SyncResponse(_) => "sync-resp",
        }
    }
}

enum Local {
    Input(Box<Input<OpalContext>>),
    StartHeight { height: u64, restart: bool },
}

enum Event {
    Deliver {
        from: usize,
        to: usize,
        msg: Msg,
    },
    Timer {
        node: usize,
        inc: u64,
        gen: u64,
        timeout: Timeout,
    },
    Local {
        node: usize,
        inc: u64,
        what: Local,
    },
    StatusTick {
        node: usize,
        inc: u64,
    },
    Fault(Fault),
    /// A validator's first start (at a jittered time); skipped if a fault came first.
    Boot(usize),
}

struct Scheduled {
    time: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    // Min-heap on (time, seq).
    fn cmp(&self, o: &Self) -> Ordering {
        (o.time, o.seq).cmp(&(self.time, self.seq))
    }
}

/// What the effect handler asks the host to do once the core call returns.
enum Action {
    Schedule(Timeout),
    Cancel(Timeout),
    CancelAll,
    StartRound(u64, Round),
    Publish(SignedConsensusMsg<OpalContext>),
    Liveness(LivenessMsg<OpalContext>),
    GetValue(u64, Round),
    Restream(u64, ValueId),
    SyncedValue(ValueResponse<OpalContext>, Address),
    SyncRejected,
    Decide(EngineCert<OpalContext>),
    Finalize(u64, Option<Vec<u8>>),
    Wal(u64, Input<OpalContext>),
}

// ------------------------------------------------------------------ nodes

struct Node {
    verifier: OpalVerifier,
    peer_id: PeerId,
    byzantine: Option<Byzantine>,
    up: bool,
    /// Started, or crashed before its first start (then it stays down until a `Restart`).
    booted: bool,
    /// Bumped at every crash: events of an earlier incarnation are ignored.
    inc: u64,
    // Volatile.
    core: Option<State<OpalContext>>,
    metrics: Metrics,
    timers: BTreeMap<(u8, i64), u64>,
    timer_gen: u64,
    peer_tips: BTreeMap<usize, u64>,
    sync_inflight: Option<u64>,
    sync_buffer: BTreeMap<u64, (Bytes, ExtendedCommitCertificate<OpalContext>, usize)>,
    replaying: bool,
    /// Byzantine: the second block built for (height, round).
    alt_blocks: BTreeMap<(u64, u32), StoredProposal>,
    /// The real host (`opal_consensus::host`): its executor and undecided-block store are the
    /// validator's disk and survive a crash; its volatile state is reset by one.
    host: Host<MemExecutor, MemStore>,
    // Durable ("disk").
    wal: (u64, Vec<Input<OpalContext>>),
}

fn timer_key(t: &Timeout) -> (u8, i64) {
    let k = match t.kind {
        TimeoutKind::Propose => 0,
        TimeoutKind::Prevote => 1,
        TimeoutKind::Precommit => 2,
        TimeoutKind::Rebroadcast => 3,
        TimeoutKind::FinalizeHeight(_) => 4,
    };
    (k, t.round.as_i64())
}

fn peer_id_for(address: &Address) -> PeerId {
    // An identity multihash of the consensus key (code 0, length 32).
    let mut bytes = vec![0u8, 32];
    bytes.extend_from_slice(&address.0);
    PeerId::from_bytes(&bytes).expect("identity multihash of 32 bytes is a valid peer id")
}

/// The core's effects, answered the way the engine's consensus actor answers them.
fn handle_effect(
    signer: &OpalSigner,
    verifier: &OpalVerifier,
    effect: Effect<OpalContext>,
    out: &mut Vec<Action>,
) -> Result<Resume<OpalContext>, String> {
    let ctx = OpalContext;
    Ok(match effect {
        Effect::CancelAllTimeouts(r) => {
            out.push(Action::CancelAll);
            r.resume_with(())
        }
        Effect::CancelTimeout(t, r) => {
            out.push(Action::Cancel(t));
            r.resume_with(())
        }
        Effect::ScheduleTimeout(t, r) => {
            out.push(Action::Schedule(t));
            r.resume_with(())
        }
        Effect::StartRound(h, round, _proposer, _role, r) => {
            out.push(Action::StartRound(h.0, round));
            r.resume_with(())
        }
        Effect::PublishConsensusMsg(m, r) => {
            out.push(Action::Publish(m));
            r.resume_with(())
        }
        Effect::PublishLivenessMsg(m, r) => {
            out.push(Action::Liveness(m));
            r.resume_with(())
        }
        Effect::RepublishVote(v, r) => {
            out.push(Action::Liveness(LivenessMsg::Vote(v)));
            r.resume_with(())
        }
        Effect::RepublishRoundCertificate(c, r) => {
            out.push(Action::Liveness(LivenessMsg::SkipRoundCertificate(c)));
            r.resume_with(())
        }
        Effect::GetValue(h, round, _timeout, r) => {
            out.push(Action::GetValue(h.0, round));
            r.resume_with(())
        }
        Effect::RestreamProposal(h, _round, _valid_round, _addr, id, r) => {
            out.push(Action::Restream(h.0, id));
            r.resume_with(())
        }
        Effect::CertVerifiedSyncValue(value, proposer, r) => {
            out.push(Action::SyncedValue(value, proposer));
            r.resume_with(())
        }
        Effect::CertRejectedSyncValue(_peer, _h, _e, r) => {
            out.push(Action::SyncRejected);
            r.resume_with(())
        }
        Effect::Decide(cert, _ext, r) => {
            out.push(Action::Decide(cert));
            r.resume_with(())
        }
        Effect::Finalize(cert, _ext, evidence, r) => {
            out.push(Action::Finalize(
                cert.height.0,
                Evidence::encode_engine(&evidence),
            ));
            r.resume_with(())
        }
        Effect::SignVote(v, r) => {
            r.resume_with(ready(signer.sign_vote(v)).map_err(|e| e.to_string())?)
        }
        Effect::SignProposal(p, r) => {
            r.resume_with(ready(signer.sign_proposal(p)).map_err(|e| e.to_string())?)
        }
        Effect::VerifySignature(msg, pk, r) => {
            let res = match &msg.message {
                ConsensusMsg::Vote(v) => ready(verifier.verify_signed_vote(v, &msg.signature, &pk)),
                ConsensusMsg::Proposal(p) => {
                    ready(verifier.verify_signed_proposal(p, &msg.signature, &pk))
                }
            };
            r.resume_with(res.map(|v| v.is_valid()).unwrap_or(false))
        }
        Effect::VerifyCommitCertificate(c, vs, th, r) => {
            r.resume_with(ready(verifier.verify_commit_certificate(&ctx, &c, &vs, th)))
        }
        Effect::VerifyExtendedCommitCertificate(c, vs, th, policy, r) => r.resume_with(ready(
            verifier.verify_extended_commit_certificate(&ctx, &c, &vs, th, policy),
        )),
        Effect::VerifyPolkaCertificate(c, vs, th, r) => {
            r.resume_with(ready(verifier.verify_polka_certificate(&ctx, &c, &vs, th)))
        }
        Effect::VerifyRoundCertificate(c, vs, th, r) => {
            r.resume_with(ready(verifier.verify_round_certificate(&ctx, &c, &vs, th)))
        }
        Effect::ExtendVote(_, _, _, _, r) => r.resume_with(None),
        Effect::VerifyVoteExtension(_, _, _, _, x, _, r) => {
            r.resume_with(opal_consensus::vote_extension_verdict(Some(&x)))
        }
        Effect::WalAppend(h, entry, r) => {
            out.push(Action::Wal(h.0, entry));
            r.resume_with(())
        }
    })
}

// ------------------------------------------------------------------ the world

struct World {
    cfg: SimConfig,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    rng: Rng,
    nodes: Vec<Node>,
    validators: Vec<Validator>,
    timeouts: LinearTimeouts,
    group: Vec<usize>,
    loss: f64,
    decided: BTreeMap<u64, ([u8; 32], usize)>,
    /// When an honest validator first committed each height (simulated ms).
    first_commit_ms: BTreeMap<u64, u64>,
    stats: SimStats,
    trace: VecDeque<String>,
    failure: Option<(FailureKind, String)>,
    hasher: blake3::Hasher,
    /// `OPAL_SIM_TRACE=1`: print every noted event as it happens.
    print_trace: bool,
}

/// Run one simulation; `Err` names the violated property and the seed.
pub fn run(cfg: SimConfig) -> Result<SimReport, SimFailure> {
    let mut w = World::new(cfg);
    w.run_loop()
}

impl World {
    fn new(cfg: SimConfig) -> Self {
        let n = cfg.powers.len();
        let signers: Vec<OpalSigner> = (0..n)
            .map(|i| {
                let seed = blake3::derive_key(
                    opal_domains::derive::SIM_VALIDATOR_KEY,
                    &(i as u64).to_le_bytes(),
                );
                OpalSigner::new(seed, CHAIN_ID)
            })
            .collect();
        let validators: Vec<Validator> = signers
            .iter()
            .zip(&cfg.powers)
            .map(|(s, p)| Validator {
                public_key: s.address().0,
                power: *p,
            })
            .collect();
        let nodes = signers
            .into_iter()
            .enumerate()
            .map(|(i, signer)| {
                let address = signer.address();
                let mut exec = MemExecutor::new(CHAIN_ID, validators.clone());
                exec.time_bounds = cfg.time_bounds;
                if let Some((_, Byzantine::FutureTime { ahead_ms })) =
                    cfg.byzantine.iter().find(|(b, _)| *b == i)
                {
                    exec.clock_ahead_ms = *ahead_ms;
                }
                Node {
                    verifier: OpalVerifier::new(CHAIN_ID),
                    peer_id: peer_id_for(&address),
                    byzantine: cfg.byzantine.iter().find(|(b, _)| *b == i).map(|(_, k)| *k),
                    up: false,
                    booted: false,
                    inc: 0,
                    core: None,
                    metrics: Metrics::new(),
                    timers: BTreeMap::new(),
                    timer_gen: 0,
                    peer_tips: BTreeMap::new(),
                    sync_inflight: None,
                    sync_buffer: BTreeMap::new(),
                    replaying: false,
                    alt_blocks: BTreeMap::new(),
                    host: Host::new(exec, MemStore::default(), signer),
                    wal: (0, Vec::new()),
                }
            })
            .collect::<Vec<_>>();
        World {
            rng: Rng::new(cfg.seed),
            timeouts: linear_timeouts(&cfg.timeouts),
            loss: cfg.loss,
            group: vec![0; n],
            cfg,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            validators,
            decided: BTreeMap::new(),
            first_commit_ms: BTreeMap::new(),
            stats: SimStats::default(),
            trace: VecDeque::new(),
            failure: None,
            hasher: blake3::Hasher::new(),
            print_trace: std::env::var("OPAL_SIM_TRACE").is_ok_and(|v| v == "1"),
        }
    }

    fn push(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            time,
            seq: self.seq,
            event,
        });
    }

    fn note(&mut self, line: String) {
        self.hasher.update(line.as_bytes());
        if self.print_trace {
            eprintln!("t={} {line}", self.now);
        }
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("t={} {line}", self.now));
    }

    fn fail(&mut self, kind: FailureKind, reason: String) {
        if self.failure.is_none() {
            self.failure = Some((kind, reason));
        }
    }

    fn honest(&self, i: usize) -> bool {
        self.nodes[i].byzantine.is_none()
    }

    fn failure(&mut self, kind: FailureKind, reason: String) -> SimFailure {
        SimFailure {
            seed: self.cfg.seed,
            kind,
            reason,
            sim_ms: self.now,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    fn node_summary(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (h, r) = n
                    .core
                    .as_ref()
                    .map(|s| (s.height().0, s.round().as_i64()))
                    .unwrap_or((0, -1));
                format!(
                    "v{i}{}: {} committed={} height={h} round={r}",
                    if n.byzantine.is_some() { "(byz)" } else { "" },
                    if n.up { "up" } else { "down" },
                    n.host.executor().last_committed()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn last_fault_time(&self) -> u64 {
        self.cfg.faults.iter().map(|(t, _)| *t).max().unwrap_or(0)
    }

    fn done(&self) -> bool {
        self.now >= self.last_fault_time()
            && self.nodes.iter().enumerate().all(|(i, n)| {
                !self.honest(i)
                    || n.host.executor().last_committed() >= self.cfg.target_height
                    || (!n.up && self.cfg.allowed_down_at_end.contains(&i))
            })
    }

    fn run_loop(&mut self) -> Result<SimReport, SimFailure> {
        for i in 0..self.nodes.len() {
            let t = self.rng.range(0, self.cfg.start_jitter_ms);
            self.push(t, Event::Boot(i));
        }
        for (t, f) in self.cfg.faults.clone() {
            self.push(t, Event::Fault(f));
        }
        loop {
            if let Some((kind, reason)) = self.failure.take() {
                return Err(self.failure(kind, reason));
            }
            if self.done() {
                break;
            }
            let Some(s) = self.queue.pop() else {
                let why = format!("no events left; {}", self.node_summary());
                return Err(self.failure(FailureKind::Liveness, why));
            };
            if s.time > self.cfg.max_sim_ms {
                self.now = self.cfg.max_sim_ms;
                let why = format!(
                    "target height {} not reached within {} ms of simulated time; {}",
                    self.cfg.target_height,
                    self.cfg.max_sim_ms,
                    self.node_summary()
                );
                return Err(self.failure(FailureKind::Liveness, why));
            }
            self.now = s.time;
            self.stats.events += 1;
            if self.stats.events > MAX_EVENTS {
                return Err(self.failure(FailureKind::Internal, "event limit reached".into()));
            }
            self.hasher.update(&s.time.to_le_bytes());
            self.handle(s.event);
        }
        self.final_check()
    }

    fn final_check(&mut self) -> Result<SimReport, SimFailure> {
        // Every honest chain is a prefix of the longest honest chain.
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|i| self.honest(*i)).collect();
        let longest = honest
            .iter()
            .copied()
            .max_by_key(|i| self.nodes[*i].host.executor().last_committed())
            .unwrap_or(0);
        let top = self.nodes[longest].host.executor().last_committed();
        let chain: Vec<[u8; 32]> = (1..=top)
            .filter_map(|h| self.nodes[longest].host.executor().id_at(h))
            .collect();
        for &i in &honest {
            for h in 1..=self.nodes[i].host.executor().last_committed() {
                if self.nodes[i].host.executor().id_at(h) != chain.get(h as usize - 1).copied() {
                    let why = format!("v{i} and v{longest} have different blocks at height {h}");
                    return Err(self.failure(FailureKind::Agreement, why));
                }
            }
        }
        let evidence = honest
            .iter()
            .flat_map(|&i| {
                self.nodes[i]
                    .host
                    .executor()
                    .evidence
                    .iter()
                    .map(move |e| (i, e.clone()))
            })
            .collect();
        Ok(SimReport {
            seed: self.cfg.seed,
            sim_ms: self.now,
            heights: self
                .nodes
                .iter()
                .map(|n| n.host.executor().last_committed())
                .collect(),
            block_times: (1..=top)
                .map(|h| self.nodes[longest].host.executor().time_at(h))
                .collect(),
            commit_times: (1..=top)
                .map(|h| self.first_commit_ms.get(&h).copied().unwrap_or(0))
                .collect(),
            chain,
            evidence,
            public_keys: self.validators.iter().map(|v| v.public_key).collect(),
            stats: self.stats.clone(),
            digest: *self.hasher.finalize().as_bytes(),
        })
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Fault(f) => self.fault(f),
            Event::Boot(i) => {
                if !self.nodes[i].booted {
                    self.fault(Fault::Restart(i));
                }
            }
            Event::Deliver { from, to, msg } => self.deliver(from, to, msg),
            Event::Timer {
                node,
                inc,
                gen,
                timeout,
            } => {
                let n = &mut self.nodes[node];
                if !n.up || n.inc != inc || n.timers.get(&timer_key(&timeout)) != Some(&gen) {
                    return;
                }
                n.timers.remove(&timer_key(&timeout));
                self.note(format!("v{node} timeout {timeout}"));
                self.input(node, Input::TimeoutElapsed(timeout));
            }
            Event::Local { node, inc, what } => {
                if !self.nodes[node].up || self.nodes[node].inc != inc {
                    return;
                }
                match what {
                    Local::Input(i) => self.input(node, *i),
                    Local::StartHeight { height, restart } => {
                        self.start_height(node, height, restart)
                    }
                }
            }
            Event::StatusTick { node, inc } => {
                if !self.nodes[node].up || self.nodes[node].inc != inc {
                    return;
                }
                let tip = self.nodes[node].host.executor().last_committed();
                self.broadcast(node, Msg::Status { tip });
                // A request that got no answer is given up (the peer may be gone).
                if let Some(sent) = self.nodes[node].sync_inflight {
                    if self.now >= sent + SYNC_REQUEST_TIMEOUT_MS {
                        self.nodes[node].sync_inflight = None;
                    }
                }
                self.maybe_request_sync(node);
                self.push(
                    self.now + STATUS_INTERVAL_MS,
                    Event::StatusTick { node, inc },
                );
            }
        }
    }

    fn local(&mut self, node: usize, delay: u64, what: Local) {
        let inc = self.nodes[node].inc;
        self.push(self.now + delay, Event::Local { node, inc, what });
    }

    // -------------------------------------------------------------- faults

    fn fault(&mut self, f: Fault) {
        self.note(format!("fault {f:?}"));
        match f {
            Fault::Crash(i) => {
                let n = &mut self.nodes[i];
                // A crash before the first start keeps the validator down from the beginning.
                n.booted = true;
                if !n.up {
                    return;
                }
                n.up = false;
                n.inc += 1;
                n.core = None;
                n.timers.clear();
                n.host.restart();
                n.peer_tips.clear();
                n.sync_inflight = None;
                n.sync_buffer.clear();
                n.alt_blocks.clear();
                n.replaying = false;
            }
            Fault::Restart(i) => {
                let n = &mut self.nodes[i];
                n.booted = true;
                if n.up {
                    return;
                }
                n.up = true;
                n.inc += 1;
                n.metrics = Metrics::new();
                let height = n.host.executor().last_committed() + 1;
                self.local(
                    i,
                    0,
                    Local::StartHeight {
                        height,
                        restart: false,
                    },
                );
                let inc = self.nodes[i].inc;
                let first = self.now + self.rng.range(1, STATUS_INTERVAL_MS);
                self.push(first, Event::StatusTick { node: i, inc });
            }
            Fault::Partition(groups) => {
                let extra = groups.len() + 1;
                self.group = vec![extra; self.nodes.len()];
                for (g, members) in groups.iter().enumerate() {
                    for &m in members {
                        self.group[m] = g;
                    }
                }
            }
            Fault::Heal => self.group = vec![0; self.nodes.len()],
            Fault::SetLoss(p) => self.loss = p,
        }
    }

    // -------------------------------------------------------------- network

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        self.stats.messages_sent += 1;
        if self.group[from] != self.group[to] {
            self.stats.dropped_partition += 1;
            return;
        }
        if self.rng.chance(self.loss) {
            self.stats.dropped_loss += 1;
            return;
        }
        let (lo, hi) = self.cfg.latency_ms;
        let t = self.now + self.rng.range(lo, hi);
        if self.rng.chance(self.cfg.duplicate) {
            let t2 = self.now + self.rng.range(lo, hi);
            self.push(
                t2,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
        self.push(t, Event::Deliver { from, to, msg });
    }

    fn broadcast(&mut self, from: usize, msg: Msg) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }

    fn deliver(&mut self, from: usize, to: usize, msg: Msg) {
        if self.group[from] != self.group[to] {
            self.stats.dropped_partition += 1;
            return;
        }
        if !self.nodes[to].up || self.nodes[to].core.is_none() {
            self.stats.dropped_down += 1;
            return;
        }
        self.hasher.update(&[from as u8, to as u8]);
        self.hasher.update(msg.kind().as_bytes());
        match msg {
            Msg::Consensus(b) => {
                match Codec::<SignedConsensusMsg<OpalContext>>::decode(&OpalCodec, b) {
                    Ok(SignedConsensusMsg::Vote(v)) => self.input(to, Input::Vote(v)),
                    Ok(SignedConsensusMsg::Proposal(p)) => self.input(to, Input::Proposal(p)),
                    Err(_) => self.stats.undecodable += 1,
                }
            }
            Msg::Liveness(b) => match Codec::<LivenessMsg<OpalContext>>::decode(&OpalCodec, b) {
                Ok(LivenessMsg::Vote(v)) => self.input(to, Input::Vote(v)),
                Ok(LivenessMsg::PolkaCertificate(c)) => self.input(to, Input::PolkaCertificate(c)),
                Ok(LivenessMsg::SkipRoundCertificate(c)) => {
                    self.input(to, Input::RoundCertificate(c))
                }
                Err(_) => self.stats.undecodable += 1,
            },
            Msg::Parts(parts) => self.received_parts(to, parts),
            Msg::Status { tip } => {
                self.nodes[to].peer_tips.insert(from, tip);
                self.maybe_request_sync(to);
            }
            Msg::SyncRequest { start, end } => self.serve_sync(to, from, start, end),
            Msg::SyncResponse(b) => self.received_sync(to, from, b),
        }
    }

    // -------------------------------------------------------------- the core

    /// Feed one input to a validator's core and carry out the resulting actions.
    fn input(&mut self, i: usize, input: Input<OpalContext>) {
        let Some(mut state) = self.nodes[i].core.take() else {
            return;
        };
        let mut out = Vec::new();
        let result: Result<(), malachitebft_core_consensus::Error<OpalContext>> = {
            let n = &self.nodes[i];
            process!(
                input: input,
                state: &mut state,
                metrics: &n.metrics,
                with: effect => handle_effect(n.host.signer(), &n.verifier, effect, &mut out)
            )
        };
        self.nodes[i].core = Some(state);
        if let Err(e) = result {
            // The engine logs these and carries on (a bad peer message must not stop it).
            self.note(format!("v{i} core error: {e}"));
        }
        for a in out {
            self.act(i, a);
        }
    }

    fn start_height(&mut self, i: usize, height: u64, restart: bool) {
        let n = &mut self.nodes[i];
        let entered = n
            .host
            .enter_height(height)
            .and_then(|()| n.host.validator_set(height));
        let vs = match entered {
            Ok(vs) => vs,
            Err(e) => {
                self.fail(FailureKind::Internal, format!("enter height {height}: {e}"));
                return;
            }
        };
        n.alt_blocks.retain(|(h, _), _| *h >= height);
        n.sync_buffer.retain(|h, _| *h >= height);
        // The engine's WAL: reset on a restart of the height or at a new height; otherwise
        // (a crash in the middle of this height) its entries are replayed.
        let entries = if restart || n.wal.0 != height {
            n.wal = (height, Vec::new());
            Vec::new()
        } else {
            n.wal.1.clone()
        };
        if n.core.is_none() {
            n.core = Some(State::new(
                OpalContext,
                BlockHeight(height),
                vs.clone(),
                Params {
                    address: n.host.address(),
                    threshold_params: ThresholdParams::default(),
                    value_payload: ValuePayload::ProposalAndParts,
                    enabled: true,
                },
                10,
                500,
            ));
        }
        self.note(format!(
            "v{i} start height {height}{}{}",
            if restart { " (restart)" } else { "" },
            if entries.is_empty() {
                String::new()
            } else {
                format!(" replaying {} WAL entries", entries.len())
            }
        ));
        self.input(
            i,
            Input::StartHeight(BlockHeight(height), vs, restart, None, Default::default()),
        );
        if !entries.is_empty() {
            self.stats.wal_replays += 1;
            if let Some(st) = self.nodes[i].core.as_mut() {
                st.record_recovered_own_precommit_extensions(entries.iter());
                st.index_wal_entries(entries.iter());
            }
            self.nodes[i].replaying = true;
            for e in entries {
                self.input(i, e);
            }
            self.nodes[i].replaying = false;
            if let Some(st) = self.nodes[i].core.as_mut() {
                st.reset_entries_index();
            }
        }
        self.feed_sync(i);
        self.maybe_request_sync(i);
    }

    fn act(&mut self, i: usize, a: Action) {
        match a {
            Action::Schedule(t) => {
                let d = self.timeouts.duration_for(t).as_millis() as u64;
                let n = &mut self.nodes[i];
                n.timer_gen += 1;
                let gen = n.timer_gen;
                n.timers.insert(timer_key(&t), gen);
                let inc = n.inc;
                self.push(
                    self.now + d,
                    Event::Timer {
                        node: i,
                        inc,
                        gen,
                        timeout: t,
                    },
                );
            }
            Action::Cancel(t) => {
                self.nodes[i].timers.remove(&timer_key(&t));
            }
            Action::CancelAll => self.nodes[i].timers.clear(),
            Action::StartRound(h, r) => self.started_round(i, h, r),
            Action::Publish(m) => self.publish(i, m),
            Action::Liveness(m) => {
                if let Ok(b) = Codec::<LivenessMsg<OpalContext>>::encode(&OpalCodec, &m) {
                    self.broadcast(i, Msg::Liveness(b));
                }
            }
            Action::GetValue(h, r) => self.get_value(i, h, r),
            Action::Restream(h, id) => {
                if let Ok(Some(b)) = self.nodes[i].host.restream(h, &id.0) {
                    let parts = parts_of(&b);
                    self.broadcast(i, Msg::Parts(parts));
                }
            }
            Action::SyncedValue(v, proposer) => self.synced_value(i, v, proposer),
            Action::SyncRejected => self.nodes[i].sync_inflight = None,
            Action::Decide(cert) => self.decided(i, cert),
            Action::Finalize(h, ev) => {
                if ev.is_some() {
                    self.note(format!("v{i} finalized {h} with misbehaviour evidence"));
                }
                match self.nodes[i].host.finalized(h, ev) {
                    Ok((height, restart)) => {
                        self.local(i, 0, Local::StartHeight { height, restart })
                    }
                    Err(e) => self.fail(FailureKind::Internal, format!("v{i} finalize {h}: {e}")),
                }
            }
            Action::Wal(h, entry) => {
                let n = &mut self.nodes[i];
                if !n.replaying && n.wal.0 == h {
                    // The engine's WAL codec reads a proposed value back with the consensus
                    // origin.
                    let entry = match entry {
                        Input::ProposedValue(v, _) => {
                            Input::ProposedValue(v, ValueOrigin::Consensus)
                        }
                        e => e,
                    };
                    n.wal.1.push(entry);
                }
            }
        }
    }

    // -------------------------------------------------------------- host

    fn started_round(&mut self, i: usize, h: u64, round: Round) {
        let r = round.as_u32().unwrap_or(0);
        if r > self.stats.max_round {
            self.stats.max_round = r;
        }
        self.note(format!("v{i} round {h}/{r}"));
        let n = &mut self.nodes[i];
        n.host.executor_mut().now_ms = self.now;
        match n.host.started_round(h, r) {
            Ok(values) => {
                for v in values {
                    self.local(
                        i,
                        0,
                        Local::Input(Box::new(Input::ProposedValue(v, ValueOrigin::Consensus))),
                    );
                }
            }
            Err(e) => self.fail(FailureKind::Internal, format!("v{i} started round: {e}")),
        }
    }

    fn get_value(&mut self, i: usize, h: u64, round: Round) {
        let r = round.as_u32().unwrap_or(0);
        let n = &mut self.nodes[i];
        n.host.executor_mut().now_ms = self.now;
        let stored = match n.host.get_value(h, r) {
            Ok(p) => p,
            Err(e) => return self.fail(FailureKind::Internal, format!("v{i} get value: {e}")),
        };
        let mut extra = None;
        let two_blocks = matches!(
            n.byzantine,
            Some(Byzantine::Equivocate | Byzantine::SplitBrain)
        );
        if two_blocks && !n.alt_blocks.contains_key(&(h, r)) {
            let payload = 1_000_000 + self.rng.below(1_000_000);
            let address = n.host.address().0;
            let block = n
                .host
                .executor_mut()
                .build_with_payload(h, r, address, payload);
            let b = n.host.sign_block(h, r, block);
            n.alt_blocks.insert((h, r), b.clone());
            extra = Some(b);
        }
        let value = Value {
            id: ValueId(stored.value_id),
        };
        self.local(
            i,
            1,
            Local::Input(Box::new(Input::Propose(LocallyProposedValue::new(
                BlockHeight(h),
                round,
                value,
            )))),
        );
        self.broadcast(i, Msg::Parts(parts_of(&stored)));
        if let Some(b) = extra {
            self.broadcast(i, Msg::Parts(parts_of(&b)));
        }
    }

    fn publish(&mut self, i: usize, m: SignedConsensusMsg<OpalContext>) {
        let Ok(a) = Codec::<SignedConsensusMsg<OpalContext>>::encode(&OpalCodec, &m) else {
            return;
        };
        let conflicting = match self.nodes[i].byzantine {
            Some(Byzantine::Equivocate) => self.conflicting(i, &m),
            Some(Byzantine::SplitBrain) => return self.split_brain(i, m, a),
            Some(Byzantine::FutureTime { .. }) | None => None,
        };
        let Some(b) = conflicting else {
            self.broadcast(i, Msg::Consensus(a));
            return;
        };
        let Ok(b) = Codec::<SignedConsensusMsg<OpalContext>>::encode(&OpalCodec, &b) else {
            return;
        };
        self.note(format!("v{i} equivocates at {}/{}", m.height(), m.round()));
        for to in 0..self.nodes.len() {
            if to == i {
                continue;
            }
            match self.rng.below(4) {
                0 => self.send(i, to, Msg::Consensus(a.clone())),
                1 => self.send(i, to, Msg::Consensus(b.clone())),
                2 => {
                    self.send(i, to, Msg::Consensus(a.clone()));
                    self.send(i, to, Msg::Consensus(b.clone()));
                }
                _ => {
                    self.send(i, to, Msg::Consensus(b.clone()));
                    self.send(i, to, Msg::Consensus(a.clone()));
                }
            }
        }
    }

    /// `Byzantine::SplitBrain`: the lower known block id to the lower half of the validators,
    /// the higher one to the upper half, for proposals and votes alike.
    fn split_brain(&mut self, i: usize, m: SignedConsensusMsg<OpalContext>, original: Bytes) {
        let (h, r) = (m.height().0, m.round().as_u32().unwrap_or(0));
        let n = &self.nodes[i];
        let mut ids: Vec<[u8; 32]> = n
            .host
            .store()
            .at_round(h, r)
            .unwrap_or_default()
            .iter()
            .map(|b| b.value_id)
            .chain(n.alt_blocks.get(&(h, r)).map(|b| b.value_id))
            .collect();
        ids.sort();
        ids.dedup();
        let signed = |id: [u8; 32]| -> Option<Bytes> {
            let value = ValueId(id);
            let msg = match &m {
                SignedConsensusMsg::Vote(v) => {
                    if v.message.value == NilOrVal::Nil {
                        // No point splitting a nil vote; keep it.
                        return None;
                    }
                    SignedConsensusMsg::Vote(
                        ready(n.host.signer().sign_vote(Vote {
                            value: NilOrVal::Val(value),
                            extension: None,
                            ..v.message.clone()
                        }))
                        .ok()?,
                    )
                }
                SignedConsensusMsg::Proposal(p) => SignedConsensusMsg::Proposal(
                    ready(n.host.signer().sign_proposal(Proposal {
                        value: Value { id: value },
                        ..p.message.clone()
                    }))
                    .ok()?,
                ),
            };
            Codec::<SignedConsensusMsg<OpalContext>>::encode(&OpalCodec, &msg).ok()
        };
        let halves = match (ids.first(), ids.get(1)) {
            (Some(lo), Some(hi)) if ids.len() == 2 => signed(*lo).zip(signed(*hi)),
            _ => None,
        };
        let Some((lo, hi)) = halves else {
            self.broadcast(i, Msg::Consensus(original));
            return;
        };
        self.note(format!("v{i} splits {h}/{r}"));
        let half = self.nodes.len() / 2;
        for to in 0..self.nodes.len() {
            if to != i {
                let b = if to < half { lo.clone() } else { hi.clone() };
                self.send(i, to, Msg::Consensus(b));
            }
        }
    }

    /// A Byzantine validator's second, conflicting, signed message for the same slot.
    fn conflicting(
        &mut self,
        i: usize,
        m: &SignedConsensusMsg<OpalContext>,
    ) -> Option<SignedConsensusMsg<OpalContext>> {
        let random = ValueId(self.rng.bytes32());
        let n = &self.nodes[i];
        match m {
            SignedConsensusMsg::Vote(v) => {
                let value = match v.message.value {
                    NilOrVal::Val(_) => NilOrVal::Nil,
                    NilOrVal::Nil => NilOrVal::Val(random),
                };
                let vote = Vote {
                    value,
                    extension: None,
                    ..v.message.clone()
                };
                ready(n.host.signer().sign_vote(vote))
                    .ok()
                    .map(SignedConsensusMsg::Vote)
            }
            SignedConsensusMsg::Proposal(p) => {
                let h = p.message.height.0;
                let r = p.message.round.as_u32()?;
                let alt = n.alt_blocks.get(&(h, r))?;
                let proposal = Proposal {
                    value: Value {
                        id: ValueId(alt.value_id),
                    },
                    ..p.message.clone()
                };
                ready(n.host.signer().sign_proposal(proposal))
                    .ok()
                    .map(SignedConsensusMsg::Proposal)
            }
        }
    }

    fn received_parts(&mut self, i: usize, parts: Vec<Bytes>) {
        let mut init = None;
        let mut data = Vec::new();
        let mut fin = None;
        for p in parts {
            match Codec::<ProposalPart>::decode(&OpalCodec, p) {
                Ok(ProposalPart::Init(x)) => init = Some(x),
                Ok(ProposalPart::Data(d)) => data.extend_from_slice(&d),
                Ok(ProposalPart::Fin(s)) => fin = Some(s),
                Err(_) => {
                    self.stats.undecodable += 1;
                    return;
                }
            }
        }
        let (Some(init), Some(signature)) = (init, fin) else {
            return;
        };
        if init.block_len as usize != data.len() {
            return;
        }
        let b = AssembledBlock {
            init,
            block: data,
            signature,
        };
        let (h, r) = (b.init.height, b.init.round);
        let n = &mut self.nodes[i];
        n.host.executor_mut().now_ms = self.now;
        match n.host.accept_block(b) {
            Ok(Some(v)) => {
                if v.validity == Validity::Invalid {
                    self.note(format!("v{i} refuses the proposal at {h}/{r}"));
                }
                self.local(
                    i,
                    0,
                    Local::Input(Box::new(Input::ProposedValue(v, ValueOrigin::Consensus))),
                );
            }
            Ok(None) => {}
            Err(e) => self.fail(FailureKind::Internal, format!("v{i} accept block: {e}")),
        }
    }

    fn decided(&mut self, i: usize, cert: EngineCert<OpalContext>) {
        let h = cert.height.0;
        let id = cert.value_id.0;
        let honest = self.honest(i);
        let oc = cert::from_engine(&cert);
        let decision = match self.nodes[i].host.decided(&oc) {
            Ok(d) => d,
            Err(e) => return self.fail(FailureKind::Internal, format!("v{i} decided: {e}")),
        };
        match decision {
            Decision::Committed(_) => {
                self.stats.decisions += 1;
                self.note(format!(
                    "v{i} committed {h} round {} value {}",
                    oc.round,
                    hex::encode(&id[..6])
                ));
                if honest {
                    match self.decided.get(&h) {
                        Some((other, who)) if *other != id => {
                            let why = format!(
                                "height {h}: v{i} committed {} but v{who} committed {}",
                                hex::encode(&id[..8]),
                                hex::encode(&other[..8])
                            );
                            self.fail(FailureKind::Agreement, why);
                        }
                        Some(_) => {}
                        None => {
                            self.decided.insert(h, (id, i));
                            self.first_commit_ms.insert(h, self.now);
                        }
                    }
                }
            }
            Decision::BlockMissing if honest => self.fail(
                FailureKind::InvalidDecision,
                format!(
                    "v{i} decided {} at height {h} without the block",
                    hex::encode(&id[..8])
                ),
            ),
            Decision::CommitFailed(e) if honest => self.fail(
                FailureKind::InvalidDecision,
                format!("v{i} cannot commit its decision at height {h}: {e}"),
            ),
            Decision::BlockMissing | Decision::CommitFailed(_) => {}
        }
    }

    // -------------------------------------------------------------- value sync

    fn maybe_request_sync(&mut self, i: usize) {
        let n = &self.nodes[i];
        if !n.up || n.core.is_none() || n.sync_inflight.is_some() {
            return;
        }
        let h = n.host.current_height();
        if n.sync_buffer.contains_key(&h) {
            return;
        }
        let ahead: Vec<(usize, u64)> = n
            .peer_tips
            .iter()
            .filter(|(_, tip)| **tip >= h)
            .map(|(p, t)| (*p, *t))
            .collect();
        if ahead.is_empty() {
            return;
        }
        let (peer, tip) = ahead[self.rng.below(ahead.len() as u64) as usize];
        let end = tip.min(h + SYNC_BATCH - 1);
        self.nodes[i].sync_inflight = Some(self.now);
        self.send(i, peer, Msg::SyncRequest { start: h, end });
    }

    fn serve_sync(&mut self, i: usize, to: usize, start: u64, end: u64) {
        let mut values = Vec::new();
        let end = end.min(start + SYNC_BATCH - 1);
        for (block, c) in
            self.nodes[i]
                .host
                .decided_values(start, end, MAX_SYNC_VALUES, MAX_SYNC_RESPONSE / 2)
        {
            let Some(ext) = cert::to_engine_extended(&c) else {
                break;
            };
            values.push(RawDecidedValue::new(Bytes::from(block), ext));
        }
        let resp = SyncResponse::ValueResponse(malachitebft_sync::ValueResponse::new(
            BlockHeight(start),
            values,
        ));
        if let Ok(b) = Codec::<SyncResponse<OpalContext>>::encode(&OpalCodec, &resp) {
            self.send(i, to, Msg::SyncResponse(b));
        }
    }

    fn received_sync(&mut self, i: usize, from: usize, b: Bytes) {
        self.nodes[i].sync_inflight = None;
        let Ok(SyncResponse::ValueResponse(r)) =
            Codec::<SyncResponse<OpalContext>>::decode(&OpalCodec, b)
        else {
            self.stats.undecodable += 1;
            return;
        };
        let n = &mut self.nodes[i];
        for (k, v) in r.values.into_iter().enumerate() {
            let h = r.start_height.0 + k as u64;
            if h >= n.host.current_height() && v.certificate.height.0 == h {
                n.sync_buffer
                    .insert(h, (v.value_bytes, v.certificate, from));
            }
        }
        self.feed_sync(i);
    }

    fn feed_sync(&mut self, i: usize) {
        let h = self.nodes[i].host.current_height();
        let Some((bytes, cert, from)) = self.nodes[i].sync_buffer.remove(&h) else {
            return;
        };
        let peer = self.nodes[from].peer_id;
        self.input(
            i,
            Input::SyncValueResponse(ValueResponse::new(peer, bytes, cert)),
        );
    }

    /// The app's `ProcessSyncedValue`: verify, store, and give the core the value.
    fn synced_value(&mut self, i: usize, v: ValueResponse<OpalContext>, proposer: Address) {
        let h = v.certificate.height.0;
        let round = v.certificate.round;
        let block = v.value_bytes.to_vec();
        let id = value_id(&block);
        if id != v.certificate.value_id.0 {
            // A peer fault: the engine re-requests from another peer.
            self.nodes[i].sync_inflight = None;
            return;
        }
        let n = &mut self.nodes[i];
        n.host.executor_mut().now_ms = self.now;
        let pv = match n
            .host
            .synced_value(h, round.as_u32().unwrap_or(0), proposer, block)
        {
            Ok(Some(pv)) => pv,
            Ok(None) => {
                n.sync_inflight = None;
                return;
            }
            Err(e) => return self.fail(FailureKind::Internal, format!("v{i} synced value: {e}")),
        };
        self.stats.sync_decisions += 1;
        self.note(format!("v{i} synced height {h}"));
        self.local(
            i,
            0,
            Local::Input(Box::new(Input::ProposedValue(pv, ValueOrigin::Sync))),
        );
    }
}

fn parts_of(b: &StoredProposal) -> Vec<Bytes> {
    let init = PartInit {
        height: b.height,
        round: b.round,
        pol_round: b.pol_round,
        proposer: Address(b.proposer),
        block_len: b.block.len() as u32,
    };
    [
        ProposalPart::Init(init),
        ProposalPart::Data(b.block.clone()),
        ProposalPart::Fin(b.parts_signature.unwrap_or([0; 64])),
    ]
    .iter()
    .filter_map(|p| Codec::<ProposalPart>::encode(&OpalCodec, p).ok())
    .collect()
}
