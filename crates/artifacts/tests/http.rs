//! The artifact API end to end: real axum servers on 127.0.0.1 and the real clients.

use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::routing::get;
use axum::{Json, Router};
use opal_artifacts::{
    fetch, fetch_into_store_async, remote_list, remote_status, router, upload, ArtifactError,
    ArtifactHash, ArtifactInfo, ArtifactStatus, ArtifactStore, FetchTarget, Limits, StatusReply,
};
use serde_json::Value;
use std::cell::RefCell;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// An axum server on its own runtime, stopped (connections and all) on `stop` or drop.
struct Server {
    url: String,
    rt: Option<tokio::runtime::Runtime>,
}

impl Server {
    fn start(app: Router) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        Server {
            url: format!("http://{addr}"),
            rt: Some(rt),
        }
    }

    fn serve(store: Arc<ArtifactStore>) -> Server {
        Server::start(router(store))
    }

    /// Kills the server: the listener and every open connection go away.
    fn stop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Drops every task (and with them the router's handles on the store).
            rt.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn limits(chunk: u64) -> Limits {
    Limits {
        max_artifact_bytes: 8 << 20,
        max_total_bytes: 64 << 20,
        max_chunk_bytes: chunk,
    }
}

fn store_in(dir: &Path, chunk: u64) -> Arc<ArtifactStore> {
    Arc::new(ArtifactStore::open(dir, limits(chunk)).unwrap())
}

use opal_testkit::seed::bytes;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn no_progress() -> impl FnMut(u64, u64) {
    |_, _| {}
}

/// Sends a raw request and returns the status and the JSON body.
fn raw(req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, v)
}

fn error_code(v: &Value) -> &str {
    v.pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[test]
fn multi_chunk_upload_then_list_status_and_download() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir.path().join("node"), 64 * 1024);
    let server = Server::serve(store.clone());
    let data = bytes((1 << 20) + 12_345, 1);
    let file = dir.path().join("model.onnx");
    fs::write(&file, &data).unwrap();

    let mut calls: Vec<(u64, u64)> = Vec::new();
    // Asks for 1 MiB chunks; the node accepts 64 KiB, and the client fits its chunks to that.
    let hash = upload(&server.url, &file, 1 << 20, &mut |d, t| calls.push((d, t))).unwrap();
    assert_eq!(hash, ArtifactHash::of_bytes(&data));
    let total = data.len() as u64;
    assert_eq!(calls.first(), Some(&(0, total)));
    assert_eq!(calls.last(), Some(&(total, total)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0), "{calls:?}");
    assert!(
        calls.len() >= 17,
        "expected one call per 64 KiB chunk, got {}",
        calls.len()
    );
    assert_eq!(fs::read(store.path(&hash)).unwrap(), data);

    // Uploading again sends nothing and reports completion.
    let mut calls = Vec::new();
    upload(&server.url, &file, 1 << 20, &mut |d, t| calls.push((d, t))).unwrap();
    assert_eq!(calls, vec![(total, total)]);

    assert_eq!(
        remote_list(&server.url).unwrap(),
        vec![ArtifactInfo { hash, size: total }]
    );
    let st = remote_status(&format!("{}/", server.url), &hash).unwrap();
    assert_eq!(st.status, ArtifactStatus::Complete { size: total });
    assert_eq!(st.max_chunk_bytes, 64 * 1024);
    let (code, v) =
        raw(reqwest::blocking::Client::new().get(format!("{}/api/artifacts", server.url)));
    assert_eq!(code, 200);
    assert_eq!(v["artifacts"][0]["hash"], hash.to_hex());
    assert_eq!(v["artifacts"][0]["size"], total);

    // A plain download: whole, with its length; and from an offset with `Range`.
    let http = reqwest::blocking::Client::new();
    let resp = http
        .get(format!("{}/api/artifacts/{hash}", server.url))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.content_length(), Some(total));
    assert_eq!(
        resp.headers()["x-opal-blake3"].to_str().unwrap(),
        hash.to_hex()
    );
    assert_eq!(resp.bytes().unwrap().as_ref(), &data[..]);
    let resp = http
        .get(format!("{}/api/artifacts/{hash}", server.url))
        .header("range", "bytes=1000000-")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(
        resp.headers()["content-range"].to_str().unwrap(),
        format!("bytes 1000000-{}/{total}", total - 1)
    );
    assert_eq!(resp.bytes().unwrap().as_ref(), &data[1_000_000..]);

    // And the blocking fetch into a plain file.
    let out = dir.path().join("fetched.onnx");
    let report = fetch(
        std::slice::from_ref(&server.url),
        &hash,
        FetchTarget::Path(&out),
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(
        (report.size, report.peer.as_str()),
        (total, server.url.as_str())
    );
    assert_eq!(fs::read(&out).unwrap(), data);
}

#[test]
fn an_interrupted_upload_resumes_where_the_node_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    let data = bytes(900_000, 2);
    let file = dir.path().join("weights.bin");
    fs::write(&file, &data).unwrap();
    let total = data.len() as u64;

    // The node dies once about a third of the file is in.
    let server = RefCell::new(Server::serve(store_in(&node_dir, 64 * 1024)));
    let url = server.borrow().url.clone();
    let err = upload(&url, &file, 64 * 1024, &mut |done, _| {
        if done >= 300_000 {
            server.borrow_mut().stop();
        }
    })
    .unwrap_err();
    assert_eq!(err.code(), "transport", "{err}");
    drop(server);

    // The node restarts on the same directory: the upload is there, partial.
    let store = store_in(&node_dir, 64 * 1024);
    let hash = ArtifactHash::of_bytes(&data);
    let held = match store.status(&hash).unwrap() {
        ArtifactStatus::Partial { received, size } => {
            assert_eq!(size, total);
            received
        }
        other => panic!("expected a partial upload, got {other:?}"),
    };
    assert!((300_000..total).contains(&held), "{held}");
    assert!(names(&node_dir.join("objects")).is_empty());

    let server = Server::serve(store.clone());
    let mut calls = Vec::new();
    let h = upload(&server.url, &file, 64 * 1024, &mut |d, t| {
        calls.push((d, t))
    })
    .unwrap();
    assert_eq!(h, hash);
    assert_eq!(
        calls.first(),
        Some(&(held, total)),
        "resumed, not restarted"
    );
    assert_eq!(calls.last(), Some(&(total, total)));
    assert_eq!(fs::read(store.path(&hash)).unwrap(), data);
}

#[test]
fn fetch_between_two_nodes_and_onwards() {
    let dir = tempfile::tempdir().unwrap();
    let a = store_in(&dir.path().join("a"), 64 * 1024);
    let b = store_in(&dir.path().join("b"), 32 * 1024);
    let c = store_in(&dir.path().join("c"), 1 << 20);
    let data = bytes(777_777, 3);
    let hash = a.put_bytes(&data).unwrap();
    let server_a = Server::serve(a.clone());
    let server_b = Server::serve(b.clone());

    let mut last = (0, 0);
    let report = fetch(
        std::slice::from_ref(&server_a.url),
        &hash,
        FetchTarget::Store(&b),
        &mut |d, t| last = (d, t),
    )
    .unwrap();
    assert_eq!(report.size, 777_777);
    assert!(report.failures.is_empty());
    assert_eq!(last, (777_777, 777_777));
    assert_eq!(fs::read(b.path(&hash)).unwrap(), data);

    // B now serves it: C fetches from B, the first peer listed that has it.
    let missing_peer = Server::serve(store_in(&dir.path().join("empty"), 1 << 20));
    let report = fetch(
        &[missing_peer.url.clone(), server_b.url.clone()],
        &hash,
        FetchTarget::Store(&c),
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(report.peer, server_b.url);
    assert_eq!(report.failures.len(), 1);
    assert!(
        report.failures[0].contains("not_found"),
        "{:?}",
        report.failures
    );
    assert_eq!(fs::read(c.path(&hash)).unwrap(), data);

    // Fetching what is already held asks nobody.
    let report = fetch(&[], &hash, FetchTarget::Store(&c), &mut no_progress()).unwrap();
    assert_eq!((report.size, report.peer.as_str()), (777_777, ""));

    // The async variant, as a node would call it.
    let d = store_in(&dir.path().join("d"), 64 * 1024);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let report = rt
        .block_on(fetch_into_store_async(
            &http,
            &[missing_peer.url.clone(), server_a.url.clone()],
            &hash,
            d.clone(),
        ))
        .unwrap();
    assert_eq!(report.peer, server_a.url);
    assert_eq!(fs::read(d.path(&hash)).unwrap(), data);
}

#[test]
fn a_peer_serving_wrong_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(500_000, 4);
    // A: its copy rotted on disk (same length, one bit flipped).
    let a = store_in(&dir.path().join("a"), 64 * 1024);
    let hash = a.put_bytes(&data).unwrap();
    let mut rotten = data.clone();
    rotten[123_456] ^= 0x40;
    fs::write(a.path(&hash), &rotten).unwrap();
    let server_a = Server::serve(a);
    // B: a good copy.
    let b = store_in(&dir.path().join("b"), 64 * 1024);
    b.put_bytes(&data).unwrap();
    let server_b = Server::serve(b);

    let c_dir = dir.path().join("c");
    let c = store_in(&c_dir, 64 * 1024);
    let err = fetch(
        std::slice::from_ref(&server_a.url),
        &hash,
        FetchTarget::Store(&c),
        &mut no_progress(),
    )
    .unwrap_err();
    match &err {
        ArtifactError::Unavailable { failures, .. } => {
            assert_eq!(failures.len(), 1);
            assert!(failures[0].contains("hash mismatch"), "{failures:?}");
        }
        other => panic!("expected unavailable, got {other}"),
    }
    assert!(names(&c_dir.join("objects")).is_empty());
    assert!(names(&c_dir.join("partial")).is_empty());
    assert_eq!(c.used_bytes(), 0);

    // Into a plain file: nothing is left behind either.
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("model.bin");
    let err = fetch(
        std::slice::from_ref(&server_a.url),
        &hash,
        FetchTarget::Path(&out),
        &mut no_progress(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "unavailable");
    assert!(names(&out_dir).is_empty());

    // With a good peer after it, the good copy is taken.
    let report = fetch(
        &[server_a.url.clone(), server_b.url.clone()],
        &hash,
        FetchTarget::Store(&c),
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(report.peer, server_b.url);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(fs::read(c.path(&hash)).unwrap(), data);

    // The async fetch refuses it the same way.
    let d = store_in(&dir.path().join("d"), 64 * 1024);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(fetch_into_store_async(
            &reqwest::Client::new(),
            std::slice::from_ref(&server_a.url),
            &hash,
            d.clone(),
        ))
        .unwrap_err();
    assert_eq!(err.code(), "unavailable");
    assert!(d.list().unwrap().is_empty());
    assert!(names(&dir.path().join("d").join("partial")).is_empty());
}

/// A peer that claims to hold `size` bytes of every hash and sends `body` (whatever the range).
fn fake_peer(size: u64, body: Vec<u8>) -> Server {
    let app = Router::new()
        .route(
            "/api/artifacts/{hash}/status",
            get(move |UrlPath(h): UrlPath<String>| async move {
                Json(StatusReply {
                    hash: ArtifactHash::from_hex(&h).unwrap(),
                    status: ArtifactStatus::Complete { size },
                    max_chunk_bytes: 1 << 20,
                })
            }),
        )
        .route(
            "/api/artifacts/{hash}",
            get(move || {
                let body = body.clone();
                async move { body }
            }),
        );
    Server::start(app)
}

#[test]
fn a_download_cut_short_resumes_from_the_next_peer() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(400_000, 5);
    let good = store_in(&dir.path().join("good"), 64 * 1024);
    let hash = good.put_bytes(&data).unwrap();
    let good = Server::serve(good);
    // Sends the right first half, then stops.
    let cut = fake_peer(400_000, data[..200_000].to_vec());
    let c = store_in(&dir.path().join("c"), 64 * 1024);
    let report = fetch(
        &[cut.url.clone(), good.url.clone()],
        &hash,
        FetchTarget::Store(&c),
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(report.peer, good.url);
    assert!(
        report.failures[0].contains("ended after 200000 of 400000"),
        "{:?}",
        report.failures
    );
    assert_eq!(fs::read(c.path(&hash)).unwrap(), data);
}

#[test]
fn a_poisoned_prefix_is_discarded_and_the_good_peer_retried_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(300_000, 6);
    let good = store_in(&dir.path().join("good"), 64 * 1024);
    let hash = good.put_bytes(&data).unwrap();
    let good = Server::serve(good);
    // Sends 100 000 wrong bytes, then stops; the resumed rest from the good peer cannot match.
    let poison = fake_peer(300_000, bytes(100_000, 66));
    for asynchronous in [false, true] {
        let c = store_in(&dir.path().join(format!("c{asynchronous}")), 64 * 1024);
        let peers = [poison.url.clone(), good.url.clone()];
        let report = if asynchronous {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(fetch_into_store_async(
                &reqwest::Client::new(),
                &peers,
                &hash,
                c.clone(),
            ))
            .unwrap()
        } else {
            fetch(&peers, &hash, FetchTarget::Store(&c), &mut no_progress()).unwrap()
        };
        assert_eq!(report.peer, good.url);
        assert_eq!(fs::read(c.path(&hash)).unwrap(), data);
    }
    // A peer lying about the size is refused too.
    let liar = fake_peer(300_001, data.clone());
    let c = store_in(&dir.path().join("liar"), 64 * 1024);
    let err = fetch(
        std::slice::from_ref(&liar.url),
        &hash,
        FetchTarget::Store(&c),
        &mut no_progress(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err}");
    assert!(c.list().unwrap().is_empty());
}

#[test]
fn an_oversized_chunk_is_refused_with_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 64 * 1024);
    let server = Server::serve(store.clone());
    let data = bytes(200_000, 7);
    let hash = ArtifactHash::of_bytes(&data);
    let http = reqwest::blocking::Client::new();
    let (code, v) = raw(http.put(format!("{}/api/artifacts/{hash}?size=200000", server.url)));
    assert_eq!((code, v["state"].as_str()), (200, Some("partial")));
    let (code, v) = raw(http
        .post(format!(
            "{}/api/artifacts/{hash}/chunks?offset=0",
            server.url
        ))
        .body(data[..64 * 1024 + 1].to_vec()));
    assert_eq!(code, 413, "{v}");
    assert_eq!(error_code(&v), "chunk_too_large");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("65537"),
        "{v}"
    );
    assert_eq!(
        store.status(&hash).unwrap(),
        ArtifactStatus::Partial {
            received: 0,
            size: 200_000
        }
    );
}

#[test]
fn the_chunk_limit_wins_over_a_smaller_limit_on_the_merged_router() {
    // The node's own router limits bodies to 64 KiB; mounted in it, chunks may still be larger.
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path(), 256 * 1024);
    // Like the node's: a router with its own state, the artifact routes merged in before it.
    let app = Router::new()
        .route(
            "/api/status",
            get(|State(name): State<Arc<String>>| async move { name.to_string() }),
        )
        .merge(router(store.clone()))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(Arc::new("node".to_string()));
    let server = Server::start(app);
    let status = reqwest::blocking::get(format!("{}/api/status", server.url)).unwrap();
    assert_eq!(status.text().unwrap(), "node");
    let data = bytes(600_000, 8);
    let file = dir.path().join("f.bin");
    fs::write(&file, &data).unwrap();
    let hash = upload(&server.url, &file, 200 * 1024, &mut no_progress()).unwrap();
    assert_eq!(fs::read(store.path(&hash)).unwrap(), data);
}

#[test]
fn http_errors_are_json_with_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(
        dir.path(),
        Limits {
            max_artifact_bytes: 1_000_000,
            max_total_bytes: 1_500_000,
            max_chunk_bytes: 64 * 1024,
        },
    )
    .unwrap();
    let server = Server::serve(Arc::new(store));
    let base = format!("{}/api/artifacts", server.url);
    let http = reqwest::blocking::Client::new();
    let h = ArtifactHash::of_bytes(b"hello");
    let other = ArtifactHash::of_bytes(b"other");

    let cases: Vec<(reqwest::blocking::RequestBuilder, u16, &str)> = vec![
        (http.get(format!("{base}/not-a-hash")), 400, "bad_hash"),
        (
            http.get(format!("{base}/{}", &h.to_hex()[..60])),
            400,
            "bad_hash",
        ),
        (http.get(format!("{base}/{h}")), 404, "not_found"),
        (http.put(format!("{base}/{h}")), 400, "bad_request"),
        (http.put(format!("{base}/{h}?size=-1")), 400, "bad_request"),
        (
            http.put(format!("{base}/{h}?size=1000001")),
            413,
            "too_large",
        ),
        (
            http.post(format!("{base}/{h}/chunks?offset=0"))
                .body("hello"),
            404,
            "unknown_upload",
        ),
        (http.put(format!("{base}/{h}?size=5")), 200, ""),
        (
            http.post(format!("{base}/{h}/chunks")).body("hello"),
            400,
            "bad_request",
        ),
        (
            http.post(format!("{base}/{h}/chunks?offset=3"))
                .body("hello"),
            409,
            "bad_offset",
        ),
        (
            http.post(format!("{base}/{h}/chunks?offset=0"))
                .body("hello!"),
            400,
            "beyond_size",
        ),
        (http.put(format!("{base}/{h}?size=6")), 409, "size_conflict"),
        (
            http.post(format!("{base}/{h}/chunks?offset=0"))
                .body("HELLO"),
            422,
            "hash_mismatch",
        ),
        (http.put(format!("{base}/{other}?size=1000000")), 200, ""),
        (http.put(format!("{base}/{h}?size=600000")), 507, "quota"),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let (got, v) = raw(req);
        assert_eq!(got, status, "case {i}: {v}");
        assert_eq!(error_code(&v), code, "case {i}: {v}");
        if status >= 400 {
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "case {i}"
            );
        }
    }
    // After the mismatch the upload is gone.
    let (_, v) = raw(http.get(format!("{base}/{h}/status")));
    assert_eq!(v["state"], "missing");
    let (_, v) = raw(http.get(format!("{base}/{other}/status")));
    assert_eq!(
        (
            v["state"].as_str(),
            v["received"].as_u64(),
            v["size"].as_u64()
        ),
        (Some("partial"), Some(0), Some(1_000_000))
    );

    // The upload client reports the node's refusal with its code.
    let big = dir.path().join("big.bin");
    fs::write(&big, bytes(1_000_001, 9)).unwrap();
    match upload(&server.url, &big, 64 * 1024, &mut no_progress()).unwrap_err() {
        ArtifactError::Remote { status, code, .. } => {
            assert_eq!((status, code.as_str()), (413, "too_large"))
        }
        other => panic!("expected a remote error, got {other}"),
    }
    assert_eq!(
        upload("localhost:1", &big, 1, &mut no_progress())
            .unwrap_err()
            .code(),
        "bad_request"
    );
}
