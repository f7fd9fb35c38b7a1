//! The inference-worker role: serve registered models off the consensus path, answer each
//! request with a signed receipt, and get paid on chain.
//!
//! Design:
//! - **Admission** ([`admission`]) is a pure function of the committed state, the clock and
//!   what the caller already owes. It ends with the ledger's own settlement rule
//!   (`opal_ledger::components::inference::terms`), so the worker never does work whose
//!   receipt the ledger would refuse. A request that fails gets a typed [`ServeError`] and no
//!   receipt, so it can never be charged; a request id is served at most once.
//! - **Backends** ([`backend`]): a `Backend` makes a `Plan` of a model file once, a plan opens
//!   a `Session` per request. ONNX (tract) and canonical `opal_quant` models today.
//! - **The receipt log** ([`log`]): every receipt is fsynced to `data/receipts.pending` before
//!   the reply leaves, so a crash never loses what the node is owed.
//! - **Passes** the node's timer drives ([`InferenceService::settle_pass`],
//!   [`InferenceService::reveal_pass`]): settle receipts in `SettleReceipts` batches and forget
//!   each once the ledger settled or refused it; reveal the inputs and outputs of held or
//!   audited results; clean up what nobody can ask for any more.
//! - **The prover** ([`prover`], [`InferenceService::prover_loop`]): `zk`-tier answers are
//!   proved in the background, the model's verifying key is published if nobody has, and the
//!   receipt settles with `SettleProved`.
//! - **LLMs** ([`llm`]): GGUF models on candle behind the OpenAI-compatible API: spend grants
//!   as API keys, per-token prices reserved at the worst case, the same settlement rule and
//!   receipt log, `activations` commitments. (Not yet behind the `Backend` interface.)
//! - **Injected** [`Chain`] (state, commit status, submission) and [`Clock`]: the worker never
//!   reaches into a node's store or mempool, and tests drive it over a test chain and a manual
//!   clock.

pub mod admission;
pub mod backend;
pub mod chain;
pub mod clock;
pub mod error;
mod fault;
mod files;
mod fsio;
pub mod llm;
pub mod log;
pub mod prover;
mod service;

pub use admission::{Admitted, Admitter, MAX_REQUEST_TTL_MS};
pub use chain::{Chain, ChainError, Committed};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::ServeError;
pub use prover::ProofState;
pub use service::{InferenceService, Options, Served, WorkerError, MAX_INPUTS};

pub use opal_infer::tensors_hash;
