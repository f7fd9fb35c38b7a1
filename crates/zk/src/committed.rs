//! Model proof with **committed weights** (protocol v1c): the verifier holds only the model's
//! structure (weights stripped: shapes, biases, requant parameters) and one Ligero commitment
//! per Dense layer, made once at registration. Each Dense layer's final sum-check claim
//! `~W(r, r') * ~x(r')` is discharged by opening the weight commitment at `(r, r')`.
//! Intermediate activations are still sent in the clear and Requant is checked directly.

use crate::error::ZkError;
use crate::field::EF_BYTES;
use crate::mlp::check_values;
use crate::mlp::{linear_shape, LinearShape};
use crate::pcs::{self, Commitment, Committed, Opening};
use crate::sumcheck::SumcheckProof;
use crate::transcript::Transcript;
use crate::{conv, dense};
use opal_quant::{requantize, Layer, QuantModel};

pub const PROTOCOL: &[u8] = opal_domains::label::ZK_MLP_COMMITTED_WEIGHTS.as_bytes();

/// What a registry stores and a verifier needs: structure without weights + commitments.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisteredModel {
    pub structure: QuantModel,
    /// One per Dense layer, in layer order.
    pub weights: Vec<Commitment>,
}

impl RegisteredModel {
    pub fn id(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(opal_domains::derive::ZK_REGISTERED_MODEL);
        h.update(&self.structure.model_id());
        for c in &self.weights {
            h.update(&[c.n_vars]);
            h.update(&c.root);
        }
        *h.finalize().as_bytes()
    }
}

/// Prover-side model: the full model and the commitment data (kept between proofs).
pub struct ProverModel {
    pub model: QuantModel,
    pub committed: Vec<Committed>,
}

/// One-time registration: commits to every Dense layer's weight table.
pub fn register(model: &QuantModel) -> Result<(ProverModel, RegisteredModel), ZkError> {
    crate::mlp::ensure_supported(model)?;
    model
        .validate()
        .map_err(|e| ZkError::Model(e.to_string()))?;
    let committed = model
        .layers
        .iter()
        .filter_map(|l| match l {
            Layer::Dense(d) => Some(pcs::commit(&dense::weight_table(d))),
            Layer::Conv2d(c) => Some(pcs::commit(&conv::weight_table(c))),
            Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => None,
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reg = RegisteredModel {
        structure: model.without_weights(),
        weights: committed.iter().map(|c| c.commitment.clone()).collect(),
    };
    Ok((
        ProverModel {
            model: model.clone(),
            committed,
        },
        reg,
    ))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedProof {
    pub intermediates: Vec<Vec<i64>>,
    pub dense: Vec<(SumcheckProof, Opening)>,
}

fn bind(
    reg_id: &[u8; 32],
    input: &[i64],
    output: &[i64],
    intermediates: &[Vec<i64>],
) -> Transcript {
    let mut t = Transcript::new(PROTOCOL);
    t.absorb(b"registered-model-id", reg_id);
    t.absorb_i64s(b"input", input);
    t.absorb_i64s(b"output", output);
    intermediates
        .iter()
        .for_each(|v| t.absorb_i64s(b"intermediate", v));
    t
}

#[cfg(feature = "prover")]
pub fn prove(
    pm: &ProverModel,
    reg: &RegisteredModel,
    input: &[i64],
) -> Result<(Vec<i64>, CommittedProof), ZkError> {
    crate::mlp::ensure_supported(&pm.model)?;
    let trace = pm
        .model
        .execute(input)
        .map_err(|e| ZkError::Model(e.to_string()))?;
    let n = trace.values.len();
    let output = trace.values[n - 1].clone();
    let intermediates = trace.values[1..n - 1].to_vec();
    let mut t = bind(&reg.id(), input, &output, &intermediates);
    let mut proofs = Vec::new();
    let mut commits = pm.committed.iter();
    for (k, layer) in pm.model.layers.iter().enumerate() {
        let (sc, r, point) = match layer {
            Layer::Dense(d) => dense::prove_with_point(&mut t, d, &trace.values[k]),
            Layer::Conv2d(cv) => conv::prove_with_point(&mut t, cv, &trace.values[k]),
            Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => continue,
        };
        let c = commits
            .next()
            .ok_or(ZkError::Model("missing commitment".into()))?;
        let full: Vec<_> = r.iter().chain(&point).copied().collect();
        let (_, opening) = pcs::open(&mut t, c, &full)?;
        proofs.push((sc, opening));
    }
    Ok((
        output,
        CommittedProof {
            intermediates,
            dense: proofs,
        },
    ))
}

fn dense_layers(reg: &RegisteredModel) -> Result<Vec<LinearShape>, ZkError> {
    crate::mlp::ensure_supported(&reg.structure)?;
    let dl: Vec<LinearShape> = reg
        .structure
        .layers
        .iter()
        .filter_map(linear_shape)
        .collect();
    if dl.len() != reg.weights.len()
        || dl
            .iter()
            .zip(&reg.weights)
            .any(|(s, w)| s.weight_vars != w.n_vars as usize)
    {
        return Err(ZkError::Model(
            "weight commitments do not match the structure".into(),
        ));
    }
    Ok(dl)
}

pub fn verify(
    reg: &RegisteredModel,
    input: &[i64],
    output: &[i64],
    proof: &CommittedProof,
) -> Result<(), ZkError> {
    let shapes = reg
        .structure
        .validate_structure()
        .map_err(|e| ZkError::Model(e.to_string()))?;
    dense_layers(reg)?;
    let values = check_values(&reg.structure, &shapes, input, &proof.intermediates, output)?;
    let mut t = bind(&reg.id(), input, output, &proof.intermediates);
    let mut dense_proofs = proof.dense.iter().zip(&reg.weights);
    for (k, layer) in reg.structure.layers.iter().enumerate() {
        let (x, y) = (values[k], values[k + 1]);
        match layer {
            Layer::Dense(d) => {
                let ((sc, opening), com) = dense_proofs.next().ok_or(ZkError::Length {
                    what: "dense proofs",
                    expected: k + 1,
                    got: proof.dense.len(),
                })?;
                let (r, point, fin) = dense::reduce(&mut t, k, d, y, sc)?;
                let full: Vec<_> = r.iter().chain(&point).copied().collect();
                let w_eval = pcs::verify(&mut t, com, &full, opening)?;
                if w_eval * dense::eval_clear(x, &point) != fin {
                    return Err(ZkError::SumcheckFinal { layer: k });
                }
            }
            Layer::Conv2d(cv) => {
                let ((sc, opening), com) = dense_proofs.next().ok_or(ZkError::Length {
                    what: "linear proofs",
                    expected: k + 1,
                    got: proof.dense.len(),
                })?;
                let (r_o, point, fin, x_eval) = conv::reduce(&mut t, k, cv, x, y, sc)?;
                let full: Vec<_> = r_o.iter().chain(&point).copied().collect();
                let w_eval = pcs::verify(&mut t, com, &full, opening)?;
                if w_eval * x_eval != fin {
                    return Err(ZkError::SumcheckFinal { layer: k });
                }
            }
            Layer::MaxPool2d(_) | Layer::Add(_) => {
                return Err(ZkError::Unimplemented("MaxPool2d / Add in protocol v1c"))
            }
            Layer::Requant(r) => {
                if let Some(index) = x.iter().zip(y).position(|(a, b)| requantize(*a, r) != *b) {
                    return Err(ZkError::Requant { layer: k, index });
                }
            }
        }
    }
    if proof.dense.len() != reg.weights.len() {
        return Err(ZkError::Length {
            what: "dense proofs",
            expected: reg.weights.len(),
            got: proof.dense.len(),
        });
    }
    Ok(())
}

/// Exact encoded length, from the registered model alone.
pub fn proof_len(reg: &RegisteredModel) -> Result<usize, ZkError> {
    let shapes = reg
        .structure
        .validate_structure()
        .map_err(|e| ZkError::Model(e.to_string()))?;
    let dl = dense_layers(reg)?;
    let values: usize = shapes[1..shapes.len() - 1].iter().map(|s| s.len).sum();
    Ok(values * 8
        + dl.iter()
            .map(|s| s.rounds * 3 * EF_BYTES + pcs::opening_bytes(s.weight_vars))
            .sum::<usize>())
}

impl CommittedProof {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.intermediates
            .iter()
            .flatten()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        for (sc, o) in &self.dense {
            sc.rounds
                .iter()
                .flatten()
                .for_each(|e| out.extend_from_slice(&crate::field::ef_to_bytes(e)));
            o.encode(&mut out);
        }
        out
    }

    /// Bounded decoding: the exact length is computed from the registered model first.
    pub fn from_bytes(reg: &RegisteredModel, bytes: &[u8]) -> Result<Self, ZkError> {
        let expected = proof_len(reg)?;
        if bytes.len() != expected {
            return Err(ZkError::ProofLength {
                expected,
                got: bytes.len(),
            });
        }
        let shapes = reg
            .structure
            .validate_structure()
            .map_err(|e| ZkError::Model(e.to_string()))?;
        let mut off = 0;
        let mut intermediates = Vec::new();
        for s in &shapes[1..shapes.len() - 1] {
            intermediates.push(
                bytes[off..off + 8 * s.len]
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            );
            off += 8 * s.len;
        }
        let mut dense = Vec::new();
        for shape in dense_layers(reg)? {
            let mut rounds = Vec::with_capacity(shape.rounds);
            for _ in 0..shape.rounds {
                let mut msg = [crate::field::EF::default(); 3];
                for m in msg.iter_mut() {
                    *m = crate::field::ef_from_bytes(&bytes[off..off + EF_BYTES])
                        .ok_or(ZkError::NonCanonical { offset: off })?;
                    off += EF_BYTES;
                }
                rounds.push(msg);
            }
            let len = pcs::opening_bytes(shape.weight_vars);
            let o = Opening::decode(shape.weight_vars, &bytes[off..off + len])?;
            off += len;
            dense.push((SumcheckProof { rounds }, o));
        }
        Ok(Self {
            intermediates,
            dense,
        })
    }
}

/// Soundness error of one v1c proof as `-log2(epsilon)`: per Dense layer the sum-check terms of
/// `mlp::soundness_bits` plus the opening: `(2^n1 + 1) / |EF|` for the random row combination
/// and `(1 - d/3)^QUERIES` with `d = 3/4` for the column queries (conservative Ligero bound).
pub fn soundness_bits(reg: &RegisteredModel) -> Result<f64, ZkError> {
    let dl = dense_layers(reg)?;
    let ef = 2f64.powf(-crate::field::LOG2_EF);
    let eps: f64 = dl
        .iter()
        .map(|s| {
            let n1 = pcs::split(s.weight_vars).0;
            s.error_terms as f64 * ef
                + (2f64.powi(n1 as i32) + 1.0) * ef
                + 0.75f64.powi(pcs::QUERIES as i32)
        })
        .sum();
    Ok(-eps.log2())
}

impl RegisteredModel {
    /// Canonical encoding: `u32 LE len || borsh(structure) || u32 LE count || count x (n_vars
    /// u8 || root 32 bytes)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let s = borsh::to_vec(&self.structure).unwrap_or_default();
        let mut out = Vec::with_capacity(8 + s.len() + 33 * self.weights.len());
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(&s);
        out.extend_from_slice(&(self.weights.len() as u32).to_le_bytes());
        for c in &self.weights {
            out.push(c.n_vars);
            out.extend_from_slice(&c.root);
        }
        out
    }

    /// Bounded decoding of [`to_bytes`](Self::to_bytes); the structure must validate
    /// (weights stripped) and carry exactly one commitment per linear layer.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        let bad = |what: &str| ZkError::Model(format!("registered model encoding: {what}"));
        let len = b
            .get(..4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
            .ok_or_else(|| bad("truncated"))?;
        let s = b
            .get(4..4 + len)
            .ok_or_else(|| bad("truncated structure"))?;
        let structure: QuantModel =
            borsh::from_slice(s).map_err(|e| bad(&format!("structure: {e}")))?;
        let rest = &b[4 + len..];
        let count = rest
            .get(..4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
            .ok_or_else(|| bad("truncated count"))?;
        let rest = &rest[4..];
        if count.checked_mul(33) != Some(rest.len()) {
            return Err(bad("commitment list length"));
        }
        let weights = rest
            .chunks_exact(33)
            .map(|c| {
                let mut root = [0u8; 32];
                root.copy_from_slice(&c[1..]);
                Commitment { n_vars: c[0], root }
            })
            .collect();
        let reg = Self { structure, weights };
        reg.structure
            .validate_structure()
            .map_err(|e| ZkError::Model(e.to_string()))?;
        if reg
            .structure
            .layers
            .iter()
            .any(|l| !matches!(l, Layer::Requant(_)) && has_weights(l))
        {
            return Err(bad("structure must not carry weights"));
        }
        let linear = reg
            .structure
            .layers
            .iter()
            .filter(|l| !matches!(l, Layer::Requant(_)))
            .count();
        if linear != reg.weights.len() {
            return Err(bad("one commitment per linear layer"));
        }
        Ok(reg)
    }
}

fn has_weights(l: &Layer) -> bool {
    match l {
        Layer::Dense(d) => !d.weights.is_empty(),
        Layer::Conv2d(c) => !c.weights.is_empty(),
        Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => false,
    }
}
