//! `opal gov`: propose, deposit, vote, and read proposals and the parameters in force.

use crate::cli::{NodeArg, Output, TxOpts};
use crate::cmd::tx::submit;
use crate::output::print;
use anyhow::{anyhow, Result};
use clap::Subcommand;
use opal_api::gov::{Proposal, Proposals};
use opal_client::Client;
use opal_ledger::components::governance::Tally;
use opal_ledger::Event;
use opal_types::gov::{Measurement, ParamChange, ProposalContent, ProposalParts, VoteOption};
use opal_types::{Action, Address, Amount};

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum GovCmd {
    /// Submit a proposal: a parameter change (--param), a treasury spend (--spend-to and
    /// --spend-amount), an enclave allowlist change (--add-measurement / --remove-measurement),
    /// an upgrade signal (--upgrade and --upgrade-height), or, with none of these, text.
    ///
    /// The deposit defaults to the chain's min_deposit, so voting opens at once; a smaller one
    /// (at least min_initial_deposit_bps of it) waits for others' deposits.
    Propose {
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        summary: String,
        /// KEY=VALUE, repeatable (keys as `opal gov params` lists them, e.g.
        /// inference.audit_bps=1000).
        #[arg(long = "param")]
        params: Vec<ParamChange>,
        /// Recipient of a treasury spend.
        #[arg(long, requires = "spend_amount")]
        spend_to: Option<Address>,
        /// Amount of a treasury spend, in base units.
        #[arg(long, requires = "spend_to")]
        spend_amount: Option<Amount>,
        /// PLATFORM:HEX (intel_tdx, intel_sgx, amd_sev_snp), repeatable.
        #[arg(long = "add-measurement")]
        add_measurements: Vec<Measurement>,
        /// PLATFORM:HEX, repeatable.
        #[arg(long = "remove-measurement")]
        remove_measurements: Vec<Measurement>,
        /// Name of the software to run from --upgrade-height.
        #[arg(long, requires = "upgrade_height")]
        upgrade: Option<String>,
        #[arg(long, requires = "upgrade")]
        upgrade_height: Option<u64>,
        #[arg(long, default_value = "")]
        upgrade_info: String,
        /// Initial deposit in base units [default: the chain's min_deposit].
        #[arg(long)]
        deposit: Option<Amount>,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Add to a proposal's deposit while it waits for min_deposit.
    Deposit {
        #[arg(long)]
        proposal: u64,
        #[arg(long)]
        amount: Amount,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Vote on a proposal in its voting period with your bonded stake (as a validator's
    /// operator, with all the stake delegated to it that does not vote itself). A second vote
    /// replaces the first.
    Vote {
        #[arg(long)]
        proposal: u64,
        /// yes, no, abstain or no-with-veto.
        #[arg(long)]
        option: VoteOption,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// One proposal: content, status, deposits, and the tally (live while voting).
    Show {
        id: u64,
        /// Also list every vote.
        #[arg(long)]
        votes: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Every proposal, oldest first.
    List {
        /// Only this status: deposit_period, voting_period, passed, rejected, vetoed,
        /// no_quorum, lapsed.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// The parameters in force, their bounds, and the proposal that last set each.
    Params {
        #[command(flatten)]
        node: NodeArg,
    },
}

pub fn run(cmd: GovCmd, out: Output) -> Result<()> {
    match cmd {
        GovCmd::Propose {
            title,
            summary,
            params,
            spend_to,
            spend_amount,
            add_measurements,
            remove_measurements,
            upgrade,
            upgrade_height,
            upgrade_info,
            deposit,
            opts,
        } => {
            let content = ProposalContent::from_parts(ProposalParts {
                changes: params,
                spend: spend_to.zip(spend_amount),
                add_measurements,
                remove_measurements,
                upgrade: upgrade
                    .zip(upgrade_height)
                    .map(|(n, h)| (n, h, upgrade_info)),
            })
            .map_err(|e| anyhow!("{e}"))?;
            let deposit = match deposit {
                Some(d) => d,
                None => Client::new(&opts.node.node)?.gov()?.params.min_deposit,
            };
            let what = format!(
                "{} proposal {title:?} with a deposit of {deposit}",
                content.kind()
            );
            let no_wait = opts.no_wait;
            let v = submit(
                Action::SubmitProposal {
                    title,
                    summary,
                    content,
                    deposit,
                },
                opts,
                &what,
                out,
            )?;
            if !no_wait && out == Output::Text {
                let events: Vec<Event> =
                    serde_json::from_value(v["events"].clone()).unwrap_or_default();
                for e in events {
                    match e {
                        Event::ProposalSubmitted { id, .. } => println!("proposal {id}"),
                        Event::VotingStarted { voting_end_ms, .. } => {
                            println!("voting is open until {voting_end_ms} (block time, ms)")
                        }
                        _ => {}
                    }
                }
            }
            Ok(())
        }
        GovCmd::Deposit {
            proposal,
            amount: a,
            opts,
        } => submit(
            Action::DepositProposal {
                proposal,
                amount: a,
            },
            opts,
            &format!("deposit of {a} on proposal {proposal}"),
            out,
        )
        .map(|_| ()),
        GovCmd::Vote {
            proposal,
            option,
            opts,
        } => submit(
            Action::Vote { proposal, option },
            opts,
            &format!("vote {} on proposal {proposal}", option.as_str()),
            out,
        )
        .map(|_| ()),
        GovCmd::Show { id, votes, node } => {
            let c = Client::new(&node.node)?;
            let p = c.proposal(id)?;
            let listed = if votes { Some(c.votes(id)?) } else { None };
            let mut v = serde_json::to_value(&p)?;
            if let Some(l) = &listed {
                v["vote_list"] = serde_json::to_value(&l.votes)?;
            }
            print(out, &v, || {
                let mut s = describe(&p);
                if let Some(l) = &listed {
                    for vote in &l.votes {
                        s += &format!("\n  {} {}", vote.voter, vote.option.as_str());
                    }
                }
                s
            });
            Ok(())
        }
        GovCmd::List { status, node } => {
            let l = Client::new(&node.node)?.proposals(status.as_deref())?;
            let v = serde_json::to_value(&l)?;
            print(out, &v, || list_text(&l));
            Ok(())
        }
        GovCmd::Params { node } => {
            let p = Client::new(&node.node)?.params()?;
            let v = serde_json::to_value(&p)?;
            print(out, &v, || {
                let w = p.params.iter().map(|e| e.key.len()).max().unwrap_or(0);
                p.params
                    .iter()
                    .map(|e| {
                        let by = e
                            .set_by
                            .map(|id| format!("proposal {id}"))
                            .unwrap_or_else(|| "genesis".into());
                        format!(
                            "{:w$}  {:>24}  [{}, {}]  {by}",
                            e.key, e.value, e.min, e.max
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
    }
}

fn tally_text(t: &Tally) -> String {
    format!(
        "yes {}  no {}  abstain {}  no_with_veto {}  (of {} bonded)",
        t.yes, t.no, t.abstain, t.no_with_veto, t.bonded
    )
}

fn describe(p: &Proposal) -> String {
    let s = &p.proposal;
    let mut out = format!(
        "proposal {}: {}\nstatus   {}\nkind     {}\nproposer {}\ndeposit  {}",
        s.id,
        s.title,
        s.status.as_str(),
        s.content.kind(),
        s.proposer,
        s.total_deposit
    );
    if let Some(end) = s.voting_end_ms {
        out += &format!("\nvoting   ends at {end} (block time, ms)");
    }
    out += &format!(
        "\ncontent  {}",
        serde_json::to_string(&s.content).unwrap_or_default()
    );
    if let Some(t) = &p.tally {
        let plural = if p.votes == 1 { "" } else { "s" };
        out += &format!("\ntally    {}  ({} vote{plural})", tally_text(t), p.votes);
    }
    if let Some(e) = &s.execution_error {
        out += &format!("\nnot executed: {e}");
    }
    if !s.summary.is_empty() {
        out += &format!("\n\n{}", s.summary);
    }
    out
}

fn list_text(l: &Proposals) -> String {
    if l.proposals.is_empty() {
        return "no proposals".into();
    }
    l.proposals
        .iter()
        .map(|p| {
            let s = &p.proposal;
            format!(
                "{:>4}  {:<14}  {:<20}  {}",
                s.id,
                s.status.as_str(),
                s.content.kind(),
                s.title
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
