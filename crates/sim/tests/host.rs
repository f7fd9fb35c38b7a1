//! The consensus host (`opal_consensus::host::Host`), driven directly: the rules both the node
//! and the simulator rely on, each against the party that would break it.

use opal_consensus::context::{Address, PartInit};
use opal_consensus::host::{Decision, Host, MemStore, ProposalStore, MAX_PROPOSALS_PER_ROUND};
use opal_consensus::signing::{parts_sign_bytes, OpalSigner};
use opal_consensus::streaming::AssembledBlock;
use opal_consensus::{value_id, CommitCertificate, Validator};
use opal_sim::executor::MemExecutor;

const CHAIN: &str = "opal-host-test";

fn signers(n: u8) -> Vec<OpalSigner> {
    (0..n)
        .map(|i| OpalSigner::new([i + 1; 32], CHAIN))
        .collect()
}

fn validators(s: &[OpalSigner]) -> Vec<Validator> {
    s.iter()
        .map(|s| Validator {
            public_key: s.address().0,
            power: 10,
        })
        .collect()
}

fn host(s: &[OpalSigner], i: usize) -> Host<MemExecutor, MemStore> {
    let mut exec = MemExecutor::new(CHAIN, validators(s));
    exec.now_ms = 1_000;
    let mut h = Host::new(exec, MemStore::default(), s[i].clone());
    assert_eq!(h.ready().unwrap(), 1);
    h
}

/// The signer of round `r`'s proposer at height 1.
fn proposer_of(s: &[OpalSigner], r: u32) -> usize {
    let vs = opal_consensus::context::ValidatorSet::new(&validators(s)).unwrap();
    let addr = vs.validators()[vs.proposer_index(1, r)].address;
    s.iter().position(|x| x.address() == addr).unwrap()
}

fn assembled(signer: &OpalSigner, h: u64, r: u32, block: Vec<u8>) -> AssembledBlock {
    let init = PartInit {
        height: h,
        round: r,
        pol_round: None,
        proposer: signer.address(),
        block_len: block.len() as u32,
    };
    let signature = signer
        .sign_raw(&parts_sign_bytes(CHAIN, &init, value_id(&block)))
        .to_bytes();
    AssembledBlock {
        init,
        block,
        signature,
    }
}

#[test]
fn a_restarted_proposer_re_proposes_the_block_it_built() {
    let s = signers(4);
    let p = proposer_of(&s, 0);
    let mut h = host(&s, p);
    let first = h.get_value(1, 0).unwrap();
    // A crash loses the volatile state, not the store: the same slot gets the same block.
    h.restart();
    h.ready().unwrap();
    let again = h.get_value(1, 0).unwrap();
    assert_eq!(
        first, again,
        "two blocks for one (height, round) is equivocation"
    );
    assert_eq!(h.store().at_round(1, 0).unwrap().len(), 1);
    // The stored block comes back to the core when the round starts again.
    let replayed = h.started_round(1, 0).unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].value.id.0, first.value_id);
}

#[test]
fn blocks_from_the_wrong_proposer_or_with_a_bad_signature_are_not_heard() {
    let s = signers(4);
    let p = proposer_of(&s, 0);
    let other = (p + 1) % 4;
    let me = (p + 2) % 4;
    let mut h = host(&s, me);
    h.started_round(1, 0).unwrap();
    let block = h.executor().build_with_payload(1, 0, s[p].address().0, 7);

    // Signed by a validator that is not this round's proposer.
    let wrong = assembled(&s[other], 1, 0, block.clone());
    assert_eq!(h.accept_block(wrong).unwrap(), None);
    // Signed by the proposer, then the bytes changed.
    let mut forged = assembled(&s[p], 1, 0, block.clone());
    forged.block.push(0);
    forged.init.block_len += 1;
    assert_eq!(h.accept_block(forged).unwrap(), None);
    // A stranger's key.
    let stranger = OpalSigner::new([99; 32], CHAIN);
    let mut foreign = assembled(&stranger, 1, 0, block.clone());
    foreign.init.proposer = Address(stranger.address().0);
    assert_eq!(h.accept_block(foreign).unwrap(), None);
    assert!(
        h.store().at_round(1, 0).unwrap().is_empty(),
        "nothing stored"
    );

    // The real one is stored and valid.
    let v = h
        .accept_block(assembled(&s[p], 1, 0, block))
        .unwrap()
        .unwrap();
    assert_eq!(v.validity, malachitebft_core_types::Validity::Valid);
    assert_eq!(h.store().at_round(1, 0).unwrap().len(), 1);
}

#[test]
fn a_byzantine_proposer_cannot_fill_the_store() {
    let s = signers(4);
    let p = proposer_of(&s, 0);
    let mut h = host(&s, (p + 1) % 4);
    h.started_round(1, 0).unwrap();
    let mut heard = 0;
    for payload in 0..20 {
        let block = h
            .executor()
            .build_with_payload(1, 0, s[p].address().0, payload);
        if h.accept_block(assembled(&s[p], 1, 0, block))
            .unwrap()
            .is_some()
        {
            heard += 1;
        }
    }
    assert_eq!(heard, MAX_PROPOSALS_PER_ROUND);
    assert_eq!(
        h.store().at_round(1, 0).unwrap().len(),
        MAX_PROPOSALS_PER_ROUND
    );
}

#[test]
fn an_invalid_block_is_stored_as_invalid_and_a_decision_needs_its_block() {
    let s = signers(4);
    let p = proposer_of(&s, 0);
    let mut h = host(&s, (p + 1) % 4);
    h.started_round(1, 0).unwrap();
    // Garbage signed by the right proposer: heard (so the core prevotes nil), marked invalid.
    let v = h
        .accept_block(assembled(&s[p], 1, 0, b"not a block".to_vec()))
        .unwrap()
        .unwrap();
    assert_eq!(v.validity, malachitebft_core_types::Validity::Invalid);

    // A certificate for a block this validator never saw.
    let cert = CommitCertificate {
        height: 1,
        round: 0,
        value_id: [7; 32],
        signatures: vec![],
    };
    assert_eq!(h.decided(&cert).unwrap(), Decision::BlockMissing);
    // A certificate without signatures for the block it holds: the executor refuses.
    let cert = CommitCertificate {
        value_id: v.value.id.0,
        ..cert
    };
    assert!(matches!(
        h.decided(&cert).unwrap(),
        Decision::CommitFailed(_)
    ));
    // Nothing committed: the height restarts.
    assert_eq!(h.finalized(1, None).unwrap(), (1, true));
}

#[test]
fn an_oversized_synced_block_is_the_peers_fault() {
    let s = signers(1);
    let mut h = host(&s, 0);
    let big = vec![0u8; opal_consensus::MAX_BLOCK_BYTES + 1];
    assert_eq!(h.synced_value(1, 0, s[0].address(), big).unwrap(), None);
}
