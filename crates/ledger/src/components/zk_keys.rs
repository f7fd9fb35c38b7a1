//! The store of published zk verifying keys (`zk/key/<id>`) and of the model versions that
//! name each key (`zk/users/<id>...`): what the registry checks when a model names a key, and
//! what the `zk` component ([`super::zk`]) checks proofs against. Below both, so that neither
//! imports the other.
//!
//! Decoded keys are kept in a [`KeyCache`] owned by the `zk` component of one
//! [`crate::exec::Ledger`] (no process-global state): decoding checks the key's weight-range
//! proof (~1.5 ms for the demo model), and it is a pure function of the stored bytes (keyed by
//! their hash), so the cache cannot make two nodes disagree.

use crate::error::{LedgerError, TxError};
use opal_state::Overlay;
use opal_types::{Hash, ModelRef};
use opal_zk::api::VerifyingKey;
use std::sync::{Arc, Mutex};

use crate::keys::zk as k;
pub use crate::keys::zk::{key as key_key, users_prefix};

/// Records that model version `m` names key `id` (called when it is registered).
pub(crate) fn add_user(s: &mut Overlay, id: &Hash, m: &ModelRef) {
    super::write(s, &k::user(id, m), m);
}

/// The refusal for a stored key that no longer decodes: a key of an older format (version 2
/// had no file hash) published before an upgrade. A transaction naming it is refused; it
/// must not halt the chain as a node fault would.
fn outdated(id: &Hash, e: opal_zk::ZkError) -> TxError {
    TxError::ZkKeyInvalid {
        reason: format!(
            "the published key {id} no longer decodes ({e}); register a new model version with a key made now"
        ),
    }
}

/// The model file hash a published key `id` names (read from its header: the key was fully
/// checked when it was published): `None` if the key is not published, `Some(Err)` if its
/// stored bytes are of an older format.
pub fn published_file_hash(
    s: &Overlay,
    id: &Hash,
) -> Result<Option<Result<Hash, TxError>>, LedgerError> {
    let Some(bytes) = key_bytes(s, id)? else {
        return Ok(None);
    };
    Ok(Some(
        VerifyingKey::file_hash_of(&bytes)
            .map(Hash)
            .map_err(|e| outdated(id, e)),
    ))
}

/// The refusal for model `model` (content hash `content_hash`) named with a key made from
/// `key_file`.
pub(crate) fn file_mismatch(model: &ModelRef, key_file: Hash, content_hash: Hash) -> TxError {
    TxError::ZkKeyFileMismatch {
        model: model.to_string(),
        key_file,
        content_hash,
    }
}

/// The published bytes of verifying key `id`, if any.
pub fn key_bytes(s: &Overlay, id: &Hash) -> Result<Option<Vec<u8>>, LedgerError> {
    Ok(s.get(&key_key(id))?)
}

/// Decoded keys by id, the last [`KeyCache::KEYS`] used. The cache is content-addressed (the
/// id is the hash of the bytes) and decoding is a pure function of the bytes, so it cannot make
/// two validators disagree.
#[derive(Default)]
pub struct KeyCache(Mutex<Vec<(Hash, Arc<VerifyingKey>)>>);

impl KeyCache {
    const KEYS: usize = 16;

    /// Key `id` decoded from `bytes` (its stored bytes), decoding only on a miss.
    pub fn decode(&self, id: Hash, bytes: &[u8]) -> Result<Arc<VerifyingKey>, opal_zk::ZkError> {
        let hit = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, k)| k.clone());
        if let Some(k) = hit {
            return Ok(k);
        }
        let k = Arc::new(VerifyingKey::from_bytes(bytes)?);
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() >= Self::KEYS {
            c.remove(0);
        }
        c.push((id, k.clone()));
        Ok(k)
    }
}

/// The published verifying key `id`, decoded: `None` if it is not published, `Some(Err)` if
/// its stored bytes no longer decode (a key of an older format, `zk_key_invalid`).
pub fn verifying_key(
    s: &Overlay,
    cache: &KeyCache,
    id: &Hash,
) -> Result<Option<Result<Arc<VerifyingKey>, TxError>>, LedgerError> {
    let Some(bytes) = key_bytes(s, id)? else {
        return Ok(None);
    };
    Ok(Some(cache.decode(*id, &bytes).map_err(|e| outdated(id, e))))
}
