//! Light-client verification of Opal blocks and of values proven in their state.
//!
//! ## What is checked
//!
//! A [`LightBlock`] for height `h` carries the block bytes, its commit certificate, the
//! validator set that voted on `h` (the ledger's state key `validators` after block `h - 1`)
//! and a Merkle proof of that set against `header.prev_state_root`. [`verify_step`] accepts it
//! from a [`TrustedState`] only if:
//!
//! 1. the header decodes, is for the trusted chain and is newer (height and time) than the
//!    trusted state;
//! 2. the validator set is proven against the header's own `prev_state_root`;
//! 3. the certificate is for exactly these block bytes (`value_id = blake3(block)`) and this
//!    height, every signature is a valid precommit by a distinct member of that set, and the
//!    signers hold more than 2/3 of its power;
//! 4. trust carries over: at genesis, block 1's `prev_state_root` is the genesis state root
//!    and its set is the genesis set; otherwise the signers that are in the *trusted* set hold
//!    more than 1/3 of the trusted set's power (at least one honest validator vouches, if fewer
//!    than 1/3 of the trusted set are Byzantine), and the next block also links by hash;
//! 5. the trusted state is within the trusting period of `now` (validators that signed it may
//!    have unbonded since, and could sign anything without being slashable), and the header is
//!    not from the future.
//!
//! When rule 4 or 5 fails for a far target, [`verify_to`] bisects: it verifies a header half
//! way first, as Tendermint's skipping light client does, up to [`Options::max_fetches`].
//!
//! A [`SettlementProof`] is then checked against the root in the header of the block after it
//! ([`Portable::verify`]): the state after block `H` is certified by block `H + 1`.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::StateProof;
use opal_types::evidence::{VoteEvidence, PRECOMMIT};
use opal_types::validator::ActiveValidator;
use opal_types::{Block, BlockHeader, Hash, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// The ledger's state key of the validator set for the next height (`opal_ledger::keys`).
pub const VALIDATORS_KEY: &[u8] = b"validators";
/// Largest block a light block may carry (the consensus limit, 4 MiB).
pub const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;
/// Largest encoded certificate or validator set accepted (about 10,000 validators).
pub const MAX_SET_BYTES: usize = 1 << 20;

/// A commit certificate as Opal stores and serves it: the same borsh layout as
/// `opal_consensus::CommitCertificate`. Each signature is an ed25519 signature by the key over
/// the precommit sign bytes of `(chain_id, height, round, value_id)`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Certificate {
    pub height: u64,
    pub round: u32,
    /// `blake3(block bytes)`.
    pub value_id: [u8; 32],
    pub signatures: Vec<([u8; 32], Vec<u8>)>,
}

/// One block as a light client receives it. All fields are bytes as the node stores them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightBlock {
    #[serde(with = "hex_bytes")]
    pub block: Vec<u8>,
    /// borsh of [`Certificate`].
    #[serde(with = "hex_bytes")]
    pub certificate: Vec<u8>,
    /// borsh of `Vec<ActiveValidator>`: the state value under [`VALIDATORS_KEY`] after the
    /// previous block, i.e. the set that voted on this one.
    #[serde(with = "hex_bytes")]
    pub validators: Vec<u8>,
    /// `opal_state::StateProof` of `validators` against `header.prev_state_root`.
    #[serde(with = "hex_bytes")]
    pub validators_proof: Vec<u8>,
}

impl LightBlock {
    pub fn header(&self) -> Result<BlockHeader, LightError> {
        if self.block.len() > MAX_BLOCK_BYTES {
            return Err(LightError::Malformed {
                what: "block",
                reason: format!("{} bytes (at most {MAX_BLOCK_BYTES})", self.block.len()),
            });
        }
        Block::from_bytes(&self.block)
            .map(|b| b.header)
            .map_err(|e| LightError::Malformed {
                what: "block",
                reason: e.to_string(),
            })
    }
}

/// Where trust started: shown to the user, so they know what they relied on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrustSource {
    /// A genesis file (its BLAKE3 hash).
    Genesis { file_hash: Hash },
    /// A block the user trusts by height and hash (`--trust HEIGHT:HASH`).
    Checkpoint { height: u64, block_hash: Hash },
}

/// What the light client trusts now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedState {
    pub chain_id: String,
    /// 0 for genesis.
    pub height: u64,
    /// The trusted block's header hash (zero at genesis).
    pub block_hash: Hash,
    /// The trusted block's time (the genesis time at genesis).
    pub time_ms: u64,
    /// At genesis: the set that votes on block 1. After verifying block `h`: the set that
    /// voted on `h`.
    pub validators: Vec<ActiveValidator>,
    /// At genesis: the state root after genesis (block 1's `prev_state_root`).
    pub genesis_root: Option<Hash>,
    pub source: TrustSource,
}

impl TrustedState {
    /// The trust start of a genesis: its chain id, time, validator set and state root (the
    /// caller computes them from the genesis file, e.g. with the ledger).
    pub fn genesis(
        chain_id: &str,
        genesis_time_ms: u64,
        validators: Vec<ActiveValidator>,
        root: Hash,
        file_hash: Hash,
    ) -> Self {
        TrustedState {
            chain_id: chain_id.to_string(),
            height: 0,
            block_hash: Hash::ZERO,
            time_ms: genesis_time_ms,
            validators,
            genesis_root: Some(root),
            source: TrustSource::Genesis { file_hash },
        }
    }

    /// BLAKE3 over the borsh of the trusted validator set (printed so a user can compare it).
    pub fn validator_set_hash(&self) -> Hash {
        Hash(*blake3::hash(&borsh::to_vec(&self.validators).unwrap_or_default()).as_bytes())
    }
}

/// Limits of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The verifier's clock (ms since the epoch).
    pub now_ms: u64,
    /// How long a trusted state stays trusted (should be below the chain's unbonding time);
    /// `None` disables the check (the caller must say so to the user).
    pub trusting_period_ms: Option<u64>,
    /// How far ahead of `now_ms` a header's time may be.
    pub max_clock_drift_ms: u64,
    /// Most light blocks [`verify_to`] fetches (a lying node cannot make it loop).
    pub max_fetches: usize,
}

impl Options {
    pub fn new(now_ms: u64, trusting_period_ms: Option<u64>) -> Self {
        Options {
            now_ms,
            trusting_period_ms,
            max_clock_drift_ms: 10_000,
            max_fetches: 256,
        }
    }
}

/// Why a light block, a certificate or a proof is refused. Each has a stable code
/// ([`LightError::code`]) and a distinct exit code in `opal verify`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LightError {
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("block is for chain {got:?}, the trusted chain is {expected:?}")]
    WrongChain { expected: String, got: String },
    #[error("block {height} is not newer than the trusted height {trusted} (or its time {time_ms} is not after {trusted_time_ms})")]
    NotNewer {
        height: u64,
        trusted: u64,
        time_ms: u64,
        trusted_time_ms: u64,
    },
    #[error("the validator set does not verify against the header's state root: {0}")]
    ValidatorsProof(String),
    #[error("the validator set is empty or its power overflows")]
    BadValidatorSet,
    #[error("the certificate is for another block (height {cert_height}, value {value_id}) than block {height} ({block_id})")]
    CertificateMismatch {
        height: u64,
        cert_height: u64,
        value_id: Hash,
        block_id: Hash,
    },
    #[error("certificate signer {0} is not in the validator set of its height")]
    UnknownSigner(PublicKey),
    #[error("validator {0} signed the certificate twice")]
    DuplicateSigner(PublicKey),
    #[error("invalid certificate signature by {0}")]
    BadSignature(PublicKey),
    #[error("the certificate is short: signed by {signed} of {total} voting power (more than 2/3 needed)")]
    InsufficientPower { signed: u64, total: u64 },
    #[error("block 1's state root {got} is not the genesis state root {expected}")]
    GenesisRootMismatch { expected: Hash, got: Hash },
    #[error("block 1's validator set is not the genesis set")]
    GenesisSetMismatch,
    #[error(
        "block {height} does not link to the trusted block (parent {parent}, trusted {trusted})"
    )]
    ParentMismatch {
        height: u64,
        parent: Hash,
        trusted: Hash,
    },
    #[error("only {signed} of the trusted set's {total} voting power signed block {height} (more than 1/3 needed)")]
    InsufficientTrust {
        height: u64,
        signed: u64,
        total: u64,
    },
    #[error("the trusted state (time {trusted_time_ms}) is older than the trusting period of {period_ms} ms at {now_ms}: start from a recent checkpoint (--trust HEIGHT:HASH)")]
    TrustExpired {
        trusted_time_ms: u64,
        period_ms: u64,
        now_ms: u64,
    },
    #[error("block {height} has time {time_ms}, in the future of this clock ({now_ms})")]
    FromTheFuture {
        height: u64,
        time_ms: u64,
        now_ms: u64,
    },
    #[error("the state proof does not verify against the certified state root {root} of height {height}: {reason}")]
    StateProof {
        height: u64,
        root: Hash,
        reason: String,
    },
    #[error("gave up after {0} light blocks")]
    TooManySteps(usize),
    #[error("cannot get light block {height}: {reason}")]
    Fetch { height: u64, reason: String },
}

impl LightError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            LightError::Malformed { .. } => "malformed",
            LightError::WrongChain { .. } => "wrong_chain",
            LightError::NotNewer { .. } => "not_newer",
            LightError::ValidatorsProof(_) => "validators_proof",
            LightError::BadValidatorSet => "bad_validator_set",
            LightError::CertificateMismatch { .. } => "certificate_mismatch",
            LightError::UnknownSigner(_) => "unknown_signer",
            LightError::DuplicateSigner(_) => "duplicate_signer",
            LightError::BadSignature(_) => "bad_signature",
            LightError::InsufficientPower { .. } => "insufficient_power",
            LightError::GenesisRootMismatch { .. } => "genesis_root_mismatch",
            LightError::GenesisSetMismatch => "genesis_set_mismatch",
            LightError::ParentMismatch { .. } => "parent_mismatch",
            LightError::InsufficientTrust { .. } => "insufficient_trust",
            LightError::TrustExpired { .. } => "trust_expired",
            LightError::FromTheFuture { .. } => "from_the_future",
            LightError::StateProof { .. } => "state_proof",
            LightError::TooManySteps(_) => "too_many_steps",
            LightError::Fetch { .. } => "fetch",
        }
    }

    /// The exit code `opal verify` ends with on this failure: one per kind (10..=28, in the
    /// order of the variants), so scripts can tell a forged root from a short certificate
    /// (docs/verification.md section 6c). Stable: a new kind gets the next number.
    pub fn exit_code(&self) -> i32 {
        match self {
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

    /// Whether verifying an intermediate block first may help.
    fn bisectable(&self) -> bool {
        matches!(self, LightError::InsufficientTrust { .. })
    }
}

fn total_power(set: &[ActiveValidator]) -> Result<u64, LightError> {
    let mut total: u64 = 0;
    for v in set {
        total = total
            .checked_add(v.power)
            .ok_or(LightError::BadValidatorSet)?;
    }
    if total == 0 || total.checked_mul(3).is_none() {
        return Err(LightError::BadValidatorSet);
    }
    Ok(total)
}

/// Check that `cert` commits `block` at `height` on `chain_id` with more than 2/3 of the power
/// of `set`; returns the signers.
pub fn verify_certificate(
    chain_id: &str,
    height: u64,
    block: &[u8],
    cert: &Certificate,
    set: &[ActiveValidator],
) -> Result<BTreeSet<PublicKey>, LightError> {
    let block_id = *blake3::hash(block).as_bytes();
    if cert.height != height || cert.value_id != block_id {
        return Err(LightError::CertificateMismatch {
            height,
            cert_height: cert.height,
            value_id: Hash(cert.value_id),
            block_id: Hash(block_id),
        });
    }
    let total = total_power(set)?;
    let power: BTreeMap<PublicKey, u64> = set
        .iter()
        .filter(|v| v.power > 0)
        .map(|v| (v.public_key, v.power))
        .collect();
    let mut signers = BTreeSet::new();
    let mut signed: u64 = 0;
    let mut votes = Vec::with_capacity(cert.signatures.len());
    for (pk, sig) in &cert.signatures {
        let pk = PublicKey(*pk);
        let p = *power.get(&pk).ok_or(LightError::UnknownSigner(pk))?;
        if !signers.insert(pk) {
            return Err(LightError::DuplicateSigner(pk));
        }
        let sig: [u8; 64] = sig
            .as_slice()
            .try_into()
            .map_err(|_| LightError::BadSignature(pk))?;
        let vote = VoteEvidence {
            vote_type: PRECOMMIT,
            height,
            round: i64::from(cert.round),
            value: Some(cert.value_id),
            validator: pk,
            signature: Signature(sig),
        };
        votes.push((vote.sign_bytes(chain_id), vote));
        signed = signed.saturating_add(p);
    }
    // One batch verification (the same acceptance rules as one by one, ZIP 215); if it fails,
    // one by one to name the bad signer.
    let batch = opal_types::crypto::verify_batch(
        votes
            .iter()
            .map(|(msg, v)| (&v.validator, msg.as_slice(), &v.signature)),
    );
    if batch.is_err() {
        for (msg, v) in &votes {
            v.validator
                .verify(msg, &v.signature)
                .map_err(|_| LightError::BadSignature(v.validator))?;
        }
        // The batch failed yet every signature verifies alone: refuse rather than guess.
        return Err(LightError::BadSignature(
            votes
                .first()
                .map(|(_, v)| v.validator)
                .unwrap_or(PublicKey([0; 32])),
        ));
    }
    if u128::from(signed) * 3 > u128::from(total) * 2 {
        Ok(signers)
    } else {
        Err(LightError::InsufficientPower { signed, total })
    }
}

/// Decode and prove the validator set a light block carries.
/// The validator set a light block carries (the set that voted on it), checked against its
/// Merkle proof under `header.prev_state_root`.
pub fn proven_set(
    lb: &LightBlock,
    header: &BlockHeader,
) -> Result<Vec<ActiveValidator>, LightError> {
    if lb.validators.len() > MAX_SET_BYTES || lb.certificate.len() > MAX_SET_BYTES {
        return Err(LightError::Malformed {
            what: "validator set or certificate",
            reason: "over 1 MiB".into(),
        });
    }
    let proof = StateProof::from_bytes(&lb.validators_proof)
        .map_err(|e| LightError::ValidatorsProof(e.to_string()))?;
    proof
        .verify(
            &header.prev_state_root.0,
            VALIDATORS_KEY,
            Some(&lb.validators),
        )
        .map_err(|e| LightError::ValidatorsProof(e.to_string()))?;
    opal_types::decode::<Vec<ActiveValidator>>("validator set", &lb.validators, MAX_SET_BYTES)
        .map_err(|e| LightError::Malformed {
            what: "validator set",
            reason: e.to_string(),
        })
}

/// One step: accept `lb` on top of `trusted` (rules 1-5 of the module documentation) and
/// return the new trusted state.
pub fn verify_step(
    trusted: &TrustedState,
    lb: &LightBlock,
    opts: &Options,
) -> Result<TrustedState, LightError> {
    let header = lb.header()?;
    if header.chain_id != trusted.chain_id {
        return Err(LightError::WrongChain {
            expected: trusted.chain_id.clone(),
            got: header.chain_id,
        });
    }
    if header.height <= trusted.height || header.time_ms <= trusted.time_ms {
        return Err(LightError::NotNewer {
            height: header.height,
            trusted: trusted.height,
            time_ms: header.time_ms,
            trusted_time_ms: trusted.time_ms,
        });
    }
    if let Some(period_ms) = opts.trusting_period_ms {
        if trusted.time_ms.saturating_add(period_ms) <= opts.now_ms {
            return Err(LightError::TrustExpired {
                trusted_time_ms: trusted.time_ms,
                period_ms,
                now_ms: opts.now_ms,
            });
        }
    }
    if header.time_ms > opts.now_ms.saturating_add(opts.max_clock_drift_ms) {
        return Err(LightError::FromTheFuture {
            height: header.height,
            time_ms: header.time_ms,
            now_ms: opts.now_ms,
        });
    }
    let cert: Certificate = opal_types::decode("certificate", &lb.certificate, MAX_SET_BYTES)
        .map_err(|e| LightError::Malformed {
            what: "certificate",
            reason: e.to_string(),
        })?;
    // The cheap check first: the certificate is for exactly these bytes.
    let block_id = *blake3::hash(&lb.block).as_bytes();
    if cert.height != header.height || cert.value_id != block_id {
        return Err(LightError::CertificateMismatch {
            height: header.height,
            cert_height: cert.height,
            value_id: Hash(cert.value_id),
            block_id: Hash(block_id),
        });
    }
    let set = proven_set(lb, &header)?;
    let signers = verify_certificate(&trusted.chain_id, header.height, &lb.block, &cert, &set)?;

    if header.height == 1 {
        if let Some(root) = trusted.genesis_root {
            if header.prev_state_root != root {
                return Err(LightError::GenesisRootMismatch {
                    expected: root,
                    got: header.prev_state_root,
                });
            }
            if set != trusted.validators {
                return Err(LightError::GenesisSetMismatch);
            }
        }
    }
    if header.height == trusted.height + 1
        && trusted.height > 0
        && header.parent_hash != trusted.block_hash
    {
        return Err(LightError::ParentMismatch {
            height: header.height,
            parent: header.parent_hash,
            trusted: trusted.block_hash,
        });
    }
    // Trust carries over: more than 1/3 of the trusted set's power signed (block 1 from
    // genesis is covered by the equal-set check above, and passes this one too).
    let trusted_total = total_power(&trusted.validators)?;
    let vouching: u64 = trusted
        .validators
        .iter()
        .filter(|v| signers.contains(&v.public_key))
        .fold(0u64, |a, v| a.saturating_add(v.power));
    if u128::from(vouching) * 3 <= u128::from(trusted_total) {
        return Err(LightError::InsufficientTrust {
            height: header.height,
            signed: vouching,
            total: trusted_total,
        });
    }
    Ok(TrustedState {
        chain_id: trusted.chain_id.clone(),
        height: header.height,
        block_hash: header.hash(),
        time_ms: header.time_ms,
        validators: set,
        genesis_root: None,
        source: trusted.source.clone(),
    })
}

/// Verify block `target` from `trusted`, bisecting when the trusted set no longer vouches
/// for it. `fetch(h)` returns the light block of height `h` (from a node, or from a portable
/// receipt). Returns the trusted state at `target` and the heights verified on the way.
pub fn verify_to(
    trusted: &TrustedState,
    target: u64,
    fetch: &mut dyn FnMut(u64) -> Result<LightBlock, String>,
    opts: &Options,
) -> Result<(TrustedState, Vec<u64>), LightError> {
    let mut state = trusted.clone();
    let mut pending = vec![target];
    let mut cache: BTreeMap<u64, LightBlock> = BTreeMap::new();
    let mut fetches = 0usize;
    let mut path = Vec::new();
    while let Some(&h) = pending.last() {
        if h <= state.height {
            pending.pop();
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = cache.entry(h) {
            fetches += 1;
            if fetches > opts.max_fetches {
                return Err(LightError::TooManySteps(opts.max_fetches));
            }
            let lb = fetch(h).map_err(|reason| LightError::Fetch { height: h, reason })?;
            slot.insert(lb);
        }
        let lb = &cache[&h];
        match verify_step(&state, lb, opts) {
            Ok(next) => {
                state = next;
                path.push(h);
                pending.pop();
            }
            Err(e) if e.bisectable() && h > state.height + 1 => {
                pending.push(state.height + (h - state.height) / 2);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((state, path))
}

/// A value proven in the state after block `height`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementProof {
    pub height: u64,
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
    /// None: the proof shows the key is absent.
    #[serde(with = "hex_opt")]
    pub value: Option<Vec<u8>>,
    #[serde(with = "hex_bytes")]
    pub proof: Vec<u8>,
}

/// A state proof that travels with the light blocks certifying its root: anyone holding the
/// trust start (the genesis file) checks it offline. The last light block is block
/// `state.height + 1`, whose header carries the state root after `state.height`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portable {
    pub state: SettlementProof,
    pub light_blocks: Vec<LightBlock>,
}

/// What a portable proof established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The value proven (None = proven absent).
    pub value: Option<Vec<u8>>,
    /// The certified root and the block that certifies it.
    pub state_root: Hash,
    pub certified_by: u64,
    /// Heights verified from the trust start.
    pub path: Vec<u64>,
    pub trusted: TrustedState,
}

impl Portable {
    /// Check the light blocks from `trusted`, then the state proof against the root the last
    /// of them certifies.
    pub fn verify(&self, trusted: &TrustedState, opts: &Options) -> Result<Verified, LightError> {
        let target = self
            .state
            .height
            .checked_add(1)
            .ok_or(LightError::Malformed {
                what: "state proof",
                reason: "height overflows".into(),
            })?;
        let mut by_height = BTreeMap::new();
        for lb in &self.light_blocks {
            by_height.insert(lb.header()?.height, lb.clone());
        }
        let mut fetch = |h: u64| {
            by_height
                .get(&h)
                .cloned()
                .ok_or_else(|| format!("block {h} is not in the portable proof"))
        };
        let (state, path) = verify_to(trusted, target, &mut fetch, opts)?;
        let header = by_height
            .get(&target)
            .ok_or(LightError::Fetch {
                height: target,
                reason: "missing".into(),
            })?
            .header()?;
        let root = header.prev_state_root;
        let proof =
            StateProof::from_bytes(&self.state.proof).map_err(|e| LightError::StateProof {
                height: self.state.height,
                root,
                reason: e.to_string(),
            })?;
        proof
            .verify(&root.0, &self.state.key, self.state.value.as_deref())
            .map_err(|e| LightError::StateProof {
                height: self.state.height,
                root,
                reason: e.to_string(),
            })?;
        Ok(Verified {
            value: self.state.value.clone(),
            state_root: root,
            certified_by: target,
            path,
            trusted: state,
        })
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
