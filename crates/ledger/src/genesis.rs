//! Genesis: the chain's first state, read from a JSON file.

use crate::error::LedgerError;
use crate::params::{AllParams, GovParams, InferenceParams, Params, RewardParams, StakingParams};
use opal_state::Overlay;
use opal_types::{Address, Amount, PublicKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    /// Block time of the genesis, ms since the Unix epoch; block 1 must be later.
    pub genesis_time_ms: u64,
    #[serde(default)]
    pub params: Params,
    #[serde(default)]
    pub staking: StakingParams,
    #[serde(default)]
    pub inference: InferenceParams,
    #[serde(default)]
    pub governance: GovParams,
    #[serde(default)]
    pub rewards: RewardParams,
    pub accounts: Vec<GenesisAccount>,
    pub validators: Vec<GenesisValidator>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    pub address: Address,
    pub balance: Amount,
}

/// A validator of the first block: its consensus key, the account that operates it (defaults to
/// the key's own address) and its self-delegated stake, minted into the bonded pool at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisValidator {
    pub name: String,
    pub public_key: PublicKey,
    #[serde(default)]
    pub operator: Option<Address>,
    pub stake: Amount,
    /// The VRF key of the consensus key's holder (`opal node init` prints it).
    pub vrf_key: opal_types::vrf::VrfPublicKey,
}

impl GenesisValidator {
    pub fn operator(&self) -> Address {
        self.operator.unwrap_or_else(|| self.public_key.address())
    }
}

impl Genesis {
    pub fn from_json(s: &str) -> Result<Genesis, LedgerError> {
        serde_json::from_str(s).map_err(|e| LedgerError::Genesis(format!("bad genesis JSON: {e}")))
    }

    #[allow(clippy::expect_used)] // plain data: serializing it to a String cannot fail
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genesis serializes")
    }

    pub fn validate(&self) -> Result<(), LedgerError> {
        let bad = |m: String| Err(LedgerError::Genesis(m));
        if self.chain_id.is_empty()
            || self.chain_id.len() > 64
            || !self
                .chain_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad(format!(
                "chain_id {:?} must be 1-64 characters of [A-Za-z0-9_-]",
                self.chain_id
            ));
        }
        if self.validators.is_empty() {
            return bad("at least one validator is required".into());
        }
        let mut seen = BTreeSet::new();
        let mut operators = BTreeSet::new();
        for v in &self.validators {
            if v.stake < self.staking.min_validator_stake {
                return bad(format!(
                    "validator {} stakes {}, below min_validator_stake {}",
                    v.name, v.stake, self.staking.min_validator_stake
                ));
            }
            if !seen.insert(v.public_key) {
                return bad(format!("validator key {} listed twice", v.public_key));
            }
            if !operators.insert(v.operator()) {
                return bad(format!("validator operator {} listed twice", v.operator()));
            }
        }
        self.all_params().check().map_err(LedgerError::Genesis)?;
        let mut seen = BTreeSet::new();
        for a in &self.accounts {
            if !seen.insert(a.address) {
                return bad(format!("account {} listed twice", a.address));
            }
        }
        Ok(())
    }

    /// The parameter sets of this genesis, as governance sees them.
    pub fn all_params(&self) -> AllParams {
        AllParams {
            chain: self.params.clone(),
            staking: self.staking.clone(),
            inference: self.inference.clone(),
            governance: self.governance.clone(),
            rewards: self.rewards.clone(),
        }
    }

    /// The total supply at genesis: every account's balance and every validator's stake.
    pub fn supply(&self) -> Result<Amount, LedgerError> {
        let balances = self.accounts.iter().map(|a| a.balance);
        let stakes = self.validators.iter().map(|v| v.stake);
        balances.chain(stakes).try_fold(Amount::ZERO, |sum, x| {
            sum.checked_add(x)
                .map_err(|e| LedgerError::Genesis(format!("total supply: {e}")))
        })
    }

    /// Write the genesis state into `s` ([`crate::exec::Ledger::init_chain`]).
    pub fn apply(&self, s: &mut Overlay) -> Result<(), LedgerError> {
        crate::exec::Ledger::new().init_chain(s, self)
    }

    /// Where a chain from this genesis starts, as every validator computed it: the state root
    /// after genesis and the set that votes on block 1. Applied and committed in a fresh store at
    /// `scratch` (a file path the caller owns); what a light client trusts at genesis.
    pub fn start(
        &self,
        scratch: &std::path::Path,
    ) -> Result<(opal_types::Hash, Vec<crate::ActiveValidator>), LedgerError> {
        let store = opal_state::Store::open(scratch)?;
        let mut o = Overlay::new(store.snapshot()?);
        self.apply(&mut o)?;
        let set = crate::components::staking::active_set(&o)?;
        let root = store.commit(0, o.into_writes(), Default::default())?;
        Ok((opal_types::Hash(root), set))
    }
}
