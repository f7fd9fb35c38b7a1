//! Typed tensors as they travel over the API and as they are hashed into receipts.
//!
//! Three encodings:
//!
//! * **JSON** (serde): `{"dtype":"f32","shape":[1,64],"data":[...]}`, data flat in row-major
//!   order. Non-finite `f32` values are written as the strings `"NaN"`, `"Infinity"` and
//!   `"-Infinity"` (JSON has no such numbers) and read back the same way. Decoding is bounded:
//!   at most [`Tensor::MAX_RANK`] dimensions and [`Tensor::MAX_ELEMENTS`] elements are ever
//!   stored, whatever the document holds, and the excess is reported as
//!   [`InferError::TooLarge`].
//! * **Canonical bytes** ([`Tensor::canonical_bytes`]), frozen, version 1:
//!
//!   ```text
//!   u8   version = 1
//!   u8   dtype tag: f32 = 1, i64 = 2, i32 = 3, u8 = 4
//!   u8   rank (<= 8)
//!   u64  dims[rank], little-endian
//!   ...  elements, row-major, each little-endian in its natural width;
//!        f32 as its IEEE-754 bits, every NaN written as the one quiet NaN 0x7fc00000
//!   ```
//!
//!   [`Tensor::from_canonical_bytes`] is its bounded inverse; it refuses any other NaN pattern,
//!   trailing bytes and anything over the bounds, so the encoding is one-to-one.
//! * **Hash** ([`Tensor::hash`]): BLAKE3 in derive-key mode with context
//!   [`Tensor::HASH_CONTEXT`] (`"opal/tensor/v1"`) over the canonical bytes.
//!
//! Inputs holding NaN are refused by [`crate::PreparedModel::run`] (see
//! [`InferError::InputNan`]); outputs may hold NaN and then hash with the canonical NaN.

use std::fmt;
use std::sync::LazyLock;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InferError;
use crate::spec::TensorSpec;

/// Element type of a [`Tensor`]. Serialized as `"f32"`, `"i64"`, `"i32"`, `"u8"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit IEEE-754 float.
    F32,
    /// 64-bit signed integer (ONNX `INT64`: labels, token ids).
    I64,
    /// 32-bit signed integer.
    I32,
    /// 8-bit unsigned integer (raw pixels).
    U8,
}

impl DType {
    /// The name used in JSON and in messages (`"f32"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::U8 => "u8",
        }
    }

    /// The tag byte of the canonical encoding. Frozen.
    pub fn tag(self) -> u8 {
        match self {
            DType::F32 => 1,
            DType::I64 => 2,
            DType::I32 => 3,
            DType::U8 => 4,
        }
    }

    /// The dtype of a canonical tag byte, if any.
    pub fn from_tag(tag: u8) -> Option<DType> {
        match tag {
            1 => Some(DType::F32),
            2 => Some(DType::I64),
            3 => Some(DType::I32),
            4 => Some(DType::U8),
            _ => None,
        }
    }

    /// Bytes per element in the canonical encoding.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
            DType::U8 => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The flat, row-major elements of a [`Tensor`], one vector per dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `u8` elements.
    U8(Vec<u8>),
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::U8(_) => DType::U8,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U8(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A typed tensor: a shape and that many elements of one [`DType`].
///
/// Always consistent: the constructors check that the rank is at most [`Tensor::MAX_RANK`], that
/// the element count is at most [`Tensor::MAX_ELEMENTS`] and that it equals the product of the
/// dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

/// The quiet NaN every NaN is canonicalised to in [`Tensor::canonical_bytes`].
const CANONICAL_NAN: u32 = 0x7fc0_0000;

/// Most tensors a `{"input_data": ...}` document may hold.
pub(crate) const MAX_INPUT_TENSORS: usize = 64;

impl Tensor {
    /// Largest rank accepted anywhere (it must also fit the canonical rank byte).
    pub const MAX_RANK: usize = 8;
    /// Largest element count accepted when decoding or constructing a tensor (16 Mi).
    pub const MAX_ELEMENTS: usize = 1 << 24;
    /// Version byte of the canonical encoding.
    pub const CANONICAL_VERSION: u8 = 1;
    /// BLAKE3 derive-key context of [`Tensor::hash`].
    pub const HASH_CONTEXT: &'static str = opal_domains::derive::TENSOR;

    /// A tensor from a shape and row-major data, checked for consistency and bounds.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, InferError> {
        if shape.len() > Self::MAX_RANK {
            return Err(InferError::TooLarge {
                what: "tensor rank",
                limit: Self::MAX_RANK as u64,
                got: shape.len() as u64,
            });
        }
        let count = element_count(&shape)?;
        if count != data.len() {
            return Err(InferError::tensor(format!(
                "shape {} holds {count} elements, data has {}",
                fmt_shape(&shape),
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// An `f32` tensor.
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, InferError> {
        Self::new(shape, TensorData::F32(data))
    }

    /// An `i64` tensor.
    pub fn from_i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor, InferError> {
        Self::new(shape, TensorData::I64(data))
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Takes the elements out.
    pub fn into_data(self) -> TensorData {
        self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements (some dimension is zero).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements if the dtype is `f32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements if the dtype is `i64`.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The elements if the dtype is `i32`.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            TensorData::I32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements if the dtype is `u8`.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.data {
            TensorData::U8(v) => Some(v),
            _ => None,
        }
    }

    /// Flat index of the first NaN element, if any (always `None` for integer dtypes).
    pub fn first_nan(&self) -> Option<usize> {
        match &self.data {
            TensorData::F32(v) => v.iter().position(|x| x.is_nan()),
            _ => None,
        }
    }

    /// The frozen canonical encoding (see the module documentation).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(3 + 8 * self.shape.len() + self.len() * self.dtype().size());
        self.write_canonical(&mut |b| out.extend_from_slice(b));
        out
    }

    /// BLAKE3 derive-key(`"opal/tensor/v1"`) of [`Tensor::canonical_bytes`], computed without
    /// materialising them.
    pub fn hash(&self) -> [u8; 32] {
        // Deriving the context key costs a compression; do it once and clone the keyed state.
        static KEYED: LazyLock<blake3::Hasher> =
            LazyLock::new(|| blake3::Hasher::new_derive_key(Tensor::HASH_CONTEXT));
        let mut h = KEYED.clone();
        self.write_canonical(&mut |b| {
            h.update(b);
        });
        *h.finalize().as_bytes()
    }

    fn write_canonical(&self, sink: &mut dyn FnMut(&[u8])) {
        // The rank is at most MAX_RANK (8) by construction, so it fits the byte.
        sink(&[
            Self::CANONICAL_VERSION,
            self.dtype().tag(),
            self.shape.len() as u8,
        ]);
        for d in &self.shape {
            sink(&(*d as u64).to_le_bytes());
        }
        // Elements go through a small stack buffer to keep the sink calls few.
        const CHUNK: usize = 512;
        let mut buf = [0u8; CHUNK * 8];
        macro_rules! emit {
            ($v:expr, $w:expr, $enc:expr) => {
                for chunk in $v.chunks(CHUNK) {
                    for (i, x) in chunk.iter().enumerate() {
                        buf[i * $w..(i + 1) * $w].copy_from_slice(&$enc(*x));
                    }
                    sink(&buf[..chunk.len() * $w]);
                }
            };
        }
        match &self.data {
            TensorData::F32(v) => emit!(v, 4, |x: f32| {
                let bits = if x.is_nan() {
                    CANONICAL_NAN
                } else {
                    x.to_bits()
                };
                bits.to_le_bytes()
            }),
            TensorData::I64(v) => emit!(v, 8, |x: i64| x.to_le_bytes()),
            TensorData::I32(v) => emit!(v, 4, |x: i32| x.to_le_bytes()),
            TensorData::U8(v) => sink(v),
        }
    }

    /// Decodes [`Tensor::canonical_bytes`] from untrusted bytes: bounded by
    /// [`Tensor::MAX_RANK`] and [`Tensor::MAX_ELEMENTS`] before anything is allocated; refuses an
    /// unknown version or tag, a non-canonical NaN, a short or over-long input.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Tensor, InferError> {
        let head = bytes
            .get(..3)
            .ok_or_else(|| InferError::tensor("canonical tensor shorter than its header"))?;
        if head[0] != Self::CANONICAL_VERSION {
            return Err(InferError::tensor(format!(
                "unknown canonical tensor version {}",
                head[0]
            )));
        }
        let dtype = DType::from_tag(head[1])
            .ok_or_else(|| InferError::tensor(format!("unknown dtype tag {}", head[1])))?;
        let rank = head[2] as usize;
        if rank > Self::MAX_RANK {
            return Err(InferError::TooLarge {
                what: "tensor rank",
                limit: Self::MAX_RANK as u64,
                got: rank as u64,
            });
        }
        let dims_end = 3 + 8 * rank;
        let dims = bytes
            .get(3..dims_end)
            .ok_or_else(|| InferError::tensor("canonical tensor truncated in its dimensions"))?;
        let shape = dims
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                dim_to_usize(u64::from_le_bytes(a))
            })
            .collect::<Result<Vec<usize>, InferError>>()?;
        let count = element_count(&shape)?;
        let body = &bytes[dims_end..];
        let want = count * dtype.size();
        if body.len() != want {
            return Err(InferError::tensor(format!(
                "canonical tensor body is {} bytes, shape {} of {dtype} needs {want}",
                body.len(),
                fmt_shape(&shape)
            )));
        }
        let data = match dtype {
            DType::F32 => TensorData::F32(
                body.chunks_exact(4)
                    .map(|c| {
                        let bits = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                        let x = f32::from_bits(bits);
                        if x.is_nan() && bits != CANONICAL_NAN {
                            Err(InferError::tensor("non-canonical NaN in canonical tensor"))
                        } else {
                            Ok(x)
                        }
                    })
                    .collect::<Result<_, _>>()?,
            ),
            DType::I64 => TensorData::I64(
                body.chunks_exact(8)
                    .map(|c| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        i64::from_le_bytes(a)
                    })
                    .collect(),
            ),
            DType::I32 => TensorData::I32(
                body.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DType::U8 => TensorData::U8(body.to_vec()),
        };
        Tensor::new(shape, data)
    }

    /// Decodes the JSON form from untrusted bytes with typed errors (see the module docs).
    pub fn from_json(bytes: &[u8]) -> Result<Tensor, InferError> {
        let raw: RawTensor =
            serde_json::from_slice(bytes).map_err(|e| InferError::tensor(e.to_string()))?;
        raw.into_tensor()
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        // Serializing this type into a String cannot fail: every key is a string and every
        // value a number, a string or a sequence.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Reads the benchmark input format `{"input_data": [[...], ...]}`: one flat array per model
/// input, in the model's input order, each reshaped to that input's declared shape and
/// converted to its dtype. A single free dimension (such as the batch) is inferred from the
/// element count; with several free dimensions the document is refused as ambiguous. Other keys
/// of the document are ignored.
pub fn parse_input_data(json: &[u8], inputs: &[TensorSpec]) -> Result<Vec<Tensor>, InferError> {
    #[derive(Deserialize)]
    struct Doc {
        input_data: InputData,
    }
    let doc: Doc = serde_json::from_slice(json).map_err(|e| InferError::tensor(e.to_string()))?;
    input_data_tensors(doc.input_data, inputs)
}

/// The value of an `input_data` key: flat arrays, bounded.
pub(crate) type InputData = Bounded<Bounded<Num, { Tensor::MAX_ELEMENTS }>, MAX_INPUT_TENSORS>;

/// Reshapes and converts `input_data` arrays to the model's inputs.
pub(crate) fn input_data_tensors(
    data: InputData,
    inputs: &[TensorSpec],
) -> Result<Vec<Tensor>, InferError> {
    if data.total > MAX_INPUT_TENSORS {
        return Err(InferError::TooLarge {
            what: "input tensors",
            limit: MAX_INPUT_TENSORS as u64,
            got: data.total as u64,
        });
    }
    if data.items.len() != inputs.len() {
        return Err(InferError::InputCount {
            expected: inputs.len(),
            got: data.items.len(),
        });
    }
    data.items
        .into_iter()
        .zip(inputs)
        .map(|(flat, spec)| {
            if flat.total > Tensor::MAX_ELEMENTS {
                return Err(InferError::TooLarge {
                    what: "tensor elements",
                    limit: Tensor::MAX_ELEMENTS as u64,
                    got: flat.total as u64,
                });
            }
            let shape = infer_shape(spec, flat.items.len())?;
            let data = convert(spec.dtype, &flat.items)?;
            Tensor::new(shape, data)
        })
        .collect()
}

/// Fills a spec's free dimension from a flat element count.
fn infer_shape(spec: &TensorSpec, n: usize) -> Result<Vec<usize>, InferError> {
    let known = spec
        .shape
        .iter()
        .flatten()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .unwrap_or(0);
    let free = spec.shape.iter().filter(|d| d.is_none()).count();
    let mismatch = || InferError::InputShape {
        input: spec.name.clone(),
        expected: spec.shape.clone(),
        got: vec![n],
    };
    let fill = match free {
        0 if known == n => 0,
        1 if known > 0 && n > 0 && n.is_multiple_of(known) => n / known,
        0 | 1 => return Err(mismatch()),
        _ => {
            return Err(InferError::tensor(format!(
                "input `{}` has {free} free dimensions in {}; a flat array cannot be reshaped \
                 unambiguously",
                spec.name,
                fmt_spec_shape(&spec.shape)
            )))
        }
    };
    Ok(spec.shape.iter().map(|d| d.unwrap_or(fill)).collect())
}

fn dim_to_usize(d: u64) -> Result<usize, InferError> {
    usize::try_from(d).map_err(|_| InferError::TooLarge {
        what: "tensor elements",
        limit: Tensor::MAX_ELEMENTS as u64,
        got: d,
    })
}

/// Product of dims, bounded by [`Tensor::MAX_ELEMENTS`].
fn element_count(shape: &[usize]) -> Result<usize, InferError> {
    let mut n: u64 = 1;
    let mut overflow = false;
    for d in shape {
        match n.checked_mul(*d as u64) {
            Some(m) => n = m,
            None => overflow = true,
        }
    }
    // A zero dimension makes the tensor empty whatever the others are.
    if shape.contains(&0) {
        return Ok(0);
    }
    if overflow || n > Tensor::MAX_ELEMENTS as u64 {
        return Err(InferError::TooLarge {
            what: "tensor elements",
            limit: Tensor::MAX_ELEMENTS as u64,
            got: if overflow { u64::MAX } else { n },
        });
    }
    Ok(n as usize)
}

/// `[1, 64]`.
pub(crate) fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// `[?, 64]`: `?` is a free dimension.
pub(crate) fn fmt_spec_shape(shape: &[Option<usize>]) -> String {
    let parts: Vec<String> = shape
        .iter()
        .map(|d| d.map_or_else(|| "?".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

// ---- JSON ------------------------------------------------------------------------------------

impl Serialize for Tensor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct F32s<'a>(&'a [f32]);
        impl Serialize for F32s<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for x in self.0 {
                    if x.is_finite() {
                        seq.serialize_element(x)?;
                    } else if x.is_nan() {
                        seq.serialize_element("NaN")?;
                    } else if *x > 0.0 {
                        seq.serialize_element("Infinity")?;
                    } else {
                        seq.serialize_element("-Infinity")?;
                    }
                }
                seq.end()
            }
        }
        let mut st = s.serialize_struct("Tensor", 3)?;
        st.serialize_field("dtype", &self.dtype())?;
        st.serialize_field("shape", &self.shape)?;
        match &self.data {
            TensorData::F32(v) => st.serialize_field("data", &F32s(v))?,
            TensorData::I64(v) => st.serialize_field("data", v)?,
            TensorData::I32(v) => st.serialize_field("data", v)?,
            TensorData::U8(v) => st.serialize_field("data", v)?,
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for Tensor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tensor, D::Error> {
        RawTensor::deserialize(d)?
            .into_tensor()
            .map_err(de::Error::custom)
    }
}

/// The JSON object before its consistency is checked; its sequences are bounded.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTensor {
    pub(crate) dtype: DType,
    pub(crate) shape: Bounded<u64, { Tensor::MAX_RANK }>,
    pub(crate) data: Bounded<Num, { Tensor::MAX_ELEMENTS }>,
}

impl RawTensor {
    pub(crate) fn into_tensor(self) -> Result<Tensor, InferError> {
        if self.shape.total > Tensor::MAX_RANK {
            return Err(InferError::TooLarge {
                what: "tensor rank",
                limit: Tensor::MAX_RANK as u64,
                got: self.shape.total as u64,
            });
        }
        if self.data.total > Tensor::MAX_ELEMENTS {
            return Err(InferError::TooLarge {
                what: "tensor elements",
                limit: Tensor::MAX_ELEMENTS as u64,
                got: self.data.total as u64,
            });
        }
        let shape = self
            .shape
            .items
            .into_iter()
            .map(dim_to_usize)
            .collect::<Result<Vec<_>, _>>()?;
        let count = element_count(&shape)?;
        if count != self.data.items.len() {
            return Err(InferError::tensor(format!(
                "shape {} holds {count} elements, data has {}",
                fmt_shape(&shape),
                self.data.items.len()
            )));
        }
        Tensor::new(shape, convert(self.dtype, &self.data.items)?)
    }
}

/// A JSON number (or one of the non-finite spellings) before its dtype is known.
#[derive(Clone, Copy)]
pub(crate) enum Num {
    I(i64),
    U(u64),
    F(f64),
    /// `"NaN"`, `"Infinity"`, `"-Infinity"`.
    NonFinite(f32),
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num::I(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num::U(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num::F(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                match v {
                    "NaN" => Ok(Num::NonFinite(f32::NAN)),
                    "Infinity" => Ok(Num::NonFinite(f32::INFINITY)),
                    "-Infinity" => Ok(Num::NonFinite(f32::NEG_INFINITY)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Converts decoded numbers to a dtype, refusing values the dtype cannot hold.
pub(crate) fn convert(dtype: DType, nums: &[Num]) -> Result<TensorData, InferError> {
    let bad = |i: usize, why: &str| InferError::tensor(format!("element {i}: {why} for {dtype}"));
    fn int(n: Num) -> Option<i128> {
        match n {
            Num::I(v) => Some(v as i128),
            Num::U(v) => Some(v as i128),
            _ => None,
        }
    }
    Ok(match dtype {
        DType::F32 => TensorData::F32(
            nums.iter()
                .enumerate()
                .map(|(i, n)| match *n {
                    Num::I(v) => Ok(v as f32),
                    Num::U(v) => Ok(v as f32),
                    Num::F(v) => {
                        let x = v as f32;
                        if x.is_infinite() {
                            Err(bad(i, "value out of range"))
                        } else {
                            Ok(x)
                        }
                    }
                    Num::NonFinite(x) => Ok(x),
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::I64 => TensorData::I64(
            nums.iter()
                .enumerate()
                .map(|(i, n)| {
                    int(*n)
                        .ok_or_else(|| bad(i, "not an integer"))
                        .and_then(|v| i64::try_from(v).map_err(|_| bad(i, "out of range")))
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::I32 => TensorData::I32(
            nums.iter()
                .enumerate()
                .map(|(i, n)| {
                    int(*n)
                        .ok_or_else(|| bad(i, "not an integer"))
                        .and_then(|v| i32::try_from(v).map_err(|_| bad(i, "out of range")))
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::U8 => TensorData::U8(
            nums.iter()
                .enumerate()
                .map(|(i, n)| {
                    int(*n)
                        .ok_or_else(|| bad(i, "not an integer"))
                        .and_then(|v| u8::try_from(v).map_err(|_| bad(i, "out of range")))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A JSON sequence of which at most `MAX` items are kept; `total` counts all of them, so the
/// caller can report how far over the bound the document was without ever storing the excess.
pub(crate) struct Bounded<T, const MAX: usize> {
    pub(crate) items: Vec<T>,
    pub(crate) total: usize,
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Bounded<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const MAX: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for V<T, MAX> {
            type Value = Bounded<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let hint = seq.size_hint().unwrap_or(0).min(MAX).min(4096);
                let mut items = Vec::with_capacity(hint);
                let mut total = 0usize;
                loop {
                    if items.len() < MAX {
                        match seq.next_element::<T>()? {
                            Some(x) => items.push(x),
                            None => break,
                        }
                    } else {
                        match seq.next_element::<IgnoredAny>()? {
                            Some(_) => total += 1,
                            None => break,
                        }
                    }
                }
                total += items.len();
                Ok(Bounded { items, total })
            }
        }
        d.deserialize_seq(V::<T, MAX>(std::marker::PhantomData))
    }
}
