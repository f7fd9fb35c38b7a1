//! The `opal zk` subcommands through `opal_zk::cli::run` (the library side of the CLI; the
//! binary itself is tested in bin/opal/tests/zk): prove writes the setup and the proof, verify
//! accepts it, a second prove reuses the setup, a flipped proof byte is rejected.

use opal_zk::cli::{run, IdMismatch, ProveArgs, VerifyArgs, ZkCmd};

use opal_quant::onnx_writer::fixtures::{mlp_onnx, vals};

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
    let verify_as = |id: &str| {
        run(ZkCmd::Verify(VerifyArgs {
            dir: dir.join("p"),
            model_id: id.to_string(),
        }))
    };
    prove().unwrap();
    let setup: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("p/setup.json")).unwrap()).unwrap();
    let id = setup["registered_model_id"].as_str().unwrap().to_string();
    let verify = || verify_as(&id);
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
    // The id is case-insensitive; another model's id is a typed mismatch, a malformed id a
    // plain error.
    verify_as(&id.to_uppercase()).unwrap();
    let other = "ab".repeat(32);
    let e = verify_as(&other).unwrap_err();
    assert_eq!(
        e.downcast_ref::<IdMismatch>(),
        Some(&IdMismatch {
            what: "registered.bin",
            expected: other.clone(),
            got: id.clone(),
        }),
        "{e:#}"
    );
    let e = verify_as("00").unwrap_err();
    assert!(e.downcast_ref::<IdMismatch>().is_none());
    assert!(format!("{e:#}").contains("64 hex digits"), "{e:#}");
    // A statement that claims another model is refused, even with the right --model-id.
    let st_path = dir.join("p/statement.json");
    let st = std::fs::read(&st_path).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&st).unwrap();
    v["registered_model_id"] = other.clone().into();
    std::fs::write(&st_path, v.to_string()).unwrap();
    let e = verify().unwrap_err();
    assert_eq!(
        e.downcast_ref::<IdMismatch>().map(|m| m.what),
        Some("statement.json"),
        "{e:#}"
    );
    std::fs::write(&st_path, &st).unwrap();
    verify().unwrap();
    let p = dir.join("p/proof.bin");
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n / 3] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let e = verify().unwrap_err();
    assert!(format!("{e:#}").contains("proof rejected"), "{e:#}");
}
