//! The `zk` tier on chain: published verifying keys and proved settlement (docs/zk.md section 6).
//!
//! A model offered in the `zk` tier registers, as its `weight_commitment`, the id of its opal-zk
//! verifying key (the BLAKE3 hash of the key's bytes; the key holds the hash of the model file
//! it was made from, the model's structure, the Merkle roots of its weight commitments and the
//! proof that the weights are in range). Anyone publishes the key once (`PublishZkKey`, with
//! the model file): the ledger decodes it with its bounds, checks its weight-range proof,
//! recomputes the structure and weight commitments from the file (`zk_key_not_of_file` unless
//! they are the key's) and keeps the key's bytes under `zk/key/<id>`.
//!
//! A key is tied to the registered file by its file hash, compared with the content hash of
//! the model versions that name it (`zk_key_file_mismatch` otherwise): when a model is
//! registered against a published key, when a key is published (refused unless at least one of
//! the model versions that name it, if any, is its file: a stray registration cannot block an
//! honest key) and when a proof settles (the receipt's model must be the key's file). Since the
//! key's commitments were recomputed from that file at publication, a proof that verifies
//! under the key is a proof about the registered file's weights.
//!
//! The node that served a `zk` request settles it with `SettleProved { receipt, evidence }`:
//! every validator checks that the evidence's inputs and outputs hash to what the receipt
//! signed, maps the input to the model's integers (`canonical::quantized_input`, the same
//! function the node ran) and verifies the proof against the published key before the receipt
//! goes through the ordinary settlement checks and pays. A proved receipt is final: it is not
//! held for disputes and not audited. A zk receipt posted in `SettleReceipts` is rejected with
//! `proof_required`.

use super::inference::{self, settle_one};
use super::staking::BlockCtx;
use super::{registry, verification};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use opal_state::Overlay;
use opal_types::receipt::{tensor_list_hash, ZkEvidence};
use opal_types::{Address, Hash, ModelRef, Receipt, Tier};
use opal_zk::api::VerifyingKey;
use std::sync::{Arc, Mutex, OnceLock};

type TxResult = Result<Result<(), TxError>, LedgerError>;

/// Room an evidence transaction keeps beside the proof: the receipt, the tensors (bounded by
/// `max_reveal_bytes`, checked separately) and the transaction envelope.
const EVIDENCE_OVERHEAD: usize = 64 * 1024;

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

fn decode_cached(id: Hash, bytes: &[u8]) -> Result<Arc<VerifyingKey>, opal_zk::ZkError> {
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

/// `Action::PublishZkKey`.
pub fn publish_key(
    s: &mut Overlay,
    sender: &Address,
    key: &[u8],
    model_file: &[u8],
    events: &mut Vec<Event>,
) -> TxResult {
    let id = Hash(*blake3::hash(key).as_bytes());
    if key_bytes(s, &id)?.is_some() {
        return Ok(Err(TxError::ZkKeyExists { id }));
    }
    let vk = match decode_cached(id, key) {
        Ok(vk) => vk,
        Err(e) => {
            return Ok(Err(TxError::ZkKeyInvalid {
                reason: e.to_string(),
            }))
        }
    };
    let proof_bytes = match vk.proof_len() {
        Ok(n) => n,
        Err(e) => {
            return Ok(Err(TxError::ZkKeyInvalid {
                reason: e.to_string(),
            }))
        }
    };
    let limit = crate::exec::params(s)?.max_evidence_tx_bytes as usize;
    if proof_bytes.saturating_add(EVIDENCE_OVERHEAD) > limit {
        return Ok(Err(TxError::ProofTooLargeForChain { proof_bytes, limit }));
    }
    // The key must be the key of a model that names it: refused when every model version that
    // names it was registered with another file (none naming it is fine: registration checks
    // against the published key).
    let key_file = Hash(vk.file_hash());
    let mut mismatch = None;
    for (k, v) in s.prefix(&users_prefix(&id))? {
        let m: ModelRef =
            opal_types::decode("zk key user", &v, 1024).map_err(|e| LedgerError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: e.to_string(),
            })?;
        let Some(info) = registry::model(s, &m)? else {
            return Err(LedgerError::Invariant(format!(
                "zk key {id} is named by {m}, which is not registered"
            )));
        };
        if info.spec.content_hash == key_file {
            mismatch = None;
            break;
        }
        mismatch.get_or_insert_with(|| file_mismatch(&m, key_file, info.spec.content_hash));
    }
    if let Some(e) = mismatch {
        return Ok(Err(e));
    }
    // The key must be the file's own: its structure and weight commitments recomputed from the
    // file it names. Otherwise a key naming A's file could commit to a cheaper model B, and B's
    // proofs would settle as A's.
    if let Err(e) = opal_zk::api::check_key_for_file(&vk, model_file) {
        return Ok(Err(TxError::ZkKeyNotOfFile {
            reason: e.to_string(),
        }));
    }
    s.put(key_key(&id), key.to_vec());
    events.push(Event::ZkKeyPublished {
        id,
        publisher: *sender,
        bytes: key.len() as u64,
        proof_bytes: proof_bytes as u64,
    });
    Ok(Ok(()))
}

/// `Action::SettleProved`: verify the proof, then settle the receipt like any other.
pub fn settle_proved(
    s: &mut Overlay,
    ctx: &BlockCtx,
    sender: &Address,
    r: &Receipt,
    ev: &ZkEvidence,
    events: &mut Vec<Event>,
) -> TxResult {
    let p = inference::params(s)?;
    if r.node() != *sender {
        return Ok(Err(TxError::NotYourReceipt {
            index: 0,
            node: r.node(),
        }));
    }
    let req = &r.body.request.request;
    if req.tier != Tier::Zk {
        return Ok(Err(TxError::NotZkReceipt {
            tier: req.tier.as_str().into(),
        }));
    }
    // Cheap checks first (signatures, replay, sizes, hashes, the model's key), so a bogus or
    // replayed settlement costs no proof verification; the proof last.
    if let Err(e) = r.verify() {
        return Ok(Err(TxError::SettlementRejected {
            reason_code: "invalid_receipt".into(),
            reason: e.to_string(),
        }));
    }
    if inference::settled(s, &r.request_id())?.is_some() {
        return Ok(Err(TxError::SettlementRejected {
            reason_code: "already_settled".into(),
            reason: "this request was already paid".into(),
        }));
    }
    let bytes: usize = ev.inputs.iter().chain(&ev.outputs).map(Vec::len).sum();
    if ev.inputs.len() > verification::MAX_REVEAL_TENSORS
        || ev.outputs.len() > verification::MAX_REVEAL_TENSORS
        || bytes > p.max_reveal_bytes as usize
    {
        return Ok(Err(TxError::RevealTooLarge {
            bytes,
            limit: p.max_reveal_bytes as usize,
        }));
    }
    if tensor_list_hash(&ev.inputs) != req.input_hash {
        return Ok(Err(TxError::RevealMismatch {
            what: "inputs".into(),
        }));
    }
    if tensor_list_hash(&ev.outputs) != r.body.output_hash {
        return Ok(Err(TxError::RevealMismatch {
            what: "outputs".into(),
        }));
    }
    let Some(info) = registry::model(s, &req.model)? else {
        return Ok(Err(TxError::SettlementRejected {
            reason_code: "unknown_model".into(),
            reason: format!("no model {} is registered", req.model),
        }));
    };
    let Some(id) = info.spec.weight_commitment else {
        return Ok(Err(TxError::NotZkModel {
            model: req.model.to_string(),
        }));
    };
    let vk = match verifying_key(s, &id)? {
        None => {
            return Ok(Err(TxError::ZkKeyMissing {
                model: req.model.to_string(),
                id,
            }))
        }
        Some(Err(e)) => return Ok(Err(e)),
        Some(Ok(vk)) => vk,
    };
    // The key must have been made from the file the receipt's model is registered as: a key
    // of another model proves that model's outputs, not these.
    if let Err(opal_verify::zk::ZkCheckError::KeyNotTheModels { key_file, .. }) =
        opal_verify::zk::check_key_names_model(&vk, &info.spec.content_hash)
    {
        return Ok(Err(file_mismatch(
            &req.model,
            key_file,
            info.spec.content_hash,
        )));
    }
    // The proof itself, by the same verifier `opal verify` runs (the tensors were checked
    // against the signed hashes above).
    if let Err(e) = opal_verify::zk::check_proof(ev, &vk) {
        let reason = match e {
            opal_verify::zk::ZkCheckError::Canonical(c) => c.to_string(),
            opal_verify::zk::ZkCheckError::Invalid(m) => m,
            other => other.to_string(),
        };
        return Ok(Err(TxError::ProofInvalid { reason }));
    }
    let mut fork = s.fork();
    let mut out = Vec::new();
    match settle_one(&mut fork, ctx, &p, r, true, &mut out)? {
        Ok(()) => {
            s.apply(fork);
            events.push(Event::ZkProofVerified {
                request_id: r.request_id(),
                key: id,
            });
            events.extend(out);
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(TxError::SettlementRejected {
            reason_code: e.code().into(),
            reason: e.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key stored before the format change (version 2, no file hash) is refused with a
    /// transaction error wherever it is read, never reported as a node fault.
    #[test]
    fn a_stored_key_of_an_older_format_is_a_tx_error() {
        let mut s = Overlay::empty();
        let id = Hash([7; 32]);
        assert!(published_file_hash(&s, &id).unwrap().is_none());
        assert!(verifying_key(&s, &id).unwrap().is_none());
        let mut old = b"OPALZKVK".to_vec();
        old.extend_from_slice(&2u16.to_le_bytes());
        old.extend_from_slice(&[0; 64]);
        s.put(key_key(&id), old);
        for r in [
            published_file_hash(&s, &id).unwrap().map(|r| r.map(|_| ())),
            verifying_key(&s, &id).unwrap().map(|r| r.map(|_| ())),
        ] {
            match r {
                Some(Err(TxError::ZkKeyInvalid { reason })) => {
                    assert!(reason.contains("unsupported version 2"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
