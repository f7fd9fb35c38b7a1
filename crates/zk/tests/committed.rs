mod common;

use opal_quant::Layer;
use opal_zk::committed::{proof_len, prove, register, verify, CommittedProof};
use proptest::prelude::*;

fn small() -> (opal_quant::QuantModel, Vec<i64>) {
    common::mlp(21, &[20, 12, 6, 3])
}

#[test]
fn honest_committed_proof_verifies_without_weights() {
    let (m, x) = small();
    let (pm, reg) = register(&m).unwrap();
    assert!(reg.structure.layers.iter().all(|l| match l {
        Layer::Dense(d) => d.weights.is_empty(),
        _ => true,
    }));
    let (y, proof) = prove(&pm, &reg, &x).unwrap();
    assert_eq!(y, m.execute(&x).unwrap().output());
    verify(&reg, &x, &y, &proof).unwrap();
    let bytes = proof.to_bytes();
    assert_eq!(bytes.len(), proof_len(&reg).unwrap());
    let back = CommittedProof::from_bytes(&reg, &bytes).unwrap();
    verify(&reg, &x, &y, &back).unwrap();
}

#[test]
fn wrong_weights_or_statement_fail() {
    let (m, x) = small();
    let (pm, reg) = register(&m).unwrap();
    let (y, proof) = prove(&pm, &reg, &x).unwrap();
    let mut y2 = y.clone();
    y2[0] += 1;
    assert!(verify(&reg, &x, &y2, &proof).is_err());
    let mut x2 = x.clone();
    x2[0] = if x2[0] == 0 { 1 } else { 0 };
    assert!(verify(&reg, &x2, &y, &proof).is_err());
    // a prover holding other weights (one weight changed) cannot prove for the registered ones
    for (k, i) in [(0usize, 0usize), (0, 100), (2, 5), (4, 17)] {
        let mut m2 = m.clone();
        if let Layer::Dense(d) = &mut m2.layers[k] {
            d.weights[i] = if d.weights[i] == 0 { 1 } else { 0 };
        }
        let (pm2, reg2) = register(&m2).unwrap();
        assert_ne!(reg2.id(), reg.id());
        // honest proof under the other registration fails for ours, and vice versa
        let (y3, p3) = prove(&pm2, &reg, &x).unwrap();
        assert!(verify(&reg, &x, &y3, &p3).is_err(), "layer {k} weight {i}");
        assert!(verify(&reg2, &x, &y, &proof).is_err());
        let _ = pm2;
    }
}

#[test]
fn malformed_bytes_never_panic() {
    let (m, _) = small();
    let (_, reg) = register(&m).unwrap();
    let n = proof_len(&reg).unwrap();
    for len in [0, 1, n - 1, n + 1] {
        assert!(CommittedProof::from_bytes(&reg, &vec![7; len]).is_err());
    }
    assert!(CommittedProof::from_bytes(&reg, &vec![0xff; n]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn flipped_bytes_fail(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (m, x) = small();
        let (pm, reg) = register(&m).unwrap();
        let (y, proof) = prove(&pm, &reg, &x).unwrap();
        let mut bytes = proof.to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let ok = CommittedProof::from_bytes(&reg, &bytes).map(|p| verify(&reg, &x, &y, &p).is_ok()).unwrap_or(false);
        prop_assert!(!ok, "flip at {} accepted", i);
    }
}

#[test]
fn committed_soundness_is_at_least_100_bits() {
    let (m, _) = common::mlp(1, &[784, 128, 64, 10]);
    let (_, reg) = register(&m).unwrap();
    let bits = opal_zk::committed::soundness_bits(&reg).unwrap();
    assert!(bits > 100.0 && bits < 110.0, "{bits}");
}
