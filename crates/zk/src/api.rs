//! The integration API for nodes, the ledger and validators: bytes in, bytes out, bounded.
//!
//! - [`setup`] (the node, once per model): commits to the weights and proves they are in range.
//!   The [`Setup`] is prover-side data the node keeps ([`Setup::to_bytes`] stores the model and
//!   the registration; [`Setup::from_bytes`] recomputes the commitments and checks they
//!   reproduce the stored ones).
//! - [`verifying_key`]: what a verifier needs — the hash of the model file the key was made
//!   from ([`VerifyingKey::file_hash`]: plain BLAKE3 of the canonical `.opalq` bytes, the content
//!   hash the registry stores for the model version), the circuit description (the model
//!   structure without weights), the weight commitments and the weight-range proof. Its
//!   [`VerifyingKey::id`] (plain BLAKE3 of [`VerifyingKey::to_bytes`]) is what the registry
//!   stores as the model's weight commitment. [`VerifyingKey::from_bytes`] is bounded and
//!   checks the weight-range proof, so a decoded key is always a checked one. Nothing in a key
//!   proves that its commitments are those of the file it names: whoever holds the file
//!   re-derives the key ([`key_for_file`]) and compares ids (docs/zk.md section 6).
//! - [`prove`]: `(output, proof)` for one quantized input, with progress in `[0, 1]`. The key's
//!   file hash is absorbed into the proof's transcript, so a proof made under one key never
//!   verifies under a key naming another file.
//! - [`verify`]: checks a proof against a key, input and output. The proof length is computed
//!   from the key and checked before any proof byte is read; the key's verification cost was
//!   bounded when it was decoded ([`crate::v2::MAX_VERIFIER_WORK`]).
//!
//! Protocol: v2 ([`crate::v2`], docs/zk.md section 3). Not zero-knowledge (section 5).

use opal_quant::QuantModel;

use crate::error::ZkError;
#[cfg(feature = "prover")]
use crate::v2::ProverModel;
use crate::v2::{self, RegisteredModel};

/// Largest [`VerifyingKey`] encoding accepted.
pub const MAX_VK_BYTES: usize = 64 << 20;
#[cfg(feature = "prover")]
/// Largest [`Setup`] encoding accepted.
pub const MAX_SETUP_BYTES: usize = 512 << 20;
/// Largest proof accepted by [`verify`] (the exact length is checked as well).
pub const MAX_PROOF_BYTES: usize = 256 << 20;

const VK_MAGIC: [u8; 8] = *b"OPALZKVK";
#[cfg(feature = "prover")]
const SETUP_MAGIC: [u8; 8] = *b"OPALZKSU";
/// Version of the verifying-key and setup encodings: 3 added the model file hash (2 had none).
pub const VERSION: u16 = 3;

#[cfg(feature = "prover")]
/// Prover-side data kept by the node (one per model).
pub struct Setup {
    prover: ProverModel,
    vk: VerifyingKey,
}

/// What a verifier needs for a model; see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyingKey {
    file_hash: [u8; 32],
    registered: RegisteredModel,
    registration_proof: Vec<u8>,
}

/// BLAKE3 of the model's canonical `.opalq` file ([`QuantModel::to_file_bytes`]). `.opalq`
/// decoding accepts only the canonical encoding, so for a model loaded from a file this is the
/// hash of that file: the content hash the registry stores for it.
pub fn model_file_hash(model: &QuantModel) -> [u8; 32] {
    *blake3::hash(&model.to_file_bytes()).as_bytes()
}

#[cfg(feature = "prover")]
/// Commits to the model's weights and proves they are in their declared ranges; the key names
/// the model's file ([`model_file_hash`]).
pub fn setup(model: &QuantModel) -> Result<Setup, ZkError> {
    let (prover, registered) = v2::register(model)?;
    let registration_proof = v2::prove_registration(&prover, &registered)?;
    Ok(Setup {
        vk: VerifyingKey {
            file_hash: model_file_hash(&prover.model),
            registered,
            registration_proof,
        },
        prover,
    })
}

#[cfg(feature = "prover")]
/// The verifying key of a `.opalq` model file, re-derived from the file (what anyone holding
/// the file compares, by id, with a published key or a registered weight commitment). The
/// file must be a valid canonical model; its key's file hash is the file's BLAKE3.
pub fn key_for_file(file: &[u8]) -> Result<VerifyingKey, ZkError> {
    let model = QuantModel::from_file_bytes(file).map_err(|e| ZkError::Model(e.to_string()))?;
    Ok(setup(&model)?.vk)
}

/// Checks that `vk` is the key of the `.opalq` model file `file`, as a validator does when the
/// key is published: the file hashes to the key's file hash, and committing to the file's
/// weights (no proving: the commitments alone) gives exactly the key's registered structure and
/// weight commitments. A key that names one file but commits to another model's weights fails
/// here. Deterministic; costs one commitment of the weights (less than [`setup`]).
pub fn check_key_for_file(vk: &VerifyingKey, file: &[u8]) -> Result<(), ZkError> {
    if *blake3::hash(file).as_bytes() != vk.file_hash {
        return Err(ZkError::Model(
            "the file does not hash to the key's file hash".into(),
        ));
    }
    let model = QuantModel::from_file_bytes(file).map_err(|e| ZkError::Model(e.to_string()))?;
    let (_, registered) = v2::register(&model)?;
    if registered.structure != vk.registered.structure {
        return Err(ZkError::Model(
            "the key's model structure is not the file's".into(),
        ));
    }
    if registered.weights != vk.registered.weights {
        return Err(ZkError::Model(
            "the key's weight commitments are not those of the file's weights".into(),
        ));
    }
    Ok(())
}

#[cfg(feature = "prover")]
/// The verifying key of a setup.
pub fn verifying_key(s: &Setup) -> VerifyingKey {
    s.vk.clone()
}

#[cfg(feature = "prover")]
/// Proves `output = model(input)` for a quantized input (`model.input_from_f32` maps floats).
/// `model` must be the model of `setup`. Returns the output and the proof bytes.
pub fn prove(
    model: &QuantModel,
    setup: &Setup,
    input: &[i64],
    progress: &mut dyn FnMut(f32),
) -> Result<(Vec<i64>, Vec<u8>), ZkError> {
    if model.model_id() != setup.prover.model.model_id() {
        return Err(ZkError::Model(
            "the model is not the one this setup was made for".into(),
        ));
    }
    v2::prove_with_progress(
        &setup.prover,
        &setup.vk.registered,
        &setup.vk.file_hash,
        input,
        None,
        progress,
    )
}

/// Verifies `proof` for `output = model(input)` against `vk`.
pub fn verify(
    vk: &VerifyingKey,
    input: &[i64],
    output: &[i64],
    proof: &[u8],
) -> Result<(), ZkError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ZkError::ProofLength {
            expected: v2::proof_len(&vk.registered).unwrap_or(0),
            got: proof.len(),
        });
    }
    v2::verify_bound(&vk.registered, &vk.file_hash, input, output, proof)
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Bounded reader of `u32 LE len || bytes` fields.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn header(b: &'a [u8], magic: &[u8; 8], what: &'static str) -> Result<Self, ZkError> {
        if b.len() < 10 || b[..8] != magic[..] {
            return Err(ZkError::Model(format!("{what}: bad magic")));
        }
        let v = u16::from_le_bytes([b[8], b[9]]);
        if v != VERSION {
            return Err(ZkError::Model(format!("{what}: unsupported version {v}")));
        }
        Ok(Self(&b[10..]))
    }
    fn next(&mut self, what: &'static str) -> Result<&'a [u8], ZkError> {
        let bad = || ZkError::Model(format!("{what}: truncated"));
        let len = self
            .0
            .get(..4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
            .ok_or_else(bad)?;
        let f = self.0.get(4..4 + len).ok_or_else(bad)?;
        self.0 = &self.0[4 + len..];
        Ok(f)
    }
    fn hash(&mut self, what: &'static str) -> Result<[u8; 32], ZkError> {
        let h: [u8; 32] = self
            .0
            .get(..32)
            .and_then(|x| x.try_into().ok())
            .ok_or_else(|| ZkError::Model(format!("{what}: truncated")))?;
        self.0 = &self.0[32..];
        Ok(h)
    }
    fn end(&self, what: &'static str) -> Result<(), ZkError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ZkError::Model(format!("{what}: trailing bytes")))
        }
    }
}

impl VerifyingKey {
    /// `"OPALZKVK" || u16 LE version (3) || model file hash (32 bytes) || u32 LE len ||
    /// registered model (structure + weight commitments, [`RegisteredModel::to_bytes`]) ||
    /// u32 LE len || weight-range proof`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = VK_MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.file_hash);
        put(&mut out, &self.registered.to_bytes());
        put(&mut out, &self.registration_proof);
        out
    }

    /// Bounded decoding; checks the structure's verification cost bound and the weight-range
    /// proof. Never panics on hostile bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        if b.len() > MAX_VK_BYTES {
            return Err(ZkError::Model(format!(
                "verifying key of {} bytes exceeds {MAX_VK_BYTES}",
                b.len()
            )));
        }
        let mut f = Fields::header(b, &VK_MAGIC, "verifying key")?;
        let file_hash = f.hash("verifying key")?;
        let registered = RegisteredModel::from_bytes(f.next("verifying key")?)?;
        let registration_proof = f.next("verifying key")?.to_vec();
        f.end("verifying key")?;
        v2::registered_shape(&registered)?;
        v2::verify_registration(&registered, &registration_proof)?;
        Ok(Self {
            file_hash,
            registered,
            registration_proof,
        })
    }

    /// The model file hash of an encoded key, read from its header without checking the rest
    /// (for bytes already checked by [`from_bytes`](Self::from_bytes), e.g. a key published on
    /// chain). Bounded; never panics.
    pub fn file_hash_of(b: &[u8]) -> Result<[u8; 32], ZkError> {
        Fields::header(b, &VK_MAGIC, "verifying key")?.hash("verifying key")
    }

    /// BLAKE3 of the model file this key was made from (see the module documentation).
    pub fn file_hash(&self) -> [u8; 32] {
        self.file_hash
    }

    /// Plain BLAKE3 of [`to_bytes`](Self::to_bytes): the id the registry stores as the model's
    /// weight commitment.
    pub fn id(&self) -> [u8; 32] {
        *blake3::hash(&self.to_bytes()).as_bytes()
    }

    /// The registered model (structure without weights + weight commitments).
    pub fn registered(&self) -> &RegisteredModel {
        &self.registered
    }

    /// Length of the input vector a proof is about.
    pub fn input_len(&self) -> usize {
        self.registered.structure.input_len as usize
    }

    /// Exact proof length for this key.
    pub fn proof_len(&self) -> Result<usize, ZkError> {
        v2::proof_len(&self.registered)
    }

    /// Soundness of one proof, in bits (docs/zk.md section 3).
    pub fn soundness_bits(&self) -> Result<f64, ZkError> {
        v2::soundness_bits(&self.registered)
    }
}

#[cfg(feature = "prover")]
impl Setup {
    /// `"OPALZKSU" || u16 LE version (3) || u32 LE len || .opalq model file || u32 LE len ||
    /// verifying key bytes`. The commitment data is not stored; [`from_bytes`](Self::from_bytes)
    /// recomputes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = SETUP_MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        put(&mut out, &self.prover.model.to_file_bytes());
        put(&mut out, &self.vk.to_bytes());
        out
    }

    /// Decodes a stored setup: decodes and validates the model, recommits to its weights and
    /// requires the result to be exactly the stored registered model; checks the stored
    /// verifying key (weight-range proof included) and that it names this model's file.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        if b.len() > MAX_SETUP_BYTES {
            return Err(ZkError::Model(format!(
                "setup of {} bytes exceeds {MAX_SETUP_BYTES}",
                b.len()
            )));
        }
        let mut f = Fields::header(b, &SETUP_MAGIC, "setup")?;
        let file = f.next("setup")?;
        let model =
            QuantModel::from_file_bytes(file).map_err(|e| ZkError::Model(format!("setup: {e}")))?;
        let vk = VerifyingKey::from_bytes(f.next("setup")?)?;
        f.end("setup")?;
        if vk.file_hash != *blake3::hash(file).as_bytes() {
            return Err(ZkError::Model(
                "setup: the verifying key names another model file".into(),
            ));
        }
        let (prover, registered) = v2::register(&model)?;
        if registered != vk.registered {
            return Err(ZkError::Model(
                "setup: the model does not reproduce the stored commitments".into(),
            ));
        }
        Ok(Self { prover, vk })
    }

    /// The model this setup proves.
    pub fn model(&self) -> &QuantModel {
        &self.prover.model
    }

    /// The verifying key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.vk
    }
}
