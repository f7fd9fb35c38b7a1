//! `opal verify --genesis FILE | --trust HEIGHT:HASH`: settlement checked as a light client.
//!
//! The trust start comes from the user (a genesis file, or a block hash they trust); the node
//! is asked only for bytes that `opal_verify::light` checks: light blocks (block, commit
//! certificate, validator set with its proof) and a state proof. The result can be saved as a
//! portable proof inside the receipt file and checked again offline with `--genesis`.

use crate::output::s;
use anyhow::{anyhow, bail, Context, Result};
use opal_client::Client;
use opal_ledger::components::staking;
use opal_ledger::Genesis;
use opal_state::{Overlay, Store};
use opal_types::Hash;
use opal_verify::light::{
    verify_to, LightBlock, LightError, Options, Portable, SettlementProof, TrustSource,
    TrustedState, Verified,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Exit code of `opal verify` for a light-client failure: one per kind, so scripts can tell a
/// forged root from a short certificate (docs/verification.md section 6c).
pub fn exit_code(e: &LightError) -> i32 {
    match e {
        LightError::Malformed { .. } => 10,
        LightError::WrongChain { .. } => 11,
        LightError::NotNewer { .. } => 12,
        LightError::ValidatorsProof(_) => 13,
        LightError::BadValidatorSet => 14,
        LightError::CertificateMismatch { .. } => 15,
        LightError::UnknownSigner(_) => 16,
        LightError::DuplicateSigner(_) => 17,
        LightError::BadSignature(_) => 18,
        LightError::InsufficientPower { .. } => 19,
        LightError::GenesisRootMismatch { .. } => 20,
        LightError::GenesisSetMismatch => 21,
        LightError::ParentMismatch { .. } => 22,
        LightError::InsufficientTrust { .. } => 23,
        LightError::TrustExpired { .. } => 24,
        LightError::FromTheFuture { .. } => 25,
        LightError::StateProof { .. } => 26,
        LightError::TooManySteps(_) => 27,
        LightError::Fetch { .. } => 28,
    }
}

/// The trust start of a genesis file: its state root, validator set and time, computed by
/// applying it (as every validator did), and its unbonding time (the default trusting period).
pub fn trust_genesis(path: &Path) -> Result<(TrustedState, u64)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let g = Genesis::from_json(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("genesis.redb"))
        .map_err(|e| anyhow!("temporary store: {e}"))?;
    let mut o = Overlay::new(store.snapshot().map_err(|e| anyhow!("{e}"))?);
    g.apply(&mut o)
        .map_err(|e| anyhow!("applying {}: {e}", path.display()))?;
    let set = staking::active_set(&o).map_err(|e| anyhow!("{e}"))?;
    let root = store
        .commit(0, o.into_writes(), Default::default())
        .map_err(|e| anyhow!("{e}"))?;
    let file_hash = Hash(*blake3::hash(text.as_bytes()).as_bytes());
    Ok((
        TrustedState::genesis(&g.chain_id, g.genesis_time_ms, set, Hash(root), file_hash),
        g.staking.unbonding_time_ms,
    ))
}

fn fetch_light(c: &Client, h: u64) -> Result<LightBlock, String> {
    let v = c
        .get(&format!("/api/light/{h}"))
        .map_err(|e| format!("{e:#}"))?;
    serde_json::from_value(v).map_err(|e| format!("malformed light block: {e}"))
}

/// A checkpoint the user trusts: block `height` with header hash `hash`, fetched from the node
/// and checked against the hash (its validator set is proven against its own header).
pub fn trust_checkpoint(c: &Client, spec: &str) -> Result<TrustedState> {
    let (h, hash) = spec
        .split_once(':')
        .ok_or_else(|| anyhow!("--trust takes HEIGHT:HASH, got {spec:?}"))?;
    let height: u64 = h
        .parse()
        .map_err(|_| anyhow!("--trust: {h:?} is not a height"))?;
    let hash = Hash::from_hex(hash).map_err(|e| anyhow!("--trust: bad hash: {e}"))?;
    let lb = fetch_light(c, height).map_err(|e| anyhow!("{e}"))?;
    let header = lb.header().map_err(|e| anyhow!("{e}"))?;
    if header.hash() != hash {
        bail!(
            "the node's block {height} has hash {}, not the trusted {hash}",
            header.hash()
        );
    }
    // The set that voted on the checkpoint, proven against the checkpoint's own header, and
    // the checkpoint's certificate by that set.
    opal_state::StateProof::from_bytes(&lb.validators_proof)
        .and_then(|p| {
            p.verify(
                &header.prev_state_root.0,
                opal_verify::light::VALIDATORS_KEY,
                Some(&lb.validators),
            )
        })
        .map_err(|e| anyhow!("the checkpoint's validator set does not verify: {e}"))?;
    let limit = opal_verify::light::MAX_SET_BYTES;
    let validators: Vec<opal_types::validator::ActiveValidator> =
        opal_types::decode("validator set", &lb.validators, limit).map_err(|e| anyhow!("{e}"))?;
    let cert =
        opal_types::decode("certificate", &lb.certificate, limit).map_err(|e| anyhow!("{e}"))?;
    opal_verify::light::verify_certificate(&header.chain_id, height, &lb.block, &cert, &validators)
        .map_err(|e| anyhow!("the checkpoint's certificate does not verify: {e}"))?;
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

/// Prove with the node that `key` has its value (or is absent) in the state after the block
/// before the latest, certify that state's root from `trusted`, and return the portable proof
/// with what it established.
pub fn prove_via_light_client(
    c: &Client,
    trusted: &TrustedState,
    key: &[u8],
    opts: &Options,
) -> Result<Result<(Portable, Verified), LightError>> {
    let status = c.get("/api/status")?;
    let latest: u64 = s(&status, "height").parse().unwrap_or(0);
    if latest < 2 {
        bail!("the chain has no block to certify a state yet (height {latest})");
    }
    // The state after `h` is certified by block `h + 1`, the latest committed.
    let h = latest - 1;
    let v = c.get(&format!(
        "/api/state/{}?prove=true&height={h}",
        hex::encode(key)
    ))?;
    let value = match &v["value"] {
        Value::Null => None,
        Value::String(x) => Some(hex::decode(x).context("state value is not hex")?),
        _ => bail!("the node sent a malformed state value"),
    };
    let state = SettlementProof {
        height: h,
        key: key.to_vec(),
        value,
        proof: hex::decode(s(&v, "proof")).context("state proof is not hex")?,
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

/// What the user trusted, for the output.
pub fn describe_trust(t: &TrustedState) -> Value {
    json!({
        "source": t.source,
        "height": t.height,
        "validator_set_hash": t.validator_set_hash(),
        "validators": t.validators.len(),
    })
}
