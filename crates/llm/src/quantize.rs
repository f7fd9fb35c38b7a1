//! Re-quantizing a GGUF file to another GGML type (with candle's quantizers). Used by the tests
//! and the benchmark to build "the same model in another quantization" — the swap a node could
//! make to serve a cheaper model than the registered one — without downloading a second model.
//! Every quantized 2-D weight whose row length is a multiple of the target block size is
//! dequantized to f32 and quantized again; norms (f32) and anything else are copied unchanged.

use std::io::{BufReader, BufWriter};
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

use crate::LlmError;

/// Parses a GGML type name such as `Q4_0`, `Q5_1`, `Q8_0`, `F16`.
pub fn parse_dtype(name: &str) -> Option<GgmlDType> {
    Some(match name.to_ascii_uppercase().as_str() {
        "F32" => GgmlDType::F32,
        "F16" => GgmlDType::F16,
        "Q4_0" => GgmlDType::Q4_0,
        "Q4_1" => GgmlDType::Q4_1,
        "Q5_0" => GgmlDType::Q5_0,
        "Q5_1" => GgmlDType::Q5_1,
        "Q8_0" => GgmlDType::Q8_0,
        "Q2K" | "Q2_K" => GgmlDType::Q2K,
        "Q3K" | "Q3_K" => GgmlDType::Q3K,
        "Q4K" | "Q4_K" => GgmlDType::Q4K,
        "Q5K" | "Q5_K" => GgmlDType::Q5K,
        "Q6K" | "Q6_K" => GgmlDType::Q6K,
        _ => return None,
    })
}

/// Writes `dst`: `src` with its quantized weights re-quantized to `dtype`. Returns how many
/// tensors were converted.
pub fn requantize_gguf(src: &Path, dst: &Path, dtype: GgmlDType) -> Result<usize, LlmError> {
    let io = |e: std::io::Error| LlmError::Io(e.to_string());
    let be = |e: candle_core::Error| LlmError::Backend(e.to_string());
    let mut r = BufReader::new(std::fs::File::open(src).map_err(io)?);
    let ct = gguf_file::Content::read(&mut r).map_err(|e| LlmError::BadModel(e.to_string()))?;
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort_by_key(|n| ct.tensor_infos[*n].offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    let mut converted = 0;
    for name in names {
        let t = ct.tensor(&mut r, name, &Device::Cpu).map_err(be)?;
        let quantized = !matches!(t.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
        let dims = t.shape().dims();
        let fits = dims.len() == 2 && dims[1] % dtype.block_size() == 0;
        if quantized && fits && t.dtype() != dtype {
            let f = t.dequantize(&Device::Cpu).map_err(be)?;
            tensors.push((name.clone(), QTensor::quantize(&f, dtype).map_err(be)?));
            converted += 1;
        } else {
            tensors.push((name.clone(), t));
        }
    }
    let mut md: Vec<(&str, &gguf_file::Value)> =
        ct.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    md.sort_by(|a, b| a.0.cmp(b.0));
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut w = BufWriter::new(std::fs::File::create(dst).map_err(io)?);
    gguf_file::write(&mut w, &md, &refs).map_err(be)?;
    Ok(converted)
}
