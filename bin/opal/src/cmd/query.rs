use crate::cli::{NodeArg, Output};
use crate::output::{opt, print, print_as, s};
use anyhow::{anyhow, Result};
use clap::Subcommand;
use opal_api::TxStatus;
use opal_client::Client;
use opal_types::{Address, Hash};
use serde_json::json;

pub fn run(cmd: QueryCmd, out: Output) -> Result<()> {
    match cmd {
        QueryCmd::Status { node } => {
            let st = Client::new(&node.node)?.status()?;
            print_as(out, &st, || {
                format!(
                    "chain      {}\nheight     {}\nstate root {}\nblock      {}\nmempool    {} transactions\nsupply     {}",
                    st.chain_id, st.height, st.state_root, opt(&st.block_hash), st.mempool_size, st.total_supply
                )
            })?;
        }
        QueryCmd::Account {
            address: a,
            prove,
            height,
            node,
        } => {
            let c = Client::new(&node.node)?;
            let acct = if prove {
                opal_watcher::light::proven_account(&c, &a, height)?
            } else {
                match height {
                    Some(h) => c.get_as(&format!("/api/accounts/{a}?height={h}"))?,
                    None => c.account(&a)?,
                }
            };
            let mut v = serde_json::to_value(&acct)?;
            if prove {
                v["proof_verified"] = json!(true);
            }
            print(out, &v, || {
                let mut t = format!(
                    "{}\n  balance {}\n  nonce   {}\n  height  {}",
                    acct.address, acct.balance, acct.nonce, acct.height
                );
                if prove {
                    t += &format!(
                        "\n  proof   verified against the state root of block {} ({})",
                        acct.height, acct.state_root
                    );
                }
                t
            });
        }
        QueryCmd::Block { height, node } => {
            let h =
                match height.as_str() {
                    "latest" => None,
                    h => Some(h.parse().map_err(|_| {
                        anyhow!("{height:?} is not a height (a number or \"latest\")")
                    })?),
                };
            let b = Client::new(&node.node)?.block(h)?;
            print_as(out, &b, || {
                let mut t = format!(
                    "block {}  {}\n  state root {}\n  time       {} ms\n  txs        {}",
                    b.height,
                    b.hash,
                    b.state_root,
                    b.header.time_ms,
                    b.txs.len()
                );
                for tx in &b.txs {
                    let result = if tx.ok {
                        "ok"
                    } else {
                        tx.error.as_deref().unwrap_or("-")
                    };
                    t += &format!("\n    {} {result}", tx.hash);
                }
                t
            })?;
        }
        QueryCmd::Tx { hash, node } => {
            let st = Client::new(&node.node)?.tx(&hash)?;
            print_as(out, &st, || match &st {
                TxStatus::Committed {
                    height, ok, error, ..
                } => format!(
                    "{hash}: committed at height {height} ({})",
                    if *ok {
                        "ok".into()
                    } else {
                        format!("rejected: {}", error.as_deref().unwrap_or("-"))
                    }
                ),
                TxStatus::Pending { .. } => format!("{hash}: pending"),
                TxStatus::Dropped { error, .. } => format!("{hash}: dropped ({error})"),
                TxStatus::Unknown { .. } => format!("{hash}: unknown"),
            })?;
            if matches!(st, TxStatus::Unknown { .. }) {
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
            let a = address;
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
            let (st, _) = opal_watcher::light::proven_state(&c, &key, height)?;
            let mut v = serde_json::to_value(&st)?;
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
        address: Address,
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
        #[arg(value_parser = Hash::from_hex)]
        hash: Hash,
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
        address: Address,
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
