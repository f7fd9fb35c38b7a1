//! Read side of governance and rewards: proposals with their live tally, votes, the
//! parameters in force with the proposal that last set each, the governance overview, and
//! what an address has earned.

use super::error::ApiError;
use crate::app::Shared;
use axum::extract::{Path, Query, State};
use axum::Json;
use opal_api::gov as api;
use opal_ledger::components::governance::{self, ProposalStatus};
use opal_ledger::param_table;
use opal_ledger::params::AllParams;
use opal_state::Overlay;
use serde::Deserialize;
use std::sync::Arc;

type S = State<Arc<Shared>>;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn overlay(sh: &Shared) -> Result<(Overlay, u64), ApiError> {
    let snap = sh.snapshot().map_err(internal)?;
    let h = snap.version().unwrap_or(0);
    Ok((Overlay::new(snap), h))
}

fn proposal_id(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "malformed_proposal",
            format!("{s:?} is not a proposal number"),
        )
    })
}

fn view(o: &Overlay, p: governance::Proposal) -> Result<api::Proposal, ApiError> {
    let tally = match p.status {
        ProposalStatus::VotingPeriod => Some(governance::tally::tally(o, p.id).map_err(internal)?),
        _ => p.final_tally.clone(),
    };
    let votes = governance::read_votes(o, p.id).map_err(internal)?.len();
    let deposits = governance::deposits(o, p.id)
        .map_err(internal)?
        .into_iter()
        .map(|(depositor, amount)| api::Deposit { depositor, amount })
        .collect();
    Ok(api::Proposal {
        proposal: p,
        tally,
        votes,
        deposits,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// Only proposals in this status (`deposit_period`, `voting_period`, `passed`, ...).
    status: Option<String>,
}

/// `GET /api/gov/proposals[?status=...]`, oldest first.
pub async fn proposals(
    State(sh): S,
    Query(q): Query<ListQuery>,
) -> Result<Json<api::Proposals>, ApiError> {
    let (o, height) = overlay(&sh)?;
    let mut out = Vec::new();
    for p in governance::proposals(&o).map_err(internal)? {
        if q.status.as_deref().is_some_and(|s| s != p.status.as_str()) {
            continue;
        }
        out.push(view(&o, p)?);
    }
    Ok(Json(api::Proposals {
        height,
        proposals: out,
    }))
}

pub async fn proposal(
    State(sh): S,
    Path(id): Path<String>,
) -> Result<Json<api::Proposal>, ApiError> {
    let id = proposal_id(&id)?;
    let (o, _) = overlay(&sh)?;
    let p = governance::proposal(&o, id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no proposal {id}")))?;
    Ok(Json(view(&o, p)?))
}

pub async fn votes(State(sh): S, Path(id): Path<String>) -> Result<Json<api::Votes>, ApiError> {
    let id = proposal_id(&id)?;
    let (o, height) = overlay(&sh)?;
    if governance::proposal(&o, id).map_err(internal)?.is_none() {
        return Err(ApiError::not_found(format!("no proposal {id}")));
    }
    let votes = governance::read_votes(&o, id)
        .map_err(internal)?
        .into_iter()
        .map(|(voter, option)| api::Vote { voter, option })
        .collect();
    Ok(Json(api::Votes {
        height,
        proposal: id,
        votes,
    }))
}

/// `GET /api/params`: every parameter in force, its bounds, and the proposal that last set it.
pub async fn params(State(sh): S) -> Result<Json<api::ParamsInForce>, ApiError> {
    let (o, height) = overlay(&sh)?;
    let all = AllParams::load(&o).map_err(internal)?;
    let mut params = Vec::with_capacity(param_table::TABLE.len());
    for spec in param_table::TABLE {
        let value = param_table::get(&all, spec.key)
            .ok_or_else(|| internal(format!("parameter {} has no value", spec.key)))?;
        params.push(api::ParamEntry {
            key: spec.key.to_string(),
            value: value.to_string(),
            min: spec.min.to_string(),
            max: spec.max.to_string(),
            set_by: governance::param_source(&o, spec.key).map_err(internal)?,
        });
    }
    Ok(Json(api::ParamsInForce { height, params }))
}

/// `GET /api/gov`.
pub async fn overview(State(sh): S) -> Result<Json<api::GovOverview>, ApiError> {
    let (o, height) = overlay(&sh)?;
    let treasury = opal_ledger::components::accounts::treasury(&o).map_err(internal)?;
    let open = governance::open_count(&o).map_err(internal)? as usize;
    Ok(Json(api::GovOverview {
        height,
        params: governance::params(&o).map_err(internal)?,
        treasury,
        deposits_held: governance::deposit_pool(&o).map_err(internal)?,
        open_proposals: open,
        tee_measurements: governance::tee_measurements(&o).map_err(internal)?,
        upgrade: governance::upgrade_plan(&o).map_err(internal)?,
    }))
}

/// `GET /api/rewards/{address}`.
pub async fn rewards(
    State(sh): S,
    Path(address): Path<String>,
) -> Result<Json<api::Rewards>, ApiError> {
    use opal_ledger::components::{reward_pool, staking};
    let address: opal_types::Address =
        address
            .parse()
            .map_err(|e: opal_types::crypto::CryptoError| {
                ApiError::bad_request("malformed_address", e.to_string())
            })?;
    let (o, height) = overlay(&sh)?;
    let mut delegations = Vec::new();
    let commission = reward_pool::commission(&o, &address).map_err(internal)?;
    let mut withdrawable = commission;
    for (op, shares) in staking::delegations_of(&o, &address).map_err(internal)? {
        let amount = reward_pool::pending(&o, &op, &address, shares).map_err(internal)?;
        withdrawable = withdrawable.checked_add(amount).map_err(internal)?;
        delegations.push(api::DelegationReward {
            validator: op,
            amount,
        });
    }
    let points = reward_pool::points(&o)
        .map_err(internal)?
        .into_iter()
        .filter(|(role, who, _)| *role == opal_types::Role::InferenceNode && *who == address)
        .map(|(_, _, p)| p)
        .sum();
    Ok(Json(api::Rewards {
        height,
        address,
        delegations,
        commission,
        withdrawable,
        points,
        performance_pool: reward_pool::performance_pool(&o).map_err(internal)?,
    }))
}
