//! The integration API (`opal_zk::api`): setup / verifying key / prove with progress / verify,
//! byte encodings and their bounded, checked decoding.

mod common;

use opal_zk::api;
use opal_zk::ZkError;
use proptest::prelude::*;

#[test]
fn setup_prove_verify_through_bytes() {
    let (model, x) = common::mlp(11, &[24, 10, 4]);
    let setup = api::setup(&model).unwrap();
    let vk = api::verifying_key(&setup);
    let vk_bytes = vk.to_bytes();
    let vk2 = api::VerifyingKey::from_bytes(&vk_bytes).unwrap();
    assert_eq!(vk2, vk);
    assert_eq!(vk2.id(), *blake3::hash(&vk_bytes).as_bytes());
    assert_eq!(vk.input_len(), x.len());

    let mut seen = Vec::new();
    let (y, proof) = api::prove(&model, &setup, &x, &mut |p| seen.push(p)).unwrap();
    assert_eq!(y, model.run(&x).unwrap());
    assert_eq!(seen.first(), Some(&0.0));
    assert_eq!(seen.last(), Some(&1.0));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(proof.len(), vk2.proof_len().unwrap());
    api::verify(&vk2, &x, &y, &proof).unwrap();
    assert!(vk2.soundness_bits().unwrap() > 100.0);

    // Rejections.
    let mut y2 = y.clone();
    y2[0] += 1;
    assert!(api::verify(&vk2, &x, &y2, &proof).is_err());
    let mut x2 = x.clone();
    x2[1] ^= 1;
    assert!(api::verify(&vk2, &x2, &y, &proof).is_err());
    let mut p2 = proof.clone();
    let n = p2.len();
    p2[n / 2] ^= 4;
    assert!(api::verify(&vk2, &x, &y, &p2).is_err());
    assert!(matches!(
        api::verify(&vk2, &x, &y, &proof[..n - 1]),
        Err(ZkError::ProofLength { .. })
    ));

    // Setup through bytes proves the same statement.
    let s2 = api::Setup::from_bytes(&setup.to_bytes()).unwrap();
    assert_eq!(s2.verifying_key(), &vk);
    let (y3, proof3) = api::prove(s2.model(), &s2, &x, &mut |_| {}).unwrap();
    assert_eq!(y3, y);
    api::verify(&vk, &x, &y3, &proof3).unwrap();

    // A different model: refused by prove, and its key does not verify this proof.
    let (other, _) = common::mlp(12, &[24, 10, 4]);
    assert!(api::prove(&other, &setup, &x, &mut |_| {}).is_err());
    let vk_other = api::verifying_key(&api::setup(&other).unwrap());
    assert_ne!(vk_other.id(), vk.id());
    assert!(api::verify(&vk_other, &x, &y, &proof).is_err());
}

#[test]
fn tampered_keys_and_setups_are_refused() {
    let (model, _) = common::mlp(13, &[16, 6, 3]);
    let setup = api::setup(&model).unwrap();
    let vk = api::verifying_key(&setup).to_bytes();
    assert!(api::VerifyingKey::from_bytes(&vk[..vk.len() - 1]).is_err());
    let mut longer = vk.clone();
    longer.push(0);
    assert!(api::VerifyingKey::from_bytes(&longer).is_err());
    // Flip a bit in a commitment root, and in the registration proof: both refused.
    let reg_len = api::verifying_key(&setup).registered().to_bytes().len();
    // Header: magic (8), version (2), file hash (32), then u32 length + registered model.
    for pos in [46 + reg_len - 5, vk.len() - 40] {
        let mut v = vk.clone();
        v[pos] ^= 1;
        assert!(api::VerifyingKey::from_bytes(&v).is_err(), "flip at {pos}");
    }
    let sb = setup.to_bytes();
    let mut v = sb.clone();
    v[40] ^= 1;
    assert!(api::Setup::from_bytes(&v).is_err());
    assert!(api::Setup::from_bytes(&sb[..sb.len() - 3]).is_err());
    // A setup whose model does not match its key.
    let (other, _) = common::mlp(14, &[16, 6, 3]);
    let mut mixed = b"OPALZKSU".to_vec();
    mixed.extend_from_slice(&api::VERSION.to_le_bytes());
    let mf = other.to_file_bytes();
    mixed.extend_from_slice(&(mf.len() as u32).to_le_bytes());
    mixed.extend_from_slice(&mf);
    mixed.extend_from_slice(&(vk.len() as u32).to_le_bytes());
    mixed.extend_from_slice(&vk);
    assert!(api::Setup::from_bytes(&mixed).is_err());
}

#[test]
fn keys_name_their_model_file_and_proofs_are_bound_to_it() {
    let (model, x) = common::mlp(17, &[16, 6, 3]);
    let file = model.to_file_bytes();
    let setup = api::setup(&model).unwrap();
    let vk = api::verifying_key(&setup);
    assert_eq!(vk.file_hash(), *blake3::hash(&file).as_bytes());
    assert_eq!(api::model_file_hash(&model), vk.file_hash());
    // Anyone holding the file re-derives the same key.
    assert_eq!(api::key_for_file(&file).unwrap(), vk);
    assert!(matches!(
        api::key_for_file(&file[..file.len() - 1]),
        Err(ZkError::Model(_))
    ));
    let bytes = vk.to_bytes();
    assert_eq!(api::VERSION, 3);
    assert_eq!(&bytes[8..10], &3u16.to_le_bytes());
    assert_eq!(
        api::VerifyingKey::file_hash_of(&bytes).unwrap(),
        vk.file_hash()
    );
    assert!(matches!(
        api::VerifyingKey::file_hash_of(&bytes[..41]),
        Err(ZkError::Model(_))
    ));
    let (y, proof) = api::prove(&model, &setup, &x, &mut |_| {}).unwrap();
    api::verify(&vk, &x, &y, &proof).unwrap();

    // The same commitments and range proof under another file hash: the key still decodes
    // (nothing in it proves which file it was made from; the ledger compares the hash with the
    // registry, a holder of the file re-derives the key), but it is another key, and the
    // proof made under the real key does not verify under it.
    let mut forged = bytes.clone();
    forged[10] ^= 1;
    let fk = api::VerifyingKey::from_bytes(&forged).unwrap();
    assert_ne!(fk.id(), vk.id());
    assert_ne!(fk.file_hash(), vk.file_hash());
    assert_ne!(api::key_for_file(&file).unwrap().id(), fk.id());
    let r = api::verify(&fk, &x, &y, &proof);
    assert!(
        matches!(&r, Err(e) if !matches!(e, ZkError::ProofLength { .. })),
        "{r:?}"
    );
    // A proof not made under a key (v2's unbound transcript) does not verify under the key.
    let (pm, reg) = opal_zk::v2::register(&model).unwrap();
    let (y2, unbound) = opal_zk::v2::prove(&pm, &reg, &x).unwrap();
    assert_eq!(y2, y);
    opal_zk::v2::verify(&reg, &x, &y, &unbound).unwrap();
    assert!(api::verify(&vk, &x, &y, &unbound).is_err());
    assert!(opal_zk::v2::verify(&reg, &x, &y, &proof).is_err());

    // A setup whose key names another file is refused.
    let mut mixed = b"OPALZKSU".to_vec();
    mixed.extend_from_slice(&api::VERSION.to_le_bytes());
    mixed.extend_from_slice(&(file.len() as u32).to_le_bytes());
    mixed.extend_from_slice(&file);
    mixed.extend_from_slice(&(forged.len() as u32).to_le_bytes());
    mixed.extend_from_slice(&forged);
    assert!(matches!(
        api::Setup::from_bytes(&mixed),
        Err(ZkError::Model(m)) if m.contains("another model file")
    ));
    // A version-2 key (no file hash) is refused, not misread.
    let mut old = bytes.clone();
    old[8..10].copy_from_slice(&2u16.to_le_bytes());
    assert!(matches!(
        api::VerifyingKey::from_bytes(&old),
        Err(ZkError::Model(m)) if m.contains("unsupported version 2")
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn hostile_key_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300), flip in any::<usize>()) {
        // None of these is a key or a setup: each is refused with a typed error.
        prop_assert!(matches!(api::VerifyingKey::from_bytes(&b), Err(ZkError::Model(_))));
        for version in [2u16, api::VERSION] {
            let mut v = b"OPALZKVK".to_vec();
            v.extend_from_slice(&version.to_le_bytes());
            v.extend_from_slice(&b);
            prop_assert!(api::VerifyingKey::from_bytes(&v).is_err());
            prop_assert!(matches!(api::Setup::from_bytes(&v), Err(ZkError::Model(_))));
            if let Some(i) = v.len().checked_sub(1).map(|n| flip % (n + 1)) {
                v[i] ^= 1;
                prop_assert!(api::VerifyingKey::from_bytes(&v).is_err());
            }
        }
    }
}

#[test]
fn maxpool_through_the_api_and_unsupported_shapes_refused_with_a_typed_error() {
    use opal_quant::{Add, Layer, MaxPool2d};
    let (mut model, _) = common::mlp(15, &[16, 8, 3]);
    let x: Vec<i64> = (0..16).map(|i| i * 7 - 50).collect();
    // 8 = 2 x 2 x 2 after the first requant: a 2x1 max pool, then the dense layer reads 4.
    model.layers.insert(
        2,
        Layer::MaxPool2d(MaxPool2d {
            ch: 2,
            in_h: 2,
            in_w: 2,
            kh: 2,
            kw: 1,
            stride: 1,
        }),
    );
    if let Layer::Dense(d) = &mut model.layers[3] {
        d.weights = d.weights.chunks(8).flat_map(|r| r[..4].to_vec()).collect();
        d.cols = 4;
    }
    model.validate().unwrap();
    let setup = api::setup(&model).unwrap();
    let (y, proof) = api::prove(&model, &setup, &x, &mut |_| {}).unwrap();
    api::verify(&api::verifying_key(&setup), &x, &y, &proof).unwrap();

    // A 5x5 window (25 taps) is more than the prover supports.
    let big = opal_quant::QuantModel {
        input_len: 25,
        input_bits: 8,
        layers: vec![Layer::MaxPool2d(MaxPool2d {
            ch: 1,
            in_h: 5,
            in_w: 5,
            kh: 5,
            kw: 5,
            stride: 1,
        })],
        input_scale: 1.0,
        output_scale: 1.0,
    };
    big.validate().unwrap();
    assert!(matches!(api::setup(&big), Err(ZkError::Unimplemented(_))));
    // A residual Add reading a Dense output (not committed in the witness).
    let (mut m2, _) = common::mlp(16, &[8, 8, 3]);
    m2.layers.insert(
        2,
        Layer::Add(Add {
            from: 1,
            x_multiplier: 1,
            from_multiplier: 1,
        }),
    );
    m2.validate().unwrap();
    assert!(matches!(api::setup(&m2), Err(ZkError::Unimplemented(_))));
}
