//! Settlement as a light client: the trust start comes from the user (a genesis file, or a
//! block hash they trust); the node is asked only for bytes that `opal_verify::light` checks
//! (light blocks: block, commit certificate, validator set with its proof; and a state proof).
//! The result can be kept as a portable proof inside the receipt file and checked again
//! offline from the genesis file alone.

use crate::CheckError;
use opal_client::Client;
use opal_ledger::Genesis;
use opal_state::StateProof;
use opal_types::Hash;
use opal_verify::light::{
    verify_to, LightBlock, LightError, Options, Portable, SettlementProof, TrustSource,
    TrustedState, Verified,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn malformed(what: impl std::fmt::Display) -> CheckError {
    CheckError::Malformed(what.to_string())
}

/// Where a light-client check starts, as a user names it.
pub enum TrustFrom<'a> {
    /// A genesis file (its path, for messages, and its text).
    Genesis { name: &'a str, text: &'a str },
    /// `HEIGHT:HASH` of a block the user trusts, fetched from `node`.
    Checkpoint { node: &'a Client, spec: &'a str },
}

/// A week: how long a checkpoint stays trusted when the user does not say.
pub const CHECKPOINT_TRUSTING_PERIOD_MS: u64 = 7 * 24 * 3_600_000;

/// The trust start and its trusting period: `period_secs` if given (`Some(0)`: it never
/// expires, which lets validators that unbonded since sign a forged chain; the caller should
/// warn), else the chain's unbonding time for a genesis and a week for a checkpoint.
pub fn trust_start(
    from: TrustFrom<'_>,
    period_secs: Option<u64>,
) -> Result<crate::receipt::Trust, CheckError> {
    let (state, default_ms) = match from {
        TrustFrom::Genesis { name, text } => trust_genesis(name, text)?,
        TrustFrom::Checkpoint { node, spec } => {
            (trust_checkpoint(node, spec)?, CHECKPOINT_TRUSTING_PERIOD_MS)
        }
    };
    let period_ms = match period_secs {
        Some(0) => None,
        Some(secs) => Some(secs.saturating_mul(1_000)),
        None => Some(default_ms),
    };
    Ok(crate::receipt::Trust { state, period_ms })
}

/// The trust start of a genesis file's text (`name` is how errors call it): its state root,
/// validator set and time, computed by applying it as every validator did, and its unbonding
/// time (the default trusting period).
pub fn trust_genesis(name: &str, text: &str) -> Result<(TrustedState, u64), CheckError> {
    let g = Genesis::from_json(text).map_err(|e| CheckError::Usage(format!("{name}: {e}")))?;
    let dir =
        tempfile::tempdir().map_err(|e| CheckError::Local(format!("a scratch store: {e}")))?;
    let (root, set) = g
        .start(&dir.path().join("genesis.redb"))
        .map_err(|e| CheckError::Usage(format!("applying {name}: {e}")))?;
    let file_hash = Hash(*blake3::hash(text.as_bytes()).as_bytes());
    Ok((
        TrustedState::genesis(&g.chain_id, g.genesis_time_ms, set, root, file_hash),
        g.staking.unbonding_time_ms,
    ))
}

fn fetch_light(c: &Client, h: u64) -> Result<LightBlock, String> {
    let v = c
        .get(&format!("/api/light/{h}"))
        .map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| format!("malformed light block: {e}"))
}

/// A checkpoint the user trusts, given as `HEIGHT:HASH`: block `height` with header hash
/// `hash`, fetched from the node and checked against the hash (its validator set is proven
/// against its own header, its certificate against that set).
pub fn trust_checkpoint(c: &Client, spec: &str) -> Result<TrustedState, CheckError> {
    let usage = |m: String| CheckError::Usage(m);
    let (h, hash) = spec
        .split_once(':')
        .ok_or_else(|| usage(format!("--trust takes HEIGHT:HASH, got {spec:?}")))?;
    let height: u64 = h
        .parse()
        .map_err(|_| usage(format!("--trust: {h:?} is not a height")))?;
    let hash = Hash::from_hex(hash).map_err(|e| usage(format!("--trust: bad hash: {e}")))?;
    let lb = fetch_light(c, height).map_err(malformed)?;
    let header = lb.header().map_err(malformed)?;
    if header.hash() != hash {
        return Err(malformed(format!(
            "the node's block {height} has hash {}, not the trusted {hash}",
            header.hash()
        )));
    }
    StateProof::from_bytes(&lb.validators_proof)
        .and_then(|p| {
            p.verify(
                &header.prev_state_root.0,
                opal_verify::light::VALIDATORS_KEY,
                Some(&lb.validators),
            )
        })
        .map_err(|e| {
            malformed(format!(
                "the checkpoint's validator set does not verify: {e}"
            ))
        })?;
    let limit = opal_verify::light::MAX_SET_BYTES;
    let validators: Vec<opal_types::validator::ActiveValidator> =
        opal_types::decode("validator set", &lb.validators, limit).map_err(malformed)?;
    let cert = opal_types::decode("certificate", &lb.certificate, limit).map_err(malformed)?;
    opal_verify::light::verify_certificate(&header.chain_id, height, &lb.block, &cert, &validators)
        .map_err(|e| malformed(format!("the checkpoint's certificate does not verify: {e}")))?;
    Ok(TrustedState {
        chain_id: header.chain_id.clone(),
        height,
        block_hash: hash,
        time_ms: header.time_ms,
        validators,
        genesis_root: None,
        source: TrustSource::Checkpoint {
            height,
            block_hash: hash,
        },
    })
}

fn hex_field(v: &Value, k: &str) -> Result<Vec<u8>, CheckError> {
    v[k].as_str()
        .and_then(|x| hex::decode(x).ok())
        .ok_or_else(|| malformed(format!("the node's reply has no hex `{k}`")))
}

/// Prove with the node that `key` has its value (or is absent) in the state after the block
/// before the latest, certify that state's root from `trusted`, and return the portable proof
/// with what it established. The outer error is the node's or the caller's; the inner one is
/// what the light client found.
pub fn prove_via_light_client(
    c: &Client,
    trusted: &TrustedState,
    key: &[u8],
    opts: &Options,
) -> Result<Result<(Portable, Verified), LightError>, CheckError> {
    let latest = c.status()?.height;
    if latest < 2 {
        return Err(malformed(format!(
            "the chain has no block to certify a state yet (height {latest})"
        )));
    }
    // The state after `h` is certified by block `h + 1`, the latest committed.
    let h = latest - 1;
    let v = c.get(&format!(
        "/api/state/{}?prove=true&height={h}",
        hex::encode(key)
    ))?;
    let value = match &v["value"] {
        Value::Null => None,
        Value::String(_) => Some(hex_field(&v, "value")?),
        _ => return Err(malformed("the node sent a malformed state value")),
    };
    let state = SettlementProof {
        height: h,
        key: key.to_vec(),
        value,
        proof: hex_field(&v, "proof")?,
    };
    let mut cache: BTreeMap<u64, LightBlock> = BTreeMap::new();
    let mut fetch = |height: u64| {
        let lb = fetch_light(c, height)?;
        cache.insert(height, lb.clone());
        Ok(lb)
    };
    let path = match verify_to(trusted, latest, &mut fetch, opts) {
        Ok((_, path)) => path,
        Err(e) => return Ok(Err(e)),
    };
    let portable = Portable {
        state,
        light_blocks: path.iter().filter_map(|h| cache.get(h).cloned()).collect(),
    };
    Ok(portable
        .verify(trusted, opts)
        .map(|v| (portable.clone(), v)))
}

/// An account as the node reports it, proven: the reply's Merkle proof is checked against the
/// state root of the committed block at that height (as the node reports that block; pass
/// through [`verify_to`] for a certified root), and the proven value must be the reported
/// balance and nonce. At height 0 (genesis) the reply's own root is used.
pub fn proven_account(
    c: &Client,
    address: &opal_types::Address,
    height: Option<u64>,
) -> Result<opal_api::Account, CheckError> {
    let mut path = format!("/api/accounts/{address}?prove=true");
    if let Some(h) = height {
        path += &format!("&height={h}");
    }
    let v = c.get(&path)?;
    let reported: opal_api::Account =
        serde_json::from_value(v.clone()).map_err(|e| malformed(format!("account reply: {e}")))?;
    let root = block_root(c, reported.height, reported.state_root)?;
    let proven = match check_state_reply(&v, &root)? {
        None => opal_ledger::components::accounts::Account::default(),
        Some(b) => opal_types::encoding::decode("account", &b, 64)
            .map_err(|e| malformed(format!("the proven value is not an account: {e}")))?,
    };
    if proven.balance != reported.balance || proven.nonce != reported.nonce {
        return Err(CheckError::ProofInvalid(
            "the proven account differs from the reported one".into(),
        ));
    }
    Ok(reported)
}

/// The state root a reply at `height` claims (`reported`), checked against the state root of
/// the committed block at that height as the node reports it (at height 0, genesis, the reply's
/// own root).
fn block_root(c: &Client, height: u64, reported: Hash) -> Result<Hash, CheckError> {
    if height == 0 {
        return Ok(reported);
    }
    let block = c.block(Some(height))?;
    if block.state_root != reported {
        return Err(CheckError::ProofInvalid(format!(
            "the reply's root {reported} is not block {height}'s state root {}",
            block.state_root
        )));
    }
    Ok(block.state_root)
}

/// A raw state value by key (`GET /api/state/{key}`, at `height` or the latest), its proof
/// checked against the state root of the committed block at that height, as for
/// [`proven_account`]. Returns the reply (key, value, height, state root, proof) and the
/// proven value (`None`: proven absent).
pub fn proven_state(
    c: &Client,
    key_hex: &str,
    height: Option<u64>,
) -> Result<(opal_api::registry::StateValue, Option<Vec<u8>>), CheckError> {
    let v = c.state(key_hex, height)?;
    let root = block_root(c, v.height, v.state_root)?;
    let value = check_proven(&v.proven, &root)?;
    Ok((v, value))
}

/// Check a node's state-proof reply (its `key`, `value` and `proof` fields, as
/// `/api/accounts/{a}?prove=true` serves them) against `root`; the proven value.
pub fn check_state_reply(v: &Value, root: &Hash) -> Result<Option<Vec<u8>>, CheckError> {
    let p: opal_api::registry::ProvenValue =
        serde_json::from_value(v.clone()).map_err(|e| malformed(format!("proof reply: {e}")))?;
    check_proven(&p, root)
}

/// Check a proven state value (`/api/state/{key}`, `/api/receipts/{id}?prove=true`) against
/// `root`; the proven value (`None`: proven absent).
pub fn check_proven(
    p: &opal_api::registry::ProvenValue,
    root: &Hash,
) -> Result<Option<Vec<u8>>, CheckError> {
    let bytes = |what: &str, h: &str| {
        hex::decode(h).map_err(|e| malformed(format!("proof reply: {what} is not hex: {e}")))
    };
    let key = bytes("key", &p.key)?;
    let value = p.value.as_deref().map(|v| bytes("value", v)).transpose()?;
    let proof = StateProof::from_bytes(&bytes("proof", &p.proof)?)
        .map_err(|e| malformed(format!("the node sent a malformed proof: {e}")))?;
    proof
        .verify(&root.0, &key, value.as_deref())
        .map_err(|e| CheckError::ProofInvalid(format!("against state root {root}: {e}")))?;
    Ok(value)
}

/// What the user trusted, for the output.
pub fn describe_trust(t: &TrustedState) -> Value {
    json!({
        "source": t.source,
        "height": t.height,
        "validator_set_hash": t.validator_set_hash(),
        "validators": t.validators.len(),
    })
}
