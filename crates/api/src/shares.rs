//! Replies of the revenue-share read routes: split royalty streams, their holders, and one
//! holder's shares and claimable earnings.

use opal_ledger::components::shares::{Holding, SharePool};
use opal_types::shares::RoyaltyStream;
use opal_types::{Address, Amount};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One split royalty stream. Amounts in base units (decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stream {
    /// `model:NAME` or `dataset:NAME`.
    #[schemars(with = "String")]
    pub stream: String,
    pub shares: u64,
    /// Base units one share has earned since the split.
    #[schemars(with = "String")]
    pub per_share: Amount,
    /// Paid in but less than a unit per share: waits for the next payout.
    #[schemars(with = "String")]
    pub remainder: Amount,
    #[schemars(with = "String")]
    pub paid_in: Amount,
    #[schemars(with = "String")]
    pub claimed: Amount,
    pub holders: u64,
    pub split_height: u64,
}

impl From<&SharePool> for Stream {
    fn from(p: &SharePool) -> Stream {
        Stream {
            stream: p.stream.to_string(),
            shares: p.shares,
            per_share: Amount(p.per_share),
            remainder: Amount(p.remainder),
            paid_in: p.paid_in,
            claimed: p.claimed,
            holders: p.holders,
            split_height: p.split_height,
        }
    }
}

/// `GET /api/shares`: every split royalty stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Streams {
    pub height: u64,
    pub streams: Vec<Stream>,
}

/// One holder of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Holder {
    #[schemars(with = "String")]
    pub address: Address,
    pub shares: u64,
    /// What `opal shares claim` would pay now.
    #[schemars(with = "String")]
    pub claimable: Amount,
}

impl Holder {
    pub fn new(address: Address, h: &Holding, pool: &SharePool) -> Option<Holder> {
        Some(Holder {
            address,
            shares: h.shares,
            claimable: Amount(h.claimable(pool).ok()?),
        })
    }
}

/// `GET /api/shares/{stream}[?after=ADDRESS&limit=N]`: a stream and its holders in address
/// order, `limit` at a time (default 100, at most 1000); `next` is the `after` of the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamReply {
    pub height: u64,
    #[serde(flatten)]
    pub stream: Stream,
    pub holder_list: Vec<Holder>,
    #[schemars(with = "Option<String>")]
    pub next: Option<Address>,
}

/// `GET /api/shares/{stream}/{address}`: one holder's shares and claimable earnings (zero for
/// an address that holds none); `key` is the holding's state key in hex, whose value and
/// proof `GET /api/state/{key}` gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HoldingReply {
    pub height: u64,
    #[schemars(with = "String")]
    pub stream: String,
    #[serde(flatten)]
    pub holder: Holder,
    pub key: String,
}

/// Parse a `model:NAME` / `dataset:NAME` path segment.
pub fn parse_stream(s: &str) -> Result<RoyaltyStream, String> {
    s.parse()
}

/// One resting order, as the book routes show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderReply {
    pub id: u64,
    #[schemars(with = "String")]
    pub owner: Address,
    /// `buy` or `sell`.
    pub side: String,
    #[schemars(with = "String")]
    pub price: Amount,
    pub shares: u64,
    pub left: u64,
    pub placed_height: u64,
    pub expires_height: Option<u64>,
}

impl From<&opal_ledger::components::market::Order> for OrderReply {
    fn from(o: &opal_ledger::components::market::Order) -> OrderReply {
        OrderReply {
            id: o.id,
            owner: o.owner,
            side: o.side.as_str().into(),
            price: o.price,
            shares: o.shares,
            left: o.left,
            placed_height: o.placed_height,
            expires_height: o.expires_height,
        }
    }
}

/// `GET /api/market/{stream}/book`: resting orders, best first on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Book {
    pub height: u64,
    pub stream: String,
    pub bids: Vec<OrderReply>,
    pub asks: Vec<OrderReply>,
}

/// One trade: at the maker's (resting order's) price; the seller paid `fee`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TradeReply {
    pub seq: u64,
    pub height: u64,
    pub maker: u64,
    pub taker: u64,
    #[schemars(with = "String")]
    pub buyer: Address,
    #[schemars(with = "String")]
    pub seller: Address,
    #[schemars(with = "String")]
    pub price: Amount,
    pub shares: u64,
    #[schemars(with = "String")]
    pub fee: Amount,
}

/// `GET /api/market/{stream}/trades`: the newest trades (at most 256), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Trades {
    pub height: u64,
    pub stream: String,
    pub trades: Vec<TradeReply>,
}

/// `GET /api/market/orders/{id}`: one resting order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderStatus {
    pub height: u64,
    pub stream: String,
    #[serde(flatten)]
    pub order: OrderReply,
}
