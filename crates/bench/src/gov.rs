//! `gov`: what governance and rewards cost with many delegators. Genesis with `--validators`
//! validators and `--delegators` funded accounts; every account delegates to a validator, all
//! through real transactions in blocks on a store on disk. Timed:
//! - `execute_block` of empty blocks: each mints and distributes the block's emission to every
//!   validator and, lazily, their delegators (O(validators), whatever the delegators);
//! - after a proposal opens and every validator and delegator votes, `governance::tally::tally`
//!   on the committed state (repeated), and the `execute_block` of the block whose end-block
//!   closes the voting period (tally, decision, refund);
//! - a block in which every delegator withdraws its rewards.

use crate::common;
use crate::common::{key, tx, Chain};
use crate::stats::{median, ms, table};
use anyhow::Context;
use opal_ledger::components::governance::{self, tally};
use opal_ledger::{Genesis, GenesisAccount, GenesisValidator, Params};
use opal_state::Overlay;
use opal_types::gov::{ProposalContent, VoteOption};
use opal_types::{Action, Amount, SecretKey, Transaction};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Validators (each votes).
    #[arg(long, default_value_t = 100)]
    pub validators: u64,
    /// Delegators (each delegates, then votes).
    #[arg(long, default_value_t = 10_000)]
    pub delegators: u64,
    /// Timed repetitions of the tally.
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
}

const CHAIN_ID: &str = common::CHAIN_ID;
const T0: u64 = 1_700_000_000_000;
const VOTING_MS: u64 = 60_000;

pub fn run(mut args: Args, quick: bool) -> anyhow::Result<()> {
    if quick {
        args.validators = 4;
        args.delegators = 200;
        args.reps = 2;
    }
    let (nv, nd) = (args.validators.max(1), args.delegators);
    let vals: Vec<SecretKey> = (0..nv).map(|i| key(1_000_000 + i)).collect();
    let dels: Vec<SecretKey> = (0..nd).map(key).collect();
    let mut params = Params::default();
    params.max_block_txs = (nd + nv + 10) as u32;
    params.max_block_bytes = 3 * 1024 * 1024;
    let mut genesis = Genesis {
        chain_id: CHAIN_ID.into(),
        genesis_time_ms: T0,
        params,
        staking: Default::default(),
        inference: Default::default(),
        governance: Default::default(),
        rewards: Default::default(),
        accounts: dels
            .iter()
            .chain(&vals)
            .map(|k| GenesisAccount {
                address: k.address(),
                balance: Amount(1_000_000_000_000),
            })
            .collect(),
        validators: vals
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisValidator {
                name: format!("v{i}"),
                public_key: k.public_key(),
                operator: None,
                stake: Amount(1_000_000_000_000),
                vrf_key: k.vrf_public_key(),
            })
            .collect(),
    };
    genesis.governance.voting_period_ms = VOTING_MS;
    genesis.staking.max_validators = nv as u32;
    let (mut c, _dir) = Chain::start(&genesis, &vals[0])?;

    eprintln!("gov: {nd} delegations to {nv} validators...");
    let delegations: Vec<Transaction> = dels
        .iter()
        .enumerate()
        .map(|(i, k)| {
            tx(
                k,
                0,
                Action::Delegate {
                    validator: vals[i % nv as usize].address(),
                    amount: Amount(1_000_000),
                },
            )
        })
        .collect();
    c.block(delegations)?;
    let mut empty = Vec::with_capacity(args.reps);
    for _ in 0..args.reps {
        empty.push(c.block(vec![])?);
    }
    let proposer = &vals[0];
    c.block(vec![tx(
        proposer,
        0,
        Action::SubmitProposal {
            title: "bench".into(),
            summary: String::new(),
            content: ProposalContent::Text,
            deposit: genesis.governance.min_deposit,
        },
    )])?;
    let id = 1;
    eprintln!("gov: {} votes...", nd + nv);
    let mut votes: Vec<Transaction> = vals
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let nonce = u64::from(i == 0);
            tx(
                k,
                nonce,
                Action::Vote {
                    proposal: id,
                    option: VoteOption::Yes,
                },
            )
        })
        .collect();
    votes.extend(dels.iter().enumerate().map(|(i, k)| {
        let option = if i % 3 == 0 {
            VoteOption::No
        } else {
            VoteOption::Yes
        };
        tx(
            k,
            1,
            Action::Vote {
                proposal: id,
                option,
            },
        )
    }));
    c.block(votes)?;

    let o = Overlay::new(c.store.snapshot()?);
    let counted = governance::read_votes(&o, id)?.len();
    let mut times = Vec::with_capacity(args.reps);
    let mut t = tally::tally(&o, id)?;
    for _ in 0..args.reps {
        let s = Instant::now();
        t = tally::tally(&o, id)?;
        times.push(ms(s.elapsed()));
    }
    // The block whose time reaches the voting end: its end-block tallies and decides.
    let end = governance::proposal(&o, id)?
        .and_then(|p| p.voting_end_ms)
        .context("voting started")?;
    c.time_ms = end - 1_000;
    let close = c.block(vec![])?;
    eprintln!("gov: {nd} withdrawals...");
    let withdrawals: Vec<Transaction> = dels
        .iter()
        .map(|k| tx(k, 2, Action::WithdrawRewards))
        .collect();
    let withdraw = c.block(withdrawals)?;
    let o = Overlay::new(c.store.snapshot()?);
    let status = governance::proposal(&o, id)?
        .map(|p| p.status.as_str())
        .unwrap_or("-");

    println!(
        "\ngov: {nv} validators, {nd} delegators, {counted} votes (every delegator votes itself, a third of them against its validator)"
    );
    table(
        &["what", "median ms", "runs"],
        &[
            vec![
                "execute_block of an empty block (emission to every validator)".into(),
                format!("{:.1}", median(&empty)),
                empty.len().to_string(),
            ],
            vec![
                "tally::tally (committed state, on disk)".into(),
                format!("{:.1}", median(&times)),
                times.len().to_string(),
            ],
            vec![
                "execute_block of the empty block that closes voting".into(),
                format!("{close:.1}"),
                "1".into(),
            ],
            vec![
                format!("execute_block of {nd} WithdrawRewards"),
                format!("{withdraw:.1}"),
                "1".into(),
            ],
        ],
    );
    println!(
        "tally: yes {} no {} of {} bonded; proposal {id} {status}",
        t.yes, t.no, t.bonded
    );
    Ok(())
}
