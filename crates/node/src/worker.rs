//! The node's side of the inference worker (`opal-worker`): the worker's view of this node's
//! chain (committed state, commit status, submission through [`crate::local::submit`]), and the
//! background tasks that drive it (settlement and reveal passes, the prover thread, fetching
//! the files of offered models from peers).

use crate::app::Shared;
use opal_artifacts::ArtifactHash;
use opal_ledger::components::registry;
use opal_state::Overlay;
use opal_types::{Action, Hash, SecretKey};
use opal_worker::{Chain, ChainError, Committed, InferenceService};
use std::sync::Arc;
use std::time::Duration;

/// This node's chain, as the worker sees it.
pub struct NodeChain(pub Arc<Shared>);

impl Chain for NodeChain {
    fn chain_id(&self) -> &str {
        &self.0.chain_id
    }

    fn max_tx_bytes(&self) -> u64 {
        // The parameters in force; at worst (a state read failing) the hard decoding bound,
        // which the chain then enforces itself.
        self.0
            .params()
            .map(|p| p.max_tx_bytes as u64)
            .unwrap_or(opal_types::tx::MAX_TX_BYTES_HARD as u64)
    }

    fn committed(&self) -> Result<Committed, ChainError> {
        let state = |e: crate::app::AppError| ChainError::State(e.to_string());
        let snap = self.0.snapshot().map_err(state)?;
        Ok(Committed {
            height: snap.version().unwrap_or(0),
            state: Overlay::new(snap),
        })
    }

    fn block_time_ms(&self, height: u64) -> Result<u64, ChainError> {
        let state = |e: crate::app::AppError| ChainError::State(e.to_string());
        let snap = self.0.snapshot().map_err(state)?;
        Ok(self
            .0
            .stored_block(&snap, height)
            .map_err(state)?
            .and_then(|b| b.block().ok())
            .map(|b| b.header.time_ms)
            .unwrap_or(0))
    }

    fn is_committed(&self, tx: &Hash) -> Result<bool, ChainError> {
        let state = |e: crate::app::AppError| ChainError::State(e.to_string());
        let snap = self.0.snapshot().map_err(state)?;
        Ok(self.0.tx_location(&snap, tx).map_err(state)?.is_some())
    }

    fn submit(&self, key: &SecretKey, action: Action) -> Result<Hash, ChainError> {
        crate::local::submit(&self.0, key, action).map_err(|e| ChainError::Submit(e.to_string()))
    }
}

/// Fetch the files of the models `svc` offers and does not hold yet from other nodes (the
/// endpoints of every declared service, plus `extra_peers`), by content hash. The artifact
/// store hashes what arrives and refuses a mismatching file, trying the next peer.
pub async fn sync_artifacts(
    svc: &InferenceService,
    http: &reqwest::Client,
    extra_peers: &[String],
) {
    let Ok(c) = svc.chain().committed() else {
        return;
    };
    let o = &c.state;
    let me = svc.address();
    let Ok(Some(mine)) = registry::service(o, &me) else {
        return;
    };
    let mut peers: Vec<String> = registry::services(o)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.node != me)
        .map(|s| s.spec.endpoint)
        .collect();
    peers.extend(extra_peers.iter().cloned());
    for offer in &mine.spec.offers {
        let Ok(Some(m)) = registry::model(o, &offer.model) else {
            continue;
        };
        let h = ArtifactHash(m.spec.content_hash.0);
        if svc.artifacts().has(&h) {
            continue;
        }
        if peers.is_empty() {
            tracing::warn!(model = %offer.model, "model file missing and no peer to fetch it from; upload it with `opal model upload`");
            continue;
        }
        match opal_artifacts::fetch_into_store_async(http, &peers, &h, svc.artifacts().clone())
            .await
        {
            Ok(r) => {
                tracing::info!(model = %offer.model, peer = %r.peer, bytes = r.size, "fetched model file")
            }
            Err(e) => tracing::warn!(model = %offer.model, "could not fetch the model file: {e}"),
        }
    }
}

/// Keep the offered models' files present: [`sync_artifacts`] every `every`.
pub fn spawn_artifact_sync(
    svc: Arc<InferenceService>,
    every: Duration,
    extra_peers: Vec<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = match reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("artifact sync disabled: {e}");
                return;
            }
        };
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            sync_artifacts(&svc, &http, &extra_peers).await;
        }
    })
}

/// Start the prover thread and run the settlement and reveal passes every `every` until the
/// process ends.
pub fn spawn_settlement(
    svc: Arc<InferenceService>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let prover = svc.clone();
    if let Err(e) = std::thread::Builder::new()
        .name("opal-zk-prover".into())
        .spawn(move || prover.prover_loop())
    {
        tracing::error!("zk prover thread not started: {e}");
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let m = svc.clone();
            match tokio::task::spawn_blocking(move || {
                m.settle_pass().and_then(|()| m.reveal_pass())
            })
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("settlement pass: {e}"),
                Err(e) => tracing::error!("settlement pass panicked: {e}"),
            }
        }
    })
}
