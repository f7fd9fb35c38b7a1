//! Copy-on-write overlay for block and transaction execution (the idea of cnidarium's
//! `StateDelta`, written for Opal).
//!
//! An overlay has a base (a [`Snapshot`], or nothing = empty state), a stack of frozen parent
//! write sets it inherited when it was forked, and its own write set. Write sets are
//! `Arc<BTreeMap>`s, so `fork` is O(depth): the child shares the parent's writes instead of
//! copying them. The parent pays one copy only if it writes while a child is still alive; the
//! usual pattern (fork per transaction, then `apply` or drop the child before the next parent
//! write) never copies.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::snapshot::Snapshot;
use crate::{Entries, StateError};

type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Copy-on-write view over a [`Snapshot`] (or over empty state). Cheap to clone.
#[derive(Clone, Default)]
pub struct Overlay {
    base: Option<Snapshot>,
    /// Write sets inherited at fork time, oldest first (frozen: later parent writes are not seen).
    parents: Vec<Arc<Writes>>,
    /// Our own writes: key -> Some(value) = put, None = delete.
    writes: Arc<Writes>,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("base", &self.base)
            .field("parents", &self.parents.len())
            .field("writes", &self.writes.len())
            .finish()
    }
}

impl Overlay {
    pub fn new(base: Snapshot) -> Overlay {
        Overlay {
            base: Some(base),
            ..Overlay::default()
        }
    }

    /// No base store: empty state, for pure in-memory ledger tests and genesis.
    pub fn empty() -> Overlay {
        Overlay::default()
    }

    /// The snapshot this overlay reads through to, if any.
    pub fn base(&self) -> Option<&Snapshot> {
        self.base.as_ref()
    }

    /// Own writes first, then inherited writes (newest first), then the base.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        for layer in self.parents.iter().rev() {
            if let Some(v) = layer.get(key) {
                return Ok(v.clone());
            }
        }
        match &self.base {
            Some(s) => s.get(key),
            None => Ok(None),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        Arc::make_mut(&mut self.writes).insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        Arc::make_mut(&mut self.writes).insert(key, None);
    }

    /// Merged prefix scan: base entries overlaid by inherited and own puts/deletes, ascending
    /// key order.
    pub fn prefix(&self, prefix: &[u8]) -> Result<Entries, StateError> {
        let mut merged: Writes = match &self.base {
            Some(s) => s
                .prefix(prefix)?
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect(),
            None => BTreeMap::new(),
        };
        for layer in self.parents.iter().chain(std::iter::once(&self.writes)) {
            let range = layer
                .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix));
            for (k, v) in range {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// The first entry under `prefix` in key order, as [`Overlay::prefix`] would give it, but
    /// reading the base only up to it: O(this overlay's writes under `prefix`) plus the base
    /// entries before it that those writes delete. For queues and order books, whose head is
    /// taken again and again.
    pub fn first(&self, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>, StateError> {
        let mut layered: Writes = BTreeMap::new();
        for layer in self.parents.iter().chain(std::iter::once(&self.writes)) {
            let range = layer
                .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix));
            for (k, v) in range {
                layered.insert(k.clone(), v.clone());
            }
        }
        let from_layers = layered
            .iter()
            .find_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())));
        let from_base = match &self.base {
            Some(b) => b.prefix_first(prefix, |k| layered.contains_key(k))?,
            None => None,
        };
        Ok(match (from_layers, from_base) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        })
    }

    /// Start a nested transaction: the child sees our writes as of now (later writes to `self`
    /// are not visible to it). Its own writes can be merged back with [`Overlay::apply`] or
    /// discarded by dropping it.
    pub fn fork(&self) -> Overlay {
        let mut parents = Vec::with_capacity(self.parents.len() + 1);
        parents.extend(self.parents.iter().cloned());
        parents.push(Arc::clone(&self.writes));
        Overlay {
            base: self.base.clone(),
            parents,
            writes: Arc::new(BTreeMap::new()),
        }
    }

    /// Merge a fork's own writes into ours (the child's writes win).
    pub fn apply(&mut self, child: Overlay) {
        let Overlay {
            parents, writes, ..
        } = child;
        // Release the child's share of our write set first so `make_mut` does not copy it.
        drop(parents);
        let child_writes = Arc::try_unwrap(writes).unwrap_or_else(|shared| (*shared).clone());
        if child_writes.is_empty() {
            return;
        }
        let mine = Arc::make_mut(&mut self.writes);
        if mine.is_empty() {
            *mine = child_writes;
        } else {
            mine.extend(child_writes);
        }
    }

    /// Our own writes (not the inherited ones), ready for `Store::commit`.
    pub fn into_writes(self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        Arc::try_unwrap(self.writes).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Our own writes (not the inherited ones).
    pub fn writes(&self) -> &BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        &self.writes
    }
}
