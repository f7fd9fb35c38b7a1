//! The receipt log: every receipt the worker signed and the ledger has not settled yet, in
//! memory and in `data/receipts.pending` (one hex envelope per line, fsynced before the reply
//! leaves), so a crash never loses what the node is owed.

use crate::error::ServeError;
use crate::fsio;
use opal_ledger::components::inference::{self, Unsettled};
use opal_ledger::LedgerError;
use opal_state::Overlay;
use opal_types::receipt::ReceiptEnvelope;
use opal_types::{Address, Amount, Hash, Receipt, Tier};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

/// Most unsettled receipts a node holds before it refuses new requests.
pub const MAX_PENDING: usize = 100_000;

/// One unsettled receipt, and the settlement transaction carrying it with the clock reading
/// when it was submitted.
struct Entry {
    receipt: Receipt,
    submitted: Option<(Hash, u64)>,
}

/// Where one unsettled receipt stands, for the settlement pass (no receipt copied).
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    pub id: Hash,
    /// The request's expiry.
    pub expires_ms: u64,
    /// The settlement transaction carrying it, and the clock reading when it was submitted.
    pub submitted: Option<(Hash, u64)>,
}

#[derive(Default)]
struct Pending {
    receipts: BTreeMap<Hash, Entry>,
    /// Per caller: the requests served and not yet forgotten.
    by_caller: BTreeMap<Address, BTreeSet<Hash>>,
}

impl Pending {
    fn add(&mut self, r: Receipt) {
        let caller = r.body.request.caller_address();
        self.by_caller
            .entry(caller)
            .or_default()
            .insert(r.request_id());
        self.receipts.insert(
            r.request_id(),
            Entry {
                receipt: r,
                submitted: None,
            },
        );
    }

    fn remove(&mut self, id: &Hash) {
        if let Some(p) = self.receipts.remove(id) {
            let caller = p.receipt.body.request.caller_address();
            if let Some(set) = self.by_caller.get_mut(&caller) {
                set.remove(id);
                if set.is_empty() {
                    self.by_caller.remove(&caller);
                }
            }
        }
    }
}

/// Why the log file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("receipt log {path}: {source}")]
pub struct LogError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

pub struct ReceiptLog {
    path: PathBuf,
    pending: Mutex<Pending>,
    /// Serializes writes to the file.
    file: Mutex<()>,
}

impl ReceiptLog {
    /// Open the log at `path` and reload what it holds. A torn last line (a crash mid-append)
    /// is skipped with a warning: every earlier line was fsynced. The file is then rewritten
    /// with exactly the readable receipts.
    pub fn open(path: PathBuf) -> Result<ReceiptLog, LogError> {
        let err = |source| LogError {
            path: path.clone(),
            source,
        };
        let mut pending = Pending::default();
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(err)?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let env = hex::decode(line.trim())
                    .ok()
                    .and_then(|b| ReceiptEnvelope::from_bytes(&b).ok());
                match env {
                    Some(e) => pending.add(e.receipt),
                    None => {
                        tracing::warn!("skipping unreadable line {} of {}", i + 1, path.display())
                    }
                }
            }
        }
        let log = ReceiptLog {
            path,
            pending: Mutex::new(pending),
            file: Mutex::new(()),
        };
        log.rewrite()?;
        Ok(log)
    }

    pub fn len(&self) -> usize {
        self.pending.lock().receipts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the node holds too many unsettled receipts to take new work.
    pub fn is_full(&self) -> bool {
        self.len() >= MAX_PENDING
    }

    pub fn contains(&self, id: &Hash) -> bool {
        self.pending.lock().receipts.contains_key(id)
    }

    pub fn receipt(&self, id: &Hash) -> Option<Receipt> {
        self.pending
            .lock()
            .receipts
            .get(id)
            .map(|e| e.receipt.clone())
    }

    /// Where every receipt stands, in request-id order.
    pub fn standings(&self) -> Vec<Standing> {
        let p = self.pending.lock();
        p.receipts
            .iter()
            .map(|(id, e)| Standing {
                id: *id,
                expires_ms: e.receipt.body.request.request.expires_ms,
                submitted: e.submitted,
            })
            .collect()
    }

    /// Make a signed receipt durable (fsync) and queue it for settlement. A request id is
    /// recorded at most once: the same request racing on two threads is served once. (The
    /// [`MAX_PENDING`] bound is admission's: work already done is always recorded.)
    pub fn record(&self, env: &ReceiptEnvelope) -> Result<(), ServeError> {
        let receipt = &env.receipt;
        let id = receipt.request_id();
        {
            let mut p = self.pending.lock();
            if p.receipts.contains_key(&id) {
                return Err(ServeError::Replayed(id));
            }
            p.add(receipt.clone());
        }
        if let Err(e) = self.append(env) {
            self.pending.lock().remove(&id);
            return Err(ServeError::Internal(format!(
                "cannot persist the receipt: {e}"
            )));
        }
        Ok(())
    }

    fn append(&self, env: &ReceiptEnvelope) -> std::io::Result<()> {
        let _g = self.file.lock();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{}", hex::encode(env.to_bytes()))?;
        f.sync_data()
    }

    /// Rewrite the file with exactly the receipts still pending (atomic replace).
    fn rewrite(&self) -> Result<(), LogError> {
        let _g = self.file.lock();
        let mut text = String::new();
        for p in self.pending.lock().receipts.values() {
            text.push_str(&hex::encode(
                ReceiptEnvelope::new(p.receipt.clone()).to_bytes(),
            ));
            text.push('\n');
        }
        fsio::write_atomic(&self.path, text.as_bytes()).map_err(|source| LogError {
            path: self.path.clone(),
            source,
        })
    }

    /// Forget these receipts (settled, or refused for good) and rewrite the file.
    pub fn forget(&self, ids: &[Hash]) -> Result<(), LogError> {
        if ids.is_empty() {
            return Ok(());
        }
        {
            let mut p = self.pending.lock();
            for id in ids {
                p.remove(id);
            }
        }
        self.rewrite()
    }

    /// Record that `ids` went out in transaction `tx` at clock reading `at_ms`.
    pub fn mark_submitted(&self, ids: &[Hash], tx: Hash, at_ms: u64) {
        let mut p = self.pending.lock();
        for id in ids {
            if let Some(e) = p.receipts.get_mut(id) {
                e.submitted = Some((tx, at_ms));
            }
        }
    }

    /// Make a stale submission eligible again.
    pub fn clear_submitted(&self, id: &Hash) {
        if let Some(e) = self.pending.lock().receipts.get_mut(id) {
            e.submitted = None;
        }
    }

    /// The receipts not yet submitted that settle in batches (not `zk`), in order, as many as
    /// fit `max_count` receipts and `max_bytes` encoded bytes.
    pub fn next_batch(&self, max_count: usize, max_bytes: usize) -> Vec<Receipt> {
        let p = self.pending.lock();
        let mut bytes = 0usize;
        p.receipts
            .values()
            .filter(|r| r.submitted.is_none() && r.receipt.body.request.request.tier != Tier::Zk)
            .take(max_count)
            .take_while(|r| {
                bytes += opal_types::encode(&r.receipt).len();
                bytes <= max_bytes
            })
            .map(|r| r.receipt.clone())
            .collect()
    }

    /// The `zk` receipts not yet submitted (each settles with its proof).
    pub fn waiting_zk(&self) -> Vec<Receipt> {
        self.pending
            .lock()
            .receipts
            .values()
            .filter(|r| r.submitted.is_none() && r.receipt.body.request.request.tier == Tier::Zk)
            .map(|r| r.receipt.clone())
            .collect()
    }

    /// Sum of the prices of `caller`'s receipts that `f` selects and that are not settled as
    /// of state `o` (a receipt already paid in `o` but not yet forgotten here is not counted).
    pub fn unsettled_sum(
        &self,
        o: &Overlay,
        caller: &Address,
        f: impl Fn(&Receipt) -> bool,
    ) -> Result<Amount, LedgerError> {
        let p = self.pending.lock();
        let mut sum: u128 = 0;
        for id in p.by_caller.get(caller).into_iter().flatten() {
            let r = &p.receipts[id].receipt;
            if f(r) && inference::settled(o, id)?.is_none() {
                sum = sum.saturating_add(r.body.price.0);
            }
        }
        Ok(Amount(sum))
    }

    /// What `caller` owes this node for receipts not settled as of state `o`: in all, and
    /// under spend grant `grant`.
    pub fn unsettled(
        &self,
        o: &Overlay,
        caller: &Address,
        grant: Option<&Hash>,
    ) -> Result<Unsettled, LedgerError> {
        let escrow = self.unsettled_sum(o, caller, |_| true)?;
        let grant = match grant {
            Some(g) => self.unsettled_sum(o, caller, |r| {
                r.body.request.grant.as_ref().map(|x| x.id()).as_ref() == Some(g)
            })?,
            None => Amount::ZERO,
        };
        Ok(Unsettled { escrow, grant })
    }
}
