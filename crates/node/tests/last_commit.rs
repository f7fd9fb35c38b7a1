//! The previous block's commit that block `h` carries is checked by every validator before
//! it votes: a proposer cannot leave it out, forge a signature, or carry too little power —
//! liveness (downtime jailing) and base rewards are counted from it.

mod common;

use common::precommit;
use opal_consensus::BlockExecutor;
use opal_node::app::AppError;
use opal_types::block::LastCommit;
use opal_types::{Block, PublicKey, SecretKey};

const T0: u64 = 1_800_000_000_000;

fn invalid(r: Result<(), AppError>) -> String {
    match r {
        Err(AppError::Invalid(m)) => m,
        other => panic!("expected an invalid block, got {other:?}"),
    }
}

#[test]
fn a_forged_missing_or_powerless_last_commit_is_refused() {
    let key = SecretKey::from_seed([1; 32]);
    let (_dir, mut app) = common::one_validator_app(&key, T0);
    app.clock = std::sync::Arc::new(|| T0 + 60_000);
    let b1 = app.build_block(1, 0, key.public_key().0);
    assert!(Block::from_bytes(&b1).unwrap().last_commit.is_none());
    app.commit(1, &b1, &precommit(&key, 1, &b1)).unwrap();

    let honest = app.build_block(2, 0, key.public_key().0);
    let block = Block::from_bytes(&honest).unwrap();
    let lc = block
        .last_commit
        .clone()
        .expect("block 2 carries block 1's commit");
    assert_eq!(lc.signatures.len(), 1);
    assert_eq!(app.verify_block(2, &honest), Ok(()));

    let with = |lc: Option<LastCommit>| {
        let mut b = block.clone();
        b.last_commit = lc;
        b.to_bytes()
    };
    let m = invalid(app.verify_block(2, &with(None)));
    assert!(m.contains("no last commit"), "{m}");
    let mut forged = lc.clone();
    forged.signatures[0].1[0] ^= 1;
    let m = invalid(app.verify_block(2, &with(Some(forged))));
    assert!(m.contains("invalid signature"), "{m}");
    let empty = LastCommit {
        round: 0,
        signatures: vec![],
    };
    let m = invalid(app.verify_block(2, &with(Some(empty))));
    assert!(m.contains("not enough voting power"), "{m}");
    let stranger = SecretKey::from_seed([9; 32]);
    let mut foreign = lc.clone();
    foreign
        .signatures
        .push((PublicKey(stranger.public_key().0), vec![0; 64]));
    let m = invalid(app.verify_block(2, &with(Some(foreign))));
    assert!(m.contains("not in the validator set"), "{m}");
    // Another round's signature does not certify this one.
    let mut other_round = lc;
    other_round.round = 1;
    let m = invalid(app.verify_block(2, &with(Some(other_round))));
    assert!(m.contains("invalid signature"), "{m}");
    // Block 1 cannot carry one.
    let mut b1x = Block::from_bytes(&b1).unwrap();
    b1x.last_commit = block.last_commit.clone();
    let (_dir2, fresh) = common::one_validator_app(&key, T0);
    let m = invalid(fresh.verify_block(1, &b1x.to_bytes()));
    assert!(m.contains("block 1"), "{m}");
}
