mod common;

use common::{fresh, none, w};
use opal_state::{StateError, StateProof, Store, MAX_PROOF_BYTES};
use proptest::prelude::*;

fn populated() -> (tempfile::TempDir, Store) {
    let (d, s) = fresh();
    let mut m = none();
    for i in 0..200u32 {
        m.insert(
            format!("k/{i}").into_bytes(),
            Some(format!("v{i}").into_bytes()),
        );
    }
    s.commit(0, m, none()).unwrap();
    s.commit(1, w(&[("k/7", None), ("k/8", Some("eight"))]), none())
        .unwrap();
    (d, s)
}

#[test]
fn presence_proof_verifies_and_rejects_wrong_claims() {
    let (_d, s) = populated();
    let snap = s.snapshot().unwrap();
    let root = snap.root();
    let (v, p) = snap.get_with_proof(b"k/8").unwrap();
    assert_eq!(v.as_deref(), Some(&b"eight"[..]));
    p.verify(&root, b"k/8", Some(b"eight")).unwrap();
    // wrong value, absent claim, wrong key, wrong root
    assert!(matches!(
        p.verify(&root, b"k/8", Some(b"v8")),
        Err(StateError::ProofInvalid(_))
    ));
    assert!(p.verify(&root, b"k/8", None).is_err());
    assert!(p.verify(&root, b"k/9", Some(b"eight")).is_err());
    assert!(p.verify(&root, b"k/9", Some(b"v9")).is_err());
    assert!(p
        .verify(&s.root_at(0).unwrap(), b"k/8", Some(b"eight"))
        .is_err());
    assert!(p
        .verify(&Store::empty_root(), b"k/8", Some(b"eight"))
        .is_err());
    let mut bad_root = root;
    bad_root[31] ^= 1;
    assert!(p.verify(&bad_root, b"k/8", Some(b"eight")).is_err());
}

#[test]
fn absence_proof_verifies_and_rejects_wrong_claims() {
    let (_d, s) = populated();
    let snap = s.snapshot().unwrap();
    let root = snap.root();
    for key in [&b"k/7"[..], b"missing", b"", b"k/1000"] {
        let (v, p) = snap.get_with_proof(key).unwrap();
        assert_eq!(v, None);
        p.verify(&root, key, None).unwrap();
        assert!(p.verify(&root, key, Some(b"anything")).is_err());
        let mut bad_root = root;
        bad_root[0] ^= 0x80;
        assert!(p.verify(&bad_root, key, None).is_err());
    }
    // an absence proof for one key is not one for a present key
    let (_, p) = snap.get_with_proof(b"missing").unwrap();
    assert!(p.verify(&root, b"k/1", None).is_err());
}

#[test]
fn proofs_at_old_version() {
    let (_d, s) = populated();
    let old = s.snapshot_at(0).unwrap();
    let (v, p) = old.get_with_proof(b"k/7").unwrap();
    assert_eq!(v.as_deref(), Some(&b"v7"[..]));
    p.verify(&old.root(), b"k/7", Some(b"v7")).unwrap();
    assert!(p
        .verify(&s.root_at(1).unwrap(), b"k/7", Some(b"v7"))
        .is_err());
}

#[test]
fn empty_tree_proofs() {
    let (_d, s) = fresh();
    let (v, p) = s.snapshot().unwrap().get_with_proof(b"x").unwrap();
    assert_eq!(v, None);
    p.verify(&Store::empty_root(), b"x", None).unwrap();
    assert!(p.verify(&Store::empty_root(), b"x", Some(b"1")).is_err());
    s.commit(0, none(), none()).unwrap();
    let (v, p) = s.snapshot().unwrap().get_with_proof(b"x").unwrap();
    assert_eq!(v, None);
    p.verify(&Store::empty_root(), b"x", None).unwrap();
}

#[test]
fn single_leaf_tree_proofs() {
    let (_d, s) = fresh();
    let r = s.commit(0, w(&[("only", Some("1"))]), none()).unwrap();
    let snap = s.snapshot().unwrap();
    let (_, p) = snap.get_with_proof(b"only").unwrap();
    p.verify(&r, b"only", Some(b"1")).unwrap();
    let (_, p) = snap.get_with_proof(b"other").unwrap();
    p.verify(&r, b"other", None).unwrap();
    assert!(p.verify(&r, b"only", None).is_err());
}

#[test]
fn bytes_roundtrip() {
    let (_d, s) = populated();
    let snap = s.snapshot().unwrap();
    let (_, p) = snap.get_with_proof(b"k/3").unwrap();
    let bytes = p.to_bytes();
    let q = StateProof::from_bytes(&bytes).unwrap();
    assert_eq!(p, q);
    q.verify(&snap.root(), b"k/3", Some(b"v3")).unwrap();
    // trailing bytes are rejected
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(StateProof::from_bytes(&longer).is_err());
    // truncations are rejected
    for n in 0..bytes.len() {
        assert!(
            StateProof::from_bytes(&bytes[..n]).is_err(),
            "truncated to {n}"
        );
    }
    // oversized input is rejected before decoding
    assert!(matches!(
        StateProof::from_bytes(&vec![0u8; MAX_PROOF_BYTES + 1]),
        Err(StateError::MalformedProof(_))
    ));
}

#[test]
fn garbage_bytes_never_panic() {
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        vec![2, 0, 0, 0, 0],
        vec![0, 0xff, 0xff, 0xff, 0xff],
        vec![0, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3],
        {
            // 300 Null siblings: decodes, but more than 256 siblings must fail verification.
            let mut v = vec![0u8, 44, 1, 0, 0];
            v.extend(std::iter::repeat_n(0u8, 300));
            v
        },
    ];
    for c in cases {
        if let Ok(p) = StateProof::from_bytes(&c) {
            let _ = p.verify(&Store::empty_root(), b"k", None);
            let _ = p.verify(&[7u8; 32], b"k", Some(b"v"));
        }
    }
}

fn fixture() -> &'static (Vec<u8>, Vec<u8>, [u8; 32]) {
    use std::sync::OnceLock;
    static F: OnceLock<(Vec<u8>, Vec<u8>, [u8; 32])> = OnceLock::new();
    F.get_or_init(|| {
        let (_d, s) = populated();
        let snap = s.snapshot().unwrap();
        let (_, present) = snap.get_with_proof(b"k/42").unwrap();
        let (_, absent) = snap.get_with_proof(b"nope").unwrap();
        (present.to_bytes(), absent.to_bytes(), snap.root())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn flipped_byte_in_presence_proof_is_caught(pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let (present, _, root) = fixture();
        let mut bytes = present.clone();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        match StateProof::from_bytes(&bytes) {
            Err(_) => {}
            Ok(p) => prop_assert!(p.verify(root, b"k/42", Some(b"v42")).is_err()),
        }
    }

    #[test]
    fn flipped_byte_in_absence_proof_is_caught(pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let (_, absent, root) = fixture();
        let mut bytes = absent.clone();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        match StateProof::from_bytes(&bytes) {
            Err(_) => {}
            Ok(p) => prop_assert!(p.verify(root, b"nope", None).is_err()),
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), key in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(p) = StateProof::from_bytes(&bytes) {
            let (_, _, root) = fixture();
            let _ = p.verify(root, &key, None);
            let _ = p.verify(root, &key, Some(&bytes[..]));
            let _ = p.to_bytes();
        }
    }
}
