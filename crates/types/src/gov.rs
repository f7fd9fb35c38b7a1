//! Governance: what a proposal asks for and how a staker votes on it (the ledger's
//! `governance` component applies them; docs/governance.md).
//!
//! Everything here is plain data with bounds the ledger checks ([`ProposalContent::check`]);
//! whether a parameter value is in its bounds is the ledger's question, since the bounds are the
//! ledger's.

use crate::amount::Amount;
use crate::crypto::Address;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Longest proposal title, in bytes.
pub const MAX_TITLE: usize = 140;
/// Longest proposal summary (or upgrade info), in bytes.
pub const MAX_SUMMARY: usize = 4096;
/// Most parameter changes in one proposal.
pub const MAX_PARAM_CHANGES: usize = 32;
/// Most enclave measurements added or removed by one proposal.
pub const MAX_MEASUREMENTS: usize = 16;

/// A proposal's identifier: its sequence number on the chain, from 1.
pub type ProposalId = u64;

/// How a staker votes.
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
pub enum VoteOption {
    Yes,
    No,
    Abstain,
    /// No, and the proposal should not have been made: past the veto threshold the deposit is
    /// burned.
    NoWithVeto,
}

impl VoteOption {
    pub fn as_str(self) -> &'static str {
        match self {
            VoteOption::Yes => "yes",
            VoteOption::No => "no",
            VoteOption::Abstain => "abstain",
            VoteOption::NoWithVeto => "no_with_veto",
        }
    }
}

impl FromStr for VoteOption {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "yes" => Ok(VoteOption::Yes),
            "no" => Ok(VoteOption::No),
            "abstain" => Ok(VoteOption::Abstain),
            "no_with_veto" | "no-with-veto" | "veto" => Ok(VoteOption::NoWithVeto),
            _ => Err(format!(
                "unknown vote {s:?}: expected yes, no, abstain or no-with-veto"
            )),
        }
    }
}

/// One parameter set to one value. `key` names the parameter as `section.field`
/// (`inference.audit_bps`, `chain.min_fee`, ...; `GET /api/params` lists them with their
/// bounds). Every parameter is an unsigned integer; in JSON the value is a decimal string, like
/// an [`Amount`], since it may exceed what a JSON number holds exactly.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ParamChange {
    pub key: String,
    #[serde(with = "u128_string")]
    pub value: u128,
}

impl FromStr for ParamChange {
    type Err = String;
    /// `section.field=value`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected KEY=VALUE, e.g. inference.audit_bps=1000"))?;
        let value = value
            .trim()
            .parse::<u128>()
            .map_err(|_| format!("{s:?}: the value must be a non-negative integer"))?;
        Ok(ParamChange {
            key: key.trim().to_string(),
            value,
        })
    }
}

mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(u64),
        }
        match Either::deserialize(d)? {
            Either::S(s) => s.parse().map_err(serde::de::Error::custom),
            Either::N(n) => Ok(n as u128),
        }
    }
}

/// The kind of trusted execution environment an enclave measurement belongs to.
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
pub enum TeePlatform {
    /// Intel TDX: the TD's MRTD (48 bytes).
    IntelTdx,
    /// Intel SGX: the enclave's MRENCLAVE (32 bytes).
    IntelSgx,
    /// AMD SEV-SNP: the launch measurement (48 bytes).
    AmdSevSnp,
}

impl TeePlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            TeePlatform::IntelTdx => "intel_tdx",
            TeePlatform::IntelSgx => "intel_sgx",
            TeePlatform::AmdSevSnp => "amd_sev_snp",
        }
    }
    /// The measurement's length on this platform, in bytes.
    pub fn measurement_len(self) -> usize {
        match self {
            TeePlatform::IntelSgx => 32,
            TeePlatform::IntelTdx | TeePlatform::AmdSevSnp => 48,
        }
    }
    /// The one-byte tag the ledger keys the allowlist with.
    pub fn tag(self) -> u8 {
        match self {
            TeePlatform::IntelTdx => 0,
            TeePlatform::IntelSgx => 1,
            TeePlatform::AmdSevSnp => 2,
        }
    }
}

/// An enclave measurement the `tee` tier trusts: the hash of the code and initial state an
/// attestation report must carry.
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
pub struct Measurement {
    pub platform: TeePlatform,
    /// Hex in JSON.
    #[serde(with = "hex_bytes")]
    pub value: Vec<u8>,
}

impl Measurement {
    pub fn check(&self) -> Result<(), String> {
        let want = self.platform.measurement_len();
        if self.value.len() != want {
            return Err(format!(
                "a {} measurement is {want} bytes, not {}",
                self.platform.as_str(),
                self.value.len()
            ));
        }
        Ok(())
    }
}

impl FromStr for Measurement {
    type Err = String;
    /// `PLATFORM:HEX`, e.g. `intel_sgx:<64 hex digits>`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (p, h) = s.split_once(':').ok_or_else(|| {
            format!("{s:?}: expected PLATFORM:HEX (intel_tdx, intel_sgx or amd_sev_snp)")
        })?;
        let platform = match p.replace('-', "_").as_str() {
            "intel_tdx" | "tdx" => TeePlatform::IntelTdx,
            "intel_sgx" | "sgx" => TeePlatform::IntelSgx,
            "amd_sev_snp" | "sev_snp" | "snp" => TeePlatform::AmdSevSnp,
            _ => {
                return Err(format!(
                    "{p:?}: unknown platform (intel_tdx, intel_sgx, amd_sev_snp)"
                ))
            }
        };
        let value = hex::decode(h).map_err(|e| format!("{s:?}: {e}"))?;
        let m = Measurement { platform, value };
        m.check()?;
        Ok(m)
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform.as_str(), hex::encode(&self.value))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a proposal does if it passes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProposalContent {
    /// Nothing is executed: a recorded opinion of the stake.
    Text,
    /// Set parameters, all at once, in force from the block after the one that executes it.
    ParamChange { changes: Vec<ParamChange> },
    /// Pay `amount` from the protocol treasury to `to`.
    TreasurySpend { to: Address, amount: Amount },
    /// Change the `tee` tier's allowlist of enclave measurements.
    EnclaveMeasurements {
        add: Vec<Measurement>,
        remove: Vec<Measurement>,
    },
    /// Signal that the software named `name` is to run from `height` on (recorded, shown by
    /// the node and its API; nodes are upgraded by their operators).
    Upgrade {
        name: String,
        height: u64,
        info: String,
    },
}

/// The parts a proposal can be given (as `opal gov propose` takes them), of which at most one
/// may be set: a proposal does one thing. None of them makes a text proposal.
#[derive(Clone, Debug, Default)]
pub struct ProposalParts {
    pub changes: Vec<ParamChange>,
    pub spend: Option<(Address, Amount)>,
    pub add_measurements: Vec<Measurement>,
    pub remove_measurements: Vec<Measurement>,
    /// (name, height, info).
    pub upgrade: Option<(String, u64, String)>,
}

impl ProposalContent {
    /// The content the parts describe, checked ([`ProposalContent::check`]).
    pub fn from_parts(p: ProposalParts) -> Result<ProposalContent, String> {
        let measurements = !p.add_measurements.is_empty() || !p.remove_measurements.is_empty();
        let kinds = [
            !p.changes.is_empty(),
            p.spend.is_some(),
            measurements,
            p.upgrade.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err("a proposal does one thing: a parameter change, a treasury spend, an enclave measurement change or an upgrade, not several".into());
        }
        let c = if !p.changes.is_empty() {
            ProposalContent::ParamChange { changes: p.changes }
        } else if let Some((to, amount)) = p.spend {
            ProposalContent::TreasurySpend { to, amount }
        } else if measurements {
            ProposalContent::EnclaveMeasurements {
                add: p.add_measurements,
                remove: p.remove_measurements,
            }
        } else if let Some((name, height, info)) = p.upgrade {
            ProposalContent::Upgrade { name, height, info }
        } else {
            ProposalContent::Text
        };
        c.check()?;
        Ok(c)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ProposalContent::Text => "text",
            ProposalContent::ParamChange { .. } => "param_change",
            ProposalContent::TreasurySpend { .. } => "treasury_spend",
            ProposalContent::EnclaveMeasurements { .. } => "enclave_measurements",
            ProposalContent::Upgrade { .. } => "upgrade",
        }
    }

    /// The checks that need no state.
    pub fn check(&self) -> Result<(), String> {
        match self {
            ProposalContent::Text => Ok(()),
            ProposalContent::ParamChange { changes } => {
                if changes.is_empty() || changes.len() > MAX_PARAM_CHANGES {
                    return Err(format!(
                        "a parameter change sets 1 to {MAX_PARAM_CHANGES} parameters, not {}",
                        changes.len()
                    ));
                }
                let mut keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
                keys.sort_unstable();
                if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                    return Err(format!("parameter {} is set twice", w[0]));
                }
                Ok(())
            }
            ProposalContent::TreasurySpend { amount, .. } => {
                if amount.is_zero() {
                    return Err("a treasury spend must pay more than 0".into());
                }
                Ok(())
            }
            ProposalContent::EnclaveMeasurements { add, remove } => {
                if add.is_empty() && remove.is_empty() {
                    return Err("an enclave measurement proposal must add or remove one".into());
                }
                if add.len() + remove.len() > MAX_MEASUREMENTS {
                    return Err(format!(
                        "at most {MAX_MEASUREMENTS} measurements per proposal"
                    ));
                }
                for m in add.iter().chain(remove) {
                    m.check()?;
                }
                if add.iter().any(|m| remove.contains(m)) {
                    return Err("a measurement cannot be both added and removed".into());
                }
                Ok(())
            }
            ProposalContent::Upgrade { name, info, .. } => {
                if name.is_empty() || name.len() > MAX_TITLE {
                    return Err(format!("an upgrade name is 1 to {MAX_TITLE} bytes"));
                }
                if info.len() > MAX_SUMMARY {
                    return Err(format!("upgrade info is at most {MAX_SUMMARY} bytes"));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proposal_does_one_thing() {
        let change: ParamChange = "inference.audit_bps=100".parse().unwrap();
        assert_eq!(
            ProposalContent::from_parts(ProposalParts::default()).unwrap(),
            ProposalContent::Text
        );
        let both = ProposalParts {
            changes: vec![change.clone()],
            spend: Some((Address([1; 20]), Amount(5))),
            ..Default::default()
        };
        let e = ProposalContent::from_parts(both).unwrap_err();
        assert!(e.contains("one thing"), "{e}");
        let twice = ProposalParts {
            changes: vec![change.clone(), change.clone()],
            ..Default::default()
        };
        assert!(ProposalContent::from_parts(twice)
            .unwrap_err()
            .contains("twice"));
        let one = ProposalParts {
            changes: vec![change.clone()],
            ..Default::default()
        };
        assert_eq!(
            ProposalContent::from_parts(one).unwrap(),
            ProposalContent::ParamChange {
                changes: vec![change]
            }
        );
    }

    #[test]
    fn parses_cli_forms() {
        let c: ParamChange = "inference.audit_bps=10000".parse().unwrap();
        assert_eq!((c.key.as_str(), c.value), ("inference.audit_bps", 10_000));
        assert!("inference.audit_bps".parse::<ParamChange>().is_err());
        assert!("x=-1".parse::<ParamChange>().is_err());
        assert_eq!("veto".parse::<VoteOption>(), Ok(VoteOption::NoWithVeto));
        let m: Measurement = format!("sgx:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(m.platform, TeePlatform::IntelSgx);
        assert!(format!("tdx:{}", "ab".repeat(32))
            .parse::<Measurement>()
            .is_err());
    }

    #[test]
    fn json_values_are_strings() {
        let c = ParamChange {
            key: "chain.min_fee".into(),
            value: u128::MAX,
        };
        let j = serde_json::to_string(&c).unwrap();
        assert!(j.contains(&format!("\"{}\"", u128::MAX)), "{j}");
        assert_eq!(serde_json::from_str::<ParamChange>(&j).unwrap(), c);
        let n: ParamChange = serde_json::from_str(r#"{"key":"a.b","value":7}"#).unwrap();
        assert_eq!(n.value, 7);
    }

    #[test]
    fn content_checks() {
        let dup = ProposalContent::ParamChange {
            changes: vec!["a.b=1".parse().unwrap(), "a.b=2".parse().unwrap()],
        };
        assert!(dup.check().unwrap_err().contains("twice"));
        assert!(ProposalContent::ParamChange { changes: vec![] }
            .check()
            .is_err());
        assert!(ProposalContent::TreasurySpend {
            to: Address([1; 20]),
            amount: Amount::ZERO
        }
        .check()
        .is_err());
    }
}
