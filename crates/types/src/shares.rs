//! Revenue shares: a royalty stream (a model name, all its versions, or a dataset) split into a
//! fixed number of transferable shares whose holders receive its royalties pro rata.

use crate::registry::check_name;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The most shares one stream may be split into. With royalties counted in base units, a
/// distribution smaller than the share count waits in the pool's remainder until the next
/// ones make a whole unit per share; this bound keeps that remainder small.
pub const MAX_SHARES: u64 = 1_000_000_000;

/// A royalty stream: what the owner of an asset is paid at every settlement.
#[derive(
    Clone,
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
pub enum RoyaltyStream {
    /// The owner's part of every version of a model name, and the parent's part that models
    /// fine-tuned from any of its versions pay.
    Model(String),
    /// A dataset's part of every model trained on it.
    Dataset(String),
}

impl RoyaltyStream {
    pub fn name(&self) -> &str {
        match self {
            RoyaltyStream::Model(n) | RoyaltyStream::Dataset(n) => n,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RoyaltyStream::Model(_) => "model",
            RoyaltyStream::Dataset(_) => "dataset",
        }
    }

    /// The name must be a well-formed asset name.
    pub fn check(&self) -> Result<(), String> {
        check_name(self.name())
    }
}

/// `model:NAME` or `dataset:NAME`.
impl fmt::Display for RoyaltyStream {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

impl FromStr for RoyaltyStream {
    type Err = String;
    fn from_str(s: &str) -> Result<RoyaltyStream, String> {
        let (kind, name) = s.split_once(':').ok_or_else(|| {
            format!("royalty stream {s:?} must look like model:NAME or dataset:NAME")
        })?;
        let stream = match kind {
            "model" => RoyaltyStream::Model(name.into()),
            "dataset" => RoyaltyStream::Dataset(name.into()),
            _ => {
                return Err(format!(
                    "royalty stream kind {kind:?} must be model or dataset"
                ))
            }
        };
        stream.check()?;
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_round_trip_through_their_text_form() {
        for s in ["model:digits-mlp", "dataset:mnist"] {
            let parsed: RoyaltyStream = s.parse().unwrap();
            assert_eq!(parsed.to_string(), s);
        }
        assert!("digits".parse::<RoyaltyStream>().is_err());
        assert!("token:x".parse::<RoyaltyStream>().is_err());
        assert!("model:Bad Name".parse::<RoyaltyStream>().is_err());
    }
}
