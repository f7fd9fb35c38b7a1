//! The ledger checks double-sign evidence with its own copy of the vote sign-bytes; these tests
//! pin it to the consensus engine's definition, and check the engine-to-ledger conversion.

mod common;

use opal_consensus::codec::{Evidence, WSignedVote, WVote};
use opal_types::evidence::{VoteEvidence, PRECOMMIT};
use opal_types::{PublicKey, SecretKey, Signature};

/// How the engine's wire form (`WVote::vote_type`) numbers a precommit (0 is a prevote).
const WIRE_PRECOMMIT: u8 = 1;

#[test]
fn ledger_vote_sign_bytes_match_the_engine() {
    let k = SecretKey::from_seed([3; 32]).public_key();
    for (round, value) in [(0u32, [7u8; 32]), (5, [0xee; 32])] {
        let engine =
            opal_consensus::signing::precommit_sign_bytes("chain-x", 42, round, value, k.0);
        let ledger = VoteEvidence {
            vote_type: PRECOMMIT,
            height: 42,
            round: round as i64,
            value: Some(value),
            validator: k,
            signature: Signature([0; 64]),
        }
        .sign_bytes("chain-x");
        assert_eq!(engine, ledger);
    }
}

#[test]
fn engine_evidence_converts_and_validates() {
    let sk = SecretKey::from_seed([4; 32]);
    let vote = |value: u8| {
        let bytes = opal_consensus::signing::precommit_sign_bytes(
            "c",
            9,
            1,
            [value; 32],
            sk.public_key().0,
        );
        WSignedVote {
            vote: WVote {
                vote_type: WIRE_PRECOMMIT,
                height: 9,
                round: Some(1),
                value: Some([value; 32]),
                validator: sk.public_key().0,
                extension: None,
            },
            sig: sk.sign(&bytes).0,
        }
    };
    let ev = Evidence {
        double_votes: vec![(vote(1), vote(2))],
        double_proposals: vec![],
    };
    let list = opal_node::app::evidence_from_engine(&borsh::to_vec(&ev).unwrap()).unwrap();
    assert_eq!(list.len(), 1);
    list[0].validate("c").expect("real double sign validates");
    assert_eq!(list[0].a.validator, PublicKey(sk.public_key().0));
    assert!(list[0].validate("other-chain").is_err());
    assert!(opal_node::app::evidence_from_engine(b"garbage").is_err());
}

#[test]
fn engine_evidence_becomes_a_signed_transaction_in_the_mempool() {
    use opal_consensus::BlockExecutor;
    use opal_types::Action;

    let validator = SecretKey::from_seed([1; 32]);
    let (_dir, mut app) = common::one_validator_app(&validator, 0);
    let shared = app.shared.clone();

    let offender = SecretKey::from_seed([4; 32]);
    let vote = |value: u8| {
        let bytes = opal_consensus::signing::precommit_sign_bytes(
            "c",
            0,
            0,
            [value; 32],
            offender.public_key().0,
        );
        WSignedVote {
            vote: WVote {
                vote_type: WIRE_PRECOMMIT,
                height: 0,
                round: Some(0),
                value: Some([value; 32]),
                validator: offender.public_key().0,
                extension: None,
            },
            sig: offender.sign(&bytes).0,
        }
    };
    let ev = Evidence {
        double_votes: vec![(vote(1), vote(2))],
        double_proposals: vec![],
    };
    // Twice: the second must take the next nonce (and must not deadlock on the mempool lock).
    app.report_evidence(borsh::to_vec(&ev).unwrap());
    app.report_evidence(borsh::to_vec(&ev).unwrap());
    let txs = shared.mempool.lock().reap(10);
    assert_eq!(txs.len(), 2);
    assert_eq!((txs[0].body.nonce, txs[1].body.nonce), (0, 1));
    assert!(matches!(txs[0].body.action, Action::SubmitEvidence { .. }));
    txs[0].verify_signature().unwrap();
    assert_eq!(txs[0].signer, validator.public_key());
}
