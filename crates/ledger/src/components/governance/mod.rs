//! Governance: stake-weighted proposals that change parameters, spend the treasury, change the
//! enclave allowlist, signal upgrades, or only record an opinion (docs/governance.md).
//!
//! Lifecycle: `SubmitProposal` with at least `min_initial_deposit_bps` of `min_deposit` opens a
//! deposit period; once deposits reach `min_deposit` the voting period opens (at once if the
//! first deposit is enough). `Vote` is accepted while block time is before the voting end; a
//! second vote by the same staker replaces the first. At end-block of the first block whose
//! time reaches the end, the votes are tallied ([`tally`]) and decided ([`tally::decide`]); a
//! passed proposal is executed in that same end-block, in a fork that is kept only if the
//! whole execution succeeds. A parameter change is therefore in force from the next block.
//! Deposits are refunded on every outcome but a veto, which burns them (total supply falls by
//! exactly that much). A deposit period that lapses refunds too.

pub mod tally;

use super::{accounts, read, staking, write, BlockFrame, Hook, TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::keys::gov as k;
use crate::param_table;
use crate::params::{AllParams, GovParams};
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::gov::{self as g, Measurement, ProposalContent, ProposalId, VoteOption};
use opal_types::{Action, Address, Amount};
use serde::{Deserialize, Serialize};

/// Where a proposal stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    DepositPeriod,
    VotingPeriod,
    Passed,
    Rejected,
    Vetoed,
    /// Voting ended short of quorum.
    NoQuorum,
    /// The deposit period ended short of `min_deposit`.
    Lapsed,
}

impl ProposalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::DepositPeriod => "deposit_period",
            ProposalStatus::VotingPeriod => "voting_period",
            ProposalStatus::Passed => "passed",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::Vetoed => "vetoed",
            ProposalStatus::NoQuorum => "no_quorum",
            ProposalStatus::Lapsed => "lapsed",
        }
    }
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ProposalStatus::DepositPeriod | ProposalStatus::VotingPeriod
        )
    }
}

/// Bonded stake behind each option, and all the stake that could have voted.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Tally {
    pub yes: Amount,
    pub no: Amount,
    pub abstain: Amount,
    pub no_with_veto: Amount,
    /// Tokens bonded to validators that are not jailed when the tally was taken.
    pub bonded: Amount,
}

/// A proposal as the chain stores it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Proposal {
    pub id: ProposalId,
    pub proposer: Address,
    pub title: String,
    pub summary: String,
    pub content: ProposalContent,
    pub status: ProposalStatus,
    pub submit_height: u64,
    pub submit_time_ms: u64,
    pub deposit_end_ms: u64,
    pub total_deposit: Amount,
    pub voting_start_ms: Option<u64>,
    pub voting_end_ms: Option<u64>,
    /// The tally that decided it (set when voting ends).
    pub final_tally: Option<Tally>,
    /// The height whose end-block decided it.
    pub decided_height: Option<u64>,
    /// Why a passed proposal could not be executed (state changed since it was submitted:
    /// the treasury ran short, the parameters became inconsistent, ...); `None` otherwise.
    pub execution_error: Option<String>,
}

/// The upgrade signal of the latest passed `Upgrade` proposal.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct UpgradePlan {
    pub name: String,
    pub height: u64,
    pub info: String,
    pub proposal: ProposalId,
}

pub fn params(s: &Overlay) -> Result<GovParams, LedgerError> {
    super::required(s, k::PARAMS, "governance params")
}

pub fn proposal(s: &Overlay, id: ProposalId) -> Result<Option<Proposal>, LedgerError> {
    read(s, &k::proposal(id))
}

/// Every proposal, oldest first.
pub fn proposals(s: &Overlay) -> Result<Vec<Proposal>, LedgerError> {
    super::read_all(s, k::PROPOSAL_PREFIX)
}

fn addr_suffix(key: &[u8]) -> Result<Address, LedgerError> {
    key.len()
        .checked_sub(20)
        .and_then(|i| <[u8; 20]>::try_from(&key[i..]).ok())
        .map(Address)
        .ok_or_else(|| LedgerError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "no address at the end of the key".into(),
        })
}

/// Every value under `prefix` whose key ends in an address, with that address.
fn by_address<T: BorshDeserialize>(
    s: &Overlay,
    prefix: &[u8],
) -> Result<Vec<(Address, T)>, LedgerError> {
    s.prefix(prefix)?
        .into_iter()
        .map(|(key, v)| {
            let value = T::try_from_slice(&v).map_err(|e| LedgerError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: e.to_string(),
            })?;
            Ok((addr_suffix(&key)?, value))
        })
        .collect()
}

/// The votes on proposal `id`, by voter address.
pub fn read_votes(s: &Overlay, id: ProposalId) -> Result<Vec<(Address, VoteOption)>, LedgerError> {
    by_address(s, &k::votes_prefix(id))
}

/// The deposits on proposal `id`, by depositor.
pub fn deposits(s: &Overlay, id: ProposalId) -> Result<Vec<(Address, Amount)>, LedgerError> {
    by_address(s, &k::deposits_prefix(id))
}

/// Deposits held for undecided proposals.
pub fn deposit_pool(s: &Overlay) -> Result<Amount, LedgerError> {
    Ok(read(s, k::DEPOSIT_POOL)?.unwrap_or_default())
}

/// The proposal that last set parameter `key` (`None`: genesis).
pub fn param_source(s: &Overlay, key: &str) -> Result<Option<ProposalId>, LedgerError> {
    read(s, &k::param_source(key))
}

/// The enclave measurements the `tee` tier trusts, in key order.
pub fn tee_measurements(s: &Overlay) -> Result<Vec<Measurement>, LedgerError> {
    super::read_all(s, k::TEE_PREFIX)
}

/// Whether the `tee` tier trusts `m`.
pub fn trusts_measurement(s: &Overlay, m: &Measurement) -> Result<bool, LedgerError> {
    Ok(s.get(&k::tee_measurement(m))?.is_some())
}

pub fn upgrade_plan(s: &Overlay) -> Result<Option<UpgradePlan>, LedgerError> {
    read(s, k::UPGRADE)
}

/// Deposit pool = every deposit record (a proposal's records are deleted when it is
/// decided, so this costs O(open deposits), not O(every proposal ever); checked with the
/// supply).
pub fn check_deposit_pool(s: &Overlay) -> Result<(), LedgerError> {
    let mut total: u128 = 0;
    for (_, a) in by_address::<Amount>(s, k::DEPOSIT_PREFIX)? {
        total = total
            .checked_add(a.0)
            .ok_or_else(|| LedgerError::Invariant("deposit sum overflows".into()))?;
    }
    let pool = deposit_pool(s)?;
    if pool.0 != total {
        return Err(LedgerError::Invariant(format!(
            "governance deposit pool is {pool} but the deposit records hold {total}"
        )));
    }
    Ok(())
}

fn pool_add(s: &mut Overlay, a: Amount) -> Result<Result<(), TxError>, LedgerError> {
    match deposit_pool(s)?.checked_add(a) {
        Ok(p) => {
            write(s, k::DEPOSIT_POOL, &p);
            Ok(Ok(()))
        }
        Err(_) => Ok(Err(TxError::Overflow)),
    }
}

fn pool_sub(s: &mut Overlay, a: Amount) -> Result<(), LedgerError> {
    let p = deposit_pool(s)?
        .checked_sub(a)
        .map_err(|e| LedgerError::Invariant(format!("governance deposit pool: {e}")))?;
    write(s, k::DEPOSIT_POOL, &p);
    Ok(())
}

/// Proposals in their deposit or voting period.
pub fn open_count(s: &Overlay) -> Result<u32, LedgerError> {
    Ok(read(s, k::ACTIVE)?.unwrap_or(0))
}

/// The checks of a proposal's content against the state: the parameters it sets are known,
/// in bounds and consistent; the spend fits the treasury; the upgrade is in the future.
/// Run at submission and again at execution (the state may have moved in between). For a
/// parameter change, the parameters it would put in force.
fn check_content(
    s: &Overlay,
    height: u64,
    content: &ProposalContent,
) -> Result<Result<Option<AllParams>, TxError>, LedgerError> {
    let invalid = |reason: String| Ok(Err(TxError::InvalidProposal { reason }));
    if let Err(reason) = content.check() {
        return invalid(reason);
    }
    match content {
        ProposalContent::ParamChange { changes } => {
            let next = tx_try!(param_table::apply(&AllParams::load(s)?, changes));
            tx_try!(check_power_fits(s, &next)?);
            return Ok(Ok(Some(next)));
        }
        ProposalContent::TreasurySpend { amount, .. } => {
            let t = accounts::treasury(s)?;
            if *amount > t {
                return Ok(Err(TxError::TreasuryShort {
                    amount: *amount,
                    treasury: t,
                }));
            }
        }
        ProposalContent::Upgrade { height: at, .. } => {
            if *at <= height {
                return invalid(format!(
                    "the upgrade height {at} is not after the current height {height}"
                ));
            }
        }
        ProposalContent::Text | ProposalContent::EnclaveMeasurements { .. } => {}
    }
    Ok(Ok(None))
}

/// A new `power_reduction` must keep the validator set's total power where the consensus
/// engine's arithmetic holds (staking refuses a set above `u64::MAX / 4`, which would stop
/// the chain): governance cannot halt the chain this way.
fn check_power_fits(s: &Overlay, next: &AllParams) -> Result<Result<(), TxError>, LedgerError> {
    let mut power: u128 = 0;
    for v in staking::validators(s)? {
        power = power.saturating_add(staking::power_of(v.tokens, &next.staking));
    }
    if power > (u64::MAX / 4) as u128 {
        return Ok(Err(TxError::ParamsInconsistent {
            reason: format!(
                "staking.power_reduction {} would give the validators {power} voting power, \
                 more than the consensus engine takes",
                next.staking.power_reduction
            ),
        }));
    }
    Ok(Ok(()))
}

fn submit(
    s: &mut Overlay,
    tx: TxCall,
    (title, summary, content, deposit): (&str, &str, &ProposalContent, Amount),
    ev: &mut Vec<Event>,
) -> TxOutcome {
    let (ctx, sender) = (tx.ctx, tx.sender);
    let p = params(s)?;
    if title.is_empty() || title.len() > g::MAX_TITLE || summary.len() > g::MAX_SUMMARY {
        return Ok(Err(TxError::InvalidProposal {
            reason: format!(
                "the title is 1 to {} bytes and the summary at most {}",
                g::MAX_TITLE,
                g::MAX_SUMMARY
            ),
        }));
    }
    tx_try!(check_content(s, ctx.height, content)?);
    let open = open_count(s)?;
    if open >= p.max_active_proposals {
        return Ok(Err(TxError::TooManyProposals {
            active: open,
            limit: p.max_active_proposals,
        }));
    }
    let min_initial = tx_try!(p
        .min_deposit
        .checked_bps(p.min_initial_deposit_bps)
        .map_err(|_| TxError::Overflow));
    if deposit < min_initial {
        return Ok(Err(TxError::DepositTooLow {
            min: min_initial,
            got: deposit,
        }));
    }
    let id: ProposalId = read(s, k::NEXT_ID)?.unwrap_or(1);
    write(s, k::NEXT_ID, &(id + 1));
    write(s, k::ACTIVE, &(open + 1));
    let deposit_end_ms = ctx.time_ms.saturating_add(p.max_deposit_period_ms);
    let prop = Proposal {
        id,
        proposer: *sender,
        title: title.to_string(),
        summary: summary.to_string(),
        content: content.clone(),
        status: ProposalStatus::DepositPeriod,
        submit_height: ctx.height,
        submit_time_ms: ctx.time_ms,
        deposit_end_ms,
        total_deposit: Amount::ZERO,
        voting_start_ms: None,
        voting_end_ms: None,
        final_tally: None,
        decided_height: None,
        execution_error: None,
    };
    write(s, &k::proposal(id), &prop);
    write(s, &k::deposit_queue(deposit_end_ms, id), &());
    ev.push(Event::ProposalSubmitted {
        id,
        proposer: *sender,
        kind: content.kind().to_string(),
    });
    add_deposit(s, tx, id, deposit, ev)
}

/// Take `amount` from the sender into proposal `id`'s deposit; open voting if it reaches
/// `min_deposit`.
fn add_deposit(
    s: &mut Overlay,
    tx: TxCall,
    id: ProposalId,
    amount: Amount,
    ev: &mut Vec<Event>,
) -> TxOutcome {
    let (ctx, sender) = (tx.ctx, tx.sender);
    let Some(mut prop) = proposal(s, id)? else {
        return Ok(Err(TxError::UnknownProposal { id }));
    };
    if prop.status != ProposalStatus::DepositPeriod {
        return Ok(Err(TxError::WrongProposalStatus {
            id,
            status: prop.status.as_str().into(),
            wanted: "deposit".into(),
        }));
    }
    if amount.is_zero() {
        if prop.total_deposit.is_zero() && params(s)?.min_initial_deposit_bps == 0 {
            // A proposal submitted with nothing, where nothing is the minimum.
            return Ok(Ok(()));
        }
        return Ok(Err(TxError::ZeroAmount));
    }
    tx_try!(accounts::debit(s, sender, amount)?);
    tx_try!(pool_add(s, amount)?);
    let key = k::deposit(id, sender);
    let mine: Amount = read(s, &key)?.unwrap_or_default();
    write(
        s,
        &key,
        &tx_try!(mine.checked_add(amount).map_err(|_| TxError::Overflow)),
    );
    prop.total_deposit = tx_try!(prop
        .total_deposit
        .checked_add(amount)
        .map_err(|_| TxError::Overflow));
    ev.push(Event::ProposalDeposit {
        id,
        depositor: *sender,
        amount,
        total: prop.total_deposit,
    });
    let p = params(s)?;
    if prop.total_deposit >= p.min_deposit {
        s.delete(k::deposit_queue(prop.deposit_end_ms, id));
        let end = ctx.time_ms.saturating_add(p.voting_period_ms);
        prop.status = ProposalStatus::VotingPeriod;
        prop.voting_start_ms = Some(ctx.time_ms);
        prop.voting_end_ms = Some(end);
        write(s, &k::voting_queue(end, id), &());
        ev.push(Event::VotingStarted {
            id,
            voting_end_ms: end,
        });
    }
    write(s, &k::proposal(id), &prop);
    Ok(Ok(()))
}

fn vote(
    s: &mut Overlay,
    tx: TxCall,
    id: ProposalId,
    option: VoteOption,
    ev: &mut Vec<Event>,
) -> TxOutcome {
    let (ctx, sender) = (tx.ctx, tx.sender);
    let Some(prop) = proposal(s, id)? else {
        return Ok(Err(TxError::UnknownProposal { id }));
    };
    if prop.status != ProposalStatus::VotingPeriod {
        return Ok(Err(match prop.voting_end_ms {
            Some(ended_ms) => TxError::VotingClosed { id, ended_ms },
            None => TxError::WrongProposalStatus {
                id,
                status: prop.status.as_str().into(),
                wanted: "voting".into(),
            },
        }));
    }
    let end = prop.voting_end_ms.unwrap_or(0);
    if ctx.time_ms >= end {
        return Ok(Err(TxError::VotingClosed { id, ended_ms: end }));
    }
    if !staking::has_voting_stake(s, sender)? {
        return Ok(Err(TxError::NotStaker { voter: *sender }));
    }
    let replaced = s.get(&k::vote(id, sender))?.is_some();
    write(s, &k::vote(id, sender), &option);
    ev.push(Event::Voted {
        id,
        voter: *sender,
        option,
        replaced,
    });
    Ok(Ok(()))
}

/// Refund every deposit of `id` to its depositor, or burn them all (veto).
fn settle_deposits(
    s: &mut Overlay,
    prop: &Proposal,
    burn: bool,
    ev: &mut Vec<Event>,
) -> Result<(), LedgerError> {
    let total = prop.total_deposit;
    pool_sub(s, total)?;
    for (who, amount) in deposits(s, prop.id)? {
        s.delete(k::deposit(prop.id, &who));
        if !burn {
            accounts::credit(s, &who, amount)?
                .map_err(|e| LedgerError::Invariant(format!("deposit refund: {e}")))?;
        }
    }
    if burn {
        super::reward_pool::burn(s, total)?;
        ev.push(Event::DepositsBurned {
            id: prop.id,
            amount: total,
        });
    } else if !total.is_zero() {
        ev.push(Event::DepositsRefunded {
            id: prop.id,
            amount: total,
        });
    }
    Ok(())
}

/// Carry out a passed proposal on `s` (a fork: the caller keeps it only on `Ok(Ok)`).
fn execute(
    s: &mut Overlay,
    height: u64,
    prop: &Proposal,
    ev: &mut Vec<Event>,
) -> Result<Result<(), TxError>, LedgerError> {
    let next = tx_try!(check_content(s, height, &prop.content)?);
    match &prop.content {
        ProposalContent::Text => {}
        ProposalContent::ParamChange { changes } => {
            if let Some(next) = next {
                next.store(s);
            }
            for c in changes {
                write(s, &k::param_source(&c.key), &prop.id);
                ev.push(Event::ParamChanged {
                    key: c.key.clone(),
                    value: c.value,
                    proposal: prop.id,
                });
            }
        }
        ProposalContent::TreasurySpend { to, amount } => {
            tx_try!(accounts::debit_treasury(s, *amount)?);
            tx_try!(accounts::credit(s, to, *amount)?);
            ev.push(Event::TreasurySpent {
                proposal: prop.id,
                to: *to,
                amount: *amount,
            });
        }
        ProposalContent::EnclaveMeasurements { add, remove } => {
            for m in add {
                write(s, &k::tee_measurement(m), m);
            }
            for m in remove {
                s.delete(k::tee_measurement(m));
            }
        }
        ProposalContent::Upgrade { name, height, info } => {
            write(
                s,
                k::UPGRADE,
                &UpgradePlan {
                    name: name.clone(),
                    height: *height,
                    info: info.clone(),
                    proposal: prop.id,
                },
            );
        }
    }
    Ok(Ok(()))
}

/// Close the deposit periods and voting periods that end by this block's time.
fn end_block(s: &mut Overlay, b: BlockFrame, ev: &mut Vec<Event>) -> Hook {
    let now = b.ctx.time_ms;
    let due = |s: &Overlay, prefix: &[u8]| -> Result<Vec<(Vec<u8>, ProposalId)>, LedgerError> {
        let mut out = Vec::new();
        for (key, _) in s.prefix(prefix)? {
            let rest = &key[prefix.len()..];
            let (Ok(end), Ok(id)) = (
                <[u8; 8]>::try_from(rest.get(..8).unwrap_or_default()),
                <[u8; 8]>::try_from(rest.get(8..).unwrap_or_default()),
            ) else {
                return Err(LedgerError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: "bad governance queue key".into(),
                });
            };
            if u64::from_be_bytes(end) > now {
                break; // ordered by end time
            }
            out.push((key.clone(), u64::from_be_bytes(id)));
        }
        Ok(out)
    };
    let mut closed = 0u32;
    for (key, id) in due(s, k::DEPOSIT_QUEUE_PREFIX)? {
        s.delete(key);
        let mut prop = proposal(s, id)?.ok_or_else(|| missing(id))?;
        prop.status = ProposalStatus::Lapsed;
        prop.decided_height = Some(b.ctx.height);
        settle_deposits(s, &prop, false, ev)?;
        write(s, &k::proposal(id), &prop);
        ev.push(Event::ProposalDecided {
            id,
            status: prop.status.as_str().into(),
        });
        closed += 1;
    }
    let p = params(s)?;
    for (key, id) in due(s, k::VOTING_QUEUE_PREFIX)? {
        s.delete(key);
        let mut prop = proposal(s, id)?.ok_or_else(|| missing(id))?;
        let t = tally::tally(s, id)?;
        let verdict = tally::decide(&t, &p);
        prop.status = match verdict {
            tally::Verdict::NoQuorum => ProposalStatus::NoQuorum,
            tally::Verdict::Vetoed => ProposalStatus::Vetoed,
            tally::Verdict::Passed => ProposalStatus::Passed,
            tally::Verdict::Rejected => ProposalStatus::Rejected,
        };
        prop.final_tally = Some(t.clone());
        prop.decided_height = Some(b.ctx.height);
        settle_deposits(s, &prop, verdict == tally::Verdict::Vetoed, ev)?;
        ev.push(Event::ProposalDecided {
            id,
            status: prop.status.as_str().into(),
        });
        if verdict == tally::Verdict::Passed {
            let mut fork = s.fork();
            let mut exec_events = Vec::new();
            match execute(&mut fork, b.ctx.height, &prop, &mut exec_events)? {
                Ok(()) => {
                    s.apply(fork);
                    ev.append(&mut exec_events);
                    ev.push(Event::ProposalExecuted { id, error: None });
                }
                Err(e) => {
                    prop.execution_error = Some(e.to_string());
                    ev.push(Event::ProposalExecuted {
                        id,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        // Votes stay: they are the record of who voted what.
        write(s, &k::proposal(id), &prop);
        closed += 1;
    }
    if closed > 0 {
        let open = open_count(s)?
            .checked_sub(closed)
            .ok_or_else(|| LedgerError::Invariant("more proposals closed than were open".into()))?;
        write(s, k::ACTIVE, &open);
    }
    Ok(())
}

fn missing(id: ProposalId) -> LedgerError {
    LedgerError::Corrupt {
        key: format!("gov/prop/{id}"),
        reason: "queued proposal missing".into(),
    }
}

/// The `governance` component ([`super::Component`]).
pub struct Governance;

impl super::Component for Governance {
    fn name(&self) -> &'static str {
        "governance"
    }

    fn init_chain(&self, s: &mut Overlay, g: &crate::Genesis) -> Hook {
        write(s, k::PARAMS, &g.governance);
        Ok(())
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        match tx.action {
            Action::SubmitProposal {
                title,
                summary,
                content,
                deposit,
            } => submit(s, tx, (title, summary, content, *deposit), ev),
            Action::DepositProposal { proposal, amount } => {
                add_deposit(s, tx, *proposal, *amount, ev)
            }
            Action::Vote { proposal, option } => vote(s, tx, *proposal, *option, ev),
            other => super::not_routed_here(self.name(), other),
        }
    }

    fn end_block(&self, s: &mut Overlay, b: BlockFrame, ev: &mut Vec<Event>) -> Hook {
        end_block(s, b, ev)
    }
}
