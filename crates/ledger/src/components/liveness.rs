//! Liveness: a validator that signs too few commits is jailed and slashed a little
//! (`x/slashing` semantics; docs/staking.md "Downtime").
//!
//! Block `h` carries the commit signatures of block `h − 1` (`Block::last_commit`), checked by
//! every validator before it voted and again here (more than two thirds of the power of the
//! set that voted on `h − 1`, every signature a valid precommit over `h − 1`'s value id, which
//! the ledger keeps in state). In begin-block of `h`, each member of that set records in
//! a sliding window of `signed_blocks_window` blocks whether it signed. Once its window is
//! full, a member that missed more than `window × (1 − min_signed_bps)` of it is jailed for
//! `downtime_jail_ms`, loses `downtime_slash_bps` of its bonded tokens to the treasury, and
//! starts a fresh window when it returns (`Unjail` after the delay). Double signing keeps its
//! larger slash (`downtime_slash_bps ≤ slash_double_sign_bps`, a parameter rule).
//!
//! Cost: O(set) small reads and writes per block (one record and at most one bit per member).
//! The proposer chooses which of the signatures it received to include, as in CometBFT: a
//! Byzantine proposer can leave out an honest validator's signature for its own blocks, which
//! the window absorbs unless that proposer proposes most of them.

use super::{read, staking, write, BlockCtx, BlockFrame, Hook, LastSigners, TxCall, TxOutcome};
use crate::error::LedgerError;
use crate::events::Event;
use crate::keys::staking as k;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::evidence::{VoteEvidence, PRECOMMIT};
use opal_types::{Address, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A validator's place in its liveness window (Cosmos calls it signing info).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct SigningInfo {
    /// Blocks recorded since the window (re)started; the bit of a block is at `index % window`.
    pub index: u64,
    /// Blocks missed in the window.
    pub missed: u64,
    /// The window size the record was kept with: when governance changes
    /// `signed_blocks_window`, every record starts afresh (old bits would sit at the wrong
    /// places and could jail a validator for misses outside the new window).
    pub window: u64,
}

pub fn signing_info(s: &Overlay, op: &Address) -> Result<SigningInfo, LedgerError> {
    Ok(read(s, &k::liveness(op))?.unwrap_or_default())
}

/// Most misses a full window may hold before its validator is jailed.
pub fn max_missed(window: u64, min_signed_bps: u32) -> u64 {
    window - (window as u128 * min_signed_bps as u128 / 10_000) as u64
}

/// The signers of `lc` as members of `set`: each a member, once, each signature a valid
/// precommit for block `height` (value `value_id`) on `chain_id`, together more than two
/// thirds of the set's power. Every validator checked the same before voting; the ledger
/// checks it again, so no block can jail or pay anyone on signatures that are not real.
fn signers_in(
    set: &[opal_types::validator::ActiveValidator],
    lc: &opal_types::block::LastCommit,
    (chain_id, height, value_id): (&str, u64, opal_types::Hash),
) -> Result<BTreeSet<PublicKey>, LedgerError> {
    let mut seen = BTreeSet::new();
    let mut signed: u128 = 0;
    let mut msgs = Vec::with_capacity(lc.signatures.len());
    for (pk, sig) in &lc.signatures {
        let sig = <[u8; 64]>::try_from(sig.as_slice()).map_err(|_| {
            LedgerError::InvalidBlock(format!("last commit: {pk}'s signature is not 64 bytes"))
        })?;
        let vote = VoteEvidence {
            vote_type: PRECOMMIT,
            height,
            round: lc.round as i64,
            value: Some(value_id.0),
            validator: *pk,
            signature: Signature(sig),
        };
        msgs.push((*pk, vote.sign_bytes(chain_id), Signature(sig)));
    }
    opal_types::crypto::verify_batch(msgs.iter().map(|(k, m, s)| (k, m.as_slice(), s)))
        .map_err(|_| LedgerError::InvalidBlock("last commit: a signature is invalid".into()))?;
    for pk in lc.signers() {
        let Some(v) = set.iter().find(|v| v.public_key == *pk) else {
            return Err(LedgerError::InvalidBlock(format!(
                "last commit signed by {pk}, not a member of the set that voted"
            )));
        };
        if !seen.insert(*pk) {
            return Err(LedgerError::InvalidBlock(format!(
                "last commit signed twice by {pk}"
            )));
        }
        signed += v.power as u128;
    }
    let total: u128 = set.iter().map(|v| v.power as u128).sum();
    if signed * 3 <= total * 2 {
        return Err(LedgerError::InvalidBlock(format!(
            "last commit holds {signed} of {total} voting power, not more than two thirds"
        )));
    }
    Ok(seen)
}

/// The signers of the previous block in the set that voted on it (`None` at height 1, or
/// where a block carries no commit information). Block execution calls it once per block and
/// hands the result to every hook ([`BlockFrame::last_signers`]).
pub fn last_signers(
    s: &Overlay,
    ctx: &BlockCtx,
    last_commit: Option<&opal_types::block::LastCommit>,
) -> Result<Option<LastSigners>, LedgerError> {
    let Some(lc) = last_commit else {
        return Ok(None);
    };
    if ctx.height < 2 {
        return Err(LedgerError::InvalidBlock(
            "block 1 cannot carry a last commit".into(),
        ));
    }
    let set = staking::voted_on(s, ctx.height - 1)?;
    let value_id: opal_types::Hash =
        super::required(s, crate::keys::LAST_VALUE_ID, "last value id")?;
    let signed = signers_in(&set, lc, (&ctx.chain_id, ctx.height - 1, value_id))?;
    Ok(Some(LastSigners { set, signed }))
}

fn begin_block(s: &mut Overlay, b: BlockFrame, ev: &mut Vec<Event>) -> Hook {
    let Some(LastSigners {
        set,
        signed: signers,
    }) = b.last_signers
    else {
        return Ok(());
    };
    let p = staking::params(s)?;
    let window = p.signed_blocks_window.max(1);
    let limit = max_missed(window, p.min_signed_bps);
    for v in set {
        let op = v.operator;
        let mut l = signing_info(s, &op)?;
        if l.window != window {
            for (key, _) in s.prefix(&k::missed_prefix(&op))? {
                s.delete(key);
            }
            l = SigningInfo {
                index: 0,
                missed: 0,
                window,
            };
        }
        let bit = k::missed(&op, l.index % window);
        let was_missed = s.get(&bit)?.is_some();
        let signed = signers.contains(&v.public_key);
        match (was_missed, signed) {
            (true, true) => {
                s.delete(bit);
                l.missed = l.missed.saturating_sub(1);
            }
            (false, false) => {
                write(s, &bit, &());
                l.missed += 1;
            }
            _ => {}
        }
        l.index += 1;
        if l.index >= window && l.missed > limit {
            let missed = l.missed;
            let (slashed, until_ms) = staking::jail_for_downtime(s, b.ctx, &op, &p)?;
            for (key, _) in s.prefix(&k::missed_prefix(&op))? {
                s.delete(key);
            }
            s.delete(k::liveness(&op));
            ev.push(Event::DowntimeJailed {
                validator: op,
                missed,
                window,
                slashed,
                until_ms,
            });
        } else {
            write(s, &k::liveness(&op), &l);
        }
    }
    Ok(())
}

/// The `liveness` component ([`super::Component`]); it has no transactions (`Unjail` is
/// staking's).
pub struct Liveness;

impl super::Component for Liveness {
    fn name(&self) -> &'static str {
        "liveness"
    }

    fn begin_block(&self, s: &mut Overlay, b: BlockFrame, ev: &mut Vec<Event>) -> Hook {
        begin_block(s, b, ev)
    }

    fn deliver_tx(&self, _s: &mut Overlay, tx: TxCall, _ev: &mut Vec<Event>) -> TxOutcome {
        super::not_routed_here(self.name(), tx.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_miss_limit() {
        assert_eq!(max_missed(100, 5_000), 50);
        assert_eq!(max_missed(100, 10_000), 0);
        assert_eq!(max_missed(10, 9_500), 1);
    }
}
