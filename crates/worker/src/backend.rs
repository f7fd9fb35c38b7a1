//! Model backends behind one interface: a [`Backend`] turns a model file into a [`Plan`] (parsed,
//! checked and optimised once per model), and a plan opens a [`Session`] that runs requests.
//! The worker picks the backend by the registered format and never looks inside a plan.
//!
//! Two backends serve tensor models today: [`Onnx`] (float ONNX through tract, checked by the
//! validators' committee within a tolerance) and [`Canonical`] (`opal_quant` models, run by the
//! same function the ledger re-executes, so the bytes are the same on every machine and thread
//! count). LLMs are served by the node's LLM service, not through this interface yet.

use crate::error::ServeError;
use opal_infer::{PreparedModel, Tensor};
use opal_ledger::canonical;
use opal_quant::QuantModel;
use opal_types::registry::ModelFormat;
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
    /// Prepare a model file for execution.
    fn plan(&self, file: &[u8]) -> Result<Arc<dyn Plan>, ServeError>;
}

pub trait Plan: Send + Sync {
    /// A session over this plan, for one request.
    fn session(&self) -> Box<dyn Session + '_>;
    /// The canonical model behind the plan, where there is one (the zk prover proves it).
    fn quant(&self) -> Option<Arc<QuantModel>> {
        None
    }
}

pub trait Session {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Run, ServeError>;
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

    fn plan(&self, file: &[u8]) -> Result<Arc<dyn Plan>, ServeError> {
        Ok(Arc::new(OnnxPlan(PreparedModel::load(file, &self.limits)?)))
    }
}

impl Plan for OnnxPlan {
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(OnnxSession(&self.0))
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

    fn plan(&self, file: &[u8]) -> Result<Arc<dyn Plan>, ServeError> {
        let model =
            canonical::load_model(file).map_err(|e| ServeError::Malformed(e.to_string()))?;
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
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(CanonicalSession(self))
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

/// The backends a worker runs, by format.
pub struct Backends(Vec<Box<dyn Backend>>);

impl Backends {
    /// ONNX (default limits) and canonical models on `threads` threads.
    pub fn tensor(threads: usize) -> Backends {
        Backends(vec![
            Box::new(Onnx {
                limits: opal_infer::Limits::default(),
            }),
            Box::new(Canonical { threads }),
        ])
    }

    pub fn for_format(&self, f: ModelFormat) -> Option<&dyn Backend> {
        self.0.iter().find(|b| b.format() == f).map(|b| b.as_ref())
    }
}
