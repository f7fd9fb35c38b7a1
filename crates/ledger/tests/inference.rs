//! Registry, escrow and settlement scenarios on a real store, with the supply invariant checked
//! after every block (by `TestChain::block`).

use opal_ledger::components::{inference, registry};
use opal_ledger::events::Event;
use opal_testkit::{caller, key, node, owner, TestChain};
use opal_types::receipt::{InferenceRequest, ReceiptBody};
use opal_types::registry::{
    DatasetShare, DatasetSpec, Licence, ModelFormat, ModelSpec, ServiceOffer, ServiceSpec,
};
use opal_types::*;

// Accounts: 1 dataset owner (and owner of the parent model), 2 model owner, 3 caller, 4 node.
fn ds_owner() -> SecretKey {
    key(1)
}

const MODEL_HASH: Hash = Hash([7; 32]);

fn dataset_spec(name: &str, licence: Licence, min_share_bps: u32) -> DatasetSpec {
    DatasetSpec {
        name: name.into(),
        content_hash: Hash([9; 32]),
        size: 1234,
        licence,
        min_share_bps,
    }
}

fn model_spec(name: &str, version: u32) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        version,
        parent: None,
        parent_bps: 0,
        datasets: vec![],
        content_hash: MODEL_HASH,
        size: 4096,
        format: ModelFormat::Onnx,
        input_schema: "[]".into(),
        output_schema: "[]".into(),
        price: Amount(100),
        licence: Licence::Open,
        tiers: vec![Tier::Signed, Tier::Tee],
        weight_commitment: None,
        replay_cost: None,
    }
}

fn digits() -> ModelRef {
    ModelRef::new("digits-mlp", 1)
}

/// Dataset `digits` (2000 bps minimum), parent `base@1`, model `digits-mlp@1` (price 100, parent
/// 1000 bps, dataset 2000 bps), node bonded and serving with fee 90, caller escrow 10,000.
fn setup() -> TestChain {
    let mut c = TestChain::new();
    let mut base = model_spec("base", 1);
    base.content_hash = Hash([8; 32]);
    let mut m = model_spec("digits-mlp", 1);
    m.parent = Some(ModelRef::new("base", 1));
    m.parent_bps = 1_000;
    m.datasets = vec![DatasetShare {
        dataset: "digits".into(),
        bps: 2_000,
    }];
    let r = c.run(vec![
        c.tx(
            &ds_owner(),
            0,
            Action::RegisterDataset {
                spec: dataset_spec("digits", Licence::Open, 2_000),
            },
        ),
        c.tx(&ds_owner(), 1, Action::RegisterModel { spec: base }),
        c.tx(
            &node(),
            0,
            Action::BondRole {
                role: Role::InferenceNode,
                amount: Amount(100_000),
            },
        ),
    ]);
    assert_eq!(r, vec![None, None, None]);
    let r = c.run(vec![
        c.tx(&owner(), 0, Action::RegisterModel { spec: m }),
        c.tx(
            &caller(),
            0,
            Action::FundEscrow {
                node: node().address(),
                amount: Amount(10_000),
            },
        ),
    ]);
    assert_eq!(r, vec![None, None]);
    let r = c.run(vec![c.tx(
        &node(),
        0,
        Action::DeclareService {
            spec: ServiceSpec {
                endpoint: "http://127.0.0.1:9000".into(),
                offers: vec![ServiceOffer {
                    model: digits(),
                    tiers: vec![Tier::Signed],
                    fee: Amount(90),
                }],
            },
        },
    )]);
    assert_eq!(r, vec![None]);
    c
}

fn request(c: &TestChain, salt: u64) -> InferenceRequest {
    InferenceRequest {
        chain_id: c.chain_id.clone(),
        node: node().address(),
        model: digits(),
        model_hash: MODEL_HASH,
        input_hash: Hash([1; 32]),
        tier: Tier::Signed,
        max_price: Amount(250),
        commercial: false,
        salt,
        expires_ms: c.time_ms + 30_000,
        escalation: Default::default(),
    }
}

fn receipt(c: &TestChain, req: InferenceRequest, by: &SecretKey, price: u128) -> Receipt {
    ReceiptBody {
        request: req.sign(&caller()),
        output_hash: Hash([2; 32]),
        price: Amount(price),
        units: 1,
        height: c.height,
        node_key: by.public_key(),
    }
    .sign(by)
}

fn settle(c: &mut TestChain, receipts: Vec<Receipt>) -> (Option<String>, Vec<Event>) {
    let tx = c.tx(&node(), 0, Action::SettleReceipts { receipts });
    let r = c.block(vec![tx]);
    let t = r.txs.into_iter().next().unwrap();
    (t.code, t.events)
}

fn rejections(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ReceiptRejected { code, .. } => Some(code.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_receipt_pays_everyone_in_the_lineage_exactly_once() {
    let mut c = setup();
    let before = |c: &TestChain| {
        (
            c.balance(&ds_owner()),
            c.balance(&owner()),
            c.balance(&node()),
            c.treasury(),
        )
    };
    let (ds0, own0, node0, tr0) = before(&c);
    let r = receipt(&c, request(&c, 1), &node(), 200);
    let (code, events) = settle(&mut c, vec![r.clone()]);
    assert_eq!(code, None);
    assert!(rejections(&events).is_empty(), "{events:?}");
    // price 200: treasury 5% = 10; royalties 100 -> parent 10 + dataset 20 + owner 70; node 90.
    // The dataset owner also owns the parent. The node also paid the fee of its settlement tx.
    let fee = opal_ledger::Params::default().min_fee.0;
    let (ds1, own1, node1, tr1) = before(&c);
    assert_eq!(ds1.0 - ds0.0, 10 + 20);
    assert_eq!(own1.0 - own0.0, 70);
    assert_eq!(node1.0 + fee - node0.0, 90);
    assert_eq!(tr1.0 - tr0.0, 10);
    let o = c.overlay();
    let e = inference::escrow(&o, &caller().address(), &node().address()).unwrap();
    assert_eq!(e.balance, Amount(10_000 - 200));
    let m = registry::model(&o, &digits()).unwrap().unwrap();
    assert_eq!((m.calls, m.revenue), (1, Amount(200)));
    let s = inference::settled(&o, &r.request_id()).unwrap().unwrap();
    assert_eq!(s.receipt_id, r.id());
    assert_eq!(s.price, Amount(200));

    // The same receipt again: refused, nothing paid.
    let root = c.root();
    let (code, events) = settle(&mut c, vec![r]);
    assert_eq!(code, None);
    assert_eq!(rejections(&events), vec!["already_settled"]);
    assert_ne!(c.root(), root, "the nonce and fee still move");
    let o = c.overlay();
    let e = inference::escrow(&o, &caller().address(), &node().address()).unwrap();
    assert_eq!(e.balance, Amount(10_000 - 200));
}

#[test]
fn bad_receipts_are_rejected_one_by_one_and_good_ones_in_the_batch_still_pay() {
    let mut c = setup();
    let good = receipt(&c, request(&c, 1), &node(), 200);

    let mut wrong_hash = request(&c, 2);
    wrong_hash.model_hash = Hash([0xee; 32]);
    let wrong_hash = receipt(&c, wrong_hash, &node(), 200);

    let above_max = receipt(&c, request(&c, 3), &node(), 251);
    let too_low = receipt(&c, request(&c, 4), &node(), 105); // exactly what is owed: pays
    let mut base = request(&c, 5);
    base.model = ModelRef::new("base", 1); // registered, but the node does not offer it
    base.model_hash = Hash([8; 32]);
    let not_offered = receipt(&c, base, &node(), 200);
    let mut replay = request(&c, 10);
    replay.tier = Tier::Tee; // allowed by the model; its evidence checks are not built yet
    let replay = receipt(&c, replay, &node(), 200);
    let mut expired = request(&c, 6);
    expired.expires_ms = c.time_ms; // its grace ends before the others' expiry (time + 30 s)
    let expired = receipt(&c, expired, &node(), 200);
    let mut forged = receipt(&c, request(&c, 7), &node(), 200);
    forged.body.output_hash = Hash([3; 32]); // signature no longer matches
    let mut big = request(&c, 8);
    big.max_price = Amount(1_000_000);
    let escrow_short = receipt(&c, big, &node(), 20_000);

    let grace = opal_ledger::params::InferenceParams::default().settle_grace_ms;
    let t = c.time_ms;
    c.advance_time_to(t + grace + 1_000);
    let (code, events) = settle(
        &mut c,
        vec![
            wrong_hash,
            above_max,
            too_low.clone(),
            not_offered,
            expired,
            forged,
            escrow_short,
            replay,
            good.clone(),
        ],
    );
    assert_eq!(code, None);
    // 105: treasury 5 (floor of 5.25) + royalties 100 = 105 owed, so it pays (node gets 0).
    assert_eq!(
        rejections(&events),
        vec![
            "model_hash_mismatch",
            "invalid_receipt",
            "not_offered",
            "expired",
            "invalid_receipt",
            "escrow_short",
            "tier_not_settleable",
        ]
    );
    let o = c.overlay();
    assert!(inference::settled(&o, &good.request_id())
        .unwrap()
        .is_some());
    assert!(inference::settled(&o, &too_low.request_id())
        .unwrap()
        .is_some());
    let lower = receipt(&c, request(&c, 9), &node(), 104);
    let (_, events) = settle(&mut c, vec![lower]);
    assert_eq!(rejections(&events), vec!["price_too_low"]);
    // Only LLM receipts bill more than one unit; zero units is not a receipt at all.
    for (salt, units, code) in [(11, 2, "bad_units"), (12, 0, "invalid_receipt")] {
        let mut b = receipt(&c, request(&c, salt), &node(), 200).body;
        b.units = units;
        let (_, events) = settle(&mut c, vec![b.sign(&node())]);
        assert_eq!(rejections(&events), vec![code]);
    }
}

#[test]
fn a_batch_with_another_nodes_receipt_is_refused_whole() {
    let mut c = setup();
    let good = receipt(&c, request(&c, 1), &node(), 200);
    let mut other = request(&c, 2);
    other.node = key(5).address();
    let other = receipt(&c, other, &key(5), 200);
    let root = c.overlay();
    let (code, _) = settle(&mut c, vec![good.clone(), other]);
    assert_eq!(code.as_deref(), Some("not_your_receipt"));
    let o = c.overlay();
    assert!(inference::settled(&o, &good.request_id())
        .unwrap()
        .is_none());
    assert_eq!(
        inference::escrow(&o, &caller().address(), &node().address()).unwrap(),
        inference::escrow(&root, &caller().address(), &node().address()).unwrap()
    );
    let (code, _) = settle(&mut c, vec![]);
    assert_eq!(code.as_deref(), Some("empty_settlement"));
}

#[test]
fn licences_are_enforced_at_settlement() {
    let mut c = setup();
    // Version 2: non-commercial.
    let mut v2 = model_spec("digits-mlp", 2);
    v2.licence = Licence::NonCommercial;
    // Version 3: allow-list without the caller.
    let mut v3 = model_spec("digits-mlp", 3);
    v3.licence = Licence::AllowList {
        callers: vec![key(1).address()],
    };
    // Version 4: commercial with a licence fee of 50.
    let mut v4 = model_spec("digits-mlp", 4);
    v4.licence = Licence::Commercial { fee: Amount(50) };
    let r = c.run(vec![
        c.tx(&owner(), 0, Action::RegisterModel { spec: v2 }),
        c.tx(&owner(), 1, Action::RegisterModel { spec: v3 }),
        c.tx(&owner(), 2, Action::RegisterModel { spec: v4 }),
    ]);
    assert_eq!(r, vec![None, None, None]);
    let offers = (1..=4)
        .map(|v| ServiceOffer {
            model: ModelRef::new("digits-mlp", v),
            tiers: vec![Tier::Signed],
            fee: Amount(10),
        })
        .collect();
    let r = c.run(vec![c.tx(
        &node(),
        0,
        Action::DeclareService {
            spec: ServiceSpec {
                endpoint: "http://127.0.0.1:9000".into(),
                offers,
            },
        },
    )]);
    assert_eq!(r, vec![None]);
    let req = |v: u32, commercial: bool, salt: u64| {
        let mut r = request(&c, salt);
        r.model = ModelRef::new("digits-mlp", v);
        r.commercial = commercial;
        r
    };
    let owner0 = c.balance(&owner());
    let batch = vec![
        receipt(&c, req(2, true, 1), &node(), 200), // non-commercial, commercial use
        receipt(&c, req(2, false, 2), &node(), 200), // fine
        receipt(&c, req(3, false, 3), &node(), 200), // not on the allow-list
        receipt(&c, req(4, true, 4), &node(), 150), // owes 100 + 50 + 7 treasury > 150
        receipt(&c, req(4, true, 5), &node(), 200), // fine: owner gets 150
    ];
    let (code, events) = settle(&mut c, batch);
    assert_eq!(code, None);
    assert_eq!(
        rejections(&events),
        vec!["licence", "licence", "price_too_low"]
    );
    assert_eq!(c.balance(&owner()).0 - owner0.0, 100 + 150);
}

#[test]
fn escrow_closes_only_after_the_unlock_delay_and_still_settles_meanwhile() {
    let mut c = setup();
    let served = receipt(&c, request(&c, 1), &node(), 200);
    let n = node().address();
    let r = c.run(vec![c.tx(&caller(), 0, Action::CloseEscrow { node: n })]);
    assert_eq!(r, vec![None]);
    let r = c.run(vec![
        c.tx(&caller(), 0, Action::WithdrawEscrow { node: n }),
        c.tx(
            &caller(),
            0,
            Action::FundEscrow {
                node: n,
                amount: Amount(5),
            },
        ),
        c.tx(&caller(), 0, Action::CloseEscrow { node: n }),
    ]);
    assert_eq!(
        r,
        vec![
            Some("escrow_locked".into()),
            Some("escrow_closing".into()),
            Some("escrow_closing".into())
        ]
    );
    // The node settles what it served before the close.
    let (code, events) = settle(&mut c, vec![served]);
    assert_eq!((code, rejections(&events)), (None, vec![]));
    let unlock = inference::escrow(&c.overlay(), &caller().address(), &n)
        .unwrap()
        .unlock_ms
        .unwrap();
    c.advance_time_to(unlock);
    let before = c.balance(&caller());
    let r = c.run(vec![c.tx(&caller(), 0, Action::WithdrawEscrow { node: n })]);
    assert_eq!(r, vec![None]);
    let fee = opal_ledger::Params::default().min_fee.0;
    assert_eq!(c.balance(&caller()).0 + fee - before.0, 10_000 - 200);
    let o = c.overlay();
    assert_eq!(inference::escrow_pool(&o).unwrap(), Amount::ZERO);
    let r = c.run(vec![
        c.tx(&caller(), 0, Action::WithdrawEscrow { node: n }),
        c.tx(&caller(), 0, Action::CloseEscrow { node: n }),
    ]);
    assert_eq!(r, vec![Some("no_escrow".into()), Some("no_escrow".into())]);
}

#[test]
fn registry_refuses_what_breaks_its_rules() {
    let mut c = setup();
    let mut nc_dataset = dataset_spec("private-set", Licence::NonCommercial, 0);
    nc_dataset.content_hash = Hash([4; 32]);
    let r = c.run(vec![c.tx(
        &ds_owner(),
        0,
        Action::RegisterDataset { spec: nc_dataset },
    )]);
    assert_eq!(r, vec![None]);

    let mut uses_nc = model_spec("other", 1);
    uses_nc.datasets = vec![DatasetShare {
        dataset: "private-set".into(),
        bps: 0,
    }];
    let mut low_share = model_spec("other", 1);
    low_share.datasets = vec![DatasetShare {
        dataset: "digits".into(),
        bps: 1_999,
    }];
    let mut unknown_ds = model_spec("other", 1);
    unknown_ds.datasets = vec![DatasetShare {
        dataset: "nope".into(),
        bps: 0,
    }];
    let mut unknown_parent = model_spec("other", 1);
    unknown_parent.parent = Some(ModelRef::new("ghost", 1));
    let mut over_split = model_spec("other", 1);
    over_split.parent = Some(ModelRef::new("base", 1));
    over_split.parent_bps = 9_000;
    over_split.datasets = vec![DatasetShare {
        dataset: "digits".into(),
        bps: 2_000,
    }];
    let bad_name = model_spec("Bad Name", 1);
    let r = c.run(vec![
        c.tx(
            &ds_owner(),
            0,
            Action::RegisterModel {
                spec: model_spec("digits-mlp", 2),
            },
        ),
        c.tx(
            &owner(),
            0,
            Action::RegisterModel {
                spec: model_spec("digits-mlp", 3),
            },
        ),
        c.tx(
            &owner(),
            0,
            Action::RegisterModel {
                spec: model_spec("fresh", 2),
            },
        ),
        c.tx(&owner(), 0, Action::RegisterModel { spec: uses_nc }),
        c.tx(&owner(), 0, Action::RegisterModel { spec: low_share }),
        c.tx(&owner(), 0, Action::RegisterModel { spec: unknown_ds }),
        c.tx(
            &owner(),
            0,
            Action::RegisterModel {
                spec: unknown_parent,
            },
        ),
        c.tx(&owner(), 0, Action::RegisterModel { spec: over_split }),
        c.tx(&owner(), 0, Action::RegisterModel { spec: bad_name }),
        c.tx(
            &owner(),
            0,
            Action::RegisterDataset {
                spec: dataset_spec("digits", Licence::Open, 0),
            },
        ),
        c.tx(
            &owner(),
            0,
            Action::TransferModel {
                name: "base".into(),
                new_owner: owner().address(),
            },
        ),
    ]);
    assert_eq!(
        r,
        vec![
            Some("not_owner".into()),
            Some("bad_version".into()),
            Some("bad_version".into()),
            Some("licence_conflict".into()),
            Some("share_too_low".into()),
            Some("unknown_dataset".into()),
            Some("unknown_model".into()),
            Some("invalid_spec".into()),
            Some("invalid_spec".into()),
            Some("dataset_exists".into()),
            Some("not_owner".into()),
        ]
    );

    // Services: no bond, unknown model, a tier the model does not allow.
    let svc = |m: ModelRef, t: Tier| ServiceSpec {
        endpoint: "http://127.0.0.1:9000".into(),
        offers: vec![ServiceOffer {
            model: m,
            tiers: vec![t],
            fee: Amount(1),
        }],
    };
    let r = c.run(vec![
        c.tx(
            &key(3),
            0,
            Action::DeclareService {
                spec: svc(digits(), Tier::Signed),
            },
        ),
        c.tx(
            &node(),
            0,
            Action::DeclareService {
                spec: svc(ModelRef::new("ghost", 1), Tier::Signed),
            },
        ),
        c.tx(
            &node(),
            0,
            Action::DeclareService {
                spec: svc(digits(), Tier::Zk),
            },
        ),
    ]);
    assert_eq!(
        r,
        vec![
            Some("not_inference_node".into()),
            Some("unknown_model".into()),
            Some("tier_not_allowed".into()),
        ]
    );
}

#[test]
fn a_transferred_model_pays_its_new_owner_and_lineage_is_queryable() {
    let mut c = setup();
    let mut child = model_spec("digits-tuned", 1);
    child.parent = Some(digits());
    child.parent_bps = 5_000;
    let r = c.run(vec![
        c.tx(
            &owner(),
            0,
            Action::TransferModel {
                name: "digits-mlp".into(),
                new_owner: key(5).address(),
            },
        ),
        c.tx(&key(1), 0, Action::RegisterModel { spec: child }),
    ]);
    assert_eq!(r, vec![None, None]);
    let o = c.overlay();
    let l = registry::lineage(&o, &digits(), 16).unwrap().unwrap();
    assert_eq!(l.owner, Some(key(5).address()));
    assert_eq!(l.ancestors.len(), 1);
    assert_eq!(l.ancestors[0].model, ModelRef::new("base", 1));
    assert_eq!(l.datasets[0].name, "digits");
    assert_eq!(l.children, vec![ModelRef::new("digits-tuned", 1)]);
    let l2 = registry::lineage(&o, &ModelRef::new("digits-tuned", 1), 16)
        .unwrap()
        .unwrap();
    assert_eq!(l2.ancestors.len(), 2);
    assert_eq!(
        registry::dataset_users(&o, "digits").unwrap(),
        vec![digits()]
    );

    let k5 = c.balance(&key(5));
    let own = c.balance(&owner());
    let r = receipt(&c, request(&c, 1), &node(), 200);
    let (code, events) = settle(&mut c, vec![r]);
    assert_eq!((code, rejections(&events)), (None, vec![]));
    assert_eq!(c.balance(&key(5)).0 - k5.0, 70);
    assert_eq!(c.balance(&owner()), own);
}
