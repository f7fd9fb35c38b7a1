//! A minimal ONNX protobuf writer: enough of the format (float and int64 initializers, nodes with
//! integer-list attributes, typed graph inputs) to build small models in tests, examples and
//! benchmarks without Python. It writes bytes only; reading ONNX is [`crate::onnx`]'s job.
#![allow(missing_docs)]

pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}
pub fn field_bytes(f: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(f << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}
pub fn field_varint(f: u64, v: u64, out: &mut Vec<u8>) {
    varint(f << 3, out);
    varint(v, out);
}
pub fn ftensor(name: &str, dims: &[usize], vals: &[f32]) -> Vec<u8> {
    let mut t = Vec::new();
    dims.iter().for_each(|d| field_varint(1, *d as u64, &mut t));
    field_varint(2, 1, &mut t);
    field_bytes(8, name.as_bytes(), &mut t);
    let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    field_bytes(9, &data, &mut t);
    t
}
pub fn itensor(name: &str, vals: &[i64]) -> Vec<u8> {
    let mut t = Vec::new();
    field_varint(1, vals.len() as u64, &mut t);
    field_varint(2, 7, &mut t);
    field_bytes(8, name.as_bytes(), &mut t);
    let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    field_bytes(9, &data, &mut t);
    t
}
pub fn node(op: &str, inputs: &[&str], outputs: &[&str], lists: &[(&str, &[i64])]) -> Vec<u8> {
    let mut n = Vec::new();
    inputs
        .iter()
        .for_each(|i| field_bytes(1, i.as_bytes(), &mut n));
    outputs
        .iter()
        .for_each(|o| field_bytes(2, o.as_bytes(), &mut n));
    field_bytes(4, op.as_bytes(), &mut n);
    for (name, vals) in lists {
        let mut a = Vec::new();
        field_bytes(1, name.as_bytes(), &mut a);
        let mut packed = Vec::new();
        vals.iter().for_each(|v| varint(*v as u64, &mut packed));
        field_bytes(8, &packed, &mut a);
        field_varint(20, 7, &mut a);
        field_bytes(5, &a, &mut n);
    }
    n
}
pub fn input_info(name: &str, dims: &[usize]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        field_varint(1, *d as u64, &mut dim);
        field_bytes(1, &dim, &mut shape);
    }
    let mut tt = Vec::new();
    field_varint(1, 1, &mut tt);
    field_bytes(2, &shape, &mut tt);
    let mut tp = Vec::new();
    field_bytes(1, &tt, &mut tp);
    let mut vi = Vec::new();
    field_bytes(1, name.as_bytes(), &mut vi);
    field_bytes(2, &tp, &mut vi);
    vi
}

/// A ModelProto (IR version 8) around an encoded GraphProto.
pub fn model(graph: Vec<u8>) -> Vec<u8> {
    let mut m = Vec::new();
    field_varint(1, 8, &mut m);
    field_bytes(7, &graph, &mut m);
    m
}
