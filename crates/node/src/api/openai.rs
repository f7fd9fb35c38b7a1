//! The OpenAI-compatible API of an inference node that serves GGUF models: `GET /v1/models`,
//! `GET /v1/models/{model}`, `POST /v1/chat/completions`, `POST /v1/completions`, streamed
//! (server-sent events, `data: [DONE]` last) or not. The API key (`Authorization: Bearer ...`)
//! is an Opal spend grant; every reply carries the Opal receipt: the JSON field `opal_receipt`
//! (in the last chunk before `[DONE]` when streaming) and the header `x-opal-receipt` (the
//! request id). Errors are OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
//! See `opal_worker::llm` for admission, pricing and hashing, and docs/api.md for the details.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opal_api::openai::{Choice, Completion, ModelList, ModelObject, OpalModel, Usage};
use opal_llm::ChatMessage;
use opal_types::{Escalation, Tier};
use opal_worker::llm::{Ask, LlmServeError, LlmServed, LlmService, Prepared, Prompt, MAX_STOP};
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest request body.
pub const MAX_BODY: usize = 1 << 20;

type Svc = State<Option<Arc<LlmService>>>;

/// An OpenAI error reply.
fn error_response(e: LlmServeError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = (status, Json(e.body())).into_response();
    // Payment refusals are final: tell OpenAI clients not to retry them.
    if e.status == 429 {
        r.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("false"));
    }
    r
}

fn reply<T: serde::Serialize>(r: Result<Json<T>, LlmServeError>) -> Response {
    r.map(IntoResponse::into_response)
        .unwrap_or_else(error_response)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn service(svc: Option<Arc<LlmService>>) -> Result<Arc<LlmService>, LlmServeError> {
    svc.ok_or_else(|| LlmServeError {
        status: 404,
        kind: "invalid_request_error",
        code: Some("llm_disabled".into()),
        param: None,
        message: "This node does not serve LLMs (it runs no inference service).".into(),
    })
}

fn bearer(headers: &HeaderMap) -> Result<String, LlmServeError> {
    let h = headers
        .get("authorization")
        .ok_or_else(|| {
            LlmServeError::auth("You didn't provide an API key. Send `Authorization: Bearer <key>` with an Opal spend grant (`opal llm key`).")
        })?
        .to_str()
        .map_err(|_| LlmServeError::auth("The Authorization header is not valid text."))?;
    let key = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .ok_or_else(|| LlmServeError::auth("The Authorization header must be `Bearer <key>`."))?;
    Ok(key.trim().to_string())
}

fn model_object(m: &opal_worker::llm::OfferedModel, svc: &LlmService) -> ModelObject {
    ModelObject {
        id: m.id.clone(),
        object: "model".into(),
        created: 0,
        owned_by: m.owner.map(|o| o.to_string()).unwrap_or_default(),
        opal: OpalModel {
            model: m.model.clone(),
            content_hash: m.content_hash,
            tiers: m.tiers.clone(),
            unit_price: m.unit_price,
            registered_height: m.registered_height,
            node: svc.node(),
            context_length: svc.context_length(&m.content_hash),
        },
    }
}

/// `GET /v1/models`: the GGUF models this node offers. Needs no key.
pub async fn models(State(svc): Svc) -> Response {
    reply(list_models(svc).await)
}

async fn list_models(svc: Option<Arc<LlmService>>) -> Result<Json<ModelList>, LlmServeError> {
    let svc = service(svc)?;
    let s = svc.clone();
    let list = tokio::task::spawn_blocking(move || s.offered())
        .await
        .map_err(|e| LlmServeError::internal(e.to_string()))??;
    Ok(Json(ModelList::new(
        list.iter().map(|m| model_object(m, &svc)).collect(),
    )))
}

/// `GET /v1/models/{model}`.
pub async fn model(State(svc): Svc, Path(id): Path<String>) -> Response {
    reply(one_model(svc, id).await)
}

async fn one_model(
    svc: Option<Arc<LlmService>>,
    id: String,
) -> Result<Json<ModelObject>, LlmServeError> {
    let svc = service(svc)?;
    let s = svc.clone();
    let list = tokio::task::spawn_blocking(move || s.offered())
        .await
        .map_err(|e| LlmServeError::internal(e.to_string()))??;
    let m = list
        .iter()
        .find(|m| m.id == id || m.model.to_string() == id)
        .ok_or_else(|| LlmServeError::model_not_found(&id))?;
    Ok(Json(model_object(m, &svc)))
}

// ---- request parsing: every refusal names the parameter, as OpenAI does -------------------

fn invalid_type(param: &str, want: &str) -> LlmServeError {
    LlmServeError::invalid(
        Some(param),
        Some("invalid_type"),
        format!("Invalid type for '{param}': expected {want}."),
    )
}

fn missing(param: &str) -> LlmServeError {
    LlmServeError::invalid(
        Some(param),
        Some("missing_required_parameter"),
        format!("Missing required parameter: '{param}'."),
    )
}

fn unsupported(param: &str, what: &str) -> LlmServeError {
    LlmServeError::invalid(
        Some(param),
        Some("unsupported_parameter"),
        format!("Unsupported parameter: '{param}' {what} is not supported by this server."),
    )
}

fn opt_f64(
    b: &Map<String, Value>,
    k: &str,
    lo: f64,
    hi: f64,
) -> Result<Option<f64>, LlmServeError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let x = v.as_f64().ok_or_else(|| invalid_type(k, "a number"))?;
            if !x.is_finite() || x < lo || x > hi {
                return Err(LlmServeError::invalid(
                    Some(k),
                    Some(if x < lo {
                        "decimal_below_min_value"
                    } else {
                        "decimal_above_max_value"
                    }),
                    format!("Invalid '{k}': expected a value between {lo} and {hi}, but got {x} instead."),
                ));
            }
            Ok(Some(x))
        }
    }
}

fn opt_bool(b: &Map<String, Value>, k: &str) -> Result<Option<bool>, LlmServeError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(x)) => Ok(Some(*x)),
        Some(_) => Err(invalid_type(k, "a boolean")),
    }
}

fn opt_int(b: &Map<String, Value>, k: &str) -> Result<Option<i64>, LlmServeError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_u64().map(|u| u as i64))
            .map(Some)
            .ok_or_else(|| invalid_type(k, "an integer")),
    }
}

/// `max_tokens` (or `max_completion_tokens`): a positive integer.
/// Opal extensions: `opal_audit_bps` (0-10000: the chance, in basis points, that the receipt
/// is audited by the validators; above the chain's base rate the caller pays the expected
/// extra audit cost) and `opal_dispute` (hold the payment for the challenge window so the
/// result can be disputed). Both need `opal_tier: "activations"`, checked at admission.
fn escalation(b: &Map<String, Value>) -> Result<Escalation, LlmServeError> {
    let audit_bps = match b.get("opal_audit_bps") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64() {
            Some(x) if (0..=10_000).contains(&x) => x as u32,
            Some(x) => {
                return Err(LlmServeError::invalid(
                    Some("opal_audit_bps"),
                    Some("invalid_value"),
                    format!("Invalid 'opal_audit_bps': expected 0 to 10000 basis points, got {x}."),
                ))
            }
            None => return Err(invalid_type("opal_audit_bps", "an integer")),
        },
    };
    Ok(Escalation {
        audit_bps,
        dispute: opt_bool(b, "opal_dispute")?.unwrap_or(false),
    })
}

fn max_tokens(b: &Map<String, Value>) -> Result<Option<u32>, LlmServeError> {
    for k in ["max_completion_tokens", "max_tokens"] {
        if let Some(n) = opt_int(b, k)? {
            if n < 1 {
                return Err(LlmServeError::invalid(
                    Some(k),
                    Some("integer_below_min_value"),
                    format!("Invalid '{k}': integer below minimum value. Expected a value >= 1, but got {n} instead."),
                ));
            }
            return Ok(Some(n.min(u32::MAX as i64) as u32));
        }
    }
    Ok(None)
}

struct Parsed {
    ask: Ask,
    stream: bool,
    include_usage: bool,
}

/// The parameters shared by chat and text completions.
fn common(b: &Map<String, Value>, prompt: Prompt) -> Result<Parsed, LlmServeError> {
    let model = match b.get("model") {
        None | Some(Value::Null) => return Err(missing("model")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(invalid_type("model", "a non-empty string")),
    };
    if let Some(n) = opt_int(b, "n")? {
        if n != 1 {
            return Err(unsupported("n", "other than 1"));
        }
    }
    for k in ["presence_penalty", "frequency_penalty"] {
        if let Some(x) = opt_f64(b, k, -2.0, 2.0)? {
            if x != 0.0 {
                return Err(unsupported(k, "other than 0 (use `repetition_penalty`)"));
            }
        }
    }
    if matches!(b.get("logit_bias"), Some(Value::Object(m)) if !m.is_empty()) {
        return Err(unsupported("logit_bias", ""));
    }
    let stop = match b.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid_type("stop", "a string or an array of strings"))?,
        Some(_) => return Err(invalid_type("stop", "a string or an array of strings")),
    };
    if stop.len() > MAX_STOP || stop.iter().any(|s| s.is_empty()) {
        return Err(LlmServeError::invalid(
            Some("stop"),
            Some("invalid_value"),
            format!("Invalid 'stop': at most {MAX_STOP} non-empty strings."),
        ));
    }
    let seed = opt_int(b, "seed")?.map(|s| s as u64);
    let top_k = match opt_int(b, "top_k")? {
        None => 0,
        Some(k) if k < 0 => {
            return Err(LlmServeError::invalid(
                Some("top_k"),
                Some("integer_below_min_value"),
                format!("Invalid 'top_k': expected a value >= 0, but got {k} instead."),
            ))
        }
        Some(k) => k.min(u32::MAX as i64) as u32,
    };
    let tier = match b.get("opal_tier") {
        None | Some(Value::Null) => Tier::Signed,
        Some(Value::String(s)) => s.parse().map_err(|e: String| {
            LlmServeError::invalid(Some("opal_tier"), Some("invalid_value"), e)
        })?,
        Some(_) => return Err(invalid_type("opal_tier", "a string")),
    };
    let stream = opt_bool(b, "stream")?.unwrap_or(false);
    let include_usage = match b.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => opt_bool(o, "include_usage")?.unwrap_or(false),
        Some(_) => return Err(invalid_type("stream_options", "an object")),
    };
    Ok(Parsed {
        ask: Ask {
            model,
            prompt,
            max_tokens: max_tokens(b)?,
            temperature: opt_f64(b, "temperature", 0.0, 2.0)?.unwrap_or(1.0),
            top_p: match opt_f64(b, "top_p", 0.0, 1.0)? {
                Some(x) if x <= 0.0 => {
                    return Err(LlmServeError::invalid(
                        Some("top_p"),
                        Some("decimal_below_min_value"),
                        "Invalid 'top_p': this server needs a value above 0 (use temperature 0 for greedy decoding).",
                    ))
                }
                x => x.unwrap_or(1.0),
            },
            top_k,
            repetition_penalty: opt_f64(b, "repetition_penalty", 0.01, 10.0)?.unwrap_or(1.0),
            seed,
            stop,
            tier,
            commercial: opt_bool(b, "opal_commercial")?.unwrap_or(false),
            escalation: escalation(b)?,
        },
        stream,
        include_usage,
    })
}

fn body_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, LlmServeError> {
    let body = body.map_err(|r| LlmServeError {
        status: r.status().as_u16(),
        kind: "invalid_request_error",
        code: Some(if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large".into()
        } else {
            "bad_body".into()
        }),
        param: None,
        message: r.body_text(),
    })?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(LlmServeError::invalid(
            None,
            None,
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(LlmServeError::invalid(
            None,
            None,
            format!("We could not parse the JSON body of your request: {e}"),
        )),
    }
}

/// The text of a message's `content`: a string, or an array of `{"type": "text", "text"}`.
fn content_text(v: &Value, param: &str) -> Result<String, LlmServeError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                let pp = format!("{param}[{j}]");
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => out.push_str(t),
                    (Some("text"), _) => {
                        return Err(invalid_type(&format!("{pp}.text"), "a string"))
                    }
                    (Some(other), _) => {
                        return Err(unsupported(&format!("{pp}.type"), &format!("`{other}`")))
                    }
                    (None, _) => return Err(missing(&format!("{pp}.type"))),
                }
            }
            Ok(out)
        }
        Value::Null => Err(missing(param)),
        _ => Err(invalid_type(param, "a string or an array of text parts")),
    }
}

fn messages(b: &Map<String, Value>) -> Result<Vec<ChatMessage>, LlmServeError> {
    let list = match b.get("messages") {
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid_type("messages", "an array of messages")),
    };
    if list.is_empty() {
        return Err(LlmServeError::invalid(
            Some("messages"),
            Some("empty_array"),
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let p = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(invalid_type(&p, "an object"));
        };
        let role = match m.get("role") {
            None | Some(Value::Null) => return Err(missing(&format!("{p}.role"))),
            Some(Value::String(r)) => r.as_str(),
            Some(_) => return Err(invalid_type(&format!("{p}.role"), "a string")),
        };
        let role = match role {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            other => {
                return Err(LlmServeError::invalid(
                    Some(&format!("{p}.role")),
                    Some("invalid_value"),
                    format!("Invalid value: '{other}'. Supported values are: 'system', 'developer', 'user' and 'assistant'."),
                ))
            }
        };
        if m.get("tool_calls").is_some_and(|v| !v.is_null()) {
            return Err(unsupported(&format!("{p}.tool_calls"), ""));
        }
        let content = content_text(
            m.get("content").unwrap_or(&Value::Null),
            &format!("{p}.content"),
        )?;
        out.push(ChatMessage {
            role: role.to_string(),
            content,
        });
    }
    Ok(out)
}

fn parse_chat(b: &Map<String, Value>) -> Result<Parsed, LlmServeError> {
    if matches!(b.get("tools"), Some(Value::Array(a)) if !a.is_empty()) {
        return Err(unsupported("tools", ""));
    }
    if opt_bool(b, "logprobs")? == Some(true) {
        return Err(unsupported("logprobs", ""));
    }
    if let Some(rf) = b.get("response_format").filter(|v| !v.is_null()) {
        if rf.get("type").and_then(Value::as_str) != Some("text") {
            return Err(unsupported("response_format", "other than `text`"));
        }
    }
    let msgs = messages(b)?;
    common(b, Prompt::Chat(msgs))
}

fn parse_completion(b: &Map<String, Value>) -> Result<Parsed, LlmServeError> {
    let prompt = match b.get("prompt") {
        None | Some(Value::Null) => return Err(missing("prompt")),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(_)) => {
            return Err(unsupported(
                "prompt",
                "as an array of several prompts or of token ids",
            ))
        }
        Some(_) => return Err(invalid_type("prompt", "a string")),
    };
    if opt_bool(b, "echo")? == Some(true) {
        return Err(unsupported("echo", ""));
    }
    if b.get("suffix").is_some_and(|v| !v.is_null()) {
        return Err(unsupported("suffix", ""));
    }
    if b.get("logprobs").is_some_and(|v| !v.is_null()) {
        return Err(unsupported("logprobs", ""));
    }
    if opt_int(b, "best_of")?.is_some_and(|n| n != 1) {
        return Err(unsupported("best_of", "other than 1"));
    }
    common(b, Prompt::Text(prompt))
}

// ---- serving ----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Text,
}

pub async fn chat_completions(
    State(svc): Svc,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    complete(svc, headers, body, Kind::Chat)
        .await
        .unwrap_or_else(error_response)
}

pub async fn completions(
    State(svc): Svc,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    complete(svc, headers, body, Kind::Text)
        .await
        .unwrap_or_else(error_response)
}

fn usage(s: &LlmServed) -> Usage {
    Usage::new(s.prompt_tokens, s.completion_tokens)
}

/// Header, meta and per-call identifiers of one reply.
struct Meta {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
    request_id: String,
}

impl Meta {
    /// A reply (or chunk) of kind `object` with these choices.
    fn completion(&self, object: &str, choices: Vec<Choice>) -> Completion {
        Completion {
            id: self.id.clone(),
            object: object.into(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: self.fingerprint.clone(),
            choices,
            usage: None,
            opal_receipt: None,
        }
    }
}

fn meta(p: &Prepared, kind: Kind) -> Meta {
    let rid = p.request_id().to_hex();
    Meta {
        id: format!(
            "{}-{}",
            if kind == Kind::Chat {
                "chatcmpl"
            } else {
                "cmpl"
            },
            &rid[..32]
        ),
        created: now_s(),
        model: p.id.clone(),
        fingerprint: format!("opal-{}", &p.request.request.model_hash.to_hex()[..16]),
        request_id: rid,
    }
}

async fn complete(
    svc: Option<Arc<LlmService>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: Kind,
) -> Result<Response, LlmServeError> {
    let svc = service(svc)?;
    let key = bearer(&headers)?;
    let grant = svc.authorize(&key)?;
    let b = body_object(body)?;
    let parsed = match kind {
        Kind::Chat => parse_chat(&b)?,
        Kind::Text => parse_completion(&b)?,
    };
    let s = svc.clone();
    let ask = parsed.ask;
    let prepared = tokio::task::spawn_blocking(move || s.prepare(&grant, &ask))
        .await
        .map_err(|e| LlmServeError::internal(e.to_string()))??;
    let m = meta(&prepared, kind);
    let permit = svc
        .slots()
        .acquire_owned()
        .await
        .map_err(|e| LlmServeError::internal(e.to_string()))?;
    let header = HeaderValue::from_str(&m.request_id).expect("hex is a header value");
    if !parsed.stream {
        let s = svc.clone();
        let served = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            s.run(prepared, &mut |_| true)
        })
        .await
        .map_err(|e| LlmServeError::internal(e.to_string()))??;
        let choice = match kind {
            Kind::Chat => Choice::message(&served.text, served.finish_reason),
            Kind::Text => Choice::text(&served.text, Some(served.finish_reason)),
        };
        let object = if kind == Kind::Chat {
            "chat.completion"
        } else {
            "text_completion"
        };
        let v = Completion {
            usage: Some(usage(&served)),
            opal_receipt: Some(served.receipt_json),
            ..m.completion(object, vec![choice])
        };
        let mut r = Json(v).into_response();
        r.headers_mut().insert("x-opal-receipt", header);
        return Ok(r);
    }

    // Streaming: the generation thread sends each SSE event as it is made; a client that goes
    // away stops the generation (the receipt then covers the tokens produced).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    let s = svc.clone();
    let include_usage = parsed.include_usage;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let object = if kind == Kind::Chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        let chunk = |choice: Choice| -> Completion { m.completion(object, vec![choice]) };
        let event = |c: &Completion| -> Event {
            Event::default().data(serde_json::to_string(c).unwrap_or_default())
        };
        let delta = |text: &str, finish: Option<&str>, first: bool| -> Choice {
            match kind {
                Kind::Chat => Choice::delta(text, finish, first),
                Kind::Text => Choice::text(text, finish),
            }
        };
        if kind == Kind::Chat
            && tx
                .blocking_send(Ok(event(&chunk(delta("", None, true)))))
                .is_err()
        {
            return;
        }
        let result = s.run(prepared, &mut |text| {
            text.is_empty()
                || tx
                    .blocking_send(Ok(event(&chunk(delta(text, None, false)))))
                    .is_ok()
        });
        match result {
            Ok(served) => {
                // The receipt rides on the last chunk: the usage chunk when usage is asked for.
                let mut last = chunk(delta("", Some(served.finish_reason), false));
                let mut tail = include_usage.then(|| Completion {
                    usage: Some(usage(&served)),
                    ..m.completion(object, vec![])
                });
                match tail.as_mut() {
                    Some(t) => t.opal_receipt = Some(served.receipt_json),
                    None => last.opal_receipt = Some(served.receipt_json),
                }
                let _ = tx.blocking_send(Ok(event(&last)));
                if let Some(t) = tail {
                    let _ = tx.blocking_send(Ok(event(&t)));
                }
                let _ = tx.blocking_send(Ok(Event::default().data("[DONE]")));
            }
            Err(e) => {
                let body = serde_json::to_string(&e.body()).unwrap_or_default();
                let _ = tx.blocking_send(Ok(Event::default().data(body)));
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut r = Sse::new(stream).into_response();
    r.headers_mut().insert("x-opal-receipt", header);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn chat_err(v: Value) -> LlmServeError {
        match parse_chat(&obj(v)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn chat_requests_parse() {
        let p = parse_chat(&obj(json!({
            "model": "smollm2-135m",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]},
            ],
            "max_completion_tokens": 12, "temperature": 0, "seed": 5, "stop": "\n",
            "stream": true, "stream_options": {"include_usage": true},
            "opal_tier": "activations", "top_k": 40,
        })))
        .unwrap();
        assert!(p.stream && p.include_usage);
        let a = p.ask;
        assert_eq!(a.max_tokens, Some(12));
        assert_eq!(a.seed, Some(5));
        assert_eq!(a.stop, vec!["\n".to_string()]);
        assert_eq!(a.tier, Tier::Activations);
        assert_eq!(a.top_k, 40);
        assert_eq!(a.temperature, 0.0);
        let Prompt::Chat(m) = a.prompt else {
            panic!("chat")
        };
        assert_eq!(m[0].role, "system");
        assert_eq!(m[1].content, "Hi!");
    }

    #[test]
    fn bad_chat_requests_name_the_parameter() {
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m"}),
                "messages",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "messages": "hi"}),
                "messages",
                "invalid_type",
            ),
            (
                json!({"model": "m", "messages": []}),
                "messages",
                "empty_array",
            ),
            (
                json!({"model": "m", "messages": [7]}),
                "messages[0]",
                "invalid_type",
            ),
            (
                json!({"model": "m", "messages": [{"content": "x"}]}),
                "messages[0].role",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
                "messages[0].role",
                "invalid_value",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user"}]}),
                "messages[0].content",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
                "invalid_type",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                "messages[0].content[0].type",
                "unsupported_parameter",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}),
                "max_tokens",
                "integer_below_min_value",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens",
                "integer_below_min_value",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}),
                "max_tokens",
                "invalid_type",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}),
                "temperature",
                "decimal_above_max_value",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}),
                "n",
                "unsupported_parameter",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}),
                "stop",
                "invalid_value",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "opal_tier": "gold"}),
                "opal_tier",
                "invalid_value",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{}]}),
                "tools",
                "unsupported_parameter",
            ),
        ];
        for (body, param, code) in cases {
            let e = chat_err(body.clone());
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
            assert_eq!(e.code.as_deref(), Some(code), "{body}: {}", e.message);
            let b = serde_json::to_value(e.body()).unwrap();
            assert_eq!(b["error"]["type"], "invalid_request_error");
            assert!(b["error"]["message"].is_string());
        }
    }

    #[test]
    fn completion_requests_parse() {
        let p = parse_completion(&obj(
            json!({"model": "m", "prompt": ["Once"], "max_tokens": 3}),
        ))
        .unwrap();
        assert!(matches!(p.ask.prompt, Prompt::Text(ref t) if t == "Once"));
        assert_eq!(p.ask.max_tokens, Some(3));
        for (body, param) in [
            (json!({"model": "m"}), "prompt"),
            (json!({"model": "m", "prompt": [1, 2]}), "prompt"),
            (json!({"model": "m", "prompt": "x", "echo": true}), "echo"),
            (
                json!({"model": "m", "prompt": "x", "max_tokens": -1}),
                "max_tokens",
            ),
        ] {
            let e = parse_completion(&obj(body.clone())).err().expect("refused");
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
        }
    }

    #[test]
    fn bearer_keys() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap_err().status, 401);
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h).unwrap_err().status, 401);
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer opal-grant-00"),
        );
        assert_eq!(bearer(&h).unwrap(), "opal-grant-00");
    }
}
