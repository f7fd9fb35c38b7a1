//! Protocol v2 (committed weights and witness; docs/zk.md "Protocol v2"): completeness on MLPs
//! and CNNs, saturation in both directions, and rejection of every kind of tampering.

mod common;

use opal_quant::{Dense, Layer, QuantModel, Requant, SplitMix64};
use opal_zk::v2::{self, prefix_mle};
use opal_zk::ZkError;
use proptest::prelude::*;

fn roundtrip(model: &QuantModel, x: &[i64]) -> (v2::RegisteredModel, Vec<i64>, Vec<u8>) {
    let (pm, reg) = v2::register(model).expect("register");
    let (y, proof) = v2::prove(&pm, &reg, x).expect("prove");
    assert_eq!(y, model.execute(x).unwrap().output());
    assert_eq!(proof.len(), v2::proof_len(&reg).unwrap());
    v2::verify(&reg, x, &y, &proof).expect("honest proof verifies");
    (reg, y, proof)
}

#[test]
fn prefix_indicator_matches_table() {
    use opal_zk::field::EF;
    use opal_zk::mle::evaluate;
    use p3_field::PrimeCharacteristicRing;
    let z: Vec<EF> = (0..4).map(|i| EF::from_u64(3 + 7 * i)).collect();
    for n in 0..=17 {
        let table: Vec<EF> = (0..16)
            .map(|i| if i < n { EF::ONE } else { EF::ZERO })
            .collect();
        assert_eq!(prefix_mle(n, &z), evaluate(&table, &z), "n={n}");
    }
}

#[test]
fn mlp_proves_and_verifies() {
    let (model, x) = common::mlp(1, &[20, 12, 7, 3]);
    let (reg, _, _) = roundtrip(&model, &x);
    assert!(v2::soundness_bits(&reg).unwrap() > 100.0);
}

#[test]
fn cnn_proves_and_verifies() {
    let (model, x) = common::cnn(2);
    roundtrip(&model, &x);
}

/// Non-ReLU requantization with a multiplier large enough that both saturation bounds are hit,
/// and an odd output width (top limb shifted).
#[test]
fn saturation_both_ways() {
    let mut rng = SplitMix64::new(9);
    let w: Vec<i16> = (0..8 * 6)
        .map(|_| rng.range_i64(-127, 127) as i16)
        .collect();
    let model = QuantModel {
        input_len: 6,
        input_bits: 8,
        layers: vec![
            Layer::Dense(Dense {
                rows: 8,
                cols: 6,
                weight_bits: 8,
                weights: w,
                bias: vec![0; 8],
            }),
            Layer::Requant(Requant {
                multiplier: 3,
                shift: 5,
                relu: false,
                out_bits: 5,
            }),
            Layer::Dense(Dense {
                rows: 2,
                cols: 8,
                weight_bits: 8,
                weights: (0..16).map(|i| i as i16 - 8).collect(),
                bias: vec![1, -1],
            }),
        ],
        input_scale: 1.0,
        output_scale: 1.0,
    };
    let x: Vec<i64> = (0..6).map(|_| rng.range_i64(-128, 127)).collect();
    let t = model.execute(&x).unwrap();
    assert!(
        t.values[2].contains(&15) && t.values[2].contains(&-16),
        "{:?}",
        t.values[2]
    );
    roundtrip(&model, &x);
    // Ending in a Requant (output is a requantized vector).
    let mut m2 = model.clone();
    m2.layers.truncate(2);
    roundtrip(&m2, &x);
}

#[test]
fn rejects_wrong_output_input_and_model() {
    let (model, x) = common::mlp(3, &[16, 8, 4]);
    let (reg, y, proof) = roundtrip(&model, &x);
    for i in 0..y.len() {
        let mut bad = y.clone();
        bad[i] += 1;
        assert!(v2::verify(&reg, &x, &bad, &proof).is_err(), "output {i}");
    }
    for i in 0..x.len() {
        let mut bad = x.clone();
        bad[i] ^= 1;
        assert!(v2::verify(&reg, &bad, &y, &proof).is_err(), "input {i}");
    }
    // Another model with one weight changed: its registration does not accept this proof.
    let mut m2 = model.clone();
    if let Layer::Dense(d) = &mut m2.layers[0] {
        d.weights[5] = d.weights[5].wrapping_add(1).clamp(-127, 127);
    }
    let (_, reg2) = v2::register(&m2).unwrap();
    assert!(v2::verify(&reg2, &x, &y, &proof).is_err());
    // A changed requant multiplier in the claimed structure.
    let mut reg3 = reg.clone();
    if let Layer::Requant(r) = &mut reg3.structure.layers[1] {
        r.multiplier += 1;
    }
    assert!(v2::verify(&reg3, &x, &y, &proof).is_err());
    // The prover of m2 cannot claim model's output for the registered model.
    let (pm2, _) = v2::register(&m2).unwrap();
    let (y2, p2) = v2::prove(&pm2, &reg, &x).unwrap();
    assert!(v2::verify(&reg, &x, &y2, &p2).is_err());
}

#[test]
fn every_bit_flip_sampled_is_rejected() {
    let (model, x) = common::cnn(4);
    let (reg, y, proof) = roundtrip(&model, &x);
    let mut rng = SplitMix64::new(77);
    for _ in 0..96 {
        let i = rng.range_i64(0, proof.len() as i64 - 1) as usize;
        let mut bad = proof.clone();
        bad[i] ^= 1 << rng.range_i64(0, 7);
        assert!(v2::verify(&reg, &x, &y, &bad).is_err(), "byte {i}");
    }
    // Every byte of the witness root and of the first range-proof multiplicities.
    for i in 0..64 {
        let mut bad = proof.clone();
        bad[i] ^= 0x80;
        assert!(v2::verify(&reg, &x, &y, &bad).is_err(), "byte {i}");
    }
}

#[test]
fn malformed_proofs_are_rejected_without_panic() {
    let (model, x) = common::mlp(5, &[10, 6, 3]);
    let (reg, y, proof) = roundtrip(&model, &x);
    for cut in [0, 1, 31, 32, proof.len() / 2, proof.len() - 1] {
        assert!(matches!(
            v2::verify(&reg, &x, &y, &proof[..cut]),
            Err(ZkError::ProofLength { .. })
        ));
    }
    let mut long = proof.clone();
    long.push(0);
    assert!(v2::verify(&reg, &x, &y, &long).is_err());
    assert!(v2::verify(&reg, &x, &y, &vec![0xff; proof.len()]).is_err());
    assert!(v2::verify(&reg, &x, &y, &vec![0; proof.len()]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Random bytes, truncations and byte flips never panic the verifier or the decoders.
    #[test]
    fn verifier_never_panics(
        noise in prop::collection::vec(any::<u8>(), 0..4096),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let (model, x) = common::mlp(6, &[8, 4, 2]);
        let (pm, reg) = v2::register(&model).unwrap();
        let (y, proof) = v2::prove(&pm, &reg, &x).unwrap();
        // Noise of another length is refused on its length before any byte is read; noise of
        // the right length (never drawn in practice) must still be refused.
        let r = v2::verify(&reg, &x, &y, &noise);
        if noise.len() != proof.len() {
            prop_assert!(matches!(r, Err(ZkError::ProofLength { .. })), "{r:?}");
        } else {
            prop_assert!(r.is_err());
        }
        let cut_at = cut.index(proof.len());
        let r = v2::verify(&reg, &x, &y, &proof[..cut_at]);
        prop_assert!(
            matches!(r, Err(ZkError::ProofLength { expected, got }) if expected == proof.len() && got == cut_at),
            "{r:?}"
        );
        let mut bad = proof.clone();
        for (i, v) in &flips {
            let i = i.index(bad.len());
            bad[i] ^= v | 1;
        }
        prop_assert!(v2::verify(&reg, &x, &y, &bad).is_err());
        // Noise is not a registered model (a u32 length prefix that fits and a model that
        // validates are out of reach of random bytes); a truncated encoding is refused.
        prop_assert!(matches!(v2::RegisteredModel::from_bytes(&noise), Err(ZkError::Model(_))));
        let rb = reg.to_bytes();
        prop_assert!(matches!(
            v2::RegisteredModel::from_bytes(&rb[..cut.index(rb.len())]),
            Err(ZkError::Model(_))
        ));
        let mut rbad = rb.clone();
        let (i, v) = flips[0];
        let i = i.index(rbad.len());
        rbad[i] ^= v | 1;
        // A flipped byte that still decodes is another registered model (the encoding is
        // canonical): the proof made for ours must not verify under it.
        if let Ok(r2) = v2::RegisteredModel::from_bytes(&rbad) {
            let _ = v2::proof_len(&r2); // only that it does not panic
            prop_assert!(r2 != reg, "a flipped encoding decoded to the same model");
            prop_assert!(v2::verify(&r2, &x, &y, &proof).is_err());
        }
    }
}

/// Cheating provers whose downstream computation is consistent with a wrong requantization:
/// every one must be rejected (the wrong output is what they would get accepted).
#[test]
fn cheating_requantization_is_rejected() {
    let (model, x) = common::mlp(8, &[16, 8, 4]);
    let (pm, reg) = v2::register(&model).unwrap();
    let honest = model.execute(&x).unwrap();
    let rq = &pm.shape.requants[0];
    let (ke, ks, kd) = (rq.ke, rq.ks, rq.kd);
    let e_shift = rq.e_shift as usize;
    let s_shift = rq.s_shift as usize;
    let rem0 = ke + e_shift;
    let dh0 = rem0 + ks + s_shift;
    let dl0 = dh0 + kd;
    assert_eq!(ke, 1, "bump_e assumes a one-limb output");
    let Layer::Requant(r) = &model.layers[1] else {
        panic!("layer 1 is a requant")
    };
    let top_w = r.shift as usize - LIMB_FOR_TEST * (ks - 1);
    assert!(
        top_w < LIMB_FOR_TEST,
        "the builder's shift is not a multiple of 8 here"
    );
    // Pick an element whose output is strictly inside the range.
    let y = &honest.values[2];
    let f = y
        .iter()
        .position(|v| *v > 1 && *v < 100)
        .expect("an unsaturated element");
    let j = rq.layout.index(f);
    type Cheat = Box<dyn Fn(&mut [Vec<i64>])>;
    let cheats: Vec<(&str, Cheat)> = vec![
        // y + 1 without touching the remainder: the rounding identity fails.
        ("output+1", Box::new(move |v| bump_e(v, j, 1, e_shift))),
        // y - 1 and rem + 2^s: the identity holds over the integers and every limb stays in
        // [0, 256), but rem >= 2^s: the shifted top-limb copy (left as is) no longer matches.
        (
            "output-1,rem+2^s",
            Box::new(move |v| {
                bump_e(v, j, -1, e_shift);
                v[rem0 + ks - 1][j] += 1i64 << top_w;
            }),
        ),
        // claim saturation at the top without being there: d_hi = 1, y - 1.
        (
            "fake-saturation",
            Box::new(move |v| {
                bump_e(v, j, -1, e_shift);
                v[dh0][j] += 1;
            }),
        ),
        // y - 1 with d_lo = ... (product d_lo * (y - lo) != 0)
        (
            "fake-low-saturation",
            Box::new(move |v| {
                bump_e(v, j, 1, e_shift);
                v[dl0][j] += 1;
            }),
        ),
    ];
    for (name, cheat) in cheats {
        let hook = |i: usize, v: &mut [Vec<i64>]| {
            if i == 0 {
                cheat(v)
            }
        };
        let (out, proof) = v2::prove_with_hook(&pm, &reg, &x, Some(&hook)).unwrap();
        assert_ne!(out, honest.output(), "cheat {name} changes the output");
        let r = v2::verify(&reg, &x, &out, &proof);
        eprintln!("cheat {name}: {r:?}");
        assert!(r.is_err(), "cheat {name} accepted");
    }
    // The hook with no change gives a valid proof (the harness itself is sound).
    let noop = |_: usize, _: &mut [Vec<i64>]| {};
    let (out, proof) = v2::prove_with_hook(&pm, &reg, &x, Some(&noop)).unwrap();
    v2::verify(&reg, &x, &out, &proof).unwrap();
}

const LIMB_FOR_TEST: usize = v2::LIMB;

/// Changes `e = y - lo` (one limb: the ReLU 8-bit output has 7 bits) and keeps its shifted top
///-limb copy consistent, so only the targeted relation can catch the cheat.
fn bump_e(v: &mut [Vec<i64>], j: usize, delta: i64, e_shift: usize) {
    v[0][j] += delta;
    if e_shift == 1 {
        v[1][j] = v[0][j] << 1;
    }
}

#[test]
fn registration_proof_binds_weight_ranges() {
    let (model, _) = common::cnn(11);
    let (pm, reg) = v2::register(&model).unwrap();
    let rp = v2::prove_registration(&pm, &reg).unwrap();
    assert_eq!(rp.len(), v2::registration_proof_len(&reg).unwrap());
    v2::verify_registration(&reg, &rp).unwrap();
    assert!(v2::registration_soundness_bits(&reg).unwrap() > 100.0);
    // Another model's registration does not accept it; flipped bytes are rejected.
    let (model2, _) = common::cnn(12);
    let (_, reg2) = v2::register(&model2).unwrap();
    assert!(v2::verify_registration(&reg2, &rp).is_err());
    let mut rng = SplitMix64::new(5);
    for _ in 0..24 {
        let i = rng.range_i64(0, rp.len() as i64 - 1) as usize;
        let mut bad = rp.clone();
        bad[i] ^= 1 << rng.range_i64(0, 7);
        assert!(v2::verify_registration(&reg, &bad).is_err(), "byte {i}");
    }
    assert!(v2::verify_registration(&reg, &rp[..rp.len() - 1]).is_err());
    // Weights declared narrower than they are: the honest registrant cannot prove the range.
    let mut narrow = model.clone();
    if let Layer::Conv2d(c) = &mut narrow.layers[0] {
        c.weights[0] = 100;
    }
    let (mut pm3, reg3) = v2::register(&narrow).unwrap();
    if let Layer::Conv2d(c) = &mut pm3.model.layers[0] {
        c.weight_bits = 4; // claims 4-bit weights while 100 is committed
    }
    assert!(v2::prove_registration(&pm3, &reg3).is_err());
}
