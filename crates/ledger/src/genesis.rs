//! Genesis: the chain's first state, read from a JSON file.

use crate::components::{accounts, write};
use crate::error::LedgerError;
use crate::keys;
use crate::params::Params;
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
    pub accounts: Vec<GenesisAccount>,
    pub validators: Vec<GenesisValidator>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    pub address: Address,
    pub balance: Amount,
}

#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct GenesisValidator {
    pub name: String,
    pub public_key: PublicKey,
    pub power: u64,
}

impl Genesis {
    pub fn from_json(s: &str) -> Result<Genesis, LedgerError> {
        serde_json::from_str(s).map_err(|e| LedgerError::Genesis(format!("bad genesis JSON: {e}")))
    }

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
        for v in &self.validators {
            if v.power == 0 {
                return bad(format!("validator {} has zero power", v.name));
            }
            if !seen.insert(v.public_key) {
                return bad(format!("validator key {} listed twice", v.public_key));
            }
        }
        let mut seen = BTreeSet::new();
        for a in &self.accounts {
            if !seen.insert(a.address) {
                return bad(format!("account {} listed twice", a.address));
            }
        }
        if self.params.max_tx_bytes == 0 || self.params.max_block_txs == 0 {
            return bad("max_tx_bytes and max_block_txs must be positive".into());
        }
        Ok(())
    }

    /// Write the genesis state into `s`.
    pub fn apply(&self, s: &mut Overlay) -> Result<(), LedgerError> {
        self.validate()?;
        let mut supply = Amount::ZERO;
        for a in &self.accounts {
            supply = supply
                .checked_add(a.balance)
                .map_err(|e| LedgerError::Genesis(format!("total supply: {e}")))?;
            accounts::set(
                s,
                &a.address,
                &accounts::Account {
                    balance: a.balance,
                    nonce: 0,
                },
            );
        }
        write(s, keys::SUPPLY, &supply);
        write(s, keys::PARAMS, &self.params);
        write(s, keys::CHAIN_ID, &self.chain_id);
        write(s, keys::VALIDATORS, &self.validators);
        write(s, keys::GENESIS_TIME, &self.genesis_time_ms);
        Ok(())
    }
}
