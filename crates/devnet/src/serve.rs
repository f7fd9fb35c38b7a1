//! Running a node home: start the node, set up the demo (devnet only), print the banner, report
//! progress, stop cleanly on Ctrl-C or SIGTERM.

use crate::demo::{bootstrap_demo, bootstrap_llm, Demo, LlmDemo};
use crate::home::{init_home, only_ours};
use crate::*;
use anyhow::{bail, Context, Result};
use opal_node::home::KeyFile;
use opal_node::{start_node, Home, NodeOptions};
use opal_types::SecretKey;
use std::net::SocketAddr;
use std::path::PathBuf;

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

/// `opal devnet`: create the home on first run (or after `reset`), resume it otherwise, and serve.
pub fn run(a: DevnetOptions, out: Output) -> Result<()> {
    init_tracing(true);
    let home = Home::new(a.home.clone());
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

/// `opal node start`: run an existing home (no demo set-up, no banner).
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
    for (p, k) in KeyFile::read_dir(&home.keys_dir()) {
        keys.push((k?, p));
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
