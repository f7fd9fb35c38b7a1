//! Revenue shares against a real devnet process, through the CLI and the API: the demo
//! model's owner splits `model:digits` into shares and sells some, the data curator splits
//! `dataset:sklearn-digits`; calls to the model settle; the holders' claimable earnings are
//! exactly their part, claims pay them, and bad requests are refused with their code. Then
//! the exchange: the owner offers shares, dave buys some at the owner's price, the rest is
//! cancelled, and the book and trades routes show it.

use crate::common::*;
use opal_types::Address;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn json_cli(args: &[&str]) -> (i32, Value) {
    let (code, out, err) = cli(args);
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("opal {args:?} printed non-JSON ({e}): {out} {err}"));
    (code, v)
}

fn address(home: &Path, name: &str) -> Address {
    let f = home.join(format!("keys/{name}.json"));
    let k: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
    k["address"].as_str().unwrap().parse().unwrap()
}

fn claimable(url: &str, stream: &str, who: &Address) -> u128 {
    let (code, v) = get(url, &format!("/api/shares/{stream}/{who}")).unwrap();
    assert_eq!(code, 200, "{v}");
    v["claimable"].as_str().unwrap().parse().unwrap()
}

#[test]
fn split_sell_call_and_claim_the_demo_models_royalties() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let url = net.url.clone();
    served_model(&url, "digits");
    let key = |n: &str| home.join(format!("keys/{n}.json")).display().to_string();
    let (modeler, curator, dave) = (
        address(&home, "modeler"),
        address(&home, "curator"),
        address(&home, "dave"),
    );
    let tx = |args: &[&str], from: &str| {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(["--from".into(), key(from), "--node".into(), url.clone()]);
        a.extend(["-o".into(), "json".into()]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        json_cli(&a)
    };

    // Split both streams; the owner sells 40 of the model's 100 shares to dave.
    let (code, v) = tx(
        &["shares", "split", "model:digits", "--shares", "100"],
        "modeler",
    );
    assert_eq!(code, 0, "{v}");
    let (code, v) = tx(
        &["shares", "split", "dataset:sklearn-digits", "--shares", "3"],
        "curator",
    );
    assert_eq!(code, 0, "{v}");
    let dave_s = dave.to_string();
    let (code, v) = tx(
        &[
            "shares",
            "transfer",
            "model:digits",
            "--to",
            &dave_s,
            "--shares",
            "40",
        ],
        "modeler",
    );
    assert_eq!(code, 0, "{v}");
    let (m0, c0) = (net.balance(&modeler), net.balance(&curator));

    // Two calls, each 15,000: royalties 10,000, of which 2,000 to the dataset and 8,000 to the
    // model's owner part; both now go to the holders.
    for i in 0..2 {
        let receipt = dir.path().join(format!("receipt-{i}.json"));
        let (code, out, err) = infer_cli(&home, &url, "digits", "signed", "100000", &receipt);
        assert_eq!(code, 0, "infer: {err} {out}");
        wait_for("settlement", Duration::from_secs(60), || {
            (verify_on_chain(&receipt, &url).0 == 0).then_some(())
        });
    }
    assert_eq!(
        net.balance(&modeler),
        m0,
        "the owner's account is not paid directly"
    );
    assert_eq!(net.balance(&curator), c0);
    // model: 16,000 over 100 shares = 160 a share; dataset: 4,000 over 3 = 1,333, 1 waiting.
    assert_eq!(claimable(&url, "model:digits", &modeler), 60 * 160);
    assert_eq!(claimable(&url, "model:digits", &dave), 40 * 160);
    assert_eq!(
        claimable(&url, "dataset:sklearn-digits", &curator),
        3 * 1_333
    );
    let (code, s) = get(&url, "/api/shares/dataset:sklearn-digits").unwrap();
    assert_eq!(code, 200, "{s}");
    assert_eq!(
        (s["paid_in"].as_str(), s["remainder"].as_str()),
        (Some("4000"), Some("1"))
    );

    // Claims pay exactly what was claimable (the fee aside) and leave nothing to claim.
    let fee: u128 = net.status()["params"]["min_fee"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for (who, name, stream, want) in [
        (modeler, "modeler", "model:digits", 9_600u128),
        (dave, "dave", "model:digits", 6_400),
        (curator, "curator", "dataset:sklearn-digits", 3_999),
    ] {
        let before = net.balance(&who);
        let (code, v) = tx(&["shares", "claim", stream], name);
        assert_eq!(code, 0, "{v}");
        assert_eq!(net.balance(&who) + fee - before, want, "{name}");
        assert_eq!(claimable(&url, stream, &who), 0);
    }
    let (_, st) = get(&url, "/api/status").unwrap();
    assert_eq!(
        st["pools"]["shares"], "1",
        "the dataset's remainder waits in the pool"
    );

    // Refusals: each exits 2 with the ledger's code, and changes nothing.
    for (args, from, code_want) in [
        (
            vec!["shares", "claim", "model:digits"],
            "dave",
            "nothing_to_claim",
        ),
        (
            vec!["shares", "split", "model:digits", "--shares", "5"],
            "modeler",
            "already_split",
        ),
        (
            vec![
                "shares",
                "transfer",
                "model:digits",
                "--to",
                &dave_s,
                "--shares",
                "61",
            ],
            "modeler",
            "insufficient_shares",
        ),
        (
            vec!["shares", "split", "model:digits", "--shares", "5"],
            "dave",
            "not_owner",
        ),
    ] {
        let (code, v) = tx(&args, from);
        assert_eq!(code, 2, "{args:?}: {v}");
        assert_eq!(v["code"], code_want, "{args:?}: {v}");
    }
    let (code, out, err) = cli(&[
        "shares",
        "split",
        "digits",
        "--shares",
        "5",
        "--from",
        &key("modeler"),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("model:NAME or dataset:NAME"), "{out} {err}");

    // The read side: both streams listed, holders paged, bad requests typed.
    let (code, l) = json_cli(&["shares", "show", "--node", &url, "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(l["streams"].as_array().unwrap().len(), 2, "{l}");
    let (_, page) = get(&url, "/api/shares/model:digits?limit=1").unwrap();
    assert_eq!(page["holder_list"].as_array().unwrap().len(), 1, "{page}");
    let next = page["next"].as_str().unwrap().to_string();
    let (_, page2) = get(
        &url,
        &format!("/api/shares/model:digits?limit=1&after={next}"),
    )
    .unwrap();
    assert_eq!(page2["holder_list"].as_array().unwrap().len(), 1, "{page2}");
    assert!(page2["next"].is_null(), "{page2}");
    for (path, status, code) in [
        ("/api/shares/digits", 400, "malformed_stream"),
        ("/api/shares/model:nope", 404, "not_found"),
        ("/api/shares/model:digits?limit=0", 400, "bad_limit"),
        ("/api/shares/model:digits/xyz", 400, "malformed_address"),
    ] {
        let (s, v) = get(&url, path).unwrap();
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {v}"
        );
    }

    // The exchange: the owner offers 10 shares at 500 a share; dave bids 4 at 600 and
    // trades at once at the owner's 500 (the fee, 30 bps, comes out of the seller's 2,000).
    let (code, v) = tx(
        &[
            "market",
            "order",
            "model:digits",
            "sell",
            "--shares",
            "10",
            "--price",
            "500",
        ],
        "modeler",
    );
    assert_eq!(code, 0, "{v}");
    let ask = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "order_placed")
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    let (d0, m0) = (net.balance(&dave), net.balance(&modeler));
    let (code, v) = tx(
        &[
            "market",
            "order",
            "model:digits",
            "buy",
            "--shares",
            "4",
            "--price",
            "600",
        ],
        "dave",
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        d0 - net.balance(&dave),
        4 * 500 + fee,
        "dave pays 500 a share, not 600"
    );
    assert_eq!(net.balance(&modeler) - m0, 2_000 - 6);
    let (_, h) = get(&url, &format!("/api/shares/model:digits/{dave}")).unwrap();
    assert_eq!(h["shares"], 44, "{h}");
    let (code, book) = json_cli(&[
        "market",
        "book",
        "model:digits",
        "--node",
        &url,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0);
    assert_eq!(book["asks"][0]["left"], 6, "{book}");
    assert!(book["bids"].as_array().unwrap().is_empty(), "{book}");
    let (_, t) = get(&url, "/api/market/model:digits/trades").unwrap();
    assert_eq!(t["trades"].as_array().unwrap().len(), 1, "{t}");
    assert_eq!(
        (
            t["trades"][0]["price"].as_str(),
            t["trades"][0]["fee"].as_str()
        ),
        (Some("500"), Some("6"))
    );
    // The owner cannot buy from itself, and cannot sell shares its order has locked.
    let (code, v) = tx(
        &[
            "market",
            "order",
            "model:digits",
            "buy",
            "--shares",
            "1",
            "--price",
            "500",
        ],
        "modeler",
    );
    assert_eq!((code, v["code"].as_str()), (2, Some("self_trade")), "{v}");
    let (code, v) = tx(
        &[
            "shares",
            "transfer",
            "model:digits",
            "--to",
            &dave_s,
            "--shares",
            "51", // 56 held, 6 locked by the resting sell: 50 free
        ],
        "modeler",
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (2, Some("insufficient_shares")),
        "{v}"
    );
    // Cancelling unlocks what is left.
    let (code, v) = tx(&["market", "cancel", &ask.to_string()], "modeler");
    assert_eq!(code, 0, "{v}");
    let (s, v) = get(&url, &format!("/api/market/orders/{ask}")).unwrap();
    assert_eq!(s, 404, "{v}");
    let (_, h) = get(&url, &format!("/api/shares/model:digits/{modeler}")).unwrap();
    assert_eq!(h["shares"], 56, "{h}");
}
