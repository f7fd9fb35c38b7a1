//! The `replay` tier end to end against a real devnet process whose inference node lies on
//! purpose (`OPAL_FAULT_WRONG_OUTPUT_BPS`, fault injection for tests): `opal infer --tier
//! replay` on the canonical demo model `digits-q`; the node settles (the price is held) and
//! reveals inputs and outputs; `opal node watch` re-executes every revealed result and posts a
//! fraud proof against each wrong one; the liar is slashed and jailed, its callers refunded,
//! and the honest results are paid when their window ends; `opal verify` tells them apart.

use crate::common::*;
use serde_json::Value;
use std::collections::HashMap;

use std::time::{Duration, Instant};

/// Whether the fault-injected node (`OPAL_FAULT_WRONG_OUTPUT_BPS=5000`) lies on this request:
/// its draw is by request id (the first 8 bytes, little endian, mod 10000, below 5000).
fn lies(id: &str) -> bool {
    let b = hex::decode(id).unwrap();
    u64::from_le_bytes(b[..8].try_into().unwrap()) % 10_000 < 5_000
}

/// `opal verify RECEIPT --model-file models/digits/MODEL --input INPUT -o json`, without any
/// node: its exit code, its JSON, and its check `check_id` (which must be there).
fn verify_offline(
    receipt: &std::path::Path,
    model: &str,
    input: &std::path::Path,
    check_id: &str,
) -> (i32, Value, Value) {
    let model_path = format!("{}/../../models/digits/{model}", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = cli(&[
        "verify",
        receipt.to_str().unwrap(),
        "--model-file",
        &model_path,
        "--input",
        input.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == check_id)
        .cloned()
        .unwrap_or_else(|| panic!("no check {check_id}: {v}"));
    (code, v, check)
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs a build with fault injection: cargo test --features opal/fault-injection"
)]
#[test]
fn a_lying_replay_node_is_caught_by_a_watcher_and_honest_results_are_paid() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // Half of the canonical requests get a wrong answer (decided by the request id).
    let net = Devnet::start_with_env(&home, &[("OPAL_FAULT_WRONG_OUTPUT_BPS", "5000")]);
    let url = net.url.clone();
    let key = |n: &str| home.join(format!("keys/{n}.json"));
    let model = served_model(&url, "digits-q");
    // Registered for the zk tier too, with its weight commitment: the id of the opal-zk
    // verifying key of exactly the committed model file.
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.opalq"
    ))
    .unwrap();
    let qm = opal_quant::QuantModel::from_file_bytes(&file).unwrap();
    let vk = opal_zk::api::verifying_key(&opal_zk::api::setup(&qm).unwrap());
    assert_eq!(
        model["spec"]["weight_commitment"],
        serde_json::json!(hex::encode(vk.id()))
    );
    // At least 6 requests, and more until both kinds are among them: the node's fault draw is
    // by request id (the first 8 bytes, little endian, mod 10000, below 5000), so the test
    // knows which answers are lies and does not depend on luck for having both.
    let mut receipts = vec![];
    let mut predicted: HashMap<String, bool> = HashMap::new();
    let mut i = 0;
    while receipts.len() < 6 || predicted.values().all(|l| *l) || predicted.values().all(|l| !*l) {
        assert!(i < 40, "40 requests without both honest and wrong answers");
        let receipt = dir.path().join(format!("receipt-{i}.json"));
        let (code, out, err) = infer_cli(&home, &url, "digits-q", "replay", "500000", &receipt);
        assert_eq!(code, 0, "infer: {err} {out}");
        let r: Value = serde_json::from_str(&out).unwrap();
        let id = r["request_id"].as_str().unwrap().to_string();
        predicted.insert(id.clone(), lies(&id));
        receipts.push((id, receipt));
        i += 1;
    }
    // Every one becomes a held case and gets revealed by the node.
    for (id, _) in &receipts {
        wait_for("the node's reveal", Duration::from_secs(30), || {
            let (_, v) = get(&url, &format!("/api/cases/{id}")).ok()?;
            (!v["case"]["revealed"].is_null()).then_some(())
        });
    }
    // A watcher re-executes them all and posts fraud proofs against the wrong ones.
    let mut verdicts: HashMap<String, bool> = HashMap::new();
    let start = Instant::now();
    while verdicts.len() < receipts.len() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "watcher saw {verdicts:?}"
        );
        let (code, out, err) = cli(&[
            "node",
            "watch",
            "--once",
            "--models",
            "digits-q@1",
            "--from",
            key("dave").to_str().unwrap(),
            "--node",
            &url,
            "-o",
            "json",
        ]);
        assert_eq!(code, 0, "watch: {err} {out}");
        for line in out.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            match v["event"].as_str() {
                Some("verified") => {
                    verdicts.insert(v["request_id"].as_str().unwrap().into(), true);
                }
                Some("fraud_proof") => {
                    assert_eq!(v["output_correct"], false);
                    verdicts.insert(v["request_id"].as_str().unwrap().into(), false);
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // The watcher found exactly the lies the fault injection told.
    for (id, honest) in &verdicts {
        assert_eq!(*honest, !predicted[id], "{id}: {verdicts:?}");
    }
    // Each case ends: fraud for the lies (decided at once), paid for the rest after the window.
    for (id, receipt) in &receipts {
        let outcome = wait_for("the verdict", Duration::from_secs(60), || {
            let (_, v) = get(&url, &format!("/api/cases/{id}")).ok()?;
            v["verdict"]["outcome"].as_str().map(str::to_string)
        });
        let honest = verdicts[id];
        assert_eq!(outcome, if honest { "paid" } else { "fraud" }, "{id}");
        let (code, v) = verify_on_chain(&receipt, &url);
        assert_eq!(v["valid"], honest, "{v}");
        assert_eq!(code, if honest { 0 } else { 3 });
        // Offline, without any node: the caller re-executes the model file on its input
        // (opal_verify::replay, the function the ledger convicted with) and reaches the same
        // verdict.
        let input = home.join("demo/digits-input.json");
        let (code, v, replay) = verify_offline(receipt, "model.opalq", &input, "replay");
        assert_eq!(replay["ok"], honest, "{v}");
        if !honest {
            assert_eq!(replay["code"], "output_differs", "{v}");
        }
        assert_eq!(v["valid"], honest, "{v}");
        assert_eq!(code, if honest { 0 } else { 3 });
    }
    // The liar was slashed (its whole minimum bond, so the role bond is gone) and jailed.
    let inference: Value =
        serde_json::from_str(&std::fs::read_to_string(key("inference")).unwrap()).unwrap();
    let node: opal_types::Address = inference["address"].as_str().unwrap().parse().unwrap();
    let state = |k: Vec<u8>| {
        let (code, v) = get(&url, &format!("/api/state/{}", hex::encode(k))).unwrap();
        assert_eq!(code, 200, "{v}");
        v["value"].clone()
    };
    let bond_key = [b"staking/role/inference_node/".as_slice(), &node.0].concat();
    assert!(
        state(bond_key).is_null(),
        "the node's bond was slashed away"
    );
    let jail_key = [b"infer/jail/".as_slice(), &node.0].concat();
    assert!(!state(jail_key).is_null(), "the node is jailed");
}

/// Issue 14, item 7: `signed` receipts of the float ONNX demo model (`digits`, run by tract)
/// were never checked. Now a receipt the caller asks to be audited is drawn, the node reveals
/// its tensors, and `opal node watch` with the validator's key re-runs the model with tract,
/// compares within the tolerance (`opal_verify::float`) and votes; the single devnet validator
/// holds all the power, so its vote decides. The node lies on half the requests (fault
/// injection, decided by request id): each lie is convicted, each honest answer passes.
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs a build with fault injection: cargo test --features opal/fault-injection"
)]
#[test]
fn a_lying_node_serving_a_float_model_is_audited_and_convicted_by_the_committee() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start_with_env(&home, &[("OPAL_FAULT_WRONG_OUTPUT_BPS", "5000")]);
    let url = net.url.clone();
    served_model(&url, "digits");
    let input = home.join("demo/digits-input.json");
    let carol = home.join("keys/carol.json");
    let mut ids: Vec<(String, bool, std::path::PathBuf)> = vec![];
    let mut i = 0;
    while ids.len() < 2 || ids.iter().all(|x| x.1) || ids.iter().all(|x| !x.1) {
        assert!(i < 30, "30 requests without both honest and wrong answers");
        let receipt = dir.path().join(format!("float-{i}.json"));
        let (code, out, err) = cli(&[
            "infer",
            "digits",
            "--input",
            input.to_str().unwrap(),
            "--audit-bps",
            "10000",
            "--from",
            carol.to_str().unwrap(),
            "--deposit",
            "500000",
            "--receipt",
            receipt.to_str().unwrap(),
            "--node",
            &url,
            "-o",
            "json",
        ]);
        assert_eq!(code, 0, "infer: {err} {out}");
        let r: Value = serde_json::from_str(&out).unwrap();
        let id = r["request_id"].as_str().unwrap().to_string();
        let l = lies(&id);
        ids.push((id, l, receipt));
        i += 1;
    }
    // Each is settled, drawn for audit (probability 1) and revealed by the node.
    for (id, _, _) in &ids {
        wait_for(
            "the audit and the node's reveal",
            Duration::from_secs(60),
            || {
                let (_, v) = get(&url, &format!("/api/cases/{id}")).ok()?;
                (v["case"]["kind"] == "audit" && !v["case"]["revealed"].is_null()).then_some(())
            },
        );
    }
    // The validator's watcher re-runs each with tract and votes.
    let mut votes: HashMap<String, bool> = HashMap::new();
    let start = Instant::now();
    while votes.len() < ids.len() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "votes: {votes:?}"
        );
        let (code, out, err) = cli(&[
            "node",
            "watch",
            "--once",
            "--models",
            "digits@1",
            "--from",
            home.join("node_key.json").to_str().unwrap(),
            "--node",
            &url,
            "-o",
            "json",
        ]);
        assert_eq!(code, 0, "watch: {err} {out}");
        for line in out.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["event"] == "vote" {
                votes.insert(
                    v["request_id"].as_str().unwrap().into(),
                    v["valid"].as_bool().unwrap(),
                );
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    for (id, lied, receipt) in &ids {
        assert_eq!(votes[id], !lied, "{id}: {votes:?}");
        // The caller reaches the same verdict alone: `opal verify` re-runs the ONNX file on its
        // input with tract and compares within the same tolerance.
        let (code, v, rerun) = verify_offline(receipt, "model.onnx", &input, "float_rerun");
        assert_eq!(rerun["ok"], !lied, "{v}");
        assert_eq!(code, if *lied { 3 } else { 0 }, "{v}");
        let outcome = wait_for("the committee's verdict", Duration::from_secs(30), || {
            let (_, v) = get(&url, &format!("/api/cases/{id}")).ok()?;
            v["verdict"]["outcome"].as_str().map(str::to_string)
        });
        assert_eq!(
            outcome,
            if *lied { "fraud" } else { "audit_passed" },
            "{id}"
        );
    }
}
