//! Load generator for the inference path of a running devnet: signed requests to `/api/infer`
//! from several threads, then the time until every receipt is settled on chain.
//!
//! ```sh
//! opal devnet --home /tmp/opal-bench --reset &          # release build recommended
//! cargo run --release -p opal --example infer_load -- /tmp/opal-bench 2000 4
//! ```
//! Arguments: devnet home, number of requests (default 1000), client threads (default 2).
//! Prints one JSON line: latency percentiles (ms, client side, HTTP included), throughput, the
//! node's own compute time, and settlement lag and rate.

use opal_infer::tensors_hash;
use opal_infer::Tensor;
use opal_node::clock::now_ms;
use opal_node::home::KeyFile;
use opal_types::receipt::InferenceRequest;
use opal_types::{Action, Amount, Hash, ModelRef, Tier, TxBody};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn get(http: &reqwest::blocking::Client, url: &str) -> Value {
    http.get(url).send().unwrap().json().unwrap()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let home = std::path::PathBuf::from(args.get(1).expect("usage: infer_load HOME [N] [THREADS]"));
    let n: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(1000);
    let threads: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(2);
    let config = opal_node::Home::new(&home).read_config().unwrap();
    let url = format!("http://{}", config.api_addr);
    let http = reqwest::blocking::Client::new();
    let caller = KeyFile::read(&home.join("keys/dave.json"))
        .unwrap()
        .secret()
        .unwrap();
    let status = get(&http, &format!("{url}/api/status"));
    let chain_id = status["chain_id"].as_str().unwrap().to_string();
    let m = get(&http, &format!("{url}/api/models/digits"));
    let svc = &m["services"][0];
    let node: opal_types::Address = svc["node"].as_str().unwrap().parse().unwrap();
    let price: Amount = Amount(
        m["spec"]["price"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
            + svc["fee"].as_str().unwrap().parse::<u128>().unwrap(),
    );
    let model_hash = Hash::from_hex(m["spec"]["content_hash"].as_str().unwrap()).unwrap();

    // Fund the escrow for all requests in one transaction.
    let acct = get(&http, &format!("{url}/api/accounts/{}", caller.address()));
    let tx = TxBody {
        chain_id: chain_id.clone(),
        nonce: acct["next_nonce"].as_u64().unwrap(),
        fee: serde_json::from_value(status["params"]["min_fee"].clone()).unwrap(),
        action: Action::FundEscrow {
            node,
            amount: Amount(price.0 * n as u128),
        },
    }
    .sign(&caller);
    let r: Value = http
        .post(format!("{url}/api/txs"))
        .json(&json!({"tx": hex::encode(tx.to_bytes())}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let h = r["hash"].as_str().unwrap().to_string();
    loop {
        let s = get(&http, &format!("{url}/api/txs/{h}"));
        if s["status"] == "committed" {
            assert_eq!(s["ok"], true, "funding failed: {s}");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(home.join("demo/digits-input.json")).unwrap(),
    )
    .unwrap();
    let t = Tensor::from_json(input.to_string().as_bytes()).unwrap();
    let input_hash = tensors_hash(std::slice::from_ref(&t));
    // Sign every request up front (untimed).
    let bodies: Vec<(Hash, Value)> = (0..n)
        .map(|i| {
            let sr = InferenceRequest {
                chain_id: chain_id.clone(),
                node,
                model: ModelRef::new("digits", 1),
                model_hash,
                input_hash,
                tier: Tier::Signed,
                max_price: price,
                commercial: false,
                salt: i as u64 ^ now_ms() << 20,
                expires_ms: now_ms() + 300_000,
                escalation: Default::default(),
            }
            .sign(&caller);
            (
                sr.id(),
                json!({"request": hex::encode(opal_types::encode(&sr)), "inputs": [input]}),
            )
        })
        .collect();
    let ids: Vec<Hash> = bodies.iter().map(|(id, _)| *id).collect();

    let start = Instant::now();
    let chunks: Vec<Vec<Value>> = bodies
        .into_iter()
        .map(|(_, b)| b)
        .collect::<Vec<_>>()
        .chunks(n.div_ceil(threads))
        .map(|c| c.to_vec())
        .collect();
    let results: Vec<(Vec<f64>, Vec<f64>)> = std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let url = url.clone();
                s.spawn(move || {
                    let http = reqwest::blocking::Client::new();
                    let mut lat = vec![];
                    let mut compute = vec![];
                    for b in chunk {
                        let t0 = Instant::now();
                        let r = http
                            .post(format!("{url}/api/infer"))
                            .json(&b)
                            .send()
                            .unwrap();
                        assert_eq!(r.status().as_u16(), 200);
                        let v: Value = r.json().unwrap();
                        lat.push(t0.elapsed().as_secs_f64() * 1e3);
                        compute.push(v["compute_ms"].as_f64().unwrap());
                    }
                    (lat, compute)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let served_s = start.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = results.iter().flat_map(|r| r.0.clone()).collect();
    let mut compute: Vec<f64> = results.iter().flat_map(|r| r.1.clone()).collect();
    lat.sort_by(f64::total_cmp);
    compute.sort_by(f64::total_cmp);

    // Settlement: poll the last request's id, then check all.
    let settle_start = Instant::now();
    for id in ids.iter().rev() {
        loop {
            let v = get(&http, &format!("{url}/api/receipts/{id}"));
            if v["settled"] == true {
                break;
            }
            assert!(
                settle_start.elapsed() < Duration::from_secs(600),
                "settlement stalled"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let settle_s = settle_start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "requests": n, "threads": threads,
            "latency_ms": {"p50": pct(&lat, 0.5), "p99": pct(&lat, 0.99), "max": lat[lat.len() - 1]},
            "node_compute_ms": {"p50": pct(&compute, 0.5), "p99": pct(&compute, 0.99)},
            "served_per_s": n as f64 / served_s,
            "all_settled_after_last_reply_s": settle_s,
            "settled_per_s_overall": n as f64 / (served_s + settle_s),
        })
    );
}
