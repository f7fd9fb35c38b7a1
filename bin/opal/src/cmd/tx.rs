use crate::cli::{Output, RoleArg, TxCmd, TxOpts};
use crate::client::Client;
use crate::keyring::resolve;
use crate::output::{print, s};
use anyhow::{anyhow, bail, Context, Result};
use opal_types::{Action, Address, Amount, PublicKey, Role, TxBody};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn amount(flag: &str, v: &str) -> Result<Amount> {
    v.parse().map_err(|e| anyhow!("--{flag}: {e}"))
}

fn address(flag: &str, v: &str) -> Result<Address> {
    v.parse().map_err(|e| anyhow!("--{flag}: {e}"))
}

fn role(r: RoleArg) -> Role {
    match r {
        RoleArg::InferenceNode => Role::InferenceNode,
        RoleArg::DataNode => Role::DataNode,
    }
}

/// A consensus key given as hex, or read from a node key file.
fn consensus_key(v: &str) -> Result<PublicKey> {
    let p = std::path::Path::new(v);
    if p.is_file() {
        let k = opal_node::home::KeyFile::read(p)?;
        return PublicKey::from_hex(&k.public_key).map_err(|e| anyhow!("{}: {e}", p.display()));
    }
    PublicKey::from_hex(v)
        .map_err(|e| anyhow!("--consensus-key: {e} (give 64 hex digits or a node_key.json path)"))
}

pub fn run(cmd: TxCmd, out: Output) -> Result<()> {
    let (action, opts, what) = match cmd {
        TxCmd::Transfer {
            to,
            amount: a,
            opts,
        } => {
            let (to, a) = (address("to", &to)?, amount("amount", &a)?);
            (
                Action::Transfer { to, amount: a },
                opts,
                format!("transfer of {a} to {to}"),
            )
        }
        TxCmd::CreateValidator {
            consensus_key: ck,
            name,
            amount: a,
            opts,
        } => {
            let a = amount("amount", &a)?;
            (
                Action::CreateValidator {
                    consensus_key: consensus_key(&ck)?,
                    name: name.clone(),
                    amount: a,
                },
                opts,
                format!("validator {name:?} with {a} bonded"),
            )
        }
        TxCmd::Delegate {
            validator,
            amount: a,
            opts,
        } => {
            let (v, a) = (address("validator", &validator)?, amount("amount", &a)?);
            (
                Action::Delegate {
                    validator: v,
                    amount: a,
                },
                opts,
                format!("delegation of {a} to {v}"),
            )
        }
        TxCmd::Undelegate {
            validator,
            amount: a,
            opts,
        } => {
            let (v, a) = (address("validator", &validator)?, amount("amount", &a)?);
            (
                Action::Undelegate {
                    validator: v,
                    amount: a,
                },
                opts,
                format!("undelegation of {a} from {v}"),
            )
        }
        TxCmd::Bond {
            role: r,
            amount: a,
            opts,
        } => {
            let a = amount("amount", &a)?;
            (
                Action::BondRole {
                    role: role(r),
                    amount: a,
                },
                opts,
                format!("bond of {a} as {}", role(r).as_str()),
            )
        }
        TxCmd::Unbond {
            role: r,
            amount: a,
            opts,
        } => {
            let a = amount("amount", &a)?;
            (
                Action::UnbondRole {
                    role: role(r),
                    amount: a,
                },
                opts,
                format!("unbonding of {a} from {}", role(r).as_str()),
            )
        }
        TxCmd::Unjail { opts } => (Action::Unjail, opts, "unjail".to_string()),
        TxCmd::Evidence { file, opts } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let evidence: opal_types::DoubleSignEvidence = serde_json::from_str(&text)
                .with_context(|| format!("{} is not double-sign evidence", file.display()))?;
            (
                Action::SubmitEvidence { evidence },
                opts,
                "evidence".to_string(),
            )
        }
    };
    submit(action, opts, &what, out)
}

/// Sign `action` with the chain's id, the signer's next nonce and the fee, submit it, and (unless
/// --no-wait) wait for its block. Exits 2 if the chain refused it (rejected in its block, or
/// dropped by the proposer because it no longer applies).
fn submit(action: Action, opts: TxOpts, what: &str, out: Output) -> Result<()> {
    let key = resolve(&opts.from, &opts.keyring.keyring)?.secret()?;
    let c = Client::new(&opts.node.node)?;
    let status = c.get("/api/status")?;
    let chain_id = status["chain_id"]
        .as_str()
        .context("status without chain_id")?
        .to_string();
    let fee: Amount = match opts.fee {
        Some(f) => amount("fee", &f)?,
        None => serde_json::from_value(status["params"]["min_fee"].clone())
            .context("status without params.min_fee")?,
    };
    let acct = c.get(&format!("/api/accounts/{}", key.address()))?;
    let nonce = acct["next_nonce"]
        .as_u64()
        .or(acct["nonce"].as_u64())
        .context("account without nonce")?;
    let tx = TxBody {
        chain_id,
        nonce,
        fee,
        action,
    }
    .sign(&key);
    let r = c.post_json("/api/txs", &json!({"tx": hex::encode(tx.to_bytes())}))?;
    let hash = s(&r, "hash");
    if opts.no_wait {
        print(out, &r, || format!("submitted {hash} (pending)"));
        return Ok(());
    }
    let v = wait_committed(&c, &hash, Duration::from_secs(60))?;
    print(out, &v, || {
        if v["status"] == "dropped" {
            format!(
                "transaction {hash} was refused when the block was built: {}",
                s(&v, "error")
            )
        } else if v["ok"].as_bool() == Some(true) {
            format!(
                "committed {hash} at height {}: {what} from {} (fee {fee})",
                s(&v, "height"),
                key.address()
            )
        } else {
            format!(
                "transaction {hash} was included at height {} but rejected: {}",
                s(&v, "height"),
                s(&v, "error")
            )
        }
    });
    if v["ok"].as_bool() != Some(true) {
        std::process::exit(2);
    }
    Ok(())
}

fn wait_committed(c: &Client, hash: &str, timeout: Duration) -> Result<Value> {
    let start = Instant::now();
    loop {
        let (code, v) = c.get_raw(&format!("/api/txs/{hash}"))?;
        match v["status"].as_str() {
            Some("committed") => return Ok(v),
            Some("dropped") => return Ok(v),
            _ if code >= 500 => bail!("{}", crate::client::describe_error(code, &v)),
            _ => {}
        }
        if start.elapsed() > timeout {
            bail!("transaction {hash} not committed after {}s; check later with `opal query tx {hash}`", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
