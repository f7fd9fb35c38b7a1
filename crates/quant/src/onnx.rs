//! Minimal ONNX reader (protobuf wire format, no dependencies) for MLP graphs: a chain of
//! `MatMul(x, W) [+ Add(., B)]` or `Gemm(x, W, B)` (alpha = beta = 1, transA = 0, any transB)
//! layers with `Relu` between them (not after the last), `Flatten`/`Reshape` of the flat vector
//! ignored. Weights must be FLOAT initializers (`float_data` or `raw_data`). Anything else is
//! rejected with a typed error, never guessed. The result feeds [`crate::build_mlp`].
//!
//! Untrusted bytes: every length is checked against the remaining input and element counts are
//! bounded by [`MAX_TENSOR`], so malformed files fail without panicking or huge allocations.

use std::collections::BTreeMap;

use crate::build::FloatDense;
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
            (8, _) => t.name = string(&v)?,
            (9, Val::Bytes(p)) => raw = Some(p),
            (13, _) | (14, _) => return Err(err("external tensor data is not supported")),
            _ => {}
        }
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

#[derive(Default, Debug)]
struct Node {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    ints: BTreeMap<String, i64>,
    floats: BTreeMap<String, f32>,
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
                let mut ar = Reader::new(ab);
                while let Some((af, av)) = ar.next()? {
                    match (af, av) {
                        (1, v) => name = string(&v)?,
                        (2, Val::Fixed32(x)) => fl = Some(f32::from_bits(x)),
                        (3, Val::Varint(x)) => i = Some(x as i64),
                        _ => {}
                    }
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
                let bias = match n.inputs.get(2) {
                    Some(b) if n.op == "Gemm" => float_init(b)?.floats.clone(),
                    _ => vec![0.0; rows],
                };
                if bias.len() != rows || layers.last().is_some_and(|l| l.rows != cols) {
                    return Err(err("layer shapes do not chain"));
                }
                layers.push(FloatDense {
                    rows,
                    cols,
                    weights,
                    bias,
                });
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
