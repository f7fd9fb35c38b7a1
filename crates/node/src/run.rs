//! Start a node from its home directory: store and genesis, API server, consensus engine.

use crate::api;
use crate::app::{OpalApp, Shared};
use crate::error::NodeError;
use crate::home::Home;
use crate::mempool::{Mempool, MempoolLimits};
use opal_consensus::{ConsensusConfig, ConsensusHandle, Timeouts};
use opal_ledger::{exec, Genesis};
use opal_state::{Overlay, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{broadcast, oneshot, watch};

#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Override the API address of the config file.
    pub api_addr: Option<SocketAddr>,
    /// Serve inference with this account key (overrides the config's `inference_key`).
    pub inference_key: Option<opal_types::SecretKey>,
}

pub struct NodeHandle {
    pub api_addr: SocketAddr,
    pub shared: Arc<Shared>,
    /// The content-addressed artifact store every node keeps.
    pub artifacts: Arc<opal_artifacts::ArtifactStore>,
    /// The inference service, when this node serves inference.
    pub inference: Option<Arc<opal_worker::InferenceService>>,
    /// The LLM service (OpenAI-compatible API under `/v1`), with the inference service.
    pub llm: Option<Arc<opal_worker::llm::LlmService>>,
    /// The inference service's settlement and artifact-sync tasks.
    background: Vec<tokio::task::JoinHandle<()>>,
    consensus: ConsensusHandle,
    api_stop: oneshot::Sender<()>,
    api_task: tokio::task::JoinHandle<()>,
    /// Where the pending transactions go on shutdown.
    mempool_file: std::path::PathBuf,
}

/// Most bytes of a saved mempool read back at start.
const MAX_SAVED_MEMPOOL_BYTES: usize = 256 << 20;

/// Write what is pending (encoded transactions, sender and nonce order) to `path`, atomically.
fn save_mempool(shared: &Shared, path: &std::path::Path) -> std::io::Result<usize> {
    let txs: Vec<Vec<u8>> = shared
        .mempool
        .lock()
        .reap(usize::MAX)
        .iter()
        .map(opal_types::encode)
        .collect();
    if txs.is_empty() {
        return Ok(0);
    }
    let tmp = path.with_extension("borsh.tmp");
    std::fs::write(&tmp, borsh::to_vec(&txs)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(txs.len())
}

/// Admit again, through every check, what a clean shutdown left in `path`, then delete it.
/// Returns (admitted, refused).
fn restore_mempool(shared: &Shared, path: &std::path::Path) -> (usize, usize) {
    let Ok(bytes) = std::fs::read(path) else {
        return (0, 0);
    };
    let _ = std::fs::remove_file(path);
    let txs: Vec<Vec<u8>> =
        match opal_types::decode("saved mempool", &bytes, MAX_SAVED_MEMPOOL_BYTES) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("ignoring an unreadable saved mempool: {e}");
                return (0, 0);
            }
        };
    let mut ok = 0;
    for tx in &txs {
        if api::admit_bytes(shared, tx).is_ok() {
            ok += 1;
        }
    }
    (ok, txs.len() - ok)
}

impl NodeHandle {
    /// Stop consensus first (no new blocks), then the API.
    pub async fn shutdown(self) {
        for t in &self.background {
            t.abort();
        }
        self.consensus.shutdown().await;
        let _ = self.api_stop.send(());
        let _ = self.api_task.await;
        match save_mempool(&self.shared, &self.mempool_file) {
            Ok(0) => {}
            Ok(n) => tracing::info!(pending = n, "saved the mempool for the next start"),
            Err(e) => tracing::warn!("could not save the mempool: {e}"),
        }
    }

    /// A receiver of the latest committed height.
    pub fn height(&self) -> watch::Receiver<u64> {
        self.shared.height.subscribe()
    }
}

/// Open the store; on first start write the genesis state as version 0.
pub fn open_store(home: &Home) -> Result<Store, NodeError> {
    let genesis = home.read_genesis()?;
    std::fs::create_dir_all(home.root.join("data"))?;
    let store = Store::open(&home.state_path())?;
    match store.latest_version() {
        None => {
            let mut o = Overlay::new(store.snapshot()?);
            genesis.apply(&mut o)?;
            store.commit(0, o.into_writes(), Default::default())?;
            tracing::info!(chain_id = %genesis.chain_id, "wrote genesis state");
        }
        Some(_) => {
            let stored = exec::chain_id(&Overlay::new(store.snapshot()?))?;
            if stored != genesis.chain_id {
                return Err(NodeError::Home(format!(
                    "the data in {} belongs to chain {stored:?}, but genesis.json says {:?}",
                    home.root.display(),
                    genesis.chain_id
                )));
            }
        }
    }
    Ok(store)
}

/// Join by state sync (`statesync.rs`) into `data/state-sync.redb`, renamed to the state file
/// only once complete: an interrupted or failed join leaves no state, and the next start tries
/// again.
async fn state_sync(home: &Home, genesis: &Genesis, peers: &[String]) -> Result<(), NodeError> {
    let data = home.root.join("data");
    std::fs::create_dir_all(&data)?;
    let partial = data.join("state-sync.redb");
    let scratch = data.join("genesis-trust.redb");
    for p in [&partial, &scratch] {
        if p.exists() {
            std::fs::remove_file(p)?;
        }
    }
    tracing::info!(peers = ?peers, "no state yet: joining by state sync");
    let (genesis, peers) = (genesis.clone(), peers.to_vec());
    let (p2, s2) = (partial.clone(), scratch.clone());
    let joined = tokio::task::spawn_blocking(move || {
        let store = Store::open(&p2)?;
        crate::statesync::join(&store, &genesis, &peers, &s2)
    })
    .await
    .map_err(|e| NodeError::Home(format!("state sync: {e}")))?;
    let _ = std::fs::remove_file(&scratch);
    let j = match joined {
        Ok(j) => j,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, home.state_path())?;
    tracing::info!(
        height = j.height,
        root = %j.root,
        leaves = j.leaves,
        chunks = j.chunks,
        refused = j.refused,
        secs = format!("{:.2}", j.secs),
        "state sync: joined at height {}; following blocks from {}",
        j.height,
        j.height + 1
    );
    Ok(())
}

pub async fn start_node(home: &Home, opts: NodeOptions) -> Result<NodeHandle, NodeError> {
    let config = home.read_config()?;
    let genesis = home.read_genesis()?;
    let key = home.node_key()?;
    if !config.state_sync_peers.is_empty() && !home.state_path().exists() {
        state_sync(home, &genesis, &config.state_sync_peers).await?;
    }
    let store = open_store(home)?;
    if let Some(n) = config.retain_heights {
        if n < crate::prune::MIN_RETAIN_HEIGHTS {
            return Err(NodeError::Home(format!(
                "retain_heights = {n} in config.toml: a pruning node keeps at least {} heights \
                 (remove the line for an archive node)",
                crate::prune::MIN_RETAIN_HEIGHTS
            )));
        }
        store.set_retention(opal_state::Retention::Last(n))?;
        tracing::info!(retain_heights = n, "pruning: keeping the last {n} heights");
    }
    let height = store.latest_version().unwrap_or(0);
    let (events, _) = broadcast::channel(16 * 1024);
    let (height_tx, _) = watch::channel(height);
    let metrics = crate::metrics::Metrics::default();
    let gossip = crate::gossip::Gossip::start(config.gossip_peers.clone(), metrics.gossip.clone());
    let shared = Arc::new(Shared {
        store,
        mempool: parking_lot::Mutex::new(Mempool::new(MempoolLimits::default())),
        events,
        height: height_tx,
        chain_id: genesis.chain_id.clone(),
        validator: key.public_key(),
        check_invariants: config.check_invariants,
        metrics,
        gossip,
        snapshot_interval: config.snapshot_interval,
        penalties: Default::default(),
    });
    let (again, refused) = restore_mempool(&shared, &home.root.join("data").join("mempool.borsh"));
    if again + refused > 0 {
        tracing::info!(
            admitted = again,
            refused,
            "the mempool saved at the last shutdown was admitted again"
        );
    }

    let api_addr = opts.api_addr.unwrap_or(config.api_addr);
    let listener = tokio::net::TcpListener::bind(api_addr)
        .await
        .map_err(|e| NodeError::Home(format!("cannot listen for the API on {api_addr}: {e}")))?;
    let api_addr = listener.local_addr()?;
    let (api_stop, stop_rx) = oneshot::channel::<()>();
    let artifacts = Arc::new(
        opal_artifacts::ArtifactStore::open(&home.artifacts_dir(), Default::default())
            .map_err(|e| NodeError::Home(format!("artifact store: {e}")))?,
    );
    let inference_key = match (opts.inference_key.clone(), &config.inference_key) {
        (Some(k), _) => Some(k),
        (None, Some(p)) => {
            let p = if p.is_absolute() {
                p.clone()
            } else {
                home.root.join(p)
            };
            Some(crate::home::KeyFile::read(&p)?.secret()?)
        }
        (None, None) => None,
    };
    let inference = match inference_key {
        Some(k) => Some(
            opal_worker::InferenceService::open(
                k,
                Arc::new(crate::worker::NodeChain(shared.clone())),
                Arc::new(opal_worker::SystemClock),
                artifacts.clone(),
                home.data_dir(),
                opal_worker::Options::from_env(),
            )
            .map_err(|e| NodeError::Home(e.to_string()))?,
        ),
        None => None,
    };
    let llm = inference.clone().map(opal_worker::llm::LlmService::new);
    let router = api::router(shared.clone())
        .merge(opal_artifacts::router(artifacts.clone()))
        .merge(api::inference_router(inference.clone()))
        .merge(api::openai_router(llm.clone()));
    let api_task = tokio::spawn(async move {
        let r = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        })
        .await;
        if let Err(e) = r {
            tracing::error!("API server: {e}");
        }
    });

    let consensus = opal_consensus::start(
        ConsensusConfig {
            home: home.consensus_dir(),
            signing_key: key.seed(),
            listen_addr: config.p2p_addr,
            peers: config.peers.clone(),
            peers_only: config.peers_only,
            timeouts: if config.dev_timeouts {
                Timeouts::dev()
            } else {
                Timeouts::default()
            },
            chain_id: genesis.chain_id.clone(),
        },
        OpalApp::new(shared.clone(), Some(key.clone())),
    )
    .await?;
    let background: Vec<tokio::task::JoinHandle<()>> = match &inference {
        Some(svc) => vec![
            crate::worker::spawn_artifact_sync(
                svc.clone(),
                std::time::Duration::from_secs(5),
                config.artifact_peers.clone(),
            ),
            crate::worker::spawn_settlement(svc.clone(), std::time::Duration::from_millis(500)),
        ],
        None => vec![],
    };
    if let Some(svc) = &inference {
        tracing::info!(node = %svc.address(), "serving inference");
    }
    tracing::info!(%api_addr, height, "node started");
    Ok(NodeHandle {
        api_addr,
        shared,
        artifacts,
        inference,
        llm,
        background,
        consensus,
        api_stop,
        api_task,
        mempool_file: home.root.join("data").join("mempool.borsh"),
    })
}
