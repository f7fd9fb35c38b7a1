//! Models and datasets as registered assets: names, versions, lineage, licences, revenue splits,
//! and the services inference nodes declare.
//!
//! A model is named `name@version`. The first registration of a name makes its signer the name's
//! owner; later versions of the name can only be registered by the owner and must be numbered
//! one above the newest (versions chain). A model may also name a *parent* model it was
//! fine-tuned from (any name) and the datasets it was trained on: that is its lineage, and its
//! revenue split pays the parent's owner and the datasets' owners.

use crate::amount::Amount;
use crate::crypto::Address;
use crate::hash::Hash;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Longest model or dataset name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest schema description (JSON text) stored with a model.
pub const MAX_SCHEMA_LEN: usize = 4096;
/// Most datasets a model can name in its lineage.
pub const MAX_LINEAGE_DATASETS: usize = 16;
/// Most callers in an allow-list licence.
pub const MAX_ALLOW_LIST: usize = 64;
/// Longest endpoint URL an inference node can declare.
pub const MAX_ENDPOINT_LEN: usize = 256;
/// Most models one service declaration can offer.
pub const MAX_OFFERS: usize = 64;
/// Basis points in one whole.
pub const BPS: u32 = 10_000;

/// Check a model or dataset name: 1..=64 of `[a-z0-9._-]`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("name must be 1-{MAX_NAME_LEN} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "name {name:?} may only contain lowercase letters, digits, '.', '_' and '-'"
        ));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(format!("name {name:?} must start with a letter or a digit"));
    }
    Ok(())
}

/// A model version: `name@version`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: u32,
}

impl ModelRef {
    pub fn new(name: impl Into<String>, version: u32) -> ModelRef {
        ModelRef {
            name: name.into(),
            version,
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl FromStr for ModelRef {
    type Err = String;
    fn from_str(s: &str) -> Result<ModelRef, String> {
        let (name, v) = s
            .split_once('@')
            .ok_or_else(|| format!("model reference {s:?} must look like NAME@VERSION"))?;
        check_name(name)?;
        let version: u32 = v
            .parse()
            .map_err(|_| format!("version in {s:?} must be a positive integer"))?;
        if version == 0 {
            return Err(format!("version in {s:?} must be at least 1"));
        }
        Ok(ModelRef::new(name, version))
    }
}

impl Serialize for ModelRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModelRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The file format of a model.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    Onnx,
    Gguf,
    /// Opal's canonical quantized integer model (`opal_quant::QuantModel` file,
    /// `opal model quantize`): bit-exact on every machine, so it can be re-executed to settle
    /// disputes and audits (`replay` tier) and proved (`zk` tier).
    OpalQuant,
}

/// Verification tiers, weakest (cheapest) first.
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
pub enum Tier {
    /// The node's signature, with random audits.
    Signed,
    /// Optimistic: settles after a challenge window unless a fraud proof is posted.
    Replay,
    /// An activation commitment (LLMs).
    Activations,
    /// An enclave attestation.
    Tee,
    /// A zero-knowledge proof.
    Zk,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Signed => "signed",
            Tier::Replay => "replay",
            Tier::Activations => "activations",
            Tier::Tee => "tee",
            Tier::Zk => "zk",
        }
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Tier, String> {
        Ok(match s {
            "signed" => Tier::Signed,
            "replay" => Tier::Replay,
            "activations" => Tier::Activations,
            "tee" => Tier::Tee,
            "zk" => Tier::Zk,
            _ => {
                return Err(format!(
                    "unknown tier {s:?} (signed, replay, activations, tee, zk)"
                ))
            }
        })
    }
}

/// Who may use a model or dataset, and on what terms. Checked by the inference node before it
/// serves a request and again by the ledger at settlement.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Licence {
    /// Anyone, for any purpose.
    Open,
    /// Anyone, but only for requests that declare a non-commercial purpose.
    NonCommercial,
    /// Anyone, commercial use included, paying `fee` per inference to the owner on top of the price.
    Commercial { fee: Amount },
    /// Only the listed callers.
    AllowList { callers: Vec<Address> },
}

impl Licence {
    /// Extra per-inference fee this licence adds to the model's price.
    pub fn fee(&self) -> Amount {
        match self {
            Licence::Commercial { fee } => *fee,
            _ => Amount::ZERO,
        }
    }

    /// Whether `caller`, declaring `commercial` use, may use the asset. `Err` says why not.
    pub fn permits(&self, caller: &Address, commercial: bool) -> Result<(), String> {
        match self {
            Licence::Open | Licence::Commercial { .. } => Ok(()),
            Licence::NonCommercial if commercial => {
                Err("the licence is non-commercial and the request declares commercial use".into())
            }
            Licence::NonCommercial => Ok(()),
            Licence::AllowList { callers } if callers.contains(caller) => Ok(()),
            Licence::AllowList { .. } => {
                Err(format!("{caller} is not on the licence's allow-list"))
            }
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if let Licence::AllowList { callers } = self {
            if callers.is_empty() || callers.len() > MAX_ALLOW_LIST {
                return Err(format!(
                    "an allow-list licence needs 1 to {MAX_ALLOW_LIST} callers"
                ));
            }
        }
        Ok(())
    }
}

impl FromStr for Licence {
    type Err = String;
    /// `open`, `non-commercial`, `commercial:FEE`, `allow:ADDR,ADDR,...`
    fn from_str(s: &str) -> Result<Licence, String> {
        let l = match s.split_once(':') {
            None if s == "open" => Licence::Open,
            None if s == "non-commercial" => Licence::NonCommercial,
            Some(("commercial", fee)) => Licence::Commercial {
                fee: fee.parse().map_err(|e| format!("licence fee: {e}"))?,
            },
            Some(("allow", list)) => Licence::AllowList {
                callers: list
                    .split(',')
                    .map(|a| a.trim().parse::<Address>().map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?,
            },
            _ => {
                return Err(format!(
                "unknown licence {s:?}: use open, non-commercial, commercial:FEE or allow:ADDR,..."
            ))
            }
        };
        l.check()?;
        Ok(l)
    }
}

/// A dataset named in a model's lineage, with the share of the model's royalties it is paid.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct DatasetShare {
    pub dataset: String,
    /// Basis points of the model's royalties (price plus licence fee).
    pub bps: u32,
}

/// What a model owner registers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub version: u32,
    /// The model this one was fine-tuned from, if any.
    pub parent: Option<ModelRef>,
    /// Basis points of the royalties paid to the parent model's owner.
    pub parent_bps: u32,
    /// Datasets it was trained on, each with its royalty share.
    pub datasets: Vec<DatasetShare>,
    /// BLAKE3 of the model file (plain `blake3::hash`, as `b3sum` prints it).
    pub content_hash: Hash,
    pub size: u64,
    pub format: ModelFormat,
    /// Input and output schema, as JSON text (names, types, shapes).
    pub input_schema: String,
    pub output_schema: String,
    /// Royalty per inference, paid to the owner, parent and datasets by the split.
    pub price: Amount,
    pub licence: Licence,
    /// Verification tiers the model may be served under.
    pub tiers: Vec<Tier>,
    /// Commitment to the quantized weights, for the `zk` tier.
    pub weight_commitment: Option<Hash>,
    /// What re-executing the file on chain costs, in the canonical interpreter's operations
    /// (`opal_verify::canonical::cost`, measured from the file by whoever registers it):
    /// required for `replay`, and for any `opal_quant` receipt to be held for disputes or
    /// audited by re-execution. The ledger refuses `replay` when it exceeds the chain's
    /// `max_replay_cost`, so every dispute it accepts can be decided in a block; a file found
    /// to cost more when it is re-executed marks the registration as misdeclared (no more
    /// disputes or audits of it). Only for `opal_quant`.
    #[serde(default)]
    pub replay_cost: Option<u64>,
}

impl ModelSpec {
    pub fn model_ref(&self) -> ModelRef {
        ModelRef::new(self.name.clone(), self.version)
    }

    /// Checks that need no state.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if self.version == 0 {
            return Err("version must be at least 1".into());
        }
        if self.input_schema.len() > MAX_SCHEMA_LEN || self.output_schema.len() > MAX_SCHEMA_LEN {
            return Err(format!(
                "schemas are limited to {MAX_SCHEMA_LEN} bytes each"
            ));
        }
        if self.datasets.len() > MAX_LINEAGE_DATASETS {
            return Err(format!(
                "at most {MAX_LINEAGE_DATASETS} datasets in a model's lineage"
            ));
        }
        let mut total: u64 = self.parent_bps as u64;
        if self.parent.is_none() && self.parent_bps != 0 {
            return Err("parent_bps is set but the model names no parent".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for d in &self.datasets {
            check_name(&d.dataset)?;
            if !names.insert(&d.dataset) {
                return Err(format!("dataset {} listed twice", d.dataset));
            }
            total += d.bps as u64;
        }
        if total > BPS as u64 {
            return Err(format!(
                "parent and dataset shares add up to {total} basis points, more than {BPS}"
            ));
        }
        if let Some(p) = &self.parent {
            if p.name == self.name && p.version >= self.version {
                return Err("a model's parent must be an earlier version or another model".into());
            }
        }
        if self.tiers.is_empty() {
            return Err("a model must allow at least one tier".into());
        }
        if self.tiers.contains(&Tier::Zk)
            && (self.format != ModelFormat::OpalQuant || self.weight_commitment.is_none())
        {
            return Err(
                "the zk tier needs a canonical quantized model (format opal_quant) and its \
                 weight commitment (the BLAKE3 id of its opal-zk verifying key)"
                    .into(),
            );
        }
        if self.tiers.contains(&Tier::Replay) && self.format != ModelFormat::OpalQuant {
            return Err(
                "the replay tier needs a canonical quantized model (format opal_quant): \
                 only it re-executes bit-exactly on every machine"
                    .into(),
            );
        }
        if self.replay_cost.is_some() && self.format != ModelFormat::OpalQuant {
            return Err("replay_cost is only for canonical models (format opal_quant)".into());
        }
        if self.tiers.contains(&Tier::Replay) && self.replay_cost.is_none() {
            return Err(
                "the replay tier needs the model's replay_cost (its re-execution cost, \
                 measured from the file: `opal model register` does)"
                    .into(),
            );
        }
        self.licence.check()?;
        Ok(())
    }
}

/// What a dataset contributor registers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct DatasetSpec {
    pub name: String,
    /// BLAKE3 of the dataset file.
    pub content_hash: Hash,
    pub size: u64,
    /// Terms for models trained on it: a non-commercial dataset cannot be in the lineage of a
    /// model with a commercial licence; an allow-list dataset only in models of listed owners.
    pub licence: Licence,
    /// Least royalty share (basis points) a model naming this dataset must pay it.
    pub min_share_bps: u32,
}

impl DatasetSpec {
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if self.min_share_bps > BPS {
            return Err(format!("min_share_bps must be at most {BPS}"));
        }
        self.licence.check()
    }
}

/// One model an inference node serves, the tiers it offers it under and the node's own fee.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ServiceOffer {
    pub model: ModelRef,
    pub tiers: Vec<Tier>,
    /// The node's fee per inference, on top of the model's price and licence fee.
    pub fee: Amount,
}

/// An inference node's declaration: where it listens and what it serves.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub endpoint: String,
    pub offers: Vec<ServiceOffer>,
}

impl ServiceSpec {
    pub fn check(&self) -> Result<(), String> {
        if self.endpoint.is_empty() || self.endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(format!("endpoint must be 1-{MAX_ENDPOINT_LEN} characters"));
        }
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err("endpoint must be an http:// or https:// URL".into());
        }
        if self.offers.len() > MAX_OFFERS {
            return Err(format!("at most {MAX_OFFERS} offers"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for o in &self.offers {
            if !seen.insert(&o.model) {
                return Err(format!("model {} offered twice", o.model));
            }
            if o.tiers.is_empty() {
                return Err(format!("offer for {} lists no tier", o.model));
            }
        }
        Ok(())
    }

    pub fn offer(&self, m: &ModelRef) -> Option<&ServiceOffer> {
        self.offers.iter().find(|o| &o.model == m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refs_and_licences_parse() {
        let r: ModelRef = "digits-mlp@3".parse().unwrap();
        assert_eq!(r, ModelRef::new("digits-mlp", 3));
        assert_eq!(r.to_string(), "digits-mlp@3");
        assert!("Digits@1".parse::<ModelRef>().is_err());
        assert!("digits@0".parse::<ModelRef>().is_err());
        assert!("digits".parse::<ModelRef>().is_err());
        assert_eq!("open".parse::<Licence>().unwrap(), Licence::Open);
        assert_eq!(
            "commercial:25".parse::<Licence>().unwrap(),
            Licence::Commercial { fee: Amount(25) }
        );
        assert!("allow:".parse::<Licence>().is_err());
        assert!("whatever".parse::<Licence>().is_err());
    }

    #[test]
    fn licences_permit_as_documented() {
        let a = Address([1; 20]);
        let b = Address([2; 20]);
        assert!(Licence::Open.permits(&a, true).is_ok());
        assert!(Licence::NonCommercial.permits(&a, false).is_ok());
        assert!(Licence::NonCommercial.permits(&a, true).is_err());
        let allow = Licence::AllowList { callers: vec![a] };
        assert!(allow.permits(&a, true).is_ok());
        assert!(allow.permits(&b, false).is_err());
    }

    #[test]
    fn replay_and_zk_tiers_need_a_canonical_model() {
        let spec = ModelSpec {
            name: "m".into(),
            version: 1,
            parent: None,
            parent_bps: 0,
            datasets: vec![],
            content_hash: Hash([1; 32]),
            size: 1,
            format: ModelFormat::Onnx,
            input_schema: "[]".into(),
            output_schema: "[]".into(),
            price: Amount(1),
            licence: Licence::Open,
            tiers: vec![Tier::Signed],
            weight_commitment: None,
            replay_cost: None,
        };
        assert!(spec.check().is_ok());
        let with = |format, tiers: Vec<Tier>, wc: Option<Hash>| ModelSpec {
            format,
            tiers,
            weight_commitment: wc,
            replay_cost: (format == ModelFormat::OpalQuant).then_some(10),
            ..spec.clone()
        };
        assert!(with(ModelFormat::Onnx, vec![Tier::Replay], None)
            .check()
            .is_err());
        assert!(with(ModelFormat::OpalQuant, vec![Tier::Replay], None)
            .check()
            .is_ok());
        // `replay` needs the declared cost; only canonical models declare one.
        let undeclared = ModelSpec {
            replay_cost: None,
            ..with(ModelFormat::OpalQuant, vec![Tier::Replay], None)
        };
        assert!(undeclared.check().unwrap_err().contains("replay_cost"));
        let onnx_cost = ModelSpec {
            replay_cost: Some(1),
            ..spec.clone()
        };
        assert!(onnx_cost.check().is_err());
        assert!(with(ModelFormat::OpalQuant, vec![Tier::Zk], None)
            .check()
            .is_err());
        assert!(with(ModelFormat::Onnx, vec![Tier::Zk], Some(Hash([2; 32])))
            .check()
            .is_err());
        assert!(
            with(ModelFormat::OpalQuant, vec![Tier::Zk], Some(Hash([2; 32])))
                .check()
                .is_ok()
        );
    }
}
