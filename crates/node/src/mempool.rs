//! The mempool: admitted transactions waiting for a block, per sender in nonce order.
//!
//! Limits: at most `max_txs` transactions and `max_bytes` in all, and `max_per_sender` from one
//! sender (so one account cannot fill it). When it is full, a transaction paying a higher fee
//! per byte evicts the cheapest one that is last in its sender's queue (so no other sender's
//! nonce sequence is broken, and never the newcomer's own sender); the evicted one's status
//! says `evicted`. Upkeep after each block drops what was included or became stale, and what
//! waited longer than `max_age` (status `expired`, with the rest of its sender's queue). On a
//! clean shutdown the node writes what is pending to `data/mempool.borsh` and admits it again,
//! through every check, when it starts (`run.rs`).

use crate::error::AdmitError;
use opal_ledger::TxError;
use opal_types::{Action, Address, Amount, Hash, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// Limits of the mempool.
#[derive(Debug, Clone, Copy)]
pub struct MempoolLimits {
    pub max_txs: usize,
    pub max_bytes: usize,
    /// Pending transactions of one sender.
    pub max_per_sender: usize,
    /// How long a transaction may wait.
    pub max_age: std::time::Duration,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: 50_000,
            max_bytes: 64 << 20,
            max_per_sender: 5_000,
            max_age: std::time::Duration::from_secs(600),
        }
    }
}

struct Entry {
    tx: Arc<Transaction>,
    hash: Hash,
    len: usize,
    spend: Amount,
    admitted: std::time::Instant,
}

/// Admitted transactions. Senders are kept in a `BTreeMap` so reaping order is deterministic.
#[derive(Default)]
pub struct Mempool {
    limits: MempoolLimits,
    by_sender: BTreeMap<Address, BTreeMap<u64, Entry>>,
    by_hash: HashMap<Hash, (Address, u64)>,
    bytes: usize,
    /// Each sender's last transaction by fee per KiB: where eviction looks for the cheapest
    /// tail in O(log n) (the exact comparison is made with the one it finds).
    tails: BTreeSet<(u128, Address)>,
    tail_of: HashMap<Address, u128>,
    /// Recently refused at block building, so a status query can say why (bounded).
    /// (hash, reason, code) of the transactions block building dropped lately.
    recently_dropped: VecDeque<(Hash, String, &'static str)>,
}

const DROPPED_MEMORY: usize = 10_000;

/// What the mempool needs to know of the sender's committed account.
pub struct SenderState {
    pub nonce: u64,
    pub balance: Amount,
}

fn spend_of(tx: &Transaction) -> Result<Amount, TxError> {
    // What the transaction can take from the sender's balance, besides the fee.
    let amount = match &tx.body.action {
        Action::Transfer { amount, .. }
        | Action::CreateValidator { amount, .. }
        | Action::Delegate { amount, .. }
        | Action::BondRole { amount, .. }
        | Action::FundEscrow { amount, .. }
        | Action::DepositProposal { amount, .. } => *amount,
        Action::SubmitProposal { deposit, .. } => *deposit,
        Action::PlaceOrder { order } => match order.side {
            opal_types::market::Side::Buy => order
                .price
                .0
                .checked_mul(order.shares as u128)
                .map(Amount)
                .ok_or(TxError::Overflow)?,
            opal_types::market::Side::Sell => Amount::ZERO,
        },
        Action::Undelegate { .. }
        | Action::UnbondRole { .. }
        | Action::Unjail
        | Action::SubmitEvidence { .. }
        | Action::RegisterDataset { .. }
        | Action::RegisterModel { .. }
        | Action::TransferModel { .. }
        | Action::DeclareService { .. }
        | Action::CloseEscrow { .. }
        | Action::WithdrawEscrow { .. }
        | Action::SettleReceipts { .. }
        | Action::RevealData { .. }
        | Action::Resolve { .. }
        | Action::PublishZkKey { .. }
        | Action::SettleProved { .. }
        | Action::CommitteeVote { .. }
        | Action::Vote { .. }
        | Action::WithdrawRewards
        | Action::SetCommission { .. }
        | Action::SplitShares { .. }
        | Action::TransferShares { .. }
        | Action::ClaimShares { .. }
        | Action::CancelOrder { .. } => Amount::ZERO,
        // A challenge without a fraud proof locks a bond (a chain parameter the mempool does
        // not read); the ledger refuses it if the balance falls short.
        Action::Challenge { .. } => Amount::ZERO,
    };
    amount
        .checked_add(tx.body.fee)
        .map_err(|_| TxError::Overflow)
}

/// Whether `fee` over `len` bytes is strictly more per byte than `other_fee` over `other_len`
/// (compared as cross products, without division).
fn pays_more(fee: Amount, len: usize, other_fee: Amount, other_len: usize) -> bool {
    fee.0.saturating_mul(other_len.max(1) as u128) > other_fee.0.saturating_mul(len.max(1) as u128)
}

impl Mempool {
    pub fn new(limits: MempoolLimits) -> Mempool {
        Mempool {
            limits,
            ..Default::default()
        }
    }

    fn limits(&self) -> MempoolLimits {
        self.limits
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn contains(&self, h: &Hash) -> bool {
        self.by_hash.contains_key(h)
    }

    /// How many transactions of `addr` are waiting with a nonce at or above `committed_nonce`.
    pub fn pending_count(&self, addr: &Address, committed_nonce: u64) -> usize {
        self.by_sender
            .get(addr)
            .map_or(0, |m| m.range(committed_nonce..).count())
    }

    /// Why block building dropped `h`, and the error's code (`earlier_dropped` when it went
    /// because an earlier transaction of its sender did).
    pub fn dropped_reason(&self, h: &Hash) -> Option<(String, &'static str)> {
        self.recently_dropped
            .iter()
            .rev()
            .find(|(x, _, _)| x == h)
            .map(|(_, r, c)| (r.clone(), *c))
    }

    /// Admit `tx` (its stateless checks, signature included, already passed) given the sender's
    /// committed account. The nonce must continue the sender's pending sequence, and the balance
    /// must cover every pending spend plus this one.
    pub fn admit(
        &mut self,
        tx: Transaction,
        len: usize,
        sender: SenderState,
    ) -> Result<Hash, AdmitError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(AdmitError::AlreadyKnown(hash.to_hex()));
        }
        let limits = self.limits();
        let addr = tx.sender();
        // Only pending transactions at or above the committed nonce count: a block may have been
        // committed and not yet pruned from here (the API reads state, then locks the mempool).
        let live = self.by_sender.get(&addr).map(|p| p.range(sender.nonce..));
        let pending_count = live.clone().map_or(0, |r| r.count()) as u64;
        let expected = sender.nonce + pending_count;
        if tx.body.nonce != expected {
            return Err(TxError::BadNonce {
                address: addr,
                expected,
                got: tx.body.nonce,
            }
            .into());
        }
        let mut committed_spend = Amount::ZERO;
        for (_, e) in live.into_iter().flatten() {
            committed_spend = committed_spend
                .checked_add(e.spend)
                .map_err(|_| TxError::Overflow)?;
        }
        let spend = spend_of(&tx)?;
        let need = committed_spend
            .checked_add(spend)
            .map_err(|_| TxError::Overflow)?;
        if need > sender.balance {
            return Err(TxError::InsufficientFunds {
                address: addr,
                need,
                have: sender.balance,
            }
            .into());
        }
        if pending_count as usize >= limits.max_per_sender {
            return Err(AdmitError::SenderLimit(limits.max_per_sender));
        }
        // Full: make room by evicting one cheaper transaction, or refuse (nothing is evicted
        // unless that makes room).
        if self.by_hash.len() >= limits.max_txs || self.bytes + len > limits.max_bytes {
            let victim = self.cheapest_tail(&addr).filter(|&(_, fee, l)| {
                pays_more(tx.body.fee, len, fee, l)
                    && self.by_hash.len() - 1 < limits.max_txs
                    && self.bytes - l + len <= limits.max_bytes
            });
            let Some((h, _, _)) = victim else {
                return Err(AdmitError::MempoolFull(self.by_hash.len()));
            };
            self.remove(&h);
            self.note_dropped(
                h,
                "evicted from a full mempool by a transaction paying a higher fee per byte".into(),
                "evicted",
            );
        }
        let nonce = tx.body.nonce;
        self.by_sender.entry(addr).or_default().insert(
            nonce,
            Entry {
                tx: Arc::new(tx),
                hash,
                len,
                spend,
                admitted: std::time::Instant::now(),
            },
        );
        self.by_hash.insert(hash, (addr, nonce));
        self.retail(addr);
        self.bytes += len;
        Ok(hash)
    }

    /// Up to `max` transactions for a block: senders in address order, each sender's in nonce order.
    pub fn reap(&self, max: usize) -> Vec<Transaction> {
        let mut out = Vec::new();
        for txs in self.by_sender.values() {
            for e in txs.values() {
                if out.len() >= max {
                    return out;
                }
                out.push((*e.tx).clone());
            }
        }
        out
    }

    /// The transaction with the lowest fee per byte (to the KiB) among those last in their
    /// sender's queue, other than `except`'s: (hash, fee, encoded length).
    fn cheapest_tail(&self, except: &Address) -> Option<(Hash, Amount, usize)> {
        let (_, addr) = self.tails.iter().find(|(_, a)| a != except)?;
        let e = self.by_sender.get(addr)?.values().next_back()?;
        Some((e.hash, e.tx.body.fee, e.len))
    }

    /// Re-index `addr`'s last transaction (after its queue changed).
    fn retail(&mut self, addr: Address) {
        if let Some(old) = self.tail_of.remove(&addr) {
            self.tails.remove(&(old, addr));
        }
        if let Some(e) = self
            .by_sender
            .get(&addr)
            .and_then(|m| m.values().next_back())
        {
            let key = e.tx.body.fee.0.saturating_mul(1024) / e.len.max(1) as u128;
            self.tails.insert((key, addr));
            self.tail_of.insert(addr, key);
        }
    }

    fn note_dropped(&mut self, h: Hash, reason: String, code: &'static str) {
        self.recently_dropped.push_back((h, reason, code));
        if self.recently_dropped.len() > DROPPED_MEMORY {
            self.recently_dropped.pop_front();
        }
    }

    fn remove(&mut self, h: &Hash) -> bool {
        let Some((addr, nonce)) = self.by_hash.remove(h) else {
            return false;
        };
        if let Some(m) = self.by_sender.get_mut(&addr) {
            if let Some(e) = m.remove(&nonce) {
                self.bytes -= e.len;
            }
            if m.is_empty() {
                self.by_sender.remove(&addr);
            }
        }
        self.retail(addr);
        true
    }

    /// After a block: drop the included transactions, and any pending transaction whose nonce is
    /// now below its sender's committed nonce (`nonce_of` gives it).
    pub fn on_committed(&mut self, included: &[Hash], nonce_of: impl Fn(&Address) -> Option<u64>) {
        let mut touched = std::collections::BTreeSet::new();
        for h in included {
            if let Some((addr, _)) = self.by_hash.get(h) {
                touched.insert(*addr);
            }
            self.remove(h);
        }
        for addr in touched {
            let Some(n) = nonce_of(&addr) else { continue };
            let stale: Vec<Hash> = self
                .by_sender
                .get(&addr)
                .map(|m| m.range(..n).map(|(_, e)| e.hash).collect())
                .unwrap_or_default();
            for h in stale {
                self.remove(&h);
            }
        }
    }

    /// Drop what has waited longer than `max_age` at `now`, with everything after it from the
    /// same sender (those nonces can no longer be reached). A sender's queue is in nonce order,
    /// which is admission order, so only the head of each queue is looked at. Returns how many
    /// went.
    pub fn expire(&mut self, now: std::time::Instant) -> usize {
        let max_age = self.limits.max_age;
        let heads: Vec<Hash> = self
            .by_sender
            .values()
            .filter_map(|q| q.values().next())
            .filter(|e| now.saturating_duration_since(e.admitted) > max_age)
            .map(|e| e.hash)
            .collect();
        let mut gone = 0;
        for h in heads {
            let Some((addr, nonce)) = self.by_hash.get(&h).copied() else {
                continue;
            };
            let queue: Vec<Hash> = self
                .by_sender
                .get(&addr)
                .map(|m| m.range(nonce..).map(|(_, e)| e.hash).collect())
                .unwrap_or_default();
            for x in queue {
                self.remove(&x);
                gone += 1;
                let (reason, code) = if x == h {
                    (
                        format!("waited in the mempool longer than {} s", max_age.as_secs()),
                        "expired",
                    )
                } else {
                    (
                        "an earlier transaction of the same sender expired".into(),
                        "earlier_dropped",
                    )
                };
                self.note_dropped(x, reason, code);
            }
        }
        gone
    }

    /// Drop transactions that block building found invalid, and everything after them from the
    /// same sender (their nonces can no longer be reached).
    pub fn drop_invalid(&mut self, rejected: &[(Hash, TxError)]) {
        for (h, err) in rejected {
            let Some((addr, nonce)) = self.by_hash.get(h).copied() else {
                continue;
            };
            // A nonce already used is stale: only that transaction goes.
            if matches!(err, TxError::BadNonce { expected, got, .. } if got < expected) {
                self.remove(h);
                continue;
            }
            let later: Vec<Hash> = self
                .by_sender
                .get(&addr)
                .map(|m| m.range(nonce..).map(|(_, e)| e.hash).collect())
                .unwrap_or_default();
            for x in later {
                self.remove(&x);
                let (reason, code) = if x == *h {
                    (err.to_string(), err.code())
                } else {
                    (
                        "an earlier transaction of the same sender was dropped".into(),
                        "earlier_dropped",
                    )
                };
                self.note_dropped(x, reason, code);
            }
        }
    }
}
