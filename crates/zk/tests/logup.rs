use opal_zk::field::EF;
use opal_zk::logup::{prove_range, verify_range};
use opal_zk::mle::evaluate;
use opal_zk::transcript::Transcript;
use p3_field::PrimeCharacteristicRing;
use proptest::prelude::*;

fn values(n: usize, bits: usize, seed: u64) -> Vec<i64> {
    let mut rng = opal_quant::SplitMix64::new(seed);
    (0..1usize << n)
        .map(|_| rng.range_i64(0, (1 << bits) - 1))
        .collect()
}

#[test]
fn honest_range_proofs_verify() {
    for (n, bits) in [(0, 1), (3, 2), (4, 4), (2, 6), (8, 8), (6, 3)] {
        let v = values(n, bits, (n * 31 + bits) as u64);
        let (proof, xp) = prove_range(&mut Transcript::new(b"r"), &v, bits).unwrap();
        let (x, ve) = verify_range(&mut Transcript::new(b"r"), &v, n, bits, &proof).unwrap();
        assert_eq!(x, xp);
        let v_ext: Vec<EF> = v.iter().map(|a| EF::from_u64(*a as u64)).collect();
        assert_eq!(evaluate(&v_ext, &x), ve, "n={n} bits={bits}");
    }
}

#[test]
fn out_of_range_is_refused_and_substitution_fails() {
    let mut v = values(4, 4, 1);
    let (proof, _) = prove_range(&mut Transcript::new(b"r"), &v, 4).unwrap();
    v[3] = 16;
    assert!(prove_range(&mut Transcript::new(b"r"), &v, 4).is_err());
    assert!(verify_range(&mut Transcript::new(b"r"), &v, 4, 4, &proof).is_err());
    let mut p2 = proof.clone();
    p2.multiplicities[0] += 1;
    p2.multiplicities[1] = p2.multiplicities[1].wrapping_sub(1);
    assert!(verify_range(&mut Transcript::new(b"r"), &values(4, 4, 1), 4, 4, &p2).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_changed_message_fails(layer in 0usize..7, pick in 0usize..64, delta in 1u64..1000) {
        let v = values(5, 4, 9);
        let (proof, _) = prove_range(&mut Transcript::new(b"r"), &v, 4).unwrap();
        let mut p = proof.clone();
        let nl = p.layers.len();
        let l = &mut p.layers[layer % nl];
        let d = EF::from_u64(delta);
        let slots = l.rounds.len() * 4 + 4;
        let s = pick % slots;
        if s < l.rounds.len() * 4 { l.rounds[s / 4][s % 4] += d; } else { l.evals[s - l.rounds.len() * 4] += d; }
        prop_assert!(verify_range(&mut Transcript::new(b"r"), &v, 5, 4, &p).is_err());
        let mut p = proof.clone();
        p.v_eval += d;
        prop_assert!(verify_range(&mut Transcript::new(b"r"), &v, 5, 4, &p).is_err());
        let mut p = proof;
        p.root_q += d;
        prop_assert!(verify_range(&mut Transcript::new(b"r"), &v, 5, 4, &p).is_err());
    }
}

#[test]
fn malformed_range_proofs_are_rejected_without_panic() {
    let v = values(3, 3, 4);
    let (proof, _) = prove_range(&mut Transcript::new(b"r"), &v, 3).unwrap();
    let mut p = proof.clone();
    p.layers.pop();
    assert!(verify_range(&mut Transcript::new(b"r"), &v, 3, 3, &p).is_err());
    let mut p = proof.clone();
    p.layers[2].rounds.pop();
    assert!(verify_range(&mut Transcript::new(b"r"), &v, 3, 3, &p).is_err());
    let mut p = proof.clone();
    p.multiplicities.push(0);
    assert!(verify_range(&mut Transcript::new(b"r"), &v, 3, 3, &p).is_err());
    let mut p = proof.clone();
    p.root_q = EF::ZERO;
    assert!(verify_range(&mut Transcript::new(b"r"), &v, 3, 3, &p).is_err());
    // wrong shape claims
    assert!(verify_range(&mut Transcript::new(b"r"), &v, 4, 3, &proof).is_err());
    assert!(verify_range(&mut Transcript::new(b"r"), &v, 3, 4, &proof).is_err());
    assert!(verify_range(&mut Transcript::new(b"r"), &v, 3, 40, &proof).is_err());
    assert!(prove_range(&mut Transcript::new(b"r"), &v[..5], 3).is_err());
}
