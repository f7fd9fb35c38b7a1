//! `opal llm key`: mint an API key for an inference node's OpenAI-compatible API (`/v1`).
//!
//! The key is a spend grant signed by the caller: "node N may charge my escrow with it up to
//! MAX in all, until now + TTL". The node composes each request under it; the ledger enforces
//! the cap, the node, the chain and the expiry at settlement. The escrow is funded first if it
//! holds less than MAX.

use crate::cli::{KeyringArg, Output};
use crate::keyring::resolve;
use crate::output::{print, s};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use opal_client::Client;
use opal_node::clock::now_ms;
use opal_types::{Address, Amount, SpendGrant};
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum LlmCmd {
    /// Mint an API key (a spend grant) for a node's OpenAI-compatible API; funds the escrow
    /// with that node if it holds less than --max. Prints the key and the base URL.
    Key(KeyArgs),
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    /// The inference node's account address [default: the node serving /v1 at --url].
    #[arg(long = "node")]
    pub node_address: Option<Address>,
    /// The most the node may charge under this key, in all (base units).
    #[arg(long)]
    pub max: Amount,
    /// How long the key is valid: `90s`, `30m`, `12h`, `7d` (a bare number is seconds).
    #[arg(long, default_value = "24h", value_parser = parse_duration_ms)]
    pub ttl: u64,
    /// The caller: pays from its escrow with the node and signs the grant.
    #[arg(long)]
    pub from: String,
    /// Do not fund the escrow, even if it holds less than --max.
    #[arg(long)]
    pub no_fund: bool,
    /// URL of the node's API (the chain's and the inference node's).
    #[arg(long = "url", env = "OPAL_NODE", default_value = crate::cli::DEFAULT_NODE)]
    pub url: String,
    #[command(flatten)]
    pub keyring: KeyringArg,
}

/// `90s`, `30m`, `12h`, `7d`, or a bare number of seconds, in milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("duration {s:?}: expected e.g. 90s, 30m, 12h or 7d"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("duration {s:?}: unit must be ms, s, m, h or d"),
    };
    n.checked_mul(ms)
        .filter(|&v| v > 0)
        .ok_or_else(|| anyhow!("duration {s:?} is zero or too long"))
}

pub fn run(cmd: LlmCmd, out: Output) -> Result<()> {
    match cmd {
        LlmCmd::Key(a) => key(a, out),
    }
}

fn key(a: KeyArgs, out: Output) -> Result<()> {
    let max = a.max;
    if max.is_zero() {
        bail!("--max must be above zero");
    }
    let ttl = a.ttl;
    let caller = resolve(&a.from, &a.keyring.keyring)?.secret()?;
    let c = Client::new(&a.url)?;
    let status = c.get("/api/status")?;
    let chain_id = s(&status, "chain_id");
    let node: Address = match &a.node_address {
        Some(n) => *n,
        None => {
            let models = c
                .get("/v1/models")
                .context("asking the node at --url for its address (or pass --node ADDR)")?;
            let n = models["data"]
                .as_array()
                .and_then(|d| d.first())
                .and_then(|m| m["opal"]["node"].as_str())
                .ok_or_else(|| anyhow!("the node at {} serves no LLM; pass --node ADDR", a.url))?;
            n.parse().map_err(|e| anyhow!("node address {n}: {e}"))?
        }
    };
    let me = caller.address();
    // With --no-fund the escrow is only checked (a closing one cannot pay under the key).
    let need = if a.no_fund { Amount::ZERO } else { max };
    let esc = opal_caller::ensure_escrow(&c, &caller, &node, need, Amount::ZERO)?;
    let funded = esc.funded;
    if !funded.is_zero() {
        eprintln!(
            "funded your escrow with node {node}: {funded} (it held {}, the key allows {max})",
            esc.balance
        );
    }
    let salt = {
        use rand_core::RngCore;
        rand_core::OsRng.next_u64()
    };
    let expires_ms = now_ms() + ttl;
    let grant = SpendGrant {
        chain_id,
        node,
        max_total: max,
        expires_ms,
        salt,
    }
    .sign(&caller);
    let api_key = grant.to_api_key();
    let base_url = format!("{}/v1", a.url.trim_end_matches('/'));
    let v = json!({
        "api_key": api_key, "base_url": base_url, "grant_id": grant.id(), "caller": me,
        "node": node, "max_total": max, "expires_ms": expires_ms, "funded": funded,
    });
    match out {
        Output::Json => print(out, &v, String::new),
        Output::Text => {
            // The key alone on stdout (for scripts: KEY=$(opal llm key ...)); the rest on stderr.
            println!("{api_key}");
            eprintln!(
                "API key for node {node}: up to {max} in all from your escrow, valid for {} s (grant {}).",
                a.ttl / 1000,
                grant.id()
            );
            eprintln!("use it with any OpenAI client: base_url={base_url}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("30m").unwrap(), 1_800_000);
        assert_eq!(parse_duration_ms("12h").unwrap(), 43_200_000);
        assert_eq!(parse_duration_ms("7d").unwrap(), 604_800_000);
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("5y").is_err());
        assert!(parse_duration_ms("-1h").is_err());
        assert!(parse_duration_ms("").is_err());
    }
}
