//! `OpalApp`: the ledger and its store behind the consensus engine's `BlockExecutor` trait.

use crate::clock::now_ms;
use crate::mempool::{Mempool, SenderState};
use crate::records::{self, StoredBlock, TxLocation};
use opal_consensus::time::TimeBounds;
use opal_consensus::{BlockExecutor, CommitCertificate, Height, Validator};
use opal_ledger::{components::accounts, exec, invariants, Params};
use opal_state::{Overlay, Snapshot, Store};
use opal_types::block::LastCommit;
use opal_types::{Block, BlockHeader, Hash, PublicKey, Transaction};
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Something that happened, for the live event stream.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeEvent {
    NewBlock {
        height: u64,
        hash: Hash,
        state_root: Hash,
        time_ms: u64,
        tx_count: u32,
    },
    Tx {
        hash: Hash,
        height: u64,
        index: u32,
        ok: bool,
        error: Option<String>,
        code: Option<String>,
        events: Vec<opal_ledger::Event>,
    },
}

/// State shared between the consensus loop and the API.
/// What went wrong in the app behind the consensus engine. The kind says whose fault it is: a
/// block that breaks a rule ([`AppError::Invalid`], [`AppError::Untimely`]: vote nil, refuse it)
/// or this node's own failure (its store, its records, its key: never a judgement on a block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The block breaks a rule checked against committed state.
    #[error("invalid block: {0}")]
    Invalid(String),
    /// A fresh proposal's time is too far from this validator's clock.
    #[error("untimely proposal: {0}")]
    Untimely(String),
    /// The decided block could not be executed (a consensus fault or a bug: the node halts).
    #[error("executing the block: {0}")]
    Ledger(String),
    /// The supply invariant failed after a block (`--check-invariants`).
    #[error("invariant broken at height {height}: {reason}")]
    Invariant { height: u64, reason: String },
    /// This node's store failed.
    #[error("store: {0}")]
    Store(String),
    /// A record in this node's store does not decode, or is missing.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The block cannot be built or committed here (wrong height, no key for the proposer).
    #[error("{0}")]
    Local(String),
    /// Evidence from the engine that cannot be read.
    #[error("evidence: {0}")]
    Evidence(String),
    /// A transaction this node submitted itself was refused.
    #[error("{0}")]
    Admit(String),
}

impl From<crate::error::AdmitError> for AppError {
    fn from(e: crate::error::AdmitError) -> AppError {
        AppError::Admit(e.to_string())
    }
}

/// For the node's paths that still report failures as text (the inference service, local
/// submission): the error's message.
impl From<AppError> for String {
    fn from(e: AppError) -> String {
        e.to_string()
    }
}

/// The chain parameters of a committed state.
fn params_at(snap: &Snapshot) -> Result<Params, AppError> {
    exec::params(&Overlay::new(snap.clone())).map_err(|e| AppError::Ledger(e.to_string()))
}

fn store_err(e: impl std::fmt::Display) -> AppError {
    AppError::Store(e.to_string())
}

pub struct Shared {
    pub store: Store,
    pub mempool: Mutex<Mempool>,
    pub events: broadcast::Sender<NodeEvent>,
    pub height: watch::Sender<u64>,
    pub chain_id: String,
    pub validator: PublicKey,
    pub check_invariants: bool,
    pub metrics: crate::metrics::Metrics,
    /// Where newly admitted transactions go out to the gossip peers.
    pub gossip: crate::gossip::Gossip,
    /// `snapshot_interval` of the config: which heights this node offers for state sync.
    pub snapshot_interval: Option<u64>,
    /// Strikes and bans of gossip senders (`penalty.rs`).
    pub penalties: crate::penalty::Penalties,
}

impl Shared {
    /// Those of `hashes` that are in this node's mempool: admitted here, so their signatures
    /// were verified (by the API's admission, or signed by this node itself).
    pub fn admitted_among(&self, hashes: &[Hash]) -> std::collections::HashSet<Hash> {
        if hashes.is_empty() {
            return Default::default();
        }
        let m = self.mempool.lock();
        hashes.iter().filter(|h| m.contains(h)).copied().collect()
    }

    pub fn snapshot(&self) -> Result<Snapshot, AppError> {
        self.store.snapshot().map_err(store_err)
    }

    /// The chain parameters in force: those of the latest committed state (governance
    /// changes them, so no copy is kept).
    pub fn params(&self) -> Result<Params, AppError> {
        params_at(&self.snapshot()?)
    }

    pub fn stored_block(
        &self,
        snap: &Snapshot,
        height: u64,
    ) -> Result<Option<StoredBlock>, AppError> {
        match snap
            .get_aux(&records::block_key(height))
            .map_err(store_err)?
        {
            None => Ok(None),
            Some(b) => borsh::from_slice(&b)
                .map(Some)
                .map_err(|e| AppError::Corrupt(format!("block record at height {height}: {e}"))),
        }
    }

    pub fn tx_location(&self, snap: &Snapshot, h: &Hash) -> Result<Option<TxLocation>, AppError> {
        match snap.get_aux(&records::tx_key(h)).map_err(store_err)? {
            None => Ok(None),
            Some(b) => borsh::from_slice(&b)
                .map(Some)
                .map_err(|e| AppError::Corrupt(format!("tx index: {e}"))),
        }
    }

    /// What block `height` carries as its last commit: the certificate this node stored with
    /// block `height - 1` (`None` for height 1).
    fn last_commit_for(
        &self,
        snap: &Snapshot,
        height: u64,
    ) -> Result<Option<LastCommit>, AppError> {
        if height < 2 {
            return Ok(None);
        }
        let sb = self
            .stored_block(snap, height - 1)?
            .ok_or_else(|| AppError::Local(format!("no block {} to certify", height - 1)))?;
        let cert: CommitCertificate = borsh::from_slice(&sb.certificate)
            .map_err(|e| AppError::Corrupt(format!("certificate at height {}: {e}", height - 1)))?;
        Ok(Some(LastCommit {
            round: cert.round,
            signatures: cert
                .signatures
                .into_iter()
                .map(|(k, s)| (PublicKey(k), s))
                .collect(),
        }))
    }

    fn header_of(&self, snap: &Snapshot, height: u64) -> Result<Option<BlockHeader>, AppError> {
        Ok(match self.stored_block(snap, height)? {
            // A state-synced node has no record of the block it started from, but keeps it as
            // its anchor (`statesync.rs`).
            None => match crate::statesync::anchor(snap)? {
                Some(a) if a.height == height => Some(
                    opal_types::Block::from_bytes(&a.block_bytes)
                        .map_err(|e| AppError::Corrupt(format!("sync anchor: {e}")))?
                        .header,
                ),
                _ => None,
            },
            Some(sb) => Some(
                sb.block()
                    .map_err(|e| AppError::Corrupt(e.to_string()))?
                    .header,
            ),
        })
    }

    fn genesis_time(&self, snap: &Snapshot) -> u64 {
        snap.get(opal_ledger::keys::GENESIS_TIME)
            .ok()
            .flatten()
            .and_then(|b| borsh::from_slice::<u64>(&b).ok())
            .unwrap_or(0)
    }

    /// Parent hash and time of the block before `height`.
    fn parent_of(&self, snap: &Snapshot, height: u64) -> Result<(Hash, u64), AppError> {
        if height <= 1 {
            return Ok((Hash::ZERO, self.genesis_time(snap)));
        }
        let h = self
            .header_of(snap, height - 1)?
            .ok_or_else(|| AppError::Corrupt(format!("block {} is missing", height - 1)))?;
        Ok((h.hash(), h.time_ms))
    }
}

pub struct OpalApp {
    pub shared: Arc<Shared>,
    /// This validator's key: it writes the audit beacon of the blocks it proposes, and its
    /// account reports misbehaviour it observes.
    pub reporter: Option<opal_types::SecretKey>,
    /// This validator's clock (ms since the Unix epoch): the time it proposes, and what a fresh
    /// proposal's time is checked against. Injected so tests and the simulator can drive it.
    pub clock: Clock,
    /// How far a fresh proposal's time may be from [`OpalApp::clock`] (docs/adr/0002-bft-time.md).
    pub time_bounds: TimeBounds,
    /// The ledger's components, kept for the node's life (they cache decoded zk keys).
    ledger: Arc<opal_ledger::Ledger>,
    /// Blocks executed before their decision (`ahead.rs`).
    ahead: crate::ahead::Ahead,
}

/// A clock in milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The machine's clock.
pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// Turn the engine's evidence (borsh `opal_consensus::codec::Evidence`) into ledger evidence.
/// Conflicting proposals are not slashable yet (only double votes are); they are logged.
pub fn evidence_from_engine(bytes: &[u8]) -> Result<Vec<opal_types::DoubleSignEvidence>, AppError> {
    use opal_types::evidence::VoteEvidence;
    if bytes.len() > 1 << 20 {
        return Err(AppError::Evidence("report over 1 MiB".into()));
    }
    let ev: opal_consensus::codec::Evidence =
        borsh::from_slice(bytes).map_err(|e| AppError::Evidence(e.to_string()))?;
    if !ev.double_proposals.is_empty() {
        tracing::warn!(
            count = ev.double_proposals.len(),
            "conflicting proposals observed (not slashable yet)"
        );
    }
    // The engine's wire form numbers vote types 0 (prevote) and 1 (precommit); the ledger's
    // sign bytes use PREVOTE and PRECOMMIT. Copying the number would make every real double
    // vote fail validation on chain.
    let conv = |v: &opal_consensus::codec::WSignedVote| -> Result<VoteEvidence, AppError> {
        let vote_type = match v.vote.vote_type {
            0 => opal_types::evidence::PREVOTE,
            1 => opal_types::evidence::PRECOMMIT,
            t => return Err(AppError::Evidence(format!("unknown engine vote type {t}"))),
        };
        Ok(VoteEvidence {
            vote_type,
            height: v.vote.height,
            round: v.vote.round.map(i64::from).unwrap_or(-1),
            value: v.vote.value,
            validator: PublicKey(v.vote.validator),
            signature: opal_types::Signature(v.sig),
        })
    };
    ev.double_votes
        .iter()
        .map(|(a, b)| {
            Ok(opal_types::DoubleSignEvidence {
                a: conv(a)?,
                b: conv(b)?,
            })
        })
        .collect()
}

impl OpalApp {
    /// A validator's app with the machine's clock and the default time bounds.
    pub fn new(shared: Arc<Shared>, reporter: Option<opal_types::SecretKey>) -> Self {
        Self {
            shared,
            reporter,
            clock: system_clock(),
            time_bounds: TimeBounds::default(),
            ledger: Arc::new(opal_ledger::Ledger::new()),
            ahead: Default::default(),
        }
    }

    /// The key that writes the audit beacon of the blocks this validator proposes.
    fn beacon_key(&self, proposer: [u8; 32]) -> Result<&opal_types::SecretKey, AppError> {
        match &self.reporter {
            Some(k) if k.public_key().0 == proposer => Ok(k),
            _ => Err(AppError::Local(
                "this node holds no key for the proposer: it cannot write the block's audit beacon"
                    .into(),
            )),
        }
    }

    fn latest(&self) -> Height {
        self.shared.store.latest_version().unwrap_or(0)
    }

    fn try_build(&mut self, height: Height, proposer: [u8; 32]) -> Result<Vec<u8>, AppError> {
        let started = std::time::Instant::now();
        let sh = &self.shared;
        let snap = sh.snapshot()?;
        if snap.version() != Some(height - 1) {
            return Err(AppError::Local(format!(
                "asked to build height {height} but the store is at {:?}",
                snap.version()
            )));
        }
        let (parent_hash, parent_time) = sh.parent_of(&snap, height)?;
        let max_txs = params_at(&snap)?.max_block_txs as usize;
        let candidates = sh.mempool.lock().reap(max_txs);
        let time_ms =
            opal_consensus::time::proposal_time((self.clock)(), parent_time).ok_or_else(|| {
                AppError::Local(format!(
                    "the parent's time {parent_time} leaves no room for a block"
                ))
            })?;
        let header = BlockHeader {
            chain_id: sh.chain_id.clone(),
            height,
            time_ms,
            parent_hash,
            prev_state_root: Hash(snap.root()),
            tx_root: Hash::ZERO, // set by build_block
            tx_count: 0,
            proposer: PublicKey(proposer),
            beacon: self.beacon_key(proposer)?.vrf_beacon(&sh.chain_id, height),
        };
        let last_commit = sh.last_commit_for(&snap, height)?;
        // Built and executed in one pass: the commit of this block, if decided, reuses it.
        let base = snap.version();
        let mut state = Overlay::new(snap);
        let built = self
            .ledger
            .build_block(&mut state, header, last_commit, candidates)
            .map_err(|e| AppError::Ledger(e.to_string()))?;
        if !built.rejected.is_empty() {
            sh.mempool.lock().drop_invalid(&built.rejected);
        }
        let bytes = built.block.to_bytes();
        self.ahead.put(
            height,
            Hash(opal_consensus::value_id(&bytes)),
            base,
            crate::ahead::Executed {
                state,
                result: built.result,
            },
        );
        sh.metrics
            .block_build_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(bytes)
    }

    /// Start executing a proposal found valid, on a background thread, so that its commit
    /// need not (`ahead.rs`).
    fn execute_ahead(&self, height: Height, bytes: &[u8]) {
        let sh = self.shared.clone();
        let Ok(snap) = sh.snapshot() else {
            return;
        };
        if snap.version() != Some(height - 1) {
            return;
        }
        let ledger = self.ledger.clone();
        let base = snap.version();
        let id = Hash(opal_consensus::value_id(bytes));
        let bytes = bytes.to_vec();
        self.ahead.spawn(height, id, base, move || {
            let block = Block::from_bytes(&bytes).ok()?;
            let mut state = Overlay::new(snap);
            let hashes: Vec<Hash> = block.txs.iter().map(Transaction::hash).collect();
            let verified = sh.admitted_among(&hashes);
            match ledger.execute_block_with(&mut state, &block, &|h| verified.contains(h)) {
                Ok(result) => Some(crate::ahead::Executed { state, result }),
                Err(e) => {
                    tracing::warn!(height, "executing a proposal ahead of its decision: {e}");
                    None
                }
            }
        });
    }

    fn try_commit(
        &mut self,
        height: Height,
        bytes: &[u8],
        cert: &CommitCertificate,
    ) -> Result<Hash, AppError> {
        let sh = self.shared.clone();
        let latest = self.latest();
        if height <= latest {
            return sh.store.root_at(height).map(Hash).map_err(store_err);
        }
        if height != latest + 1 {
            return Err(AppError::Local(format!(
                "cannot commit height {height}: the store is at {latest}"
            )));
        }
        let block = Block::from_bytes(bytes)
            .map_err(|e| AppError::Invalid(format!("decided block does not decode: {e}")))?;
        if block.header.height != height {
            return Err(AppError::Invalid(format!(
                "decided block says height {}, expected {height}",
                block.header.height
            )));
        }
        let started = std::time::Instant::now();
        let snap = sh.snapshot()?;
        // The value id covers every byte (the header hash does not cover the last commit).
        let id = Hash(opal_consensus::value_id(bytes));
        let (overlay, result) = match self.ahead.take(height, &id, snap.version()) {
            Some((done, source)) => {
                sh.metrics.block_executed(source.label());
                (done.state, done.result)
            }
            None => {
                let mut overlay = Overlay::new(snap);
                // What this node verified at admission is not verified again
                // (docs/architecture.md).
                let hashes: Vec<Hash> = block.txs.iter().map(Transaction::hash).collect();
                let verified = sh.admitted_among(&hashes);
                let result = self
                    .ledger
                    .execute_block_with(&mut overlay, &block, &|h| verified.contains(h))
                    .map_err(|e| AppError::Ledger(e.to_string()))?;
                sh.metrics
                    .block_executed(crate::ahead::Source::Commit.label());
                (overlay, result)
            }
        };
        sh.metrics
            .block_execute_seconds
            .observe(started.elapsed().as_secs_f64());
        if sh.check_invariants {
            invariants::check_supply(&overlay).map_err(|e| AppError::Invariant {
                height,
                reason: e.to_string(),
            })?;
        }
        let base = overlay.base().cloned();
        let writes = overlay.into_writes();
        let aux = records::commit_aux(
            base.as_ref(),
            sh.store.retention(),
            height,
            bytes,
            &result,
            borsh::to_vec(cert).map_err(|e| AppError::Local(e.to_string()))?,
        )?;
        let stored = std::time::Instant::now();
        let root = Hash(
            sh.store
                .commit(height, writes, aux)
                .map_err(|e| store_err(format!("commit: {e}")))?,
        );
        sh.metrics
            .block_store_seconds
            .observe(stored.elapsed().as_secs_f64());

        // After the durable commit: mempool upkeep and notifications.
        let included: Vec<Hash> = result.txs.iter().map(|t| t.hash).collect();
        let result_failed = result.txs.iter().filter(|t| t.error.is_some()).count();
        if let Ok(snap) = sh.snapshot() {
            let o = Overlay::new(snap);
            let mut m = sh.mempool.lock();
            m.on_committed(&included, |a| {
                accounts::get(&o, a).ok().map(|acct| acct.nonce)
            });
            let expired = m.expire(std::time::Instant::now());
            if expired > 0 {
                tracing::info!(
                    expired,
                    "mempool: transactions waited too long and were dropped"
                );
            }
        }
        let _ = sh.events.send(NodeEvent::NewBlock {
            height,
            hash: block.hash(),
            state_root: root,
            time_ms: block.header.time_ms,
            tx_count: block.header.tx_count,
        });
        for (i, r) in result.txs.into_iter().enumerate() {
            let _ = sh.events.send(NodeEvent::Tx {
                hash: r.hash,
                height,
                index: i as u32,
                ok: r.error.is_none(),
                error: r.error,
                code: r.code,
                events: r.events,
            });
        }
        let failed = result_failed as u64;
        sh.metrics
            .block_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        sh.metrics.block_txs.observe(block.txs.len() as f64);
        sh.metrics
            .txs_committed
            .inc_by(block.txs.len() as u64 - failed);
        sh.metrics.txs_failed.inc_by(failed);
        sh.metrics.height.set(height as i64);
        sh.metrics.mempool_size.set(sh.mempool.lock().len() as i64);
        sh.height.send_replace(height);
        tracing::debug!(height, txs = block.txs.len(), root = %root, "committed");
        Ok(root)
    }

    /// The checks on committed state; returns the block's time and its parent's (for the
    /// clock check of a fresh proposal).
    fn try_verify(&self, height: Height, bytes: &[u8]) -> Result<(u64, u64), AppError> {
        let sh = &self.shared;
        let bad = AppError::Invalid;
        let block =
            Block::from_bytes(bytes).map_err(|e| bad(format!("block does not decode: {e}")))?;
        let h = &block.header;
        if h.chain_id != sh.chain_id {
            return Err(bad(format!("wrong chain id {:?}", h.chain_id)));
        }
        if h.height != height {
            return Err(bad(format!(
                "header height {} for height {height}",
                h.height
            )));
        }
        let snap = sh.snapshot()?;
        if snap.version() != Some(height - 1) {
            return Err(bad(format!(
                "cannot verify height {height}: the store is at {:?}",
                snap.version()
            )));
        }
        let (parent_hash, parent_time) = sh.parent_of(&snap, height)?;
        if h.parent_hash != parent_hash {
            return Err(bad("wrong parent hash".into()));
        }
        if h.prev_state_root != Hash(snap.root()) {
            return Err(bad("wrong previous state root".into()));
        }
        // The proposer's VRF beacon (the audit randomness), against its registered VRF key.
        opal_ledger::exec::beacon(&Overlay::new(snap.clone()), h)
            .map_err(|e| AppError::Ledger(e.to_string()))?
            .map_err(|e| bad(e.to_string()))?;
        // Only the parent's time bounds it here: this check is a function of committed state
        // (blocks arriving through sync are verified long after they were made). Fresh
        // proposals are also checked against the local clock, in `verify_proposal`.
        opal_consensus::time::check_monotonic(h.time_ms, parent_time)
            .map_err(|e| bad(e.to_string()))?;
        if h.tx_count as usize != block.txs.len() || h.tx_root != Block::tx_root(&block.txs) {
            return Err(bad("transaction root or count does not match".into()));
        }
        // The parameters in force for this block: those of the state it builds on.
        let params = params_at(&snap)?;
        if block.txs.len() > params.max_block_txs as usize {
            return Err(bad("too many transactions".into()));
        }
        // The previous block's commit: more than two thirds of the power of the set that
        // voted on it, every signature valid (liveness and rewards are counted from it).
        match (&block.last_commit, height) {
            (None, 1) => {}
            (Some(_), 1) => return Err(bad("block 1 cannot carry a last commit".into())),
            (None, _) => return Err(bad("the block carries no last commit".into())),
            (Some(lc), _) => {
                let prev_bytes = match sh.stored_block(&snap, height - 1)? {
                    Some(prev) => prev.block_bytes,
                    None => match crate::statesync::anchor(&snap)? {
                        Some(a) if a.height == height - 1 => a.block_bytes,
                        _ => {
                            return Err(AppError::Local(format!(
                                "cannot check the last commit: no block {}",
                                height - 1
                            )))
                        }
                    },
                };
                let cert = CommitCertificate {
                    height: height - 1,
                    round: lc.round,
                    value_id: opal_consensus::value_id(&prev_bytes),
                    signatures: lc
                        .signatures
                        .iter()
                        .map(|(k, s)| (k.0, s.clone()))
                        .collect(),
                };
                cert.verify(&sh.chain_id, &self.validator_set(height - 1))
                    .map_err(|e| bad(format!("last commit: {e}")))?;
            }
        }
        // Every signature, but those this node verified at admission (in its mempool), in one
        // batch.
        let hashes: Vec<Hash> = block.txs.iter().map(Transaction::hash).collect();
        let verified = sh.admitted_among(&hashes);
        if exec::signatures_ok(&block.txs, &hashes, &|h| verified.contains(h))
            .iter()
            .any(|ok| !ok)
        {
            return Err(bad("a transaction signature is invalid".into()));
        }
        for t in &block.txs {
            let len = opal_types::encode(t).len();
            exec::check_tx_stateless(t, len, &sh.chain_id, &params, false)
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok((h.time_ms, parent_time))
    }
}

impl BlockExecutor for OpalApp {
    type Error = AppError;

    fn last_committed(&self) -> Height {
        self.latest()
    }

    /// The set that votes on `height` is the one in the state after `height - 1` (so a node
    /// syncing old heights gets the set of that time, not today's).
    fn validator_set(&self, height: Height) -> Vec<Validator> {
        let latest = self.latest();
        let at = height.saturating_sub(1).min(latest);
        let to_engine = |vs: Vec<opal_types::validator::ActiveValidator>| -> Vec<Validator> {
            vs.into_iter()
                .map(|v| Validator {
                    public_key: v.public_key.0,
                    power: v.power,
                })
                .collect()
        };
        let snap = match self.shared.store.snapshot_at(at) {
            Ok(s) => s,
            Err(opal_state::StateError::Pruned { .. }) => {
                // A state-synced node's first block: the set its anchor carries.
                if let Ok(Some(a)) = self
                    .shared
                    .snapshot()
                    .and_then(|s| crate::statesync::anchor(&s))
                {
                    if a.height == height {
                        return to_engine(a.validators);
                    }
                }
                tracing::error!(
                    height,
                    "reading the validator set: state at {at} was pruned"
                );
                return vec![];
            }
            Err(e) => {
                tracing::error!("reading the validator set: {e}");
                return vec![];
            }
        };
        match exec::validators(&Overlay::new(snap)) {
            Ok(vs) => to_engine(vs),
            Err(e) => {
                tracing::error!("reading the validator set: {e}");
                vec![]
            }
        }
    }

    fn build_block(&mut self, height: Height, _round: u32, proposer: [u8; 32]) -> Vec<u8> {
        match self.try_build(height, proposer) {
            Ok(b) => b,
            Err(e) => {
                // An empty byte string fails verification everywhere, so the round moves on.
                tracing::error!(height, "building a block failed: {e}");
                Vec::new()
            }
        }
    }

    fn verify_block(&self, height: Height, block: &[u8]) -> Result<(), AppError> {
        self.try_verify(height, block).map(|_| ())
    }

    /// A fresh proposal (no proof-of-lock round) must also be timely by this validator's clock,
    /// so that a Byzantine proposer cannot move block time (and with it every reveal window and
    /// challenge deadline) beyond the bounds of [`TimeBounds`].
    fn verify_proposal(
        &self,
        height: Height,
        round: u32,
        pol_round: Option<u32>,
        block: &[u8],
    ) -> Result<(), AppError> {
        let (time_ms, parent_time) = self.try_verify(height, block)?;
        if pol_round.is_none() {
            opal_consensus::time::check_timely(
                time_ms,
                parent_time,
                (self.clock)(),
                round,
                &self.time_bounds,
            )
            .map_err(|e| AppError::Untimely(e.to_string()))?;
        }
        // It may be decided: execute it while the votes go round.
        self.execute_ahead(height, block);
        Ok(())
    }

    fn commit(
        &mut self,
        height: Height,
        block: &[u8],
        certificate: &CommitCertificate,
    ) -> Result<[u8; 32], AppError> {
        self.try_commit(height, block, certificate)
            .map(|h| h.0)
            .map_err(|e| {
                tracing::error!(height, "commit failed: {e}");
                e
            })
    }

    fn decided(&self, height: Height) -> Option<(Vec<u8>, CommitCertificate)> {
        let snap = self.shared.snapshot().ok()?;
        let sb = self.shared.stored_block(&snap, height).ok()??;
        let cert = borsh::from_slice(&sb.certificate).ok()?;
        Some((sb.block_bytes, cert))
    }

    fn history_min_height(&self) -> Height {
        self.shared
            .snapshot()
            .and_then(|s| crate::prune::blocks_pruned_to(&s))
            .map_or(1, |h| h + 1)
    }

    /// Evidence this node saw: submit it as a signed `SubmitEvidence` transaction from the
    /// validator's own account (it pays the fee and earns the reporter's share of the slash).
    fn report_evidence(&mut self, evidence: Vec<u8>) {
        let Some(key) = self.reporter.clone() else {
            return;
        };
        let list = match evidence_from_engine(&evidence) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("undecodable evidence from the engine: {e}");
                return;
            }
        };
        let sh = &self.shared;
        for ev in list {
            if let Err(e) = ev.validate(&sh.chain_id) {
                tracing::warn!("engine evidence does not validate: {e}");
                continue;
            }
            let action = opal_types::Action::SubmitEvidence {
                evidence: ev.clone(),
            };
            let result = crate::local::submit(sh, &key, action);
            match result {
                Ok(h) => {
                    tracing::warn!(validator = %ev.a.validator, height = ev.a.height, tx = %h, "double signing observed; evidence submitted")
                }
                Err(e) => {
                    tracing::warn!(validator = %ev.a.validator, "double signing observed but the evidence could not be submitted: {e}")
                }
            }
        }
    }
}

/// Sender state for mempool admission, from the latest committed state.
pub fn sender_state(snap: &Snapshot, addr: &opal_types::Address) -> Result<SenderState, AppError> {
    let a = accounts::get(&Overlay::new(snap.clone()), addr)
        .map_err(|e| AppError::Ledger(e.to_string()))?;
    Ok(SenderState {
        nonce: a.nonce,
        balance: a.balance,
    })
}
