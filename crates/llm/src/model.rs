//! The llama-family transformer on candle's quantized kernels, with an explicit [`KvCache`].
//!
//! This is a small re-implementation of the forward pass of `candle-transformers`'
//! `quantized_llama` (same weight names, same interleaved RoPE as GGUF stores it), written here
//! because the activation commitments need the *last hidden states of every position* (the
//! output of the final RMSNorm, i.e. what the LM head sees), which `quantized_llama` does not
//! expose, and because each request must own its KV cache while the weights are shared.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};

use crate::LlmError;

fn cerr(e: candle_core::Error) -> LlmError {
    LlmError::Backend(e.to_string())
}

/// Hyper-parameters read from the GGUF metadata (`{arch}.*` keys).
#[derive(Clone, Debug)]
pub(crate) struct LlamaConfig {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub rms_eps: f64,
    pub context_length: usize,
    pub vocab_size: usize,
}

struct Layer {
    attn_q: QMatMul,
    attn_k: QMatMul,
    attn_v: QMatMul,
    attn_o: QMatMul,
    attn_norm: Tensor,
    ffn_gate: QMatMul,
    ffn_up: QMatMul,
    ffn_down: QMatMul,
    ffn_norm: Tensor,
}

/// Longest block of tokens run through the model in one forward call.
pub(crate) const PREFILL_BLOCK: usize = 512;

/// Quantized llama weights. Immutable after load; shared by all requests.
pub(crate) struct Llama {
    tok_embd: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QMatMul,
    cos: Tensor,
    sin: Tensor,
    pub cfg: LlamaConfig,
    pub device: Device,
}

/// The key/value cache of one sequence: per layer the keys and values of every position seen so
/// far, shape `(1, n_kv_head, positions, head_dim)`. Each generation (and each verification
/// prefill) owns one; the model weights are never mutated, so requests run concurrently.
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    pub(crate) fn new(n_layer: usize) -> Self {
        KvCache {
            layers: (0..n_layer).map(|_| None).collect(),
            len: 0,
        }
    }
    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

pub(crate) fn md_u32(md: &HashMap<String, gguf_file::Value>, key: &str) -> Result<usize, LlmError> {
    let v = md
        .get(key)
        .ok_or_else(|| LlmError::BadModel(format!("missing metadata key {key}")))?;
    let n = match v {
        gguf_file::Value::U32(x) => *x as u64,
        gguf_file::Value::U64(x) => *x,
        gguf_file::Value::I32(x) if *x >= 0 => *x as u64,
        gguf_file::Value::I64(x) if *x >= 0 => *x as u64,
        gguf_file::Value::U16(x) => *x as u64,
        gguf_file::Value::U8(x) => *x as u64,
        other => {
            return Err(LlmError::BadModel(format!(
                "metadata {key}: unexpected value {other:?}"
            )))
        }
    };
    usize::try_from(n).map_err(|_| LlmError::BadModel(format!("metadata {key} out of range")))
}

pub(crate) fn md_f32(md: &HashMap<String, gguf_file::Value>, key: &str) -> Option<f32> {
    match md.get(key)? {
        gguf_file::Value::F32(x) => Some(*x),
        gguf_file::Value::F64(x) => Some(*x as f32),
        _ => None,
    }
}

/// Test/benchmark facility (never used by the node): multiplies every f32 value of a weight
/// tensor by `1 + rel_err * r`, `r` uniform in `[-1, 1]` from a xorshift stream seeded by `seed`,
/// to stand in for another machine's f32 rounding (see [`crate::LlmModel::load_with_weight_noise`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WeightNoise {
    pub rel_err: f32,
    pub seed: u64,
}

impl WeightNoise {
    fn apply(&self, t: &Tensor, salt: u64) -> Result<Tensor, LlmError> {
        let shape = t.shape().clone();
        let device = t.device().clone();
        let v = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(cerr)?;
        // xorshift64*, a distinct stream per tensor
        let mut st = (self.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
        let v: Vec<f32> = v
            .into_iter()
            .map(|x| {
                st ^= st >> 12;
                st ^= st << 25;
                st ^= st >> 27;
                let bits = st.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
                let r = bits as f32 / (1u64 << 23) as f32 - 1.0; // [-1, 1)
                x * (1.0 + self.rel_err * r)
            })
            .collect();
        Tensor::from_vec(v, shape, &device).map_err(cerr)
    }
}

impl Llama {
    pub fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        arch: &str,
        device: &Device,
        dequantize: bool,
        noise: Option<WeightNoise>,
    ) -> Result<Self, LlmError> {
        if noise.is_some() && !dequantize {
            return Err(LlmError::BadRequest(
                "weight noise needs f32 weights (dequantize_weights)".into(),
            ));
        }
        let salt = std::cell::Cell::new(0u64);
        let perturb = |t: Tensor| -> Result<Tensor, LlmError> {
            salt.set(salt.get() + 1);
            match noise {
                Some(n) => n.apply(&t, salt.get()),
                None => Ok(t),
            }
        };
        let md = &ct.metadata;
        let n_head = md_u32(md, &format!("{arch}.attention.head_count"))?;
        let n_kv_head = md
            .get(&format!("{arch}.attention.head_count_kv"))
            .map(|_| md_u32(md, &format!("{arch}.attention.head_count_kv")))
            .transpose()?
            .unwrap_or(n_head);
        let n_layer = md_u32(md, &format!("{arch}.block_count"))?;
        let hidden = md_u32(md, &format!("{arch}.embedding_length"))?;
        let context_length = md_u32(md, &format!("{arch}.context_length"))?;
        let rms_eps = md_f32(md, &format!("{arch}.attention.layer_norm_rms_epsilon"))
            .ok_or_else(|| LlmError::BadModel("missing layer_norm_rms_epsilon".into()))?
            as f64;
        let rope_theta = md_f32(md, &format!("{arch}.rope.freq_base")).unwrap_or(10000.0);
        if n_head == 0 || n_kv_head == 0 || hidden % n_head != 0 || n_head % n_kv_head != 0 {
            return Err(LlmError::BadModel(format!(
                "inconsistent heads: hidden {hidden}, heads {n_head}, kv heads {n_kv_head}"
            )));
        }
        let head_dim = hidden / n_head;
        if let Ok(rope_dim) = md_u32(md, &format!("{arch}.rope.dimension_count")) {
            if rope_dim != head_dim {
                return Err(LlmError::BadModel(format!(
                    "partial RoPE (rope dim {rope_dim} != head dim {head_dim}) is not supported"
                )));
            }
        }
        if n_layer == 0 || n_layer > 1024 || context_length == 0 {
            return Err(LlmError::BadModel(format!(
                "implausible layer count {n_layer} / context {context_length}"
            )));
        }

        let mut qt = |name: &str| -> Result<QTensor, LlmError> {
            ct.tensor(r, name, device)
                .map_err(|e| LlmError::BadModel(format!("tensor {name}: {e}")))
        };
        let tok_embd = qt("token_embd.weight")?;
        let tok_embd = Arc::new(if noise.is_some() {
            let t = perturb(tok_embd.dequantize(device).map_err(cerr)?)?;
            QTensor::quantize(&t, candle_core::quantized::GgmlDType::F32).map_err(cerr)?
        } else {
            tok_embd
        });
        let (vocab_size, emb_dim) = tok_embd.shape().dims2().map_err(cerr)?;
        if emb_dim != hidden {
            return Err(LlmError::BadModel(format!(
                "token_embd width {emb_dim} != embedding_length {hidden}"
            )));
        }
        let norm = perturb(qt("output_norm.weight")?.dequantize(device).map_err(cerr)?)?;
        let output = if ct.tensor_infos.contains_key("output.weight") {
            QMatMul::from_qtensor(qt("output.weight")?).map_err(cerr)?
        } else {
            // Tied embeddings (SmolLM2): the LM head is the embedding matrix.
            QMatMul::from_arc(tok_embd.clone()).map_err(cerr)?
        };
        let output = match output {
            QMatMul::QTensor(t) if dequantize => {
                QMatMul::Tensor(perturb(t.dequantize(device).map_err(cerr)?)?)
            }
            o => o,
        };
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = format!("blk.{i}");
            let mm = |t: QTensor| -> Result<QMatMul, LlmError> {
                if dequantize {
                    Ok(QMatMul::Tensor(perturb(
                        t.dequantize(device).map_err(cerr)?,
                    )?))
                } else {
                    QMatMul::from_qtensor(t).map_err(cerr)
                }
            };
            layers.push(Layer {
                attn_q: mm(qt(&format!("{p}.attn_q.weight"))?)?,
                attn_k: mm(qt(&format!("{p}.attn_k.weight"))?)?,
                attn_v: mm(qt(&format!("{p}.attn_v.weight"))?)?,
                attn_o: mm(qt(&format!("{p}.attn_output.weight"))?)?,
                attn_norm: perturb(
                    qt(&format!("{p}.attn_norm.weight"))?
                        .dequantize(device)
                        .map_err(cerr)?,
                )?,
                ffn_gate: mm(qt(&format!("{p}.ffn_gate.weight"))?)?,
                ffn_up: mm(qt(&format!("{p}.ffn_up.weight"))?)?,
                ffn_down: mm(qt(&format!("{p}.ffn_down.weight"))?)?,
                ffn_norm: perturb(
                    qt(&format!("{p}.ffn_norm.weight"))?
                        .dequantize(device)
                        .map_err(cerr)?,
                )?,
            });
        }
        // RoPE tables for every position of the context.
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1f32 / rope_theta.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(context_length * half);
        let mut sin = Vec::with_capacity(context_length * half);
        for pos in 0..context_length {
            for f in &inv {
                let a = pos as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        // (another libm may round these differently: perturbed too)
        let cos = perturb(Tensor::from_vec(cos, (context_length, half), device).map_err(cerr)?)?;
        let sin = perturb(Tensor::from_vec(sin, (context_length, half), device).map_err(cerr)?)?;
        Ok(Llama {
            tok_embd,
            layers,
            norm,
            output,
            cos,
            sin,
            cfg: LlamaConfig {
                n_layer,
                n_head,
                n_kv_head,
                head_dim,
                hidden,
                rms_eps,
                context_length,
                vocab_size,
            },
            device: device.clone(),
        })
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.n_layer)
    }

    /// Runs `tokens` (appended after the cached positions) through the model and returns the
    /// last hidden states (after the final RMSNorm), shape `(tokens.len(), hidden)`.
    pub fn forward_hidden(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor, LlmError> {
        let seq = tokens.len();
        let pos0 = cache.len;
        if seq == 0 {
            return Err(LlmError::Backend("forward on zero tokens".into()));
        }
        if pos0 + seq > self.cfg.context_length {
            return Err(LlmError::ContextTooLong {
                tokens: pos0 + seq,
                max: self.cfg.context_length,
            });
        }
        let c = &self.cfg;
        let ids = Tensor::new(tokens, &self.device).map_err(cerr)?;
        let mut x = self
            .tok_embd
            .embedding(&ids)
            .map_err(cerr)?
            .unsqueeze(0)
            .map_err(cerr)?; // (1, seq, hidden)
        let cos = self.cos.narrow(0, pos0, seq).map_err(cerr)?;
        let sin = self.sin.narrow(0, pos0, seq).map_err(cerr)?;
        let total = pos0 + seq;
        let mask = if seq > 1 {
            let m: Vec<f32> = (0..seq)
                .flat_map(|i| {
                    (0..total).map(move |j| if j > pos0 + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            Some(Tensor::from_vec(m, (seq, total), &self.device).map_err(cerr)?)
        } else {
            None
        };
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let n_rep = c.n_head / c.n_kv_head;
        for (li, layer) in self.layers.iter().enumerate() {
            let mut run = || -> candle_core::Result<Tensor> {
                let residual = &x;
                let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.rms_eps as f32)?;
                let q = layer
                    .attn_q
                    .forward(&h)?
                    .reshape((1, seq, c.n_head, c.head_dim))?
                    .transpose(1, 2)?;
                let k = layer
                    .attn_k
                    .forward(&h)?
                    .reshape((1, seq, c.n_kv_head, c.head_dim))?
                    .transpose(1, 2)?;
                let v = layer
                    .attn_v
                    .forward(&h)?
                    .reshape((1, seq, c.n_kv_head, c.head_dim))?
                    .transpose(1, 2)?;
                let q = candle_nn::rotary_emb::rope_i(&q.contiguous()?, &cos, &sin)?;
                let k = candle_nn::rotary_emb::rope_i(&k.contiguous()?, &cos, &sin)?;
                let v = v.contiguous()?;
                let (k, v) = match &cache.layers[li] {
                    Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
                    None => (k, v),
                };
                cache.layers[li] = Some((k.clone(), v.clone()));
                let (k, v) = if n_rep > 1 {
                    let rep = |t: &Tensor| -> candle_core::Result<Tensor> {
                        let (b, nk, l, d) = t.dims4()?;
                        Tensor::cat(&vec![t; n_rep], 2)?.reshape((b, nk * n_rep, l, d))
                    };
                    (rep(&k)?, rep(&v)?)
                } else {
                    (k, v)
                };
                let att = (q.matmul(&k.t()?)? * scale)?;
                let att = match &mask {
                    Some(m) => att.broadcast_add(m)?,
                    None => att,
                };
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                let y = att
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .reshape((1, seq, c.hidden))?;
                let y = layer.attn_o.forward(&y)?;
                let x1 = (y + residual)?;
                let h = candle_nn::ops::rms_norm(&x1, &layer.ffn_norm, c.rms_eps as f32)?;
                let g = candle_nn::ops::silu(&layer.ffn_gate.forward(&h)?)?;
                let u = layer.ffn_up.forward(&h)?;
                let m = layer.ffn_down.forward(&(g * u)?)?;
                m + x1
            };
            x = run().map_err(cerr)?;
        }
        cache.len = total;
        let h = candle_nn::ops::rms_norm(&x, &self.norm, c.rms_eps as f32).map_err(cerr)?;
        h.squeeze(0).map_err(cerr)
    }

    /// [`Llama::forward_hidden`] in blocks of at most [`PREFILL_BLOCK`] tokens (bounds the
    /// attention matrix of long prompts), hidden states of all positions concatenated.
    pub fn prefill_hidden(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor, LlmError> {
        if tokens.len() <= PREFILL_BLOCK {
            return self.forward_hidden(tokens, cache);
        }
        let mut parts = Vec::new();
        for block in tokens.chunks(PREFILL_BLOCK) {
            parts.push(self.forward_hidden(block, cache)?);
        }
        Tensor::cat(&parts, 0).map_err(cerr)
    }

    /// LM head: logits `(rows, vocab)` from hidden states `(rows, hidden)`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor, LlmError> {
        self.output
            .forward(hidden)
            .map_err(cerr)?
            .to_dtype(DType::F32)
            .map_err(cerr)
    }

    /// Logits of the last row of `hidden` as a host vector.
    pub fn last_logits(&self, hidden: &Tensor) -> Result<Vec<f32>, LlmError> {
        let rows = hidden.dim(0).map_err(cerr)?;
        if rows == 0 {
            return Err(LlmError::BadRequest(
                "no positions to take logits from".into(),
            ));
        }
        let last = hidden.narrow(0, rows - 1, 1).map_err(cerr)?;
        self.logits(&last)?
            .squeeze(0)
            .map_err(cerr)?
            .to_vec1::<f32>()
            .map_err(cerr)
    }
}

/// Host copy of a `(rows, hidden)` tensor, row-major.
pub(crate) fn to_host_rows(t: &Tensor) -> Result<Vec<f32>, LlmError> {
    t.to_dtype(DType::F32)
        .map_err(cerr)?
        .flatten_all()
        .map_err(cerr)?
        .to_vec1::<f32>()
        .map_err(cerr)
}

#[allow(dead_code)]
pub(crate) fn argmax_last(t: &Tensor) -> Result<u32, LlmError> {
    t.argmax(D::Minus1)
        .map_err(cerr)?
        .to_scalar::<u32>()
        .map_err(cerr)
}
