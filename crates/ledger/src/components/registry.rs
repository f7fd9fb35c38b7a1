//! The asset registry: datasets, model names and versions, lineage, licences, revenue splits, and
//! the services inference nodes declare.
//!
//! Rules (each refusal is a typed [`TxError`]):
//! - a dataset name is registered once; its owner is the signer;
//! - the first version of a model name must be 1 and makes the signer the name's owner; later
//!   versions only by the owner, numbered newest + 1 (versions chain);
//! - a model's parent and datasets must be registered; each dataset gets at least the share it
//!   asks (`min_share_bps`); a non-commercial dataset or parent forces a non-commercial licence;
//!   an allow-list dataset or parent admits only models of owners on its list;
//! - a service may be declared only by an account with the inference-node role bond, and only for
//!   registered models under tiers the model allows.

use super::{read, staking, write};
use super::{BlockCtx, TxCall, TxOutcome};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::keys::registry as k;
use borsh::{BorshDeserialize, BorshSerialize};
use opal_state::Overlay;
use opal_types::registry::{DatasetSpec, Licence, ModelSpec, ServiceSpec};
use opal_types::{Address, Amount, ModelRef, Role};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub spec: DatasetSpec,
    pub owner: Address,
    pub registered_height: u64,
}

/// Owner and newest version of a model name.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct NameInfo {
    pub owner: Address,
    pub latest_version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ModelInfo {
    pub spec: ModelSpec,
    /// Who registered this version (the name's owner at the time).
    pub registered_by: Address,
    pub registered_height: u64,
    /// Settled inferences of this version, and what callers paid for them in total.
    pub calls: u64,
    pub revenue: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub node: Address,
    pub spec: ServiceSpec,
    pub declared_height: u64,
}

pub fn dataset(s: &Overlay, name: &str) -> Result<Option<DatasetInfo>, LedgerError> {
    read(s, &k::dataset(name))
}

pub fn name_info(s: &Overlay, name: &str) -> Result<Option<NameInfo>, LedgerError> {
    read(s, &k::name(name))
}

pub fn model(s: &Overlay, m: &ModelRef) -> Result<Option<ModelInfo>, LedgerError> {
    read(s, &k::model(m))
}

/// `(declared, needed)` when re-executing `m`'s file showed it costs more than its
/// registration declared.
pub fn replay_misdeclared(s: &Overlay, m: &ModelRef) -> Result<Option<(u64, u64)>, LedgerError> {
    read(s, &k::replay_misdeclared(m))
}

pub fn service(s: &Overlay, node: &Address) -> Result<Option<ServiceInfo>, LedgerError> {
    read(s, &k::service(node))
}

pub(crate) fn put_model(s: &mut Overlay, info: &ModelInfo) {
    write(s, &k::model(&info.spec.model_ref()), info);
}

/// The current owner of a model version (the owner of its name).
pub fn owner_of(s: &Overlay, m: &ModelRef) -> Result<Option<Address>, LedgerError> {
    Ok(name_info(s, &m.name)?.map(|n| n.owner))
}

/// `Action::RegisterDataset`.
pub fn register_dataset(
    s: &mut Overlay,
    ctx: &BlockCtx,
    owner: &Address,
    spec: &DatasetSpec,
    events: &mut Vec<Event>,
) -> TxOutcome {
    tx_try!(spec
        .check()
        .map_err(|reason| TxError::InvalidSpec { reason }));
    if dataset(s, &spec.name)?.is_some() {
        return Ok(Err(TxError::DatasetExists {
            name: spec.name.clone(),
        }));
    }
    write(
        s,
        &k::dataset(&spec.name),
        &DatasetInfo {
            spec: spec.clone(),
            owner: *owner,
            registered_height: ctx.height,
        },
    );
    events.push(Event::DatasetRegistered {
        name: spec.name.clone(),
        owner: *owner,
        content_hash: spec.content_hash,
    });
    Ok(Ok(()))
}

/// A model licensed `licence` by `owner` may build on an asset licensed `upstream`.
fn compatible(
    upstream: &Licence,
    licence: &Licence,
    owner: &Address,
    what: &str,
) -> Result<(), TxError> {
    match upstream {
        Licence::NonCommercial if *licence != Licence::NonCommercial => {
            Err(TxError::LicenceConflict {
                reason: format!(
                    "{what} is non-commercial, so the model must be non-commercial too"
                ),
            })
        }
        Licence::AllowList { callers } if !callers.contains(owner) => {
            Err(TxError::LicenceConflict {
                reason: format!(
                    "{what} is licensed to an allow-list that does not include {owner}"
                ),
            })
        }
        _ => Ok(()),
    }
}

/// `Action::RegisterModel`.
pub fn register_model(
    s: &mut Overlay,
    ctx: &BlockCtx,
    sender: &Address,
    spec: &ModelSpec,
    events: &mut Vec<Event>,
) -> TxOutcome {
    tx_try!(spec
        .check()
        .map_err(|reason| TxError::InvalidSpec { reason }));
    // `replay` only for a model whose disputes can be decided in a block.
    if spec.tiers.contains(&opal_types::Tier::Replay) {
        let limit = crate::params::inference(s)?.max_replay_cost;
        let needed = spec.replay_cost.unwrap_or(u64::MAX);
        if needed > limit {
            return Ok(Err(TxError::ReplayTooCostly { needed, limit }));
        }
    }
    let name = name_info(s, &spec.name)?;
    let expected = match &name {
        None => 1,
        Some(n) if n.owner != *sender => {
            return Ok(Err(TxError::NotOwner {
                name: spec.name.clone(),
                owner: n.owner,
            }))
        }
        Some(n) => n.latest_version.saturating_add(1),
    };
    if spec.version != expected {
        return Ok(Err(TxError::BadVersion {
            name: spec.name.clone(),
            expected,
            got: spec.version,
        }));
    }
    let me = spec.model_ref();
    if let Some(p) = &spec.parent {
        let Some(parent) = model(s, p)? else {
            return Ok(Err(TxError::UnknownModel {
                model: p.to_string(),
            }));
        };
        tx_try!(compatible(
            &parent.spec.licence,
            &spec.licence,
            sender,
            &format!("parent model {p}")
        ));
    }
    for d in &spec.datasets {
        let Some(ds) = dataset(s, &d.dataset)? else {
            return Ok(Err(TxError::UnknownDataset {
                name: d.dataset.clone(),
            }));
        };
        if d.bps < ds.spec.min_share_bps {
            return Ok(Err(TxError::ShareTooLow {
                dataset: d.dataset.clone(),
                min_bps: ds.spec.min_share_bps,
                got: d.bps,
            }));
        }
        tx_try!(compatible(
            &ds.spec.licence,
            &spec.licence,
            sender,
            &format!("dataset {}", d.dataset)
        ));
    }
    // A weight commitment is the id of a zk verifying key; once that key is published, it must
    // have been made from this file.
    if let Some(id) = &spec.weight_commitment {
        match super::zk_keys::published_file_hash(s, id)? {
            Some(Ok(key_file)) if key_file != spec.content_hash => {
                return Ok(Err(super::zk_keys::file_mismatch(
                    &me,
                    key_file,
                    spec.content_hash,
                )));
            }
            Some(Err(e)) => return Ok(Err(e)),
            _ => {}
        }
    }
    let owner = name.map(|n| n.owner).unwrap_or(*sender);
    write(
        s,
        &k::name(&spec.name),
        &NameInfo {
            owner,
            latest_version: spec.version,
        },
    );
    put_model(
        s,
        &ModelInfo {
            spec: spec.clone(),
            registered_by: *sender,
            registered_height: ctx.height,
            calls: 0,
            revenue: Amount::ZERO,
        },
    );
    if let Some(p) = &spec.parent {
        write(s, &k::child(p, &me), &());
    }
    for d in &spec.datasets {
        write(s, &k::dataset_user(&d.dataset, &me), &());
    }
    if let Some(id) = &spec.weight_commitment {
        super::zk_keys::add_user(s, id, &me);
    }
    events.push(Event::ModelRegistered {
        model: me,
        owner,
        content_hash: spec.content_hash,
        parent: spec.parent.clone(),
        datasets: spec.datasets.iter().map(|d| d.dataset.clone()).collect(),
    });
    Ok(Ok(()))
}

/// `Action::TransferModel`: the name and every version (and their future royalties) change hands.
pub fn transfer_model(
    s: &mut Overlay,
    sender: &Address,
    name: &str,
    new_owner: &Address,
    events: &mut Vec<Event>,
) -> TxOutcome {
    let Some(mut info) = name_info(s, name)? else {
        return Ok(Err(TxError::UnknownModel {
            model: name.to_string(),
        }));
    };
    if info.owner != *sender {
        return Ok(Err(TxError::NotOwner {
            name: name.to_string(),
            owner: info.owner,
        }));
    }
    info.owner = *new_owner;
    write(s, &k::name(name), &info);
    events.push(Event::ModelTransferred {
        name: name.to_string(),
        from: *sender,
        to: *new_owner,
    });
    Ok(Ok(()))
}

/// Least role bond an inference node must hold to declare and settle.
pub fn check_inference_node(
    s: &Overlay,
    who: &Address,
) -> Result<Result<(), TxError>, LedgerError> {
    let min = staking::params(s)?.min_inference_node_stake;
    let bond = staking::role_bond(s, Role::InferenceNode, who)?;
    if bond < min || bond.is_zero() {
        return Ok(Err(TxError::NotInferenceNode { who: *who, min }));
    }
    Ok(Ok(()))
}

/// `Action::DeclareService`.
pub fn declare_service(
    s: &mut Overlay,
    ctx: &BlockCtx,
    node: &Address,
    spec: &ServiceSpec,
    events: &mut Vec<Event>,
) -> TxOutcome {
    tx_try!(spec
        .check()
        .map_err(|reason| TxError::InvalidSpec { reason }));
    tx_try!(check_inference_node(s, node)?);
    for o in &spec.offers {
        let Some(m) = model(s, &o.model)? else {
            return Ok(Err(TxError::UnknownModel {
                model: o.model.to_string(),
            }));
        };
        for t in &o.tiers {
            if !m.spec.tiers.contains(t) {
                return Ok(Err(TxError::TierNotAllowed {
                    model: o.model.to_string(),
                    tier: t.as_str().into(),
                }));
            }
        }
    }
    write(
        s,
        &k::service(node),
        &ServiceInfo {
            node: *node,
            spec: spec.clone(),
            declared_height: ctx.height,
        },
    );
    events.push(Event::ServiceDeclared {
        node: *node,
        endpoint: spec.endpoint.clone(),
        models: spec.offers.iter().map(|o| o.model.clone()).collect(),
    });
    Ok(Ok(()))
}

/// The lineage of a model: its ancestors (parent chain), the datasets of every model on that
/// chain, and the models fine-tuned from it. Bounded by `max_depth` ancestors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    pub model: ModelRef,
    pub owner: Option<Address>,
    pub datasets: Vec<LineageDataset>,
    pub ancestors: Vec<LineageAncestor>,
    pub children: Vec<ModelRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageDataset {
    pub name: String,
    pub owner: Option<Address>,
    pub bps: u32,
    pub content_hash: Option<opal_types::Hash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageAncestor {
    pub model: ModelRef,
    pub owner: Option<Address>,
    pub datasets: Vec<String>,
}

fn lineage_datasets(s: &Overlay, spec: &ModelSpec) -> Result<Vec<LineageDataset>, LedgerError> {
    spec.datasets
        .iter()
        .map(|d| {
            let info = dataset(s, &d.dataset)?;
            Ok(LineageDataset {
                name: d.dataset.clone(),
                owner: info.as_ref().map(|i| i.owner),
                bps: d.bps,
                content_hash: info.map(|i| i.spec.content_hash),
            })
        })
        .collect()
}

pub fn lineage(
    s: &Overlay,
    m: &ModelRef,
    max_depth: usize,
) -> Result<Option<Lineage>, LedgerError> {
    let Some(info) = model(s, m)? else {
        return Ok(None);
    };
    let mut ancestors = Vec::new();
    let mut next = info.spec.parent.clone();
    while let Some(p) = next {
        if ancestors.len() >= max_depth {
            break;
        }
        let pi = model(s, &p)?;
        ancestors.push(LineageAncestor {
            model: p.clone(),
            owner: owner_of(s, &p)?,
            datasets: pi
                .as_ref()
                .map(|i| i.spec.datasets.iter().map(|d| d.dataset.clone()).collect())
                .unwrap_or_default(),
        });
        next = pi.and_then(|i| i.spec.parent);
    }
    let mut children = Vec::new();
    let prefix = k::children(m);
    for (key, _) in s.prefix(&prefix)? {
        let rest = &key[prefix.len()..];
        if rest.len() < 5 {
            continue;
        }
        let (name, ver) = rest.split_at(rest.len() - 5);
        let v = u32::from_be_bytes([ver[1], ver[2], ver[3], ver[4]]);
        children.push(ModelRef::new(String::from_utf8_lossy(name).into_owned(), v));
    }
    Ok(Some(Lineage {
        model: m.clone(),
        owner: owner_of(s, m)?,
        datasets: lineage_datasets(s, &info.spec)?,
        ancestors,
        children,
    }))
}

/// Models that name `dataset` in their lineage.
pub fn dataset_users(s: &Overlay, name: &str) -> Result<Vec<ModelRef>, LedgerError> {
    let prefix = k::dataset_users(name);
    let mut out = Vec::new();
    for (key, _) in s.prefix(&prefix)? {
        let rest = &key[prefix.len()..];
        if rest.len() < 5 {
            continue;
        }
        let (n, ver) = rest.split_at(rest.len() - 5);
        let v = u32::from_be_bytes([ver[1], ver[2], ver[3], ver[4]]);
        out.push(ModelRef::new(String::from_utf8_lossy(n).into_owned(), v));
    }
    Ok(out)
}

/// Every registered model version, in name then version order.
pub fn models(s: &Overlay) -> Result<Vec<ModelInfo>, LedgerError> {
    let mut out = Vec::new();
    for (key, v) in s.prefix(k::MODEL_PREFIX)? {
        out.push(borsh::from_slice(&v).map_err(|e| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// Every declared service.
pub fn services(s: &Overlay) -> Result<Vec<ServiceInfo>, LedgerError> {
    let mut out = Vec::new();
    for (key, v) in s.prefix(k::SERVICE_PREFIX)? {
        out.push(borsh::from_slice(&v).map_err(|e| LedgerError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// The `registry` component ([`super::Component`]).
pub struct Registry;

impl super::Component for Registry {
    fn name(&self) -> &'static str {
        "registry"
    }

    fn deliver_tx(&self, s: &mut Overlay, tx: TxCall, ev: &mut Vec<Event>) -> TxOutcome {
        let (ctx, sender, action) = (tx.ctx, tx.sender, tx.action);
        use opal_types::Action as A;
        match action {
            A::RegisterDataset { spec } => register_dataset(s, ctx, sender, spec, ev),
            A::RegisterModel { spec } => register_model(s, ctx, sender, spec, ev),
            A::TransferModel { name, new_owner } => transfer_model(s, sender, name, new_owner, ev),
            A::DeclareService { spec } => declare_service(s, ctx, sender, spec, ev),
            other => super::not_routed_here(self.name(), other),
        }
    }
}
