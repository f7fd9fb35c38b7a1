//! Penalties for gossip peers that send what no honest node sends. An honest node forwards only
//! transactions it admitted, in batches within the limits; so a batch that is too large or does
//! not decode, or that carries a transaction that does not decode or is not validly signed, is a
//! strike against the sending address. [`STRIKES_TO_BAN`] strikes within [`STRIKE_WINDOW`] ban
//! that address from `POST /api/gossip/txs` for [`BAN_FOR`] (429 `penalised`, without reading
//! further); client routes are not affected. Peers are told apart by IP address: validators of
//! a real network have their own (nodes sharing one address, as on a single test machine,
//! share their penalty too).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const STRIKES_TO_BAN: u32 = 3;
pub const STRIKE_WINDOW: Duration = Duration::from_secs(60);
pub const BAN_FOR: Duration = Duration::from_secs(120);
/// Most addresses remembered (the oldest records go first past it).
const MAX_TRACKED: usize = 10_000;

struct Record {
    strikes: u32,
    since: Instant,
    banned_until: Option<Instant>,
}

#[derive(Default)]
pub struct Penalties {
    by_ip: Mutex<HashMap<IpAddr, Record>>,
}

impl Penalties {
    /// How much longer `ip` is banned, if it is.
    pub fn banned(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let m = self.by_ip.lock();
        m.get(&ip)
            .and_then(|r| r.banned_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// One strike against `ip`; true if that bans it.
    pub fn strike(&self, ip: IpAddr, now: Instant) -> bool {
        let mut m = self.by_ip.lock();
        if m.len() >= MAX_TRACKED && !m.contains_key(&ip) {
            if let Some(oldest) = m.iter().min_by_key(|(_, r)| r.since).map(|(k, _)| *k) {
                m.remove(&oldest);
            }
        }
        let r = m.entry(ip).or_insert(Record {
            strikes: 0,
            since: now,
            banned_until: None,
        });
        if now.duration_since(r.since) > STRIKE_WINDOW {
            r.strikes = 0;
            r.since = now;
        }
        r.strikes += 1;
        if r.strikes >= STRIKES_TO_BAN {
            r.strikes = 0;
            r.since = now;
            r.banned_until = Some(now + BAN_FOR);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_strikes_ban_for_a_while_and_others_are_unaffected() {
        let p = Penalties::default();
        let (bad, good): (IpAddr, IpAddr) =
            ("10.0.0.9".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        assert!(!p.strike(bad, t));
        assert!(!p.strike(bad, t));
        assert!(p.banned(bad, t).is_none());
        assert!(p.strike(bad, t), "the third strike bans");
        assert!(p.banned(bad, t).is_some());
        assert!(p.banned(good, t).is_none());
        assert!(
            p.banned(bad, t + BAN_FOR + Duration::from_secs(1))
                .is_none(),
            "bans end"
        );
        // Strikes further apart than the window do not add up.
        let q = Penalties::default();
        assert!(!q.strike(bad, t));
        assert!(!q.strike(bad, t + STRIKE_WINDOW + Duration::from_secs(1)));
        assert!(!q.strike(bad, t + STRIKE_WINDOW + Duration::from_secs(2)));
    }
}
