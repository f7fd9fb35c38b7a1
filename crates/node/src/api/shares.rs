//! Read side of revenue shares: the split royalty streams, a stream's holders (paged), and
//! one holder's shares and claimable earnings.

use super::error::ApiError;
use crate::app::Shared;
use axum::extract::{Path, Query, State};
use axum::Json;
use opal_api::shares::{parse_stream, Holder, HoldingReply, Stream, StreamReply, Streams};
use opal_ledger::components::shares::{self, Holding, SharePool};
use opal_state::Overlay;
use opal_types::shares::RoyaltyStream;
use opal_types::Address;
use serde::Deserialize;
use std::sync::Arc;

type S = State<Arc<Shared>>;

/// Holders per page unless `limit` says otherwise, and the most a page holds.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn overlay(sh: &Shared) -> Result<(Overlay, u64), ApiError> {
    let snap = sh.snapshot().map_err(internal)?;
    let h = snap.version().unwrap_or(0);
    Ok((Overlay::new(snap), h))
}

fn address(s: &str) -> Result<Address, ApiError> {
    s.parse().map_err(|e: opal_types::crypto::CryptoError| {
        ApiError::bad_request("malformed_address", e.to_string())
    })
}

fn stream_of(o: &Overlay, s: &str) -> Result<(RoyaltyStream, SharePool), ApiError> {
    let st = parse_stream(s).map_err(|e| ApiError::bad_request("malformed_stream", e))?;
    let pool = shares::pool_info(o, &st)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("{st} is not split into shares")))?;
    Ok((st, pool))
}

fn holder(a: Address, h: &Holding, pool: &SharePool) -> Result<Holder, ApiError> {
    Holder::new(a, h, pool).ok_or_else(|| internal("a holding's earnings overflow"))
}

/// `GET /api/shares`.
pub async fn streams(State(sh): S) -> Result<Json<Streams>, ApiError> {
    let (o, height) = overlay(&sh)?;
    let streams = shares::pools(&o)
        .map_err(internal)?
        .iter()
        .map(Stream::from)
        .collect();
    Ok(Json(Streams { height, streams }))
}

#[derive(Debug, Deserialize)]
pub struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/shares/{stream}`.
pub async fn stream(
    State(sh): S,
    Path(s): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<StreamReply>, ApiError> {
    let (o, height) = overlay(&sh)?;
    let (st, pool) = stream_of(&o, &s)?;
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let after = page.after.as_deref().map(address).transpose()?;
    let mut holder_list = Vec::new();
    let mut next = None;
    for (a, h) in shares::holdings(&o, &st).map_err(internal)? {
        if after.is_some_and(|after| a <= after) {
            continue;
        }
        if holder_list.len() == limit {
            next = holder_list.last().map(|h: &Holder| h.address);
            break;
        }
        holder_list.push(holder(a, &h, &pool)?);
    }
    Ok(Json(StreamReply {
        height,
        stream: Stream::from(&pool),
        holder_list,
        next,
    }))
}

/// `GET /api/shares/{stream}/{address}`.
pub async fn holding(
    State(sh): S,
    Path((s, a)): Path<(String, String)>,
) -> Result<Json<HoldingReply>, ApiError> {
    let (o, height) = overlay(&sh)?;
    let (st, pool) = stream_of(&o, &s)?;
    let a = address(&a)?;
    let h = shares::holding(&o, &st, &a)
        .map_err(internal)?
        .unwrap_or_default();
    Ok(Json(HoldingReply {
        height,
        stream: st.to_string(),
        holder: holder(a, &h, &pool)?,
        key: hex::encode(opal_ledger::keys::shares::holding(&st, &a)),
    }))
}

fn stream_path(s: &str) -> Result<RoyaltyStream, ApiError> {
    parse_stream(s).map_err(|e| ApiError::bad_request("malformed_stream", e))
}

/// `GET /api/market/{stream}/book`.
pub async fn book(
    State(sh): S,
    Path(s): Path<String>,
) -> Result<Json<opal_api::shares::Book>, ApiError> {
    use opal_ledger::components::market;
    use opal_types::market::Side;
    let (o, height) = overlay(&sh)?;
    let st = stream_path(&s)?;
    let side = |side| -> Result<Vec<opal_api::shares::OrderReply>, ApiError> {
        Ok(market::book_side(&o, &st, side)
            .map_err(internal)?
            .iter()
            .map(Into::into)
            .collect())
    };
    Ok(Json(opal_api::shares::Book {
        height,
        stream: st.to_string(),
        bids: side(Side::Buy)?,
        asks: side(Side::Sell)?,
    }))
}

/// `GET /api/market/{stream}/trades`.
pub async fn trades(
    State(sh): S,
    Path(s): Path<String>,
) -> Result<Json<opal_api::shares::Trades>, ApiError> {
    let (o, height) = overlay(&sh)?;
    let st = stream_path(&s)?;
    let trades = opal_ledger::components::market::trades(&o, &st)
        .map_err(internal)?
        .into_iter()
        .map(|t| opal_api::shares::TradeReply {
            seq: t.seq,
            height: t.height,
            maker: t.maker,
            taker: t.taker,
            buyer: t.buyer,
            seller: t.seller,
            price: t.price,
            shares: t.shares,
            fee: t.fee,
        })
        .collect();
    Ok(Json(opal_api::shares::Trades {
        height,
        stream: st.to_string(),
        trades,
    }))
}

/// `GET /api/market/orders/{id}`.
pub async fn order(
    State(sh): S,
    Path(id): Path<String>,
) -> Result<Json<opal_api::shares::OrderStatus>, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request("malformed_order", format!("{id:?} is not an order id"))
    })?;
    let (o, height) = overlay(&sh)?;
    let ord = opal_ledger::components::market::order(&o, id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no resting order {id}")))?;
    Ok(Json(opal_api::shares::OrderStatus {
        height,
        stream: ord.stream.to_string(),
        order: (&ord).into(),
    }))
}
