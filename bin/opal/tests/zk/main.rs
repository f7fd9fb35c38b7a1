//! `opal zk prove` / `opal zk verify` through the real binary: a small ONNX MLP and a small
//! ONNX CNN (hand-encoded protobuf, same op layout as shared/bench/zkml/build_models.py) are
//! proven and verified; the setup is reused on the second run; tampered proof, statement,
//! registered-model and registration files make `verify` exit non-zero with a clear message;
//! `verify` needs the registered-model id and exits 4 for a directory of another model.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use opal_quant::onnx_writer::{field_bytes, ftensor as tensor, input_info, model};

fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
    opal_quant::onnx_writer::node(op, inputs, outputs, &[])
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

/// 1x6x6 -> Conv 3x3x2 (valid) -> Relu -> Flatten -> MatMul 32x3 -> Add.
fn cnn_onnx() -> Vec<u8> {
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

fn write_case(dir: &Path, onnx: &[u8], input_len: usize) {
    std::fs::write(dir.join("model.onnx"), onnx).unwrap();
    let x: Vec<f32> = vals(99, input_len, 1.0).iter().map(|v| v.abs()).collect();
    let j = serde_json::json!({ "input_data": [x] });
    std::fs::write(dir.join("input.json"), j.to_string()).unwrap();
}

fn opal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opal"))
        .args(args)
        .output()
        .expect("run opal")
}

fn last_json(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last stdout line {line:?}: {e}"))
}

fn prove(dir: &Path) -> Value {
    let d = dir.to_str().unwrap();
    let o = opal(&[
        "zk",
        "prove",
        "--model",
        &format!("{d}/model.onnx"),
        "--input",
        &format!("{d}/input.json"),
        "--out",
        &format!("{d}/proof"),
    ]);
    assert!(
        o.status.success(),
        "prove failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    last_json(&o)
}

/// The registered-model id of the setup in `dir/proof` (what the verifier names).
fn setup_id(dir: &Path) -> String {
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir.join("proof/setup.json")).unwrap()).unwrap();
    v["registered_model_id"].as_str().unwrap().to_string()
}

fn verify_as(dir: &Path, id: &str) -> Output {
    opal(&[
        "zk",
        "verify",
        dir.join("proof").to_str().unwrap(),
        "--model-id",
        id,
    ])
}

fn verify(dir: &Path) -> (bool, Value, String) {
    let o = verify_as(dir, &setup_id(dir));
    (
        o.status.success(),
        last_json(&o),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x04;
    std::fs::write(path, b).unwrap();
}

fn check_model(onnx: Vec<u8>, input_len: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_case(dir, &onnx, input_len);
    let first = prove(dir);
    assert_eq!(first["setup_reused"], false);
    assert!(first["proof_bytes"].as_u64().unwrap() > 0);
    for k in ["setup_s", "prove_s", "peak_rss_bytes", "soundness_bits"] {
        assert!(first[k].is_number(), "{k} missing in {first}");
    }
    let (ok, v, err) = verify(dir);
    assert!(ok, "honest proof rejected: {err}");
    assert_eq!(v["valid"], true);
    assert!(v["verify_s"].is_number());
    // Second run reuses the setup kept in DIR.
    let second = prove(dir);
    assert_eq!(second["setup_reused"], true);
    assert_eq!(second["output"], first["output"]);
    assert!(verify(dir).0);

    let proof = dir.join("proof/proof.bin");
    let good = std::fs::read(&proof).unwrap();
    for at in [0, 40, good.len() / 2, good.len() - 1] {
        flip_byte(&proof, at);
        let (ok, v, err) = verify(dir);
        assert!(!ok, "tampered proof byte {at} accepted");
        assert_eq!(v["valid"], false);
        assert!(err.contains("proof rejected"), "unclear message: {err}");
        std::fs::write(&proof, &good).unwrap();
    }
    std::fs::write(&proof, &good[..good.len() - 1]).unwrap();
    let (ok, _, err) = verify(dir);
    assert!(!ok && err.contains("proof length"), "{err}");
    std::fs::write(&proof, &good).unwrap();

    // A different claimed output.
    let st_path = dir.join("proof/statement.json");
    let st = std::fs::read_to_string(&st_path).unwrap();
    let mut s: Value = serde_json::from_str(&st).unwrap();
    let y0 = s["output"][0].as_i64().unwrap();
    s["output"][0] = Value::from(y0 + 1);
    std::fs::write(&st_path, s.to_string()).unwrap();
    assert!(!verify(dir).0, "changed output accepted");
    std::fs::write(&st_path, &st).unwrap();

    // A tampered weight commitment in the registered model.
    let reg = dir.join("proof/registered.bin");
    let good_reg = std::fs::read(&reg).unwrap();
    flip_byte(&reg, good_reg.len() - 3);
    assert!(!verify(dir).0, "tampered registered model accepted");
    std::fs::write(&reg, &good_reg).unwrap();
    assert!(verify(dir).0);

    // A tampered registration (weight-range) proof.
    let rpath = dir.join("proof/registration.bin");
    let good_rp = std::fs::read(&rpath).unwrap();
    flip_byte(&rpath, good_rp.len() / 3);
    let (ok, _, err) = verify(dir);
    assert!(!ok && err.contains("registration proof rejected"), "{err}");
    std::fs::write(&rpath, &good_rp).unwrap();

    // The id is required: without it, a usage error (exit 2) and nothing verified.
    let o = opal(&["zk", "verify", dir.join("proof").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--model-id"));
    // Another model's id: refused with its own exit status and a clear message.
    let other = "ab".repeat(32);
    let o = verify_as(dir, &other);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("model id mismatch") && err.contains(&other) && err.contains(&setup_id(dir)),
        "{err}"
    );
    let v = last_json(&o);
    assert_eq!(v["valid"], false);
    assert_eq!(v["model_id_mismatch"], true);
    // A malformed id is an ordinary failure (exit 1), not a mismatch.
    let o = verify_as(dir, "00");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("64 hex digits"));
    // A statement claiming another model, verified as ours: a mismatch too.
    let st = std::fs::read_to_string(&st_path).unwrap();
    let mut s: Value = serde_json::from_str(&st).unwrap();
    s["registered_model_id"] = Value::from(other.clone());
    std::fs::write(&st_path, s.to_string()).unwrap();
    let o = verify_as(dir, &setup_id(dir));
    assert_eq!(o.status.code(), Some(4));
    std::fs::write(&st_path, &st).unwrap();
    assert!(verify(dir).0);
}

#[test]
fn mlp_prove_verify_and_tamper() {
    check_model(mlp_onnx(), 24);
}

#[test]
fn cnn_prove_verify_and_tamper() {
    check_model(cnn_onnx(), 36);
}
