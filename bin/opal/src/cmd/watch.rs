//! `opal node watch`: the watcher role (`opal-watcher`) as a command.

use crate::cli::{Output, TxOpts};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use opal_types::ModelRef;
use opal_watcher::{AuditScope, Config, Watcher};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditArg {
    /// Audits whose assigned auditors include the --from account (a validator's duty).
    Mine,
    /// Every open audit.
    All,
    /// None.
    None,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Watch only these models (NAME@VERSION, comma-separated); default: every canonical model.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<ModelRef>,
    /// Which audits to resolve.
    #[arg(long, value_enum, default_value_t = AuditArg::Mine)]
    pub audits: AuditArg,
    /// Time between passes over the open cases, in ms.
    #[arg(long, default_value_t = 1_000)]
    pub interval_ms: u64,
    /// Do one pass and exit (for scripts and cron).
    #[arg(long)]
    pub once: bool,
    /// Where downloaded GGUF models are kept between runs [default: ~/.cache/opal/watch].
    #[arg(long)]
    pub model_cache: Option<PathBuf>,
    #[command(flatten)]
    pub tx: TxOpts,
}

pub fn run(a: WatchArgs, out: Output) -> Result<()> {
    let key = crate::keyring::resolve(&a.tx.from, &a.tx.keyring.keyring)
        .with_context(|| format!("--from {}", a.tx.from))?
        .secret()?;
    let models = (!a.models.is_empty()).then(|| a.models.into_iter().collect::<HashSet<_>>());
    let fee = a.tx.fee;
    let config = Config {
        models,
        audits: match a.audits {
            AuditArg::Mine => AuditScope::Mine,
            AuditArg::All => AuditScope::All,
            AuditArg::None => AuditScope::None,
        },
        model_cache: a.model_cache.unwrap_or_else(Config::default_model_cache),
        fee,
    };
    let client = opal_client::Client::new(&a.tx.node.node)?;
    let report = Box::new(move |r: opal_watcher::Report| match out {
        Output::Json => println!("{}", r.json),
        Output::Text => println!("{}", r.text),
    });
    let mut w = Watcher::new(client, key, config, report);
    let (node, me) = (&a.tx.node.node, w.account());
    match out {
        Output::Json => println!(
            "{}",
            serde_json::json!({"event": "watching", "node": node, "account": me})
        ),
        Output::Text => println!("watching {node} as {me}"),
    }
    Ok(w.run(Duration::from_millis(a.interval_ms), a.once)?)
}
