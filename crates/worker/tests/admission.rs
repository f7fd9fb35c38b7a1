//! Admission against the ledger's settlement rule, on a real chain (`opal_testkit::TestChain`).
//!
//! The attacks here are on the node: a caller who gets work done that the ledger will then
//! refuse to pay for. Before admission asked the ledger's rule, each of them was served.

use opal_ledger::components::inference::Unsettled;
use opal_testkit::{caller, demo_model_file, key, node, offer_demo_model, offer_model, owner};
use opal_testkit::{demo_spec, TestChain};
use opal_types::receipt::{InferenceRequest, ReceiptBody, SignedRequest, SpendGrant};
use opal_types::{Action, Amount, Hash, Role, SecretKey, Tier};
use opal_worker::admission::{admit, Admitter};
use opal_worker::{Committed, ServeError};

/// The demo model offered by `node()` in `signed` and `replay` at 100 + fee 90, bond 500,000.
fn chain() -> TestChain {
    let mut c = TestChain::new();
    offer_demo_model(
        &mut c,
        [&owner(), &node(), &caller()],
        &demo_model_file(),
        vec![Tier::Signed, Tier::Replay],
        None,
        500_000,
    );
    c
}

fn request(c: &TestChain, salt: u64) -> InferenceRequest {
    opal_testkit::demo_request(c, salt)
}

fn committed(c: &TestChain) -> Committed {
    Committed {
        state: c.overlay(),
        height: c.height,
    }
}

fn who(c: &TestChain) -> Admitter<'_> {
    Admitter {
        chain_id: &c.chain_id,
        node: node().address(),
    }
}

/// Admit `sr` at the chain's time with nothing unsettled.
fn try_admit(c: &TestChain, sr: &SignedRequest) -> Result<opal_worker::Admitted, ServeError> {
    admit(&committed(c), who(c), c.time_ms, sr, Unsettled::default())
}

/// The receipt the node would sign for an admitted request.
fn receipt_for(c: &TestChain, sr: SignedRequest, price: Amount) -> opal_types::Receipt {
    ReceiptBody {
        request: sr,
        output_hash: Hash([2; 32]),
        price,
        units: 1,
        height: c.height,
        node_key: node().public_key(),
    }
    .sign(&node())
}

/// `who` funds an escrow of `amount` with the node.
fn fund(c: &mut TestChain, who: &SecretKey, amount: u128) {
    let r = c.run(vec![c.tx(
        who,
        0,
        Action::FundEscrow {
            node: node().address(),
            amount: Amount(amount),
        },
    )]);
    assert_eq!(r, vec![None]);
}

#[test]
fn an_admitted_request_is_paid_at_the_admitted_price() {
    let mut c = chain();
    let sr = request(&c, 1).sign(&caller());
    let a = try_admit(&c, &sr).expect("admitted");
    assert_eq!(a.price, Amount(190), "model price 100 + node fee 90");
    assert_eq!(a.height, c.height);
    let r = receipt_for(&c, sr.clone(), a.price);
    assert_eq!(c.settle_one(&node(), &r), None, "the ledger pays it");
    // Once paid, the same request is a replay.
    assert!(matches!(try_admit(&c, &sr), Err(ServeError::Replayed(_))));
}

#[test]
fn an_escrow_that_covers_the_price_but_not_the_audit_premium_is_refused_before_any_work() {
    let mut c = chain();
    // A caller with exactly the price in escrow asks for every request to be audited: the
    // ledger charges the price plus the premium of the extra audit rate.
    let cheap = key(1);
    fund(&mut c, &cheap, 190);
    let mut req = request(&c, 2);
    req.escalation.audit_bps = 10_000;
    let sr = req.sign(&cheap);
    match try_admit(&c, &sr) {
        Err(e @ ServeError::InsufficientEscrow { available, price }) => {
            assert_eq!(available, Amount(190));
            assert!(
                price > Amount(190),
                "the charge counts the premium: {price}"
            );
            assert_eq!((e.code(), e.status()), ("insufficient_escrow", 402));
        }
        other => panic!("expected insufficient_escrow, got {other:?}"),
    }
    // What the ledger does with such a receipt: refuses it, so a node that served it would
    // have worked for nothing.
    let r = receipt_for(&c, sr, Amount(190));
    assert_eq!(c.settle_one(&node(), &r).as_deref(), Some("escrow_short"));
}

#[test]
fn unsettled_receipts_count_against_the_escrow() {
    let c = chain();
    let sr = request(&c, 3).sign(&caller());
    let owed = Unsettled {
        escrow: Amount(600_000 - 189),
        grant: Amount::ZERO,
    };
    let e = admit(&committed(&c), who(&c), c.time_ms, &sr, owed).unwrap_err();
    assert!(
        matches!(
            e,
            ServeError::InsufficientEscrow {
                available: Amount(189),
                price: Amount(190)
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_request_under_a_spent_grant_is_refused() {
    let c = chain();
    let grant = SpendGrant {
        chain_id: c.chain_id.clone(),
        node: node().address(),
        max_total: Amount(300),
        expires_ms: c.time_ms + 600_000,
        salt: 9,
    }
    .sign(&caller());
    // A request that could cost more than the whole grant is not authorized by it.
    let e = try_admit(&c, &request(&c, 4).under_grant(grant.clone())).unwrap_err();
    assert_eq!((e.code(), e.status()), ("bad_grant", 403), "{e}");
    let mut req = request(&c, 4);
    req.max_price = Amount(300);
    let sr = req.under_grant(grant);
    // The first call fits the grant; with 190 already served under it, the second does not.
    if let Err(e) = try_admit(&c, &sr) {
        panic!("the first call under the grant is refused: {e}");
    }
    let owed = Unsettled {
        escrow: Amount(190),
        grant: Amount(190),
    };
    let e = admit(&committed(&c), who(&c), c.time_ms, &sr, owed).unwrap_err();
    assert_eq!((e.code(), e.status()), ("grant_exhausted", 402), "{e}");
}

#[test]
fn a_node_that_unbonded_does_not_serve() {
    let mut c = chain();
    let r = c.run(vec![c.tx(
        &node(),
        0,
        Action::UnbondRole {
            role: Role::InferenceNode,
            amount: Amount(500_000),
        },
    )]);
    assert_eq!(r, vec![None]);
    let e = try_admit(&c, &request(&c, 5).sign(&caller())).unwrap_err();
    assert_eq!((e.code(), e.status()), ("node_not_bonded", 503), "{e}");
}

#[test]
fn a_fee_that_leaves_the_treasury_short_is_refused() {
    // Offered with no node fee, the price is the model's 100; the treasury's 5 % of it would
    // come out of the owner's royalties, which the ledger refuses.
    let mut c = TestChain::new();
    let file = demo_model_file();
    offer_model(
        &mut c,
        [&owner(), &node(), &caller()],
        demo_spec(&file, vec![Tier::Signed], None),
        500_000,
        0,
    );
    let sr = request(&c, 6).sign(&caller());
    let e = try_admit(&c, &sr).unwrap_err();
    assert_eq!((e.code(), e.status()), ("price_too_low", 503), "{e}");
    // The ledger refuses such a receipt.
    let r = receipt_for(&c, sr, Amount(100));
    assert_eq!(c.settle_one(&node(), &r).as_deref(), Some("price_too_low"));
}

#[test]
fn requests_for_another_node_chain_or_time_are_refused_with_their_code() {
    let c = chain();
    let mut other_node = request(&c, 7);
    other_node.node = key(9).address();
    let mut other_chain = request(&c, 8);
    other_chain.chain_id = "elsewhere".into();
    let mut expired = request(&c, 9);
    expired.expires_ms = c.time_ms - 1;
    let mut far = request(&c, 10);
    far.expires_ms = c.time_ms + opal_worker::MAX_REQUEST_TTL_MS + 1;
    let mut cheap = request(&c, 11);
    cheap.max_price = Amount(189);
    let mut tee = request(&c, 12);
    tee.tier = Tier::Tee;
    let mut forged = request(&c, 13).sign(&caller());
    forged.request.salt = 14;
    let cases = [
        (other_node.sign(&caller()), "wrong_node"),
        (other_chain.sign(&caller()), "wrong_chain"),
        (expired.sign(&caller()), "expired"),
        (far.sign(&caller()), "expiry_too_far"),
        (cheap.sign(&caller()), "price_above_max"),
        (tee.sign(&caller()), "not_offered"),
        (forged, "bad_signature"),
    ];
    for (sr, code) in cases {
        let e = try_admit(&c, &sr).unwrap_err();
        assert_eq!(e.code(), code, "{e}");
    }
}
