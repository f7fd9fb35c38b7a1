//! Block time bounded by the validators: proposer-based timestamps (docs/adr/0002-bft-time.md).
//!
//! The proposer writes its clock into the block. A validator prevotes for a *fresh* proposal
//! (one without a proof-of-lock round) only if that time is **timely** by its own clock:
//!
//! ```text
//! now - (precision + msg_delay(round))  <=  t  <=  now + precision,   and  t > parent time
//! ```
//!
//! A block is committed only after more than two thirds of the voting power prevoted for it in
//! some round, so more than one third did, and with less than a third Byzantine at least one
//! honest validator found it timely. Hence a committed block's time is never more than
//! `precision` ahead of some honest validator's clock at the moment it received the block, and
//! never more than `precision + msg_delay(round)` behind it. A Byzantine proposer can move time
//! within that window and no further; it cannot close a reveal window hours early.
//!
//! Re-proposals (with a proof-of-lock round) and blocks that arrive through value sync carry a
//! polka or a commit certificate and are checked for monotonicity only
//! ([`check_monotonic`]): they were timely when first proposed, and a node that syncs old
//! heights must accept them whatever its clock says now.
//!
//! All arithmetic is checked: a time of `u64::MAX` is refused, never wrapped.

/// How far a proposal's time may be from a validator's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeBounds {
    /// The largest clock difference expected between honest validators (and how far ahead of
    /// a receiver's clock a proposal may be).
    pub precision_ms: u64,
    /// How long a proposal may take to reach a validator in round 0.
    pub msg_delay_ms: u64,
    /// Added to `msg_delay_ms` per round, so that a slow network still decides in later rounds.
    pub msg_delay_per_round_ms: u64,
}

impl Default for TimeBounds {
    /// Half a second of clock difference (NTP-synchronised machines), proposals delivered
    /// within 5 s in round 0 and 2 s more per round.
    fn default() -> Self {
        Self {
            precision_ms: 500,
            msg_delay_ms: 5_000,
            msg_delay_per_round_ms: 2_000,
        }
    }
}

/// Why a proposal's time is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("block time {time_ms} is not after its parent's {parent_ms}")]
    NotAfterParent { time_ms: u64, parent_ms: u64 },
    #[error("block time {time_ms} is {ahead_ms} ms ahead of this validator's clock (at most {precision_ms} allowed)")]
    TooFarAhead {
        time_ms: u64,
        ahead_ms: u64,
        precision_ms: u64,
    },
    #[error("block time {time_ms} is {behind_ms} ms behind this validator's clock (at most {allowed_ms} allowed in round {round})")]
    TooFarBehind {
        time_ms: u64,
        behind_ms: u64,
        allowed_ms: u64,
        round: u32,
    },
    #[error("block time {time_ms} leaves no room for a next block")]
    Overflow { time_ms: u64 },
}

/// The time a proposer writes into the block it builds: its clock, and at least one
/// millisecond after the parent. `None` if the parent's time leaves no room (the result would
/// be `u64::MAX`, which [`check_monotonic`] refuses).
pub fn proposal_time(now_ms: u64, parent_ms: u64) -> Option<u64> {
    let t = now_ms.max(parent_ms.checked_add(1)?);
    (t < u64::MAX).then_some(t)
}

/// A block's time must be after its parent's, and below `u64::MAX` (so the next block has a
/// time to take). Holds for every block, however it arrives.
pub fn check_monotonic(time_ms: u64, parent_ms: u64) -> Result<(), TimeError> {
    if time_ms <= parent_ms {
        return Err(TimeError::NotAfterParent { time_ms, parent_ms });
    }
    if time_ms == u64::MAX {
        return Err(TimeError::Overflow { time_ms });
    }
    Ok(())
}

/// Whether a fresh proposal of `round` with time `time_ms` is timely at local time `now_ms`
/// (see the module documentation). Includes [`check_monotonic`].
pub fn check_timely(
    time_ms: u64,
    parent_ms: u64,
    now_ms: u64,
    round: u32,
    bounds: &TimeBounds,
) -> Result<(), TimeError> {
    check_monotonic(time_ms, parent_ms)?;
    let ahead_ms = time_ms.saturating_sub(now_ms);
    if ahead_ms > bounds.precision_ms {
        return Err(TimeError::TooFarAhead {
            time_ms,
            ahead_ms,
            precision_ms: bounds.precision_ms,
        });
    }
    let allowed_ms = bounds
        .precision_ms
        .saturating_add(bounds.msg_delay_ms)
        .saturating_add(
            bounds
                .msg_delay_per_round_ms
                .saturating_mul(u64::from(round)),
        );
    let behind_ms = now_ms.saturating_sub(time_ms);
    if behind_ms > allowed_ms {
        return Err(TimeError::TooFarBehind {
            time_ms,
            behind_ms,
            allowed_ms,
            round,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: TimeBounds = TimeBounds {
        precision_ms: 500,
        msg_delay_ms: 2_000,
        msg_delay_per_round_ms: 1_000,
    };

    #[test]
    fn honest_proposals_are_timely() {
        assert_eq!(check_timely(10_000, 9_000, 10_000, 0, &B), Ok(()));
        // Received a little later, or from a clock a little ahead.
        assert_eq!(check_timely(10_000, 9_000, 12_400, 0, &B), Ok(()));
        assert_eq!(check_timely(10_400, 9_000, 10_000, 0, &B), Ok(()));
    }

    #[test]
    fn a_jump_forward_is_refused() {
        let hours = 3 * 3_600_000;
        assert!(matches!(
            check_timely(10_000 + hours, 9_000, 10_000, 0, &B),
            Err(TimeError::TooFarAhead { .. })
        ));
        assert!(matches!(
            check_timely(10_501, 9_000, 10_000, 5, &B),
            Err(TimeError::TooFarAhead { .. })
        ));
    }

    #[test]
    fn a_stale_time_is_refused_and_later_rounds_allow_more_delay() {
        assert!(matches!(
            check_timely(10_000, 9_000, 12_501, 0, &B),
            Err(TimeError::TooFarBehind { .. })
        ));
        assert_eq!(check_timely(10_000, 9_000, 12_501, 1, &B), Ok(()));
        // parent + 1 when the parent is itself stale: refused too.
        assert!(matches!(
            check_timely(9_001, 9_000, 100_000, 0, &B),
            Err(TimeError::TooFarBehind { .. })
        ));
    }

    #[test]
    fn monotonic_and_no_overflow() {
        assert!(matches!(
            check_timely(9_000, 9_000, 9_000, 0, &B),
            Err(TimeError::NotAfterParent { .. })
        ));
        assert!(matches!(
            check_monotonic(u64::MAX, 1),
            Err(TimeError::Overflow { .. })
        ));
        assert_eq!(proposal_time(5, u64::MAX), None);
        assert_eq!(proposal_time(5, u64::MAX - 1), None);
        assert_eq!(proposal_time(u64::MAX, 1), None);
        assert_eq!(proposal_time(5, 9), Some(10));
        assert_eq!(proposal_time(50, 9), Some(50));
        // Far-future clocks do not wrap the arithmetic.
        assert!(check_timely(u64::MAX - 1, u64::MAX - 2, 0, u32::MAX, &B).is_err());
        assert!(check_timely(1, 0, u64::MAX, u32::MAX, &B).is_err());
    }
}
