//! `opal devnet`: a one-validator local network that creates its home on first run and resumes
//! from it afterwards. `opal node start` runs any existing home.

use crate::cli::{DevnetArgs, Output};
use crate::keyring::default_devnet_home;
use anyhow::{bail, Context, Result};
use opal_ledger::{Genesis, GenesisAccount, GenesisValidator, Params};
use opal_node::home::{KeyFile, NodeConfig};
use opal_node::{start_node, Home, NodeOptions};
use opal_types::{Amount, SecretKey};
use std::net::SocketAddr;
use std::path::PathBuf;

const DEV_NAMES: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
/// Each development account starts with 10^15 base units.
const DEV_BALANCE: u128 = 1_000_000_000_000_000;
/// The devnet validator's self-delegated stake (10^12 base units: 10^6 units of voting power).
const VALIDATOR_STAKE: u128 = 1_000_000_000_000;
/// Name of the demo inference node's key file in HOME/keys.
const INFERENCE_KEY: &str = "inference";
/// The demo model's owner and the demo dataset's contributor (key files in HOME/keys).
const MODEL_OWNER_KEY: &str = "modeler";
const DATA_OWNER_KEY: &str = "curator";

/// The demo model and its training data (models/digits: an MLP trained on scikit-learn's
/// handwritten digits), embedded so `opal devnet` works from any directory.
const DEMO_MODEL: &[u8] = include_bytes!("../../../../models/digits/model.onnx");
const DEMO_DATASET: &[u8] = include_bytes!("../../../../models/digits/dataset.csv");
const DEMO_INPUT: &[u8] = include_bytes!("../../../../models/digits/sample_input.json");
const DEMO_MODEL_NAME: &str = "digits";
const DEMO_DATASET_NAME: &str = "sklearn-digits";

/// Logs go to stderr; `OPAL_LOG` takes a tracing filter (e.g. `OPAL_LOG=debug`). By default only
/// warnings, plus Opal's own start-up lines; a single validator has no peers, so the engine's
/// network layer (which reports every unheard gossip message as an error) is silenced then.
fn init_tracing(single_validator: bool) {
    let default = if single_validator {
        "warn,opal_node=info,arc_malachitebft_network=off,libp2p_gossipsub=off"
    } else {
        "warn,opal_node=info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Create a devnet home: a validator key, funded development accounts, genesis, config.
fn init_home(home: &Home, a: &DevnetArgs) -> Result<()> {
    if a.accounts == 0 || a.accounts > DEV_NAMES.len() {
        bail!("--accounts must be between 1 and {}", DEV_NAMES.len());
    }
    std::fs::create_dir_all(&home.root)
        .with_context(|| format!("creating {}", home.root.display()))?;
    let validator = SecretKey::generate();
    KeyFile::new("validator", &validator).write(&home.node_key_path())?;
    let mut accounts = vec![];
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
    for name in [INFERENCE_KEY, MODEL_OWNER_KEY, DATA_OWNER_KEY] {
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
        inference: Default::default(),
        accounts,
        validators: vec![GenesisValidator {
            name: "validator".into(),
            public_key: validator.public_key(),
            operator: None,
            stake: Amount(VALIDATOR_STAKE),
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
fn only_ours(home: &Home) -> Result<()> {
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

pub fn run(a: DevnetArgs, out: Output) -> Result<()> {
    init_tracing(true);
    let home = Home::new(a.home.clone().unwrap_or_else(default_devnet_home));
    if a.reset && home.root.exists() {
        only_ours(&home)?;
        std::fs::remove_dir_all(&home.root)
            .with_context(|| format!("removing {}", home.root.display()))?;
    }
    let fresh = !home.is_initialized();
    if fresh {
        if home.root.exists()
            && std::fs::read_dir(&home.root)?.next().is_some()
            && !home.config_path().exists()
        {
            // A previous first run was interrupted before it finished: start over cleanly.
            only_ours(&home)?;
            std::fs::remove_dir_all(&home.root)?;
        }
        init_home(&home, &a)?;
    } else {
        // Resume; let flags given now override the stored addresses.
        let mut c = home.read_config()?;
        c.api_addr = a.api_addr;
        c.p2p_addr = a.p2p_addr;
        c.check_invariants = a.check_invariants || c.check_invariants;
        home.write_config(&c)?;
    }
    serve(home, None, None, Some((fresh, out)))
}

pub fn start_existing(
    home: PathBuf,
    api_addr: Option<SocketAddr>,
    inference_key: Option<SecretKey>,
) -> Result<()> {
    init_tracing(false);
    let home = Home::new(home);
    if !home.is_initialized() {
        bail!("{} is not a node home (no config.toml, genesis.json or node_key.json); create one with `opal devnet --home {}`", home.root.display(), home.root.display());
    }
    serve(home, api_addr, inference_key, None)
}

fn serve(
    home: Home,
    api_addr: Option<SocketAddr>,
    inference_key: Option<SecretKey>,
    banner: Option<(bool, Output)>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let node = start_node(
            &home,
            NodeOptions {
                api_addr,
                inference_key,
            },
        )
        .await?;
        let demo = match &node.inference {
            Some(svc) if banner.is_some() => {
                match bootstrap_demo(
                    &node.shared,
                    &node.artifacts,
                    svc.address(),
                    &home,
                    node.api_addr,
                )
                .await
                {
                    Ok(d) => Some(d),
                    Err(e) => {
                        eprintln!("warning: the demo model could not be set up: {e:#}");
                        None
                    }
                }
            }
            _ => None,
        };
        if let Some((fresh, out)) = banner {
            print_banner(&home, node.api_addr, fresh, out, demo.as_ref())?;
        }
        let progress = tokio::spawn(report_progress(node.shared.clone()));
        wait_for_signal().await;
        progress.abort();
        eprintln!("stopping: finishing the current block, closing the store…");
        node.shutdown().await;
        eprintln!(
            "stopped cleanly; run the same command again to resume from {}",
            home.root.display()
        );
        Ok::<_, anyhow::Error>(())
    })
}

/// One line every ten seconds on stderr: height, state root, transactions committed, mempool.
async fn report_progress(shared: std::sync::Arc<opal_node::app::Shared>) {
    let mut events = shared.events.subscribe();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    tick.tick().await;
    let mut txs = 0u64;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(opal_node::app::NodeEvent::NewBlock { tx_count, .. }) => txs += tx_count as u64,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if let Ok(snap) = shared.store.snapshot() {
                    eprintln!(
                        "height {:>7}  state root {}…  {:>6} txs in the last 10 s  mempool {}",
                        snap.version().unwrap_or(0),
                        &hex::encode(snap.root())[..16],
                        txs,
                        shared.mempool.lock().len()
                    );
                }
                txs = 0;
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// What the demo set-up registered.
struct Demo {
    model: String,
    input: PathBuf,
    node: opal_types::Address,
}

/// Make the devnet serve a real model end to end, idempotently: store the demo model and
/// dataset in the artifact store, bond the inference role, register the dataset and the model
/// (with the dataset in its lineage), and declare the service at this node's API URL. Each step
/// is a signed transaction through the mempool, skipped when the chain already has its effect.
async fn bootstrap_demo(
    shared: &std::sync::Arc<opal_node::app::Shared>,
    artifacts: &opal_artifacts::ArtifactStore,
    node: opal_types::Address,
    home: &Home,
    api: SocketAddr,
) -> Result<Demo> {
    use opal_ledger::components::{registry, staking};
    use opal_node::local::submit_and_wait;
    use opal_state::Overlay;
    use opal_types::registry::*;
    use opal_types::{Action, Hash, ModelRef, Role};

    let keys = home.keys_dir();
    let key = |name: &str| -> Result<SecretKey> {
        Ok(KeyFile::read(&keys.join(format!("{name}.json")))?.secret()?)
    };
    let inference = key(INFERENCE_KEY)?;
    let owner = key(MODEL_OWNER_KEY)?;
    let contributor = key(DATA_OWNER_KEY)?;
    let mh = artifacts
        .put_bytes(DEMO_MODEL)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dh = artifacts
        .put_bytes(DEMO_DATASET)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (model_hash, dataset_hash) = (Hash(*mh.as_bytes()), Hash(*dh.as_bytes()));
    let demo_dir = home.root.join("demo");
    std::fs::create_dir_all(&demo_dir)?;
    let input = demo_dir.join("digits-input.json");
    std::fs::write(&input, DEMO_INPUT)?;
    let state = || -> Result<Overlay> {
        Ok(Overlay::new(
            shared.snapshot().map_err(|e| anyhow::anyhow!(e))?,
        ))
    };
    let run = |k: &SecretKey, a: Action| {
        let (sh, k) = (shared.clone(), k.clone());
        async move {
            submit_and_wait(&sh, &k, a)
                .await
                .map_err(|e| anyhow::anyhow!(e))
        }
    };

    let o = state()?;
    let min = staking::params(&o)?.min_inference_node_stake;
    if staking::role_bond(&o, Role::InferenceNode, &node)? < min {
        run(
            &inference,
            Action::BondRole {
                role: Role::InferenceNode,
                amount: min,
            },
        )
        .await?;
    }
    if registry::dataset(&o, DEMO_DATASET_NAME)?.is_none() {
        run(
            &contributor,
            Action::RegisterDataset {
                spec: DatasetSpec {
                    name: DEMO_DATASET_NAME.into(),
                    content_hash: dataset_hash,
                    size: DEMO_DATASET.len() as u64,
                    licence: Licence::Open,
                    min_share_bps: 1_000,
                },
            },
        )
        .await?;
    }
    let m = ModelRef::new(DEMO_MODEL_NAME, 1);
    if registry::model(&o, &m)?.is_none() {
        let prepared = opal_infer::PreparedModel::load(DEMO_MODEL, &opal_infer::Limits::default())?;
        let schema = prepared.schema();
        run(
            &owner,
            Action::RegisterModel {
                spec: ModelSpec {
                    name: DEMO_MODEL_NAME.into(),
                    version: 1,
                    parent: None,
                    parent_bps: 0,
                    datasets: vec![DatasetShare {
                        dataset: DEMO_DATASET_NAME.into(),
                        bps: 2_000,
                    }],
                    content_hash: model_hash,
                    size: DEMO_MODEL.len() as u64,
                    format: ModelFormat::Onnx,
                    input_schema: serde_json::to_string(&schema.inputs)?,
                    output_schema: serde_json::to_string(&schema.outputs)?,
                    price: Amount(10_000),
                    licence: Licence::Open,
                    tiers: vec![Tier::Signed, Tier::Replay],
                    weight_commitment: None,
                },
            },
        )
        .await?;
    }
    let endpoint = format!("http://{api}");
    let declared = registry::service(&state()?, &node)?;
    if declared.as_ref().map(|d| d.spec.endpoint.as_str()) != Some(endpoint.as_str())
        || declared.as_ref().and_then(|d| d.spec.offer(&m)).is_none()
    {
        run(
            &inference,
            Action::DeclareService {
                spec: ServiceSpec {
                    endpoint,
                    offers: vec![ServiceOffer {
                        model: m.clone(),
                        tiers: vec![Tier::Signed],
                        fee: Amount(5_000),
                    }],
                },
            },
        )
        .await?;
    }
    Ok(Demo {
        model: m.to_string(),
        input,
        node,
    })
}

fn print_banner(
    home: &Home,
    api: SocketAddr,
    fresh: bool,
    out: Output,
    demo: Option<&Demo>,
) -> Result<()> {
    let genesis = home.read_genesis()?;
    let mut keys = vec![];
    if let Ok(rd) = std::fs::read_dir(home.keys_dir()) {
        let mut paths: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for p in paths {
            keys.push((KeyFile::read(&p)?, p));
        }
    }
    let url = format!("http://{api}");
    if out == Output::Json {
        let v = serde_json::json!({
            "chain_id": genesis.chain_id, "home": home.root, "api_url": url, "fresh": fresh,
            "accounts": keys.iter().map(|(k, p)| serde_json::json!({"name": k.name, "address": k.address, "key_file": p})).collect::<Vec<_>>(),
            "demo": demo.map(|d| serde_json::json!({"model": d.model, "input": d.input, "inference_node": d.node})),
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "Opal devnet, chain {} ({})",
        genesis.chain_id,
        if fresh { "new" } else { "resumed" }
    );
    println!("  home      {}", home.root.display());
    println!("  API       {url}   (OpenAPI: {url}/openapi.json, live events: {url}/api/events)");
    println!(
        "  funded development accounts (key files in {}):",
        home.keys_dir().display()
    );
    for (k, _) in &keys {
        println!("    {:<9} {}  secret {}", k.name, k.address, k.secret_key);
    }
    if let Some((k, _)) = keys.first() {
        let to = keys
            .get(1)
            .map(|(k, _)| k.address.clone())
            .unwrap_or_else(|| k.address.clone());
        println!("  try:");
        println!("    opal query status --node {url}");
        println!(
            "    opal tx transfer --from {} --to {to} --amount 1000 --node {url}",
            k.name
        );
    }
    if let Some(d) = demo {
        println!(
            "  inference node {} serves {} (trained on dataset {DEMO_DATASET_NAME}); try:",
            d.node, d.model
        );
        println!(
            "    opal infer {} --input {} --from alice --node {url}",
            d.model,
            d.input.display()
        );
        println!("    opal model lineage {} --node {url}", d.model);
    }
    println!("Press Ctrl-C to stop; run again to resume.");
    Ok(())
}
