//! `opal market`: place and cancel limit orders for revenue shares, read a stream's book and
//! its trades.

use crate::cli::{NodeArg, Output, TxOpts};
use crate::cmd::tx::submit;
use crate::output::print;
use anyhow::Result;
use clap::Subcommand;
use opal_api::shares::OrderReply;
use opal_client::Client;
use opal_ledger::Event;
use opal_types::market::{OrderSpec, Side};
use opal_types::shares::RoyaltyStream;
use opal_types::{Action, Amount};

#[derive(Subcommand, Debug)]
pub enum MarketCmd {
    /// Place a limit order for shares of STREAM: buy (escrows PRICE x SHARES from your balance)
    /// or sell (locks the shares). It trades at once with resting orders that cross it, best
    /// price then oldest first, at their price; the rest rests on the book.
    Order {
        stream: RoyaltyStream,
        /// buy or sell.
        side: Side,
        /// Shares to buy or sell.
        #[arg(long)]
        shares: u64,
        /// Limit price, in base units per share.
        #[arg(long)]
        price: Amount,
        /// Last height at which the order may fill [default: until cancelled].
        #[arg(long)]
        expires_height: Option<u64>,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// Cancel your resting order (or anyone's past its expiry); its escrow or shares come back.
    Cancel {
        id: u64,
        #[command(flatten)]
        opts: TxOpts,
    },
    /// The resting orders of a stream: bids and asks, best first.
    Book {
        stream: RoyaltyStream,
        #[command(flatten)]
        node: NodeArg,
    },
    /// The newest trades of a stream (at most 256).
    Trades {
        stream: RoyaltyStream,
        #[command(flatten)]
        node: NodeArg,
    },
}

pub fn run(cmd: MarketCmd, out: Output) -> Result<()> {
    match cmd {
        MarketCmd::Order {
            stream,
            side,
            shares,
            price,
            expires_height,
            opts,
        } => {
            let what = format!("{side} order for {shares} shares of {stream} at {price}");
            let no_wait = opts.no_wait;
            let order = OrderSpec {
                stream,
                side,
                price,
                shares,
                expires_height,
            };
            let v = submit(Action::PlaceOrder { order }, opts, &what, out)?;
            if !no_wait && out == Output::Text {
                let events: Vec<Event> =
                    serde_json::from_value(v["events"].clone()).unwrap_or_default();
                for e in events {
                    match e {
                        Event::Trade { price, shares, .. } => {
                            println!("traded {shares} at {price}")
                        }
                        Event::OrderPlaced { id, resting, .. } if resting > 0 => {
                            println!("order {id}: {resting} shares rest on the book")
                        }
                        Event::OrderPlaced { id, .. } => println!("order {id} filled"),
                        _ => {}
                    }
                }
            }
            Ok(())
        }
        MarketCmd::Cancel { id, opts } => submit(
            Action::CancelOrder { id },
            opts,
            &format!("cancel of order {id}"),
            out,
        )
        .map(|_| ()),
        MarketCmd::Book { stream, node } => {
            let b = Client::new(&node.node)?.market_book(&stream)?;
            print(out, &serde_json::to_value(&b)?, || {
                let line = |o: &OrderReply| {
                    format!(
                        "  {:>6}  {:>4}  {:>10} @ {:<12}  {}",
                        o.id, o.side, o.left, o.price, o.owner
                    )
                };
                let mut s = format!("{} at height {}\nasks (best last):", b.stream, b.height);
                for o in b.asks.iter().rev() {
                    s += &format!("\n{}", line(o));
                }
                s += "\nbids (best first):";
                for o in &b.bids {
                    s += &format!("\n{}", line(o));
                }
                s
            });
            Ok(())
        }
        MarketCmd::Trades { stream, node } => {
            let t = Client::new(&node.node)?.market_trades(&stream)?;
            print(out, &serde_json::to_value(&t)?, || {
                if t.trades.is_empty() {
                    return format!("no trades of {}", t.stream);
                }
                t.trades
                    .iter()
                    .map(|t| {
                        format!(
                            "height {:>6}  {:>10} @ {:<12} fee {:<8} buyer {} seller {}",
                            t.height, t.shares, t.price, t.fee, t.buyer, t.seller
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
    }
}
