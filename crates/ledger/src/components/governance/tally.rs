//! Counting a proposal's votes by bonded stake, and the rule that decides it.
//!
//! A validator votes with all the tokens bonded to it (its own and its delegators'), less the
//! delegations whose owners voted themselves: a delegator inherits its validator's vote unless
//! it overrides it. Jailed validators and the delegations to them do not count, on either side
//! of the quorum. Cost: O(validators + delegations + votes), once per proposal, at the end of
//! its voting period.

use super::super::staking;
use super::{read_votes, Tally};
use crate::error::LedgerError;
use crate::params::GovParams;
use opal_state::Overlay;
use opal_types::gov::{ProposalId, VoteOption};
use opal_types::{Address, Amount};
use std::collections::BTreeMap;

fn add(t: &mut Tally, option: VoteOption, power: u128) -> Result<(), LedgerError> {
    let slot = match option {
        VoteOption::Yes => &mut t.yes,
        VoteOption::No => &mut t.no,
        VoteOption::Abstain => &mut t.abstain,
        VoteOption::NoWithVeto => &mut t.no_with_veto,
    };
    *slot = slot
        .checked_add(Amount(power))
        .map_err(|e| LedgerError::Invariant(format!("tally: {e}")))?;
    Ok(())
}

/// The stake-weighted tally of proposal `id` as of now.
pub fn tally(s: &Overlay, id: ProposalId) -> Result<Tally, LedgerError> {
    let votes: BTreeMap<Address, VoteOption> = read_votes(s, id)?.into_iter().collect();
    let mut t = Tally::default();
    // Per counted validator: its info and the power its delegators took back by voting.
    let mut vals: BTreeMap<Address, (staking::ValidatorInfo, u128)> = BTreeMap::new();
    for v in staking::validators(s)? {
        if !v.jailed && !v.tokens.is_zero() {
            t.bonded = t
                .bonded
                .checked_add(v.tokens)
                .map_err(|e| LedgerError::Invariant(format!("tally: {e}")))?;
            vals.insert(v.operator, (v, 0));
        }
    }
    if !votes.is_empty() {
        for (op, delegator, shares) in staking::all_delegations(s)? {
            if delegator == op {
                continue; // the operator's own stake votes with the validator
            }
            let (Some(option), Some((v, taken))) = (votes.get(&delegator), vals.get_mut(&op))
            else {
                continue;
            };
            let power = staking::delegation_value(v, shares).0;
            *taken += power;
            add(&mut t, *option, power)?;
        }
        for (op, (v, taken)) in &vals {
            if let Some(option) = votes.get(op) {
                add(&mut t, *option, v.tokens.0.saturating_sub(*taken))?;
            }
        }
    }
    Ok(t)
}

/// How a tally decides a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fewer than `quorum_bps` of the bonded stake voted: deposits refunded.
    NoQuorum,
    /// `no_with_veto` reached `veto_bps` of the votes: deposits burned.
    Vetoed,
    /// `yes` is more than `threshold_bps` of `yes + no + no_with_veto`: executed, deposits
    /// refunded.
    Passed,
    /// Otherwise: deposits refunded.
    Rejected,
}

/// The rule (docs/governance.md): quorum first, then veto, then the pass threshold. Integer
/// arithmetic only (amounts are below 2^100, basis points below 2^14: no overflow).
pub fn decide(t: &Tally, p: &GovParams) -> Verdict {
    let voted = t.yes.0 + t.no.0 + t.abstain.0 + t.no_with_veto.0;
    if t.bonded.is_zero() || voted * 10_000 < t.bonded.0 * p.quorum_bps as u128 {
        return Verdict::NoQuorum;
    }
    if t.no_with_veto.0 * 10_000 >= voted * p.veto_bps as u128 {
        return Verdict::Vetoed;
    }
    let decisive = t.yes.0 + t.no.0 + t.no_with_veto.0;
    if decisive > 0 && t.yes.0 * 10_000 > decisive * p.threshold_bps as u128 {
        Verdict::Passed
    } else {
        Verdict::Rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(yes: u128, no: u128, abstain: u128, veto: u128, bonded: u128) -> Tally {
        Tally {
            yes: Amount(yes),
            no: Amount(no),
            abstain: Amount(abstain),
            no_with_veto: Amount(veto),
            bonded: Amount(bonded),
        }
    }

    #[test]
    fn the_rule_at_its_edges() {
        let p = GovParams::default(); // quorum 40%, threshold 50%, veto 33.4%
        assert_eq!(decide(&t(39, 0, 0, 0, 100), &p), Verdict::NoQuorum);
        assert_eq!(decide(&t(40, 0, 0, 0, 100), &p), Verdict::Passed);
        // A third of the stake alone never reaches quorum.
        assert_eq!(decide(&t(333, 0, 0, 0, 1000), &p), Verdict::NoQuorum);
        // Exactly half is not more than half.
        assert_eq!(decide(&t(50, 50, 0, 0, 100), &p), Verdict::Rejected);
        assert_eq!(decide(&t(51, 49, 0, 0, 100), &p), Verdict::Passed);
        // Abstain counts for quorum, not for the threshold.
        assert_eq!(decide(&t(11, 10, 40, 0, 100), &p), Verdict::Passed);
        assert_eq!(decide(&t(0, 0, 100, 0, 100), &p), Verdict::Rejected);
        // A third of all votes is not a veto; 33.4% is.
        assert_eq!(decide(&t(667, 0, 0, 333, 1000), &p), Verdict::Passed);
        assert_eq!(decide(&t(666, 0, 0, 334, 1000), &p), Verdict::Vetoed);
        assert_eq!(decide(&t(0, 0, 0, 0, 0), &p), Verdict::NoQuorum);
    }
}
