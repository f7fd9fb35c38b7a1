use crate::cli::{NodeArg, Output};
use crate::output::{print, s};
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use opal_client::Client;
use opal_ledger::components::accounts::Account;
use opal_types::{Address, Hash};
use serde_json::{json, Value};

/// Check a proof returned by the node against a state root; returns the proven value.
fn check_proof(v: &Value, root_hex: &str) -> Result<Option<Vec<u8>>> {
    let root = Hash::from_hex(root_hex).map_err(|e| anyhow!("bad state root: {e}"))?;
    Ok(opal_watcher::light::check_state_reply(v, &root)?)
}

fn block_root(c: &Client, height: u64) -> Result<Option<String>> {
    if height == 0 {
        return Ok(None);
    }
    Ok(Some(s(
        &c.get(&format!("/api/blocks/{height}"))?,
        "state_root",
    )))
}

pub fn run(cmd: QueryCmd, out: Output) -> Result<()> {
    match cmd {
        QueryCmd::Status { node } => {
            let v = Client::new(&node.node)?.get("/api/status")?;
            print(out, &v, || {
                format!(
                    "chain      {}\nheight     {}\nstate root {}\nblock      {}\nmempool    {} transactions\nsupply     {}",
                    s(&v, "chain_id"), s(&v, "height"), s(&v, "state_root"), s(&v, "block_hash"), s(&v, "mempool_size"), s(&v, "total_supply")
                )
            });
        }
        QueryCmd::Account {
            address,
            prove,
            height,
            node,
        } => {
            let a: Address = address.parse().map_err(|e| anyhow!("{e}"))?;
            let c = Client::new(&node.node)?;
            let mut path = format!("/api/accounts/{a}?prove={prove}");
            if let Some(h) = height {
                path += &format!("&height={h}");
            }
            let mut v = c.get(&path)?;
            if prove {
                let h = v["height"].as_u64().unwrap_or(0);
                // Check against the state root the block at that height commits to, not only the
                // root the reply carries.
                let root = match block_root(&c, h)? {
                    Some(r) if r != s(&v, "state_root") => bail!(
                        "the node's reply root {} differs from block {h}'s state root {r}",
                        s(&v, "state_root")
                    ),
                    Some(r) => r,
                    None => s(&v, "state_root"),
                };
                let value = check_proof(&v, &root)?;
                let proven: Account = match value {
                    None => Account::default(),
                    Some(b) => borsh::from_slice(&b)
                        .map_err(|e| anyhow!("proven value is not an account: {e}"))?,
                };
                if proven.balance.to_string() != s(&v, "balance")
                    || Some(proven.nonce) != v["nonce"].as_u64()
                {
                    bail!("the proven account differs from the reported one");
                }
                v["proof_verified"] = json!(true);
            }
            print(out, &v, || {
                let mut t = format!(
                    "{}\n  balance {}\n  nonce   {}\n  height  {}",
                    s(&v, "address"),
                    s(&v, "balance"),
                    s(&v, "nonce"),
                    s(&v, "height")
                );
                if prove {
                    t += &format!(
                        "\n  proof   verified against state root {}",
                        s(&v, "state_root")
                    );
                }
                t
            });
        }
        QueryCmd::Block { height, node } => {
            let c = Client::new(&node.node)?;
            let path = if height == "latest" {
                "/api/blocks/latest".to_string()
            } else {
                let h: u64 = height
                    .parse()
                    .map_err(|_| anyhow!("{height:?} is not a height (a number or \"latest\")"))?;
                format!("/api/blocks/{h}")
            };
            let v = c.get(&path)?;
            print(out, &v, || {
                let mut t = format!(
                    "block {}  {}\n  state root {}\n  time       {} ms\n  txs        {}",
                    s(&v, "height"),
                    s(&v, "hash"),
                    s(&v, "state_root"),
                    s(&v["header"], "time_ms"),
                    v["txs"].as_array().map_or(0, |a| a.len())
                );
                for tx in v["txs"].as_array().into_iter().flatten() {
                    t += &format!(
                        "\n    {} {}",
                        s(tx, "hash"),
                        if tx["ok"].as_bool() == Some(true) {
                            "ok".to_string()
                        } else {
                            s(tx, "error")
                        }
                    );
                }
                t
            });
        }
        QueryCmd::Tx { hash, node } => {
            let (code, v) = Client::new(&node.node)?.get_raw(&format!("/api/txs/{hash}"))?;
            if code >= 400 && v.get("error").is_some() {
                bail!("{}", opal_client::refused(code, &v));
            }
            print(out, &v, || match v["status"].as_str() {
                Some("committed") => format!(
                    "{hash}: committed at height {} ({})",
                    s(&v, "height"),
                    if v["ok"].as_bool() == Some(true) {
                        "ok".into()
                    } else {
                        format!("rejected: {}", s(&v, "error"))
                    }
                ),
                Some(st) => format!("{hash}: {st}"),
                None => format!("{hash}: unknown"),
            });
            if code == 404 {
                std::process::exit(3);
            }
        }
        QueryCmd::Validators { node } => {
            let r = Client::new(&node.node)?.validators()?;
            let v = serde_json::to_value(&r)?;
            print(out, &v, || {
                let mut t = format!("height {}  total power {}", r.height, r.total_power);
                for x in &r.validators {
                    t += &format!(
                        "\n  {:<16} {}  tokens {:>20}  {}  commission {} bps  missed {}/{}{}",
                        x.name,
                        x.operator,
                        x.tokens,
                        match x.power {
                            Some(p) if x.active => format!("power {p}"),
                            _ => "inactive".into(),
                        },
                        x.commission_bps,
                        x.missed_blocks,
                        x.window_blocks,
                        if x.jailed { "  JAILED" } else { "" }
                    );
                }
                t
            });
        }
        QueryCmd::Rewards { address, node } => {
            let a: Address = address.parse().map_err(|e| anyhow!("{e}"))?;
            let r = Client::new(&node.node)?.rewards(&a)?;
            let v = serde_json::to_value(&r)?;
            print(out, &v, || {
                let mut t = format!(
                    "withdrawable {}  (commission {})
performance points this epoch {} (pool {})",
                    r.withdrawable, r.commission, r.points, r.performance_pool
                );
                for d in &r.delegations {
                    t += &format!(
                        "
  from {}  {}",
                        d.validator, d.amount
                    );
                }
                t
            });
        }
        QueryCmd::State { key, height, node } => {
            let c = Client::new(&node.node)?;
            let mut path = format!("/api/state/{}", key.trim_start_matches("0x"));
            if let Some(h) = height {
                path += &format!("?height={h}");
            }
            let mut v = c.get(&path)?;
            check_proof(&v, &s(&v, "state_root"))?;
            v["proof_verified"] = json!(true);
            print(out, &v, || {
                format!(
                    "key    {}\nvalue  {}\nheight {}\nproof  verified against state root {}",
                    s(&v, "key"),
                    s(&v, "value"),
                    s(&v, "height"),
                    s(&v, "state_root")
                )
            });
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum QueryCmd {
    /// Chain id, height, state root, latest block.
    Status {
        #[command(flatten)]
        node: NodeArg,
    },
    /// Balance and nonce of an account; with --prove, fetch and check a Merkle proof of it
    /// against the state root of the committed block at that height.
    Account {
        address: String,
        #[arg(long)]
        prove: bool,
        #[arg(long)]
        height: Option<u64>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A committed block, with its state root.
    Block {
        /// A height, or "latest".
        height: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A transaction's status and result.
    Tx {
        hash: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// All validators: stake, jail status, and the active consensus set with voting power.
    Validators {
        #[command(flatten)]
        node: NodeArg,
    },
    /// What an address can withdraw now (`opal tx withdraw-rewards`): each delegation's
    /// rewards and its validator's commission; and its performance points this epoch.
    Rewards {
        address: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A raw state value by hex key, with its proof checked against the state root.
    State {
        key: String,
        #[arg(long)]
        height: Option<u64>,
        #[command(flatten)]
        node: NodeArg,
    },
}
