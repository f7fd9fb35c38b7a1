//! The `opal zk` subcommands through `opal_zk::cli::run` (the library side of the CLI; the
//! binary itself is tested in bin/opal/tests/zk): prove writes the setup and the proof, verify
//! accepts it, a second prove reuses the setup, a flipped proof byte is rejected.

use opal_zk::cli::{run, ProveArgs, VerifyArgs, ZkCmd};

fn varint(mut v: u64, out: &mut Vec<u8>) {
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
fn field_bytes(f: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(f << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}
fn field_varint(f: u64, v: u64, out: &mut Vec<u8>) {
    varint(f << 3, out);
    varint(v, out);
}
fn tensor(name: &str, dims: &[usize], vals: &[f32]) -> Vec<u8> {
    let mut t = Vec::new();
    dims.iter().for_each(|d| field_varint(1, *d as u64, &mut t));
    field_varint(2, 1, &mut t);
    field_bytes(8, name.as_bytes(), &mut t);
    let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    field_bytes(9, &data, &mut t);
    t
}
fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
    let mut n = Vec::new();
    inputs
        .iter()
        .for_each(|i| field_bytes(1, i.as_bytes(), &mut n));
    outputs
        .iter()
        .for_each(|o| field_bytes(2, o.as_bytes(), &mut n));
    field_bytes(4, op.as_bytes(), &mut n);
    n
}
fn input_info(name: &str, dims: &[usize]) -> Vec<u8> {
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
fn model(g: Vec<u8>) -> Vec<u8> {
    let mut m = Vec::new();
    field_varint(1, 8, &mut m);
    field_bytes(7, &g, &mut m);
    m
}

/// Deterministic pseudo-random floats in [-1, 1).
fn vals(seed: u64, n: usize, scale: f32) -> Vec<f32> {
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
fn mlp_onnx() -> Vec<u8> {
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

#[test]
fn prove_verify_reuse_and_reject() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("model.onnx"), mlp_onnx()).unwrap();
    let x: Vec<f32> = vals(7, 24, 1.0).iter().map(|v| v.abs()).collect();
    std::fs::write(
        dir.join("input.json"),
        serde_json::json!({ "input_data": [x] }).to_string(),
    )
    .unwrap();
    let prove = || {
        run(ZkCmd::Prove(ProveArgs {
            model: dir.join("model.onnx"),
            input: dir.join("input.json"),
            out: dir.join("p"),
            calib: None,
            resetup: false,
        }))
    };
    let verify = || {
        run(ZkCmd::Verify(VerifyArgs {
            dir: dir.join("p"),
            model_id: None,
        }))
    };
    prove().unwrap();
    for f in [
        "model.bin",
        "registered.bin",
        "registration.bin",
        "setup.json",
        "statement.json",
        "proof.bin",
    ] {
        assert!(dir.join("p").join(f).exists(), "{f}");
    }
    verify().unwrap();
    let before = std::fs::metadata(dir.join("p/registered.bin"))
        .unwrap()
        .modified()
        .unwrap();
    prove().unwrap();
    let after = std::fs::metadata(dir.join("p/registered.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "setup was redone instead of reused");
    verify().unwrap();
    let p = dir.join("p/proof.bin");
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n / 3] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let e = verify().unwrap_err();
    assert!(format!("{e:#}").contains("proof rejected"), "{e:#}");
}
