//! The integration API for nodes, the ledger and validators: bytes in, bytes out, bounded.
//!
//! - [`setup`] (the node, once per model): commits to the weights and proves they are in range.
//!   The [`Setup`] is prover-side data the node keeps ([`Setup::to_bytes`] stores the model and
//!   the registration; [`Setup::from_bytes`] recomputes the commitments and checks they
//!   reproduce the stored ones).
//! - [`verifying_key`]: what a verifier needs — the circuit description (the model structure
//!   without weights), the weight commitments and the weight-range proof. Its
//!   [`VerifyingKey::id`] (plain BLAKE3 of [`VerifyingKey::to_bytes`]) is what the registry
//!   stores as the model's weight commitment. [`VerifyingKey::from_bytes`] is bounded and
//!   checks the weight-range proof, so a decoded key is always a checked one.
//! - [`prove`]: `(output, proof)` for one quantized input, with progress in `[0, 1]`.
//! - [`verify`]: checks a proof against a key, input and output. The proof length is computed
//!   from the key and checked before any proof byte is read; the key's verification cost was
//!   bounded when it was decoded ([`crate::v2::MAX_VERIFIER_WORK`]).
//!
//! Protocol: v2 ([`crate::v2`], docs/zk.md section 3). Not zero-knowledge (section 5).

use opal_quant::QuantModel;

use crate::error::ZkError;
use crate::v2::{self, ProverModel, RegisteredModel};

/// Largest [`VerifyingKey`] encoding accepted.
pub const MAX_VK_BYTES: usize = 64 << 20;
/// Largest [`Setup`] encoding accepted.
pub const MAX_SETUP_BYTES: usize = 512 << 20;
/// Largest proof accepted by [`verify`] (the exact length is checked as well).
pub const MAX_PROOF_BYTES: usize = 256 << 20;

const VK_MAGIC: [u8; 8] = *b"OPALZKVK";
const SETUP_MAGIC: [u8; 8] = *b"OPALZKSU";
const VERSION: u16 = 2;

/// Prover-side data kept by the node (one per model).
pub struct Setup {
    prover: ProverModel,
    vk: VerifyingKey,
}

/// What a verifier needs for a model; see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyingKey {
    registered: RegisteredModel,
    registration_proof: Vec<u8>,
}

/// Commits to the model's weights and proves they are in their declared ranges.
pub fn setup(model: &QuantModel) -> Result<Setup, ZkError> {
    let (prover, registered) = v2::register(model)?;
    let registration_proof = v2::prove_registration(&prover, &registered)?;
    Ok(Setup {
        prover,
        vk: VerifyingKey {
            registered,
            registration_proof,
        },
    })
}

/// The verifying key of a setup.
pub fn verifying_key(s: &Setup) -> VerifyingKey {
    s.vk.clone()
}

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
    v2::prove_with_progress(&setup.prover, &setup.vk.registered, input, None, progress)
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
    v2::verify(&vk.registered, input, output, proof)
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
    fn end(&self, what: &'static str) -> Result<(), ZkError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ZkError::Model(format!("{what}: trailing bytes")))
        }
    }
}

impl VerifyingKey {
    /// `"OPALZKVK" || u16 LE version (2) || u32 LE len || registered model (structure + weight
    /// commitments, [`RegisteredModel::to_bytes`]) || u32 LE len || weight-range proof`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = VK_MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
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
        let registered = RegisteredModel::from_bytes(f.next("verifying key")?)?;
        let registration_proof = f.next("verifying key")?.to_vec();
        f.end("verifying key")?;
        v2::registered_shape(&registered)?;
        v2::verify_registration(&registered, &registration_proof)?;
        Ok(Self {
            registered,
            registration_proof,
        })
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

impl Setup {
    /// `"OPALZKSU" || u16 LE version (2) || u32 LE len || .opalq model file || u32 LE len ||
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
    /// verifying key (weight-range proof included).
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        if b.len() > MAX_SETUP_BYTES {
            return Err(ZkError::Model(format!(
                "setup of {} bytes exceeds {MAX_SETUP_BYTES}",
                b.len()
            )));
        }
        let mut f = Fields::header(b, &SETUP_MAGIC, "setup")?;
        let model = QuantModel::from_file_bytes(f.next("setup")?)
            .map_err(|e| ZkError::Model(format!("setup: {e}")))?;
        let vk = VerifyingKey::from_bytes(f.next("setup")?)?;
        f.end("setup")?;
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
