//! A small blocking HTTP client for the node API.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::time::Duration;

pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str) -> Result<Client> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("node URL {base:?} must start with http:// (for example http://127.0.0.1:8700)");
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Client { base, http })
    }

    fn handle(
        &self,
        url: &str,
        r: reqwest::Result<reqwest::blocking::Response>,
    ) -> Result<(u16, Value)> {
        let r = r.map_err(|e| anyhow!("cannot reach the node at {}: {e}. Is it running? (start one with `opal devnet`)", self.base))
            .with_context(|| url.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().context("reading the node's reply")?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|_| anyhow!("the node replied {status} with non-JSON: {text}"))?;
        Ok((status, v))
    }

    /// GET `path`; an error reply becomes an error with the node's code and message.
    pub fn get(&self, path: &str) -> Result<Value> {
        let (status, v) = self.get_raw(path)?;
        if status >= 400 {
            bail!("{}", describe_error(status, &v));
        }
        Ok(v)
    }

    pub fn get_raw(&self, path: &str) -> Result<(u16, Value)> {
        let url = format!("{}{}", self.base, path);
        self.handle(&url, self.http.get(&url).send())
    }

    /// GET `path` as raw bytes (an artifact), at most `MAX_DOWNLOAD` of them.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        const MAX_DOWNLOAD: u64 = 256 << 20;
        let url = format!("{}{}", self.base, path);
        let r = self
            .http
            .get(&url)
            .send()
            .map_err(|e| anyhow!("cannot reach the node at {}: {e}", self.base))?;
        let status = r.status().as_u16();
        if status >= 400 {
            let text = r.text().unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            bail!("{}", describe_error(status, &v));
        }
        if r.content_length().is_some_and(|n| n > MAX_DOWNLOAD) {
            bail!("{url}: larger than {MAX_DOWNLOAD} bytes");
        }
        let b = r.bytes().context("reading the download")?;
        Ok(b.to_vec())
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let (status, v) = self.handle(&url, self.http.post(&url).json(body).send())?;
        if status >= 400 {
            bail!("{}", describe_error(status, &v));
        }
        Ok(v)
    }
}

pub fn describe_error(status: u16, v: &Value) -> String {
    let code = v
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let msg = v
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("the node refused ({status} {code}): {msg}")
}
