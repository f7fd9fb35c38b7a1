//! The `zk` tier end to end against a real devnet process: `opal infer --tier zk` on the
//! canonical demo model `digits-q` waits for the node's background proof and attaches it to the
//! receipt; the node publishes nothing twice (the devnet published the verifying key) and
//! settles with `SettleProved`, which every validator verifies before paying; `opal verify`
//! checks the proof offline against the model file and online against the published key, and
//! fails a receipt whose proof was tampered with.

use crate::common::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn a_zk_receipt_is_proved_verified_offline_and_settled_by_proof() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let url = net.url.clone();
    let model = wait_for("the canonical demo model", Duration::from_secs(60), || {
        let (code, v) = get(&url, "/api/models/digits-q").ok()?;
        let zk_offered = v["services"].as_array()?.iter().any(|s| {
            s["tiers"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "zk"))
        });
        (code == 200 && zk_offered).then_some(v)
    });
    // The verifying key the weight commitment names is published on chain.
    let wc = model["spec"]["weight_commitment"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, k) = get(&url, &format!("/api/zk/keys/{wc}")).unwrap();
    assert_eq!(code, 200, "{k}");
    let key_bytes = hex::decode(k["key"].as_str().unwrap()).unwrap();
    assert_eq!(hex::encode(blake3::hash(&key_bytes).as_bytes()), wc);

    let receipt = dir.path().join("receipt.json");
    let (code, out, err) = infer_cli(&home, &url, "digits-q", "zk", "500000", &receipt);
    assert_eq!(code, 0, "infer: {err} {out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert!(r["proof"]["proof_bytes"].as_u64().unwrap() > 0, "{r}");
    let id = r["request_id"].as_str().unwrap().to_string();

    // Offline: the proof against the key derived from the model file the request named.
    let model_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.opalq"
    );
    let verify = |file: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["verify", file.to_str().unwrap(), "-o", "json"];
        args.extend_from_slice(extra);
        let (code, out, err) = cli(&args);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out} {err}"));
        (code, v)
    };
    let (code, v) = verify(&receipt, &["--model-file", model_file]);
    assert_eq!(code, 0, "{v}");
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["check"] == "zk proof of the output" && c["ok"] == true));

    // On chain: paid through SettleProved once the validators verified the proof.
    wait_for("the proved settlement", Duration::from_secs(60), || {
        let (code, v) = get(&url, &format!("/api/receipts/{id}")).ok()?;
        (code == 200 && v["settled"] == true).then_some(())
    });
    let (code, v) = verify(&receipt, &["--node", &url]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["valid"], true);
    // With the file and the node: the key re-derived from the file is the registered one (the
    // published key names the receipt's model file).
    let (code, v) = verify(&receipt, &["--model-file", model_file, "--node", &url]);
    assert_eq!(code, 0, "{v}");
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "zk proof of the output"
                && c["ok"] == true
                && c["detail"].as_str().is_some_and(|d| d.contains(&wc))),
        "{v}"
    );

    // A receipt whose proof was tampered with fails, offline and online.
    let mut file: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    let mut env = opal_types::receipt::ReceiptEnvelope::from_bytes(
        &hex::decode(file["envelope"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let att = env
        .attachments
        .iter_mut()
        .find(|a| a.tier == opal_types::Tier::Zk)
        .expect("the receipt carries its proof");
    let mut ev = opal_types::receipt::ZkEvidence::from_bytes(&att.bytes).unwrap();
    let n = ev.proof.len();
    ev.proof[n / 2] ^= 0x04;
    att.bytes = opal_types::encode(&ev);
    file["envelope"] = Value::String(hex::encode(env.to_bytes()));
    let bad = dir.path().join("tampered.json");
    std::fs::write(&bad, serde_json::to_vec(&file).unwrap()).unwrap();
    let (code, v) = verify(&bad, &["--model-file", model_file]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["valid"], false);
    let (code, _) = verify(&bad, &["--node", &url]);
    assert_eq!(code, 3);
}
