//! `opal shares`: split a royalty stream into revenue shares, transfer them, claim what they
//! earned, and read streams and holdings.

use crate::cli::{NodeArg, Output, TxOpts};
use crate::cmd::tx::submit;
use crate::output::print;
use anyhow::Result;
use clap::Subcommand;
use opal_api::shares::{Holder, Stream};
use opal_client::Client;
use opal_ledger::Event;
use opal_types::shares::RoyaltyStream;
use opal_types::{Action, Address};

#[derive(Subcommand, Debug)]
pub enum SharesCmd {
    /// Split the royalty stream of a model name (all versions; also the parent's part that
    /// fine-tuned models pay) or of a dataset you own into SHARES transferable shares, all
    /// yours. From the next settlement on, its royalties go to the holders pro rata. Once per
    /// stream; the count never changes.
    Split {
        /// model:NAME or dataset:NAME.
        stream: RoyaltyStream,
        /// How many shares (1 to 1,000,000,000).
        #[arg(long)]
        shares: u64,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Give some of your shares to another address. What they earned so far stays yours to
    /// claim.
    Transfer {
        stream: RoyaltyStream,
        #[arg(long)]
        to: Address,
        #[arg(long)]
        shares: u64,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Take what your shares of a stream have earned.
    Claim {
        stream: RoyaltyStream,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Every split stream, or one stream with a page of its holders.
    Show {
        stream: Option<RoyaltyStream>,
        /// Holders after this address (paging; the reply's `next`).
        #[arg(long)]
        after: Option<Address>,
        /// Holders per page (1 to 1000) [default: 100].
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// One address's shares of a stream and what it can claim now.
    Holding {
        stream: RoyaltyStream,
        address: Address,
        #[command(flatten)]
        node: NodeArg,
    },
}

pub fn run(cmd: SharesCmd, out: Output) -> Result<()> {
    match cmd {
        SharesCmd::Split {
            stream,
            shares,
            opts,
        } => {
            let what = format!("split of {stream} into {shares} shares");
            submit(Action::SplitShares { stream, shares }, opts, &what, out).map(|_| ())
        }
        SharesCmd::Transfer {
            stream,
            to,
            shares,
            opts,
        } => {
            let what = format!("transfer of {shares} shares of {stream} to {to}");
            submit(
                Action::TransferShares { stream, to, shares },
                opts,
                &what,
                out,
            )
            .map(|_| ())
        }
        SharesCmd::Claim { stream, opts } => {
            let no_wait = opts.no_wait;
            let what = format!("claim on {stream}");
            let v = submit(Action::ClaimShares { stream }, opts, &what, out)?;
            if !no_wait && out == Output::Text {
                let events: Vec<Event> =
                    serde_json::from_value(v["events"].clone()).unwrap_or_default();
                for e in events {
                    if let Event::SharesClaimed { amount, .. } = e {
                        println!("claimed {amount}");
                    }
                }
            }
            Ok(())
        }
        SharesCmd::Show {
            stream: None, node, ..
        } => {
            let l = Client::new(&node.node)?.share_streams()?;
            print(out, &serde_json::to_value(&l)?, || {
                if l.streams.is_empty() {
                    return "no stream is split into shares".into();
                }
                l.streams
                    .iter()
                    .map(stream_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        SharesCmd::Show {
            stream: Some(stream),
            after,
            limit,
            node,
        } => {
            let r = Client::new(&node.node)?.share_stream(&stream, after.as_ref(), limit)?;
            print(out, &serde_json::to_value(&r)?, || {
                let mut s = stream_line(&r.stream);
                for h in &r.holder_list {
                    s += &format!("\n  {}", holder_line(h));
                }
                if let Some(n) = r.next {
                    s += &format!("\nmore holders: --after {n}");
                }
                s
            });
            Ok(())
        }
        SharesCmd::Holding {
            stream,
            address,
            node,
        } => {
            let r = Client::new(&node.node)?.share_holding(&stream, &address)?;
            print(out, &serde_json::to_value(&r)?, || {
                format!("{}: {}", r.stream, holder_line(&r.holder))
            });
            Ok(())
        }
    }
}

fn stream_line(s: &Stream) -> String {
    format!(
        "{}  {} shares, {} holders, paid in {}, claimed {}, waiting {} (split at height {})",
        s.stream, s.shares, s.holders, s.paid_in, s.claimed, s.remainder, s.split_height
    )
}

fn holder_line(h: &Holder) -> String {
    format!(
        "{}  {} shares, claimable {}",
        h.address, h.shares, h.claimable
    )
}
