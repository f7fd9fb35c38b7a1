//! The wall clock, read in one place. The ledger never reads it (block times come from the
//! proposer and are checked by validators); the node reads it for request expiry, pending-log
//! deadlines and the time it proposes, and the CLI for the expiry of what it signs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
