//! Governance and reward replies: proposals, their votes and deposits, the parameters in
//! force (`GET /api/params`), the governance overview (`GET /api/gov`) and what an address
//! has earned (`GET /api/rewards/{address}`).

use opal_ledger::components::governance::{Proposal as StoredProposal, Tally, UpgradePlan};
use opal_ledger::params::GovParams;
use opal_types::gov::{Measurement, VoteOption};
use opal_types::{Address, Amount};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GET /api/gov/proposals/{id}` (and each entry of `GET /api/gov/proposals`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Proposal {
    /// The proposal as stored: id, proposer, title, summary, content, status, periods, total
    /// deposit, final tally, execution error.
    #[serde(flatten)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub proposal: StoredProposal,
    /// During the voting period, the tally if voting ended at the latest block; afterwards the
    /// final tally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub tally: Option<Tally>,
    /// Votes cast so far (`GET /api/gov/proposals/{id}/votes` lists them).
    pub votes: usize,
    pub deposits: Vec<Deposit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Deposit {
    #[schemars(with = "String")]
    pub depositor: Address,
    #[schemars(with = "String")]
    pub amount: Amount,
}

/// `GET /api/gov/proposals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Proposals {
    pub height: u64,
    pub proposals: Vec<Proposal>,
}

/// One vote in `GET /api/gov/proposals/{id}/votes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Vote {
    #[schemars(with = "String")]
    pub voter: Address,
    #[schemars(with = "String")]
    pub option: VoteOption,
}

/// `GET /api/gov/proposals/{id}/votes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Votes {
    pub height: u64,
    pub proposal: u64,
    pub votes: Vec<Vote>,
}

/// One parameter in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParamEntry {
    /// `section.field`, as a `param_change` proposal names it.
    pub key: String,
    /// Decimal strings: a parameter may exceed what a JSON number holds exactly.
    pub value: String,
    pub min: String,
    pub max: String,
    /// The proposal that last set it; absent: genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_by: Option<u64>,
}

/// `GET /api/params`: every parameter in force, with its bounds and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParamsInForce {
    pub height: u64,
    pub params: Vec<ParamEntry>,
}

impl ParamsInForce {
    /// The entry of `key`.
    pub fn get(&self, key: &str) -> Option<&ParamEntry> {
        self.params.iter().find(|p| p.key == key)
    }
}

/// `GET /api/gov`: the governance parameters and what governance controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GovOverview {
    pub height: u64,
    #[schemars(with = "serde_json::Value")]
    pub params: GovParams,
    #[schemars(with = "String")]
    pub treasury: Amount,
    /// Deposits held for proposals still open.
    #[schemars(with = "String")]
    pub deposits_held: Amount,
    /// Proposals in their deposit or voting period.
    pub open_proposals: usize,
    /// The enclave measurements the `tee` tier trusts.
    #[schemars(with = "Vec<serde_json::Value>")]
    pub tee_measurements: Vec<Measurement>,
    /// The latest passed upgrade signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub upgrade: Option<UpgradePlan>,
}

/// One delegation's unclaimed rewards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DelegationReward {
    #[schemars(with = "String")]
    pub validator: Address,
    #[schemars(with = "String")]
    pub amount: Amount,
}

/// `GET /api/rewards/{address}`: what `opal tx withdraw-rewards` would pay now, and this
/// epoch's performance points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rewards {
    pub height: u64,
    #[schemars(with = "String")]
    pub address: Address,
    pub delegations: Vec<DelegationReward>,
    /// Commission of the validator this address operates.
    #[schemars(with = "String")]
    pub commission: Amount,
    /// Delegations plus commission.
    #[schemars(with = "String")]
    pub withdrawable: Amount,
    /// Performance points this epoch as an inference node (paid from the performance pool at
    /// the epoch's end).
    pub points: u64,
    /// The performance pool now.
    #[schemars(with = "String")]
    pub performance_pool: Amount,
}
