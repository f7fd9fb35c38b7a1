//! A model's registration from its file and its owner's terms: the spec `RegisterModel`
//! carries, and the zk key to publish when the model is offered in the `zk` tier.

use crate::{
    declare_file, default_tiers, read_bounded, zk_key, OwnerError, ZkKey, MAX_MODEL_BYTES,
};
use opal_types::registry::{DatasetShare, Licence, ModelFormat, ModelRef, ModelSpec, Tier};
use opal_types::Amount;
use std::path::Path;

/// What the owner decides.
#[derive(Debug, Clone)]
pub struct Terms {
    pub name: String,
    /// `None`: the next version of the name, as the chain says.
    pub version: Option<u32>,
    pub price: Amount,
    pub licence: Licence,
    pub parent: Option<ModelRef>,
    pub parent_bps: u32,
    pub datasets: Vec<DatasetShare>,
    /// The tiers to offer it under; `None`: [`default_tiers`] of its format, less `replay` if
    /// the chain cannot re-execute it.
    pub tiers: Option<Vec<Tier>>,
}

/// A registration ready to submit.
pub struct Registration {
    pub spec: ModelSpec,
    /// For the `zk` tier: the verifying key and the file it was made from, for
    /// `PublishZkKey` (the ledger recomputes the key's commitments from the file).
    pub zk: Option<(ZkKey, Vec<u8>)>,
    /// What was decided for the owner (a default tier left out), to tell them.
    pub notes: Vec<String>,
}

/// What the registration asks of the chain, only when it needs it.
pub trait Registry {
    /// The version after the newest registered under `name` (1 for a new name).
    fn next_version(&mut self, name: &str) -> Result<u32, OwnerError>;
    /// The most operations the chain re-executes in a block (`None`: no limit known).
    fn max_replay_cost(&mut self) -> Result<Option<u64>, OwnerError>;
}

/// The registration of `file` under `terms`. The chain's replay limit is asked only if the tiers
/// include `replay`. A re-execution tier is only honest if the chain can re-execute the model in a
/// block, or no dispute about it could be decided: a default `replay` tier is dropped with a
/// note, an asked-for one is an error.
pub fn registration(
    file: &Path,
    terms: Terms,
    chain: &mut dyn Registry,
) -> Result<Registration, OwnerError> {
    let d = declare_file(file)?;
    let version = match terms.version {
        Some(v) => v,
        None => chain.next_version(&terms.name)?,
    };
    let asked = terms.tiers.is_some();
    let mut tiers = terms.tiers.unwrap_or_else(|| default_tiers(d.format));
    let mut notes = vec![];
    if let (Some(needed), true) = (d.replay_cost, tiers.contains(&Tier::Replay)) {
        if let Some(limit) = chain.max_replay_cost()? {
            if needed > limit {
                if asked {
                    return Err(OwnerError::ReplayTooCostly { needed, limit });
                }
                notes.push(format!("not offering `replay`: re-executing this model costs {needed} operations, the chain allows {limit} per block"));
                tiers.retain(|t| *t != Tier::Replay);
            }
        }
    }
    // The zk tier needs the weight commitment: the id of the model's opal-zk verifying key
    // (the weights committed once; every proof is checked against it).
    let zk = if tiers.contains(&Tier::Zk) {
        if d.format != ModelFormat::OpalQuant {
            return Err(OwnerError::ZkNeedsCanonical);
        }
        let bytes = read_bounded(file, MAX_MODEL_BYTES)?;
        Some((zk_key(&bytes)?, bytes))
    } else {
        None
    };
    let spec = ModelSpec {
        name: terms.name,
        version,
        parent: terms.parent,
        parent_bps: terms.parent_bps,
        datasets: terms.datasets,
        content_hash: d.content_hash,
        size: d.size,
        format: d.format,
        input_schema: d.input_schema,
        output_schema: d.output_schema,
        price: terms.price,
        licence: terms.licence,
        tiers,
        weight_commitment: zk.as_ref().map(|(k, _)| k.weight_commitment),
        replay_cost: d.replay_cost,
    };
    spec.check().map_err(|e| OwnerError::Spec(e.to_string()))?;
    Ok(Registration { spec, zk, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain whose replay limit is `limit`; asking it when `asked` is false fails the test.
    struct Fixed {
        limit: Option<u64>,
        asked: bool,
    }

    impl Registry for Fixed {
        fn next_version(&mut self, _: &str) -> Result<u32, OwnerError> {
            Ok(3)
        }
        fn max_replay_cost(&mut self) -> Result<Option<u64>, OwnerError> {
            assert!(
                self.asked,
                "the replay limit was asked without a replay tier"
            );
            Ok(self.limit)
        }
    }

    fn chain(limit: Option<u64>) -> Fixed {
        Fixed { limit, asked: true }
    }

    fn terms(tiers: Option<Vec<Tier>>) -> Terms {
        Terms {
            name: "digits-q".into(),
            version: None,
            price: Amount(100),
            licence: Licence::Open,
            parent: None,
            parent_bps: 0,
            datasets: vec![],
            tiers,
        }
    }

    fn demo() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/digits/model.opalq")
    }

    #[test]
    fn a_default_replay_tier_the_chain_cannot_re_execute_is_dropped_and_an_asked_one_refused() {
        let r = registration(&demo(), terms(None), &mut chain(Some(1))).unwrap();
        assert_eq!(r.spec.tiers, vec![Tier::Signed]);
        assert_eq!(r.spec.version, 3, "the chain's next version");
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        let e = registration(
            &demo(),
            terms(Some(vec![Tier::Replay])),
            &mut chain(Some(1)),
        )
        .err()
        .unwrap();
        assert!(
            matches!(e, OwnerError::ReplayTooCostly { limit: 1, .. }),
            "{e}"
        );
        let r = registration(&demo(), terms(None), &mut chain(None)).unwrap();
        assert_eq!(r.spec.tiers, vec![Tier::Signed, Tier::Replay]);
        assert!(r.spec.replay_cost.is_some());
    }

    #[test]
    fn the_zk_tier_names_the_verifying_key_as_the_weight_commitment() {
        let mut t = terms(Some(vec![Tier::Signed, Tier::Zk]));
        t.version = Some(1);
        let mut c = Fixed {
            limit: None,
            asked: false,
        };
        let r = registration(&demo(), t, &mut c).unwrap();
        assert_eq!(r.spec.version, 1);
        let (k, file) = r.zk.expect("a key to publish");
        assert_eq!(r.spec.weight_commitment, Some(k.weight_commitment));
        assert_eq!(file.len() as u64, r.spec.size);
    }
}
