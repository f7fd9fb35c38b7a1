//! A blocking client of the Opal node API, used by the CLI, the watcher, the devnet bootstrap,
//! the tests and the benchmarks.
//!
//! Design: typed where the route is typed in `opal-api` ([`Client::status`], [`Client::account`],
//! [`Client::submit`], [`Client::tx`], [`Client::send`], governance: [`Client::params`],
//! [`Client::proposals`], ...); the other routes are reached with
//! [`Client::get`] and [`Client::post_json`] and read as JSON until they are typed. Every failure
//! is a [`ClientError`]: the node unreachable, a reply that is not JSON, or the node's own refusal
//! with its stable `code` ([`ClientError::Refused`]), which callers match on.

use opal_api::{Account, ErrorBody, Status, SubmitTx, TxStatus};
use opal_types::{Action, Address, Amount, Hash, SecretKey, Transaction, TxBody};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::Read;
use std::time::{Duration, Instant};

/// The largest artifact [`Client::get_bytes`] accepts.
pub const MAX_DOWNLOAD: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("node URL {0:?} must start with http:// (for example http://127.0.0.1:8700)")]
    BadUrl(String),
    #[error(
        "cannot reach the node at {base}: {reason}. Is it running? (start one with `opal devnet`)"
    )]
    Unreachable { base: String, reason: String },
    #[error("the node replied {status} to {url} with non-JSON: {body}")]
    NotJson {
        url: String,
        status: u16,
        body: String,
    },
    /// The node answered with an error reply.
    #[error("the node refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{url}: unexpected reply: {reason}")]
    Unexpected { url: String, reason: String },
    #[error("{url}: larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error(
        "transaction {hash} not committed after {secs}s; check later with `opal query tx {hash}`"
    )]
    NotCommitted { hash: Hash, secs: u64 },
}

impl ClientError {
    /// The node's error code, when the node refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How a transaction is sent: the fee (default: the chain's minimum) and whether to wait for
/// its block.
#[derive(Debug, Clone)]
pub struct SendOptions {
    pub fee: Option<Amount>,
    pub wait: Option<Duration>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            fee: None,
            wait: Some(Duration::from_secs(60)),
        }
    }
}

/// What came of a sent transaction.
#[derive(Debug, Clone)]
pub struct Sent {
    pub hash: Hash,
    /// `Pending` when not waited for; otherwise `Committed` or `Dropped`.
    pub status: TxStatus,
    pub fee: Amount,
    pub sender: Address,
}

pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str) -> Result<Client> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(ClientError::BadUrl(base));
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Unreachable {
                base: base.clone(),
                reason: format!("building the HTTP client: {e}"),
            })?;
        Ok(Client { base, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable {
            base: self.base.clone(),
            reason: e.to_string(),
        }
    }

    fn read(
        &self,
        url: &str,
        r: reqwest::Result<reqwest::blocking::Response>,
    ) -> Result<(u16, Value)> {
        let r = r.map_err(|e| self.unreachable(e))?;
        let status = r.status().as_u16();
        let body = self.bounded(url, r, MAX_DOWNLOAD)?;
        let v = serde_json::from_slice(&body).map_err(|_| ClientError::NotJson {
            url: url.to_string(),
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })?;
        Ok((status, v))
    }

    /// A reply's body, refusing more than `limit` bytes whether or not the server announces a
    /// length (a chunked reply of any size is cut off, not buffered).
    fn bounded(&self, url: &str, r: reqwest::blocking::Response, limit: u64) -> Result<Vec<u8>> {
        let too_large = || ClientError::TooLarge {
            url: url.to_string(),
            limit,
        };
        if r.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut b = Vec::new();
        r.take(limit + 1)
            .read_to_end(&mut b)
            .map_err(|e| self.unreachable(e))?;
        if b.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(b)
    }

    /// GET `path` as JSON; an error reply becomes [`ClientError::Refused`].
    pub fn get(&self, path: &str) -> Result<Value> {
        let (status, v) = self.get_raw(path)?;
        if status >= 400 {
            return Err(refused(status, &v));
        }
        Ok(v)
    }

    /// GET `path` as JSON with its HTTP status, error replies included.
    pub fn get_raw(&self, path: &str) -> Result<(u16, Value)> {
        let url = format!("{}{}", self.base, path);
        self.read(&url, self.http.get(&url).send())
    }

    /// GET `path` and decode it as `T`.
    pub fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        decode(&format!("{}{}", self.base, path), self.get(path)?)
    }

    /// GET `path` and decode it as `T`; `None` when the node answers 404 (no such thing).
    pub fn get_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        let (status, v) = self.get_raw(path)?;
        match status {
            404 => Ok(None),
            s if s >= 400 => Err(refused(s, &v)),
            _ => decode(&format!("{}{}", self.base, path), v).map(Some),
        }
    }

    /// GET `path` as raw bytes (an artifact), at most [`MAX_DOWNLOAD`] of them.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        self.get_bytes_at_most(path, MAX_DOWNLOAD)
    }

    /// GET `path` as raw bytes, refusing more than `limit` of them whether or not the server
    /// announces a length.
    pub fn get_bytes_at_most(&self, path: &str, limit: u64) -> Result<Vec<u8>> {
        let url = format!("{}{}", self.base, path);
        let r = self
            .http
            .get(&url)
            .send()
            .map_err(|e| self.unreachable(e))?;
        let status = r.status().as_u16();
        if status >= 400 {
            let text = String::from_utf8_lossy(&self.bounded(&url, r, MAX_DOWNLOAD)?).into_owned();
            let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Err(refused(status, &v));
        }
        self.bounded(&url, r, limit)
    }

    /// POST `body` as JSON to `path`; an error reply becomes [`ClientError::Refused`].
    pub fn post_json(&self, path: &str, body: &impl serde::Serialize) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let (status, v) = self.read(&url, self.http.post(&url).json(body).send())?;
        if status >= 400 {
            return Err(refused(status, &v));
        }
        Ok(v)
    }

    /// `GET /api/status`.
    pub fn status(&self) -> Result<Status> {
        self.get_as("/api/status")
    }

    /// `GET /api/accounts/{address}` at the latest height.
    pub fn account(&self, a: &Address) -> Result<Account> {
        self.get_as(&format!("/api/accounts/{a}"))
    }

    /// `GET /api/state/{key}`: a raw state value (hex key) and its proof, at `height` or the
    /// latest. The proof is the node's: check it (`opal_watcher::light::proven_state`).
    pub fn state(
        &self,
        key_hex: &str,
        height: Option<u64>,
    ) -> Result<opal_api::registry::StateValue> {
        let key = key_hex.trim_start_matches("0x");
        match height {
            Some(h) => self.get_as(&format!("/api/state/{key}?height={h}")),
            None => self.get_as(&format!("/api/state/{key}")),
        }
    }

    /// `GET /api/receipts/{request_id}`, with the settlement record's proof if `prove`.
    pub fn receipt_status(
        &self,
        request_id: &Hash,
        prove: bool,
    ) -> Result<opal_api::registry::ReceiptStatus> {
        self.get_as(&format!("/api/receipts/{request_id}?prove={prove}"))
    }

    /// `GET /api/blocks/{height}`, or `/api/blocks/latest` for `None`.
    pub fn block(&self, height: Option<u64>) -> Result<opal_api::BlockReply> {
        match height {
            Some(h) => self.get_as(&format!("/api/blocks/{h}")),
            None => self.get_as("/api/blocks/latest"),
        }
    }

    /// `GET /api/models/{model}`: a model version (NAME@VERSION, or NAME for the newest) and
    /// the nodes serving it.
    pub fn model(&self, model: &str) -> Result<opal_api::ModelDetail> {
        self.get_as(&format!("/api/models/{model}"))
    }

    /// `GET /api/models/{model}`, `None` if there is no such model (or no such name).
    pub fn model_opt(&self, model: &str) -> Result<Option<opal_api::ModelDetail>> {
        self.get_opt(&format!("/api/models/{model}"))
    }

    /// `GET /api/models`: every registered model version.
    pub fn models(&self) -> Result<opal_api::registry::Models> {
        self.get_as("/api/models")
    }

    /// `GET /api/models/{model}/lineage`.
    pub fn lineage(&self, model: &str) -> Result<opal_api::registry::LineageReply> {
        self.get_as(&format!("/api/models/{model}/lineage"))
    }

    /// `GET /api/datasets/{name}`.
    pub fn dataset(&self, name: &str) -> Result<opal_api::registry::DatasetReply> {
        self.get_as(&format!("/api/datasets/{name}"))
    }

    /// `GET /api/services[?model=M]`.
    pub fn services(&self, model: Option<&str>) -> Result<opal_api::registry::Services> {
        match model {
            Some(m) => self.get_as(&format!("/api/services?model={m}")),
            None => self.get_as("/api/services"),
        }
    }

    /// `GET /api/cases?limit=N`: open verification cases.
    pub fn cases(&self, limit: usize) -> Result<opal_api::registry::Cases> {
        self.get_as(&format!("/api/cases?limit={limit}"))
    }

    /// `GET /api/cases/{request_id}`.
    pub fn case(&self, request_id: &Hash) -> Result<opal_api::registry::CaseReply> {
        self.get_as(&format!("/api/cases/{request_id}"))
    }

    /// `GET /api/zk/keys/{id}`, `None` if no key with that id is published.
    pub fn zk_key(&self, id: &Hash) -> Result<Option<opal_api::registry::ZkKey>> {
        self.get_opt(&format!("/api/zk/keys/{id}"))
    }

    /// `GET /api/escrows/{caller}/{node}`.
    pub fn escrow(&self, caller: &Address, node: &Address) -> Result<opal_api::Escrow> {
        self.get_as(&format!("/api/escrows/{caller}/{node}"))
    }

    /// `GET /api/validators`.
    pub fn validators(&self) -> Result<opal_api::Validators> {
        self.get_as("/api/validators")
    }

    /// `GET /api/params`: every parameter in force with its bounds and the proposal that set it.
    pub fn params(&self) -> Result<opal_api::gov::ParamsInForce> {
        self.get_as("/api/params")
    }

    /// `GET /api/gov`.
    pub fn gov(&self) -> Result<opal_api::gov::GovOverview> {
        self.get_as("/api/gov")
    }

    /// `GET /api/gov/proposals[?status=STATUS]`.
    pub fn proposals(&self, status: Option<&str>) -> Result<opal_api::gov::Proposals> {
        match status {
            Some(s) => self.get_as(&format!("/api/gov/proposals?status={s}")),
            None => self.get_as("/api/gov/proposals"),
        }
    }

    /// `GET /api/gov/proposals/{id}`.
    pub fn proposal(&self, id: u64) -> Result<opal_api::gov::Proposal> {
        self.get_as(&format!("/api/gov/proposals/{id}"))
    }

    /// `GET /api/shares`: every split royalty stream.
    pub fn share_streams(&self) -> Result<opal_api::shares::Streams> {
        self.get_as("/api/shares")
    }

    /// `GET /api/shares/{stream}?after=&limit=`: a stream and one page of its holders.
    pub fn share_stream(
        &self,
        stream: &opal_types::shares::RoyaltyStream,
        after: Option<&Address>,
        limit: Option<usize>,
    ) -> Result<opal_api::shares::StreamReply> {
        let mut q = vec![];
        if let Some(a) = after {
            q.push(format!("after={a}"));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let q = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        self.get_as(&format!("/api/shares/{stream}{q}"))
    }

    /// `GET /api/shares/{stream}/{address}`: one holder's shares and claimable earnings.
    pub fn share_holding(
        &self,
        stream: &opal_types::shares::RoyaltyStream,
        a: &Address,
    ) -> Result<opal_api::shares::HoldingReply> {
        self.get_as(&format!("/api/shares/{stream}/{a}"))
    }

    /// `GET /api/market/{stream}/book`: resting bids and asks, best first.
    pub fn market_book(
        &self,
        stream: &opal_types::shares::RoyaltyStream,
    ) -> Result<opal_api::shares::Book> {
        self.get_as(&format!("/api/market/{stream}/book"))
    }

    /// `GET /api/market/{stream}/trades`: the newest trades.
    pub fn market_trades(
        &self,
        stream: &opal_types::shares::RoyaltyStream,
    ) -> Result<opal_api::shares::Trades> {
        self.get_as(&format!("/api/market/{stream}/trades"))
    }

    /// `GET /api/rewards/{address}`.
    pub fn rewards(&self, a: &Address) -> Result<opal_api::gov::Rewards> {
        self.get_as(&format!("/api/rewards/{a}"))
    }

    /// `GET /api/gov/proposals/{id}/votes`.
    pub fn votes(&self, id: u64) -> Result<opal_api::gov::Votes> {
        self.get_as(&format!("/api/gov/proposals/{id}/votes"))
    }

    pub fn submit(&self, tx: &Transaction) -> Result<Hash> {
        let v = self.post_json(
            "/api/txs",
            &SubmitTx {
                tx: hex::encode(tx.to_bytes()),
            },
        )?;
        let s: TxStatus = decode(&format!("{}/api/txs", self.base), v)?;
        Ok(s.hash())
    }

    /// `GET /api/txs/{hash}`: pending, committed, dropped, or unknown to this node.
    pub fn tx(&self, hash: &Hash) -> Result<TxStatus> {
        let path = format!("/api/txs/{hash}");
        let (status, v) = self.get_raw(&path)?;
        if status >= 500 || (status >= 400 && status != 404) {
            return Err(refused(status, &v));
        }
        decode(&format!("{}{path}", self.base), v)
    }

    /// Poll until `hash` is committed or dropped, for at most `timeout`.
    pub fn wait_committed(&self, hash: &Hash, timeout: Duration) -> Result<TxStatus> {
        let start = Instant::now();
        loop {
            let s = self.tx(hash)?;
            if s.is_final() {
                return Ok(s);
            }
            if start.elapsed() > timeout {
                return Err(ClientError::NotCommitted {
                    hash: *hash,
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sign `action` with the chain's id, the signer's next nonce and the fee, submit it, and
    /// (with `opts.wait`) wait for its block.
    pub fn send(&self, key: &SecretKey, action: Action, opts: &SendOptions) -> Result<Sent> {
        let status = self.status()?;
        let fee = opts.fee.unwrap_or(status.params.min_fee);
        let sender = key.address();
        let nonce = self.account(&sender)?.usable_nonce();
        let tx = TxBody {
            chain_id: status.chain_id,
            nonce,
            fee,
            action,
        }
        .sign(key);
        let hash = self.submit(&tx)?;
        let status = match opts.wait {
            Some(t) => self.wait_committed(&hash, t)?,
            None => TxStatus::Pending { hash },
        };
        Ok(Sent {
            hash,
            status,
            fee,
            sender,
        })
    }
}

fn decode<T: DeserializeOwned>(url: &str, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| ClientError::Unexpected {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// The node's error reply as a [`ClientError::Refused`] (any JSON is accepted: a proxy's page
/// becomes the message).
pub fn refused(status: u16, v: &Value) -> ClientError {
    match serde_json::from_value::<ErrorBody>(v.clone()) {
        Ok(b) => ClientError::Refused {
            status,
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => ClientError::Refused {
            status,
            code: "error".into(),
            message: match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_node_code() {
        let v = serde_json::json!({"error": {"code": "bad_nonce", "message": "wrong nonce"}});
        let e = refused(400, &v);
        assert_eq!(e.code(), Some("bad_nonce"));
        assert_eq!(
            e.to_string(),
            "the node refused (400 bad_nonce): wrong nonce"
        );
        let e = refused(502, &Value::String("bad gateway".into()));
        assert_eq!(e.code(), Some("error"));
        assert!(e.to_string().contains("bad gateway"));
    }

    #[test]
    fn urls_must_be_http() {
        assert!(matches!(
            Client::new("127.0.0.1:8700"),
            Err(ClientError::BadUrl(_))
        ));
        assert_eq!(Client::new("http://x:1/").unwrap().base(), "http://x:1");
    }

    #[test]
    fn a_download_without_a_length_is_still_bounded() {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut req);
            // A chunked reply (no Content-Length) of 4 KiB.
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for _ in 0..4 {
                let _ = s.write_all(b"400\r\n");
                let _ = s.write_all(&[7u8; 1024]);
                let _ = s.write_all(b"\r\n");
            }
            let _ = s.write_all(b"0\r\n\r\n");
        });
        let c = Client::new(&format!("http://{addr}")).unwrap();
        let e = c.get_bytes_at_most("/big", 1024).unwrap_err();
        assert!(
            matches!(e, ClientError::TooLarge { limit: 1024, .. }),
            "{e}"
        );
        server.join().unwrap();
    }

    #[test]
    fn an_unreachable_node_is_a_clear_error() {
        // Port 9 on localhost: nothing listens (discard), the connection is refused at once.
        let e = Client::new("http://127.0.0.1:9")
            .unwrap()
            .status()
            .unwrap_err();
        assert!(matches!(e, ClientError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("Is it running?"));
    }
}
