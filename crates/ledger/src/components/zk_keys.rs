//! The store of published zk verifying keys (`zk/key/<id>`) and of the model versions that
//! name each key (`zk/users/<id>...`): what the registry checks when a model names a key, and
//! what the `zk` component ([`super::zk`]) checks proofs against. Below both, so that neither
//! imports the other.
//!
//! Decoded keys are kept in a small cache (16 keys) because decoding checks the key's
//! weight-range proof (~1.5 ms for the demo model). It is a pure function of the stored bytes
//! (keyed by their hash), so it cannot make two nodes disagree; it is the one piece of process
//! state in the ledger.

use crate::error::{LedgerError, TxError};
use opal_state::Overlay;
use opal_types::{Hash, ModelRef};
use opal_zk::api::VerifyingKey;
use std::sync::{Arc, Mutex, OnceLock};

/// `zk/key/<id>`: the bytes of a published verifying key.
pub fn key_key(id: &Hash) -> Vec<u8> {
    [b"zk/key/".as_slice(), &id.0].concat()
}

/// `zk/users/<id>`: the model versions registered with weight commitment `id`, one entry each
/// (`zk/users/<id><name>/<version BE>`, value: borsh `ModelRef`).
pub fn users_prefix(id: &Hash) -> Vec<u8> {
    [b"zk/users/".as_slice(), &id.0].concat()
}

fn user_key(id: &Hash, m: &ModelRef) -> Vec<u8> {
    [
        users_prefix(id).as_slice(),
        m.name.as_bytes(),
        b"/",
        &m.version.to_be_bytes(),
    ]
    .concat()
}

/// Records that model version `m` names key `id` (called when it is registered).
pub(crate) fn add_user(s: &mut Overlay, id: &Hash, m: &ModelRef) {
    super::write(s, &user_key(id, m), m);
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

/// Decoded keys by id. Decoding checks the weight-range proof (milliseconds to tens of
/// milliseconds), so each key is decoded once per process. The cache is content-addressed (the
/// id is the hash of the bytes) and decoding is a pure function of the bytes, so it cannot make
/// two validators disagree.
type KeyCache = Mutex<Vec<(Hash, Arc<VerifyingKey>)>>;

fn cache() -> &'static KeyCache {
    static C: OnceLock<KeyCache> = OnceLock::new();
    C.get_or_init(|| Mutex::new(Vec::new()))
}
const CACHE_KEYS: usize = 16;

pub(crate) fn decode_cached(id: Hash, bytes: &[u8]) -> Result<Arc<VerifyingKey>, opal_zk::ZkError> {
    if let Some(k) = cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, k)| k.clone())
    {
        return Ok(k);
    }
    let k = Arc::new(VerifyingKey::from_bytes(bytes)?);
    let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
    if c.len() >= CACHE_KEYS {
        c.remove(0);
    }
    c.push((id, k.clone()));
    Ok(k)
}

/// The published verifying key `id`, decoded: `None` if it is not published, `Some(Err)` if
/// its stored bytes no longer decode (a key of an older format, `zk_key_invalid`).
pub fn verifying_key(
    s: &Overlay,
    id: &Hash,
) -> Result<Option<Result<Arc<VerifyingKey>, TxError>>, LedgerError> {
    let Some(bytes) = key_bytes(s, id)? else {
        return Ok(None);
    };
    Ok(Some(
        decode_cached(*id, &bytes).map_err(|e| outdated(id, e)),
    ))
}
