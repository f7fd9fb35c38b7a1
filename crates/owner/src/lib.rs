//! The model owner's role: what a model file declares when it is registered (format, content
//! hash, size, schemas, the cost of re-executing it in a block), the zk verifying key of a
//! canonical model, and quantizing a float ONNX model into one.
//!
//! Design note: everything here reads files and bytes and returns values; nothing talks to a
//! node. `opal model register` and `opal model quantize` are these functions plus a client,
//! and the devnet registers its demo models with the same declarations, so a model registered
//! by hand and the demo's are described by one rule. A file is always checked by the runtime
//! that will serve it (tract for ONNX, the canonical loader for `.opalq`), so a model no node
//! can load is refused before it is registered.

pub mod register;

pub use register::{registration, Registration, Registry, Terms};

use opal_quant::calib::{Calibration, Holdout};
use opal_quant::{BuildConfig, QuantModel};
use opal_types::registry::{ModelFormat, Tier};
use opal_types::Hash;
use opal_verify::canonical;
use std::path::Path;

/// The largest ONNX or `.opalq` file read into memory (GGUF files are hashed as a stream).
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: cannot tell the model format; the file must end in .onnx, .gguf or .opalq")]
    UnknownFormat(String),
    #[error("{path} is {len} bytes, more than the {max}-byte limit")]
    TooLarge { path: String, len: u64, max: u64 },
    #[error("not a model Opal can serve: {0}")]
    Unservable(String),
    #[error("not a canonical model file: {0}")]
    NotCanonical(String),
    #[error("zk setup: {0}")]
    ZkSetup(String),
    #[error("quantizing: {0}")]
    Quantize(String),
    #[error("--tiers replay: re-executing this model costs {needed} operations and the chain allows {limit} per block, so no dispute about it could be decided; register it with --tiers signed (or zk)")]
    ReplayTooCostly { needed: u64, limit: u64 },
    #[error("--tiers zk needs a canonical .opalq model (make one with `opal model quantize`)")]
    ZkNeedsCanonical,
    #[error("the registration is not valid: {0}")]
    Spec(String),
    /// What the chain said when asked (the next version, the replay limit).
    #[error("{0}")]
    Chain(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OwnerError + '_ {
    move |source| OwnerError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The format a file's extension names.
pub fn format_of(path: &Path) -> Result<ModelFormat, OwnerError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("onnx") => Ok(ModelFormat::Onnx),
        Some("gguf") => Ok(ModelFormat::Gguf),
        Some("opalq") => Ok(ModelFormat::OpalQuant),
        _ => Err(OwnerError::UnknownFormat(path.display().to_string())),
    }
}

/// Read a whole file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, OwnerError> {
    let len = std::fs::metadata(path).map_err(io(path))?.len();
    if len > max {
        let path = path.display().to_string();
        return Err(OwnerError::TooLarge { path, len, max });
    }
    std::fs::read(path).map_err(io(path))
}

/// What a model file declares in its registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub format: ModelFormat,
    /// BLAKE3 of the file: the content hash the registry and the artifact store use.
    pub content_hash: Hash,
    pub size: u64,
    pub input_schema: String,
    pub output_schema: String,
    /// Operations to re-execute it in a block (canonical models only).
    pub replay_cost: Option<u64>,
}

/// The schema of a canonical model: one f32 input of `input_len` values, one i64 output of
/// `output_len` integers (docs/verification.md).
fn canonical_schema(m: &QuantModel) -> (String, String) {
    let input = serde_json::json!([{"name": "input", "dtype": "f32", "shape": [1, m.input_len]}]);
    let output = serde_json::json!([{"name": "output", "dtype": "i64", "shape": [m.output_len()]}]);
    (input.to_string(), output.to_string())
}

/// The declaration of an ONNX or `.opalq` model held in memory.
pub fn declare_bytes(bytes: &[u8], format: ModelFormat) -> Result<Declared, OwnerError> {
    let (input_schema, output_schema, replay_cost) = match format {
        ModelFormat::Onnx => {
            let m = opal_infer::PreparedModel::load(bytes, &opal_infer::Limits::default())
                .map_err(|e| OwnerError::Unservable(e.to_string()))?;
            let json = |v| serde_json::to_string(v).unwrap_or_default();
            (json(&m.schema().inputs), json(&m.schema().outputs), None)
        }
        ModelFormat::OpalQuant => {
            let m = load_canonical(bytes)?;
            let (i, o) = canonical_schema(&m);
            (i, o, Some(canonical::cost(&m)))
        }
        ModelFormat::Gguf => ("[]".into(), "[]".into(), None),
    };
    Ok(Declared {
        format,
        content_hash: Hash(*blake3::hash(bytes).as_bytes()),
        size: bytes.len() as u64,
        input_schema,
        output_schema,
        replay_cost,
    })
}

/// The declaration of the model file at `path` (its format from its extension). A GGUF file
/// is hashed as a stream, never read whole.
pub fn declare_file(path: &Path) -> Result<Declared, OwnerError> {
    let format = format_of(path)?;
    if format != ModelFormat::Gguf {
        let bytes = read_bounded(path, MAX_MODEL_BYTES)?;
        return declare_bytes(&bytes, format).map_err(|e| match e {
            OwnerError::Unservable(w) => OwnerError::Unservable(format!("{}: {w}", path.display())),
            OwnerError::NotCanonical(w) => {
                OwnerError::NotCanonical(format!("{}: {w}", path.display()))
            }
            e => e,
        });
    }
    let mut h = blake3::Hasher::new();
    let f = std::fs::File::open(path).map_err(io(path))?;
    let size = std::io::copy(&mut std::io::BufReader::new(f), &mut h).map_err(io(path))?;
    Ok(Declared {
        format,
        content_hash: Hash(*h.finalize().as_bytes()),
        size,
        input_schema: "[]".into(),
        output_schema: "[]".into(),
        replay_cost: None,
    })
}

/// The tiers a model is offered under when its owner names none: re-execution (`replay`)
/// only for canonical models, which are the only ones a block can re-execute.
pub fn default_tiers(format: ModelFormat) -> Vec<Tier> {
    match format {
        ModelFormat::OpalQuant => vec![Tier::Signed, Tier::Replay],
        _ => vec![Tier::Signed],
    }
}

fn load_canonical(bytes: &[u8]) -> Result<QuantModel, OwnerError> {
    canonical::load_model(bytes).map_err(|e| OwnerError::NotCanonical(e.to_string()))
}

/// The zk verifying key of a canonical model (its weights committed once) and the weight
/// commitment the registration names: BLAKE3 of the key's bytes.
pub struct ZkKey {
    pub key: Vec<u8>,
    pub weight_commitment: Hash,
}

pub fn zk_key(opalq: &[u8]) -> Result<ZkKey, OwnerError> {
    let m = load_canonical(opalq)?;
    let setup = opal_zk::api::setup(&m).map_err(|e| OwnerError::ZkSetup(e.to_string()))?;
    let key = opal_zk::api::verifying_key(&setup).to_bytes();
    let weight_commitment = Hash(*blake3::hash(&key).as_bytes());
    Ok(ZkKey {
        key,
        weight_commitment,
    })
}

/// A float ONNX model quantized into a canonical one.
pub struct Quantized {
    pub model: QuantModel,
    /// Ops at the end of the graph that were dropped (a Softmax/ArgMax head).
    pub ignored_tail: Vec<String>,
    /// The held-out check, when the calibration data has labelled held-out rows.
    pub holdout: Option<Holdout>,
}

/// What `opal model quantize` reports about the model file it wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantizeReport {
    /// Where the file was written.
    pub out: String,
    /// BLAKE3 of the file: the content hash it registers under.
    pub file_hash: Hash,
    pub bytes: usize,
    /// The canonical model id (hex), which the zk statement names.
    pub model_id: String,
    pub input_len: u32,
    pub output_len: usize,
    pub layers: usize,
    pub input_scale: f64,
    pub output_scale: f64,
    pub calibration_rows: usize,
    pub ignored_tail_ops: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout_rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub float_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_agreement: Option<f64>,
}

impl Quantized {
    /// The report on this model written as `bytes` (its file) to `out`, calibrated on
    /// `calibration_rows` rows.
    pub fn report(&self, out: &Path, bytes: &[u8], calibration_rows: usize) -> QuantizeReport {
        let h = self.holdout.as_ref();
        QuantizeReport {
            out: out.display().to_string(),
            file_hash: Hash(*blake3::hash(bytes).as_bytes()),
            bytes: bytes.len(),
            model_id: self
                .model
                .model_id()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            input_len: self.model.input_len,
            output_len: self.model.output_len(),
            layers: self.model.layers.len(),
            input_scale: self.model.input_scale,
            output_scale: self.model.output_scale,
            calibration_rows,
            ignored_tail_ops: self.ignored_tail.clone(),
            holdout_rows: h.map(|h| h.rows),
            float_accuracy: h.map(|h| h.float_accuracy),
            canonical_accuracy: h.map(|h| h.canonical_accuracy),
            label_agreement: h.map(|h| h.label_agreement),
        }
    }
}

/// Quantize `onnx` with scales calibrated on `cal.rows`, and score the held-out rows.
pub fn quantize(
    onnx: &[u8],
    cal: &Calibration,
    act_bits: u8,
    weight_bits: u8,
) -> Result<Quantized, OwnerError> {
    let q = |e: opal_quant::QuantError| OwnerError::Quantize(e.to_string());
    let cfg = BuildConfig {
        act_bits,
        weight_bits,
        ..Default::default()
    };
    let graph = opal_quant::onnx::import_graph(onnx).map_err(q)?;
    let model = opal_quant::build_graph(&graph, &cal.rows, &cfg).map_err(q)?;
    let holdout = cal.holdout(&graph, &model).map_err(q)?;
    Ok(Quantized {
        model,
        ignored_tail: graph.ignored_tail.clone(),
        holdout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(format_of(Path::new("a/m.ONNX")).unwrap(), ModelFormat::Onnx);
        assert_eq!(
            format_of(Path::new("m.opalq")).unwrap(),
            ModelFormat::OpalQuant
        );
        assert_eq!(format_of(Path::new("m.gguf")).unwrap(), ModelFormat::Gguf);
        assert!(matches!(
            format_of(Path::new("m.bin")),
            Err(OwnerError::UnknownFormat(_))
        ));
    }

    #[test]
    fn a_file_no_runtime_can_load_is_refused() {
        assert!(matches!(
            declare_bytes(b"not onnx", ModelFormat::Onnx),
            Err(OwnerError::Unservable(_))
        ));
        assert!(matches!(
            declare_bytes(b"not opalq", ModelFormat::OpalQuant),
            Err(OwnerError::NotCanonical(_))
        ));
    }

    #[test]
    fn a_gguf_is_hashed_as_a_stream_and_the_hash_is_blake3() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let d = declare_file(&p).unwrap();
        assert_eq!(d.content_hash, Hash(*blake3::hash(&bytes).as_bytes()));
        assert_eq!(d.size, bytes.len() as u64);
    }

    #[test]
    fn a_quantized_model_declares_its_schema_cost_and_key() {
        let onnx = opal_quant::onnx_writer::fixtures::mlp_onnx();
        let rows: Vec<Vec<f32>> = (0..8)
            .map(|r| opal_quant::onnx_writer::fixtures::vals(r, 24, 1.0))
            .collect();
        let cal = Calibration {
            rows,
            held_out: vec![],
        };
        let q = quantize(&onnx, &cal, 8, 8).unwrap();
        assert!(q.holdout.is_none());
        let file = q.model.to_file_bytes();
        let d = declare_bytes(&file, ModelFormat::OpalQuant).unwrap();
        assert_eq!(d.replay_cost, Some(canonical::cost(&q.model)));
        assert!(d.input_schema.contains("[1,24]"), "{}", d.input_schema);
        let k = zk_key(&file).unwrap();
        assert_eq!(k.weight_commitment, Hash(*blake3::hash(&k.key).as_bytes()));
    }
}
