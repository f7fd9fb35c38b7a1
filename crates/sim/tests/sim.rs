//! Seeded multi-validator scenarios in one process (see crates/sim and docs/network.md).
//!
//! Each test runs many seeds; a failure prints the seed and the command that replays it:
//! `OPAL_SIM_SEED=<seed> cargo test -p opal-sim --test sim <test>`. More seeds:
//! `OPAL_SIM_SEEDS=1000 cargo test -p opal-sim --release --test sim`.
//!
//! Every run checks agreement (no two honest validators commit different blocks at a height),
//! that every honest decision carries a valid commit certificate and extends the chain, and
//! liveness (every honest validator that is up reaches the target height once the last
//! fault has happened). The tests below add scenario-specific checks.

use opal_sim::{run, Byzantine, FailureKind, Fault, Rng, SimConfig, SimReport};

fn check(name: &str, count: u64, make: impl Fn(u64) -> SimConfig) -> Vec<SimReport> {
    opal_sim::check_seeds("sim", name, count, make)
}

/// A second stream from the seed, for choices the test makes (fault times, victims).
fn choices(seed: u64) -> Rng {
    Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5157)
}

#[test]
fn four_validators_agree_on_a_good_network() {
    let reports = check("four_validators_agree_on_a_good_network", 30, |seed| {
        let mut c = SimConfig::new(seed, 4);
        c.target_height = 20;
        // All start together, so no proposal reaches a validator before it has started.
        c.start_jitter_ms = 0;
        c
    });
    for r in &reports {
        assert!(r.chain.len() >= 20);
        assert!(r.heights.iter().all(|h| *h >= 20), "{:?}", r.heights);
        // With latency far below the propose timeout every height decides in round 0.
        assert_eq!(r.stats.max_round, 0, "seed {}", r.seed);
        assert!(r.evidence.is_empty(), "no one misbehaved");
    }
}

#[test]
fn same_seed_same_run() {
    let make = |seed| {
        let mut c = SimConfig::new(seed, 4);
        c.loss = 0.1;
        c.duplicate = 0.05;
        c.latency_ms = (1, 300);
        c.faults = vec![(700, Fault::Crash(2)), (2_500, Fault::Restart(2))];
        c
    };
    let a = run(make(7)).unwrap();
    let b = run(make(7)).unwrap();
    let c = run(make(8)).unwrap();
    assert_eq!(a.digest, b.digest, "a seed must replay the same run");
    assert_eq!(a.stats, b.stats);
    assert_eq!(a.chain, b.chain);
    assert_ne!(a.digest, c.digest, "another seed gives another run");
}

#[test]
fn lossy_reordering_duplicating_network() {
    check("lossy_reordering_duplicating_network", 30, |seed| {
        let mut ch = choices(seed);
        let mut c = SimConfig::new(seed, 4);
        c.loss = ch.range(5, 25) as f64 / 100.0;
        c.duplicate = 0.05;
        c.latency_ms = (1, ch.range(50, 400));
        c.target_height = 12;
        c
    });
}

#[test]
fn partitioned_minority_rejoins_and_catches_up() {
    let reports = check("partitioned_minority_rejoins_and_catches_up", 30, |seed| {
        let mut ch = choices(seed);
        let mut c = SimConfig::new(seed, 4);
        let victim = ch.below(4) as usize;
        let others: Vec<usize> = (0..4).filter(|i| *i != victim).collect();
        let start = ch.range(200, 2_000);
        let heal = start + ch.range(3_000, 10_000);
        c.faults = vec![
            (start, Fault::Partition(vec![vec![victim], others])),
            (heal, Fault::Heal),
        ];
        c.target_height = 40;
        c
    });
    // The minority could not commit alone: what it has, it got from the majority after
    // the heal, and it reached the target like everyone else (checked by the run).
    for r in &reports {
        assert!(r.heights.iter().all(|h| *h >= 40));
        assert!(r.stats.dropped_partition > 0);
    }
}

#[test]
fn even_split_halts_without_fork_and_resumes_after_heal() {
    check(
        "even_split_halts_without_fork_and_resumes_after_heal",
        30,
        |seed| {
            let mut ch = choices(seed);
            let mut c = SimConfig::new(seed, 4);
            let a = ch.below(4) as usize;
            let b = (a + 1 + ch.below(3) as usize) % 4;
            let rest: Vec<usize> = (0..4).filter(|i| *i != a && *i != b).collect();
            let start = ch.range(200, 2_000);
            c.faults = vec![
                (start, Fault::Partition(vec![vec![a, b], rest])),
                (start + ch.range(2_000, 15_000), Fault::Heal),
            ];
            c.target_height = 10;
            c
        },
    );
}

#[test]
fn crashes_and_restarts_one_at_a_time() {
    let reports = check("crashes_and_restarts_one_at_a_time", 30, |seed| {
        let mut ch = choices(seed);
        let mut c = SimConfig::new(seed, 4);
        c.latency_ms = (1, 100);
        let mut t = 0;
        for _ in 0..ch.range(1, 4) {
            let v = ch.below(4) as usize;
            // Crash at any moment of a height (mid-round crashes exercise WAL replay).
            t += ch.range(100, 3_000);
            c.faults.push((t, Fault::Crash(v)));
            t += ch.range(10, 6_000);
            c.faults.push((t, Fault::Restart(v)));
        }
        c.target_height = 25;
        c
    });
    let replays: u64 = reports.iter().map(|r| r.stats.wal_replays).sum();
    let synced: u64 = reports.iter().map(|r| r.stats.sync_decisions).sum();
    assert!(
        replays > 0,
        "some crash fell inside a height and its WAL was replayed"
    );
    assert!(synced > 0, "restarted validators caught up by value sync");
}

#[test]
fn two_of_four_down_halts_then_resumes_when_one_returns() {
    check(
        "two_of_four_down_halts_then_resumes_when_one_returns",
        20,
        |seed| {
            let mut ch = choices(seed);
            let mut c = SimConfig::new(seed, 4);
            let a = ch.below(4) as usize;
            let b = (a + 1 + ch.below(3) as usize) % 4;
            let t = ch.range(300, 2_000);
            c.faults = vec![
                (t, Fault::Crash(a)),
                (t + ch.range(0, 500), Fault::Crash(b)),
                (t + ch.range(3_000, 10_000), Fault::Restart(a)),
            ];
            c.allowed_down_at_end = vec![b];
            c.target_height = 12;
            c
        },
    );
}

/// Evidence in a report, decoded: (offender keys of each double vote, of each double proposal).
fn offenders(r: &SimReport) -> (Vec<[u8; 32]>, Vec<[u8; 32]>) {
    let mut votes = Vec::new();
    let mut proposals = Vec::new();
    for (_, bytes) in &r.evidence {
        let ev: opal_consensus::codec::Evidence = borsh::from_slice(bytes).unwrap();
        for (a, b) in &ev.double_votes {
            assert_eq!(a.vote.validator, b.vote.validator);
            assert_eq!((a.vote.height, a.vote.round), (b.vote.height, b.vote.round));
            assert_ne!(a.vote.value, b.vote.value);
            votes.push(a.vote.validator);
        }
        for (a, b) in &ev.double_proposals {
            assert_eq!(a.proposer, b.proposer);
            assert_ne!(a.value, b.value);
            proposals.push(a.proposer);
        }
    }
    (votes, proposals)
}

#[test]
fn equivocating_validator_cannot_fork_and_is_caught() {
    let reports = check(
        "equivocating_validator_cannot_fork_and_is_caught",
        30,
        |seed| {
            let mut ch = choices(seed);
            let mut c = SimConfig::new(seed, 4);
            c.byzantine = vec![(ch.below(4) as usize, Byzantine::Equivocate)];
            c.latency_ms = (1, ch.range(20, 200));
            c.target_height = 20;
            c
        },
    );
    let mut proposal_evidence = 0;
    for r in &reports {
        let (votes, proposals) = offenders(r);
        let cfg_byz = {
            let mut ch = choices(r.seed);
            ch.below(4) as usize
        };
        let byz_key = r.public_keys[cfg_byz];
        assert!(
            !votes.is_empty(),
            "seed {}: double votes were seen by honest validators",
            r.seed
        );
        assert!(
            votes.iter().chain(&proposals).all(|k| *k == byz_key),
            "seed {}: only the Byzantine validator is ever accused",
            r.seed
        );
        proposal_evidence += proposals.len();
        // What the node would submit on chain: every pair converts and validates.
        for (_, bytes) in &r.evidence {
            let list = opal_node::app::evidence_from_engine(bytes).unwrap();
            for ev in list {
                ev.validate("opal-sim")
                    .expect("engine evidence validates in the ledger");
                assert!(ev.validate("another-chain").is_err());
            }
        }
    }
    assert!(
        proposal_evidence > 0,
        "conflicting proposals were reported too"
    );
}

#[test]
fn seven_validators_with_equivocator_crash_and_loss() {
    check(
        "seven_validators_with_equivocator_crash_and_loss",
        15,
        |seed| {
            let mut ch = choices(seed);
            // f = 2: one Byzantine and one crashed validator at a time.
            let mut c = SimConfig::new(seed, 7);
            c.powers = (0..7).map(|_| ch.range(5, 20)).collect();
            // The two smallest stakes are faulty: together always under a third of the power.
            let mut order: Vec<usize> = (0..7).collect();
            order.sort_by_key(|i| (c.powers[*i], *i));
            let (byz, victim) = (order[0], order[1]);
            assert!(3 * (c.powers[byz] + c.powers[victim]) < c.powers.iter().sum::<u64>());
            c.byzantine = vec![(byz, Byzantine::Equivocate)];
            let t = ch.range(200, 2_000);
            c.faults = vec![
                (t, Fault::Crash(victim)),
                (t + ch.range(1_000, 6_000), Fault::Restart(victim)),
            ];
            c.loss = 0.05;
            c.latency_ms = (1, 150);
            c.target_height = 12;
            c
        },
    );
}

#[test]
fn one_split_brain_validator_cannot_fork() {
    check("one_split_brain_validator_cannot_fork", 20, |seed| {
        let mut ch = choices(seed);
        let mut c = SimConfig::new(seed, 4);
        c.byzantine = vec![(ch.below(4) as usize, Byzantine::SplitBrain)];
        c.target_height = 15;
        c
    });
}

/// The checks are not vacuous: with two colluding validators of four (half the power, more
/// than the third BFT tolerates) honest validators are driven to commit different blocks,
/// and the run fails with an agreement violation that names its seed.
#[test]
fn agreement_check_catches_a_fork_beyond_the_fault_threshold() {
    let mut forks = 0;
    for seed in 1..=10u64 {
        let mut c = SimConfig::new(seed, 4);
        // One Byzantine validator in each half, so each half has an honest validator to fool.
        c.byzantine = vec![(0, Byzantine::SplitBrain), (2, Byzantine::SplitBrain)];
        c.target_height = 10;
        c.max_sim_ms = 60_000;
        match run(c) {
            Err(f) if f.kind == FailureKind::Agreement => {
                assert!(f.to_string().contains(&format!("OPAL_SIM_SEED={seed}")));
                println!("seed {seed}: {}", f.reason);
                forks += 1;
            }
            // Liveness may also break once the Byzantine power exceeds a third.
            Err(f) => assert_eq!(f.kind, FailureKind::Liveness, "{f}"),
            Ok(_) => {}
        }
    }
    println!("{forks} of 10 seeds forked");
    assert!(
        forks > 0,
        "no fork with half the power Byzantine: the check would be vacuous"
    );
}

#[test]
fn liveness_failure_names_its_seed() {
    let mut c = SimConfig::new(4242, 4);
    c.faults = vec![(500, Fault::Crash(1)), (500, Fault::Crash(2))];
    c.max_sim_ms = 20_000;
    let f = run(c).expect_err("two of four down forever cannot reach the target");
    assert_eq!(f.kind, FailureKind::Liveness);
    assert!(f.to_string().contains("OPAL_SIM_SEED=4242"), "{f}");
}
