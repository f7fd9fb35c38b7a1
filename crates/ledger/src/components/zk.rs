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
pub use super::zk_keys::*;
use super::{registry, verification};
use super::{BlockCtx, TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use opal_state::Overlay;
use opal_types::receipt::{tensor_list_hash, ZkEvidence};
use opal_types::{Address, Hash, ModelRef, Receipt, Tier};

/// Room an evidence transaction keeps beside the proof: the receipt, the tensors (bounded by
/// `max_reveal_bytes`, checked separately) and the transaction envelope.
const EVIDENCE_OVERHEAD: usize = 64 * 1024;

/// `Action::PublishZkKey`.
pub fn publish_key(
    s: &mut Overlay,
    keys: &KeyCache,
    sender: &Address,
    key: &[u8],
    model_file: &[u8],
    events: &mut Vec<Event>,
) -> TxOutcome {
    let id = Hash(*blake3::hash(key).as_bytes());
    if key_bytes(s, &id)?.is_some() {
        return Ok(Err(TxError::ZkKeyExists { id }));
    }
    let vk = match keys.decode(id, key) {
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
    keys: &KeyCache,
    ctx: &BlockCtx,
    sender: &Address,
    r: &Receipt,
    ev: &ZkEvidence,
    events: &mut Vec<Event>,
) -> TxOutcome {
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
    let vk = match verifying_key(s, keys, &id)? {
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

/// The `zk` component ([`super::Component`]). It owns the decoded-key cache: decoding a key
/// checks its weight-range proof (~1.5 ms for the demo model), so each published key is
/// decoded once per [`crate::exec::Ledger`], not once per proof.
#[derive(Default)]
pub struct Zk {
    keys: KeyCache,
}

impl super::Component for Zk {
    fn name(&self) -> &'static str {
        "zk"
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        let (ctx, sender, action) = (tx.ctx, tx.sender, tx.action);
        use opal_types::Action as A;
        match action {
            A::PublishZkKey { key, model } => publish_key(s, &self.keys, sender, key, model, ev),
            A::SettleProved { receipt, evidence } => {
                settle_proved(s, &self.keys, ctx, sender, receipt, evidence, ev)
            }
            other => super::not_routed_here(self.name(), other),
        }
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
        assert!(verifying_key(&s, &KeyCache::default(), &id)
            .unwrap()
            .is_none());
        let mut old = b"OPALZKVK".to_vec();
        old.extend_from_slice(&2u16.to_le_bytes());
        old.extend_from_slice(&[0; 64]);
        s.put(key_key(&id), old);
        for r in [
            published_file_hash(&s, &id).unwrap().map(|r| r.map(|_| ())),
            verifying_key(&s, &KeyCache::default(), &id)
                .unwrap()
                .map(|r| r.map(|_| ())),
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
