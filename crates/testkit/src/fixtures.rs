//! Fixtures: the demo model, its registration and offer, a committee genesis.

use crate::chain::{genesis, TestChain};
use opal_ledger::*;
use opal_types::*;

/// The bytes of the canonical demo model, `models/digits/model.opalq`.
pub fn demo_model_file() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.opalq"
    ))
    .expect("models/digits/model.opalq")
}

/// One digit for the demo model: a canonical `f32` tensor of shape `[1, 64]`.
pub fn digit_tensor(v: &[f32]) -> Vec<u8> {
    opal_ledger::canonical::f32_tensor_bytes(&[1, v.len() as u64], v)
}

/// `owner` registers the demo model file as `digits-q@1` (opal_quant, price 100, in `tiers`, with
/// `weight_commitment`); `node` bonds `node_bond` as an inference node and offers it in the same
/// tiers (fee 90); `caller` funds an escrow of 600,000 with `node`. Asserts every step applied.
pub fn offer_demo_model(
    c: &mut TestChain,
    parties: [&SecretKey; 3],
    file: &[u8],
    tiers: Vec<Tier>,
    weight_commitment: Option<Hash>,
    node_bond: u128,
) {
    offer_model(
        c,
        parties,
        demo_spec(file, tiers, weight_commitment),
        node_bond,
        90,
    );
}

/// What a canonical model file costs to re-execute (`canonical::cost`), as `opal model
/// register` measures it for the registration's `replay_cost`.
pub fn replay_cost_of(file: &[u8]) -> Option<u64> {
    let m = opal_ledger::canonical::load_model(file).ok()?;
    Some(opal_ledger::canonical::cost(&m))
}

/// The registration of the demo model file as `digits-q@1` (opal_quant, price 100, in `tiers`,
/// with `weight_commitment` and the file's true `replay_cost`).
pub fn demo_spec(
    file: &[u8],
    tiers: Vec<Tier>,
    weight_commitment: Option<Hash>,
) -> opal_types::registry::ModelSpec {
    use opal_types::registry::{Licence, ModelFormat, ModelSpec};
    ModelSpec {
        name: "digits-q".into(),
        version: 1,
        parent: None,
        parent_bps: 0,
        datasets: vec![],
        content_hash: Hash(*blake3::hash(file).as_bytes()),
        size: file.len() as u64,
        format: ModelFormat::OpalQuant,
        input_schema: "[]".into(),
        output_schema: "[]".into(),
        price: Amount(100),
        licence: Licence::Open,
        tiers,
        weight_commitment,
        replay_cost: replay_cost_of(file),
    }
}

/// `owner` registers `spec`; `node` bonds `node_bond` as an inference node and offers the model
/// in the spec's tiers for `fee`; `caller` funds an escrow of 600,000 with `node`. Asserts every
/// step applied.
pub fn offer_model(
    c: &mut TestChain,
    [owner, node, caller]: [&SecretKey; 3],
    spec: opal_types::registry::ModelSpec,
    node_bond: u128,
    fee: u128,
) {
    use opal_types::registry::{ServiceOffer, ServiceSpec};
    let (model, tiers) = (ModelRef::new(&spec.name, spec.version), spec.tiers.clone());
    let r = c.run(vec![
        c.tx(owner, 0, Action::RegisterModel { spec }),
        c.tx(
            node,
            0,
            Action::BondRole {
                role: Role::InferenceNode,
                amount: Amount(node_bond),
            },
        ),
        c.tx(
            caller,
            0,
            Action::FundEscrow {
                node: node.address(),
                amount: Amount(600_000),
            },
        ),
    ]);
    assert_eq!(r, vec![None, None, None]);
    let r = c.run(vec![c.tx(
        node,
        0,
        Action::DeclareService {
            spec: ServiceSpec {
                endpoint: "http://127.0.0.1:9000".into(),
                offers: vec![ServiceOffer {
                    model,
                    tiers,
                    fee: Amount(fee),
                }],
            },
        },
    )]);
    assert_eq!(r, vec![None]);
}

/// The test genesis with three validators whose operators are `validators`, staking 4, 3 and
/// 3 million (two thirds of the power needs the first and one other), each with the fees of a
/// few votes.
pub fn committee_genesis(validators: [&SecretKey; 3]) -> Genesis {
    let mut g = genesis();
    g.validators = validators
        .iter()
        .enumerate()
        .map(|(i, v)| GenesisValidator {
            name: format!("v{i}"),
            public_key: v.public_key(),
            operator: None,
            stake: Amount(if i == 0 { 4_000_000 } else { 3_000_000 }),
            vrf_key: v.vrf_public_key(),
        })
        .collect();
    for v in validators {
        g.accounts.push(GenesisAccount {
            address: v.address(),
            balance: Amount(10_000),
        });
    }
    g
}

/// A `signed` request from [`crate::caller`] to [`crate::node`] for the demo model as
/// [`offer_demo_model`] registers it (`digits-q@1`), unsigned: maximum price 1,000, expiring a
/// minute after the chain's time, input hash `[1; 32]` (set the real one to run it).
pub fn demo_request(c: &TestChain, salt: u64) -> receipt::InferenceRequest {
    receipt::InferenceRequest {
        chain_id: c.chain_id.clone(),
        node: crate::node().address(),
        model: ModelRef::new("digits-q", 1),
        model_hash: Hash(*blake3::hash(&demo_model_file()).as_bytes()),
        input_hash: Hash([1; 32]),
        tier: Tier::Signed,
        max_price: Amount(1_000),
        commercial: false,
        salt,
        expires_ms: c.time_ms + 60_000,
        escalation: Default::default(),
    }
}

/// One request from [`crate::caller`] that [`crate::node`] served: what [`receipt`] signs.
/// The request allows up to 1,000 and expires ten minutes after the chain's time.
#[derive(Debug, Clone)]
pub struct Call {
    pub model: ModelRef,
    pub model_hash: Hash,
    pub input_hash: Hash,
    pub tier: Tier,
    pub escalation: Escalation,
    pub salt: u64,
    pub output_hash: Hash,
    pub price: Amount,
    pub units: u64,
}

/// The receipt of `call`, signed by the caller (the request) and the node (the answer), at the
/// chain's height.
pub fn receipt(c: &TestChain, call: Call) -> Receipt {
    let req = receipt::InferenceRequest {
        chain_id: c.chain_id.clone(),
        node: crate::node().address(),
        model: call.model,
        model_hash: call.model_hash,
        input_hash: call.input_hash,
        tier: call.tier,
        max_price: Amount(1_000),
        commercial: false,
        salt: call.salt,
        expires_ms: c.time_ms + 600_000,
        escalation: call.escalation,
    };
    receipt::ReceiptBody {
        request: req.sign(&crate::caller()),
        output_hash: call.output_hash,
        price: call.price,
        units: call.units,
        height: c.height,
        node_key: crate::node().public_key(),
    }
    .sign(&crate::node())
}

impl TestChain {
    /// Settle `r` from [`crate::node`] (it must be paid) and run the next block, which must
    /// open its audit.
    pub fn settle_and_draw(&mut self, r: &Receipt) {
        assert_eq!(
            self.settle_one(&crate::node(), r),
            None,
            "the receipt is paid"
        );
        let (_, ev) = self.block_outcome(vec![]);
        let id = r.request_id();
        assert!(
            ev.iter()
                .any(|e| matches!(e, Event::AuditOpened { request_id, .. } if *request_id == id)),
            "the next block draws it for audit: {ev:?}"
        );
    }
}
