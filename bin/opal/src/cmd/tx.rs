use crate::cli::{Output, TxOpts};
use crate::keyring::resolve;
use crate::output::print;
use anyhow::{anyhow, Context, Result};
use clap::{Subcommand, ValueEnum};
use opal_api::TxStatus;
use opal_client::{Client, SendOptions, Sent};
use opal_types::{Action, Address, Amount, Role};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

fn role(r: RoleArg) -> Role {
    match r {
        RoleArg::InferenceNode => Role::InferenceNode,
        RoleArg::DataNode => Role::DataNode,
    }
}

pub fn run(cmd: TxCmd, out: Output) -> Result<()> {
    let (action, opts, what) = match cmd {
        TxCmd::Transfer {
            to,
            amount: a,
            opts,
        } => (
            Action::Transfer { to, amount: a },
            opts,
            format!("transfer of {a} to {to}"),
        ),
        TxCmd::CreateValidator {
            consensus_key: ck,
            vrf_key,
            name,
            amount: a,
            opts,
        } => {
            let (ck, vrf_key) = opal_node::home::consensus_keys(&ck, vrf_key.as_deref())?;
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
            validator: v,
            amount: a,
            opts,
        } => (
            Action::Delegate {
                validator: v,
                amount: a,
            },
            opts,
            format!("delegation of {a} to {v}"),
        ),
        TxCmd::Undelegate {
            validator: v,
            amount: a,
            opts,
        } => (
            Action::Undelegate {
                validator: v,
                amount: a,
            },
            opts,
            format!("undelegation of {a} from {v}"),
        ),
        TxCmd::Bond {
            role: r,
            amount: a,
            opts,
        } => (
            Action::BondRole {
                role: role(r),
                amount: a,
            },
            opts,
            format!("bond of {a} as {}", role(r).as_str()),
        ),
        TxCmd::Unbond {
            role: r,
            amount: a,
            opts,
        } => (
            Action::UnbondRole {
                role: role(r),
                amount: a,
            },
            opts,
            format!("unbonding of {a} from {}", role(r).as_str()),
        ),
        TxCmd::Unjail { opts } => (Action::Unjail, opts, "unjail".to_string()),
        TxCmd::WithdrawRewards { opts } => (
            Action::WithdrawRewards,
            opts,
            "withdrawal of rewards".to_string(),
        ),
        TxCmd::SetCommission { bps, opts } => (
            Action::SetCommission { bps },
            opts,
            format!("commission of {bps} bps"),
        ),
        TxCmd::EscrowFund {
            node_address: n,
            amount: a,
            opts,
        } => (
            Action::FundEscrow { node: n, amount: a },
            opts,
            format!("escrow of {a} with node {n}"),
        ),
        TxCmd::EscrowClose {
            node_address: n,
            opts,
        } => (
            Action::CloseEscrow { node: n },
            opts,
            format!("closing of the escrow with node {n}"),
        ),
        TxCmd::EscrowWithdraw {
            node_address: n,
            opts,
        } => (
            Action::WithdrawEscrow { node: n },
            opts,
            format!("withdrawal of the escrow with node {n}"),
        ),
        TxCmd::DeclareService {
            endpoint,
            offers,
            opts,
        } => {
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
pub(crate) fn parse_offer(s: &str) -> Result<opal_types::registry::ServiceOffer, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [m, tiers, fee] = parts[..] else {
        return Err(
            "expected MODEL@VERSION:TIER[+TIER...]:FEE, e.g. digits-mlp@1:signed:50".into(),
        );
    };
    Ok(opal_types::registry::ServiceOffer {
        model: m.parse()?,
        tiers: tiers.split('+').map(str::parse).collect::<Result<_, _>>()?,
        fee: fee.parse().map_err(|e| format!("fee: {e}"))?,
    })
}

/// Sign `action` with the chain's id, the signer's next nonce and the fee, submit it, and (unless
/// --no-wait) wait for its block.
pub(crate) fn send(action: Action, opts: &TxOpts) -> Result<Sent> {
    let key = resolve(&opts.from, &opts.keyring.keyring)?.secret()?;
    let fee = opts.fee;
    let wait = (!opts.no_wait).then_some(Duration::from_secs(60));
    Ok(Client::new(&opts.node.node)?.send(&key, action, &SendOptions { fee, wait })?)
}

/// [`send`], then print the outcome. Exits 2 if the chain refused it (rejected in its block, or
/// dropped by the proposer because it no longer applies).
pub(crate) fn submit(action: Action, opts: TxOpts, what: &str, out: Output) -> Result<Value> {
    let Sent {
        status,
        hash,
        fee,
        sender,
    } = send(action, &opts)?;
    let v = serde_json::to_value(&status)?;
    print(out, &v, || match &status {
        TxStatus::Pending { .. } => format!("submitted {hash} (pending)"),
        TxStatus::Dropped { error, code, .. } => format!(
            "transaction {hash} was refused when the block was built ({}): {error}",
            code.as_deref().unwrap_or("-")
        ),
        TxStatus::Committed {
            height, ok: true, ..
        } => {
            format!("committed {hash} at height {height}: {what} from {sender} (fee {fee})")
        }
        TxStatus::Committed { height, error, .. } => format!(
            "transaction {hash} was included at height {height} but rejected: {}",
            error.as_deref().unwrap_or("-")
        ),
        TxStatus::Unknown { .. } => format!("transaction {hash} is unknown to the node"),
    });
    if !opts.no_wait && !status.applied() {
        std::process::exit(2);
    }
    Ok(v)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    InferenceNode,
    DataNode,
}

#[derive(Subcommand, Debug)]
pub enum TxCmd {
    /// Transfer tokens; waits until the transaction is committed unless --no-wait.
    Transfer {
        /// Recipient address (opal...).
        #[arg(long)]
        to: Address,
        /// Amount in base units.
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Become a validator operated by the signer, bonding AMOUNT as self-delegation.
    /// It joins the validator set at the next epoch boundary if its stake is high enough.
    CreateValidator {
        /// The validator's consensus public key (hex), or a node key file (node_key.json).
        #[arg(long)]
        consensus_key: String,
        /// The validator's VRF key (hex, as `opal node init` prints it); not needed when
        /// --consensus-key is a node key file.
        #[arg(long)]
        vrf_key: Option<String>,
        #[arg(long)]
        name: String,
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Delegate AMOUNT to the validator operated by VALIDATOR (an address).
    Delegate {
        #[arg(long)]
        validator: Address,
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Start unbonding AMOUNT of a delegation; paid back after the unbonding time, slashable until then.
    Undelegate {
        #[arg(long)]
        validator: Address,
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Bond stake for a non-validator role.
    Bond {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Start unbonding stake from a role.
    Unbond {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Bring the signer's jailed validator back after its jail time.
    Unjail {
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Claim your rewards: every delegation's share of the emission and, for a validator's
    /// operator, its commission (`opal query rewards ADDRESS` shows what is owed).
    WithdrawRewards {
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Set your validator's commission on its rewards, in basis points (at most the chain's
    /// rewards.max_commission_bps), from the next block.
    SetCommission {
        #[arg(long)]
        bps: u32,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Put AMOUNT in escrow with an inference node (pays for your requests to it).
    EscrowFund {
        /// The inference node's address.
        #[arg(long)]
        node_address: Address,
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Start closing your escrow with a node; withdraw the rest after the unlock delay.
    EscrowClose {
        #[arg(long)]
        node_address: Address,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Withdraw what is left of a closed escrow once it has unlocked.
    EscrowWithdraw {
        #[arg(long)]
        node_address: Address,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Declare the models this inference node serves (replaces an earlier declaration).
    /// Needs the inference-node role bond (`opal tx bond --role inference-node`).
    DeclareService {
        /// The URL callers reach this node's API at.
        #[arg(long)]
        endpoint: String,
        /// MODEL@VERSION:TIER[+TIER...]:FEE, repeatable (e.g. digits@1:signed:50).
        #[arg(long = "offer", required = true, value_parser = parse_offer)]
        offers: Vec<opal_types::registry::ServiceOffer>,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Report a validator that signed two conflicting votes (a JSON file with fields `a` and `b`,
    /// each a signed vote: vote_type, height, round, value, validator, signature).
    Evidence {
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        opts: TxOpts,
    },
}
