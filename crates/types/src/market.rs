//! The exchange: limit orders for revenue shares against the native token.

use crate::amount::Amount;
use crate::shares::RoyaltyStream;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Pay the native token for shares.
    Buy,
    /// Sell shares for the native token.
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Side, String> {
        match s {
            "buy" => Ok(Side::Buy),
            "sell" => Ok(Side::Sell),
            _ => Err(format!("side {s:?} must be buy or sell")),
        }
    }
}

/// A limit order: buy or sell up to `shares` shares of `stream` at `price` base units a share
/// or better. What does not fill at once rests on the book until filled, cancelled or past
/// `expires_height`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct OrderSpec {
    pub stream: RoyaltyStream,
    pub side: Side,
    /// Base units per share.
    pub price: Amount,
    pub shares: u64,
    /// The last height at which the order may fill; `None`: until cancelled.
    pub expires_height: Option<u64>,
}
