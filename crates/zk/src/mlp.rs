//! Whole-model proof for the straight-line models of `opal-quant` (Dense + Requant).
//!
//! Current protocol (v1, see docs/zk.md): every intermediate vector is sent in the clear,
//! Requant layers are checked directly by the verifier, Dense layers by sum-check. Sound, but
//! neither succinct in the witness nor zero-knowledge.

use crate::error::ZkError;
use crate::field::{ef_from_bytes, ef_to_bytes, EF_BYTES, LOG2_EF};
use crate::sumcheck::SumcheckProof;
use crate::transcript::Transcript;
use crate::{conv, dense};
use opal_quant::{requantize, Layer, QuantModel};

/// Identifies the protocol and its parameters in the transcript.
pub const PROTOCOL: &[u8] = opal_domains::label::ZK_MLP_CLEAR_ACTIVATIONS.as_bytes();

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlpProof {
    /// Outputs of layers `0..L-1` (the last layer's output is the public output).
    pub intermediates: Vec<Vec<i64>>,
    /// One sum-check per linear (Dense or Conv2d) layer, in layer order.
    pub dense: Vec<SumcheckProof>,
}

fn model_shapes(model: &QuantModel) -> Result<Vec<opal_quant::ValueShape>, ZkError> {
    ensure_supported(model)?;
    model.validate().map_err(|e| ZkError::Model(e.to_string()))
}

/// Layers the prover does not support yet are refused up front (never a fake proof). Every
/// layer kind of `opal-quant` v1 (Dense, Conv2d, Requant) is supported today.
pub(crate) fn ensure_supported(model: &QuantModel) -> Result<(), ZkError> {
    if model
        .layers
        .iter()
        .any(|l| matches!(l, Layer::MaxPool2d(_) | Layer::Add(_)))
    {
        return Err(ZkError::Unimplemented(
            "MaxPool2d / Add in protocols v1 and v1c",
        ));
    }
    Ok(())
}

/// Shape of the proof part of one linear layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinearShape {
    /// Variables of the weight table's MLE.
    pub weight_vars: usize,
    /// Sum-check rounds.
    pub rounds: usize,
    /// Numerator of the layer's soundness error over `|EF|`.
    pub error_terms: usize,
}

pub(crate) fn linear_shape(layer: &Layer) -> Option<LinearShape> {
    match layer {
        Layer::Dense(d) => {
            let (a, c) = dense::dims(d);
            Some(LinearShape {
                weight_vars: a + c,
                rounds: c,
                error_terms: a + 2 * c,
            })
        }
        Layer::Conv2d(cv) => {
            let (a, pb, cb) = conv::dims(cv);
            Some(LinearShape {
                weight_vars: a + cb,
                rounds: cb,
                error_terms: a + pb + 2 * cb,
            })
        }
        Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => None,
    }
}

fn bind_statement(model: &QuantModel, input: &[i64], output: &[i64]) -> Transcript {
    let mut t = Transcript::new(PROTOCOL);
    t.absorb(b"model-id", &model.model_id());
    t.absorb_i64s(b"input", input);
    t.absorb_i64s(b"output", output);
    t
}

#[cfg(feature = "prover")]
/// Runs the model and proves its output. Returns `(output, proof)`.
pub fn prove(model: &QuantModel, input: &[i64]) -> Result<(Vec<i64>, MlpProof), ZkError> {
    ensure_supported(model)?;
    let trace = model
        .execute(input)
        .map_err(|e| ZkError::Model(e.to_string()))?;
    let n = trace.values.len();
    let output = trace.values[n - 1].clone();
    let intermediates = trace.values[1..n - 1].to_vec();
    let mut t = bind_statement(model, input, &output);
    for v in &intermediates {
        t.absorb_i64s(b"intermediate", v);
    }
    let mut proofs = Vec::new();
    for (k, layer) in model.layers.iter().enumerate() {
        match layer {
            Layer::Dense(d) => proofs.push(dense::prove(&mut t, d, &trace.values[k])),
            Layer::Conv2d(c) => proofs.push(conv::prove_with_point(&mut t, c, &trace.values[k]).0),
            Layer::Requant(_) | Layer::MaxPool2d(_) | Layer::Add(_) => {}
        }
    }
    Ok((
        output,
        MlpProof {
            intermediates,
            dense: proofs,
        },
    ))
}

/// Checks `proof` for `output = model(input)`.
pub fn verify(
    model: &QuantModel,
    input: &[i64],
    output: &[i64],
    proof: &MlpProof,
) -> Result<(), ZkError> {
    let shapes = model_shapes(model)?;
    let values = check_values(model, &shapes, input, &proof.intermediates, output)?;
    let mut t = bind_statement(model, input, output);
    for v in &proof.intermediates {
        t.absorb_i64s(b"intermediate", v);
    }
    let mut dense_proofs = proof.dense.iter();
    for (k, layer) in model.layers.iter().enumerate() {
        let (x, y) = (values[k], values[k + 1]);
        match layer {
            Layer::Dense(d) => {
                let p = dense_proofs.next().ok_or(ZkError::Length {
                    what: "dense proofs",
                    expected: k + 1,
                    got: proof.dense.len(),
                })?;
                dense::verify(&mut t, k, d, x, y, p)?;
            }
            Layer::Conv2d(c) => {
                let p = dense_proofs.next().ok_or(ZkError::Length {
                    what: "linear proofs",
                    expected: k + 1,
                    got: proof.dense.len(),
                })?;
                let (r_o, point, fin, x_eval) = conv::reduce(&mut t, k, c, x, y, p)?;
                if conv::weight_eval(c, &r_o, &point) * x_eval != fin {
                    return Err(ZkError::SumcheckFinal { layer: k });
                }
            }
            Layer::MaxPool2d(_) | Layer::Add(_) => {
                return Err(ZkError::Unimplemented("MaxPool2d / Add in protocol v1"))
            }
            Layer::Requant(r) => {
                if let Some(index) = x.iter().zip(y).position(|(a, b)| requantize(*a, r) != *b) {
                    return Err(ZkError::Requant { layer: k, index });
                }
            }
        }
    }
    if dense_proofs.next().is_some() {
        return Err(ZkError::Length {
            what: "dense proofs",
            expected: 0,
            got: 1,
        });
    }
    Ok(())
}

/// Checks lengths and magnitude bounds of every clear vector; returns `[input, intermediates.., output]`.
pub(crate) fn check_values<'a>(
    model: &QuantModel,
    shapes: &[opal_quant::ValueShape],
    input: &'a [i64],
    intermediates: &'a [Vec<i64>],
    output: &'a [i64],
) -> Result<Vec<&'a [i64]>, ZkError> {
    let l = model.layers.len();
    if intermediates.len() + 1 != l {
        return Err(ZkError::Length {
            what: "intermediates",
            expected: l - 1,
            got: intermediates.len(),
        });
    }
    let mut values: Vec<&[i64]> = Vec::with_capacity(l + 1);
    values.push(input);
    values.extend(intermediates.iter().map(Vec::as_slice));
    values.push(output);
    for (k, (v, s)) in values.iter().zip(shapes).enumerate() {
        if v.len() != s.len {
            return Err(ZkError::Length {
                what: "value vector",
                expected: s.len,
                got: v.len(),
            });
        }
        if let Some((index, &value)) = v
            .iter()
            .enumerate()
            .find(|(_, x)| (**x as i128).abs() > s.max_abs)
        {
            return Err(ZkError::Range {
                what: if k == 0 { "input" } else { "value" },
                index,
                value,
            });
        }
    }
    let half = 1i64 << (model.input_bits - 1);
    if let Some((index, &value)) = input.iter().enumerate().find(|(_, x)| **x >= half) {
        return Err(ZkError::Range {
            what: "input",
            index,
            value,
        });
    }
    Ok(values)
}

/// Exact encoded size of a proof for `model`, computed from the model alone.
pub fn proof_len(model: &QuantModel) -> Result<usize, ZkError> {
    let shapes = model_shapes(model)?;
    let values: usize = shapes[1..shapes.len() - 1].iter().map(|s| s.len).sum();
    let rounds: usize = model
        .layers
        .iter()
        .filter_map(linear_shape)
        .map(|s| s.rounds)
        .sum();
    Ok(values * 8 + rounds * 3 * EF_BYTES)
}

impl MlpProof {
    /// Canonical encoding: intermediates as i64 LE (lengths implied by the model), then every
    /// round message as three 16-byte field elements.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.intermediates
            .iter()
            .flatten()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        for p in &self.dense {
            p.rounds
                .iter()
                .flatten()
                .for_each(|e| out.extend_from_slice(&ef_to_bytes(e)));
        }
        out
    }

    /// Decodes untrusted bytes; the expected length is computed from the model before any byte
    /// is read, so work and allocation are bounded by the model.
    pub fn from_bytes(model: &QuantModel, bytes: &[u8]) -> Result<Self, ZkError> {
        let expected = proof_len(model)?;
        if bytes.len() != expected {
            return Err(ZkError::ProofLength {
                expected,
                got: bytes.len(),
            });
        }
        let shapes = model_shapes(model)?;
        let mut off = 0;
        let mut intermediates = Vec::new();
        for s in &shapes[1..shapes.len() - 1] {
            let v = bytes[off..off + 8 * s.len]
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            off += 8 * s.len;
            intermediates.push(v);
        }
        let mut dense = Vec::new();
        for layer in &model.layers {
            if let Some(shape) = linear_shape(layer) {
                let mut rounds = Vec::new();
                for _ in 0..shape.rounds {
                    let mut msg = [crate::field::EF::default(); 3];
                    for m in msg.iter_mut() {
                        *m = ef_from_bytes(&bytes[off..off + EF_BYTES])
                            .ok_or(ZkError::NonCanonical { offset: off })?;
                        off += EF_BYTES;
                    }
                    rounds.push(msg);
                }
                dense.push(SumcheckProof { rounds });
            }
        }
        Ok(Self {
            intermediates,
            dense,
        })
    }
}

/// Soundness error of one proof for `model`, as `-log2(epsilon)` bits (Fiat-Shamir in the
/// random-oracle model, per-query): each Dense layer contributes `(a + 2c) / |EF|` (Schwartz-
/// Zippel on the row point, then `c` degree-2 sum-check rounds); Requant layers are checked
/// exactly. Challenge sampling (u128 mod p) only scales each term by `(1 + 2^-64)^2`.
pub fn soundness_bits(model: &QuantModel) -> Result<f64, ZkError> {
    model_shapes(model)?;
    let terms: usize = model
        .layers
        .iter()
        .filter_map(linear_shape)
        .map(|s| s.error_terms)
        .sum();
    Ok(LOG2_EF - (terms.max(1) as f64).log2())
}
