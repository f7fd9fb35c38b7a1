use super::error::ApiError;
use crate::app::{sender_state, NodeEvent, Shared};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use opal_api as api;
use opal_ledger::{components::accounts, exec};
use opal_state::Overlay;
use opal_types::{Address, Hash, Transaction};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;

type S = State<Arc<Shared>>;
type ApiResult = Result<Json<Value>, ApiError>;

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

pub async fn index() -> Json<Value> {
    Json(json!({
        "name": "opal",
        "version": env!("CARGO_PKG_VERSION"),
        "openapi": "/openapi.json",
        "endpoints": ["/api/status", "/api/txs", "/api/txs/batch", "/api/txs/{hash}", "/api/gossip/txs", "/api/accounts/{address}",
                      "/api/blocks/latest", "/api/blocks/{height}", "/api/light/{height}", "/api/state/{key}", "/api/snapshots", "/api/snapshots/{height}/chunk", "/api/validators", "/api/models", "/api/models/{model}", "/api/models/{model}/lineage",
                      "/api/datasets/{name}", "/api/services", "/api/escrows/{caller}/{node}", "/api/receipts/{request_id}",
                      "/api/params", "/api/gov", "/api/gov/proposals", "/api/gov/proposals/{id}", "/api/gov/proposals/{id}/votes", "/api/rewards/{address}",
                      "/api/shares", "/api/shares/{stream}", "/api/shares/{stream}/{address}",
                      "/api/market/{stream}/book", "/api/market/{stream}/trades", "/api/market/orders/{id}",
                      "/api/events", "/metrics"],
    }))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

/// Prometheus metrics (OpenMetrics text).
pub async fn metrics(State(sh): S) -> impl axum::response::IntoResponse {
    sh.metrics.mempool_size.set(sh.mempool.lock().len() as i64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        sh.metrics.render(),
    )
}

pub async fn openapi() -> Json<Value> {
    Json(super::openapi::document())
}

pub async fn status(State(sh): S) -> Result<Json<api::Status>, ApiError> {
    let snap = sh.snapshot().map_err(internal)?;
    let height = snap.version().unwrap_or(0);
    let (block_hash, time_ms) = match sh.stored_block(&snap, height).map_err(internal)? {
        Some(sb) => {
            let b = sb.block().map_err(internal)?;
            (Some(b.hash()), Some(b.header.time_ms))
        }
        None => (None, None),
    };
    let supply: opal_types::Amount = snap
        .get(opal_ledger::keys::SUPPLY)
        .map_err(internal)?
        .and_then(|b| borsh::from_slice(&b).ok())
        .unwrap_or_default();
    Ok(Json(api::Status {
        chain_id: sh.chain_id.clone(),
        height,
        state_root: Hash(snap.root()),
        block_hash,
        block_time_ms: time_ms,
        earliest_height: sh.store.oldest_version(),
        validator: sh.validator,
        mempool_size: sh.mempool.lock().len(),
        total_supply: supply,
        inference_params: opal_ledger::components::inference::params(&Overlay::new(snap.clone()))
            .map_err(internal)?,
        pools: api::Pools {
            fees: read_amount(&snap, opal_ledger::keys::fees::POOL)?,
            bonded: read_amount(&snap, opal_ledger::keys::staking::BONDED_POOL)?,
            unbonding: read_amount(&snap, opal_ledger::keys::staking::UNBONDING_POOL)?,
            treasury: read_amount(&snap, opal_ledger::keys::TREASURY)?,
            escrow: read_amount(&snap, opal_ledger::keys::inference::ESCROW_POOL)?,
            held: read_amount(&snap, opal_ledger::keys::inference::HELD_POOL)?,
            deposits: read_amount(&snap, opal_ledger::keys::gov::DEPOSIT_POOL)?,
            rewards: read_amount(&snap, opal_ledger::keys::rewards::POOL)?,
            shares: read_amount(&snap, opal_ledger::keys::shares::POOL)?,
            market: read_amount(&snap, opal_ledger::keys::market::POOL)?,
        },
        params: sh.params().map_err(internal)?,
    }))
}

fn read_amount(snap: &opal_state::Snapshot, key: &[u8]) -> Result<opal_types::Amount, ApiError> {
    Ok(snap
        .get(key)
        .map_err(internal)?
        .and_then(|b| borsh::from_slice(&b).ok())
        .unwrap_or_default())
}

/// Submit a transaction: `{"tx": "<hex of canonical bytes>"}` as JSON, or the raw canonical bytes
/// with `Content-Type: application/octet-stream`.
pub async fn submit_tx(
    State(sh): S,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<api::TxStatus>), ApiError> {
    let r = submitted_bytes(headers, body).and_then(|bytes| {
        let hash = admit_bytes(&sh, &bytes)?;
        // New here: on to the gossip peers.
        sh.gossip.offer(bytes);
        Ok(hash)
    });
    match &r {
        Ok(_) => {
            sh.metrics.txs_admitted.inc();
        }
        Err(e) => sh.metrics.refused(&e.code),
    }
    r.map(|hash| (StatusCode::ACCEPTED, Json(api::TxStatus::Pending { hash })))
}

/// The transaction bytes of a `POST /api/txs` body: raw (`application/octet-stream`) or
/// `{"tx": "<hex>"}`.
fn submitted_bytes(
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>, ApiError> {
    let body = body.map_err(ApiError::from)?;
    let is_binary = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"));
    if is_binary {
        return Ok(body.to_vec());
    }
    let env: api::SubmitTx = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("expected {{\"tx\": \"<hex>\"}}: {e}"),
        )
    })?;
    hex::decode(env.tx.trim())
        .map_err(|e| ApiError::bad_request("malformed_hex", format!("tx is not hex: {e}")))
}

/// The largest any action may be (evidence transactions carry tensors, a model file or a
/// proof); `check_tx_stateless` then applies the action's own limit.
pub(crate) fn submission_limit(params: &opal_ledger::Params) -> usize {
    params.max_tx_bytes.max(params.max_evidence_tx_bytes) as usize
}

/// Admit one encoded transaction, from a client or a gossip peer: decoded with bounds, its
/// stateless checks (size, chain, fee, signature), then the mempool's nonce and balance rules
/// against the committed state.
pub(crate) fn admit_bytes(sh: &Shared, bytes: &[u8]) -> Result<Hash, ApiError> {
    let params = sh.params().map_err(internal)?;
    let limit = submission_limit(&params);
    if bytes.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("transaction is {} bytes, the limit is {limit}", bytes.len()),
        ));
    }
    let tx = Transaction::from_bytes(bytes, limit)
        .map_err(|e| ApiError::bad_request("malformed_transaction", e.to_string()))?;
    exec::check_tx_stateless(&tx, bytes.len(), &sh.chain_id, &params, true)
        .map_err(|e| ApiError::from(crate::error::AdmitError::Tx(e)))?;
    // Lock the mempool before reading state, so the state read is never older than the last
    // block the mempool was pruned for.
    let mut mempool = sh.mempool.lock();
    let snap = sh.snapshot().map_err(internal)?;
    let sender = sender_state(&snap, &tx.sender()).map_err(internal)?;
    Ok(mempool.admit(tx, bytes.len(), sender)?)
}

/// `POST /api/gossip/txs`: a gossip peer's batch (borsh [`crate::gossip::GossipBatch`]). Each
/// transaction is admitted as if a client had sent it; those new here go on to this node's
/// own gossip peers. Garbage or an oversized batch is refused whole (400, 413).
pub async fn gossip_txs(
    State(sh): S,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<api::GossipReceived>, ApiError> {
    let ip = peer.map(|p| p.0 .0.ip());
    let now = std::time::Instant::now();
    if let Some(left) = ip.and_then(|ip| sh.penalties.banned(ip, now)) {
        sh.metrics.gossip_received("penalised", 1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "penalised",
            format!(
                "this address sent gossip no honest node sends (oversized, undecodable or forged); \
                 refused for {} s more",
                left.as_secs() + 1
            ),
        ));
    }
    let strike = |why: &str| {
        if let Some(ip) = ip {
            if sh.penalties.strike(ip, now) {
                tracing::warn!(%ip, "gossip peer banned for {} s after {} bad batches (last: {why})",
                    crate::penalty::BAN_FOR.as_secs(), crate::penalty::STRIKES_TO_BAN);
            }
        }
    };
    let body = body.map_err(|r| {
        let e = ApiError::from(r);
        sh.metrics.gossip_received(&e.code, 1);
        strike(&e.code);
        e
    })?;
    let batch = crate::gossip::GossipBatch::from_bytes(&body).map_err(|e| {
        sh.metrics.gossip_received("malformed", 1);
        strike("malformed");
        ApiError::bad_request("malformed_gossip", e)
    })?;
    let sh2 = sh.clone();
    // Signature checks are CPU work: off the async threads.
    let (admitted, known, refused, forged) = tokio::task::spawn_blocking(move || {
        let (mut admitted, mut known, mut refused, mut forged) = (0u64, 0u64, 0u64, false);
        let results = super::batch::admit_batch(&sh2, &batch.txs);
        for (tx, r) in batch.txs.into_iter().zip(results) {
            match r {
                Ok(_) => {
                    admitted += 1;
                    sh2.gossip.offer(tx);
                }
                Err(e) if e.code == "already_known" => known += 1,
                Err(e) => {
                    // What an honest peer, which forwards only what it admitted, never sends.
                    forged |= matches!(e.code.as_str(), "bad_signature" | "malformed_transaction");
                    refused += 1;
                }
            }
        }
        (admitted, known, refused, forged)
    })
    .await
    .map_err(|e| internal(e.to_string()))?;
    if forged {
        strike("a forged or undecodable transaction");
    }
    sh.metrics.gossip_received("admitted", admitted);
    sh.metrics.gossip_received("known", known);
    sh.metrics.gossip_received("refused", refused);
    Ok(Json(api::GossipReceived {
        admitted,
        known,
        refused,
    }))
}

pub async fn tx_status(
    State(sh): S,
    Path(hash): Path<String>,
) -> Result<(StatusCode, Json<api::TxStatus>), ApiError> {
    let h = Hash::from_hex(&hash).map_err(|e| ApiError::bad_request("malformed_hash", e))?;
    let snap = sh.snapshot().map_err(internal)?;
    if let Some(loc) = sh.tx_location(&snap, &h).map_err(internal)? {
        let sb = sh
            .stored_block(&snap, loc.height)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("block {} missing", loc.height)))?;
        let r = sb
            .result
            .txs
            .get(loc.index as usize)
            .ok_or_else(|| internal("tx index out of range"))?;
        return Ok((
            StatusCode::OK,
            Json(api::TxStatus::Committed {
                hash: h,
                height: loc.height,
                index: loc.index,
                ok: r.error.is_none(),
                error: r.error.clone(),
                code: r.code.clone(),
                events: r.events.clone(),
            }),
        ));
    }
    let mp = sh.mempool.lock();
    if mp.contains(&h) {
        return Ok((StatusCode::OK, Json(api::TxStatus::Pending { hash: h })));
    }
    if let Some((reason, code)) = mp.dropped_reason(&h) {
        return Ok((
            StatusCode::OK,
            Json(api::TxStatus::Dropped {
                hash: h,
                error: reason,
                code: Some(code.to_string()),
            }),
        ));
    }
    Ok((
        StatusCode::NOT_FOUND,
        Json(api::TxStatus::Unknown { hash: h }),
    ))
}

#[derive(Deserialize)]
pub struct ProveQuery {
    #[serde(default)]
    prove: bool,
    height: Option<u64>,
}

fn snapshot_at(sh: &Shared, height: Option<u64>) -> Result<opal_state::Snapshot, ApiError> {
    match height {
        None => sh.snapshot().map_err(internal),
        Some(h) => {
            let latest = sh.store.latest_version().unwrap_or(0);
            if h > latest {
                return Err(ApiError::not_found(format!(
                    "height {h} is not committed yet (latest {latest})"
                )));
            }
            sh.store.snapshot_at(h).map_err(ApiError::from)
        }
    }
}

/// The error for a committed height whose block record is not here: 410 if it was pruned.
fn no_block(sh: &Shared, snap: &opal_state::Snapshot, h: u64) -> ApiError {
    match crate::prune::blocks_pruned_to(snap) {
        Ok(p) if h <= p => ApiError::pruned(format!(
            "block {h} was pruned: this node keeps blocks from height {} on (retain_heights in \
             its config.toml); ask an archive node",
            p + 1
        )),
        _ => {
            let latest = sh.store.latest_version().unwrap_or(0);
            ApiError::not_found(format!("no block at height {h} (latest {latest})"))
        }
    }
}

pub async fn account(
    State(sh): S,
    Path(addr): Path<String>,
    Query(q): Query<ProveQuery>,
) -> Result<Json<api::Account>, ApiError> {
    let a: Address = addr.parse().map_err(|e: opal_types::crypto::CryptoError| {
        ApiError::bad_request("malformed_address", e.to_string())
    })?;
    let snap = snapshot_at(&sh, q.height)?;
    let acct = accounts::get(&Overlay::new(snap.clone()), &a).map_err(internal)?;
    let mut v = api::Account {
        address: a,
        balance: acct.balance,
        nonce: acct.nonce,
        height: snap.version().unwrap_or(0),
        state_root: Hash(snap.root()),
        next_nonce: None,
        key: None,
        value: None,
        proof: None,
    };
    if q.height.is_none() {
        // The nonce a new transaction should carry, counting this account's pending ones.
        v.next_nonce = Some(acct.nonce + sh.mempool.lock().pending_count(&a, acct.nonce) as u64);
    }
    if q.prove {
        let key = opal_ledger::keys::accounts::account(&a);
        let (value, proof) = snap.get_with_proof(&key).map_err(internal)?;
        v.key = Some(hex::encode(&key));
        v.value = Some(value.map(hex::encode));
        v.proof = Some(hex::encode(proof.to_bytes()));
    }
    Ok(Json(v))
}

fn block_json(sh: &Shared, height: u64) -> Result<Json<api::BlockReply>, ApiError> {
    let snap = sh.snapshot().map_err(internal)?;
    let sb = sh
        .stored_block(&snap, height)
        .map_err(internal)?
        .ok_or_else(|| no_block(sh, &snap, height))?;
    let block = sb.block().map_err(internal)?;
    let root = sh.store.root_at(height).map_err(internal)?;
    let hash = block.hash();
    let txs = block
        .txs
        .into_iter()
        .zip(sb.result.txs)
        .map(|(tx, r)| api::BlockTx {
            hash: r.hash,
            tx,
            ok: r.error.is_none(),
            error: r.error,
            code: r.code,
            events: r.events,
        })
        .collect();
    Ok(Json(api::BlockReply {
        height,
        hash,
        state_root: Hash(root),
        last_commit_round: block.last_commit.as_ref().map(|lc| lc.round),
        last_commit_signers: block
            .last_commit
            .as_ref()
            .map(|lc| lc.signers().copied().collect())
            .unwrap_or_default(),
        header: block.header,
        txs,
        events: sb.result.events,
        certificate: hex::encode(&sb.certificate),
    }))
}

/// Every validator with its stake, jail status, commission and liveness window, and the
/// active set with voting power.
pub async fn validators(State(sh): S) -> Result<Json<api::Validators>, ApiError> {
    use opal_ledger::components::{liveness, rewards, staking};
    let snap = sh.snapshot().map_err(internal)?;
    let o = Overlay::new(snap.clone());
    let all = staking::validators(&o).map_err(internal)?;
    let active = staking::active_set(&o).map_err(internal)?;
    let params = staking::params(&o).map_err(internal)?;
    let reward_params = opal_ledger::params::rewards(&o).map_err(internal)?;
    let mut list = Vec::with_capacity(all.len());
    for v in all {
        let power = active
            .iter()
            .find(|a| a.operator == v.operator)
            .map(|a| a.power);
        let live = liveness::signing_info(&o, &v.operator).map_err(internal)?;
        list.push(api::ValidatorEntry {
            commission_bps: rewards::commission_rate(&o, &v.operator, &reward_params)
                .map_err(internal)?,
            missed_blocks: live.missed,
            window_blocks: live.index.min(params.signed_blocks_window),
            operator: v.operator,
            name: v.name,
            consensus_key: v.consensus_key,
            tokens: v.tokens,
            jailed: v.jailed,
            jailed_until_ms: v.jailed_until_ms,
            active: power.is_some(),
            power,
        });
    }
    Ok(Json(api::Validators {
        height: snap.version().unwrap_or(0),
        validators: list,
        total_power: active.iter().map(|a| a.power).sum::<u64>(),
        active_set: active,
        params,
    }))
}

pub async fn block(
    State(sh): S,
    Path(height): Path<String>,
) -> Result<Json<api::BlockReply>, ApiError> {
    let h: u64 = height.parse().map_err(|_| {
        ApiError::bad_request(
            "malformed_height",
            format!("{height:?} is not a block height"),
        )
    })?;
    block_json(&sh, h)
}

pub async fn latest_block(State(sh): S) -> Result<Json<api::BlockReply>, ApiError> {
    let h = sh.store.latest_version().unwrap_or(0);
    if h == 0 {
        return Err(ApiError::not_found("no block committed yet"));
    }
    block_json(&sh, h)
}

/// What a light client needs to check block `height` itself (`opal_verify::light`): the
/// block bytes, its commit certificate, and the validator set that voted on it (the state
/// value `validators` after block `height - 1`) with its Merkle proof against the header's
/// `prev_state_root`. Nothing in it is to be trusted: every part is checked by the client.
pub async fn light_block(State(sh): S, Path(height): Path<String>) -> ApiResult {
    let h: u64 = height.parse().map_err(|_| {
        ApiError::bad_request(
            "malformed_height",
            format!("{height:?} is not a block height"),
        )
    })?;
    if h == 0 {
        return Err(ApiError::bad_request(
            "malformed_height",
            "height 0 is the genesis: it has no block",
        ));
    }
    let snap = sh.snapshot().map_err(internal)?;
    let sb = sh
        .stored_block(&snap, h)
        .map_err(internal)?
        .ok_or_else(|| no_block(&sh, &snap, h))?;
    let before = sh.store.snapshot_at(h - 1).map_err(ApiError::from)?;
    let (value, proof) = before
        .get_with_proof(opal_ledger::keys::VALIDATORS)
        .map_err(internal)?;
    let validators =
        value.ok_or_else(|| internal(format!("no validator set in the state after {}", h - 1)))?;
    let lb = opal_verify::LightBlock {
        block: sb.block_bytes,
        certificate: sb.certificate,
        validators,
        validators_proof: proof.to_bytes(),
    };
    let mut v = serde_json::to_value(&lb).map_err(internal)?;
    v["height"] = json!(h);
    Ok(Json(v))
}

pub async fn state_value(
    State(sh): S,
    Path(key): Path<String>,
    Query(q): Query<ProveQuery>,
) -> Result<Json<api::registry::StateValue>, ApiError> {
    let k = hex::decode(&key)
        .map_err(|e| ApiError::bad_request("malformed_key", format!("key must be hex: {e}")))?;
    if k.len() > 1024 {
        return Err(ApiError::bad_request(
            "malformed_key",
            "key longer than 1024 bytes",
        ));
    }
    let snap = snapshot_at(&sh, q.height)?;
    let (value, proof) = snap.get_with_proof(&k).map_err(internal)?;
    Ok(Json(api::registry::StateValue {
        height: snap.version().unwrap_or(0),
        state_root: Hash(snap.root()),
        proven: api::registry::ProvenValue {
            key,
            value: value.map(hex::encode),
            proof: hex::encode(proof.to_bytes()),
        },
    }))
}

/// Server-sent events: one `data:` line of JSON per new block and per committed transaction.
pub async fn events(State(sh): S) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    use futures::StreamExt;
    let rx = sh.events.subscribe();
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|item| async move {
        match item {
            Ok(ev) => {
                let name = match &ev {
                    NodeEvent::NewBlock { .. } => "new_block",
                    NodeEvent::Tx { .. } => "tx",
                };
                SseEvent::default().event(name).json_data(&ev).ok().map(Ok)
            }
            // A slow reader missed events: tell it, and go on.
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                Some(Ok(SseEvent::default().event("lagged").data(n.to_string())))
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
