//! Test executor: a counter chain whose block is `borsh(height, round, payload)` and whose
//! state root is `blake3(previous root || block)`. State is kept in memory (shared with the
//! test through an `Arc<Mutex<..>>`) and, when a path is given, persisted to one file with
//! write-to-temp + fsync + rename, so a restart finds it again.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use borsh::{BorshDeserialize, BorshSerialize};
use opal_consensus::{
    BlockExecutor, CommitCertificate, ConsensusConfig, Hash32, Height, Timeouts, Validator,
};

pub const CHAIN_ID: &str = "opal-test";

#[derive(Clone, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct CounterState {
    pub last: Height,
    pub root: Hash32,
    /// height -> (block, certificate, state root after it)
    pub blocks: BTreeMap<Height, (Vec<u8>, CommitCertificate, Hash32)>,
}

#[derive(BorshSerialize, BorshDeserialize, Debug)]
pub struct Block {
    pub height: Height,
    pub round: u32,
    pub payload: Vec<u8>,
}

pub struct CounterApp {
    pub state: Arc<Mutex<CounterState>>,
    pub validators: Vec<Validator>,
    file: Option<PathBuf>,
}

impl CounterApp {
    pub fn in_memory(validators: Vec<Validator>) -> Self {
        Self {
            state: Arc::default(),
            validators,
            file: None,
        }
    }

    /// Load from `file` if it exists.
    pub fn persistent(validators: Vec<Validator>, file: &Path) -> Self {
        let state = match std::fs::read(file) {
            Ok(bytes) => CounterState::try_from_slice(&bytes).expect("state file"),
            Err(_) => CounterState::default(),
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            validators,
            file: Some(file.to_path_buf()),
        }
    }

    fn persist(&self, s: &CounterState) -> Result<(), String> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let tmp = file.with_extension("tmp");
        let bytes = borsh::to_vec(s).map_err(|e| e.to_string())?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
            f.write_all(&bytes).map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())?;
        }
        std::fs::rename(&tmp, file).map_err(|e| e.to_string())
    }
}

impl BlockExecutor for CounterApp {
    type Error = String;

    fn last_committed(&self) -> Height {
        self.state.lock().unwrap().last
    }

    fn validator_set(&self, _height: Height) -> Vec<Validator> {
        self.validators.clone()
    }

    fn build_block(&mut self, height: Height, round: u32, proposer: [u8; 32]) -> Vec<u8> {
        let mut payload = proposer[..4].to_vec();
        payload.extend_from_slice(b"counter");
        borsh::to_vec(&Block {
            height,
            round,
            payload,
        })
        .unwrap()
    }

    fn verify_block(&self, height: Height, block: &[u8]) -> Result<(), String> {
        let b = Block::try_from_slice(block).map_err(|e| e.to_string())?;
        if b.height != height {
            return Err(format!("block for height {} at height {height}", b.height));
        }
        Ok(())
    }

    fn commit(
        &mut self,
        height: Height,
        block: &[u8],
        certificate: &CommitCertificate,
    ) -> Result<Hash32, String> {
        let mut s = self.state.lock().unwrap().clone();
        if height <= s.last {
            return Ok(s.blocks.get(&height).map(|b| b.2).unwrap_or(s.root));
        }
        if height != s.last + 1 {
            return Err(format!("commit of {height} after {}", s.last));
        }
        let mut h = blake3::Hasher::new();
        h.update(&s.root);
        h.update(block);
        let root = *h.finalize().as_bytes();
        s.last = height;
        s.root = root;
        s.blocks
            .insert(height, (block.to_vec(), certificate.clone(), root));
        self.persist(&s)?;
        *self.state.lock().unwrap() = s;
        Ok(root)
    }

    fn decided(&self, height: Height) -> Option<(Vec<u8>, CommitCertificate)> {
        let s = self.state.lock().unwrap();
        s.blocks
            .get(&height)
            .map(|(b, c, _)| (b.clone(), c.clone()))
    }

    fn history_min_height(&self) -> Height {
        let s = self.state.lock().unwrap();
        s.blocks.keys().next().copied().unwrap_or(0)
    }
}

pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn seed(i: u8) -> [u8; 32] {
    [i + 1; 32]
}

pub fn validator(i: u8) -> Validator {
    Validator {
        public_key: opal_consensus::public_key_from_seed(&seed(i)),
        power: 10,
    }
}

pub fn config(home: &Path, i: u8, listen: SocketAddr, peers: Vec<SocketAddr>) -> ConsensusConfig {
    ConsensusConfig {
        peers_only: false,
        home: home.to_path_buf(),
        signing_key: seed(i),
        listen_addr: listen,
        peers,
        timeouts: Timeouts::dev(),
        chain_id: CHAIN_ID.to_string(),
    }
}

/// Wait until `rx` reaches `target`, or panic after `timeout`.
pub async fn wait_height(
    rx: &mut tokio::sync::watch::Receiver<Height>,
    target: Height,
    timeout: Duration,
) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(timeout, rx.wait_for(|h| *h >= target))
        .await
        .unwrap_or_else(|_| panic!("height {target} not reached within {timeout:?}"))
        .expect("consensus stopped");
    start.elapsed()
}

/// Check every stored block: height, value id, certificate signatures and power.
pub fn check_chain(state: &CounterState, validators: &[Validator]) {
    let mut root = [0u8; 32];
    for (h, (block, cert, r)) in &state.blocks {
        assert_eq!(cert.height, *h);
        assert_eq!(
            cert.value_id,
            opal_consensus::value_id(block),
            "value id at {h}"
        );
        cert.verify(CHAIN_ID, validators)
            .unwrap_or_else(|e| panic!("certificate at {h}: {e}"));
        let b = Block::try_from_slice(block).unwrap();
        assert_eq!(b.height, *h);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&root);
        hasher.update(block);
        root = *hasher.finalize().as_bytes();
        assert_eq!(&root, r, "state root at {h}");
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,opal_consensus=info".into()),
        )
        .with_test_writer()
        .try_init();
}
