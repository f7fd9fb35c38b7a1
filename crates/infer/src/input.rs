//! Request inputs as people and scripts write them, read against a model's declared inputs.
//!
//! [`parse_inputs`] accepts, for a model's inputs `specs`:
//!
//! * a **nested array** (`[[0, 0, 7, ...]]`) for a model with one input: the nesting gives the
//!   shape, the input's declared dtype the element type;
//! * an **object of named inputs** (`{"X": [[...]], "mask": {"dtype": "i64", ...}}`), each a
//!   nested array or a tensor object; every declared input must be present;
//! * a **tensor object** (`{"dtype": "f32", "shape": [1, 64], "data": [...]}`) for a model with
//!   one input;
//! * the benchmark form **`{"input_data": [[...flat...]]}`** (see [`crate::parse_input_data`]).
//!
//! Parsing streams through the document: it never stores more than [`Tensor::MAX_ELEMENTS`]
//! elements per tensor nor nests deeper than [`Tensor::MAX_RANK`], and ragged arrays are refused.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::InferError;
use crate::spec::TensorSpec;
use crate::tensor::{
    convert, input_data_tensors, Bounded, DType, InputData, Num, RawTensor, Tensor,
};

/// Reads a request's input tensors, in the order of `specs`, from any of the forms listed in the
/// module documentation. Shapes and dtypes are not checked against `specs` here beyond what the
/// form needs (the dtype of nested arrays, the reshaping of `input_data`): running the model
/// checks them, with errors naming the expected and the given shape.
pub fn parse_inputs(json: &[u8], specs: &[TensorSpec]) -> Result<Vec<Tensor>, InferError> {
    let mut typed: Option<InferError> = None;
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed = Top {
        specs,
        typed: &mut typed,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => v,
        Err(e) => Err(typed.unwrap_or_else(|| InferError::tensor(e.to_string()))),
    }
}

/// Top-level document. Its value is the final result, so that typed errors found after the
/// syntax is read (missing inputs, dtype conversion) keep their type.
struct Top<'a> {
    specs: &'a [TensorSpec],
    typed: &'a mut Option<InferError>,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Result<Vec<Tensor>, InferError>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Result<Vec<Tensor>, InferError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a nested array, a tensor object, an object of named inputs or input_data")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let [spec] = self.specs else {
            // Read the array to its end so that the document still parses as a whole.
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Err(InferError::InputCount {
                expected: self.specs.len(),
                got: 1,
            }));
        };
        let mut n = Nested::default();
        let r = n.level(seq, 0);
        if let Err(e) = r {
            *self.typed = n.err.take();
            return Err(e);
        }
        Ok(n.into_tensor(spec.dtype).map(|t| vec![t]))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let specs = self.specs;
        let mut named: Vec<Option<Tensor>> = vec![None; specs.len()];
        let mut input_data: Option<InputData> = None;
        let mut dtype: Option<DType> = None;
        let mut shape: Option<Bounded<u64, { Tensor::MAX_RANK }>> = None;
        let mut data: Option<Bounded<Num, { Tensor::MAX_ELEMENTS }>> = None;
        let mut first_err: Option<InferError> = None;
        while let Some(key) = map.next_key::<String>()? {
            if let Some(i) = specs.iter().position(|s| s.name == key) {
                let seed = Named {
                    dtype: specs[i].dtype,
                    typed: &mut *self.typed,
                };
                match map.next_value_seed(seed)? {
                    Ok(t) => named[i] = Some(t),
                    // Keep reading so that the document still parses as a whole.
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
                continue;
            }
            match key.as_str() {
                "input_data" => input_data = Some(map.next_value()?),
                "dtype" => dtype = Some(map.next_value()?),
                "shape" => shape = Some(map.next_value()?),
                "data" => data = Some(map.next_value()?),
                // Other keys (an `output_data` beside `input_data`, say) are ignored.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(e) = first_err {
            return Ok(Err(e));
        }
        let tensor_fields = dtype.is_some() || shape.is_some() || data.is_some();
        let forms = [
            named.iter().any(Option::is_some),
            input_data.is_some(),
            tensor_fields,
        ];
        if forms.iter().filter(|f| **f).count() > 1 {
            return Ok(Err(InferError::tensor(
                "the document mixes named inputs, input_data and tensor fields",
            )));
        }
        if forms[0] {
            return Ok(named
                .into_iter()
                .zip(specs)
                .map(|(t, s)| {
                    t.ok_or_else(|| InferError::tensor(format!("input `{}` is missing", s.name)))
                })
                .collect());
        }
        if let Some(d) = input_data {
            return Ok(input_data_tensors(d, specs));
        }
        if tensor_fields {
            let (Some(dtype), Some(shape), Some(data)) = (dtype, shape, data) else {
                return Ok(Err(InferError::tensor(
                    "a tensor object needs dtype, shape and data",
                )));
            };
            if specs.len() != 1 {
                return Ok(Err(InferError::InputCount {
                    expected: specs.len(),
                    got: 1,
                }));
            }
            return Ok(RawTensor { dtype, shape, data }
                .into_tensor()
                .map(|t| vec![t]));
        }
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        Ok(Err(InferError::tensor(format!(
            "no inputs found; the model's inputs are {names:?}"
        ))))
    }
}

/// The value of a named input: a nested array (element type from the model) or a tensor object.
struct Named<'a> {
    dtype: DType,
    typed: &'a mut Option<InferError>,
}

impl<'de> DeserializeSeed<'de> for Named<'_> {
    type Value = Result<Tensor, InferError>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Named<'_> {
    type Value = Result<Tensor, InferError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a nested array or a tensor object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let mut n = Nested::default();
        if let Err(e) = n.level(seq, 0) {
            *self.typed = n.err.take();
            return Err(e);
        }
        Ok(n.into_tensor(self.dtype))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let raw = RawTensor::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(raw.into_tensor())
    }
}

/// A nested array being read: its dimensions by depth, the depth of its numbers, and its
/// elements flat (bounded; `total` counts past the bound).
#[derive(Default)]
struct Nested {
    dims: [Option<usize>; Tensor::MAX_RANK],
    leaf_depth: Option<usize>,
    flat: Vec<Num>,
    total: usize,
    err: Option<InferError>,
}

impl Nested {
    fn fail<E: de::Error>(&mut self, e: InferError) -> E {
        let msg = e.to_string();
        self.err = Some(e);
        E::custom(msg)
    }

    fn ragged<E: de::Error>(&mut self) -> E {
        self.fail(InferError::tensor(
            "ragged nested array: sub-arrays differ in length or depth",
        ))
    }

    /// Reads the array at `depth` (0 for the outermost).
    fn level<'de, A: SeqAccess<'de>>(&mut self, mut seq: A, depth: usize) -> Result<(), A::Error> {
        if depth >= Tensor::MAX_RANK {
            return Err(self.fail(InferError::TooLarge {
                what: "tensor rank",
                limit: Tensor::MAX_RANK as u64,
                got: depth as u64 + 1,
            }));
        }
        if self.leaf_depth.is_some_and(|l| depth >= l) {
            return Err(self.ragged());
        }
        let mut count = 0usize;
        while seq
            .next_element_seed(Elem {
                n: &mut *self,
                depth: depth + 1,
            })?
            .is_some()
        {
            count += 1;
        }
        match self.dims[depth] {
            None => self.dims[depth] = Some(count),
            Some(c) if c == count => {}
            Some(_) => return Err(self.ragged()),
        }
        if count == 0 {
            match self.leaf_depth {
                None => self.leaf_depth = Some(depth + 1),
                Some(l) if l == depth + 1 => {}
                Some(_) => return Err(self.ragged()),
            }
        }
        Ok(())
    }

    /// A number at `depth`.
    fn leaf<E: de::Error>(&mut self, depth: usize, v: Num) -> Result<(), E> {
        match self.leaf_depth {
            None => self.leaf_depth = Some(depth),
            Some(l) if l == depth => {}
            Some(_) => return Err(self.ragged()),
        }
        if self.flat.len() < Tensor::MAX_ELEMENTS {
            self.flat.push(v);
        }
        self.total += 1;
        Ok(())
    }

    fn into_tensor(self, dtype: DType) -> Result<Tensor, InferError> {
        if self.total > Tensor::MAX_ELEMENTS {
            return Err(InferError::TooLarge {
                what: "tensor elements",
                limit: Tensor::MAX_ELEMENTS as u64,
                got: self.total as u64,
            });
        }
        let rank = self.leaf_depth.unwrap_or(0);
        let shape: Vec<usize> = self.dims[..rank].iter().map(|d| d.unwrap_or(0)).collect();
        Tensor::new(shape, convert(dtype, &self.flat)?)
    }
}

/// One element of a nested array: a number (or non-finite spelling) or a deeper array.
struct Elem<'a> {
    n: &'a mut Nested,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Elem<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Elem<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.n.level(seq, self.depth)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.n.leaf(self.depth, Num::I(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.n.leaf(self.depth, Num::U(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.n.leaf(self.depth, Num::F(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let x = match v {
            "NaN" => f32::NAN,
            "Infinity" => f32::INFINITY,
            "-Infinity" => f32::NEG_INFINITY,
            _ => return Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        };
        self.n.leaf(self.depth, Num::NonFinite(x))
    }
}
