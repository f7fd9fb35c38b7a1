//! A node's home directory:
//!
//! ```text
//! HOME/config.toml        chain id, API and p2p addresses, peers
//! HOME/genesis.json       the chain's genesis
//! HOME/node_key.json      this validator's ed25519 key (keep secret)
//! HOME/keys/NAME.json     account keys (devnet writes its funded development accounts here)
//! HOME/data/state.redb    authenticated state, blocks, results, tx index (one file)
//! HOME/data/consensus/    the consensus engine's WAL and undecided-proposal store
//! ```

use crate::error::NodeError;
use opal_ledger::Genesis;
use opal_types::SecretKey;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeConfig {
    pub moniker: String,
    /// HTTP API listen address.
    pub api_addr: SocketAddr,
    /// Consensus p2p listen address.
    pub p2p_addr: SocketAddr,
    /// Persistent peers' p2p addresses.
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
    /// Hold p2p connections only to and from `peers`: a validator lists the other validators
    /// and the full nodes it serves, and no other node takes a slot in its mesh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub peers_only: bool,
    /// Check the ledger invariants (total supply) after every block. Costs a scan of all accounts.
    #[serde(default)]
    pub check_invariants: bool,
    /// Use short consensus timeouts (devnet).
    #[serde(default)]
    pub dev_timeouts: bool,
    /// Serve inference with this account key file (relative to the home, or absolute). The
    /// account must have bonded the inference-node role and declared its service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_key: Option<PathBuf>,
    /// API URLs of nodes to fetch model files from, besides the endpoints of declared services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifact_peers: Vec<String>,
    /// API URLs of the nodes this one gossips admitted transactions to (the other validators,
    /// and full nodes that relay for clients); see `gossip.rs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gossip_peers: Vec<String>,
    /// Keep the state, blocks and transaction index of only the last N heights (at least
    /// `prune::MIN_RETAIN_HEIGHTS`); older heights answer 410 `pruned`. Absent: an archive
    /// node, which keeps everything (see `prune.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_heights: Option<u64>,
    /// Offer the state at every multiple of this height for other nodes to join from
    /// (`statesync.rs`). Absent: offer none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_interval: Option<u64>,
    /// API URLs of nodes to join from by state sync, used when this home has no state yet
    /// (otherwise the node replays every block from genesis).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_sync_peers: Vec<String>,
}

/// A validator's consensus key and VRF key, as an operator names them: the path of its node key
/// file (both are read from it), or the consensus key in hex with the VRF key in hex (`opal
/// node init` prints both).
pub fn consensus_keys(
    key: &str,
    vrf: Option<&str>,
) -> Result<(opal_types::PublicKey, opal_types::vrf::VrfPublicKey), NodeError> {
    let p = Path::new(key);
    if p.is_file() {
        let k = KeyFile::read(p)?.secret()?;
        return Ok((k.public_key(), k.vrf_public_key()));
    }
    let bad = |m: String| NodeError::Home(m);
    let pk = opal_types::PublicKey::from_hex(key).map_err(|e| {
        bad(format!(
            "consensus key: {e} (give 64 hex digits or a node_key.json path)"
        ))
    })?;
    let vrf = vrf.ok_or_else(|| {
        bad("a VRF key is needed with a hex consensus key (`opal node init` prints it), or give the node_key.json path".into())
    })?;
    let b: [u8; 32] = hex::decode(vrf)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("VRF key: expected 64 hex digits".into()))?;
    Ok((pk, opal_types::vrf::VrfPublicKey(b)))
}

/// A key file: the same format for validator keys and account keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub name: String,
    pub address: String,
    pub public_key: String,
    pub secret_key: String,
}

impl KeyFile {
    pub fn new(name: &str, key: &SecretKey) -> KeyFile {
        KeyFile {
            name: name.to_string(),
            address: key.address().to_string(),
            public_key: key.public_key().to_hex(),
            secret_key: hex::encode(key.seed()),
        }
    }

    pub fn secret(&self) -> Result<SecretKey, NodeError> {
        SecretKey::from_hex(&self.secret_key)
            .map_err(|e| NodeError::Home(format!("key {:?}: {e}", self.name)))
    }

    pub fn read(path: &Path) -> Result<KeyFile, NodeError> {
        let s = std::fs::read_to_string(path).map_err(|e| {
            NodeError::Home(format!("cannot read key file {}: {e}", path.display()))
        })?;
        serde_json::from_str(&s)
            .map_err(|e| NodeError::Home(format!("key file {} is not valid: {e}", path.display())))
    }

    /// The key files (`*.json`) in `dir`, each read, in file-name order; none if `dir` does
    /// not exist. A file that does not read is returned with its error (callers skip or fail).
    pub fn read_dir(dir: &Path) -> Vec<(PathBuf, Result<KeyFile, NodeError>)> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return vec![];
        };
        let mut paths: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let k = KeyFile::read(&p);
                (p, k)
            })
            .collect()
    }

    /// Write with owner-only permissions, atomically (write a temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<(), NodeError> {
        write_atomic(
            path,
            serde_json::to_string_pretty(self)
                .expect("serializes")
                .as_bytes(),
            true,
        )
    }
}

/// Write a file atomically: a temporary sibling, fsync, rename. Never leaves a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<(), NodeError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let _ = secret;
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn genesis_path(&self) -> PathBuf {
        self.root.join("genesis.json")
    }
    pub fn node_key_path(&self) -> PathBuf {
        self.root.join("node_key.json")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn state_path(&self) -> PathBuf {
        self.root.join("data").join("state.redb")
    }
    pub fn consensus_dir(&self) -> PathBuf {
        self.root.join("data").join("consensus")
    }
    /// The content-addressed artifact store (models, datasets).
    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn is_initialized(&self) -> bool {
        self.config_path().exists() && self.genesis_path().exists() && self.node_key_path().exists()
    }

    pub fn read_config(&self) -> Result<NodeConfig, NodeError> {
        let p = self.config_path();
        let s = std::fs::read_to_string(&p)
            .map_err(|e| NodeError::Home(format!("cannot read {}: {e}", p.display())))?;
        toml::from_str(&s)
            .map_err(|e| NodeError::Home(format!("{} is not valid: {e}", p.display())))
    }

    pub fn write_config(&self, c: &NodeConfig) -> Result<(), NodeError> {
        let s = toml::to_string_pretty(c).map_err(|e| NodeError::Home(e.to_string()))?;
        write_atomic(&self.config_path(), s.as_bytes(), false)
    }

    pub fn read_genesis(&self) -> Result<Genesis, NodeError> {
        let p = self.genesis_path();
        let s = std::fs::read_to_string(&p)
            .map_err(|e| NodeError::Home(format!("cannot read {}: {e}", p.display())))?;
        let g = Genesis::from_json(&s)?;
        g.validate()?;
        Ok(g)
    }

    pub fn write_genesis(&self, g: &Genesis) -> Result<(), NodeError> {
        write_atomic(&self.genesis_path(), g.to_json().as_bytes(), false)
    }

    pub fn node_key(&self) -> Result<SecretKey, NodeError> {
        KeyFile::read(&self.node_key_path())?.secret()
    }
}
