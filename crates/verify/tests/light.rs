//! Light-client verification against a real authenticated store, with a lying node: forged
//! roots, forged or short certificates, certificates by keys outside the set, forged validator
//! sets, hidden settlements, stale trust. Each attack is refused with its own typed error.

use opal_state::Store;
use opal_types::evidence::{VoteEvidence, PRECOMMIT};
use opal_types::validator::ActiveValidator;
use opal_types::{Block, BlockHeader, Hash, SecretKey, Signature};
use opal_verify::light::{
    verify_step, verify_to, Certificate, LightBlock, LightError, Options, Portable,
    SettlementProof, TrustedState, VALIDATORS_KEY,
};
use std::collections::BTreeMap;

const CHAIN: &str = "light-test";
const T0: u64 = 1_000_000;

fn key(i: u8) -> SecretKey {
    SecretKey::from_seed([i; 32])
}

fn key_of(pk: &opal_types::PublicKey) -> SecretKey {
    (0..=255u8)
        .map(key)
        .find(|k| k.public_key() == *pk)
        .unwrap()
}

fn member(i: u8, power: u64) -> ActiveValidator {
    ActiveValidator {
        name: format!("v{i}"),
        operator: key(i).address(),
        public_key: key(i).public_key(),
        power,
        vrf_key: key(i).vrf_public_key(),
    }
}

fn sign_cert(height: u64, block: &[u8], signers: &[u8]) -> Certificate {
    let value_id = *blake3::hash(block).as_bytes();
    let signatures = signers
        .iter()
        .map(|i| {
            let k = key(*i);
            let bytes = VoteEvidence {
                vote_type: PRECOMMIT,
                height,
                round: 0,
                value: Some(value_id),
                validator: k.public_key(),
                signature: Signature([0; 64]),
            }
            .sign_bytes(CHAIN);
            (k.public_key().0, k.sign(&bytes).0.to_vec())
        })
        .collect();
    Certificate {
        height,
        round: 0,
        value_id,
        signatures,
    }
}

/// A chain whose validator set at each height is given, with a real store: the set that votes
/// on height `h` is in the state after `h - 1`, under `validators`; `extra` writes other keys.
struct Chain {
    _dir: tempfile::TempDir,
    store: Store,
    /// Signers (key indices) and set members of each height.
    sets: Vec<Vec<ActiveValidator>>,
    blocks: Vec<Vec<u8>>,
    genesis_root: Hash,
}

impl Chain {
    /// `sets[h - 1]` votes on height `h`; block `h` is signed by every member of its set.
    fn new(sets: Vec<Vec<ActiveValidator>>, extra: &[(u64, Vec<u8>, Vec<u8>)]) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut blocks = vec![];
        let mut parent = Hash::ZERO;
        let mut genesis_root = Hash::ZERO;
        for h in 0..=sets.len() as u64 {
            // The state after height h holds the set for h + 1 (the last one repeats).
            let next = &sets[(h as usize).min(sets.len() - 1)];
            let mut w = BTreeMap::new();
            w.insert(VALIDATORS_KEY.to_vec(), Some(borsh::to_vec(next).unwrap()));
            for (at, k, v) in extra {
                if *at == h {
                    w.insert(k.clone(), Some(v.clone()));
                }
            }
            if h > 0 {
                let header = BlockHeader {
                    chain_id: CHAIN.into(),
                    height: h,
                    time_ms: T0 + h * 1_000,
                    parent_hash: parent,
                    prev_state_root: Hash(store.root_at(h - 1).unwrap()),
                    tx_root: Block::tx_root(&[]),
                    tx_count: 0,
                    proposer: sets[h as usize - 1][0].public_key,
                    beacon: key_of(&sets[h as usize - 1][0].public_key).vrf_beacon(CHAIN, h),
                };
                parent = header.hash();
                blocks.push(Block::new(header, vec![]).to_bytes());
            }
            let root = store.commit(h, w, Default::default()).unwrap();
            if h == 0 {
                genesis_root = Hash(root);
            }
        }
        Chain {
            _dir: dir,
            store,
            sets,
            blocks,
            genesis_root,
        }
    }

    fn genesis(&self) -> TrustedState {
        TrustedState::genesis(
            CHAIN,
            T0,
            self.sets[0].clone(),
            self.genesis_root,
            Hash::ZERO,
        )
    }

    fn signers(&self, h: u64) -> Vec<u8> {
        self.sets[h as usize - 1]
            .iter()
            .map(|v| {
                (0..=255u8)
                    .find(|i| key(*i).public_key() == v.public_key)
                    .unwrap()
            })
            .collect()
    }

    /// What an honest node serves for height `h`.
    fn light(&self, h: u64) -> LightBlock {
        let block = self.blocks[h as usize - 1].clone();
        let cert = sign_cert(h, &block, &self.signers(h));
        let (value, proof) = self
            .store
            .snapshot_at(h - 1)
            .unwrap()
            .get_with_proof(VALIDATORS_KEY)
            .unwrap();
        LightBlock {
            block,
            certificate: borsh::to_vec(&cert).unwrap(),
            validators: value.unwrap(),
            validators_proof: proof.to_bytes(),
        }
    }

    fn settlement(&self, height: u64, key: &[u8]) -> SettlementProof {
        let (value, proof) = self
            .store
            .snapshot_at(height)
            .unwrap()
            .get_with_proof(key)
            .unwrap();
        SettlementProof {
            height,
            key: key.to_vec(),
            value,
            proof: proof.to_bytes(),
        }
    }
}

fn four() -> Vec<ActiveValidator> {
    (1..=4).map(|i| member(i, 10)).collect()
}

fn opts() -> Options {
    Options::new(T0 + 100_000, Some(3_600_000))
}

fn with_cert(mut lb: LightBlock, cert: &Certificate) -> LightBlock {
    lb.certificate = borsh::to_vec(cert).unwrap();
    lb
}

#[test]
fn an_honest_chain_verifies_step_by_step_and_by_skipping() {
    let c = Chain::new(vec![four(); 6], &[]);
    let mut t = c.genesis();
    for h in 1..=6 {
        t = verify_step(&t, &c.light(h), &opts()).unwrap();
        assert_eq!(t.height, h);
    }
    let mut fetch = |h: u64| Ok(c.light(h));
    let (skip, path) = verify_to(&c.genesis(), 6, &mut fetch, &opts()).unwrap();
    assert_eq!(path, vec![6], "one step when the set did not change");
    assert_eq!(skip, t);
}

#[test]
fn a_forged_state_root_is_refused() {
    let c = Chain::new(vec![four(); 3], &[]);
    let t = verify_step(&c.genesis(), &c.light(1), &opts()).unwrap();
    // The node rewrites block 2's state root: the certificate no longer matches the bytes.
    let mut lb = c.light(2);
    let mut b = Block::from_bytes(&lb.block).unwrap();
    b.header.prev_state_root = Hash([7; 32]);
    lb.block = b.to_bytes();
    assert!(matches!(
        verify_step(&t, &lb, &opts()),
        Err(LightError::CertificateMismatch { .. })
    ));
    // ... and if it re-signs nothing but swaps in another block's certificate, the same.
    let lb = with_cert(c.light(2), &sign_cert(3, &c.blocks[2], &[1, 2, 3, 4]));
    assert!(matches!(
        verify_step(&t, &lb, &opts()),
        Err(LightError::CertificateMismatch { .. })
    ));
}

#[test]
fn short_and_forged_certificates_are_refused() {
    let c = Chain::new(vec![four(); 2], &[]);
    let g = c.genesis();
    let lb = c.light(1);
    // 2 of 4 equal validators: exactly 1/2, not more than 2/3.
    let short = with_cert(lb.clone(), &sign_cert(1, &lb.block, &[1, 2]));
    assert!(matches!(
        verify_step(&g, &short, &opts()),
        Err(LightError::InsufficientPower {
            signed: 20,
            total: 40
        })
    ));
    // 2 of 4 with a duplicate.
    let dup = with_cert(lb.clone(), &sign_cert(1, &lb.block, &[1, 2, 2]));
    assert!(matches!(
        verify_step(&g, &dup, &opts()),
        Err(LightError::DuplicateSigner(_))
    ));
    // A signature by a key outside the set.
    let outsider = with_cert(lb.clone(), &sign_cert(1, &lb.block, &[1, 2, 3, 9]));
    assert!(matches!(
        verify_step(&g, &outsider, &opts()),
        Err(LightError::UnknownSigner(pk)) if pk == key(9).public_key()
    ));
    // A forged signature (bytes flipped).
    let mut cert = sign_cert(1, &lb.block, &[1, 2, 3, 4]);
    cert.signatures[3].1[5] ^= 1;
    assert!(matches!(
        verify_step(&g, &with_cert(lb.clone(), &cert), &opts()),
        Err(LightError::BadSignature(_))
    ));
    // Garbage bytes never panic.
    let mut garbage = lb.clone();
    garbage.certificate = vec![0xff; 40];
    assert!(matches!(
        verify_step(&g, &garbage, &opts()),
        Err(LightError::Malformed { .. })
    ));
    garbage = lb.clone();
    garbage.block = vec![1, 2, 3];
    assert!(verify_step(&g, &garbage, &opts()).is_err());
    // 3 of 4: accepted.
    let three = with_cert(lb.clone(), &sign_cert(1, &lb.block, &[1, 2, 3]));
    assert!(verify_step(&g, &three, &opts()).is_ok());
}

#[test]
fn a_whole_forged_chain_signed_by_keys_outside_the_set_is_refused() {
    let honest = Chain::new(vec![four(); 4], &[]);
    // The attacker runs its own chain with its own four keys: every certificate is complete
    // for the set its own state claims.
    let evil: Vec<ActiveValidator> = (11..=14).map(|i| member(i, 10)).collect();
    let forged = Chain::new(vec![evil; 4], &[]);
    let g = honest.genesis();
    // Its block 1 does not start from the genesis state.
    assert!(matches!(
        verify_step(&g, &forged.light(1), &opts()),
        Err(LightError::GenesisRootMismatch { .. })
    ));
    // Skipping to its block 4 from a trusted honest block: none of the trusted power signed.
    let t = verify_step(&g, &honest.light(1), &opts()).unwrap();
    assert!(matches!(
        verify_step(&t, &forged.light(4), &opts()),
        Err(LightError::InsufficientTrust { signed: 0, .. })
    ));
    // Bisecting does not help it: its block 2 does not link to the trusted block 1.
    let mut fetch = |h: u64| Ok(forged.light(h));
    assert!(matches!(
        verify_to(&t, 4, &mut fetch, &opts()),
        Err(LightError::ParentMismatch { height: 2, .. })
    ));
}

#[test]
fn a_forged_validator_set_does_not_prove_against_the_header() {
    let c = Chain::new(vec![four(); 2], &[]);
    let t = verify_step(&c.genesis(), &c.light(1), &opts()).unwrap();
    // The node claims block 2 was voted by a set of its choice (its own key with all power).
    let mut lb = c.light(2);
    lb.validators = borsh::to_vec(&vec![member(9, 1_000)]).unwrap();
    lb = with_cert(lb.clone(), &sign_cert(2, &lb.block, &[9]));
    assert!(matches!(
        verify_step(&t, &lb, &opts()),
        Err(LightError::ValidatorsProof(_))
    ));
}

#[test]
fn a_changing_validator_set_is_followed_by_bisection() {
    // One validator replaced per height: after four heights none of the genesis set is left.
    let sets: Vec<Vec<ActiveValidator>> = (0..8u8)
        .map(|h| {
            (1..=4u8)
                .map(|i| member(if i <= h.min(4) { i + 20 } else { i }, 10))
                .collect()
        })
        .collect();
    let c = Chain::new(sets, &[]);
    let mut fetched = vec![];
    let mut fetch = |h: u64| {
        fetched.push(h);
        Ok(c.light(h))
    };
    let (t, path) = verify_to(&c.genesis(), 8, &mut fetch, &opts()).unwrap();
    assert_eq!(t.height, 8);
    assert!(path.len() > 1, "needed intermediate blocks: {path:?}");
    assert_eq!(path.last(), Some(&8));
    // A node can not make it fetch without end.
    let mut o = opts();
    o.max_fetches = 1;
    let mut fetch = |h: u64| Ok(c.light(h));
    assert!(matches!(
        verify_to(&c.genesis(), 8, &mut fetch, &o),
        Err(LightError::TooManySteps(1))
    ));
}

#[test]
fn stale_trust_and_future_headers_are_refused() {
    let c = Chain::new(vec![four(); 2], &[]);
    let late = Options::new(T0 + 7_200_000, Some(3_600_000));
    assert!(matches!(
        verify_step(&c.genesis(), &c.light(1), &late),
        Err(LightError::TrustExpired { .. })
    ));
    // No period: the caller chose to trust genesis forever.
    assert!(verify_step(&c.genesis(), &c.light(1), &Options::new(u64::MAX, None)).is_ok());
    let early = Options::new(T0 - 60_000, Some(3_600_000));
    assert!(matches!(
        verify_step(&c.genesis(), &c.light(1), &early),
        Err(LightError::FromTheFuture { .. })
    ));
    // Not newer than the trusted block.
    let t = verify_step(&c.genesis(), &c.light(2), &opts()).unwrap();
    assert!(matches!(
        verify_step(&t, &c.light(1), &opts()),
        Err(LightError::NotNewer { .. })
    ));
}

#[test]
fn a_portable_settlement_proof_verifies_offline_and_a_hidden_settlement_is_caught() {
    let settled = b"inference/settled/abc".to_vec();
    // The receipt settles in block 3 (written in the state after 3).
    let c = Chain::new(vec![four(); 5], &[(3, settled.clone(), b"record".to_vec())]);
    let p = Portable {
        state: c.settlement(4, &settled),
        light_blocks: vec![c.light(5)],
    };
    let v = p.verify(&c.genesis(), &opts()).unwrap();
    assert_eq!(v.value.as_deref(), Some(&b"record"[..]));
    assert_eq!(v.certified_by, 5);
    // It survives a JSON round trip (it travels inside the receipt file).
    let json = serde_json::to_string(&p).unwrap();
    let back: Portable = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);

    // A node that hides the settlement: it claims the key is absent, with a proof of absence
    // from another state (height 1, before the settlement), against the certified root of 4.
    let mut hidden = p.clone();
    hidden.state.value = None;
    hidden.state.proof = c.settlement(1, &settled).proof;
    assert!(matches!(
        hidden.verify(&c.genesis(), &opts()),
        Err(LightError::StateProof { .. })
    ));
    // A forged record.
    let mut forged = p.clone();
    forged.state.value = Some(b"another record".to_vec());
    assert!(matches!(
        forged.verify(&c.genesis(), &opts()),
        Err(LightError::StateProof { .. })
    ));
    // Without the certifying block the proof is worth nothing.
    let mut bare = p.clone();
    bare.light_blocks.clear();
    assert!(matches!(
        bare.verify(&c.genesis(), &opts()),
        Err(LightError::Fetch { .. })
    ));
}
