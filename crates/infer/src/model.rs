//! ONNX models on tract: parse, type-check, optimise and plan once ([`PreparedModel::load`]),
//! then run from any number of threads ([`PreparedModel::run`]).
//!
//! Loading untrusted bytes goes through, in order: a size bound; protobuf decoding; structural
//! checks on the decoded graph (node count, every operator known to the runtime, external data
//! refused); tract's import, type and shape inference, optimisation and planning. Every failure
//! is a typed [`InferError`]; tract is additionally run under `catch_unwind`, so a panic inside
//! it becomes an error instead of taking the node down.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tract_onnx::pb;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceModelExt, IntoRunnable, IntoTValue, OutletId, TValue,
    TypedModel, TypedRunnableModel,
};
use tract_onnx::prelude::{Tensor as TractTensor, TractError};

use crate::error::InferError;
use crate::spec::{ModelSchema, TensorSpec};
use crate::tensor::{DType, Tensor, TensorData};

/// Bounds applied when loading a model and when running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest model file accepted, in bytes (default 256 MiB).
    pub max_model_bytes: usize,
    /// Most graph nodes accepted, counting those of subgraphs (default 100 000).
    pub max_nodes: usize,
    /// Most input elements accepted in one request, summed over its tensors (default
    /// [`Tensor::MAX_ELEMENTS`]).
    pub max_input_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_model_bytes: 256 << 20,
            max_nodes: 100_000,
            max_input_elements: Tensor::MAX_ELEMENTS,
        }
    }
}

/// A model parsed, checked, optimised and planned once; immutable and shareable.
///
/// `PreparedModel` is `Send + Sync`: wrap it in an [`Arc`] and call [`PreparedModel::run`] from
/// as many threads as needed. Each run gets its own execution state; the plan is never mutated.
#[derive(Debug)]
pub struct PreparedModel {
    plan: Arc<TypedRunnableModel>,
    schema: ModelSchema,
    content_hash: String,
    size: usize,
    max_input_elements: usize,
}

impl PreparedModel {
    /// Prepares an ONNX model from its file bytes. Typed errors for everything an outsider
    /// controls: [`InferError::TooLarge`] (file size, node count),
    /// [`InferError::ModelInvalid`] (not ONNX, truncated, inconsistent, no shapes to plan
    /// with), [`InferError::UnsupportedOp`], [`InferError::UnsupportedDtype`] (an input or
    /// output outside [`DType`]).
    pub fn load(bytes: &[u8], limits: &Limits) -> Result<PreparedModel, InferError> {
        if bytes.len() > limits.max_model_bytes {
            return Err(InferError::TooLarge {
                what: "model bytes",
                limit: limits.max_model_bytes as u64,
                got: bytes.len() as u64,
            });
        }
        if bytes.is_empty() {
            return Err(InferError::model("empty model file"));
        }
        let content_hash = content_hash(bytes);
        let (plan, schema) = guarded("preparing the model", InferError::model, || {
            prepare(bytes, limits)
        })?;
        Ok(PreparedModel {
            plan,
            schema,
            content_hash,
            size: bytes.len(),
            max_input_elements: limits.max_input_elements,
        })
    }

    /// The declared inputs and outputs.
    pub fn schema(&self) -> &ModelSchema {
        &self.schema
    }

    /// The content hash of the model file: lowercase hex of plain `blake3::hash` of its bytes
    /// (the key of [`crate::ModelCache`]).
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    /// Size of the model file in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs the model on one request: one tensor per input, in schema order. Inputs are checked
    /// first ([`ModelSchema::check_inputs`] and the element limit), so a bad request never
    /// reaches tract; outputs come back in schema order.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, InferError> {
        self.schema.check_inputs(inputs)?;
        let total: usize = inputs.iter().map(Tensor::len).sum();
        if total > self.max_input_elements {
            return Err(InferError::TooLarge {
                what: "input elements",
                limit: self.max_input_elements as u64,
                got: total as u64,
            });
        }
        let values = inputs
            .iter()
            .map(to_tract)
            .collect::<Result<Vec<TValue>, InferError>>()?;
        let outputs = guarded("running the model", execution, || {
            self.plan
                .run(values.into_iter().collect())
                .map_err(|e| execution(tract_msg(&e)))
        })?;
        outputs
            .iter()
            .zip(&self.schema.outputs)
            .map(|(v, spec)| from_tract(v, &spec.name))
            .collect()
    }
}

/// Lowercase hex of plain BLAKE3 over a model file: the key models are prepared and cached
/// under.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn execution(reason: impl Into<String>) -> InferError {
    InferError::Execution {
        reason: reason.into(),
    }
}

/// tract's error with its whole context chain on one line.
fn tract_msg(e: &TractError) -> String {
    format!("{e:#}")
}

/// Runs `f`, turning a panic into the error `wrap` builds. The last line of defence around tract.
fn guarded<T>(
    doing: &str,
    wrap: fn(String) -> InferError,
    f: impl FnOnce() -> Result<T, InferError>,
) -> Result<T, InferError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(wrap(format!("runtime panicked while {doing}: {msg}")))
        }
    }
}

fn prepare(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(Arc<TypedRunnableModel>, ModelSchema), InferError> {
    let onnx = tract_onnx::onnx();
    let proto = onnx
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| InferError::model(format!("not an ONNX protobuf: {}", tract_msg(&e))))?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| InferError::model("the model has no graph"))?;
    if graph.input.is_empty() || graph.output.is_empty() {
        return Err(InferError::model(
            "the graph declares no inputs or no outputs",
        ));
    }
    let mut nodes = 0usize;
    check_graph(graph, &onnx.op_register.0, &mut nodes, limits.max_nodes, 0)?;

    let model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| InferError::model(format!("import: {}", tract_msg(&e))))?;
    let typed = model
        .into_typed()
        .map_err(|e| InferError::model(format!("type and shape inference: {}", tract_msg(&e))))?;
    let schema = schema_of(&typed)?;
    let optimized = typed
        .into_optimized()
        .map_err(|e| InferError::model(format!("optimisation: {}", tract_msg(&e))))?;
    let plan = optimized
        .into_runnable()
        .map_err(|e| InferError::model(format!("planning: {}", tract_msg(&e))))?;
    Ok((plan, schema))
}

/// Walks a graph and its subgraphs: bounded node count and depth, known operators only, no
/// external tensor data.
fn check_graph(
    g: &pb::GraphProto,
    ops: &std::collections::HashMap<String, impl Sized>,
    nodes: &mut usize,
    max_nodes: usize,
    depth: usize,
) -> Result<(), InferError> {
    const MAX_DEPTH: usize = 16;
    if depth > MAX_DEPTH {
        return Err(InferError::model("subgraphs nested too deeply"));
    }
    let external = pb::tensor_proto::DataLocation::External as i32;
    if g.initializer
        .iter()
        .any(|t| t.data_location == Some(external) || !t.external_data.is_empty())
    {
        return Err(InferError::model(
            "tensors stored as external data are not supported; embed them in the file",
        ));
    }
    for n in &g.node {
        *nodes += 1;
        if *nodes > max_nodes {
            return Err(InferError::TooLarge {
                what: "graph nodes",
                limit: max_nodes as u64,
                got: *nodes as u64,
            });
        }
        if !ops.contains_key(&n.op_type) {
            return Err(InferError::UnsupportedOp {
                op: n.op_type.clone(),
                domain: n.domain.clone(),
            });
        }
        for a in &n.attribute {
            if let Some(t) = &a.t {
                if t.data_location == Some(external) || !t.external_data.is_empty() {
                    return Err(InferError::model(
                        "tensors stored as external data are not supported",
                    ));
                }
            }
            for sub in a.g.iter().chain(&a.graphs) {
                check_graph(sub, ops, nodes, max_nodes, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn dtype_of(dt: DatumType) -> Option<DType> {
    match dt {
        DatumType::F32 => Some(DType::F32),
        DatumType::I64 => Some(DType::I64),
        DatumType::I32 => Some(DType::I32),
        DatumType::U8 => Some(DType::U8),
        _ => None,
    }
}

fn schema_of(model: &TypedModel) -> Result<ModelSchema, InferError> {
    let spec = |outlet: &OutletId, kind: &str| -> Result<TensorSpec, InferError> {
        let fact = model
            .outlet_fact(*outlet)
            .map_err(|e| InferError::model(tract_msg(&e)))?;
        let name = model
            .outlet_label(*outlet)
            .map(str::to_string)
            .unwrap_or_else(|| model.node(outlet.node).name.clone());
        let dtype = dtype_of(fact.datum_type).ok_or_else(|| InferError::UnsupportedDtype {
            what: format!("{kind} `{name}`"),
            dtype: format!("{:?}", fact.datum_type),
        })?;
        let shape = fact
            .shape
            .iter()
            .map(|d| d.as_i64().and_then(|v| usize::try_from(v).ok()))
            .collect();
        Ok(TensorSpec { name, dtype, shape })
    };
    let inputs = model
        .input_outlets()
        .map_err(|e| InferError::model(tract_msg(&e)))?
        .iter()
        .map(|o| spec(o, "input"))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = model
        .output_outlets()
        .map_err(|e| InferError::model(tract_msg(&e)))?
        .iter()
        .map(|o| spec(o, "output"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ModelSchema { inputs, outputs })
}

fn to_tract(t: &Tensor) -> Result<TValue, InferError> {
    let shape = t.shape();
    let tensor = match t.data() {
        TensorData::F32(v) => TractTensor::from_shape(shape, v),
        TensorData::I64(v) => TractTensor::from_shape(shape, v),
        TensorData::I32(v) => TractTensor::from_shape(shape, v),
        TensorData::U8(v) => TractTensor::from_shape(shape, v),
    }
    .map_err(|e| InferError::tensor(tract_msg(&e)))?;
    Ok(tensor.into_tvalue())
}

fn from_tract(v: &TValue, name: &str) -> Result<Tensor, InferError> {
    let shape = v.shape().to_vec();
    macro_rules! elems {
        ($t:ty) => {
            v.to_plain_array_view::<$t>()
                .map_err(|e| execution(tract_msg(&e)))?
                .iter()
                .copied()
                .collect()
        };
    }
    let data = match v.datum_type() {
        DatumType::F32 => TensorData::F32(elems!(f32)),
        DatumType::I64 => TensorData::I64(elems!(i64)),
        DatumType::I32 => TensorData::I32(elems!(i32)),
        DatumType::U8 => TensorData::U8(elems!(u8)),
        other => {
            return Err(InferError::UnsupportedDtype {
                what: format!("output `{name}`"),
                dtype: format!("{other:?}"),
            })
        }
    };
    Tensor::new(shape, data)
}

// `run(&self)` from many threads relies on these.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PreparedModel>();
};
