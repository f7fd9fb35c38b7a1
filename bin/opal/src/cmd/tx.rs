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
/// The consensus key and its VRF key: from a node key file, or hex with `--vrf-key`.
fn consensus_key(v: &str, vrf: Option<&str>) -> Result<(PublicKey, opal_types::vrf::VrfPublicKey)> {
    let p = std::path::Path::new(v);
    if p.is_file() {
        let k = opal_node::home::KeyFile::read(p)?
            .secret()
            .map_err(|e| anyhow!("{}: {e}", p.display()))?;
        return Ok((k.public_key(), k.vrf_public_key()));
    }
    let pk = PublicKey::from_hex(v).map_err(|e| {
        anyhow!("--consensus-key: {e} (give 64 hex digits or a node_key.json path)")
    })?;
    let vrf = vrf.ok_or_else(|| {
        anyhow!("--vrf-key is needed with a hex --consensus-key (`opal node init` prints it), or give the node_key.json path")
    })?;
    let b: [u8; 32] = hex::decode(vrf)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("--vrf-key: expected 64 hex digits"))?;
    Ok((pk, opal_types::vrf::VrfPublicKey(b)))
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
            vrf_key,
            name,
            amount: a,
            opts,
        } => {
            let a = amount("amount", &a)?;
            let (ck, vrf_key) = consensus_key(&ck, vrf_key.as_deref())?;
            (
                Action::CreateValidator {
                    consensus_key: ck,
                    name: name.clone(),
                    amount: a,
                    vrf_key,
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
        TxCmd::EscrowFund {
            node_address,
            amount: a,
            opts,
        } => {
            let (n, a) = (
                address("node-address", &node_address)?,
                amount("amount", &a)?,
            );
            (
                Action::FundEscrow { node: n, amount: a },
                opts,
                format!("escrow of {a} with node {n}"),
            )
        }
        TxCmd::EscrowClose { node_address, opts } => {
            let n = address("node-address", &node_address)?;
            (
                Action::CloseEscrow { node: n },
                opts,
                format!("closing of the escrow with node {n}"),
            )
        }
        TxCmd::EscrowWithdraw { node_address, opts } => {
            let n = address("node-address", &node_address)?;
            (
                Action::WithdrawEscrow { node: n },
                opts,
                format!("withdrawal of the escrow with node {n}"),
            )
        }
        TxCmd::DeclareService {
            endpoint,
            offers,
            opts,
        } => {
            let offers = offers
                .iter()
                .map(|o| parse_offer(o))
                .collect::<Result<Vec<_>>>()?;
            let spec = opal_types::registry::ServiceSpec { endpoint, offers };
            spec.check().map_err(|e| anyhow!("{e}"))?;
            let n = spec.offers.len();
            (
                Action::DeclareService { spec },
                opts,
                format!("service declaration ({n} models)"),
            )
        }
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
    submit(action, opts, &what, out).map(|_| ())
}

/// `MODEL@VERSION:TIER[+TIER]:FEE`.
pub(crate) fn parse_offer(s: &str) -> Result<opal_types::registry::ServiceOffer> {
    let parts: Vec<&str> = s.split(':').collect();
    let [m, tiers, fee] = parts[..] else {
        bail!(
            "--offer {s:?}: expected MODEL@VERSION:TIER[+TIER...]:FEE, e.g. digits-mlp@1:signed:50"
        );
    };
    Ok(opal_types::registry::ServiceOffer {
        model: m.parse().map_err(|e| anyhow!("--offer {s:?}: {e}"))?,
        tiers: tiers
            .split('+')
            .map(|t| t.parse().map_err(|e| anyhow!("--offer {s:?}: {e}")))
            .collect::<Result<_>>()?,
        fee: amount("offer fee", fee)?,
    })
}

/// Sign `action` with the chain's id, the signer's next nonce and the fee, submit it, and (unless
/// --no-wait) wait for its block. Exits 2 if the chain refused it (rejected in its block, or
/// dropped by the proposer because it no longer applies).
/// What came of a submitted transaction.
pub(crate) struct Sent {
    /// The node's reply (`--no-wait`) or the committed transaction's status.
    pub value: Value,
    pub hash: String,
    pub fee: Amount,
    pub sender: Address,
}

/// Sign `action` with the chain's id, the signer's next nonce and the fee, submit it, and (unless
/// --no-wait) wait for its block.
pub(crate) fn send(action: Action, opts: &TxOpts) -> Result<Sent> {
    let key = resolve(&opts.from, &opts.keyring.keyring)?.secret()?;
    let c = Client::new(&opts.node.node)?;
    let status = c.get("/api/status")?;
    let chain_id = status["chain_id"]
        .as_str()
        .context("status without chain_id")?
        .to_string();
    let fee: Amount = match &opts.fee {
        Some(f) => amount("fee", f)?,
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
    let value = if opts.no_wait {
        r
    } else {
        wait_committed(&c, &hash, Duration::from_secs(60))?
    };
    Ok(Sent {
        value,
        hash,
        fee,
        sender: key.address(),
    })
}

/// [`send`], then print the outcome. Exits 2 if the chain refused it (rejected in its block, or
/// dropped by the proposer because it no longer applies).
pub(crate) fn submit(action: Action, opts: TxOpts, what: &str, out: Output) -> Result<Value> {
    let Sent {
        value: v,
        hash,
        fee,
        sender,
    } = send(action, &opts)?;
    if opts.no_wait {
        print(out, &v, || format!("submitted {hash} (pending)"));
        return Ok(v);
    }
    print(out, &v, || {
        if v["status"] == "dropped" {
            format!(
                "transaction {hash} was refused when the block was built: {}",
                s(&v, "error")
            )
        } else if v["ok"].as_bool() == Some(true) {
            format!(
                "committed {hash} at height {}: {what} from {sender} (fee {fee})",
                s(&v, "height"),
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
    Ok(v)
}

pub(crate) fn wait_committed(c: &Client, hash: &str, timeout: Duration) -> Result<Value> {
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
