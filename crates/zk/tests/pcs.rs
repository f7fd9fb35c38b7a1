use opal_zk::field::{EF, F};
use opal_zk::mle::evaluate_base;
use opal_zk::pcs::{commit, open, opening_bytes, verify};
use opal_zk::transcript::Transcript;
use p3_field::PrimeCharacteristicRing;

fn table(n: usize, seed: u64) -> Vec<F> {
    let mut rng = opal_quant::SplitMix64::new(seed);
    (0..1usize << n)
        .map(|_| F::from_u64(rng.next_u64() >> 1))
        .collect()
}

fn point(n: usize, seed: u64) -> Vec<EF> {
    let mut rng = opal_quant::SplitMix64::new(seed);
    (0..n).map(|_| EF::from_u64(rng.next_u64() >> 1)).collect()
}

#[test]
fn honest_openings_verify() {
    for n in [0usize, 1, 4, 7, 10] {
        let f = table(n, n as u64);
        let c = commit(&f).unwrap();
        let r = point(n, 100 + n as u64);
        let (v, o) = open(&mut Transcript::new(b"p"), &c, &r).unwrap();
        assert_eq!(v, evaluate_base(&f, &r));
        assert_eq!(
            verify(&mut Transcript::new(b"p"), &c.commitment, &r, &o).unwrap(),
            v
        );
        assert!(opening_bytes(n) > 0);
    }
}

#[test]
fn tampered_openings_fail() {
    let n = 8;
    let f = table(n, 1);
    let c = commit(&f).unwrap();
    let r = point(n, 2);
    let (_, o) = open(&mut Transcript::new(b"p"), &c, &r).unwrap();
    let d = EF::ONE;
    let mut o1 = o.clone();
    o1.u_eval[3] += d; // changes the claimed value
    assert!(verify(&mut Transcript::new(b"p"), &c.commitment, &r, &o1).is_err());
    let mut o2 = o.clone();
    o2.u_prox[0] += d;
    assert!(verify(&mut Transcript::new(b"p"), &c.commitment, &r, &o2).is_err());
    let mut o3 = o.clone();
    o3.columns[17].0[2] += F::ONE;
    assert!(verify(&mut Transcript::new(b"p"), &c.commitment, &r, &o3).is_err());
    let mut o4 = o.clone();
    o4.columns[5].1[1][0] ^= 1;
    assert!(verify(&mut Transcript::new(b"p"), &c.commitment, &r, &o4).is_err());
    let mut o5 = o.clone();
    o5.columns.pop();
    assert!(verify(&mut Transcript::new(b"p"), &c.commitment, &r, &o5).is_err());
    // a commitment to a table differing in one entry does not accept this opening
    let mut g = f.clone();
    g[77] += F::ONE;
    let cg = commit(&g).unwrap();
    assert!(verify(&mut Transcript::new(b"p"), &cg.commitment, &r, &o).is_err());
    // another point
    let mut r2 = r.clone();
    r2[0] += d;
    assert!(verify(&mut Transcript::new(b"p"), &c.commitment, &r2, &o).is_err());
}
