//! Minimal ONNX reader (protobuf wire format, no dependencies) for MLP graphs: a chain of
//! `MatMul(x, W) [+ Add(., B)]` or `Gemm(x, W, B)` (alpha = beta = 1, transA = 0, any transB)
//! layers with `Relu` between them (not after the last), `Flatten`/`Reshape` of the flat vector
//! ignored. Weights must be FLOAT initializers (`float_data` or `raw_data`). Anything else is
//! rejected with a typed error, never guessed. The result feeds [`crate::build_mlp`].
//!
//! Untrusted bytes: every length is checked against the remaining input and element counts are
//! bounded by [`MAX_TENSOR`], so malformed files fail without panicking or huge allocations.

use std::collections::BTreeMap;

use crate::build::{FloatConv, FloatDense, FloatGraph, FloatLayer, FloatMaxPool};
use crate::QuantError;

/// Largest tensor (elements) accepted.
pub const MAX_TENSOR: usize = 1 << 26;

fn err(what: impl Into<String>) -> QuantError {
    QuantError::Onnx(what.into())
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

enum Val<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
    Fixed64,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, pos: 0 }
    }
    fn varint(&mut self) -> Result<u64, QuantError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .b
                .get(self.pos)
                .ok_or_else(|| err("truncated varint"))?;
            self.pos += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err("varint too long"))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], QuantError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| err("truncated field"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// Next `(field number, value)`, or `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Val<'a>)>, QuantError> {
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let v = match key & 7 {
            0 => Val::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Val::Fixed64
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| err("length"))?;
                Val::Bytes(self.take(n)?)
            }
            5 => Val::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| err("fixed32"))?,
            )),
            t => return Err(err(format!("unsupported wire type {t}"))),
        };
        Ok(Some((key >> 3, v)))
    }
}

fn string(v: &Val) -> Result<String, QuantError> {
    match v {
        Val::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| err("invalid utf-8")),
        _ => Err(err("expected a string")),
    }
}

#[derive(Default)]
struct Tensor {
    name: String,
    dims: Vec<usize>,
    data_type: u64,
    floats: Vec<f32>,
    /// INT64 data (`int64_data` or `raw_data` of an INT64 tensor).
    ints: Vec<i64>,
}

fn push_dims(dims: &mut Vec<usize>, v: &Val) -> Result<(), QuantError> {
    match v {
        Val::Varint(d) => dims.push(usize::try_from(*d).map_err(|_| err("dim"))?),
        Val::Bytes(b) => {
            let mut r = Reader::new(b);
            while r.pos < b.len() {
                dims.push(usize::try_from(r.varint()?).map_err(|_| err("dim"))?);
            }
        }
        _ => return Err(err("bad dims")),
    }
    if dims.len() > 8 {
        return Err(err("too many dims"));
    }
    Ok(())
}

fn tensor(b: &[u8]) -> Result<Tensor, QuantError> {
    let mut t = Tensor::default();
    let mut raw: Option<&[u8]> = None;
    let mut r = Reader::new(b);
    while let Some((f, v)) = r.next()? {
        match (f, &v) {
            (1, _) => push_dims(&mut t.dims, &v)?,
            (2, Val::Varint(d)) => t.data_type = *d,
            (4, Val::Bytes(p)) => {
                if p.len() % 4 != 0 || t.floats.len() + p.len() / 4 > MAX_TENSOR {
                    return Err(err("bad float_data"));
                }
                t.floats.extend(
                    p.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            (4, Val::Fixed32(x)) => t.floats.push(f32::from_bits(*x)),
            (7, Val::Bytes(p)) => {
                let mut r = Reader::new(p);
                while r.pos < p.len() {
                    if t.ints.len() >= MAX_TENSOR {
                        return Err(err("bad int64_data"));
                    }
                    t.ints.push(r.varint()? as i64);
                }
            }
            (7, Val::Varint(x)) => t.ints.push(*x as i64),
            (8, _) => t.name = string(&v)?,
            (9, Val::Bytes(p)) => raw = Some(p),
            (13, _) | (14, _) => return Err(err("external tensor data is not supported")),
            _ => {}
        }
    }
    if let (Some(p), 7) = (raw, t.data_type) {
        if p.len() % 8 != 0 || p.len() / 8 > MAX_TENSOR {
            return Err(err("bad int64 raw_data"));
        }
        t.ints = p
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        raw = None;
    }
    if let Some(p) = raw {
        if p.len() % 4 != 0 || p.len() / 4 > MAX_TENSOR {
            return Err(err("bad raw_data"));
        }
        t.floats = p
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
    }
    Ok(t)
}

/// The dense layer of a `MatMul` or `Gemm` node (weights row-major, `rows` outputs by `cols`
/// inputs; a `Gemm` may carry a bias, its third input): the one reading both importers share.
fn dense<'a>(
    n: &Node,
    float_init: &impl Fn(&str) -> Result<&'a Tensor, QuantError>,
) -> Result<FloatDense, QuantError> {
    if n.op == "Gemm"
        && (n.ints.get("transA").copied().unwrap_or(0) != 0
            || n.floats.get("alpha").copied().unwrap_or(1.0) != 1.0
            || n.floats.get("beta").copied().unwrap_or(1.0) != 1.0)
    {
        return Err(err("Gemm with transA / alpha / beta is not supported"));
    }
    let w = float_init(&n.inputs[1])?;
    let trans_b = n.op == "Gemm" && n.ints.get("transB").copied().unwrap_or(0) != 0;
    let (cols, rows) = match (w.dims.as_slice(), trans_b) {
        ([i, o], false) => (*i, *o),
        ([o, i], true) => (*i, *o),
        _ => return Err(err("weights must be 2-D")),
    };
    if rows == 0 || cols == 0 || rows > 1 << 20 || cols > 1 << 20 {
        return Err(err("weight shape out of range"));
    }
    let weights = if trans_b {
        w.floats.clone()
    } else {
        (0..rows * cols)
            .map(|k| w.floats[(k % cols) * rows + k / cols])
            .collect()
    };
    // An empty name is an absent optional input (ONNX).
    let bias = match n.inputs.get(2) {
        Some(b) if n.op == "Gemm" && !b.is_empty() => float_init(b)?.floats.clone(),
        _ => vec![0.0; rows],
    };
    if bias.len() != rows {
        return Err(err("Gemm bias length does not match"));
    }
    Ok(FloatDense {
        rows,
        cols,
        weights,
        bias,
    })
}

#[derive(Default, Debug)]
struct Node {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    ints: BTreeMap<String, i64>,
    floats: BTreeMap<String, f32>,
    /// List-valued integer attributes (`kernel_shape`, `strides`, `pads`, ...).
    int_lists: BTreeMap<String, Vec<i64>>,
}

fn node(b: &[u8]) -> Result<Node, QuantError> {
    let mut n = Node::default();
    let mut r = Reader::new(b);
    while let Some((f, v)) = r.next()? {
        match f {
            1 => n.inputs.push(string(&v)?),
            2 => n.outputs.push(string(&v)?),
            4 => n.op = string(&v)?,
            5 => {
                let Val::Bytes(ab) = v else {
                    return Err(err("bad attribute"));
                };
                let (mut name, mut i, mut fl) = (String::new(), None, None);
                let mut list = Vec::new();
                let mut ar = Reader::new(ab);
                while let Some((af, av)) = ar.next()? {
                    match (af, av) {
                        (1, v) => name = string(&v)?,
                        (2, Val::Fixed32(x)) => fl = Some(f32::from_bits(x)),
                        (3, Val::Varint(x)) => i = Some(x as i64),
                        (8, Val::Varint(x)) => list.push(x as i64),
                        (8, Val::Bytes(p)) => {
                            let mut r = Reader::new(p);
                            while r.pos < p.len() {
                                list.push(r.varint()? as i64);
                            }
                        }
                        _ => {}
                    }
                    if list.len() > 64 {
                        return Err(err("attribute list too long"));
                    }
                }
                if !list.is_empty() {
                    n.int_lists.insert(name.clone(), list);
                }
                if let Some(i) = i {
                    n.ints.insert(name.clone(), i);
                }
                if let Some(fl) = fl {
                    n.floats.insert(name, fl);
                }
            }
            _ => {}
        }
    }
    Ok(n)
}

/// Parses an ONNX MLP into float dense layers (row-major `rows = out`, `cols = in`).
pub fn import_mlp(bytes: &[u8]) -> Result<Vec<FloatDense>, QuantError> {
    let mut graph = None;
    let mut r = Reader::new(bytes);
    while let Some((f, v)) = r.next()? {
        if let (7, Val::Bytes(g)) = (f, v) {
            graph = Some(g);
        }
    }
    let graph = graph.ok_or_else(|| err("no graph"))?;
    let mut nodes = Vec::new();
    let mut inits = BTreeMap::new();
    let mut r = Reader::new(graph);
    while let Some((f, v)) = r.next()? {
        match (f, v) {
            (1, Val::Bytes(b)) => nodes.push(node(b)?),
            (5, Val::Bytes(b)) => {
                let t = tensor(b)?;
                inits.insert(t.name.clone(), t);
            }
            _ => {}
        }
    }
    let float_init = |name: &str| -> Result<&Tensor, QuantError> {
        let t = inits
            .get(name)
            .ok_or_else(|| err(format!("{name} is not an initializer")))?;
        let n: usize = t
            .dims
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| err("dims overflow"))?;
        if t.data_type != 1 || n != t.floats.len() {
            return Err(err(format!("{name}: expected FLOAT data of {n} elements")));
        }
        Ok(t)
    };
    let mut layers: Vec<FloatDense> = Vec::new();
    let mut relu_after: Vec<bool> = Vec::new();
    for n in &nodes {
        match n.op.as_str() {
            "MatMul" | "Gemm" => {
                if n.inputs.len() < 2 {
                    return Err(err("MatMul/Gemm needs two inputs"));
                }
                let d = dense(n, &float_init)?;
                if layers.last().is_some_and(|l| l.rows != d.cols) {
                    return Err(err("layer shapes do not chain"));
                }
                layers.push(d);
                relu_after.push(false);
            }
            "Add" => {
                let l = layers
                    .last_mut()
                    .ok_or_else(|| err("Add before any MatMul"))?;
                let b = n
                    .inputs
                    .iter()
                    .find_map(|i| inits.get(i))
                    .ok_or_else(|| err("Add needs a constant bias"))?;
                let b = float_init(&b.name)?;
                if b.floats.len() != l.rows || relu_after.last() == Some(&true) {
                    return Err(err("unsupported Add"));
                }
                l.bias.iter_mut().zip(&b.floats).for_each(|(x, y)| *x += y);
            }
            "Relu" => match relu_after.last_mut() {
                Some(r) if !*r => *r = true,
                _ => return Err(err("Relu not after a dense layer")),
            },
            "Flatten" | "Reshape" if layers.is_empty() || relu_after.last() == Some(&true) => {}
            other => return Err(err(format!("unsupported op {other}"))),
        }
    }
    let k = layers.len();
    if k == 0 || relu_after[..k - 1].iter().any(|r| !r) || relu_after[k - 1] {
        return Err(err("expected ReLU after every dense layer except the last"));
    }
    Ok(layers)
}

/// Shape of a graph input: dims, with `None` for a symbolic dimension.
fn value_info(b: &[u8]) -> Result<(String, Vec<Option<usize>>), QuantError> {
    let (mut name, mut dims) = (String::new(), Vec::new());
    let mut r = Reader::new(b);
    while let Some((f, v)) = r.next()? {
        match (f, v) {
            (1, v) => name = string(&v)?,
            (2, Val::Bytes(tp)) => {
                let mut r = Reader::new(tp);
                while let Some((f, v)) = r.next()? {
                    let (1, Val::Bytes(tt)) = (f, v) else {
                        continue;
                    };
                    let mut r = Reader::new(tt);
                    while let Some((f, v)) = r.next()? {
                        let (2, Val::Bytes(sh)) = (f, v) else {
                            continue;
                        };
                        let mut r = Reader::new(sh);
                        while let Some((f, v)) = r.next()? {
                            let (1, Val::Bytes(dim)) = (f, v) else {
                                continue;
                            };
                            let mut d = None;
                            let mut r = Reader::new(dim);
                            while let Some((f, v)) = r.next()? {
                                if let (1, Val::Varint(x)) = (f, v) {
                                    d = usize::try_from(x).ok();
                                }
                            }
                            dims.push(d);
                            if dims.len() > 8 {
                                return Err(err("too many input dims"));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok((name, dims))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Flat(usize),
    Chw(usize, usize, usize),
}

impl Shape {
    fn len(&self) -> usize {
        match *self {
            Shape::Flat(n) => n,
            Shape::Chw(c, h, w) => c * h * w,
        }
    }
}

/// Ops after the last layer that the proof does not cover; they are dropped and listed in
/// [`FloatGraph::ignored_tail`]. They start at the first Softmax / LogSoftmax / ArgMax.
const TAIL_START: &[&str] = &["Softmax", "LogSoftmax", "ArgMax"];
const TAIL_OK: &[&str] = &[
    "Softmax",
    "LogSoftmax",
    "ArgMax",
    "Cast",
    "ArrayFeatureExtractor",
    "ZipMap",
    "Identity",
    "Reshape",
    "Flatten",
];

fn same_pair(v: Option<&Vec<i64>>, default: i64, what: &str) -> Result<usize, QuantError> {
    let v = v.cloned().unwrap_or_else(|| vec![default; 2]);
    if v.is_empty() || v.iter().any(|x| *x != v[0]) || v[0] < 0 || v[0] > 1 << 10 {
        return Err(err(format!(
            "Conv {what} {v:?}: only equal values on every axis are supported"
        )));
    }
    Ok(v[0] as usize)
}

/// Parses a straight-line ONNX graph into float layers: `MatMul [+ Add]`, `Gemm`
/// (alpha = beta = 1, transA = 0), `Conv` (2-D, group 1, dilation 1, equal strides and pads on
/// both axes, optional bias, `Add` of a per-channel bias), `Relu`, `Flatten` / `Reshape` to a
/// flat vector, `Identity` / `Dropout` (no-ops), `AveragePool` / `GlobalAveragePool` (as a
/// per-channel convolution with weights `1/(kh kw)`; unpadded or `count_include_pad = 1`).
/// A final `Softmax` / `LogSoftmax` / `ArgMax`
/// and whatever follows it (`Cast`, `ArrayFeatureExtractor`, `ZipMap`, ...) is dropped and
/// listed in [`FloatGraph::ignored_tail`]: the model output is then the logits (Softmax is
/// monotonic, so the label is their argmax). Anything else is rejected, never guessed.
pub fn import_graph(bytes: &[u8]) -> Result<FloatGraph, QuantError> {
    let mut graph = None;
    let mut r = Reader::new(bytes);
    while let Some((f, v)) = r.next()? {
        if let (7, Val::Bytes(g)) = (f, v) {
            graph = Some(g);
        }
    }
    let graph = graph.ok_or_else(|| err("no graph"))?;
    let mut nodes = Vec::new();
    let mut inits = BTreeMap::new();
    let mut inputs = Vec::new();
    let mut r = Reader::new(graph);
    while let Some((f, v)) = r.next()? {
        match (f, v) {
            (1, Val::Bytes(b)) => nodes.push(node(b)?),
            (5, Val::Bytes(b)) => {
                let t = tensor(b)?;
                inits.insert(t.name.clone(), t);
            }
            (11, Val::Bytes(b)) => inputs.push(value_info(b)?),
            _ => {}
        }
    }
    let (in_name, in_dims) = inputs
        .into_iter()
        .find(|(n, _)| !inits.contains_key(n))
        .ok_or_else(|| err("graph has no non-constant input"))?;
    // Drop a leading batch dimension (1 or symbolic).
    let dims: Vec<Option<usize>> = match in_dims.as_slice() {
        [b, rest @ ..] if !rest.is_empty() && matches!(b, None | Some(1)) => rest.to_vec(),
        d => d.to_vec(),
    };
    let known = |d: &Option<usize>| d.filter(|x| *x > 0 && *x <= 1 << 20);
    let mut shape = match dims.as_slice() {
        [n] => known(n).map(Shape::Flat),
        [c, h, w] => match (known(c), known(h), known(w)) {
            (Some(c), Some(h), Some(w))
                if c.checked_mul(h)
                    .and_then(|x| x.checked_mul(w))
                    .is_some_and(|n| n <= 1 << 24) =>
            {
                Some(Shape::Chw(c, h, w))
            }
            _ => None,
        },
        _ => None,
    };
    let float_init = |name: &str| -> Result<&Tensor, QuantError> {
        let t = inits
            .get(name)
            .ok_or_else(|| err(format!("{name} is not an initializer")))?;
        let n: usize = t
            .dims
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| err("dims overflow"))?;
        if t.data_type != 1 || n != t.floats.len() {
            return Err(err(format!("{name}: expected FLOAT data of {n} elements")));
        }
        Ok(t)
    };
    let mut cur = in_name;
    // Tensor name -> float value index (0 = the graph input, k + 1 = output of layer k), and
    // the shape of every float value, for residual Adds.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    names.insert(cur.clone(), 0);
    let mut val_shapes: Vec<Option<Shape>> = vec![shape];
    let mut layers: Vec<FloatLayer> = Vec::new();
    let mut ignored_tail = Vec::new();
    let mut input_shape = None;
    for n in &nodes {
        if !ignored_tail.is_empty() || TAIL_START.contains(&n.op.as_str()) {
            if !TAIL_OK.contains(&n.op.as_str()) {
                return Err(err(format!(
                    "{} after the output head is not supported",
                    n.op
                )));
            }
            ignored_tail.push(n.op.clone());
            continue;
        }
        let data_in = n.inputs.iter().position(|i| *i == cur);
        let Some(data_in) = data_in else {
            return Err(err(format!(
                "{} does not consume the running tensor {cur} (only straight-line graphs)",
                n.op
            )));
        };
        let out = n
            .outputs
            .first()
            .ok_or_else(|| err("node without output"))?
            .clone();
        let last_linear_rows = |layers: &[FloatLayer]| match layers.last() {
            Some(FloatLayer::Dense(d)) => Some(d.rows),
            Some(FloatLayer::Conv(c)) => Some(c.out_ch),
            _ => None,
        };
        match n.op.as_str() {
            "MatMul" | "Gemm" => {
                if data_in != 0 || n.inputs.len() < 2 {
                    return Err(err("MatMul/Gemm: the activation must be the first input"));
                }
                let d = dense(n, &float_init)?;
                let (rows, cols) = (d.rows, d.cols);
                match shape {
                    Some(s) if s.len() != cols => {
                        return Err(err(format!(
                            "MatMul/Gemm expects {cols} inputs, the running tensor has {}",
                            s.len()
                        )))
                    }
                    None if layers.is_empty() => {}
                    None => return Err(err("unknown shape before MatMul/Gemm")),
                    _ => {}
                }
                if layers.is_empty() {
                    input_shape = Some(Shape::Flat(cols));
                }
                layers.push(FloatLayer::Dense(d));
                shape = Some(Shape::Flat(rows));
            }
            "Conv" => {
                if data_in != 0 || n.inputs.len() < 2 {
                    return Err(err("Conv: the activation must be the first input"));
                }
                let Some(Shape::Chw(c, h, wd)) = shape else {
                    return Err(err("Conv needs a known C x H x W input"));
                };
                if n.ints.get("group").copied().unwrap_or(1) != 1 {
                    return Err(err("grouped Conv is not supported"));
                }
                if let Some(s) = n.ints.get("auto_pad") {
                    let _ = s;
                    return Err(err("Conv auto_pad is not supported"));
                }
                if same_pair(n.int_lists.get("dilations"), 1, "dilations")? != 1 {
                    return Err(err("dilated Conv is not supported"));
                }
                let stride = same_pair(n.int_lists.get("strides"), 1, "strides")?;
                let pad = same_pair(n.int_lists.get("pads"), 0, "pads")?;
                let w = float_init(&n.inputs[1])?;
                let [o, i, kh, kw] = w.dims.as_slice() else {
                    return Err(err("Conv weights must be 4-D (OIHW)"));
                };
                let (o, i, kh, kw) = (*o, *i, *kh, *kw);
                if let Some(ks) = n.int_lists.get("kernel_shape") {
                    if ks.as_slice() != [kh as i64, kw as i64] {
                        return Err(err("Conv kernel_shape does not match the weights"));
                    }
                }
                if i != c || o == 0 || stride == 0 || h + 2 * pad < kh || wd + 2 * pad < kw {
                    return Err(err("Conv shapes do not fit the input"));
                }
                let bias = match n.inputs.get(2) {
                    Some(b) if !b.is_empty() => float_init(b)?.floats.clone(),
                    _ => vec![0.0; o],
                };
                if bias.len() != o {
                    return Err(err("Conv bias length does not match"));
                }
                let cv = FloatConv {
                    in_ch: c,
                    in_h: h,
                    in_w: wd,
                    out_ch: o,
                    kh,
                    kw,
                    stride,
                    pad,
                    weights: w.floats.clone(),
                    bias,
                };
                let (oh, ow) = cv.out_hw();
                if o.checked_mul(oh * ow).is_none_or(|n| n > 1 << 24) {
                    return Err(err("Conv output too large"));
                }
                if layers.is_empty() {
                    input_shape = shape;
                }
                layers.push(FloatLayer::Conv(cv));
                shape = Some(Shape::Chw(o, oh, ow));
            }
            "AveragePool" | "GlobalAveragePool" => {
                // A fixed linear map: a per-channel convolution with weights 1 / (kh kw) (the
                // builder quantizes and requantizes it like any Conv). Exact only without
                // padding, or with count_include_pad = 1.
                let Some(Shape::Chw(c, h, wd)) = shape else {
                    return Err(err("AveragePool needs a known C x H x W input"));
                };
                let (kh, kw, stride, pad) = if n.op == "GlobalAveragePool" {
                    (h, wd, 1, 0)
                } else {
                    let ks = n
                        .int_lists
                        .get("kernel_shape")
                        .ok_or_else(|| err("AveragePool without kernel_shape"))?;
                    let [kh, kw] = ks.as_slice() else {
                        return Err(err("AveragePool must be 2-D"));
                    };
                    let pad = same_pair(n.int_lists.get("pads"), 0, "pads")?;
                    if pad > 0 && n.ints.get("count_include_pad").copied().unwrap_or(0) == 0 {
                        return Err(err(
                            "padded AveragePool with count_include_pad = 0 is not supported",
                        ));
                    }
                    if n.ints.get("ceil_mode").copied().unwrap_or(0) != 0 {
                        return Err(err("AveragePool ceil_mode is not supported"));
                    }
                    let stride = same_pair(n.int_lists.get("strides"), 1, "strides")?;
                    (*kh as usize, *kw as usize, stride, pad)
                };
                if kh == 0 || kw == 0 || kh > 64 || kw > 64 || stride == 0 || c > 1 << 10 {
                    return Err(err("AveragePool shape out of range"));
                }
                if h + 2 * pad < kh || wd + 2 * pad < kw {
                    return Err(err("AveragePool kernel larger than the input"));
                }
                let taps = kh * kw;
                let mut weights = vec![0f32; c * c * taps];
                for ch in 0..c {
                    weights[(ch * c + ch) * taps..(ch * c + ch + 1) * taps]
                        .iter_mut()
                        .for_each(|w| *w = 1.0 / taps as f32);
                }
                let cv = FloatConv {
                    in_ch: c,
                    in_h: h,
                    in_w: wd,
                    out_ch: c,
                    kh,
                    kw,
                    stride,
                    pad,
                    weights,
                    bias: vec![0.0; c],
                };
                let (oh, ow) = cv.out_hw();
                if layers.is_empty() {
                    input_shape = shape;
                }
                layers.push(FloatLayer::Conv(cv));
                shape = Some(Shape::Chw(c, oh, ow));
            }
            "Add"
                if n.inputs.len() == 2
                    && n.inputs.iter().all(|i| !inits.contains_key(i))
                    && n.inputs.iter().filter(|i| **i == cur).count() == 1 =>
            {
                // Residual Add of the running tensor and an earlier one.
                let other = n
                    .inputs
                    .iter()
                    .find(|i| **i != cur)
                    .cloned()
                    .unwrap_or_default();
                let from = *names.get(&other).ok_or_else(|| {
                    err(format!(
                        "Add: {other} is neither a constant nor an earlier tensor"
                    ))
                })?;
                let here = shape.map(|s| s.len());
                let there = val_shapes.get(from).copied().flatten().map(|s| s.len());
                if here.is_none() || here != there {
                    return Err(err(
                        "residual Add of tensors of different or unknown shapes",
                    ));
                }
                if layers.is_empty() {
                    return Err(err("residual Add before any layer is not supported"));
                }
                layers.push(FloatLayer::Add { from });
            }
            "MaxPool" | "GlobalMaxPool" => {
                let Some(Shape::Chw(c, h, wd)) = shape else {
                    return Err(err("MaxPool needs a known C x H x W input"));
                };
                if n.outputs.get(1).is_some_and(|o| !o.is_empty()) {
                    return Err(err("MaxPool with an Indices output is not supported"));
                }
                let (kh, kw, stride) = if n.op == "GlobalMaxPool" {
                    (h, wd, 1)
                } else {
                    let ks = n
                        .int_lists
                        .get("kernel_shape")
                        .ok_or_else(|| err("MaxPool without kernel_shape"))?;
                    let [kh, kw] = ks.as_slice() else {
                        return Err(err("MaxPool must be 2-D"));
                    };
                    if same_pair(n.int_lists.get("pads"), 0, "pads")? != 0 {
                        return Err(err("padded MaxPool is not supported"));
                    }
                    if n.ints.get("ceil_mode").copied().unwrap_or(0) != 0 {
                        return Err(err("MaxPool ceil_mode is not supported"));
                    }
                    if same_pair(n.int_lists.get("dilations"), 1, "dilations")? != 1 {
                        return Err(err("dilated MaxPool is not supported"));
                    }
                    if n.ints.contains_key("auto_pad") {
                        return Err(err("MaxPool auto_pad is not supported"));
                    }
                    let stride = same_pair(n.int_lists.get("strides"), 1, "strides")?;
                    (*kh as usize, *kw as usize, stride)
                };
                if kh == 0 || kw == 0 || kh > 64 || kw > 64 || stride == 0 || kh > h || kw > wd {
                    return Err(err("MaxPool shape out of range"));
                }
                let p = FloatMaxPool {
                    ch: c,
                    in_h: h,
                    in_w: wd,
                    kh,
                    kw,
                    stride,
                };
                let (oh, ow) = p.out_hw();
                if layers.is_empty() {
                    input_shape = shape;
                }
                layers.push(FloatLayer::MaxPool(p));
                shape = Some(Shape::Chw(c, oh, ow));
            }
            "Add" => {
                let rows = last_linear_rows(&layers)
                    .ok_or_else(|| err("Add is supported only as the bias of MatMul/Conv"))?;
                let b = n
                    .inputs
                    .iter()
                    .find_map(|i| inits.get(i))
                    .ok_or_else(|| err("Add needs a constant bias"))?;
                let b = float_init(&b.name)?;
                if b.floats.len() != rows {
                    return Err(err("Add: bias length does not match the layer"));
                }
                match layers.last_mut() {
                    Some(FloatLayer::Dense(d)) => {
                        d.bias.iter_mut().zip(&b.floats).for_each(|(x, y)| *x += y)
                    }
                    Some(FloatLayer::Conv(c)) => {
                        c.bias.iter_mut().zip(&b.floats).for_each(|(x, y)| *x += y)
                    }
                    _ => return Err(err("unsupported Add")),
                }
            }
            "Relu" => {
                if layers.is_empty() {
                    return Err(err("Relu before any layer is not supported"));
                }
                if !matches!(layers.last(), Some(FloatLayer::Relu)) {
                    layers.push(FloatLayer::Relu);
                }
            }
            "Flatten" | "Reshape" => {
                if n.op == "Reshape" {
                    let target = n
                        .inputs
                        .get(1)
                        .and_then(|t| inits.get(t))
                        .ok_or_else(|| err("Reshape needs a constant shape"))?;
                    let len = shape.map(|s| s.len());
                    let flat = match target.ints.as_slice() {
                        [x] => *x == -1 || Some(*x as usize) == len,
                        [b, x] => {
                            (*b == 1 || *b == -1 || *b == 0)
                                && (*x == -1 || Some(*x as usize) == len)
                        }
                        _ => false,
                    };
                    if !flat {
                        return Err(err(format!(
                            "Reshape to {:?} is not a flatten",
                            target.ints
                        )));
                    }
                }
                if let Some(s) = shape {
                    shape = Some(Shape::Flat(s.len()));
                }
            }
            "Identity" | "Dropout" => {}
            other => return Err(err(format!("unsupported op {other}"))),
        }
        val_shapes.resize(layers.len() + 1, None);
        val_shapes[layers.len()] = shape;
        names.insert(out.clone(), layers.len());
        cur = out;
    }
    if !layers
        .iter()
        .any(|l| matches!(l, FloatLayer::Dense(_) | FloatLayer::Conv(_)))
    {
        return Err(err("graph has no MatMul/Gemm/Conv layer"));
    }
    let input_shape = match input_shape {
        Some(Shape::Flat(n)) => vec![n],
        Some(Shape::Chw(c, h, w)) => vec![c, h, w],
        None => return Err(err("unknown input shape")),
    };
    Ok(FloatGraph {
        input_shape,
        layers,
        ignored_tail,
    })
}
