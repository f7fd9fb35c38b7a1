//! A devnet home: a validator key, funded development accounts, the demo accounts, genesis and
//! config. The config is written last, so a home with a config is a complete home.

use crate::*;
use anyhow::{bail, Context, Result};
use opal_ledger::{Genesis, GenesisAccount, GenesisValidator, Params};
use opal_node::home::{KeyFile, NodeConfig};
use opal_node::Home;
use opal_types::{Amount, SecretKey};

/// Create a devnet home: a validator key, funded development accounts, genesis, config.
pub fn init_home(home: &Home, a: &DevnetOptions) -> Result<()> {
    if a.accounts == 0 || a.accounts > DEV_NAMES.len() {
        bail!("--accounts must be between 1 and {}", DEV_NAMES.len());
    }
    std::fs::create_dir_all(&home.root)
        .with_context(|| format!("creating {}", home.root.display()))?;
    let validator = SecretKey::generate();
    KeyFile::new("validator", &validator).write(&home.node_key_path())?;
    // The validator's operator account pays the fees of its duties (committee votes on LLM
    // audits, `opal node watch --from HOME/node_key.json`).
    let mut accounts = vec![GenesisAccount {
        address: validator.address(),
        balance: Amount(DEV_BALANCE),
    }];
    for name in &DEV_NAMES[..a.accounts] {
        let k = SecretKey::generate();
        KeyFile::new(name, &k).write(&home.keys_dir().join(format!("{name}.json")))?;
        accounts.push(GenesisAccount {
            address: k.address(),
            balance: Amount(DEV_BALANCE),
        });
    }
    // The demo's accounts: the inference node (bonds the role, serves the demo model), the
    // model's owner and the dataset's contributor. The development accounts stay untouched.
    for name in [
        INFERENCE_KEY,
        MODEL_OWNER_KEY,
        DATA_OWNER_KEY,
        LLM_CALLER_KEY,
    ] {
        let k = SecretKey::generate();
        KeyFile::new(name, &k).write(&home.keys_dir().join(format!("{name}.json")))?;
        accounts.push(GenesisAccount {
            address: k.address(),
            balance: Amount(DEV_BALANCE),
        });
    }
    let genesis = Genesis {
        chain_id: "opal-devnet".into(),
        genesis_time_ms: now_ms(),
        params: Params::default(),
        staking: Default::default(),
        // Short verification windows so a developer sees held results paid (and frauds
        // proven) within seconds; everything else is the chain default.
        inference: opal_ledger::InferenceParams {
            challenge_window_ms: 15_000,
            reveal_window_ms: 10_000,
            ..Default::default()
        },
        // A voting period of a minute, so a proposal made on the devnet is decided while the
        // developer watches.
        governance: opal_ledger::params::GovParams {
            voting_period_ms: 60_000,
            max_deposit_period_ms: 600_000,
            ..Default::default()
        },
        rewards: Default::default(),
        accounts,
        validators: vec![GenesisValidator {
            name: "validator".into(),
            public_key: validator.public_key(),
            operator: None,
            stake: Amount(VALIDATOR_STAKE),
            vrf_key: validator.vrf_public_key(),
        }],
    };
    home.write_genesis(&genesis)?;
    // The config is written last: a home with a config is a complete home.
    home.write_config(&NodeConfig {
        moniker: "devnet".into(),
        api_addr: a.api_addr,
        p2p_addr: a.p2p_addr,
        peers: vec![],
        check_invariants: a.check_invariants,
        dev_timeouts: true,
        inference_key: Some(PathBuf::from("keys").join(format!("{INFERENCE_KEY}.json"))),
        artifact_peers: vec![],
        gossip_peers: vec![],
        retain_heights: None,
        peers_only: false,
        snapshot_interval: None,
        state_sync_peers: vec![],
    })?;
    Ok(())
}

/// Refuse to delete a directory that holds anything `opal devnet` did not write there.
pub fn only_ours(home: &Home) -> Result<()> {
    const OURS: [&str; 10] = [
        "node_key.json",
        "genesis.json",
        "config.toml",
        "keys",
        "data",
        "artifacts",
        "demo",
        ".node_key.json.tmp",
        ".genesis.json.tmp",
        ".config.toml.tmp",
    ];
    let foreign: Vec<String> = std::fs::read_dir(&home.root)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !OURS.contains(&n.as_str()))
        .collect();
    if !foreign.is_empty() {
        bail!(
            "{} is not empty and is not an Opal home (it holds {}); choose another --home or an empty directory",
            home.root.display(),
            foreign.join(", ")
        );
    }
    Ok(())
}

/// Why a directory is not a node home that can start, or `None` when it can.
pub fn missing_parts(home: &Home) -> Option<String> {
    let mut missing = vec![];
    for (p, what) in [
        (home.config_path(), "config.toml"),
        (home.genesis_path(), "genesis.json"),
        (home.node_key_path(), "node_key.json"),
    ] {
        if !p.is_file() {
            missing.push(what);
        }
    }
    if missing.is_empty() {
        None
    } else {
        Some(missing.join(", "))
    }
}

/// Refuse to start a directory that is not a complete node home, saying how to make one.
pub fn check_startable(home: &Home) -> Result<()> {
    if !home.root.is_dir() {
        bail!(
            "{} does not exist; create a node home with `opal node init --home {} --moniker NAME`, \
             `opal devnet --home DIR` or `opal testnet --home DIR`",
            home.root.display(),
            home.root.display()
        );
    }
    if let Some(missing) = missing_parts(home) {
        let hint = if home.node_key_path().is_file() && home.config_path().is_file() {
            "copy the chain's genesis.json into it (every validator of a chain uses the same file)"
        } else {
            "create one with `opal node init`, `opal devnet` or `opal testnet`"
        };
        bail!(
            "{} is not a complete node home: missing {missing}; {hint}",
            home.root.display()
        );
    }
    Ok(())
}

/// What an operator joining a network chooses for its node (`opal node init`).
#[derive(Debug, Clone)]
pub struct OperatorNode {
    pub moniker: String,
    pub api_addr: std::net::SocketAddr,
    pub p2p_addr: std::net::SocketAddr,
    pub peers: Vec<std::net::SocketAddr>,
    pub dev_timeouts: bool,
    pub check_invariants: bool,
    /// API URLs to gossip admitted transactions to.
    pub gossip_peers: Vec<String>,
    /// Prune to the last N heights (`None`: archive).
    pub retain_heights: Option<u64>,
    /// Offer state-sync snapshots every this many heights.
    pub snapshot_interval: Option<u64>,
    /// Join by state sync from these API URLs.
    pub state_sync_peers: Vec<String>,
    /// Hold p2p connections only to and from `peers`.
    pub peers_only: bool,
}

/// Create an operator's node home: a new validator key and a config, no genesis (the chain's
/// comes from whoever writes it). Refuses to overwrite a key or a config, a moniker that is not
/// 1-64 characters of `[A-Za-z0-9_-]`, and a node that lists itself as a peer. Returns the key.
pub fn init_operator(home: &Home, n: &OperatorNode) -> Result<SecretKey> {
    let m = &n.moniker;
    if m.is_empty()
        || m.len() > 64
        || !m
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("--moniker {m:?} must be 1-64 characters of [A-Za-z0-9_-]");
    }
    if home.node_key_path().exists() {
        bail!(
            "{} already holds a node key ({}); refusing to overwrite it. Use another --home, or \
             delete the key yourself if you really mean to replace this validator's identity",
            home.root.display(),
            home.node_key_path().display()
        );
    }
    if home.config_path().exists() {
        bail!(
            "{} already holds a config.toml; use another --home or remove it first",
            home.root.display()
        );
    }
    if let Some(r) = n.retain_heights {
        if r < opal_node::prune::MIN_RETAIN_HEIGHTS {
            bail!(
                "--retain-heights {r}: a pruning node keeps at least {} heights",
                opal_node::prune::MIN_RETAIN_HEIGHTS
            );
        }
    }
    if n.peers.contains(&n.p2p_addr) {
        bail!("--peers lists this node's own --p2p-addr {}", n.p2p_addr);
    }
    std::fs::create_dir_all(&home.root)
        .with_context(|| format!("creating {}", home.root.display()))?;
    let key = SecretKey::generate();
    KeyFile::new(m, &key)
        .write(&home.node_key_path())
        .context("writing the node key")?;
    home.write_config(&NodeConfig {
        moniker: m.clone(),
        api_addr: n.api_addr,
        p2p_addr: n.p2p_addr,
        peers: n.peers.clone(),
        check_invariants: n.check_invariants,
        dev_timeouts: n.dev_timeouts,
        inference_key: None,
        artifact_peers: vec![],
        gossip_peers: n.gossip_peers.clone(),
        retain_heights: n.retain_heights,
        peers_only: n.peers_only,
        snapshot_interval: n.snapshot_interval,
        state_sync_peers: n.state_sync_peers.clone(),
    })
    .context("writing config.toml")?;
    Ok(key)
}
