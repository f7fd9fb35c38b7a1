//! A bounded cache of prepared models keyed by content hash.
//!
//! Preparing a model (parse, optimise, plan) costs far more than running it, so an inference
//! node prepares each model once and shares the result. Loads are single-flight: concurrent
//! requests for the same hash wait for one preparation instead of racing; different models
//! prepare in parallel. When more than `capacity` models are cached the least recently used one
//! is dropped from the cache (callers still holding its `Arc` keep using it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::InferError;
use crate::model::{content_hash, Limits, PreparedModel};

/// Prepared models keyed by the lowercase hex BLAKE3 hash of their file bytes.
#[derive(Debug)]
pub struct ModelCache {
    limits: Limits,
    capacity: usize,
    inner: Mutex<Inner>,
    loads: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    tick: u64,
}

#[derive(Debug)]
struct Slot {
    /// Held while the model is being prepared, so that one thread prepares and the others wait.
    gate: Arc<Mutex<()>>,
    model: Option<Arc<PreparedModel>>,
    last_used: u64,
}

impl ModelCache {
    /// A cache holding at most `capacity` prepared models (at least one), each loaded under
    /// `limits`.
    pub fn new(capacity: usize, limits: Limits) -> ModelCache {
        ModelCache {
            limits,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            loads: AtomicU64::new(0),
        }
    }

    /// The cached model with this content hash, if it is prepared.
    pub fn get(&self, hash: &str) -> Option<Arc<PreparedModel>> {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let slot = inner.slots.get_mut(&hash.to_ascii_lowercase())?;
        slot.last_used = tick;
        slot.model.clone()
    }

    /// The prepared model for these file bytes, preparing it on first use.
    pub fn get_or_load(&self, bytes: &[u8]) -> Result<Arc<PreparedModel>, InferError> {
        let hash = content_hash(bytes);
        self.get_or_load_with(&hash, || Ok(bytes.to_vec()))
    }

    /// The prepared model with content hash `hash`, calling `fetch` for its bytes only when it
    /// is not cached (typically a read from the artifact store). The fetched bytes must hash to
    /// `hash` ([`InferError::HashMismatch`] otherwise). Failures are not cached: a later call
    /// tries again.
    pub fn get_or_load_with(
        &self,
        hash: &str,
        fetch: impl FnOnce() -> Result<Vec<u8>, InferError>,
    ) -> Result<Arc<PreparedModel>, InferError> {
        let key = hash.to_ascii_lowercase();
        let gate = {
            let mut inner = self.inner.lock();
            inner.tick += 1;
            let tick = inner.tick;
            let slot = inner.slots.entry(key.clone()).or_insert_with(|| Slot {
                gate: Arc::new(Mutex::new(())),
                model: None,
                last_used: tick,
            });
            slot.last_used = tick;
            if let Some(m) = &slot.model {
                return Ok(m.clone());
            }
            let gate = slot.gate.clone();
            self.evict(&mut inner, &key);
            gate
        };
        // One preparation per hash at a time: later arrivals wait here, then find the model.
        let _loading = gate.lock();
        if let Some(m) = self
            .inner
            .lock()
            .slots
            .get(&key)
            .and_then(|s| s.model.clone())
        {
            return Ok(m);
        }
        let result = fetch().and_then(|bytes| {
            let got = content_hash(&bytes);
            if got != key {
                return Err(InferError::HashMismatch {
                    expected: key.clone(),
                    got,
                });
            }
            self.loads.fetch_add(1, Ordering::Relaxed);
            PreparedModel::load(&bytes, &self.limits).map(Arc::new)
        });
        let mut inner = self.inner.lock();
        // The slot may have been evicted meanwhile; only fill it if it is still this one.
        let ours = inner
            .slots
            .get(&key)
            .is_some_and(|s| Arc::ptr_eq(&s.gate, &gate));
        match &result {
            Ok(m) if ours => {
                if let Some(s) = inner.slots.get_mut(&key) {
                    s.model = Some(m.clone());
                }
            }
            Err(_) if ours => {
                inner.slots.remove(&key);
            }
            _ => {}
        }
        result
    }

    /// Drops a model from the cache; true if it was there.
    pub fn remove(&self, hash: &str) -> bool {
        self.inner
            .lock()
            .slots
            .remove(&hash.to_ascii_lowercase())
            .is_some()
    }

    /// Number of cached entries (prepared, or being prepared).
    pub fn len(&self) -> usize {
        self.inner.lock().slots.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most models kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many preparations were started since creation (hash-verified bytes handed to
    /// [`PreparedModel::load`]), successful or not.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Drops least recently used entries, never `keep`, until the cache fits its capacity.
    fn evict(&self, inner: &mut Inner, keep: &str) {
        while inner.slots.len() > self.capacity {
            let victim = inner
                .slots
                .iter()
                .filter(|(k, _)| k.as_str() != keep)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    inner.slots.remove(&k);
                }
                None => break,
            }
        }
    }
}
