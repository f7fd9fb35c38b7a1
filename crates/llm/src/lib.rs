//! Opal's LLM backend: GGUF models of the llama family on [candle](https://crates.io/crates/candle-core)
//! (CPU by default, CUDA with the `cuda` feature), the tokenizer and chat template taken from
//! the GGUF metadata, seeded reproducible sampling, streaming, per-request KV caches over
//! shared weights, and the `activations` verification tier: TOPLOC-style commitments to the top-k
//! last-hidden-state values of every chunk of 32 positions, checked by a verifier with one
//! prefill pass.
//!
//! ```no_run
//! use opal_llm::{ChatMessage, CommitParams, GenerateRequest, LlmModel, SamplingParams, verify_activations};
//! let model = LlmModel::load(std::path::Path::new("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
//! let prompt = model.apply_chat_template(&[ChatMessage::new("user", "Hi!")]).unwrap();
//! let req = GenerateRequest {
//!     prompt_tokens: model.tokenize(&prompt).unwrap(),
//!     max_tokens: 64,
//!     sampling: SamplingParams { seed: 7, ..Default::default() },
//!     stop: vec![],
//!     // the chain's parameters (ledger `Params::llm_commit_chunk` / `llm_commit_top_k`)
//!     commit_activations: Some(CommitParams::DEFAULT),
//! };
//! let gen = model.generate(&req, &mut |ev| { print!("{}", ev.text); true }).unwrap();
//! let report = verify_activations(&model, &req.prompt_tokens, &gen.tokens,
//!     gen.commitment.as_ref().unwrap(), &CommitParams::DEFAULT).unwrap();
//! assert!(report.passed);
//! ```
//!
//! Semantics worth knowing:
//! * `tokenize` parses special tokens written in the text (`<|im_start|>` ...), as a templated
//!   prompt needs; it adds a BOS token only if the GGUF says `tokenizer.ggml.add_bos_token = true`.
//! * `Generation::tokens` are all sampled tokens, including a final end-of-turn token (EOS,
//!   `<|im_end|>`, ...) when the model stopped by itself; `text` never contains control tokens,
//!   nor a matched stop sequence or anything after it. `completion_tokens == tokens.len()`.
//! * Streaming: `on_token` gets every sampled token with the text it adds; text that could be the
//!   start of a stop sequence, and incomplete UTF-8, is held back until it is decided, so the
//!   deltas always concatenate to `Generation::text`.
//! * `max_tokens` is clamped to the room left in the context; a prompt that fills the whole
//!   context is [`LlmError::ContextTooLong`].
//!
//! See `docs/llm.md` for the commitment format, the verification procedure, the tolerances and
//! their measured false-positive / false-negative rates.

mod commit;
mod model;
pub mod quantize;
mod sampling;
mod template;
mod tokenizer;

use std::io::{BufReader, Read};
use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use candle_core::quantized::gguf_file;
use candle_core::Device;
use serde::{Deserialize, Serialize};

pub use candle_core;
pub use commit::{bf16_bits, ActivationTolerance, ChunkCommit, ChunkStats};
pub use model::KvCache;
pub use sampling::{draw, SamplingParams, SamplingTolerance, TokenCheck, REPEAT_WINDOW};
pub use template::ChatMessage;

/// Positions per committed chunk: the default of the chain's `llm_commit_chunk`.
pub const CHUNK_SIZE: usize = 32;
/// Activations committed per chunk: the default of the chain's `llm_commit_top_k`.
pub const TOP_K: usize = 128;
/// Largest chunk size and top-k a commitment may use.
pub const MAX_COMMIT_PARAM: u32 = 4096;

/// The chunk size and top-k of an activation commitment. **The verifier's, not the node's**: a
/// node that chose them could commit `top_k = 1, chunk_size = 4096` and have almost nothing
/// checked, so the chain fixes them (ledger `Params::llm_commit_chunk` / `llm_commit_top_k`),
/// the serving node commits with them, and [`verify_activations`] refuses a commitment made with
/// others ([`VerifyError::CommitParams`]) even when it is internally consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitParams {
    pub chunk_size: u32,
    pub top_k: u32,
}

impl CommitParams {
    /// Today's chain defaults: 32 positions per chunk, 128 activations per chunk.
    pub const DEFAULT: CommitParams = CommitParams {
        chunk_size: CHUNK_SIZE as u32,
        top_k: TOP_K as u32,
    };

    /// Both in `1..=MAX_COMMIT_PARAM`.
    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: u32| (1..=MAX_COMMIT_PARAM).contains(&v);
        if ok(self.chunk_size) && ok(self.top_k) {
            Ok(())
        } else {
            Err(format!(
                "chunk_size {} / top_k {} out of range 1..={MAX_COMMIT_PARAM}",
                self.chunk_size, self.top_k
            ))
        }
    }
}

impl Default for CommitParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}
/// Upper bound accepted by [`ActivationCommitment::from_bytes`].
pub const MAX_COMMITMENT_BYTES: usize = 4 << 20;
const COMMITMENT_VERSION: u8 = 1;

/// Errors of loading and running a model.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum LlmError {
    #[error("context too long: {tokens} tokens, the model's context is {max}")]
    ContextTooLong { tokens: usize, max: usize },
    #[error("bad model: {0}")]
    BadModel(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("token {token} is outside the vocabulary ({vocab})")]
    BadToken { token: u32, vocab: usize },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("i/o: {0}")]
    Io(String),
    #[error("backend: {0}")]
    Backend(String),
}

/// What was loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name`, or the file stem.
    pub name: String,
    pub context_length: usize,
    pub vocab_size: usize,
    /// BLAKE3 of the GGUF file.
    pub content_hash: [u8; 32],
    /// Quantization of the attention weights, e.g. `Q4_1`.
    pub quantization: String,
    pub n_layer: usize,
    pub hidden_size: usize,
    pub file_size: u64,
    /// Whether the chat template came from the model (otherwise ChatML is used).
    pub has_chat_template: bool,
    /// Whether the weights were dequantized to f32 at load ([`LoadOptions::dequantize_weights`]).
    pub f32_weights: bool,
}

/// One generation request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt_tokens: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Stop sequences, matched on the decoded text.
    pub stop: Vec<String>,
    /// Build an [`ActivationCommitment`] with these parameters while generating (a serving
    /// node passes the chain's; the verifier refuses any other).
    pub commit_activations: Option<CommitParams>,
}

/// One streamed token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEvent {
    pub token: u32,
    /// The text this token releases (may be empty; UTF-8 safe; see the crate docs).
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End-of-turn token or stop sequence.
    Stop,
    /// `max_tokens` (or the context) reached.
    Length,
    /// `on_token` returned false.
    Cancelled,
}

/// Result of one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub commitment: Option<ActivationCommitment>,
}

/// The `activations`-tier commitment of one generation (see `docs/llm.md`).
///
/// Chunk 0 covers the hidden states of the prompt positions `[0, prompt_len)`; chunk `c >= 1`
/// covers the generated positions `[prompt_len + (c-1)*chunk_size, ...)` up to
/// `prompt_len + output_len - 1` (the last sampled token is never fed back, so it has no hidden
/// state; it is bound by the sampling check instead). Each chunk is `2 + 2*top_k` bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct ActivationCommitment {
    pub version: u8,
    pub sampling: SamplingParams,
    pub chunk_size: u32,
    pub top_k: u32,
    pub prompt_len: u32,
    pub output_len: u32,
    pub chunks: Vec<ChunkCommit>,
}

fn expected_chunks(output_len: usize, chunk_size: usize) -> usize {
    1 + output_len.saturating_sub(1).div_ceil(chunk_size)
}

impl ActivationCommitment {
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh to a Vec cannot fail")
    }

    /// Decodes and validates; never panics on arbitrary input, never allocates more than a
    /// small multiple of `bytes.len()`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerifyError> {
        if bytes.len() > MAX_COMMITMENT_BYTES {
            return Err(VerifyError::Malformed(format!(
                "{} bytes exceeds {MAX_COMMITMENT_BYTES}",
                bytes.len()
            )));
        }
        let c: ActivationCommitment =
            borsh::from_slice(bytes).map_err(|e| VerifyError::Malformed(format!("decode: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// The chunk size and top-k this commitment claims (a verifier compares them with its own,
    /// never uses them).
    pub fn params(&self) -> CommitParams {
        CommitParams {
            chunk_size: self.chunk_size,
            top_k: self.top_k,
        }
    }

    /// Structural checks (version, sizes, chunk count).
    pub fn validate(&self) -> Result<(), VerifyError> {
        let bad = |m: String| Err(VerifyError::Malformed(m));
        if self.version != COMMITMENT_VERSION {
            return bad(format!(
                "version {} (expected {COMMITMENT_VERSION})",
                self.version
            ));
        }
        if let Err(e) = self.params().validate() {
            return bad(e);
        }
        if let Err(e) = self.sampling.validate() {
            return bad(format!("sampling params: {e}"));
        }
        let want = expected_chunks(self.output_len as usize, self.chunk_size as usize);
        if self.chunks.len() != want {
            return bad(format!(
                "{} chunks for {} output tokens (expected {want})",
                self.chunks.len(),
                self.output_len
            ));
        }
        for (i, ch) in self.chunks.iter().enumerate() {
            if ch.coeffs.len() > self.top_k as usize || ch.modulus == 0 {
                return bad(format!(
                    "chunk {i}: {} coefficients, modulus {}",
                    ch.coeffs.len(),
                    ch.modulus
                ));
            }
        }
        Ok(())
    }
}

/// Why a commitment did not verify.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum VerifyError {
    #[error("malformed commitment: {0}")]
    Malformed(String),
    /// The signed request itself cannot have been served (no prompt, invalid sampling
    /// parameters): a reply to it is no reply of the model's.
    #[error("the signed request is invalid: {0}")]
    Request(String),
    #[error("prompt length {given} differs from the committed {committed}")]
    PromptLength { committed: usize, given: usize },
    #[error("output length {given} differs from the committed {committed}")]
    OutputLength { committed: usize, given: usize },
    #[error("activations of chunk {chunk} do not match: {stats:?}")]
    ActivationMismatch { chunk: usize, stats: ChunkStats },
    #[error(
        "output token {index} ({token}) does not follow from the logits and the seed: {check:?}"
    )]
    TokenMismatch {
        index: usize,
        token: u32,
        check: TokenCheck,
    },
    /// The commitment was made with another chunk size or top-k than the chain's (the
    /// verifier's): refused even if it is internally consistent.
    #[error(
        "the commitment uses chunk size {committed_chunk_size} and top-k {committed_top_k}; the chain requires {chunk_size} and {top_k}"
    )]
    CommitParams {
        committed_chunk_size: u32,
        committed_top_k: u32,
        chunk_size: u32,
        top_k: u32,
    },
    /// The commitment names other sampling parameters or another seed than the signed input.
    #[error("the commitment was made with other sampling parameters ({committed:?}) than the signed input ({signed:?})")]
    SamplingParams {
        committed: SamplingParams,
        signed: SamplingParams,
    },
    /// Tokens were sampled (and billed) after generation had to stop: after the first
    /// end-of-turn token, after the first occurrence of a stop sequence, or past `max_tokens`.
    #[error("generation had to stop after {stopped_at} output tokens ({end}), but {output_len} were sampled and billed")]
    PastEnd {
        stopped_at: usize,
        end: StopReason,
        output_len: usize,
    },
    /// Generation stopped before an end-of-turn token, a stop sequence or `max_tokens`.
    #[error("generation stopped after {output_len} output tokens without an end-of-turn token, a stop sequence or max_tokens ({max_tokens})")]
    NoEnd {
        output_len: usize,
        max_tokens: usize,
    },
    #[error(transparent)]
    Model(#[from] LlmError),
}

impl VerifyError {
    /// A stable, machine-readable name of the reason (`opal node watch` and `opal verify`
    /// print it).
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed_commitment",
            VerifyError::Request(_) => "invalid_request",
            VerifyError::PromptLength { .. } => "prompt_length",
            VerifyError::OutputLength { .. } => "output_length",
            VerifyError::ActivationMismatch { .. } => "activation_mismatch",
            VerifyError::TokenMismatch { .. } => "token_mismatch",
            VerifyError::CommitParams { .. } => "commit_params",
            VerifyError::SamplingParams { .. } => "sampling_params",
            VerifyError::PastEnd { .. } => "sampled_past_end",
            VerifyError::NoEnd { .. } => "stopped_early",
            VerifyError::Model(_) => "model",
        }
    }
}

/// Where a generation legitimately ends (the first of these, checked in this order at every
/// sampled token, as [`LlmModel::generate`] does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The decoded text contains this stop sequence (its first occurrence).
    StopSequence(String),
    /// An end-of-turn token ([`LlmModel::end_token_ids`]).
    EndToken(u32),
    /// `max_tokens` (clamped to the room left in the context) tokens were sampled.
    MaxTokens(usize),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::StopSequence(s) => write!(f, "stop sequence {s:?}"),
            StopReason::EndToken(t) => write!(f, "end-of-turn token {t}"),
            StopReason::MaxTokens(n) => write!(f, "max_tokens {n}"),
        }
    }
}

/// Tolerances of [`verify_activations_with`]. `Default` is [`VerifyTolerance::toploc`] (kept for
/// compatibility); [`verify_activations`] uses [`VerifyTolerance::for_model`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyTolerance {
    pub activations: ActivationTolerance,
    pub sampling: SamplingTolerance,
}

impl VerifyTolerance {
    /// TOPLOC's activation thresholds and the default sampling tolerance: what a verifier on
    /// candle's quantized kernels needs (their honest prefill-vs-decode noise is large).
    pub const fn toploc() -> Self {
        VerifyTolerance {
            activations: ActivationTolerance::toploc(),
            sampling: SamplingTolerance::DEFAULT,
        }
    }

    /// The strict thresholds for a verifier on f32 weights, calibrated on perturbed-weight
    /// honest verifiers (see [`ActivationTolerance::strict_f32`],
    /// [`SamplingTolerance::STRICT_F32`] and `docs/llm.md`).
    pub const fn strict_f32() -> Self {
        VerifyTolerance {
            activations: ActivationTolerance::strict_f32(),
            sampling: SamplingTolerance::STRICT_F32,
        }
    }

    /// The verifier's policy: the tolerance follows from the arithmetic of the *verifier's own*
    /// loaded model ([`ModelInfo::f32_weights`]), never from the commitment or the node. A
    /// verifier on f32 weights (every model whose f32 copy fits [`MAX_DEQUANTIZED_BYTES`], with
    /// the default [`LoadOptions`]) applies [`VerifyTolerance::strict_f32`]; one on the quantized
    /// kernels (larger models) applies [`VerifyTolerance::toploc`]. Consequence: for models that
    /// fit, f32 weights are the tier's reference arithmetic, and a node generating on the
    /// quantized kernels may fail the strict check.
    pub fn for_model(info: &ModelInfo) -> Self {
        if info.f32_weights {
            Self::strict_f32()
        } else {
            Self::toploc()
        }
    }
}

/// Everything the verifier measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub passed: bool,
    /// One entry per chunk (chunk 0: the prompt).
    pub chunks: Vec<ChunkStats>,
    /// One entry per output token.
    pub tokens: Vec<TokenCheck>,
    /// Probability that a wrong seed would pass the sampling checks of this output (the product
    /// of the per-token pass probabilities; 1.0 for greedy).
    pub wrong_seed_pass_probability: f64,
    /// Tokens in the verifier's single prefill pass.
    pub prefill_tokens: usize,
}

impl VerifyReport {
    /// The first failure, as a typed error.
    pub fn first_failure(&self, tol: &VerifyTolerance, output: &[u32]) -> Option<VerifyError> {
        for (i, s) in self.chunks.iter().enumerate() {
            if !s.passes(&tol.activations) {
                return Some(VerifyError::ActivationMismatch {
                    chunk: i,
                    stats: *s,
                });
            }
        }
        for (i, c) in self.tokens.iter().enumerate() {
            if !c.ok {
                return Some(VerifyError::TokenMismatch {
                    index: i,
                    token: output[i],
                    check: *c,
                });
            }
        }
        None
    }
}

/// Loaded GGUF weights, tokenizer and chat template. `Send + Sync`: share it with `Arc` and call
/// [`LlmModel::generate`] from many threads; each call owns its KV cache.
pub struct LlmModel {
    llama: model::Llama,
    tokenizer: tokenizer::Tokenizer,
    template: template::ChatTemplate,
    info: ModelInfo,
}

/// How to load a model.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub device: Device,
    /// Dequantize every weight matrix to f32 at load and multiply in f32 (the same weights,
    /// different arithmetic: no 8-bit quantization of the activations as in candle's quantized
    /// CPU kernels). ~5-8x the memory of a 4-bit file. The default (`true`), because candle 0.11
    /// has no SIMD kernel for Q4_1 and most 5-bit types in a portable build: on SmolLM2-135M
    /// Q4_1 with 2 threads, f32 prefill is 249 tok/s against 15 (so verification, one prefill,
    /// is ~10x cheaper than generation instead of ~1.1x) and decode 15.7 against 13.4
    /// (docs/benchmarks.md). Ignored, and the quantized kernels used, when the f32 copy would
    /// exceed [`MAX_DEQUANTIZED_BYTES`] ([`ModelInfo::f32_weights`] says which).
    pub dequantize_weights: bool,
}

/// Largest f32 copy of the weights [`LoadOptions::dequantize_weights`] makes (2 GiB: models up
/// to ~500M parameters).
pub const MAX_DEQUANTIZED_BYTES: u64 = 2 << 30;

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: default_device(),
            dequantize_weights: true,
        }
    }
}

/// The default device: CUDA device 0 when built with the `cuda` feature and one is present,
/// otherwise the CPU.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        if let Ok(d) = Device::new_cuda(0) {
            return d;
        }
    }
    Device::Cpu
}

impl LlmModel {
    /// Loads a GGUF file on the default device (CUDA device 0 when built with `cuda` and one is
    /// present, otherwise the CPU).
    pub fn load(path: &Path) -> Result<LlmModel, LlmError> {
        Self::load_on(path, &default_device())
    }

    /// Loads a GGUF file on the given candle device.
    pub fn load_on(path: &Path, device: &Device) -> Result<LlmModel, LlmError> {
        Self::load_with(
            path,
            &LoadOptions {
                device: device.clone(),
                ..LoadOptions::default()
            },
        )
    }

    /// Loads with explicit options.
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<LlmModel, LlmError> {
        Self::load_impl(path, opts, None)
    }

    /// **Test and benchmark facility, never used by the node**: loads like
    /// [`LlmModel::load_with`] (which must give f32 weights) and then multiplies every f32
    /// weight value (matrices, norms, embeddings, RoPE tables) by `1 + rel_err * r`, `r` uniform
    /// in `[-1, 1]` from a stream seeded by `seed`. With `rel_err = 2^-22` (1-4 f32 ulps) this
    /// stands in for the rounding of another machine (other SIMD width, other GEMM blocking), to
    /// measure the honest noise the strict tolerance must absorb (`llm_bench --detect`). The
    /// content hash is the file's, so such a model must never serve or verify for real.
    #[doc(hidden)]
    pub fn load_with_weight_noise(
        path: &Path,
        opts: &LoadOptions,
        rel_err: f32,
        seed: u64,
    ) -> Result<LlmModel, LlmError> {
        Self::load_impl(path, opts, Some(model::WeightNoise { rel_err, seed }))
    }

    fn load_impl(
        path: &Path,
        opts: &LoadOptions,
        noise: Option<model::WeightNoise>,
    ) -> Result<LlmModel, LlmError> {
        let device = &opts.device;
        let io = |e: std::io::Error| LlmError::Io(format!("{}: {e}", path.display()));
        // content hash of the whole file
        let mut hasher = blake3::Hasher::new();
        let mut f = std::fs::File::open(path).map_err(io)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut file_size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            file_size += n as u64;
            hasher.update(&buf[..n]);
        }
        let content_hash = *hasher.finalize().as_bytes();

        let mut r = BufReader::new(std::fs::File::open(path).map_err(io)?);
        let ct = gguf_file::Content::read(&mut r)
            .map_err(|e| LlmError::BadModel(format!("not a GGUF file: {e}")))?;
        let md = &ct.metadata;
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| LlmError::BadModel("missing general.architecture".into()))?;
        if !matches!(arch.as_str(), "llama" | "mistral") {
            return Err(LlmError::BadModel(format!(
                "architecture {arch:?} is not supported (llama family only)"
            )));
        }
        let tokenizer = tokenizer::Tokenizer::from_gguf(md)?;
        let f32_bytes: u64 = ct
            .tensor_infos
            .values()
            .map(|t| t.shape.elem_count() as u64 * 4)
            .sum();
        let f32_weights = opts.dequantize_weights && f32_bytes <= MAX_DEQUANTIZED_BYTES;
        let llama = model::Llama::load(&ct, &mut r, &arch, device, f32_weights, noise)?;
        if llama.cfg.vocab_size != tokenizer.vocab_size() {
            return Err(LlmError::BadModel(format!(
                "embedding rows {} != vocabulary size {}",
                llama.cfg.vocab_size,
                tokenizer.vocab_size()
            )));
        }
        let tok_str = |id: Option<u32>| {
            id.and_then(|i| tokenizer.token_text(i))
                .unwrap_or("")
                .to_string()
        };
        let template = template::ChatTemplate::new(
            md.get("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok())
                .map(|s| s.as_str()),
            tok_str(tokenizer.bos),
            tok_str(tokenizer.eos),
        )?;
        let name = md
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        let quantization = ct
            .tensor_infos
            .get("blk.0.attn_q.weight")
            .map(|t| format!("{:?}", t.ggml_dtype))
            .unwrap_or_default();
        let info = ModelInfo {
            architecture: arch,
            name,
            context_length: llama.cfg.context_length,
            vocab_size: tokenizer.vocab_size(),
            content_hash,
            quantization,
            n_layer: llama.cfg.n_layer,
            hidden_size: llama.cfg.hidden,
            file_size,
            has_chat_template: template.from_model,
            f32_weights,
        };
        Ok(LlmModel {
            llama,
            tokenizer,
            template,
            info,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Renders the model's chat template over `messages`, with the generation prompt appended.
    pub fn apply_chat_template(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        self.template.render(messages)
    }

    /// Text to token ids (special tokens in the text are parsed; BOS only if the model asks).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let mut out = Vec::new();
        if self.tokenizer.add_bos {
            if let Some(b) = self.tokenizer.bos {
                out.push(b);
            }
        }
        out.extend(self.tokenizer.encode(text));
        Ok(out)
    }

    /// Token ids to text (control tokens are dropped; invalid UTF-8 becomes U+FFFD).
    pub fn detokenize(&self, tokens: &[u32]) -> Result<String, LlmError> {
        Ok(String::from_utf8_lossy(&self.tokenizer.decode_bytes(tokens)?).into_owned())
    }

    /// The ids that end a generation (EOS and end-of-turn control tokens).
    pub fn end_token_ids(&self) -> &[u32] {
        &self.tokenizer.end_ids
    }

    /// A fresh KV cache for this model.
    pub fn new_cache(&self) -> KvCache {
        self.llama.new_cache()
    }

    /// Feeds `tokens` after the cached positions and returns the logits of the last one.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, LlmError> {
        self.check_tokens(tokens)?;
        let h = self.llama.prefill_hidden(tokens, cache)?;
        self.llama.last_logits(&h)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), LlmError> {
        let vocab = self.info.vocab_size;
        match tokens.iter().find(|&&t| t as usize >= vocab) {
            Some(&t) => Err(LlmError::BadToken { token: t, vocab }),
            None => Ok(()),
        }
    }

    /// Runs one generation with its own KV cache (see the crate docs for the semantics).
    pub fn generate(
        &self,
        req: &GenerateRequest,
        on_token: &mut dyn FnMut(&TokenEvent) -> bool,
    ) -> Result<Generation, LlmError> {
        self.generate_impl(req, on_token, false)
    }

    /// **Attack facility for tests, never used by the node**: generates like
    /// [`LlmModel::generate`] but does not stop at end-of-turn tokens or stop sequences, only at
    /// `max_tokens`: what a node that pads its replies (to bill more tokens) would run. Its
    /// tokens and commitment are internally consistent; [`verify_reply`] refuses them with
    /// [`VerifyError::PastEnd`].
    #[doc(hidden)]
    pub fn generate_past_end(&self, req: &GenerateRequest) -> Result<Generation, LlmError> {
        self.generate_impl(req, &mut |_| true, true)
    }

    fn generate_impl(
        &self,
        req: &GenerateRequest,
        on_token: &mut dyn FnMut(&TokenEvent) -> bool,
        past_end: bool,
    ) -> Result<Generation, LlmError> {
        req.sampling.validate().map_err(LlmError::BadRequest)?;
        if let Some(cp) = &req.commit_activations {
            cp.validate().map_err(LlmError::BadRequest)?;
        }
        let prompt = &req.prompt_tokens;
        if prompt.is_empty() {
            return Err(LlmError::BadRequest("empty prompt".into()));
        }
        self.check_tokens(prompt)?;
        let ctx = self.info.context_length;
        if prompt.len() >= ctx {
            return Err(LlmError::ContextTooLong {
                tokens: prompt.len(),
                max: ctx,
            });
        }
        let max_new = req.max_tokens.min(ctx - prompt.len());
        let mut scan = EndScan::new(self, max_new, &req.stop);
        if past_end {
            scan.stops.clear();
        }
        let stops = scan.stops.clone();

        let mut cache = self.llama.new_cache();
        let hidden = self.llama.prefill_hidden(prompt, &mut cache)?;
        let mut committer = match req.commit_activations {
            Some(cp) => Some(Committer::new(
                model::to_host_rows(&hidden)?,
                self.info.hidden_size,
                cp,
            )),
            None => None,
        };
        let mut logits = self.llama.last_logits(&hidden)?;
        let mut history = prompt.clone();
        let mut tokens = Vec::new();
        let mut emitted = 0usize; // bytes of `text` already streamed
        let mut text = String::new();
        let mut finish = FinishReason::Length;
        for step in 0..max_new {
            let t = sampling::sample(&mut logits, &history, &req.sampling, step as u64);
            tokens.push(t);
            history.push(t);
            // Decide what text is final and what may be released.
            let (cur, end) = scan.push(t)?;
            let end = match end {
                Some(StopReason::EndToken(_)) if past_end => {
                    (scan.step >= max_new).then_some(StopReason::MaxTokens(max_new))
                }
                e => e,
            };
            let (release_to, done) = match end {
                Some(StopReason::StopSequence(_)) => {
                    finish = FinishReason::Stop;
                    let p = scan.stop_at.unwrap_or(cur.len());
                    text = cur[..p].to_string();
                    (p, true)
                }
                Some(e) => {
                    if matches!(e, StopReason::EndToken(_)) {
                        finish = FinishReason::Stop;
                    }
                    text = String::from_utf8_lossy(&scan.bytes).into_owned();
                    (text.len(), true)
                }
                None => {
                    let hold = held_back(&cur, &stops);
                    text = cur.clone();
                    (cur.len() - hold, false)
                }
            };
            let delta = if release_to > emitted {
                text[emitted..release_to].to_string()
            } else {
                String::new()
            };
            emitted = emitted.max(release_to);
            if !on_token(&TokenEvent {
                token: t,
                text: delta,
            }) {
                finish = FinishReason::Cancelled;
                text.truncate(emitted);
                break;
            }
            if done {
                break;
            }
            let h = self.llama.forward_hidden(&[t], &mut cache)?;
            if let Some(c) = committer.as_mut() {
                c.push(&model::to_host_rows(&h)?);
            }
            logits = self.llama.last_logits(&h)?;
        }
        let commitment = committer.map(|c| c.finish(prompt.len(), tokens.len(), req.sampling));
        Ok(Generation {
            completion_tokens: tokens.len(),
            prompt_tokens: prompt.len(),
            tokens,
            text,
            finish_reason: finish,
            commitment,
        })
    }
}

/// Where a generation must end, token by token: shared by [`LlmModel::generate`] (which stops
/// there) and [`check_stop`] (which refuses a reply that went on, or ended elsewhere), so the
/// two cannot disagree.
struct EndScan<'a> {
    model: &'a LlmModel,
    max_new: usize,
    stops: Vec<&'a str>,
    /// Decoded bytes of the non-control tokens so far.
    bytes: Vec<u8>,
    /// Byte offset of the first stop sequence in the text, once found.
    stop_at: Option<usize>,
    step: usize,
}

impl<'a> EndScan<'a> {
    fn new(model: &'a LlmModel, max_new: usize, stop: &'a [String]) -> Self {
        EndScan {
            model,
            max_new,
            stops: stop
                .iter()
                .map(|s| s.as_str())
                .filter(|s| !s.is_empty())
                .collect(),
            bytes: Vec::new(),
            stop_at: None,
            step: 0,
        }
    }

    /// Feeds the next sampled token: the complete-UTF-8 text so far, and whether generation
    /// ends with this token (a stop sequence in the text, else an end-of-turn token, else
    /// `max_tokens` reached).
    fn push(&mut self, t: u32) -> Result<(String, Option<StopReason>), LlmError> {
        self.step += 1;
        let end_token = self.model.tokenizer.end_ids.contains(&t);
        if !end_token {
            self.bytes
                .extend_from_slice(&self.model.tokenizer.decode_bytes(&[t])?);
        }
        let (cur, _) = utf8_text(&self.bytes);
        let found = self
            .stops
            .iter()
            .filter_map(|s| cur.find(s).map(|p| (p, *s)))
            .min_by_key(|(p, _)| *p);
        let end = if let Some((p, s)) = found {
            self.stop_at = Some(p);
            Some(StopReason::StopSequence(s.to_string()))
        } else if end_token {
            Some(StopReason::EndToken(t))
        } else if self.step >= self.max_new {
            Some(StopReason::MaxTokens(self.max_new))
        } else {
            None
        };
        Ok((cur, end))
    }
}

/// Checks where a reply's generation stopped, from what the caller signed (`max_tokens`, the
/// stop sequences) and the verifier's own model (its end-of-turn tokens, its context length):
/// the output must end at its first end-of-turn token, at the first occurrence of a stop
/// sequence, or at exactly `max_tokens` (clamped to the room the context leaves after the
/// prompt), as [`LlmModel::generate`] stops. Tokens after that point are padding, billed for
/// nothing ([`VerifyError::PastEnd`]); an output that ends before any of them is
/// [`VerifyError::NoEnd`]. Returns why it ended. No model pass (cheap).
pub fn check_stop(
    model: &LlmModel,
    prompt_len: usize,
    output: &[u32],
    max_tokens: usize,
    stop: &[String],
) -> Result<StopReason, VerifyError> {
    model.check_tokens(output)?;
    let max_new = max_tokens.min(model.info.context_length.saturating_sub(prompt_len));
    let n = output.len();
    if max_new == 0 {
        return if n == 0 {
            Ok(StopReason::MaxTokens(0))
        } else {
            Err(VerifyError::PastEnd {
                stopped_at: 0,
                end: StopReason::MaxTokens(0),
                output_len: n,
            })
        };
    }
    let mut scan = EndScan::new(model, max_new, stop);
    for (i, &t) in output.iter().enumerate() {
        if let (_, Some(end)) = scan.push(t)? {
            if i + 1 < n {
                return Err(VerifyError::PastEnd {
                    stopped_at: i + 1,
                    end,
                    output_len: n,
                });
            }
            return Ok(end);
        }
    }
    Err(VerifyError::NoEnd {
        output_len: n,
        max_tokens: max_new,
    })
}

/// Text of the complete UTF-8 prefix of `bytes` (a trailing incomplete sequence is left out).
fn utf8_text(bytes: &[u8]) -> (String, bool) {
    let mut cut = bytes.len();
    // find a trailing incomplete multi-byte sequence (at most 3 bytes)
    for back in 1..=3.min(bytes.len()) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte
        }
        let need = if b >= 0xF0 {
            4
        } else if b >= 0xE0 {
            3
        } else if b >= 0xC0 {
            2
        } else {
            1
        };
        if need > back {
            cut = bytes.len() - back;
        }
        break;
    }
    (
        String::from_utf8_lossy(&bytes[..cut]).into_owned(),
        cut == bytes.len(),
    )
}

/// Bytes at the end of `text` that could be the beginning of a stop sequence (held back).
fn held_back(text: &str, stops: &[&str]) -> usize {
    let mut hold = 0;
    for s in stops {
        for (i, _) in s.char_indices().skip(1) {
            let prefix = &s[..i];
            if i > hold && text.ends_with(prefix) {
                hold = i;
            }
        }
    }
    hold
}

/// Collects hidden-state rows during generation and commits every full chunk.
struct Committer {
    hidden: usize,
    params: CommitParams,
    prompt_chunk: ChunkCommit,
    pending: Vec<f32>,
    chunks: Vec<ChunkCommit>,
}

impl Committer {
    fn new(prompt_rows: Vec<f32>, hidden: usize, params: CommitParams) -> Self {
        let k = params.top_k as usize;
        Committer {
            hidden,
            params,
            prompt_chunk: ChunkCommit::build(&prompt_rows, k),
            pending: Vec::with_capacity(params.chunk_size as usize * hidden),
            chunks: Vec::new(),
        }
    }
    fn push(&mut self, row: &[f32]) {
        self.pending.extend_from_slice(row);
        if self.pending.len() == self.params.chunk_size as usize * self.hidden {
            self.chunks.push(ChunkCommit::build(
                &self.pending,
                self.params.top_k as usize,
            ));
            self.pending.clear();
        }
    }
    fn finish(
        mut self,
        prompt_len: usize,
        output_len: usize,
        sampling: SamplingParams,
    ) -> ActivationCommitment {
        if !self.pending.is_empty() {
            self.chunks.push(ChunkCommit::build(
                &self.pending,
                self.params.top_k as usize,
            ));
        }
        let mut chunks = vec![self.prompt_chunk];
        chunks.extend(self.chunks);
        ActivationCommitment {
            version: COMMITMENT_VERSION,
            sampling,
            chunk_size: self.params.chunk_size,
            top_k: self.params.top_k,
            prompt_len: prompt_len as u32,
            output_len: output_len as u32,
            chunks,
        }
    }
}

/// What the caller signed that determines a reply (an `LlmInput` of `opal-types`): the prompt,
/// the sampling parameters and seed, `max_tokens` and the stop sequences.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplySpec<'a> {
    pub prompt_tokens: &'a [u32],
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub stop: &'a [String],
}

/// The whole check of an `activations` reply (what `opal verify --llm-model` and a validator
/// voting on an LLM case run), against the caller's signed `spec` and the chain's commitment
/// `params`, never against anything the node chose: the commitment was made with `params`
/// ([`VerifyError::CommitParams`]) and with exactly the signed sampling parameters and seed
/// ([`VerifyError::SamplingParams`]); generation stopped where it had to ([`check_stop`]:
/// [`VerifyError::PastEnd`], [`VerifyError::NoEnd`]); then [`verify_activations`] (one prefill
/// pass, the verifier's policy tolerance). Cheap checks first.
pub fn verify_reply(
    model: &LlmModel,
    spec: &ReplySpec,
    output: &[u32],
    commitment: &ActivationCommitment,
    params: &CommitParams,
) -> Result<VerifyReport, VerifyError> {
    commitment.validate()?;
    check_params(commitment, params)?;
    let (a, b) = (&commitment.sampling, &spec.sampling);
    let same = a.seed == b.seed
        && a.temperature.to_bits() == b.temperature.to_bits()
        && a.top_p.to_bits() == b.top_p.to_bits()
        && a.top_k == b.top_k
        && a.repetition_penalty.to_bits() == b.repetition_penalty.to_bits();
    if !same {
        return Err(VerifyError::SamplingParams {
            committed: *a,
            signed: *b,
        });
    }
    check_stop(
        model,
        spec.prompt_tokens.len(),
        output,
        spec.max_tokens,
        spec.stop,
    )?;
    verify_activations(model, spec.prompt_tokens, output, commitment, params)
}

fn check_params(c: &ActivationCommitment, params: &CommitParams) -> Result<(), VerifyError> {
    if c.params() != *params {
        return Err(VerifyError::CommitParams {
            committed_chunk_size: c.chunk_size,
            committed_top_k: c.top_k,
            chunk_size: params.chunk_size,
            top_k: params.top_k,
        });
    }
    params.validate().map_err(VerifyError::Malformed)
}

/// Verifies a commitment with the verifier's policy tolerance,
/// [`VerifyTolerance::for_model`]`(model.info())` (strict on f32 weights, TOPLOC's on the
/// quantized kernels): one prefill pass over `prompt ++ output[..n-1]`, then every chunk's
/// activations and every output token's sampling. `params` are the verifier's (the chain's):
/// a commitment made with another chunk size or top-k is [`VerifyError::CommitParams`]. This
/// checks the commitment only; [`verify_reply`] also checks it against the signed request.
pub fn verify_activations(
    model: &LlmModel,
    prompt_tokens: &[u32],
    output_tokens: &[u32],
    commitment: &ActivationCommitment,
    params: &CommitParams,
) -> Result<VerifyReport, VerifyError> {
    verify_activations_with(
        model,
        prompt_tokens,
        output_tokens,
        commitment,
        params,
        &VerifyTolerance::for_model(model.info()),
    )
}

/// [`verify_activations`] with explicit tolerances (tests, benchmarks, or a verifier that
/// deliberately accepts another arithmetic; never a tolerance chosen by the node).
pub fn verify_activations_with(
    model: &LlmModel,
    prompt_tokens: &[u32],
    output_tokens: &[u32],
    commitment: &ActivationCommitment,
    params: &CommitParams,
    tol: &VerifyTolerance,
) -> Result<VerifyReport, VerifyError> {
    let report = inspect_activations(model, prompt_tokens, output_tokens, commitment, params, tol)?;
    match report.first_failure(tol, output_tokens) {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Measures everything (all chunks, all tokens) without stopping at the first failure; `passed`
/// says whether all of it is within `tol`. Structural problems, and a commitment made with other
/// parameters than `params`, are still errors.
pub fn inspect_activations(
    model: &LlmModel,
    prompt: &[u32],
    output: &[u32],
    c: &ActivationCommitment,
    params: &CommitParams,
    tol: &VerifyTolerance,
) -> Result<VerifyReport, VerifyError> {
    c.validate()?;
    check_params(c, params)?;
    if c.prompt_len as usize != prompt.len() {
        return Err(VerifyError::PromptLength {
            committed: c.prompt_len as usize,
            given: prompt.len(),
        });
    }
    if c.output_len as usize != output.len() {
        return Err(VerifyError::OutputLength {
            committed: c.output_len as usize,
            given: output.len(),
        });
    }
    if prompt.is_empty() {
        return Err(VerifyError::Malformed("empty prompt".into()));
    }
    model.check_tokens(prompt)?;
    model.check_tokens(output)?;
    let p = prompt.len();
    let n = output.len();
    let mut seq = prompt.to_vec();
    seq.extend_from_slice(&output[..n.saturating_sub(1)]);
    let mut cache = model.llama.new_cache();
    let hidden_t = model.llama.prefill_hidden(&seq, &mut cache)?;
    let hidden = model::to_host_rows(&hidden_t)?;
    let h = model.info.hidden_size;
    // The verifier's parameters (equal to the commitment's, checked above).
    let cs = params.chunk_size as usize;
    let k = params.top_k as usize;

    let mut chunks = Vec::with_capacity(c.chunks.len());
    chunks.push(c.chunks[0].compare(&hidden[..p * h], k));
    for (ci, ch) in c.chunks.iter().enumerate().skip(1) {
        let start = p + (ci - 1) * cs;
        let end = (start + cs).min(p + n - 1);
        chunks.push(ch.compare(&hidden[start * h..end * h], k));
    }

    let (tokens, wrong_seed) = token_checks(model, prompt, output, &hidden_t, &c.sampling, tol)?;
    let mut report = VerifyReport {
        passed: false,
        chunks,
        tokens,
        wrong_seed_pass_probability: wrong_seed,
        prefill_tokens: seq.len(),
    };
    report.passed = report.first_failure(tol, output).is_none();
    Ok(report)
}

/// Every output token re-checked against the verifier's logits (teacher-forced: row `p - 1 + j`
/// of the prefill over `prompt ++ output[..n-1]`), the history, the signed sampling parameters
/// and seed. Returns the checks and the probability that a wrong seed would pass them.
fn token_checks(
    model: &LlmModel,
    prompt: &[u32],
    output: &[u32],
    hidden_t: &candle_core::Tensor,
    sampling: &SamplingParams,
    tol: &VerifyTolerance,
) -> Result<(Vec<TokenCheck>, f64), VerifyError> {
    let (p, n) = (prompt.len(), output.len());
    let mut tokens = Vec::with_capacity(n);
    let mut wrong_seed = 1.0f64;
    if n > 0 {
        let rows = hidden_t
            .narrow(0, p - 1, n)
            .map_err(|e| LlmError::Backend(e.to_string()))?;
        let logits = model::to_host_rows(&model.llama.logits(&rows)?)?;
        let v = model.info.vocab_size;
        let mut history = prompt.to_vec();
        for (j, &t) in output.iter().enumerate() {
            let mut row = logits[j * v..(j + 1) * v].to_vec();
            let chk =
                sampling::check_token(&mut row, &history, sampling, j as u64, t, &tol.sampling);
            wrong_seed *= chk.pass_probability;
            tokens.push(chk);
            history.push(t);
        }
    }
    Ok((tokens, wrong_seed))
}

/// The check of a `signed` reply, which carries no commitment: generation stopped where it had
/// to ([`check_stop`]), and every output token follows from the verifier's own logits, the
/// signed sampling parameters and seed, within the verifier's policy tolerance (one prefill
/// pass over `prompt ++ output[..n-1]`, as [`verify_activations`] runs). Weaker than
/// `activations` in one way only: nothing pins the hidden states, so a model that samples the
/// same tokens from the same seed passes (docs/verification.md). The returned report has no
/// chunks.
pub fn verify_tokens(
    model: &LlmModel,
    spec: &ReplySpec,
    output: &[u32],
) -> Result<VerifyReport, VerifyError> {
    verify_tokens_with(
        model,
        spec,
        output,
        &VerifyTolerance::for_model(model.info()),
    )
}

/// [`verify_tokens`] with explicit tolerances (tests; never a tolerance chosen by the node).
pub fn verify_tokens_with(
    model: &LlmModel,
    spec: &ReplySpec,
    output: &[u32],
    tol: &VerifyTolerance,
) -> Result<VerifyReport, VerifyError> {
    spec.sampling.validate().map_err(VerifyError::Request)?;
    let prompt = spec.prompt_tokens;
    if prompt.is_empty() {
        return Err(VerifyError::Request("empty prompt".into()));
    }
    model.check_tokens(prompt)?;
    check_stop(model, prompt.len(), output, spec.max_tokens, spec.stop)?;
    let mut seq = prompt.to_vec();
    seq.extend_from_slice(&output[..output.len().saturating_sub(1)]);
    let mut cache = model.llama.new_cache();
    let hidden_t = model.llama.prefill_hidden(&seq, &mut cache)?;
    let (tokens, wrong_seed) = token_checks(model, prompt, output, &hidden_t, &spec.sampling, tol)?;
    let mut report = VerifyReport {
        passed: false,
        chunks: Vec::new(),
        tokens,
        wrong_seed_pass_probability: wrong_seed,
        prefill_tokens: seq.len(),
    };
    match report.first_failure(tol, output) {
        Some(e) => Err(e),
        None => {
            report.passed = true;
            Ok(report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LlmModel>();
    }

    #[test]
    fn utf8_and_stop_holdback() {
        let s = "é".as_bytes();
        assert_eq!(utf8_text(&s[..1]), (String::new(), false));
        assert_eq!(utf8_text(s), ("é".to_string(), true));
        assert_eq!(held_back("hello wor", &["world"]), 3);
        assert_eq!(held_back("hello", &["world"]), 0);
        assert_eq!(held_back("a\n", &["\n\n"]), 1);
    }

    #[test]
    fn tolerance_follows_the_verifiers_own_arithmetic() {
        let mut info = ModelInfo {
            architecture: "llama".into(),
            name: "t".into(),
            context_length: 8,
            vocab_size: 8,
            content_hash: [0; 32],
            quantization: "Q4_1".into(),
            n_layer: 1,
            hidden_size: 8,
            file_size: 0,
            has_chat_template: false,
            f32_weights: true,
        };
        assert_eq!(
            VerifyTolerance::for_model(&info),
            VerifyTolerance::strict_f32()
        );
        info.f32_weights = false;
        assert_eq!(VerifyTolerance::for_model(&info), VerifyTolerance::toploc());
        assert_eq!(VerifyTolerance::default(), VerifyTolerance::toploc());
        // strict is strictly tighter than TOPLOC's on every bound
        let (s, t) = (
            ActivationTolerance::strict_f32(),
            ActivationTolerance::toploc(),
        );
        assert!(s.min_exp_match_fraction > t.min_exp_match_fraction);
        assert!(s.max_mean_mantissa_diff < t.max_mean_mantissa_diff);
        assert!(s.max_median_mantissa_diff < t.max_median_mantissa_diff);
        let (s, t) = (SamplingTolerance::STRICT_F32, SamplingTolerance::DEFAULT);
        assert!(s.cdf < t.cdf && s.logit < t.logit);
    }

    #[test]
    fn commit_params_are_bounded_and_named_by_the_commitment() {
        assert_eq!(CommitParams::default(), CommitParams::DEFAULT);
        assert_eq!(
            (
                CommitParams::DEFAULT.chunk_size,
                CommitParams::DEFAULT.top_k
            ),
            (32, 128)
        );
        assert!(CommitParams::DEFAULT.validate().is_ok());
        for (c, k) in [
            (0, 128),
            (32, 0),
            (MAX_COMMIT_PARAM + 1, 128),
            (32, u32::MAX),
        ] {
            assert!(CommitParams {
                chunk_size: c,
                top_k: k
            }
            .validate()
            .is_err());
        }
        let c = ActivationCommitment {
            version: 1,
            sampling: SamplingParams::default(),
            chunk_size: 4096,
            top_k: 1,
            prompt_len: 5,
            output_len: 3,
            chunks: vec![
                ChunkCommit {
                    modulus: 7,
                    coeffs: vec![1]
                };
                2
            ],
        };
        // Structurally valid (the node's choice), but it names its own parameters: the
        // verifier compares them with the chain's.
        let c = ActivationCommitment::from_bytes(&c.to_bytes()).unwrap();
        assert_ne!(c.params(), CommitParams::DEFAULT);
        assert_eq!(
            check_params(&c, &CommitParams::DEFAULT),
            Err(VerifyError::CommitParams {
                committed_chunk_size: 4096,
                committed_top_k: 1,
                chunk_size: 32,
                top_k: 128
            })
        );
        assert_eq!(check_params(&c, &c.params()).map_err(|e| e.code()), Ok(()));
    }

    #[test]
    fn malformed_commitments_are_rejected() {
        assert!(ActivationCommitment::from_bytes(&[]).is_err());
        assert!(ActivationCommitment::from_bytes(&[1, 2, 3]).is_err());
        assert!(ActivationCommitment::from_bytes(&vec![0xFF; 10_000]).is_err());
        let c = ActivationCommitment {
            version: 1,
            sampling: SamplingParams::default(),
            chunk_size: 32,
            top_k: 128,
            prompt_len: 5,
            output_len: 40,
            chunks: vec![
                ChunkCommit {
                    modulus: 7,
                    coeffs: vec![1; 128]
                };
                3
            ],
        };
        let b = c.to_bytes();
        assert_eq!(ActivationCommitment::from_bytes(&b).unwrap(), c);
        for cut in 0..b.len() {
            assert!(ActivationCommitment::from_bytes(&b[..cut]).is_err());
        }
        let mut wrong = c.clone();
        wrong.chunks.pop();
        assert!(matches!(
            ActivationCommitment::from_bytes(&wrong.to_bytes()),
            Err(VerifyError::Malformed(_))
        ));
    }
}
