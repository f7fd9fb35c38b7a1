//! Governance on a real 4-validator testnet: a dev account proposes raising the audit rate
//! with `opal gov propose`, three validators vote yes with `opal gov vote` (their operator
//! keys), the proposal passes at the end of its voting period on every validator, `GET
//! /api/params` shows the new rate set by the proposal, and the audit draw of the following
//! blocks follows it: a receipt settled before the change is not audited (rate 0), one settled
//! after it is (rate 100%).

use crate::common::*;
use opal_node::home::KeyFile;
use opal_types::receipt::{InferenceRequest, Receipt, ReceiptBody};
use opal_types::registry::{ServiceOffer, ServiceSpec};
use opal_types::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Long enough for four CLI transactions to land under a loaded CI machine.
const VOTING_MS: u64 = 20_000;

/// Sign `action` from `key` at its committed nonce, submit it to node 0, wait for its block;
/// the committed status (asserts it applied).
fn send(t: &Testnet, key: &SecretKey, action: Action) -> Value {
    let nonce = t.account(0, &key.address())["nonce"].as_u64().unwrap();
    let tx = TxBody {
        chain_id: t.chain_id.clone(),
        nonce,
        fee: t.min_fee(0),
        action,
    }
    .sign(key);
    let (code, v) = submit(t.url(0), &tx);
    assert_eq!(code, 202, "{v}");
    let st = t.wait_tx(0, &tx.hash().to_hex(), Duration::from_secs(30));
    assert_eq!(st["ok"], true, "{st}");
    st
}

/// A receipt of the demo model from `node`, for `caller`'s request number `salt`.
fn receipt(t: &Testnet, caller: &SecretKey, node: &SecretKey, salt: u64) -> Receipt {
    let st = t.status(0).unwrap();
    let (height, now) = (
        st["height"].as_u64().unwrap(),
        st["block_time_ms"].as_u64().unwrap(),
    );
    let file = opal_testkit::demo_model_file();
    ReceiptBody {
        request: InferenceRequest {
            chain_id: t.chain_id.clone(),
            node: node.address(),
            model: ModelRef::new("digits-q", 1),
            model_hash: Hash(*blake3::hash(&file).as_bytes()),
            input_hash: Hash([1; 32]),
            tier: Tier::Signed,
            max_price: Amount(1_000),
            commercial: false,
            salt,
            expires_ms: now + 600_000,
            escalation: Default::default(),
        }
        .sign(caller),
        output_hash: Hash([2; 32]),
        price: Amount(200),
        units: 1,
        height,
        node_key: node.public_key(),
    }
    .sign(node)
}

/// Settle `r` from `node`; wait two blocks for the audit draw (the block after the
/// settlement draws it); whether the request has an open audit case.
fn settle_then_audited(t: &Testnet, node: &SecretKey, r: &Receipt) -> bool {
    let st = send(
        t,
        node,
        Action::SettleReceipts {
            receipts: vec![r.clone()],
        },
    );
    let paid = st["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "receipt_settled");
    assert!(paid, "the receipt is paid: {st}");
    let h = st["height"].as_u64().unwrap();
    t.wait_heights(&[0], h + 2, Duration::from_secs(30));
    let (code, v) = get(t.url(0), &format!("/api/cases/{}", r.request_id().to_hex())).unwrap();
    assert_eq!(code, 200, "{v}");
    !v["case"].is_null()
}

fn cli_ok(args: &[&str]) -> String {
    let (code, out, err) = cli(args);
    assert_eq!(code, 0, "opal {args:?}: {out}\n{err}");
    out
}

#[test]
fn a_passed_audit_rate_change_drives_the_audit_draw_on_every_validator() {
    let voting = format!("governance.voting_period_ms={VOTING_MS}");
    let t = Testnet::start_with(4, &["--param", &voting, "--param", "inference.audit_bps=0"]);
    let t0 = t.t0();
    let keys_dir = t.root.join("keys");
    let key = |name: &str| {
        KeyFile::read(&keys_dir.join(format!("{name}.json")))
            .unwrap()
            .secret()
            .unwrap()
    };
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));

    // The inference side, by plain transactions: alice registers the demo model, bob bonds
    // and serves it, carol funds an escrow with bob.
    let file = opal_testkit::demo_model_file();
    let spec = opal_testkit::demo_spec(&file, vec![Tier::Signed], None);
    send(&t, &alice, Action::RegisterModel { spec });
    send(
        &t,
        &bob,
        Action::BondRole {
            role: Role::InferenceNode,
            amount: Amount(1_000_000),
        },
    );
    send(
        &t,
        &bob,
        Action::DeclareService {
            spec: ServiceSpec {
                endpoint: "http://127.0.0.1:1".into(),
                offers: vec![ServiceOffer {
                    model: ModelRef::new("digits-q", 1),
                    tiers: vec![Tier::Signed],
                    fee: Amount(90),
                }],
            },
        },
    );
    send(
        &t,
        &carol,
        Action::FundEscrow {
            node: bob.address(),
            amount: Amount(100_000),
        },
    );
    let before = receipt(&t, &carol, &bob, 1);
    assert!(
        !settle_then_audited(&t, &bob, &before),
        "at audit_bps 0 nothing is audited"
    );
    log(t0, "settled one receipt at audit_bps 0: not audited");

    // Propose with the CLI (the deposit defaults to min_deposit, so voting opens at once).
    let alice_file = keys_dir.join("alice.json");
    let out = cli_ok(&[
        "gov",
        "propose",
        "--title",
        "Audit every receipt",
        "--summary",
        "Raise the audit rate to 100%.",
        "--param",
        "inference.audit_bps=10000",
        "--from",
        alice_file.to_str().unwrap(),
        "--node",
        t.url(0),
    ]);
    assert!(out.contains("proposal 1"), "{out}");
    log(t0, format!("opal gov propose: {}", out.trim()));

    // Three of the four validators vote yes, each through a different node's API.
    for i in 0..3 {
        let node_key = t.validators[i].home.join("node_key.json");
        let out = cli_ok(&[
            "gov",
            "vote",
            "--proposal",
            "1",
            "--option",
            "yes",
            "--from",
            node_key.to_str().unwrap(),
            "--node",
            t.url(i),
        ]);
        log(t0, format!("node{i} votes yes: {}", out.trim()));
    }
    // A dev account without stake cannot vote.
    let (code, _, err) = cli(&[
        "gov",
        "vote",
        "--proposal",
        "1",
        "--option",
        "no",
        "--from",
        keys_dir.join("dave.json").to_str().unwrap(),
        "--node",
        t.url(0),
    ]);
    assert_eq!(code, 2, "{err}");

    // The votes on another node's API (the live tally while voting, the final one after: the
    // status depends on how fast this machine is, the votes do not).
    let p = t.proposal(3, 1);
    assert_eq!(p["votes"], 3, "{p}");
    assert_eq!(p["tally"]["yes"], "3000000000000", "{p}");
    let start = Instant::now();
    while t.proposal(0, 1)["status"] == "voting_period" {
        assert!(
            start.elapsed() < Duration::from_millis(VOTING_MS + 30_000),
            "proposal 1 still open"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let decided = t.proposal(0, 1)["decided_height"].as_u64().unwrap();
    t.wait_heights(&[0, 1, 2, 3], decided + 1, Duration::from_secs(30));
    for i in 0..4 {
        let p = t.proposal(i, 1);
        assert_eq!(p["status"], "passed", "node{i}: {p}");
        assert!(p["execution_error"].is_null(), "{p}");
        let (code, params) = get(t.url(i), "/api/params").unwrap();
        assert_eq!(code, 200);
        let audit = params["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == "inference.audit_bps")
            .unwrap()
            .clone();
        assert_eq!(audit["value"], "10000", "node{i}: {audit}");
        assert_eq!(audit["set_by"], 1, "node{i}: {audit}");
    }
    t.assert_same_block(&[0, 1, 2, 3], decided);
    log(
        t0,
        format!("proposal 1 passed at height {decided} on all four"),
    );

    // The draw of the following blocks uses the new rate.
    let after = receipt(&t, &carol, &bob, 2);
    assert!(
        settle_then_audited(&t, &bob, &after),
        "at audit_bps 10000 every re-executable receipt is audited"
    );
    log(t0, "settled one receipt after the change: audited");

    // A vote after the period is refused with its typed code (the proposer drops it from its
    // block: it no longer applies).
    let node_key = t.validators[3].home.join("node_key.json");
    let (code, out, err) = cli(&[
        "gov",
        "vote",
        "--proposal",
        "1",
        "--option",
        "yes",
        "--from",
        node_key.to_str().unwrap(),
        "--node",
        t.url(3),
        "-o",
        "json",
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("voting_closed"), "{out}");
}
