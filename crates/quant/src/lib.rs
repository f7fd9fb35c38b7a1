//! Opal's canonical quantized integer model: the one definition of what a quantized model
//! computes, shared by the `replay` tier (re-execution) and the `zk` tier (proofs).
//!
//! Design note:
//! - A [`QuantModel`] is a straight-line list of [`Layer`]s over integer vectors. Every value is
//!   an `i64`; activations are signed `act_bits`-bit integers, accumulators are bounded by
//!   validation so that every intermediate fits comfortably in 2^62 (and therefore embeds into
//!   the Goldilocks field with room to spare, which the prover relies on).
//! - Semantics are pure integer arithmetic with one exactly specified rounding rule
//!   ([`requantize`]: multiply, add half, arithmetic shift = round half up, then saturate), so the
//!   reference executor is bit-exact and independent of thread count, platform and float mode.
//! - Floats appear only in the builder ([`build_mlp`]), which chooses scales by calibration, and
//!   as descriptive metadata (`input_scale`, `output_scale`) that do not affect execution.
//! - The canonical encoding is borsh; [`QuantModel::model_id`] is its domain-separated BLAKE3.
//! - Behind the `import` feature (model owners' tools; validators and the ledger build
//!   without it): [`onnx::import_graph`] reads straight-line ONNX graphs (MatMul/Gemm/Conv/Add/Relu,
//!   Flatten/Reshape, AveragePool as a Conv, a Softmax/ArgMax head dropped) with a small bounded
//!   protobuf reader (no ONNX runtime); [`build_graph`] quantizes them with scales calibrated on
//!   sample inputs. MaxPool is not supported yet.
//!
//! - [`QuantModel::run_with`] is the multi-threaded executor (scoped threads over rows /
//!   output positions; a portable scalar kernel and a vectorized one, AVX2 where available):
//!   identical bytes for every thread count and kernel. `OPAL_QUANT_PORTABLE=1` forces the
//!   portable kernel.
//! - `.opalq` files ([`QuantModel::to_file_bytes`] / [`QuantModel::from_file_bytes`]) register
//!   a quantized model as an artifact; [`QuantModel::input_from_f32`] and [`output_bytes`] are
//!   the canonical float-input and output-bytes mappings; [`quantize_onnx`] builds a model from
//!   ONNX bytes and calibration rows in one call.
//!
//! The full specification is in `docs/zk.md` ("Quantized model semantics").

mod error;
mod exec;
mod file;
pub mod fixtures;
mod model;
mod parallel;
mod rng;

// Building models (ONNX import, calibration, the float reference, the test writer): what a
// model owner runs, never a validator. Behind `import` so the ledger compiles without it.
#[cfg(feature = "import")]
mod build;
#[cfg(feature = "import")]
pub mod calib;
#[cfg(feature = "import")]
pub mod onnx;
#[cfg(feature = "import")]
pub mod onnx_writer;

#[cfg(feature = "import")]
pub use build::{
    build_graph, build_mlp, BuildConfig, FloatConv, FloatDense, FloatGraph, FloatLayer,
    FloatMaxPool,
};
pub use error::QuantError;
pub use exec::{quantize_input, requant_parts, requantize, Trace};
#[cfg(feature = "import")]
pub use file::quantize_onnx;
pub use file::{
    argmax, output_bytes, output_from_bytes, FileError, FILE_MAGIC, FILE_VERSION, MAX_FILE_BYTES,
};
pub use model::{
    Add, Conv2d, Dense, Layer, MaxPool2d, QuantModel, Requant, ValueShape, MAX_ABS_VALUE, MAX_DIM,
};
pub use parallel::{kernel_for, portable_forced, ExecOptions, ExecPath, Kernel, PORTABLE_ENV};
pub use rng::SplitMix64;
