//! Bounded, canonical decoding of untrusted bytes, and signature checks.

use opal_types::*;
use proptest::prelude::*;

fn tx(nonce: u64) -> Transaction {
    let key = SecretKey::from_seed([1u8; 32]);
    TxBody {
        chain_id: "test".into(),
        nonce,
        fee: Amount(10),
        action: Action::Transfer {
            to: SecretKey::from_seed([2u8; 32]).address(),
            amount: Amount(5),
        },
    }
    .sign(&key)
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let bytes = vec![0u8; 2000];
    assert!(matches!(
        Transaction::from_bytes(&bytes, 1000),
        Err(DecodeError::TooLarge {
            got: 2000,
            limit: 1000
        })
    ));
}

#[test]
fn trailing_bytes_are_refused() {
    let mut b = tx(1).to_bytes();
    b.push(0);
    assert!(matches!(
        Transaction::from_bytes(&b, 4096),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn tampered_signature_or_body_fails_verification() {
    let t = tx(3);
    let mut bad = t.clone();
    bad.signature.0[5] ^= 1;
    assert!(bad.verify_signature().is_err());
    let mut bad = t.clone();
    bad.body.nonce += 1;
    assert!(bad.verify_signature().is_err());
    let mut bad = t;
    bad.body.chain_id = "other".into();
    assert!(
        bad.verify_signature().is_err(),
        "a signature must not carry over to another chain"
    );
}

#[test]
fn batch_verification_matches_single() {
    let txs: Vec<Transaction> = (0..16).map(tx).collect();
    let digests: Vec<Hash> = txs.iter().map(|t| t.body.sign_digest()).collect();
    let ok = opal_types::crypto::verify_batch(
        txs.iter()
            .zip(&digests)
            .map(|(t, d)| (&t.signer, &d.0[..], &t.signature)),
    );
    assert!(ok.is_ok());
    let mut bad = txs.clone();
    bad[7].signature.0[0] ^= 0x80;
    let r = opal_types::crypto::verify_batch(
        bad.iter()
            .zip(&digests)
            .map(|(t, d)| (&t.signer, &d.0[..], &t.signature)),
    );
    assert!(r.is_err());
}

#[test]
fn domains_separate_hashes() {
    let a = Hash::of(Domain::TxId, b"x");
    let b = Hash::of(Domain::TxSign, b"x");
    assert_ne!(a, b);
}

#[test]
fn amounts_are_checked() {
    assert!(Amount(u128::MAX).checked_add(Amount(1)).is_err());
    assert!(Amount(1).checked_sub(Amount(2)).is_err());
    assert_eq!("1_000".parse::<Amount>().unwrap(), Amount(1000));
    assert!("-5".parse::<Amount>().is_err());
    assert!("1.5".parse::<Amount>().is_err());
}

#[test]
fn empty_merkle_root_is_zero_and_order_matters() {
    assert_eq!(opal_types::merkle::root(&[]), Hash::ZERO);
    let a = Hash([1; 32]);
    let b = Hash([2; 32]);
    assert_ne!(
        opal_types::merkle::root(&[a, b]),
        opal_types::merkle::root(&[b, a])
    );
    assert_ne!(
        opal_types::merkle::root(&[a]),
        a,
        "a leaf is hashed under its own domain"
    );
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Transaction::from_bytes(&bytes, 4096);
        let _ = Block::from_bytes(&bytes);
    }

    #[test]
    fn any_single_byte_flip_is_rejected_or_changes_identity(pos in 0usize..200, bit in 0u8..8) {
        let t = tx(9);
        let mut b = t.to_bytes();
        let pos = pos % b.len();
        b[pos] ^= 1 << bit;
        match Transaction::from_bytes(&b, 4096) {
            Err(_) => {}
            Ok(d) => {
                // Decoded: then it is a different transaction whose signature no longer holds.
                prop_assert!(d.hash() != t.hash());
                prop_assert!(d.verify_signature().is_err());
            }
        }
    }
}
