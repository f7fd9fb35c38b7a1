//! State sync: serve snapshots of recent heights, and join a network from one instead of
//! replaying every block.
//!
//! **Serving.** With `snapshot_interval = K` in `config.toml`, a node offers the state at every
//! height that is a multiple of K, that it still keeps, and that has a committed block after
//! it (`GET /api/snapshots`); `GET /api/snapshots/{h}/chunk?after=KEYHASH&limit=N` returns
//! `opal_state::Chunk` bytes: consecutive leaves of that version's tree and their range proof.
//! Snapshots are read from the store's own versions (nothing is copied), so a pruning node
//! offers those its `retain_heights` keeps.
//!
//! **Joining** (`opal node start --state-sync URL,...` on a home with no state yet):
//! 1. trust starts at the genesis file: its validator set and state root, computed by applying
//!    it, as every validator did;
//! 2. the newest height `H` any peer offers is picked, and light block `H+1` is verified from
//!    genesis with the light-client rules (`opal_verify::light::verify_to`: commit certificates
//!    of more than 2/3 of each set, bisecting across set changes); its header's
//!    `prev_state_root` is the root of the state after `H`. Block `H` is fetched and must be
//!    `H+1`'s parent;
//! 3. chunks are fetched from the peers in turn and each is checked against that root by
//!    `opal_state::Restore`; a refused chunk is fetched again from the next peer, and a peer
//!    that sent one is not asked again;
//! 4. the store then holds version `H` (its oldest), block `H` is kept as the anchor the next
//!    block's parent hash is checked against, and the node starts consensus at `H+1`, getting
//!    the blocks after `H` by value sync.
//!
//! Nothing a peer says is taken on its word: the root comes from a certificate chain from
//! genesis, and every leaf from a proof against it.

use crate::error::NodeError;
use opal_ledger::Genesis;
use opal_state::{Chunk, Store};
use opal_types::Hash;
use opal_verify::light::{self, LightBlock, Options, TrustedState};
use std::time::{Duration, Instant};

/// Leaves per chunk a joining node asks for.
pub const CHUNK_LEAVES: usize = 2_000;
/// How many snapshot heights a node lists.
pub const OFFERED: usize = 3;
/// Aux key: the block a state-synced node started from ([`SyncAnchor`]).
pub const ANCHOR_KEY: &[u8] = b"meta/sync_anchor";

/// What a state-synced node keeps of the block it started from: what checking the next block
/// needs (its header for the parent hash, its bytes for the next block's last commit, and the
/// set that voted on it, which the state before it, not held, would give).
#[derive(Clone, Debug, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct SyncAnchor {
    pub height: u64,
    pub block_bytes: Vec<u8>,
    pub certificate: Vec<u8>,
    pub validators: Vec<opal_types::validator::ActiveValidator>,
}

/// The anchor of a state-synced node, if it is one.
pub fn anchor(snap: &opal_state::Snapshot) -> Result<Option<SyncAnchor>, crate::app::AppError> {
    use crate::app::AppError;
    match snap
        .get_aux(ANCHOR_KEY)
        .map_err(|e| AppError::Store(e.to_string()))?
    {
        None => Ok(None),
        Some(b) => borsh::from_slice(&b)
            .map(Some)
            .map_err(|e| AppError::Corrupt(format!("sync anchor: {e}"))),
    }
}

pub use opal_api::SnapshotList;

/// The heights this node offers: multiples of `interval`, at least its oldest kept version,
/// below its latest height (so the next block, whose header carries the root, exists).
pub fn offered(store: &Store, interval: Option<u64>) -> Vec<u64> {
    let (Some(k), Some(latest)) = (interval.filter(|k| *k > 0), store.latest_version()) else {
        return vec![];
    };
    let oldest = store.oldest_version().max(1);
    let mut out = vec![];
    let mut h = latest.saturating_sub(1) / k * k;
    while h >= oldest && h > 0 && out.len() < OFFERED {
        out.push(h);
        h = h.saturating_sub(k);
    }
    out
}

fn err(m: impl Into<String>) -> NodeError {
    NodeError::Home(format!("state sync: {}", m.into()))
}

/// What joining did, for the log and the caller.
#[derive(Clone, Debug)]
pub struct Joined {
    pub height: u64,
    pub root: Hash,
    pub leaves: u64,
    pub chunks: u64,
    pub refused: u64,
    pub secs: f64,
}

/// Trust at genesis: the set that votes on block 1 and the state root after genesis.
fn genesis_trust(genesis: &Genesis, scratch: &std::path::Path) -> Result<TrustedState, NodeError> {
    let (root, set) = genesis
        .start(scratch)
        .map_err(|e| err(format!("applying the genesis: {e}")))?;
    let text = genesis.to_json();
    Ok(TrustedState::genesis(
        &genesis.chain_id,
        genesis.genesis_time_ms,
        set,
        root,
        Hash(*blake3::hash(text.as_bytes()).as_bytes()),
    ))
}

struct Peers {
    urls: Vec<String>,
    /// Peers that sent something that did not verify: not asked again.
    banned: Vec<bool>,
    next: usize,
    http: reqwest::blocking::Client,
}

impl Peers {
    /// The next peer not banned, round robin.
    fn pick(&mut self) -> Option<usize> {
        for _ in 0..self.urls.len() {
            let i = self.next % self.urls.len();
            self.next += 1;
            if !self.banned[i] {
                return Some(i);
            }
        }
        None
    }

    fn get(&self, i: usize, path: &str) -> Result<Vec<u8>, String> {
        let r = self
            .http
            .get(format!("{}{path}", self.urls[i].trim_end_matches('/')))
            .send()
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body = r.bytes().map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        Ok(body.to_vec())
    }

    /// `path` from the first peer (in turn) that answers 2xx.
    fn get_any(&mut self, path: &str) -> Result<Vec<u8>, String> {
        let mut last = String::from("no peer left");
        for _ in 0..self.urls.len() {
            let Some(i) = self.pick() else { break };
            match self.get(i, path) {
                Ok(b) => return Ok(b),
                Err(e) => last = format!("{}: {e}", self.urls[i]),
            }
        }
        Err(last)
    }

    fn light(&mut self, h: u64) -> Result<LightBlock, String> {
        let b = self.get_any(&format!("/api/light/{h}"))?;
        serde_json::from_slice(&b).map_err(|e| format!("malformed light block {h}: {e}"))
    }
}

/// Rebuild the empty `store` from `peers` (API URLs), trusting only `genesis`. Blocking: call
/// it off the async runtime.
pub fn join(
    store: &Store,
    genesis: &Genesis,
    peers: &[String],
    scratch: &std::path::Path,
) -> Result<Joined, NodeError> {
    let started = Instant::now();
    if store.latest_version().is_some() {
        return Err(err(
            "the store already holds state; state sync starts from an empty home",
        ));
    }
    if peers.is_empty() {
        return Err(err("no peers to sync from"));
    }
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut p = Peers {
        urls: peers.to_vec(),
        banned: vec![false; peers.len()],
        next: 0,
        http,
    };
    let trusted = genesis_trust(genesis, scratch)?;

    // 1. The newest snapshot offered.
    let mut best: Option<u64> = None;
    for i in 0..p.urls.len() {
        match p
            .get(i, "/api/snapshots")
            .and_then(|b| serde_json::from_slice::<SnapshotList>(&b).map_err(|e| e.to_string()))
        {
            Ok(l) => {
                if let Some(h) = l.heights.iter().max() {
                    best = Some(best.map_or(*h, |b| b.max(*h)));
                }
            }
            Err(e) => tracing::warn!(peer = %p.urls[i], "state sync: no snapshot list: {e}"),
        }
    }
    let h = best.ok_or_else(|| {
        err("no peer offers a snapshot (they need snapshot_interval in their config.toml)")
    })?;
    tracing::info!(height = h, "state sync: snapshot chosen");

    // 2. Its root, from a certificate chain starting at genesis.
    let opts = Options::new(
        crate::clock::now_ms(),
        Some(genesis.staking.unbonding_time_ms),
    );
    // The verifier fetches and checks block h+1 (and what bisection needs on the way); its
    // header is the verified state's, kept from that fetch.
    let mut next_header = None;
    let (next, path) = light::verify_to(
        &trusted,
        h + 1,
        &mut |x| {
            let lb = p.light(x)?;
            if x == h + 1 {
                next_header = lb.header().ok();
            }
            Ok(lb)
        },
        &opts,
    )
    .map_err(|e| err(format!("verifying block {} from genesis: {e}", h + 1)))?;
    let next_header = next_header
        .filter(|hd| hd.hash() == next.block_hash)
        .ok_or_else(|| err(format!("block {} was not the one verified", h + 1)))?;
    let anchor = p.light(h).map_err(err)?;
    let anchor_header = anchor.header().map_err(|e| err(e.to_string()))?;
    if anchor_header.height != h || anchor_header.hash() != next_header.parent_hash {
        return Err(err(format!(
            "block {h} offered is not the parent of the verified block {}",
            h + 1
        )));
    }
    let anchor_set = light::proven_set(&anchor, &anchor_header)
        .map_err(|e| err(format!("block {h}'s validator set: {e}")))?;
    let root = next_header.prev_state_root;
    tracing::info!(
        height = h,
        root = %root,
        verified = ?path,
        "state sync: root of height {h} verified from genesis"
    );

    // 3. The chunks, each checked against the root, asked of the peers in the order given.
    p.next = 0;
    let mut r = store.restore(h, root.0)?;
    let mut chunks = 0u64;
    let mut last_log = Instant::now();
    // Fetches that failed in a row (a peer down, or no longer keeping height h).
    let mut failures = 0usize;
    while !r.is_done() {
        let i = p
            .pick()
            .ok_or_else(|| err("every peer sent chunks that did not verify, or is gone"))?;
        let after = r.after().map(hex::encode).unwrap_or_default();
        let path = format!("/api/snapshots/{h}/chunk?after={after}&limit={CHUNK_LEAVES}");
        let bytes = match p.get(i, &path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(peer = %p.urls[i], "state sync: chunk fetch failed: {e}");
                failures += 1;
                if failures >= 3 * p.urls.len() {
                    return Err(err(format!(
                        "no peer serves height {h} any more (last error: {e}); start again to \
                         pick a newer snapshot"
                    )));
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        failures = 0;
        let added = Chunk::from_bytes(&bytes).and_then(|c| r.add(&c));
        match added {
            Ok(()) => chunks += 1,
            Err(e) => {
                tracing::warn!(peer = %p.urls[i], "state sync: chunk refused, not asking this peer again: {e}");
                p.banned[i] = true;
            }
        }
        if last_log.elapsed() > Duration::from_secs(2) {
            tracing::info!(leaves = r.leaves(), chunks, "state sync: restoring");
            last_log = Instant::now();
        }
    }
    let (leaves, refused) = (r.leaves(), r.refused());
    r.finish()?;

    // 4. The anchor block, and blocks up to `h` marked as not held.
    let anchor_record = SyncAnchor {
        height: h,
        block_bytes: anchor.block.clone(),
        certificate: anchor.certificate.clone(),
        validators: anchor_set,
    };
    let mut aux = std::collections::BTreeMap::new();
    aux.insert(
        ANCHOR_KEY.to_vec(),
        Some(opal_types::encode(&anchor_record)),
    );
    aux.insert(
        crate::prune::BLOCKS_PRUNED_KEY.to_vec(),
        Some(h.to_be_bytes().to_vec()),
    );
    store.put_aux(aux)?;
    Ok(Joined {
        height: h,
        root,
        leaves,
        chunks,
        refused,
        secs: started.elapsed().as_secs_f64(),
    })
}
