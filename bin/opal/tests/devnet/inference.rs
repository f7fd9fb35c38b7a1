//! The core journey against a real devnet process: the demo model (trained on scikit-learn's
//! digits, with the dataset in its lineage) is registered and served by the devnet's inference
//! node; `opal infer` pays from an escrow and gets a signed receipt; the receipt settles on chain
//! and pays the node, the model owner, the dataset contributor and the treasury exactly; `opal
//! verify` checks it offline and with a Merkle proof; bad requests are refused and never charged.

use crate::common::*;
use opal_node::clock::now_ms;
use opal_types::receipt::{InferenceRequest, ReceiptEnvelope};
use opal_types::{Address, Hash, ModelRef, SecretKey, Tier};
use serde_json::{json, Value};
use std::time::Duration;

fn json_cli(args: &[&str]) -> Value {
    let (code, out, err) = cli(args);
    assert_eq!(code, 0, "opal {args:?} failed: {err} {out}");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("opal {args:?} printed non-JSON ({e}): {out}"))
}

fn treasury(url: &str) -> u128 {
    let (_, st) = get(url, "/api/status").unwrap();
    st["pools"]["treasury"].as_str().unwrap().parse().unwrap()
}

#[test]
fn infer_pay_settle_and_verify_the_demo_model() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let url = net.url.clone();
    let key = |n: &str| home.join(format!("keys/{n}.json"));
    let addr = |n: &str| -> Address {
        let k: Value = serde_json::from_str(&std::fs::read_to_string(key(n)).unwrap()).unwrap();
        k["address"].as_str().unwrap().parse().unwrap()
    };
    let (alice, bob, node) = (addr("modeler"), addr("curator"), addr("inference"));

    // The demo is registered and served once the devnet has set it up.
    let model = wait_for("the demo service", Duration::from_secs(60), || {
        let (code, v) = get(&url, "/api/models/digits").ok()?;
        (code == 200 && !v["services"].as_array()?.is_empty()).then_some(v)
    });
    assert_eq!(model["owner"], json!(alice.to_string()));
    let lineage = json_cli(&["model", "lineage", "digits", "--node", &url, "-o", "json"]);
    assert_eq!(lineage["datasets"][0]["name"], "sklearn-digits");
    assert_eq!(lineage["datasets"][0]["owner"], json!(bob.to_string()));
    // The registered hash is the hash of the committed model file.
    let onnx = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.onnx"
    ))
    .unwrap();
    assert_eq!(
        model["spec"]["content_hash"],
        json!(blake3::hash(&onnx).to_hex().to_string())
    );

    let before = |who: &Address| net.balance(who);
    let (a0, b0, t0) = (before(&alice), before(&bob), treasury(&url));

    // Infer through the CLI, paying from an escrow the CLI funds.
    let receipt = dir.path().join("receipt.json");
    let (code, out, err) = infer_cli(&home, &url, "digits", "signed", "100000", &receipt);
    assert_eq!(code, 0, "infer: {err} {out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    // scikit-learn's label for this digit (models/digits/expected.json, first row).
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/digits/expected.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let label = &r["outputs"][0]["data"][0];
    assert_eq!(label, &expected["label"][0], "outputs: {}", r["outputs"]);
    assert_eq!(r["price"], "15000", "price 10000 + node fee 5000");

    // Settled in a later block by the node's batch; `opal verify --node` proves it.
    let v = wait_for("settlement", Duration::from_secs(60), || {
        let (code, v) = verify_on_chain(&receipt, &url);
        (code == 0).then_some(v)
    });
    assert_eq!(v["valid"], true, "{v}");
    // 15000 charged: treasury 5% = 750; royalties 10000: dataset 20% = 2000, owner 8000;
    // node 4250 (it pays its settlement transaction's fee from that).
    assert_eq!(net.balance(&bob) - b0, 2_000);
    assert_eq!(net.balance(&alice) - a0, 8_000);
    assert_eq!(treasury(&url) - t0, 750);
    let settled_at = v["settled"]["height"].as_u64().unwrap();
    let (_, block) = get(&url, &format!("/api/blocks/{settled_at}")).unwrap();
    let payouts: Vec<Value> = block["txs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["events"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["type"] == "receipt_settled")
        .flat_map(|e| e["payouts"].as_array().cloned().unwrap_or_default())
        .collect();
    let paid = |role: &str| -> u128 {
        payouts
            .iter()
            .filter(|p| p["role"] == role)
            .map(|p| p["amount"].as_str().unwrap().parse::<u128>().unwrap())
            .sum()
    };
    assert_eq!(paid("node"), 4_250, "{payouts:?}");
    assert_eq!(
        paid("owner") + paid("dataset:sklearn-digits") + paid("treasury") + paid("node"),
        15_000
    );
    let escrow = get(&url, &format!("/api/escrows/{}/{node}", addr("carol")))
        .unwrap()
        .1;
    assert_eq!(escrow["balance"], "85000");

    // Offline verification: a tampered receipt fails, the genuine one passes.
    let (code, out, _) = cli(&["verify", receipt.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let mut f: Value = serde_json::from_str(&std::fs::read_to_string(&receipt).unwrap()).unwrap();
    let mut env = hex::decode(f["envelope"].as_str().unwrap()).unwrap();
    let n = env.len();
    env[n - 70] ^= 1; // inside the node's signature or the price
    f["envelope"] = json!(hex::encode(env));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&f).unwrap()).unwrap();
    let (code, out, err) = cli(&["verify", bad.to_str().unwrap()]);
    assert_ne!(code, 0, "tampered receipt accepted: {out}");
    assert!(
        out.contains("FAIL") || err.contains("malformed"),
        "{out} {err}"
    );
    // Changed outputs do not match the signed output hash.
    let mut f: Value = serde_json::from_str(&std::fs::read_to_string(&receipt).unwrap()).unwrap();
    f["outputs"][0]["data"][0] = json!((label.as_i64().unwrap() + 1) % 10);
    std::fs::write(&bad, serde_json::to_vec(&f).unwrap()).unwrap();
    let (code, out, _) = cli(&["verify", bad.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}");
    // Readable copies of signed fields edited in the file (a new user changing "model" and
    // "price" in a saved receipt used to get VALID): INVALID, naming the fields.
    for (field, value) in [
        ("model", json!("digits-q@1")),
        ("price", json!("1")),
        ("tier", json!("zk")),
        ("input_hash", json!(Hash::ZERO)),
    ] {
        let mut f: Value =
            serde_json::from_str(&std::fs::read_to_string(&receipt).unwrap()).unwrap();
        assert!(f.get(field).is_some(), "the receipt file has {field}");
        f[field] = value;
        std::fs::write(&bad, serde_json::to_vec(&f).unwrap()).unwrap();
        let (code, out, _) = cli(&["verify", bad.to_str().unwrap()]);
        assert_eq!(code, 3, "edited {field} accepted: {out}");
        assert!(out.contains("INVALID"), "{out}");
        assert!(
            out.contains(&format!("differs from the signed envelope: {field}")),
            "{out}"
        );
    }

    // Bad requests straight to the node's API: refused with typed errors, never charged.
    let carol = SecretKey::from_hex(
        serde_json::from_str::<Value>(&std::fs::read_to_string(key("carol")).unwrap()).unwrap()
            ["secret_key"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let (chain_id, _) = net.chain();
    let input = home.join("demo/digits-input.json");
    let tensor: Value = serde_json::from_str(&std::fs::read_to_string(&input).unwrap()).unwrap();
    let t = opal_infer::Tensor::from_json(tensor.to_string().as_bytes()).unwrap();
    let input_hash = opal_infer::tensors_hash(std::slice::from_ref(&t));
    let model_hash = Hash::from_hex(model["spec"]["content_hash"].as_str().unwrap()).unwrap();
    let req = |salt: u64| InferenceRequest {
        chain_id: chain_id.clone(),
        node,
        model: ModelRef::new("digits", 1),
        model_hash,
        input_hash,
        tier: Tier::Signed,
        max_price: opal_types::Amount(15_000),
        commercial: false,
        salt,
        expires_ms: now_ms() + 60_000,
        escalation: Default::default(),
    };
    let call = |sr: &opal_types::receipt::SignedRequest, inputs: Value| -> (u16, Value) {
        let r = http()
            .post(format!("{url}/api/infer"))
            .json(&json!({"request": hex::encode(opal_types::encode(sr)), "inputs": inputs}))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap())
    };
    let good = req(1).sign(&carol);
    let (code, ok) = call(&good, json!([tensor]));
    assert_eq!(code, 200, "{ok}");
    let env = ReceiptEnvelope::from_bytes(&hex::decode(ok["receipt"].as_str().unwrap()).unwrap())
        .unwrap();
    env.verify().unwrap();
    let cases: Vec<(&str, opal_types::receipt::SignedRequest, Value)> = vec![
        ("replayed", good.clone(), json!([tensor])),
        (
            "price_above_max",
            {
                let mut r = req(2);
                r.max_price = opal_types::Amount(14_999);
                r.sign(&carol)
            },
            json!([tensor]),
        ),
        (
            "input_hash_mismatch",
            req(3).sign(&carol),
            json!([{"dtype": "f32", "shape": [1, 64], "data": vec![1.0; 64]}]),
        ),
        (
            "model_hash_mismatch",
            {
                let mut r = req(4);
                r.model_hash = Hash([7; 32]);
                r.sign(&carol)
            },
            json!([tensor]),
        ),
        (
            "unknown_model",
            {
                let mut r = req(5);
                r.model = ModelRef::new("nope", 1);
                r.sign(&carol)
            },
            json!([tensor]),
        ),
        (
            "wrong_chain",
            {
                let mut r = req(6);
                r.chain_id = "other-chain".into();
                r.sign(&carol)
            },
            json!([tensor]),
        ),
        (
            "expired",
            {
                let mut r = req(7);
                r.expires_ms = now_ms() - 1;
                r.sign(&carol)
            },
            json!([tensor]),
        ),
        (
            "insufficient_escrow",
            req(8).sign(&SecretKey::from_seed([42; 32])),
            json!([tensor]),
        ),
        (
            "bad_signature",
            {
                let mut sr = req(9).sign(&carol);
                sr.request.salt = 10;
                sr
            },
            json!([tensor]),
        ),
        (
            "tier_unsupported",
            {
                let mut r = req(11);
                r.tier = Tier::Replay;
                r.sign(&carol)
            },
            json!([tensor]),
        ),
        (
            "input_shape",
            {
                let small = opal_infer::Tensor::from_f32(vec![1, 3], vec![1.0, 2.0, 3.0]).unwrap();
                let mut r = req(12);
                r.input_hash = opal_infer::tensors_hash(&[small]);
                r.sign(&carol)
            },
            json!([{"dtype": "f32", "shape": [1, 3], "data": [1.0, 2.0, 3.0]}]),
        ),
    ];
    for (want, sr, inputs) in cases {
        let (code, v) = call(&sr, inputs);
        assert!(code >= 400, "{want}: accepted {v}");
        let got = v["error"]["code"].as_str().unwrap_or_default().to_string();
        // Tier: the node offers only `signed`, so `replay` is "not offered" before "unsupported".
        let ok = got == want || (want == "tier_unsupported" && got == "not_offered");
        assert!(ok, "{want}: got {code} {v}");
    }
    // Garbage and oversized bodies.
    let r = http()
        .post(format!("{url}/api/infer"))
        .body("not json")
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http()
        .post(format!("{url}/api/infer"))
        .json(&json!({"request": "zz", "inputs": []}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(post_oversized(&url, "/api/infer", 9 << 20), 413);

    // Only the one good direct request (and the CLI's) is charged.
    let escrow_after = wait_for(
        "the direct request to settle",
        Duration::from_secs(60),
        || {
            let e = get(&url, &format!("/api/escrows/{}/{node}", carol.address()))
                .ok()?
                .1;
            (e["balance"] == "70000").then_some(e)
        },
    );
    assert_eq!(escrow_after["balance"], "70000");
}

#[test]
fn models_and_datasets_register_through_the_cli_with_their_rules() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let url = net.url.clone();
    let carol = home.join("keys/carol.json");
    let carol = carol.to_str().unwrap();
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/digits");
    let onnx = format!("{models}/model.onnx");
    let csv = format!("{models}/dataset.csv");

    let ds = json_cli(&[
        "dataset",
        "register",
        &csv,
        "--name",
        "my-digits",
        "--licence",
        "non-commercial",
        "--min-share",
        "500",
        "--upload",
        "--from",
        carol,
        "--node",
        &url,
        "-o",
        "json",
    ]);
    assert_eq!(ds["ok"], true, "{ds}");
    let shown = json_cli(&["dataset", "show", "my-digits", "--node", &url, "-o", "json"]);
    assert_eq!(
        shown["spec"]["content_hash"],
        json!(blake3::hash(&std::fs::read(&csv).unwrap())
            .to_hex()
            .to_string())
    );
    // The dataset file is in the node's artifact store, under its hash.
    let (code, _) = get(
        &url,
        &format!(
            "/api/artifacts/{}/status",
            shown["spec"]["content_hash"].as_str().unwrap()
        ),
    )
    .unwrap();
    assert_eq!(code, 200);

    // A file that is not a model is refused before anything reaches the chain.
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not an onnx model").unwrap();
    let (code, _, err) = cli(&[
        "model",
        "register",
        junk.to_str().unwrap(),
        "--name",
        "junk",
        "--price",
        "1",
        "--from",
        carol,
        "--node",
        &url,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not a model Opal can serve"), "{err}");

    let register = |extra: &[&str]| {
        let mut args = vec![
            "model",
            "register",
            onnx.as_str(),
            "--price",
            "700",
            "--from",
            carol,
            "--node",
            url.as_str(),
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    // The ledger's rules, each refused with its code (exit 2: the chain rejected it).
    let (code, out, _) = register(&[
        "--name",
        "carol-mlp",
        "--dataset",
        "my-digits:400",
        "--licence",
        "non-commercial",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("requires at least 500 basis points"), "{out}");
    let (code, out, _) = register(&["--name", "carol-mlp", "--dataset", "my-digits:500"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("non-commercial"), "{out}");
    let (code, out, _) = register(&["--name", "digits"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("belongs to"), "{out}");

    // Accepted: version 1, then 2 (chained), fine-tuned from the demo model.
    let (code, out, err) = register(&[
        "--name",
        "carol-mlp",
        "--dataset",
        "my-digits:500",
        "--licence",
        "non-commercial",
        "--parent",
        "digits@1",
        "--parent-share",
        "1000",
    ]);
    assert_eq!(code, 0, "{out} {err}");
    let (code, out, err) = register(&[
        "--name",
        "carol-mlp",
        "--dataset",
        "my-digits:500",
        "--licence",
        "non-commercial",
    ]);
    assert_eq!(code, 0, "{out} {err}");
    let m = json_cli(&["model", "show", "carol-mlp", "--node", &url, "-o", "json"]);
    assert_eq!(m["model"], "carol-mlp@2");
    let l = json_cli(&[
        "model",
        "lineage",
        "carol-mlp@1",
        "--node",
        &url,
        "-o",
        "json",
    ]);
    assert_eq!(l["ancestors"][0]["model"], "digits@1");
    assert_eq!(l["ancestors"][0]["datasets"][0], "sklearn-digits");
    let parent = json_cli(&["model", "lineage", "digits", "--node", &url, "-o", "json"]);
    // The devnet's canonical quantization `digits-q` is the demo's own child.
    assert_eq!(parent["children"], json!(["carol-mlp@1", "digits-q@1"]));
    let list = json_cli(&["model", "list", "--node", &url, "-o", "json"]);
    assert_eq!(list["models"].as_array().unwrap().len(), 4);

    // The journey continues with carol's model: the devnet's inference node declares it too.
    let inference = home.join("keys/inference.json");
    let decl = json_cli(&[
        "tx",
        "declare-service",
        "--endpoint",
        &url,
        "--offer",
        "digits@1:signed:5000",
        "--offer",
        "carol-mlp@1:signed:300",
        "--from",
        inference.to_str().unwrap(),
        "--node",
        &url,
        "-o",
        "json",
    ]);
    assert_eq!(decl["ok"], true, "{decl}");
    let dave = home.join("keys/dave.json");
    let input = home.join("demo/digits-input.json");
    // A non-commercial licence refuses a commercial call before anything runs or is charged.
    let (code, _, err) = cli(&[
        "infer",
        "carol-mlp@1",
        "--input",
        input.to_str().unwrap(),
        "--commercial",
        "--from",
        dave.to_str().unwrap(),
        "--node",
        &url,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("licence_forbids"), "{err}");
    let addr_of = |k: &std::path::Path| -> Address {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(k).unwrap()).unwrap();
        v["address"].as_str().unwrap().parse().unwrap()
    };
    let carol_a = addr_of(&home.join("keys/carol.json"));
    let modeler = addr_of(&home.join("keys/modeler.json"));
    let (c0, m0) = (net.balance(&carol_a), net.balance(&modeler));
    let receipt = dir.path().join("carol-receipt.json");
    let r = json_cli(&[
        "infer",
        "carol-mlp@1",
        "--input",
        input.to_str().unwrap(),
        "--tier",
        "signed",
        "--from",
        dave.to_str().unwrap(),
        "--receipt-out",
        receipt.to_str().unwrap(),
        "--node",
        &url,
        "-o",
        "json",
    ]);
    assert_eq!(r["price"], "1000");
    wait_for("carol's receipt to settle", Duration::from_secs(60), || {
        let (code, _, _) = cli(&["verify", receipt.to_str().unwrap(), "--node", &url]);
        (code == 0).then_some(())
    });
    // 1000 = 700 royalties + 300 node fee. Treasury 50; parent (digits@1, owned by modeler) 70;
    // dataset my-digits (carol) 35; owner carol 595; node 250.
    assert_eq!(net.balance(&carol_a) - c0, 35 + 595);
    assert_eq!(net.balance(&modeler) - m0, 70);

    // Supply is conserved: every account that holds anything, plus the pools.
    let (supply, pools) = supply_and_pools(&net.status());
    let mut accounts: u128 = 0;
    for e in std::fs::read_dir(home.join("keys")).unwrap().flatten() {
        accounts += net.balance(&addr_of(&e.path()));
    }
    accounts += net.balance(&addr_of(&home.join("node_key.json")));
    assert_eq!(accounts + pools, supply, "supply not conserved");
}

#[test]
fn a_node_killed_mid_batch_neither_loses_nor_double_charges() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let mut net = Devnet::start(&home);
    let url = net.url.clone();
    let key = |n: &str| {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(home.join(format!("keys/{n}.json"))).unwrap(),
        )
        .unwrap();
        SecretKey::from_hex(v["secret_key"].as_str().unwrap()).unwrap()
    };
    let (erin, node) = (key("dave"), key("inference").address());
    let (chain_id, fee) = net.chain();
    let price = 15_000u128;
    let n = 40u64;
    // One escrow for all requests.
    let fund = opal_types::TxBody {
        chain_id: chain_id.clone(),
        nonce: net.nonce(&erin.address()),
        fee,
        action: opal_types::Action::FundEscrow {
            node,
            amount: opal_types::Amount(price * n as u128 + 1),
        },
    }
    .sign(&erin);
    let (code, v) = submit(&url, &fund);
    assert_eq!(code, 202, "{v}");
    net.wait_tx(v["hash"].as_str().unwrap(), Duration::from_secs(30));

    let (_, m) = get(&url, "/api/models/digits").unwrap();
    let model_hash = Hash::from_hex(m["spec"]["content_hash"].as_str().unwrap()).unwrap();
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(home.join("demo/digits-input.json")).unwrap(),
    )
    .unwrap();
    let t = opal_infer::Tensor::from_json(input.to_string().as_bytes()).unwrap();
    let input_hash = opal_infer::tensors_hash(std::slice::from_ref(&t));
    let mut ids = vec![];
    for salt in 0..n {
        let sr = InferenceRequest {
            chain_id: chain_id.clone(),
            node,
            model: ModelRef::new("digits", 1),
            model_hash,
            input_hash,
            tier: Tier::Signed,
            max_price: opal_types::Amount(price),
            commercial: false,
            salt,
            expires_ms: now_ms() + 120_000,
            escalation: Default::default(),
        }
        .sign(&erin);
        let r = http()
            .post(format!("{url}/api/infer"))
            .json(&json!({"request": hex::encode(opal_types::encode(&sr)), "inputs": [input]}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        ids.push(sr.id());
    }
    // Killed with receipts answered but (mostly) not yet settled.
    net.kill();
    net.restart();
    let settled =
        |id: &Hash| get(&url, &format!("/api/receipts/{id}")).unwrap().1["settled"] == true;
    wait_for(
        "every receipt to settle after the restart",
        Duration::from_secs(90),
        || ids.iter().all(settled).then_some(()),
    );
    // Each paid exactly once: the escrow lost exactly n prices, the model counted n calls.
    let e = get(&url, &format!("/api/escrows/{}/{node}", erin.address()))
        .unwrap()
        .1;
    assert_eq!(e["balance"], "1");
    let (_, m) = get(&url, "/api/models/digits").unwrap();
    assert_eq!(m["calls"], n);
}

#[test]
fn corrupted_artifacts_and_wrong_dtypes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(&dir.path().join("home"));
    let url = net.url.clone();
    // Announce a file by its hash, then send other bytes of the same size: refused, not stored.
    let good = b"the real model bytes".to_vec();
    let hash = blake3::hash(&good).to_hex().to_string();
    let r = http()
        .put(format!("{url}/api/artifacts/{hash}?size={}", good.len()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http()
        .post(format!("{url}/api/artifacts/{hash}/chunks?offset=0"))
        .header("content-type", "application/octet-stream")
        .body(b"not the real model!!".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["code"], "hash_mismatch", "{v}");
    let (code, _) = get(&url, &format!("/api/artifacts/{hash}")).unwrap();
    assert_eq!(code, 404);

    // An input of the wrong element type gets a typed error naming the input.
    let input = dir.path().join("ints.json");
    std::fs::write(
        &input,
        json!({"dtype": "i64", "shape": [1, 64], "data": vec![1; 64]}).to_string(),
    )
    .unwrap();
    let dave = dir.path().join("home/keys/dave.json");
    let (code, _, err) = cli(&[
        "infer",
        "digits",
        "--input",
        input.to_str().unwrap(),
        "--from",
        dave.to_str().unwrap(),
        "--node",
        &url,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("input_dtype"), "{err}");
    // An unknown model.
    let (code, _, err) = cli(&[
        "infer",
        "nope",
        "--input",
        input.to_str().unwrap(),
        "--from",
        dave.to_str().unwrap(),
        "--node",
        &url,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no model named nope"), "{err}");
}
