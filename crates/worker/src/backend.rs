//! Model backends behind one interface: a [`Backend`] turns a model file into a [`Plan`] (parsed,
//! checked and optimised, or loaded, once per model), and a plan runs requests: a tensor model
//! opens a [`Session`] per request, a language model generates ([`LanguageModel`]). The worker
//! picks the backend by the registered format, keeps plans loaded, and never looks inside one.
//!
//! Three backends: [`Onnx`] (float ONNX through tract, checked by the validators' committee
//! within a tolerance), [`Canonical`] (`opal_quant` models, run by the same function the ledger
//! re-executes, so the bytes are the same on every machine and thread count) and [`Gguf`]
//! (language models through `opal-llm` on candle, served behind the OpenAI API by
//! [`crate::llm`]). A new backend is one more `impl Backend` here and one line in
//! [`Backends::all`].

use crate::error::ServeError;
use opal_infer::{PreparedModel, Tensor};
use opal_ledger::canonical;
use opal_llm::{ChatMessage, GenerateRequest, Generation, LlmError, LlmModel, ModelInfo};
use opal_quant::QuantModel;
use opal_types::registry::ModelFormat;
use std::path::Path;
use std::sync::Arc;

/// What one run produced: the output tensors, and the canonical bytes of the inputs and the
/// outputs, which the node keeps in case the ledger asks it to reveal them.
#[derive(Debug, Clone)]
pub struct Run {
    pub outputs: Vec<Tensor>,
    pub reveal: Reveal,
}

/// The inputs and outputs of one request, as `RevealData` carries them.
#[derive(Debug, Clone, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct Reveal {
    pub inputs: Vec<Vec<u8>>,
    pub outputs: Vec<Vec<u8>>,
}

pub trait Backend: Send + Sync {
    /// The registered format this backend runs.
    fn format(&self) -> ModelFormat;
    /// Prepare the model file at `path` for execution.
    fn plan(&self, path: &Path) -> Result<Arc<dyn Plan>, ServeError>;
}

pub trait Plan: Send + Sync {
    /// A session over this plan for one tensor request; a language model has none (it
    /// generates, through [`Plan::language`]).
    fn session(&self) -> Result<Box<dyn Session + '_>, ServeError> {
        Err(ServeError::TierUnsupported(
            "language models are not served at /api/infer (use the OpenAI API at /v1)".into(),
        ))
    }
    /// The canonical model behind the plan, where there is one (the zk prover proves it).
    fn quant(&self) -> Option<Arc<QuantModel>> {
        None
    }
    /// The language model behind the plan, for a GGUF model.
    fn language(self: Arc<Self>) -> Option<Arc<dyn LanguageModel>> {
        None
    }
}

pub trait Session {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Run, ServeError>;
}

/// A loaded language model: its tokenizer and chat template, and generation (streamed token by
/// token; `on_token` returns false to stop).
pub trait LanguageModel: Send + Sync {
    fn info(&self) -> &ModelInfo;
    fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<String, LlmError>;
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, LlmError>;
    fn generate(
        &self,
        req: &GenerateRequest,
        on_token: &mut dyn FnMut(&opal_llm::TokenEvent) -> bool,
    ) -> Result<Generation, LlmError>;
}

/// Read a model file for a backend that parses it whole.
fn read_model(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path)
        .map_err(|e| ServeError::ModelUnavailable(format!("{}: {e}", path.display())))
}

/// Float ONNX models through tract, under `limits`.
pub struct Onnx {
    pub limits: opal_infer::Limits,
}

struct OnnxPlan(PreparedModel);

impl Backend for Onnx {
    fn format(&self) -> ModelFormat {
        ModelFormat::Onnx
    }

    fn plan(&self, path: &Path) -> Result<Arc<dyn Plan>, ServeError> {
        let file = read_model(path)?;
        Ok(Arc::new(OnnxPlan(PreparedModel::load(
            &file,
            &self.limits,
        )?)))
    }
}

impl Plan for OnnxPlan {
    fn session(&self) -> Result<Box<dyn Session + '_>, ServeError> {
        Ok(Box::new(OnnxSession(&self.0)))
    }
}

struct OnnxSession<'a>(&'a PreparedModel);

impl Session for OnnxSession<'_> {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Run, ServeError> {
        let outputs = self.0.run(inputs)?;
        Ok(Run {
            reveal: Reveal {
                inputs: inputs.iter().map(Tensor::canonical_bytes).collect(),
                outputs: outputs.iter().map(Tensor::canonical_bytes).collect(),
            },
            outputs,
        })
    }
}

/// Canonical `opal_quant` models ([`opal_ledger::canonical`]), on `threads` threads (the bytes
/// are the same for any count).
pub struct Canonical {
    pub threads: usize,
}

struct CanonicalPlan {
    model: Arc<QuantModel>,
    opts: canonical::ExecOptions,
}

impl Backend for Canonical {
    fn format(&self) -> ModelFormat {
        ModelFormat::OpalQuant
    }

    fn plan(&self, path: &Path) -> Result<Arc<dyn Plan>, ServeError> {
        let model = canonical::load_model(&read_model(path)?)
            .map_err(|e| ServeError::Malformed(e.to_string()))?;
        Ok(Arc::new(CanonicalPlan {
            model: Arc::new(model),
            opts: canonical::ExecOptions {
                threads: self.threads,
                path: if opal_quant::portable_forced() {
                    canonical::ExecPath::Portable
                } else {
                    canonical::ExecPath::Auto
                },
            },
        }))
    }
}

impl Plan for CanonicalPlan {
    fn session(&self) -> Result<Box<dyn Session + '_>, ServeError> {
        Ok(Box::new(CanonicalSession(self)))
    }

    fn quant(&self) -> Option<Arc<QuantModel>> {
        Some(self.model.clone())
    }
}

struct CanonicalSession<'a>(&'a CanonicalPlan);

impl Session for CanonicalSession<'_> {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Run, ServeError> {
        let in_bytes: Vec<Vec<u8>> = inputs.iter().map(Tensor::canonical_bytes).collect();
        let out_bytes = canonical::run(&self.0.model, &in_bytes, u64::MAX, self.0.opts)
            .map_err(|e| ServeError::Malformed(e.to_string()))?;
        let outputs = out_bytes
            .iter()
            .map(|b| Tensor::from_canonical_bytes(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Run {
            outputs,
            reveal: Reveal {
                inputs: in_bytes,
                outputs: out_bytes,
            },
        })
    }
}

/// GGUF language models through `opal-llm` (candle), on the default device.
pub struct Gguf;

struct GgufPlan(LlmModel);

impl Backend for Gguf {
    fn format(&self) -> ModelFormat {
        ModelFormat::Gguf
    }

    fn plan(&self, path: &Path) -> Result<Arc<dyn Plan>, ServeError> {
        let m = LlmModel::load(path).map_err(|e| ServeError::ModelLoad(e.to_string()))?;
        Ok(Arc::new(GgufPlan(m)))
    }
}

impl Plan for GgufPlan {
    fn language(self: Arc<Self>) -> Option<Arc<dyn LanguageModel>> {
        Some(self)
    }
}

impl LanguageModel for GgufPlan {
    fn info(&self) -> &ModelInfo {
        self.0.info()
    }
    fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        self.0.apply_chat_template(messages)
    }
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        self.0.tokenize(text)
    }
    fn generate(
        &self,
        req: &GenerateRequest,
        on_token: &mut dyn FnMut(&opal_llm::TokenEvent) -> bool,
    ) -> Result<Generation, LlmError> {
        self.0.generate(req, on_token)
    }
}

/// The backends a worker runs, by format.
pub struct Backends(Vec<Box<dyn Backend>>);

impl Backends {
    /// ONNX (default limits), canonical models on `threads` threads, and GGUF.
    pub fn all(threads: usize) -> Backends {
        Backends(vec![
            Box::new(Onnx {
                limits: opal_infer::Limits::default(),
            }),
            Box::new(Canonical { threads }),
            Box::new(Gguf),
        ])
    }

    pub fn for_format(&self, f: ModelFormat) -> Option<&dyn Backend> {
        self.0.iter().find(|b| b.format() == f).map(|b| b.as_ref())
    }
}
