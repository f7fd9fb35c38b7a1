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

/// Two small float models as ONNX bytes, with the seeded weights the zk tests and benchmarks
/// prove (one definition, so a test of the binary and a test of the library prove the same
/// model).
pub mod fixtures {
    use super::{field_bytes, ftensor as tensor, input_info, model};

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
        super::node(op, inputs, outputs, &[])
    }

    /// Deterministic pseudo-random floats in [-1, 1).
    pub fn vals(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// 24 -> 16 -> 8 -> 5 MLP: MatMul + Add + Relu, the last layer without Relu.
    pub fn mlp_onnx() -> Vec<u8> {
        let dims = [24usize, 16, 8, 5];
        let mut g = Vec::new();
        let mut cur = "input".to_string();
        for k in 0..3 {
            let (w, b, mm) = (format!("W{k}"), format!("B{k}"), format!("mm{k}"));
            let out = if k == 2 {
                "output".into()
            } else {
                format!("fc{k}")
            };
            field_bytes(1, &node("MatMul", &[&cur, &w], &[&mm]), &mut g);
            field_bytes(1, &node("Add", &[&mm, &b], &[&out]), &mut g);
            let scale = (2.0 / dims[k] as f32).sqrt();
            field_bytes(
                5,
                &tensor(
                    &w,
                    &[dims[k], dims[k + 1]],
                    &vals(k as u64 + 1, dims[k] * dims[k + 1], scale),
                ),
                &mut g,
            );
            field_bytes(
                5,
                &tensor(&b, &[dims[k + 1]], &vals(k as u64 + 10, dims[k + 1], 0.05)),
                &mut g,
            );
            cur = out;
            if k < 2 {
                let r = format!("relu{k}");
                field_bytes(1, &node("Relu", &[&cur], &[&r]), &mut g);
                cur = r;
            }
        }
        field_bytes(11, &input_info("input", &[1, 24]), &mut g);
        model(g)
    }

    /// 1x6x6 -> Conv 3x3x2 (valid) -> Relu -> Flatten -> MatMul 32x3 -> Add.
    pub fn cnn_onnx() -> Vec<u8> {
        let mut g = Vec::new();
        field_bytes(1, &node("Conv", &["input", "C", "CB"], &["c"]), &mut g);
        field_bytes(1, &node("Relu", &["c"], &["r"]), &mut g);
        field_bytes(1, &node("Flatten", &["r"], &["f"]), &mut g);
        field_bytes(1, &node("MatMul", &["f", "W"], &["mm"]), &mut g);
        field_bytes(1, &node("Add", &["mm", "B"], &["output"]), &mut g);
        field_bytes(5, &tensor("C", &[2, 1, 3, 3], &vals(21, 18, 0.5)), &mut g);
        field_bytes(5, &tensor("CB", &[2], &vals(22, 2, 0.05)), &mut g);
        field_bytes(5, &tensor("W", &[32, 3], &vals(23, 96, 0.3)), &mut g);
        field_bytes(5, &tensor("B", &[3], &vals(24, 3, 0.05)), &mut g);
        field_bytes(11, &input_info("input", &[1, 1, 6, 6]), &mut g);
        model(g)
    }
}
