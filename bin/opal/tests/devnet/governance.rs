//! Governance and rewards through the CLI against a real devnet: `opal gov params`, `list`,
//! a proposal with a partial deposit completed by `opal gov deposit`, a vote by the devnet's
//! validator with the live tally in `opal gov show --votes`, refusals with their codes, and
//! the validator's rewards in `opal query rewards` claimed with `opal tx withdraw-rewards`.

use crate::common::*;
use serde_json::Value;

fn run(args: &[&str]) -> (i32, Value, String) {
    let (code, out, err) = cli(args);
    let v = serde_json::from_str(&out).unwrap_or(Value::Null);
    (code, v, format!("{out}{err}"))
}

fn ok(args: &[&str]) -> Value {
    let (code, v, text) = run(args);
    assert_eq!(code, 0, "opal {args:?}: {text}");
    v
}

#[test]
fn propose_deposit_vote_show_and_claim_rewards_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let net = Devnet::start(&home);
    let url = net.url.as_str();
    let key = |name: &str| home.join(format!("keys/{name}.json")).display().to_string();
    let (alice, bob) = (key("alice"), key("bob"));
    let validator = home.join("node_key.json").display().to_string();

    let params = ok(&["gov", "params", "--node", url, "-o", "json"]);
    let audit = params["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "inference.audit_bps")
        .unwrap()
        .clone();
    assert_eq!(
        (audit["min"].as_str(), audit["max"].as_str()),
        (Some("0"), Some("10000"))
    );
    assert!(audit.get("set_by").is_none(), "genesis set it: {audit}");
    let (code, _, text) = run(&["gov", "list", "--node", url]);
    assert_eq!(code, 0);
    assert!(text.contains("no proposals"), "{text}");

    // A quarter of min_deposit: the proposal waits for deposits.
    let gov = ok(&["query", "status", "--node", url, "-o", "json"]);
    assert!(gov["pools"]["rewards"].is_string(), "{gov}");
    let r = ok(&[
        "gov",
        "propose",
        "--from",
        &alice,
        "--title",
        "Cheaper transactions",
        "--summary",
        "Halve the minimum fee.",
        "--param",
        "chain.min_fee=500",
        "--deposit",
        "2500000",
        "--node",
        url,
        "-o",
        "json",
    ]);
    assert_eq!(r["ok"], true, "{r}");
    let p = ok(&["gov", "show", "1", "--node", url, "-o", "json"]);
    assert_eq!(p["status"], "deposit_period", "{p}");
    assert_eq!(p["content"]["kind"], "param_change");
    ok(&[
        "gov",
        "deposit",
        "--from",
        &bob,
        "--proposal",
        "1",
        "--amount",
        "7500000",
        "--node",
        url,
        "-o",
        "json",
    ]);
    let p = ok(&["gov", "show", "1", "--node", url, "-o", "json"]);
    assert_eq!(p["status"], "voting_period", "{p}");
    assert_eq!(p["deposits"].as_array().unwrap().len(), 2, "{p}");

    // The validator votes with its whole stake; the live tally shows it.
    ok(&[
        "gov",
        "vote",
        "--from",
        &validator,
        "--proposal",
        "1",
        "--option",
        "yes",
        "--node",
        url,
        "-o",
        "json",
    ]);
    let p = ok(&["gov", "show", "1", "--votes", "--node", url, "-o", "json"]);
    assert_eq!(p["votes"], 1, "{p}");
    assert_eq!(p["tally"]["yes"], p["tally"]["bonded"], "{p}");
    assert_eq!(p["vote_list"][0]["option"], "yes", "{p}");
    let (code, _, text) = run(&["gov", "list", "--status", "voting_period", "--node", url]);
    assert_eq!(code, 0);
    assert!(text.contains("Cheaper transactions"), "{text}");

    // Refusals: their codes, exit status 2 (refused by the chain) or 1 (bad arguments).
    let (code, v, text) = run(&[
        "gov",
        "propose",
        "--from",
        &alice,
        "--title",
        "Audit beyond everything",
        "--param",
        "inference.audit_bps=20000",
        "--node",
        url,
        "-o",
        "json",
    ]);
    assert_eq!(code, 2, "{text}");
    assert_eq!(v["code"], "param_out_of_bounds", "{v}");
    let (code, v, text) = run(&[
        "gov",
        "vote",
        "--from",
        &alice,
        "--proposal",
        "1",
        "--option",
        "yes",
        "--node",
        url,
        "-o",
        "json",
    ]);
    assert_eq!(code, 2, "{text}");
    assert_eq!(v["code"], "not_staker", "{v}");
    let (code, _, text) = run(&[
        "gov",
        "vote",
        "--from",
        &alice,
        "--proposal",
        "1",
        "--option",
        "maybe",
        "--node",
        url,
    ]);
    // Refused while parsing the arguments (a usage error, as clap exits), before any request.
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no-with-veto"), "{text}");
    let (code, _, text) = run(&["gov", "show", "99", "--node", url]);
    assert_ne!(code, 0);
    assert!(text.contains("no proposal 99"), "{text}");

    // Emission has been paying the validator: claim it.
    let operator = ok(&["query", "validators", "--node", url, "-o", "json"])["validators"][0]
        ["operator"]
        .as_str()
        .unwrap()
        .to_string();
    let r = ok(&["query", "rewards", &operator, "--node", url, "-o", "json"]);
    let owed: u128 = r["withdrawable"].as_str().unwrap().parse().unwrap();
    assert!(owed > 0, "{r}");
    let w = ok(&[
        "tx",
        "withdraw-rewards",
        "--from",
        &validator,
        "--node",
        url,
        "-o",
        "json",
    ]);
    let paid: u128 = w["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "rewards_withdrawn")
        .and_then(|e| e["amount"].as_str())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        paid >= owed,
        "paid {paid}, owed {owed} a few blocks earlier"
    );
    let (code, v, _) = run(&[
        "tx",
        "withdraw-rewards",
        "--from",
        &alice,
        "--node",
        url,
        "-o",
        "json",
    ]);
    assert_eq!(code, 2);
    assert_eq!(v["code"], "no_rewards", "{v}");
}
