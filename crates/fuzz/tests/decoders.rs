//! Every decoder of untrusted bytes, fuzzed for a bounded number of mutants (SEED,
//! OPAL_FUZZ_ITERS: see the crate docs). Each target asserts that the decoder never panics and,
//! where it promises more, that it keeps the promise: canonical decoders accept exactly one
//! encoding per value (decode, re-encode, same bytes), and a proof that is not byte-for-byte
//! the prover's never verifies.

use opal_fuzz::{fuzz, iterations};
use opal_types::encoding::{decode, encode};
use opal_types::tx::MAX_TX_BYTES_HARD;
use opal_types::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../types/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    hex::decode(text.trim()).expect("fixture is hex")
}

/// Decoding must be the inverse of encoding: what is accepted re-encodes to the same bytes.
fn canonical<T>(
    input: &[u8],
    decoded: Result<T, impl std::fmt::Debug>,
    enc: impl Fn(&T) -> Vec<u8>,
) -> Result<(), String> {
    match decoded {
        Ok(v) if enc(&v) != input => {
            Err("accepted bytes that do not re-encode to themselves".into())
        }
        _ => Ok(()),
    }
}

fn report(name: &str, s: opal_fuzz::Stats) {
    eprintln!(
        "{name}: {} mutants ({} differ from their base)",
        s.runs, s.changed
    );
    assert!(
        s.runs == 0 || s.changed > 0,
        "{name}: no mutant differed from the corpus"
    );
}

fn sample_txs() -> Vec<Vec<u8>> {
    let key = SecretKey::from_seed([7u8; 32]);
    let to = SecretKey::from_seed([8u8; 32]).address();
    let body = |nonce, action| TxBody {
        chain_id: "opal-fuzz".into(),
        nonce,
        fee: Amount(1_000),
        action,
    };
    vec![
        fixture("transfer_tx.hex"),
        body(
            1,
            Action::Transfer {
                to,
                amount: Amount(5),
            },
        )
        .sign(&key)
        .to_bytes(),
        body(2, Action::Unjail).sign(&key).to_bytes(),
        body(
            3,
            Action::CommitteeVote {
                request_id: Hash([3; 32]),
                valid: false,
            },
        )
        .sign(&key)
        .to_bytes(),
    ]
}

#[test]
fn transactions() {
    let corpus = sample_txs();
    for c in &corpus {
        Transaction::from_bytes(c, MAX_TX_BYTES_HARD).expect("the corpus decodes");
    }
    let s = fuzz("transaction", &corpus, iterations(20_000), |b| {
        canonical(b, Transaction::from_bytes(b, MAX_TX_BYTES_HARD), |t| {
            t.to_bytes()
        })
    });
    report("transaction", s);
}

#[test]
fn blocks() {
    let header: BlockHeader =
        decode("block header", &fixture("block_header.hex"), 1 << 16).expect("fixture header");
    let txs: Vec<Transaction> = sample_txs()
        .iter()
        .map(|b| Transaction::from_bytes(b, MAX_TX_BYTES_HARD).unwrap())
        .collect();
    let corpus = vec![
        Block::new(header.clone(), vec![]).to_bytes(),
        Block::new(header, txs).to_bytes(),
    ];
    let s = fuzz("block", &corpus, iterations(10_000), |b| {
        canonical(b, Block::from_bytes(b), |x| x.to_bytes())
    });
    report("block", s);
}

#[test]
fn receipt_envelopes_and_files() {
    let env = fixture("receipt_envelope.hex");
    ReceiptEnvelope::from_bytes(&env).expect("fixture envelope");
    let s = fuzz(
        "receipt envelope",
        std::slice::from_ref(&env),
        iterations(10_000),
        |b| canonical(b, ReceiptEnvelope::from_bytes(b), |e| e.to_bytes()),
    );
    report("receipt envelope", s);
    let file = format!(
        "{{\"envelope\": \"{}\", \"outputs\": []}}",
        hex::encode(&env)
    )
    .into_bytes();
    let wrapped = format!("{{\"opal_receipt\": {}}}", String::from_utf8_lossy(&file)).into_bytes();
    opal_verify::ReceiptFile::parse(&file).expect("the corpus parses");
    let s = fuzz("receipt file", &[file, wrapped], iterations(5_000), |b| {
        let _ = opal_verify::ReceiptFile::parse(b);
        Ok(())
    });
    report("receipt file", s);
}

#[test]
fn spend_grants() {
    let key = SecretKey::from_seed([5u8; 32]);
    let g = receipt::SpendGrant {
        chain_id: "opal-fuzz".into(),
        node: SecretKey::from_seed([6u8; 32]).address(),
        max_total: Amount(1_000_000),
        expires_ms: 1_800_000_000_000,
        salt: 9,
    }
    .sign(&key);
    let api_key = g.to_api_key().into_bytes();
    let s = fuzz(
        "spend grant (API key)",
        &[api_key],
        iterations(10_000),
        |b| {
            let Ok(text) = std::str::from_utf8(b) else {
                return Ok(());
            };
            // Hex digits may be written in either case (one grant, one id either way);
            // otherwise one grant has one key.
            let lower = text.to_ascii_lowercase();
            canonical(
                lower.as_bytes(),
                receipt::SignedGrant::from_api_key(text),
                |g| g.to_api_key().into_bytes(),
            )
        },
    );
    report("spend grant", s);
}

#[test]
fn double_sign_evidence() {
    let k = SecretKey::from_seed([4u8; 32]);
    let vote = |value| evidence::VoteEvidence {
        vote_type: 1,
        height: 10,
        round: 0,
        value: Some([value; 32]),
        validator: k.public_key(),
        signature: k.sign(b"not checked by decoding"),
    };
    let e = DoubleSignEvidence {
        a: vote(1),
        b: vote(2),
    };
    let corpus = vec![encode(&e)];
    let s = fuzz("double-sign evidence", &corpus, iterations(10_000), |b| {
        let d = decode::<DoubleSignEvidence>("evidence", b, 1 << 12);
        if let Ok(e) = &d {
            // Validation of hostile evidence must answer, not panic.
            let _ = e.validate("opal-fuzz");
        }
        canonical(b, d, encode)
    });
    report("double-sign evidence", s);
}

#[test]
fn llm_inputs_and_outputs() {
    let tokens = encode(&vec![1u32, 2, 3, 50_000]);
    let s = fuzz("llm tokens", &[tokens], iterations(5_000), |b| {
        let _ = llm::tokens_from_bytes(b);
        Ok(())
    });
    report("llm tokens", s);
}

fn quant_model() -> opal_quant::QuantModel {
    opal_quant::fixtures::integer_mlp().0
}

#[test]
fn opalq_model_files() {
    let digits = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/digits/model.opalq"
    ))
    .expect("models/digits/model.opalq");
    let corpus = vec![quant_model().to_file_bytes(), digits];
    for c in &corpus {
        opal_quant::QuantModel::from_file_bytes(c).expect("the corpus decodes");
    }
    let s = fuzz(".opalq", &corpus, iterations(3_000), |b| {
        canonical(b, opal_quant::QuantModel::from_file_bytes(b), |m| {
            m.to_file_bytes()
        })
    });
    report(".opalq", s);
}

#[test]
fn activation_commitments() {
    let c = opal_llm::ActivationCommitment {
        version: 1,
        sampling: opal_llm::SamplingParams::default(),
        chunk_size: 16,
        top_k: 2,
        prompt_len: 5,
        output_len: 20,
        chunks: vec![
            opal_llm::ChunkCommit {
                modulus: 7,
                coeffs: vec![1, 2],
            };
            3
        ],
    };
    let corpus = vec![c.to_bytes()];
    let s = fuzz("activation commitment", &corpus, iterations(10_000), |b| {
        canonical(b, opal_llm::ActivationCommitment::from_bytes(b), |c| {
            c.to_bytes()
        })
    });
    report("activation commitment", s);
}

#[test]
fn tensors() {
    let t = opal_infer::Tensor::from_json(
        br#"{"dtype": "f32", "shape": [2, 2], "data": [1.0, -2.5, 0.0, 3.25]}"#,
    )
    .expect("tensor");
    let corpus = vec![t.canonical_bytes()];
    let s = fuzz("tensor", &corpus, iterations(10_000), |b| {
        canonical(b, opal_infer::Tensor::from_canonical_bytes(b), |t| {
            t.canonical_bytes()
        })
    });
    report("tensor", s);
}

#[test]
fn zk_keys_and_proofs() {
    let m = quant_model();
    let setup = opal_zk::api::setup(&m).expect("setup");
    let vk = opal_zk::api::verifying_key(&setup);
    let vk_bytes = vk.to_bytes();
    let s = fuzz(
        "zk verifying key",
        std::slice::from_ref(&vk_bytes),
        iterations(300),
        |b| {
            canonical(b, opal_zk::api::VerifyingKey::from_bytes(b), |k| {
                k.to_bytes()
            })
        },
    );
    report("zk verifying key", s);

    let x: Vec<i64> = (0..16).map(|i| (i * 37 % 255) as i64 - 127).collect();
    let (y, proof) = opal_zk::api::prove(&m, &setup, &x, &mut |_| {}).expect("prove");
    opal_zk::api::verify(&vk, &x, &y, &proof).expect("the honest proof verifies");
    let s = fuzz(
        "zk proof",
        std::slice::from_ref(&proof),
        iterations(300),
        |b| match opal_zk::api::verify(&vk, &x, &y, b) {
            Ok(()) if b != proof.as_slice() => Err("a changed proof verified".into()),
            _ => Ok(()),
        },
    );
    report("zk proof", s);
}
