//! What a light client pays to verify one block: certificate of N validators (N signature
//! checks), the validator-set Merkle proof and the trust check. Run:
//! `cargo run --release -p opal-verify --example light_bench -- [REPS]`.

use opal_state::Store;
use opal_types::evidence::{VoteEvidence, PRECOMMIT};
use opal_types::validator::ActiveValidator;
use opal_types::{Block, BlockHeader, Hash, SecretKey, Signature};
use opal_verify::light::{
    verify_step, Certificate, LightBlock, Options, TrustedState, VALIDATORS_KEY,
};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let reps: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    println!("| validators | certificate bytes | light block bytes | verify one block (median of {reps}) |");
    println!("|---|---|---|---|");
    for n in [4usize, 100] {
        let keys: Vec<SecretKey> = (0..n)
            .map(|i| SecretKey::from_seed(*blake3::hash(&(i as u64).to_le_bytes()).as_bytes()))
            .collect();
        let set: Vec<ActiveValidator> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| ActiveValidator {
                name: format!("v{i}"),
                operator: k.address(),
                public_key: k.public_key(),
                power: 10,
                vrf_key: k.vrf_public_key(),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut w = BTreeMap::new();
        w.insert(VALIDATORS_KEY.to_vec(), Some(borsh::to_vec(&set).unwrap()));
        // Some unrelated state so the proof has a realistic depth.
        for i in 0..10_000u32 {
            w.insert(format!("acct/{i}").into_bytes(), Some(vec![1; 40]));
        }
        let root = Hash(store.commit(0, w, Default::default()).unwrap());
        let header = BlockHeader {
            chain_id: "bench".into(),
            height: 1,
            time_ms: 2_000,
            parent_hash: Hash::ZERO,
            prev_state_root: root,
            tx_root: Block::tx_root(&[]),
            tx_count: 0,
            proposer: set[0].public_key,
            beacon: keys[0].vrf_beacon("bench", 1),
        };
        let block = Block::new(header, vec![]).to_bytes();
        let value_id = *blake3::hash(&block).as_bytes();
        let signatures = keys
            .iter()
            .map(|k| {
                let m = VoteEvidence {
                    vote_type: PRECOMMIT,
                    height: 1,
                    round: 0,
                    value: Some(value_id),
                    validator: k.public_key(),
                    signature: Signature([0; 64]),
                }
                .sign_bytes("bench");
                (k.public_key().0, k.sign(&m).0.to_vec())
            })
            .collect();
        let cert = Certificate {
            height: 1,
            round: 0,
            value_id,
            signatures,
        };
        let (value, proof) = store
            .snapshot()
            .unwrap()
            .get_with_proof(VALIDATORS_KEY)
            .unwrap();
        let lb = LightBlock {
            block,
            certificate: borsh::to_vec(&cert).unwrap(),
            validators: value.unwrap(),
            validators_proof: proof.to_bytes(),
        };
        let trusted = TrustedState::genesis("bench", 1_000, set, root, Hash::ZERO);
        let opts = Options::new(3_000, Some(3_600_000));
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            verify_step(&trusted, &lb, &opts).expect("verifies");
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let size =
            lb.block.len() + lb.certificate.len() + lb.validators.len() + lb.validators_proof.len();
        println!(
            "| {n} | {} | {size} | {:.0} µs |",
            lb.certificate.len(),
            times[times.len() / 2]
        );
    }
}
