//! `opal verify --genesis`: settlement checked as a light client against a real devnet, and
//! against a lying node (an HTTP proxy in front of the devnet that rewrites what it serves):
//! a forged state value, a hidden settlement, a short certificate and a certificate signed by
//! a key outside the validator set are each caught with their own exit code. The portable
//! proof saved in the receipt file verifies offline with only the genesis file.

use crate::common::*;
use opal_types::Hash;
use opal_verify::light::{Certificate, LightBlock};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the proxy lies.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lie {
    Honest,
    /// Another value for every proven state key (a forged settled record).
    ForgedValue,
    /// The settled record hidden: "absent", with a proof of absence from the genesis state.
    HiddenSettlement,
    /// Every certificate stripped of its signatures but one fewer than needed (here: all).
    ShortCertificate,
    /// Every certificate signature replaced by one from a key outside the validator set.
    OutsideSigner,
    /// Accounts reported richer than they are (the proof left as it was).
    InflatedBalance,
    /// Accounts reported with another state root (the proof is checked against the block's).
    ForeignRoot,
}

/// A one-thread HTTP/1.1 proxy to `upstream` that applies `lie` to JSON replies. Bounded: it
/// serves until the test ends (the thread is detached; the listener is on loopback).
fn proxy(upstream: String, lie: Arc<Mutex<Lie>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().take(10_000) {
            let Ok(conn) = conn else { continue };
            let _ = serve(conn, &upstream, *lie.lock().unwrap());
        }
    });
    url
}

fn serve(mut conn: TcpStream, upstream: &str, lie: Lie) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("/").to_string(),
    );
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len.min(1 << 24)];
    reader.read_exact(&mut body)?;
    let req = match method {
        "POST" => http()
            .post(format!("{upstream}{path}"))
            .header("content-type", "application/json")
            .body(body),
        _ => http().get(format!("{upstream}{path}")),
    };
    let resp = req.send().map_err(std::io::Error::other)?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().map_err(std::io::Error::other)?.to_vec();
    let out = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => serde_json::to_vec(&rewrite(upstream, &path, v, lie)).unwrap(),
        Err(_) => bytes,
    };
    write!(
        conn,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        out.len()
    )?;
    conn.write_all(&out)
}

fn rewrite(upstream: &str, path: &str, mut v: Value, lie: Lie) -> Value {
    if path.starts_with("/api/state/") && lie == Lie::ForeignRoot {
        v["state_root"] = Value::String(hex::encode([9u8; 32]));
    }
    if path.starts_with("/api/state/") && v["value"].is_string() {
        match lie {
            Lie::ForgedValue => v["value"] = Value::String(hex::encode(b"forged record")),
            Lie::HiddenSettlement => {
                // A real proof of absence, from the state before anything settled.
                let key = path["/api/state/".len()..].split('?').next().unwrap();
                let (_, old) =
                    get(upstream, &format!("/api/state/{key}?prove=true&height=1")).unwrap();
                v["value"] = Value::Null;
                v["proof"] = old["proof"].clone();
            }
            _ => {}
        }
    }
    if path.starts_with("/api/accounts/") && v["balance"].is_string() {
        match lie {
            Lie::InflatedBalance => {
                let b: u128 = v["balance"].as_str().unwrap().parse().unwrap();
                v["balance"] = Value::String((b + 1_000_000).to_string());
            }
            Lie::ForeignRoot => v["state_root"] = Value::String(hex::encode([9u8; 32])),
            _ => {}
        }
    }
    if path.starts_with("/api/light/") {
        let mut lb: LightBlock = serde_json::from_value(v.clone()).unwrap();
        let mut cert: Certificate = borsh::from_slice(&lb.certificate).unwrap();
        match lie {
            Lie::ShortCertificate => cert.signatures.clear(),
            Lie::OutsideSigner => {
                let k = opal_types::SecretKey::from_seed([77; 32]);
                for (pk, sig) in cert.signatures.iter_mut() {
                    *pk = k.public_key().0;
                    *sig = k.sign(b"anything").0.to_vec();
                }
            }
            _ => return v,
        }
        lb.certificate = borsh::to_vec(&cert).unwrap();
        let h = v["height"].clone();
        v = serde_json::to_value(&lb).unwrap();
        v["height"] = h;
    }
    v
}

#[test]
fn a_settled_receipt_verifies_as_a_light_client_and_a_lying_node_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let url = net.url.clone();
    let genesis = home.join("genesis.json");
    let g = genesis.to_str().unwrap();
    served_model(&url, "digits");
    let receipt = dir.path().join("receipt.json");
    let (code, out, err) = infer_cli(&home, &url, "digits", "signed", "100000", &receipt);
    assert_eq!(code, 0, "infer: {err} {out}");
    let r = receipt.to_str().unwrap();
    let portable = dir.path().join("portable.json");
    let p = portable.to_str().unwrap();

    // Honest node: VALID, trusted from the genesis file, portable proof saved.
    let v = wait_for(
        "settlement, light-client checked",
        Duration::from_secs(60),
        || {
            let (code, out, _) = cli(&[
                "verify",
                r,
                "--node",
                &url,
                "--genesis",
                g,
                "--trusting-period",
                "86400",
                "--save-portable",
                p,
                "-o",
                "json",
            ]);
            (code == 0).then(|| serde_json::from_str::<Value>(&out).unwrap())
        },
    );
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["trusted"]["source"]["kind"], "genesis", "{v}");
    assert!(v["trusted"]["validator_set_hash"].is_string(), "{v}");
    let checks = v["checks"].to_string();
    assert!(checks.contains("light client"), "{checks}");

    // Offline, with only the genesis file.
    let (code, out, err) = cli(&["verify", p, "--genesis", g, "--trusting-period", "86400"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("VALID") && out.contains("light client"),
        "{out}"
    );
    // The portable proof with a forged settled record: refused offline (state_proof, 26).
    let mut f: Value = serde_json::from_str(&std::fs::read_to_string(&portable).unwrap()).unwrap();
    f["portable"]["state"]["value"] = Value::String(hex::encode(b"forged"));
    let bad = dir.path().join("bad-portable.json");
    std::fs::write(&bad, serde_json::to_vec(&f).unwrap()).unwrap();
    let (code, out, _) = cli(&[
        "verify",
        bad.to_str().unwrap(),
        "--genesis",
        g,
        "--trusting-period",
        "86400",
    ]);
    assert_eq!(code, 26, "{out}");
    // Trust from genesis expires with the chain's unbonding time (60 s in the devnet).
    std::thread::sleep(Duration::from_millis(100));
    let (code, out, _) = cli(&["verify", p, "--genesis", g, "--trusting-period", "1"]);
    assert_eq!(code, 24, "trust_expired: {out}");

    // A lying node, each lie with its own exit code.
    let lie = Arc::new(Mutex::new(Lie::Honest));
    let liar = proxy(url.clone(), lie.clone());
    for (how, exit, code_name) in [
        (Lie::Honest, 0, ""),
        (Lie::ForgedValue, 26, "state_proof"),
        (Lie::HiddenSettlement, 26, "state_proof"),
        (Lie::ShortCertificate, 19, "insufficient_power"),
        (Lie::OutsideSigner, 16, "unknown_signer"),
    ] {
        *lie.lock().unwrap() = how;
        let (code, out, err) = cli(&[
            "verify",
            r,
            "--node",
            &liar,
            "--genesis",
            g,
            "--trusting-period",
            "86400",
        ]);
        assert_eq!(code, exit, "{how:?}: {out} {err}");
        assert!(out.contains(code_name), "{how:?}: {out}");
        if exit != 0 {
            assert!(out.contains("INVALID"), "{how:?}: {out}");
        }
    }
    // A checkpoint instead of the genesis: block 2 by its hash; a wrong hash is refused.
    let (_, b2) = get(&url, "/api/blocks/2").unwrap();
    let spec = format!("2:{}", b2["hash"].as_str().unwrap());
    let (code, out, err) = cli(&["verify", r, "--node", &url, "--trust", &spec]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("checkpoint 2"), "{out}");
    let wrong = format!("2:{}", Hash::ZERO);
    let (code, _, err) = cli(&["verify", r, "--node", &url, "--trust", &wrong]);
    assert_ne!(code, 0);
    assert!(err.contains("not the trusted"), "{err}");

    // Without a trust start the forged record passes for the node's word: the output says
    // so, which is why --genesis exists.
    *lie.lock().unwrap() = Lie::Honest;
    let (code, out, _) = cli(&["verify", r, "--node", &liar]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not certified"), "{out}");
}

#[test]
fn a_proven_account_query_catches_a_node_that_lies_about_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let who = net.dev_keys()[0].address().to_string();
    let lie = Arc::new(Mutex::new(Lie::Honest));
    let liar = proxy(net.url.clone(), lie.clone());
    let query = || {
        cli(&[
            "query", "account", &who, "--prove", "--node", &liar, "-o", "json",
        ])
    };

    let (code, out, err) = query();
    assert_eq!(code, 0, "honest node: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["proof_verified"], true);

    *lie.lock().unwrap() = Lie::InflatedBalance;
    let (code, out, err) = query();
    assert_ne!(code, 0, "an inflated balance was accepted: {out}");
    assert!(err.contains("differs from the reported one"), "{err}");
    // Without --prove the CLI shows what the node says (its word, not checked).
    let (code, _, _) = cli(&["query", "account", &who, "--node", &liar, "-o", "json"]);
    assert_eq!(code, 0);

    *lie.lock().unwrap() = Lie::ForeignRoot;
    let (code, out, err) = query();
    assert_ne!(code, 0, "a reply under another root was accepted: {out}");
    assert!(err.contains("state root"), "{err}");
}

#[test]
fn a_proven_state_query_catches_a_node_that_lies_about_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let who = net.dev_keys()[0].address().to_string();
    let (_, acct) = get(&net.url, &format!("/api/accounts/{who}?prove=true")).unwrap();
    let key = acct["key"].as_str().unwrap().to_string();
    let lie = Arc::new(Mutex::new(Lie::Honest));
    let liar = proxy(net.url.clone(), lie.clone());
    let query = || cli(&["query", "state", &key, "--node", &liar, "-o", "json"]);

    let (code, out, err) = query();
    assert_eq!(code, 0, "honest node: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["proof_verified"], true);
    assert_eq!(v["key"], key.as_str());

    *lie.lock().unwrap() = Lie::ForgedValue;
    let (code, out, _) = query();
    assert_ne!(code, 0, "a forged value was accepted: {out}");

    // A root of the node's choosing: the proof is checked against the block's state root.
    *lie.lock().unwrap() = Lie::ForeignRoot;
    let (code, out, err) = query();
    assert_ne!(code, 0, "a reply under another root was accepted: {out}");
    assert!(err.contains("state root"), "{err}");
}
