//! `opal zk prove` / `opal zk verify` through the real binary: a small ONNX MLP and a small
//! ONNX CNN (hand-encoded protobuf, same op layout as shared/bench/zkml/build_models.py) are
//! proven and verified; the setup is reused on the second run; tampered proof, statement,
//! registered-model and registration files make `verify` exit non-zero with a clear message;
//! `verify` needs the registered-model id and exits 4 for a directory of another model.
//! `opal model quantize` builds the `.opalq` file the `replay` and `zk` tiers run.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use opal_quant::onnx_writer::fixtures::{cnn_onnx, mlp_onnx, vals};

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

/// `opal model quantize`: ONNX + calibration CSV -> `.opalq`, held-out rows scored. Labels are
/// the float model's own top class, so its held-out accuracy is exactly 1; a malformed row is
/// refused with its row number and nothing is written.
#[test]
fn model_quantize_calibrates_holds_out_and_refuses_bad_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let onnx = mlp_onnx();
    std::fs::write(dir.join("model.onnx"), &onnx).unwrap();
    let graph = opal_quant::onnx::import_graph(&onnx).unwrap();
    let mut csv = (0..24)
        .map(|i| format!("f{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + ",label\n";
    for r in 0..40u64 {
        let x = vals(200 + r, 24, 1.0);
        let y = graph.forward(&x);
        let label = (0..y.len()).max_by(|a, b| y[*a].total_cmp(&y[*b])).unwrap();
        let row: Vec<String> = x.iter().map(|v| v.to_string()).collect();
        csv += &format!("{},{label}\n", row.join(","));
    }
    std::fs::write(dir.join("calib.csv"), &csv).unwrap();
    let (m, c, q) = (
        dir.join("model.onnx"),
        dir.join("calib.csv"),
        dir.join("m.opalq"),
    );
    let args = |calib: &Path| {
        vec![
            "-o".to_string(),
            "json".into(),
            "model".into(),
            "quantize".into(),
            "--onnx".into(),
            m.display().to_string(),
            "--calibration".into(),
            calib.display().to_string(),
            "--holdout-every".into(),
            "4".into(),
            "--out".into(),
            q.display().to_string(),
        ]
    };
    let a = args(&c);
    let o = opal(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["calibration_rows"], 30, "{v}");
    assert_eq!(v["holdout_rows"], 10, "{v}");
    assert_eq!(v["float_accuracy"], 1.0, "{v}");
    assert_eq!(v["input_len"], 24, "{v}");
    assert_eq!(v["output_len"], 5, "{v}");
    let model = opal_quant::QuantModel::from_file_bytes(&std::fs::read(&q).unwrap()).unwrap();
    assert_eq!(
        hex::encode(model.model_id()),
        v["model_id"].as_str().unwrap()
    );

    std::fs::remove_file(&q).unwrap();
    let bad = dir.join("bad.csv");
    let lines: Vec<&str> = csv.lines().collect();
    let bad_csv = format!("{}\n{}\n{}\n1,2,x\n", lines[0], lines[1], lines[2]);
    std::fs::write(&bad, bad_csv).unwrap();
    let a = args(&bad);
    let o = opal(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("row 3"), "{err}");
    assert!(
        !q.exists(),
        "nothing is written for a refused calibration file"
    );
}
