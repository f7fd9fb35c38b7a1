//! BFT time under a Byzantine proposer (docs/adr/0002-bft-time.md): a validator that writes
//! block times hours ahead into its proposals cannot get them committed; every committed
//! block's time stays within `precision` of the honest clocks, and the network stays live.
//! Replay one seed with `OPAL_SIM_SEED=<seed> cargo test -p opal-sim --test time`.

use opal_consensus::time::TimeBounds;
use opal_sim::{run, seeds, Byzantine, SimConfig, SimReport};

const THREE_HOURS_MS: u64 = 3 * 3_600_000;

fn scenario(seed: u64, bounds: TimeBounds) -> SimConfig {
    let mut c = SimConfig::new(seed, 4);
    c.target_height = 24;
    c.start_jitter_ms = 0;
    c.byzantine = vec![(
        0,
        Byzantine::FutureTime {
            ahead_ms: THREE_HOURS_MS,
        },
    )];
    c.time_bounds = bounds;
    c
}

fn check(name: &str, count: u64, bounds: TimeBounds) -> Vec<SimReport> {
    seeds(count)
        .into_iter()
        .map(|seed| match run(scenario(seed, bounds)) {
            Ok(r) => r,
            Err(f) => panic!(
                "[{name}] {f}\nexact test: OPAL_SIM_SEED={} cargo test -p opal-sim --test time {name}",
                f.seed
            ),
        })
        .collect()
}

/// The largest amount by which a committed block's time exceeds the simulated true time at
/// which it was first committed.
fn max_lead_ms(r: &SimReport) -> u64 {
    r.block_times
        .iter()
        .zip(&r.commit_times)
        .map(|(t, c)| t.saturating_sub(*c))
        .max()
        .unwrap_or(0)
}

#[test]
fn a_proposer_pushing_time_hours_ahead_cannot_move_block_time() {
    let bounds = TimeBounds::default();
    let reports = check(
        "a_proposer_pushing_time_hours_ahead_cannot_move_block_time",
        12,
        bounds,
    );
    for r in &reports {
        assert!(r.chain.len() >= 24, "seed {}: live", r.seed);
        assert_eq!(r.block_times.len(), r.chain.len());
        // Block time is increasing and never ahead of true time by more than the precision.
        assert!(
            r.block_times.windows(2).all(|w| w[0] < w[1]),
            "seed {}: {:?}",
            r.seed,
            r.block_times
        );
        let lead = max_lead_ms(r);
        assert!(
            lead <= bounds.precision_ms,
            "seed {}: a committed block is {lead} ms ahead of true time",
            r.seed
        );
        // And never far behind it (the lower bound of `check_timely`, plus the latency).
        for (t, c) in r.block_times.iter().zip(&r.commit_times) {
            assert!(
                c - t.min(c) < 10_000,
                "seed {}: block time {t} at {c}",
                r.seed
            );
        }
    }
    // The attack was tried: the Byzantine validator's round-0 proposals were voted down, so
    // some heights needed a second round.
    assert!(
        reports.iter().any(|r| r.stats.max_round >= 1),
        "the Byzantine proposer never proposed"
    );
}

/// Without the bound (the old rule: only "after the parent") the same proposer moves the
/// chain's time three hours ahead: this is the attack the test above shows is closed.
#[test]
fn without_the_bound_the_same_proposer_moves_time_hours_ahead() {
    let unbounded = TimeBounds {
        precision_ms: u64::MAX / 4,
        ..TimeBounds::default()
    };
    let reports = check(
        "without_the_bound_the_same_proposer_moves_time_hours_ahead",
        4,
        unbounded,
    );
    assert!(
        // (less the few ms between building the block and committing it)
        reports
            .iter()
            .any(|r| max_lead_ms(r) >= THREE_HOURS_MS - 1_000),
        "the attack should succeed without the bound"
    );
}
