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
