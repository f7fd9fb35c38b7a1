//! Clients of the artifact HTTP API: a blocking one for the CLI (resumable upload, verified
//! fetch) and an async fetch for a node pulling artifacts from its peers.
//!
//! Nothing a peer says is trusted: fetched bytes are hashed while they stream in and a download
//! whose BLAKE3 hash differs from the one asked for is deleted, and the next peer is tried.

use crate::error::ArtifactError;
use crate::hash::ArtifactHash;
use crate::http::StatusReply;
use crate::store::{copy_hashing, ArtifactInfo, ArtifactStatus, ArtifactStore};
use crate::ListReply;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The largest chunk [`upload`] sends, whatever it is asked for: 64 MiB.
pub const MAX_CLIENT_CHUNK: u64 = 64 << 20;

/// Where [`fetch`] puts an artifact.
pub enum FetchTarget<'a> {
    /// Into a local store (resuming a partial download left by an earlier attempt).
    Store(&'a ArtifactStore),
    /// Into a plain file; it appears (atomically, by rename) only once verified.
    Path(&'a Path),
}

/// What a successful [`fetch`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchReport {
    /// The artifact's size in bytes.
    pub size: u64,
    /// The base URL of the peer that delivered it (empty if it was already in the store).
    pub peer: String,
    /// One line per peer tried before, saying why it failed.
    pub failures: Vec<String>,
}

/// Hashes a local file the way the store addresses it; returns the hash and the size.
pub fn hash_file(path: &Path) -> Result<(ArtifactHash, u64), ArtifactError> {
    let mut f = File::open(path)
        .map_err(|e| ArtifactError::io(format!("opening {}", path.display()), e))?;
    let mut hasher = blake3::Hasher::new();
    let size = copy_hashing(&mut f, None, &mut hasher)
        .map_err(|e| ArtifactError::io(format!("reading {}", path.display()), e))?;
    Ok((hasher.finalize().into(), size))
}

/// Uploads the file at `file_path` to the node at `base_url` (for example
/// `http://127.0.0.1:8700`) and returns its hash.
///
/// Hashes the file, begins the upload (`PUT`), and sends only the chunks the node does not
/// have yet, so calling it again after an interruption resumes where the node stopped. Chunks
/// are at most `chunk_size` bytes, never more than the node accepts nor [`MAX_CLIENT_CHUNK`]. `progress(done, total)`
/// is called with the bytes the node holds, first when the upload (re)starts and after each
/// chunk. A chunk refused for a wrong offset (another uploader got there first) makes it ask the
/// node where it stands and carry on from there.
pub fn upload(
    base_url: &str,
    file_path: &Path,
    chunk_size: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ArtifactHash, ArtifactError> {
    let base = normalize(base_url)?;
    let (hash, size) = hash_file(file_path)?;
    let http = blocking_client()?;
    let mut file = File::open(file_path)
        .map_err(|e| ArtifactError::io(format!("opening {}", file_path.display()), e))?;
    let begin_url = format!("{base}/api/artifacts/{hash}?size={size}");
    let mut reply: StatusReply = send_json(&begin_url, http.put(&begin_url))?;
    // Also bounded here: the buffer is allocated at this size.
    let chunk = chunk_size
        .clamp(1, MAX_CLIENT_CHUNK)
        .min(reply.max_chunk_bytes.max(1));
    let mut buf = vec![0u8; usize::try_from(chunk).unwrap_or(usize::MAX)];
    // Rounds in a row in which the node's count did not advance; guards against a loop.
    let mut stalls = 0u32;
    let mut last_received = None;
    loop {
        let received = match reply.status {
            ArtifactStatus::Complete { .. } => {
                progress(size, size);
                return Ok(hash);
            }
            ArtifactStatus::Missing => None,
            ArtifactStatus::Partial { received, .. } => Some(received),
        };
        if received.is_some() && received == last_received {
            stalls += 1;
        } else {
            stalls = 0;
        }
        if stalls > 3 {
            return Err(ArtifactError::Transport {
                url: base.clone(),
                message: format!("the upload of {hash} makes no progress ({reply:?})"),
            });
        }
        last_received = received;
        let Some(received) = received.filter(|r| *r < size) else {
            // Discarded by the node, or all bytes are in but not finalised (a restart in
            // between): beginning again resumes or settles it.
            reply = send_json(&begin_url, http.put(&begin_url))?;
            if matches!(reply.status, ArtifactStatus::Missing) {
                stalls += 1;
            }
            continue;
        };
        progress(received, size);
        let n = usize::try_from((size - received).min(chunk)).unwrap_or(buf.len());
        file.seek(SeekFrom::Start(received))
            .and_then(|_| file.read_exact(&mut buf[..n]))
            .map_err(|e| ArtifactError::io(format!("reading {}", file_path.display()), e))?;
        let url = format!("{base}/api/artifacts/{hash}/chunks?offset={received}");
        let req = http
            .post(&url)
            .header("content-type", "application/octet-stream")
            .body(buf[..n].to_vec());
        reply = match send_json::<StatusReply>(&url, req) {
            Ok(r) => r,
            Err(ArtifactError::Remote { code, .. }) if code == "bad_offset" => {
                let url = format!("{base}/api/artifacts/{hash}/status");
                send_json(&url, http.get(&url))?
            }
            Err(e) => return Err(e),
        };
    }
}

/// Asks the node at `base_url` where the artifact `hash` stands.
pub fn remote_status(base_url: &str, hash: &ArtifactHash) -> Result<StatusReply, ArtifactError> {
    let base = normalize(base_url)?;
    let url = format!("{base}/api/artifacts/{hash}/status");
    send_json(&url, blocking_client()?.get(&url))
}

/// Lists the complete artifacts of the node at `base_url`.
pub fn remote_list(base_url: &str) -> Result<Vec<ArtifactInfo>, ArtifactError> {
    let base = normalize(base_url)?;
    let url = format!("{base}/api/artifacts");
    let reply: ListReply = send_json(&url, blocking_client()?.get(&url))?;
    Ok(reply.artifacts)
}

/// Downloads the artifact `hash` from the first of `base_urls` that delivers it with the right
/// hash, into `target`.
///
/// Peers are tried in order. Each download is hashed while it streams; a peer whose bytes do
/// not hash to `hash` is refused, its bytes deleted, and the next peer tried (a resumed partial
/// download that fails the check is restarted from zero once with the same peer, in case an
/// earlier peer planted the bad prefix). `progress(done, total)` follows the bytes held.
/// Fails with [`ArtifactError::Unavailable`] listing every peer's failure, or at once on a
/// local I/O error.
pub fn fetch(
    base_urls: &[String],
    hash: &ArtifactHash,
    target: FetchTarget<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<FetchReport, ArtifactError> {
    if let FetchTarget::Store(store) = &target {
        if let Some(size) = store.size(hash)? {
            progress(size, size);
            return Ok(FetchReport {
                size,
                peer: String::new(),
                failures: Vec::new(),
            });
        }
    }
    let http = blocking_client()?;
    let mut failures = Vec::new();
    for peer in base_urls {
        let result = normalize(peer).and_then(|base| match &target {
            FetchTarget::Store(store) => {
                let mut r = fetch_one_into_store(&http, &base, hash, store, progress);
                if let Err(Retry::FromZero(e)) = r {
                    tracing::info!(%peer, error = %e, "restarting a resumed download from zero");
                    r = fetch_one_into_store(&http, &base, hash, store, progress);
                }
                r.map_err(Retry::into_inner)
            }
            FetchTarget::Path(dest) => fetch_one_to_path(&http, &base, hash, dest, progress),
        });
        if let Some(done) = after_attempt(result, peer, hash, &mut failures) {
            return done;
        }
    }
    Err(ArtifactError::Unavailable {
        hash: *hash,
        failures,
    })
}

/// A failed attempt at one peer; `FromZero` when a resumed download failed its hash check and
/// deserves a second, complete try with the same peer.
enum Retry {
    Fail(ArtifactError),
    FromZero(ArtifactError),
}

impl Retry {
    fn into_inner(self) -> ArtifactError {
        match self {
            Retry::Fail(e) | Retry::FromZero(e) => e,
        }
    }
}

impl From<ArtifactError> for Retry {
    fn from(e: ArtifactError) -> Self {
        Retry::Fail(e)
    }
}

/// Begins (or resumes) the local upload for a download of `size` bytes; a partial upload with
/// another size (planted by a lying peer) is discarded first. Returns the offset to fetch from,
/// or `None` when the artifact is already complete.
fn begin_local(
    store: &ArtifactStore,
    hash: &ArtifactHash,
    size: u64,
) -> Result<Option<u64>, ArtifactError> {
    let status = match store.begin(hash, size) {
        Err(ArtifactError::SizeConflict { .. }) if !store.has(hash) => {
            store.abort(hash)?;
            store.begin(hash, size)?
        }
        r => r?,
    };
    Ok(match status {
        ArtifactStatus::Complete { .. } => None,
        ArtifactStatus::Partial { received, .. } => Some(received),
        ArtifactStatus::Missing => Some(0),
    })
}

/// The size a peer announces for a complete artifact, or why it cannot serve it.
fn announced_size(peer: &str, reply: &StatusReply) -> Result<u64, ArtifactError> {
    match reply.status {
        ArtifactStatus::Complete { size } => Ok(size),
        _ => Err(ArtifactError::Remote {
            url: peer.to_string(),
            status: 404,
            code: "not_found".into(),
            message: format!("the peer does not hold {} complete", reply.hash),
        }),
    }
}

/// Where a download body starts: `offset` for a 206 reply that names it, else 0.
fn body_start(status: u16, content_range: Option<&str>, offset: u64) -> u64 {
    let named = content_range
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.parse::<u64>().ok());
    if status == 206 && named == Some(offset) {
        offset
    } else {
        0
    }
}

fn fetch_one_into_store(
    http: &reqwest::blocking::Client,
    base: &str,
    hash: &ArtifactHash,
    store: &ArtifactStore,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, Retry> {
    let url = format!("{base}/api/artifacts/{hash}/status");
    let size = announced_size(base, &send_json(&url, http.get(&url))?)?;
    let Some(offset) = begin_local(store, hash, size)? else {
        progress(size, size);
        return Ok(size);
    };
    let url = format!("{base}/api/artifacts/{hash}");
    let mut req = http.get(&url);
    if offset > 0 {
        req = req.header("range", format!("bytes={offset}-"));
    }
    let mut resp = send(&url, req)?;
    let content_range = resp
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut at = body_start(resp.status().as_u16(), content_range.as_deref(), offset);
    let piece = store.limits().max_chunk_bytes.clamp(1, 1 << 20);
    let mut buf = vec![0u8; usize::try_from(piece).unwrap_or(1 << 20)];
    let resumed = offset > 0;
    // The whole body was sent although part of it is held: skip that part.
    while at < offset {
        let want = usize::try_from((offset - at).min(piece)).unwrap_or(buf.len());
        let n = read_full(&mut resp, &mut buf[..want]).map_err(|e| transport(&url, e))?;
        if n == 0 {
            return Err(short_body(&url, at, size).into());
        }
        at += n as u64;
    }
    progress(at, size);
    loop {
        let want = usize::try_from((size - at).min(piece)).unwrap_or(buf.len());
        let n = read_full(&mut resp, &mut buf[..want]).map_err(|e| transport(&url, e))?;
        if n == 0 && at < size {
            return Err(short_body(&url, at, size).into());
        }
        match store.write_chunk(hash, at, &buf[..n]) {
            Ok(ArtifactStatus::Complete { size }) => {
                progress(size, size);
                return Ok(size);
            }
            Ok(_) => {}
            Err(e @ ArtifactError::HashMismatch { .. }) if resumed => {
                return Err(Retry::FromZero(e))
            }
            Err(e) => return Err(e.into()),
        }
        at += n as u64;
        progress(at, size);
    }
}

fn fetch_one_to_path(
    http: &reqwest::blocking::Client,
    base: &str,
    hash: &ArtifactHash,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, ArtifactError> {
    let url = format!("{base}/api/artifacts/{hash}/status");
    let size = announced_size(base, &send_json(&url, http.get(&url))?)?;
    let url = format!("{base}/api/artifacts/{hash}");
    let mut resp = send(&url, http.get(&url))?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| ArtifactError::io(format!("creating a file in {}", dir.display()), e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    progress(0, size);
    loop {
        let n = match resp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(transport(&url, e)),
        };
        at += n as u64;
        if at > size {
            return Err(ArtifactError::Remote {
                url,
                status: 200,
                code: "beyond_size".into(),
                message: format!("the peer sent more than the {size} bytes it announced"),
            });
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| ArtifactError::io(format!("writing into {}", dir.display()), e))?;
        progress(at, size);
    }
    if at < size {
        return Err(short_body(&url, at, size));
    }
    let actual = ArtifactHash::from(hasher.finalize());
    if actual != *hash {
        // Dropping `tmp` deletes the refused bytes.
        return Err(ArtifactError::HashMismatch {
            expected: *hash,
            actual,
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| ArtifactError::io(format!("syncing a download into {}", dir.display()), e))?;
    tmp.persist(dest)
        .map_err(|e| ArtifactError::io(format!("renaming into {}", dest.display()), e.error))?;
    Ok(size)
}

/// Async fetch for a node pulling an artifact from its peers into its own store.
///
/// Same contract as [`fetch`] into a [`FetchTarget::Store`]: peers tried in order, bytes hashed
/// as they arrive (by the store), a mismatching download deleted and the next peer tried, a
/// partial download resumed with `Range`. Store operations run on the blocking thread pool.
pub async fn fetch_into_store_async(
    http: &reqwest::Client,
    base_urls: &[String],
    hash: &ArtifactHash,
    store: Arc<ArtifactStore>,
) -> Result<FetchReport, ArtifactError> {
    let h = *hash;
    let s = store.clone();
    if let Some(size) = run_blocking(move || s.size(&h)).await? {
        return Ok(FetchReport {
            size,
            peer: String::new(),
            failures: Vec::new(),
        });
    }
    let mut failures = Vec::new();
    for peer in base_urls {
        let mut result = fetch_one_async(http, peer, hash, &store).await;
        if let Err(Retry::FromZero(e)) = result {
            tracing::info!(%peer, error = %e, "restarting a resumed download from zero");
            result = fetch_one_async(http, peer, hash, &store).await;
        }
        if let Some(done) =
            after_attempt(result.map_err(Retry::into_inner), peer, hash, &mut failures)
        {
            return done;
        }
    }
    Err(ArtifactError::Unavailable {
        hash: *hash,
        failures,
    })
}

/// What one peer's attempt means for the walk over peers: done (the report, with the earlier
/// peers' failures), a local I/O error (stop: no other peer would help), or `None`: the
/// failure is noted and the next peer is tried.
fn after_attempt(
    result: Result<u64, ArtifactError>,
    peer: &str,
    hash: &ArtifactHash,
    failures: &mut Vec<String>,
) -> Option<Result<FetchReport, ArtifactError>> {
    match result {
        Ok(size) => Some(Ok(FetchReport {
            size,
            peer: peer.to_string(),
            failures: std::mem::take(failures),
        })),
        Err(e @ ArtifactError::Io { .. }) => Some(Err(e)),
        Err(e) => {
            tracing::info!(%peer, %hash, error = %e, "peer did not deliver the artifact");
            failures.push(format!("{peer}: {e}"));
            None
        }
    }
}

async fn fetch_one_async(
    http: &reqwest::Client,
    peer: &str,
    hash: &ArtifactHash,
    store: &Arc<ArtifactStore>,
) -> Result<u64, Retry> {
    let base = normalize(peer)?;
    let url = format!("{base}/api/artifacts/{hash}/status");
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| transport(&url, e))?;
    let code = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| transport(&url, e))?;
    let size = announced_size(&base, &decode_reply(&url, code, &text)?)?;

    let (h, s) = (*hash, store.clone());
    let Some(offset) = run_blocking(move || begin_local(&s, &h, size)).await? else {
        return Ok(size);
    };
    let url = format!("{base}/api/artifacts/{hash}");
    let mut req = http.get(&url);
    if offset > 0 {
        req = req.header("range", format!("bytes={offset}-"));
    }
    let mut resp = req.send().await.map_err(|e| transport(&url, e))?;
    let code = resp.status().as_u16();
    if code >= 400 {
        let text = resp.text().await.map_err(|e| transport(&url, e))?;
        return Err(decode_reply::<StatusReply>(&url, code, &text)
            .err()
            .unwrap_or_else(|| short_body(&url, 0, size))
            .into());
    }
    let content_range = resp
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut at = body_start(code, content_range.as_deref(), offset);
    let resumed = offset > 0;
    let piece =
        usize::try_from(store.limits().max_chunk_bytes.clamp(1, 1 << 20)).unwrap_or(1 << 20);
    let mut pending: Vec<u8> = Vec::with_capacity(piece);
    loop {
        let next = resp.chunk().await.map_err(|e| transport(&url, e))?;
        let eof = next.is_none();
        let mut data: &[u8] = next.as_deref().unwrap_or(&[]);
        // Skip what is already held when the peer sent the whole body.
        if at < offset {
            let skip = usize::try_from(offset - at)
                .unwrap_or(usize::MAX)
                .min(data.len());
            data = &data[skip..];
            at += skip as u64;
        }
        pending.extend_from_slice(data);
        while pending.len() >= piece || (eof && !pending.is_empty()) {
            let take = pending.len().min(piece);
            let part: Vec<u8> = pending.drain(..take).collect();
            let (h, s, pos) = (*hash, store.clone(), at);
            let status = run_blocking(move || s.write_chunk(&h, pos, &part)).await;
            match status {
                Ok(ArtifactStatus::Complete { size }) => return Ok(size),
                Ok(_) => at += take as u64,
                Err(e @ ArtifactError::HashMismatch { .. }) if resumed => {
                    return Err(Retry::FromZero(e))
                }
                Err(e) => return Err(e.into()),
            }
        }
        if eof {
            return Err(short_body(&url, at, size).into());
        }
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArtifactError> + Send + 'static,
) -> Result<T, ArtifactError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ArtifactError::io("running a storage task", io::Error::other(e.to_string())))?
}

fn blocking_client() -> Result<reqwest::blocking::Client, ArtifactError> {
    reqwest::blocking::Client::builder()
        // Artifacts can be gigabytes: no limit on the whole transfer, only on connecting.
        .timeout(None)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ArtifactError::Transport {
            url: String::new(),
            message: format!("building the HTTP client: {e}"),
        })
}

fn normalize(base_url: &str) -> Result<String, ArtifactError> {
    let base = base_url.trim().trim_end_matches('/');
    if !base.starts_with("http://") && !base.starts_with("https://") {
        return Err(ArtifactError::BadRequest {
            message: format!("node URL {base_url:?} must start with http:// or https://"),
        });
    }
    Ok(base.to_string())
}

fn transport(url: &str, e: impl std::fmt::Display) -> ArtifactError {
    ArtifactError::Transport {
        url: url.to_string(),
        message: e.to_string(),
    }
}

fn short_body(url: &str, got: u64, size: u64) -> ArtifactError {
    ArtifactError::Transport {
        url: url.to_string(),
        message: format!("the download ended after {got} of {size} bytes"),
    }
}

/// Sends a request; an error reply (status 400 and up) becomes [`ArtifactError::Remote`].
fn send(
    url: &str,
    req: reqwest::blocking::RequestBuilder,
) -> Result<reqwest::blocking::Response, ArtifactError> {
    let resp = req.send().map_err(|e| transport(url, e))?;
    let code = resp.status().as_u16();
    if code >= 400 {
        let text = resp.text().map_err(|e| transport(url, e))?;
        return Err(remote_error(url, code, &text));
    }
    Ok(resp)
}

fn send_json<T: DeserializeOwned>(
    url: &str,
    req: reqwest::blocking::RequestBuilder,
) -> Result<T, ArtifactError> {
    let resp = req.send().map_err(|e| transport(url, e))?;
    let code = resp.status().as_u16();
    let text = resp.text().map_err(|e| transport(url, e))?;
    decode_reply(url, code, &text)
}

fn decode_reply<T: DeserializeOwned>(url: &str, code: u16, text: &str) -> Result<T, ArtifactError> {
    if code >= 400 {
        return Err(remote_error(url, code, text));
    }
    serde_json::from_str(text).map_err(|e| ArtifactError::Remote {
        url: url.to_string(),
        status: code,
        code: "bad_reply".into(),
        message: format!("unexpected reply ({e}): {}", clip(text)),
    })
}

fn remote_error(url: &str, status: u16, text: &str) -> ArtifactError {
    let v: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let field = |name: &str| {
        v.as_ref()
            .and_then(|v| v.pointer(&format!("/error/{name}")))
            .and_then(|s| s.as_str())
            .map(str::to_string)
    };
    ArtifactError::Remote {
        url: url.to_string(),
        status,
        code: field("code").unwrap_or_else(|| "http".into()),
        message: field("message").unwrap_or_else(|| clip(text)),
    }
}

fn clip(text: &str) -> String {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
