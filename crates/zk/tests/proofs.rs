mod common;

use opal_quant::Layer;
use opal_zk::field::EF;
use opal_zk::mle::{eq_table, evaluate};
use opal_zk::sumcheck;
use opal_zk::transcript::Transcript;
use opal_zk::*;
use p3_field::PrimeCharacteristicRing;
use proptest::prelude::*;

fn small() -> (opal_quant::QuantModel, Vec<i64>) {
    common::mlp(11, &[20, 12, 6, 3])
}

#[test]
fn honest_proof_verifies_and_roundtrips() {
    let (m, x) = small();
    let (y, proof) = prove(&m, &x).unwrap();
    assert_eq!(y, m.execute(&x).unwrap().output());
    verify(&m, &x, &y, &proof).unwrap();
    let bytes = proof.to_bytes();
    assert_eq!(bytes.len(), proof_len(&m).unwrap());
    let back = MlpProof::from_bytes(&m, &bytes).unwrap();
    assert_eq!(back, proof);
    verify(&m, &x, &y, &back).unwrap();
}

#[test]
fn soundness_is_at_least_100_bits() {
    let (m, _) = common::mlp(1, &[784, 128, 64, 10]);
    let bits = soundness_bits(&m).unwrap();
    assert!(bits > 120.0, "{bits}");
}

#[test]
fn mle_matches_table_on_boolean_points() {
    let vals: Vec<EF> = (0..8u64).map(|v| EF::from_u64(v * v + 3)).collect();
    for idx in 0..8usize {
        let r: Vec<EF> = (0..3)
            .map(|k| EF::from_bool((idx >> (2 - k)) & 1 == 1))
            .collect();
        assert_eq!(evaluate(&vals, &r), vals[idx]);
    }
    let r = vec![EF::from_u64(5), EF::from_u64(7)];
    assert_eq!(eq_table(&r).iter().copied().sum::<EF>(), EF::ONE);
}

#[test]
fn sumcheck_completeness_and_interpolation() {
    let f: Vec<EF> = (0..16u64).map(|v| EF::from_u64(3 * v + 1)).collect();
    let g: Vec<EF> = (0..16u64).map(|v| EF::from_u64(v * v)).collect();
    let claim: EF = f.iter().zip(&g).map(|(a, b)| *a * *b).sum();
    let mut tp = Transcript::new(b"t");
    let (proof, point, fr, gr) = sumcheck::prove(&mut tp, f.clone(), g.clone());
    assert_eq!(evaluate(&f, &point), fr);
    assert_eq!(evaluate(&g, &point), gr);
    let mut tv = Transcript::new(b"t");
    let (vp, fin) = sumcheck::verify(&mut tv, 0, &proof, 4, claim).unwrap();
    assert_eq!(vp, point);
    assert_eq!(fin, fr * gr);
    let mut tv = Transcript::new(b"t");
    assert!(sumcheck::verify(&mut tv, 0, &proof, 4, claim + EF::ONE).is_err());
    let e = [EF::from_u64(4), EF::from_u64(9), EF::from_u64(18)]; // 4 + 3x + 2x^2
    assert_eq!(
        sumcheck::interpolate2(&e, EF::from_u64(5)),
        EF::from_u64(4 + 15 + 50)
    );
}

#[test]
fn tampered_statement_fails() {
    let (m, x) = small();
    let (y, proof) = prove(&m, &x).unwrap();
    for i in 0..y.len() {
        let mut y2 = y.clone();
        y2[i] += 1;
        assert!(verify(&m, &x, &y2, &proof).is_err(), "output {i}");
    }
    for i in 0..x.len() {
        let mut x2 = x.clone();
        x2[i] = if x2[i] == 0 { 1 } else { x2[i] - 1 };
        assert!(verify(&m, &x2, &y, &proof).is_err(), "input {i}");
    }
    // every single weight and bias of every dense layer
    for k in 0..m.layers.len() {
        let n = match &m.layers[k] {
            Layer::Dense(d) => d.weights.len(),
            _ => 0,
        };
        for i in 0..n {
            let mut m2 = m.clone();
            if let Layer::Dense(d) = &mut m2.layers[k] {
                d.weights[i] = if d.weights[i] == 0 {
                    1
                } else {
                    d.weights[i] - d.weights[i].signum()
                };
            }
            assert!(verify(&m2, &x, &y, &proof).is_err(), "weight {k}/{i}");
        }
    }
    let mut m2 = m.clone();
    if let Layer::Requant(r) = &mut m2.layers[1] {
        r.multiplier += 1;
    }
    assert!(verify(&m2, &x, &y, &proof).is_err());
    let mut m3 = m.clone();
    m3.output_scale *= 2.0; // metadata is part of the model id too
    assert!(verify(&m3, &x, &y, &proof).is_err());
}

#[test]
fn proof_for_one_model_fails_for_another() {
    let (m, x) = small();
    let (m2, _) = common::mlp(12, &[20, 12, 6, 3]);
    let (y, proof) = prove(&m, &x).unwrap();
    assert!(verify(&m2, &x, &y, &proof).is_err());
}

#[test]
fn malformed_bytes_are_rejected_without_panic() {
    let (m, _) = small();
    let n = proof_len(&m).unwrap();
    for len in [0, 1, n - 1, n + 1, 10 * n] {
        assert!(matches!(
            MlpProof::from_bytes(&m, &vec![0xff; len]),
            Err(ZkError::ProofLength { .. })
        ));
    }
    assert!(MlpProof::from_bytes(&m, &vec![0xff; n]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn any_flipped_proof_byte_fails(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (m, x) = small();
        let (y, proof) = prove(&m, &x).unwrap();
        let mut bytes = proof.to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let ok = MlpProof::from_bytes(&m, &bytes).map(|p| verify(&m, &x, &y, &p).is_ok()).unwrap_or(false);
        prop_assert!(!ok, "flip at byte {} bit {} accepted", i, bit);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let (m, x) = small();
        let y = m.execute(&x).unwrap().output().to_vec();
        if let Ok(p) = MlpProof::from_bytes(&m, &bytes) {
            prop_assert!(verify(&m, &x, &y, &p).is_err());
        }
    }
}

#[test]
fn cnn_proofs_verify_and_bind_every_conv_weight() {
    let (m, x) = common::cnn(5);
    let trace = m.execute(&x).unwrap();
    assert!(trace.values[2].iter().any(|v| *v > 0) && trace.values[4].iter().any(|v| *v > 0));
    let (y, proof) = prove(&m, &x).unwrap();
    verify(&m, &x, &y, &proof).unwrap();
    let back = MlpProof::from_bytes(&m, &proof.to_bytes()).unwrap();
    verify(&m, &x, &y, &back).unwrap();
    for k in [0usize, 2] {
        let n = match &m.layers[k] {
            Layer::Conv2d(c) => c.weights.len(),
            _ => 0,
        };
        for i in 0..n {
            let mut m2 = m.clone();
            if let Layer::Conv2d(c) = &mut m2.layers[k] {
                c.weights[i] = if c.weights[i] == 0 { 1 } else { 0 };
            }
            assert!(verify(&m2, &x, &y, &proof).is_err(), "conv {k} weight {i}");
        }
    }
    for i in 0..x.len() {
        let mut x2 = x.clone();
        x2[i] = if x2[i] == 0 { 1 } else { 0 };
        assert!(verify(&m, &x2, &y, &proof).is_err(), "input {i}");
    }
    let (pm, reg) = opal_zk::committed::register(&m).unwrap();
    let (y2, p2) = opal_zk::committed::prove(&pm, &reg, &x).unwrap();
    assert_eq!(y2, y);
    let p2 = opal_zk::committed::CommittedProof::from_bytes(&reg, &p2.to_bytes()).unwrap();
    opal_zk::committed::verify(&reg, &x, &y, &p2).unwrap();
    let mut m3 = m.clone();
    if let Layer::Conv2d(c) = &mut m3.layers[2] {
        c.weights[7] ^= 1;
    }
    let (pm3, _) = opal_zk::committed::register(&m3).unwrap();
    let (y3, p3) = opal_zk::committed::prove(&pm3, &reg, &x).unwrap();
    assert!(opal_zk::committed::verify(&reg, &x, &y3, &p3).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn cnn_flipped_proof_byte_fails(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (m, x) = common::cnn(5);
        let (y, proof) = prove(&m, &x).unwrap();
        let mut bytes = proof.to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let ok = MlpProof::from_bytes(&m, &bytes).map(|p| verify(&m, &x, &y, &p).is_ok()).unwrap_or(false);
        prop_assert!(!ok, "flip at byte {} bit {} accepted", i, bit);
    }
}
