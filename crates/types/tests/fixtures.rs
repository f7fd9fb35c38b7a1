//! Frozen-format fixtures. The committed files pin the canonical encoding of a signed transaction
//! and a block header: if a change alters a single byte, these tests fail. A deliberate format
//! change regenerates them with `OPAL_UPDATE_FIXTURES=1 cargo test -p opal-types --test fixtures`.

use opal_types::*;
use std::path::PathBuf;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn sample_tx() -> Transaction {
    let key = SecretKey::from_seed([7u8; 32]);
    let to = SecretKey::from_seed([8u8; 32]).address();
    TxBody {
        chain_id: "opal-fixture".into(),
        nonce: 42,
        fee: Amount(1_000),
        action: Action::Transfer {
            to,
            amount: Amount(123_456_789),
        },
    }
    .sign(&key)
}

fn sample_header() -> BlockHeader {
    let tx = sample_tx();
    BlockHeader {
        chain_id: "opal-fixture".into(),
        height: 7,
        time_ms: 1_790_000_000_000,
        parent_hash: Hash::of(Domain::BlockHeader, b"parent"),
        prev_state_root: Hash([0xab; 32]),
        tx_root: Block::tx_root(std::slice::from_ref(&tx)),
        tx_count: 1,
        proposer: SecretKey::from_seed([9u8; 32]).public_key(),
        // Fixed bytes: the fixture pins the encoding (a real proof is randomized).
        beacon: opal_types::vrf::VrfBeacon {
            preout: [0x5a; 32],
            proof: vec![0xa5; 64],
        },
    }
}

/// Compare `actual` with the committed fixture (or write it when regenerating).
fn check(name: &str, actual: &str) -> String {
    let p = fixture_path(name);
    if std::env::var("OPAL_UPDATE_FIXTURES").is_ok() {
        std::fs::write(&p, format!("{actual}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("missing fixture {}: {e}", p.display()));
    assert_eq!(
        committed.trim(),
        actual,
        "fixture {name} drifted: the canonical format changed"
    );
    committed.trim().to_string()
}

#[test]
fn signed_transaction_fixture_decodes_and_verifies() {
    let tx = sample_tx();
    let hex_bytes = check("transfer_tx.hex", &hex::encode(tx.to_bytes()));
    let hash_hex = check("transfer_tx.hash", &tx.hash().to_hex());

    // Decode the committed bytes as an outsider would.
    let bytes = hex::decode(hex_bytes).unwrap();
    let decoded = Transaction::from_bytes(&bytes, 64 * 1024).expect("fixture decodes");
    decoded
        .verify_signature()
        .expect("fixture signature verifies");
    assert_eq!(decoded.hash().to_hex(), hash_hex);
    assert_eq!(decoded.body.nonce, 42);
    assert_eq!(decoded.body.chain_id, "opal-fixture");
    assert_eq!(
        decoded.sender().to_string(),
        SecretKey::from_seed([7u8; 32]).address().to_string()
    );
}

#[test]
fn block_header_fixture_decodes() {
    let h = sample_header();
    let hex_bytes = check("block_header.hex", &hex::encode(encode(&h)));
    check("block_header.hash", &h.hash().to_hex());
    let decoded: BlockHeader = decode("header", &hex::decode(hex_bytes).unwrap(), 4096).unwrap();
    assert_eq!(decoded, h);
}

#[test]
fn address_fixture() {
    let addr = SecretKey::from_seed([7u8; 32]).address().to_string();
    check("address.txt", &addr);
    assert_eq!(addr.parse::<Address>().unwrap().to_string(), addr);
}

fn sample_receipt() -> ReceiptEnvelope {
    use opal_types::receipt::{InferenceRequest, ReceiptBody};
    let caller = SecretKey::from_seed([10u8; 32]);
    let node = SecretKey::from_seed([11u8; 32]);
    let request = InferenceRequest {
        chain_id: "opal-fixture".into(),
        node: node.address(),
        model: ModelRef::new("digits-mlp", 1),
        model_hash: Hash([0x3b; 32]),
        input_hash: Hash::of(Domain::TensorList, b"input"),
        tier: Tier::Signed,
        max_price: Amount(15_000),
        commercial: false,
        salt: 99,
        expires_ms: 1_790_000_300_000,
        escalation: Default::default(),
    }
    .sign(&caller);
    ReceiptEnvelope::new(
        ReceiptBody {
            request,
            output_hash: Hash::of(Domain::TensorList, b"output"),
            price: Amount(15_000),
            units: 1,
            height: 12,
            node_key: node.public_key(),
        }
        .sign(&node),
    )
}

#[test]
fn receipt_envelope_fixture_decodes_and_verifies() {
    let env = sample_receipt();
    let hex_bytes = check("receipt_envelope.hex", &hex::encode(env.to_bytes()));
    let ids = format!(
        "{} {}",
        env.receipt.request_id().to_hex(),
        env.receipt.id().to_hex()
    );
    let committed_ids = check("receipt_envelope.ids", &ids);
    let decoded = ReceiptEnvelope::from_bytes(&hex::decode(hex_bytes).unwrap()).unwrap();
    decoded.verify().unwrap();
    assert_eq!(
        format!(
            "{} {}",
            decoded.receipt.request_id().to_hex(),
            decoded.receipt.id().to_hex()
        ),
        committed_ids
    );
}
