//! Engine wiring: builds Malachite's actors (network, WAL, sync, consensus) and spawns the
//! application loop; [`ConsensusHandle`] stops both.

use std::net::SocketAddr;
use std::time::Duration;

use malachitebft_app_channel::app::config::{
    ConsensusConfig as EngineConsensusConfig, NodeConfig, P2pConfig, PubSubProtocol, ValuePayload,
    ValueSyncConfig,
};
use malachitebft_app_channel::app::engine::consensus::Msg as ConsensusActorMsg;
use malachitebft_app_channel::app::engine::sync::Msg as SyncActorMsg;
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::{
    ConsensusContext, EngineBuilder, EngineHandle, NetworkContext, NetworkIdentity, RequestContext,
    Signer, SyncContext, WalContext,
};
use malachitebft_codec::Codec;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::app::App;
use crate::codec::{OpalCodec, MAX_SYNC_RESPONSE};
use crate::context::OpalContext;
use crate::signing::{OpalSigner, OpalVerifier};
use crate::store::UndecidedStore;
use crate::{BlockExecutor, ConsensusConfig, ConsensusError, Height};

/// The engine's view of our configuration.
#[derive(Clone, Debug)]
struct EngineConfig {
    moniker: String,
    consensus: EngineConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &EngineConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut EngineConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn multiaddr(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("/ip4/{}/tcp/{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("/ip6/{}/tcp/{}", a.ip(), a.port()),
    }
}

fn engine_config(cfg: &ConsensusConfig, moniker: String) -> Result<EngineConfig, ConsensusError> {
    let parse = |a: &SocketAddr| {
        multiaddr(a)
            .parse()
            .map_err(|e| ConsensusError::Config(format!("address {a}: {e}")))
    };
    let mut persistent_peers = Vec::with_capacity(cfg.peers.len());
    for p in &cfg.peers {
        persistent_peers.push(parse(p)?);
    }
    let p2p = P2pConfig {
        listen_addr: parse(&cfg.listen_addr)?,
        persistent_peers,
        persistent_peers_only: cfg.peers_only,
        // Gossipsub with flood publishing (the engine's default).
        protocol: PubSubProtocol::default(),
        pubsub_max_size: bytesize::ByteSize::mib(4),
        rpc_max_size: bytesize::ByteSize::b(MAX_SYNC_RESPONSE as u64),
        ..P2pConfig::default()
    };
    Ok(EngineConfig {
        moniker,
        consensus: EngineConsensusConfig {
            p2p,
            value_payload: ValuePayload::ProposalAndParts,
            ..EngineConsensusConfig::default()
        },
        value_sync: ValueSyncConfig {
            enabled: true,
            status_update_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            max_response_size: bytesize::ByteSize::b(MAX_SYNC_RESPONSE as u64 / 2),
            ..ValueSyncConfig::default()
        },
    })
}

/// Running consensus: dropping it, or [`ConsensusHandle::shutdown`], stops it.
pub struct ConsensusHandle {
    engine: Option<EngineHandle>,
    app: Option<JoinHandle<Result<(), ConsensusError>>>,
    stop: Option<oneshot::Sender<()>>,
    committed: watch::Receiver<Height>,
    address: [u8; 32],
}

impl ConsensusHandle {
    /// Latest committed height (updated after each successful `commit`).
    pub fn committed_height(&self) -> watch::Receiver<Height> {
        self.committed.clone()
    }

    /// This validator's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.address
    }

    /// `true` while the application loop runs (it ends on a fatal error or at shutdown).
    pub fn is_running(&self) -> bool {
        self.app.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop the engine (network, WAL, sync, consensus) and the application loop, and wait
    /// until both are gone (the executor is dropped; ports and files are released).
    pub async fn shutdown(mut self) {
        self.stop_all().await;
    }

    async fn stop_all(&mut self) {
        if let Some(engine) = self.engine.take() {
            let reason = || Some("shutdown".to_string());
            let wait = Some(Duration::from_secs(10));
            // Stop consensus first and sync next: consensus flushes the WAL before it
            // publishes anything, and would report a safety failure if the WAL went first.
            let children = engine.actor.get_cell().get_children();
            for c in &children {
                if c.is_message_type_of::<ConsensusActorMsg<OpalContext>>() == Some(true) {
                    let _ = c.stop_and_wait(reason(), wait).await;
                }
            }
            for c in &children {
                if c.is_message_type_of::<SyncActorMsg<OpalContext>>() == Some(true) {
                    let _ = c.stop_and_wait(reason(), wait).await;
                }
            }
            engine
                .actor
                .get_cell()
                .stop_children_and_wait(reason(), wait)
                .await;
            // The node actor stops by itself once its children are gone.
            if let Err(e) = engine.actor.stop_and_wait(reason(), wait).await {
                debug!(error = %e, "engine node actor already stopped");
            }
            if tokio::time::timeout(Duration::from_secs(10), engine.handle)
                .await
                .is_err()
            {
                warn!("engine task did not finish in time");
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(app) = self.app.take() {
            match tokio::time::timeout(Duration::from_secs(10), app).await {
                Ok(Ok(Err(e))) => warn!(error = %e, "consensus loop had failed"),
                Ok(Err(e)) => warn!(error = %e, "consensus loop panicked"),
                Err(_) => warn!("consensus loop did not finish in time"),
                Ok(Ok(Ok(()))) => {}
            }
        }
    }
}

impl Drop for ConsensusHandle {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine
                .actor
                .get_cell()
                .stop_children(Some("dropped".into()));
            engine.actor.stop(Some("dropped".into()));
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Start the real engine (libp2p network, WAL, value sync) and the app loop driving
/// `executor`. Must be called inside a tokio runtime.
pub async fn start<E: BlockExecutor>(
    config: ConsensusConfig,
    executor: E,
) -> Result<ConsensusHandle, ConsensusError> {
    std::fs::create_dir_all(&config.home)?;
    let store = UndecidedStore::open(&config.home.join("consensus.redb"))?;
    let signer = OpalSigner::new(config.signing_key, &config.chain_id);
    let address = signer.address();
    let moniker = format!("opal-{}", hex::encode(&address.0[..4]));

    // The p2p identity is derived from (but not equal to) the consensus key; the engine's
    // validator proof binds the two.
    let p2p_seed = blake3::derive_key(opal_domains::derive::P2P_IDENTITY, &config.signing_key);
    let keypair = Keypair::ed25519_from_bytes(p2p_seed)
        .map_err(|e| ConsensusError::Config(format!("p2p key: {e}")))?;
    let peer_id = keypair.public().to_peer_id().to_bytes();
    let proof = signer
        .sign_validator_proof(address.0.to_vec(), peer_id)
        .await
        .map_err(|e| ConsensusError::Engine(format!("validator proof: {e}")))?;
    let proof_bytes = OpalCodec
        .encode(&proof)
        .map_err(|e| ConsensusError::Engine(format!("validator proof: {e}")))?;
    let identity =
        NetworkIdentity::new_validator(moniker.clone(), keypair, address.to_string(), proof_bytes);

    let engine_cfg = engine_config(&config, moniker)?;
    let (channels, engine) = EngineBuilder::new(OpalContext, engine_cfg)
        .with_default_wal(WalContext::new(
            config.home.join("wal").join("consensus.wal"),
            OpalCodec,
        ))
        .with_default_network(NetworkContext::new(identity, OpalCodec))
        .with_default_sync(SyncContext::new(OpalCodec))
        .with_default_consensus(ConsensusContext::new_validator(
            address,
            Box::new(OpalVerifier::new(&config.chain_id)),
            Box::new(signer.clone()),
        ))
        .with_default_request(RequestContext::new(100))
        .build()
        .await
        .map_err(|e| ConsensusError::Engine(format!("{e:#}")))?;

    let initial = executor.last_committed();
    let (committed_tx, committed_rx) = watch::channel(initial);
    let app = App::new(executor, store, signer, &config.timeouts, committed_tx);
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(app.run(channels, stop_rx));

    Ok(ConsensusHandle {
        engine: Some(engine),
        app: Some(task),
        stop: Some(stop_tx),
        committed: committed_rx,
        address: address.0,
    })
}
