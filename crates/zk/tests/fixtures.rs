//! Frozen-format checks: the model id, the proof bytes of v1, v1c and v2 for a fixed seeded model
//! must not change silently (transcript, encoding and PCS parameters are all covered). If a
//! change is deliberate, bump the protocol string and update these digests.

use opal_quant::fixtures::integer_mlp as integer_model;

fn digest(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

#[test]
fn frozen_digests() {
    let (m, x) = integer_model();
    let (y, p1) = opal_zk::prove(&m, &x).unwrap();
    opal_zk::verify(&m, &x, &y, &p1).unwrap();
    let trace = m.execute(&x).unwrap();
    assert!(
        trace.values[2].iter().any(|v| *v > 0) && trace.values[2].contains(&0),
        "{:?}",
        trace.values[2]
    );
    let (pm, reg) = opal_zk::committed::register(&m).unwrap();
    let (_, p2) = opal_zk::committed::prove(&pm, &reg, &x).unwrap();
    let got = [
        hex(&m.model_id()),
        digest(&p1.to_bytes()),
        digest(&p2.to_bytes()),
    ];
    assert_eq!(got, EXPECTED);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const EXPECTED: [&str; 3] = [
    "3d6b42b6c17baae7f8bc4435c21838cda88d440f4996e4b58305b2d381b29fd0",
    "4da1873bfb45d9206b1a9b26af2afe8208bc1baee9ffcb2831c0e5df2c86a2bd",
    "8b1a10925c24bb78768fa4af253c9c2b2bff6bfc0e6a931def47c58519f82ac3",
];

/// Protocol v2 (what `opal zk` runs): registered-model encoding and proof bytes are frozen.
#[test]
fn frozen_digests_v2() {
    let (m, x) = integer_model();
    let (pm, reg) = opal_zk::v2::register(&m).unwrap();
    let (y, p) = opal_zk::v2::prove(&pm, &reg, &x).unwrap();
    opal_zk::v2::verify(&reg, &x, &y, &p).unwrap();
    let rb = reg.to_bytes();
    assert_eq!(opal_zk::v2::RegisteredModel::from_bytes(&rb).unwrap(), reg);
    let got = [hex(&reg.id()), digest(&rb), digest(&p)];
    assert_eq!(got, EXPECTED_V2, "{got:?}");
}

const EXPECTED_V2: [&str; 3] = [
    "bcff14573f2551caafea328921d18744b6cd776ac45d8d6e5e7ce0176f864bbf",
    "b81d735094cc012c2d4862d5a2062062e36729fc60aa4d187d5fbc79911ceaf2",
    "737d1e3bea7f56422db5dcfea490cf8f90c240837e607c33483e8e437d36344e",
];

/// The verifying-key encoding (format version 3: with the model file hash) and a key-bound
/// proof are frozen: the key id is what the registry stores, so a silent change would strand
/// every registered zk model. A deliberate change bumps `api::VERSION` and updates these.
#[test]
fn frozen_key_v3() {
    let (m, x) = integer_model();
    let setup = opal_zk::api::setup(&m).unwrap();
    let vk = opal_zk::api::verifying_key(&setup);
    assert_eq!(vk.file_hash(), *blake3::hash(&m.to_file_bytes()).as_bytes());
    let (y, p) = opal_zk::api::prove(&m, &setup, &x, &mut |_| {}).unwrap();
    opal_zk::api::verify(&vk, &x, &y, &p).unwrap();
    let got = [hex(&vk.file_hash()), hex(&vk.id()), digest(&p)];
    assert_eq!(got, EXPECTED_KEY_V3, "{got:?}");
}

const EXPECTED_KEY_V3: [&str; 3] = [
    "7d8528b0d42c1cb60e94da8648392303c2e215ea70327d7766676a53c7857e47",
    "4d1213c29ec68f981a5c59392085f3f211a06831f0f2e2e63a67e996b0de01e4",
    "5dc92a181719d7396b7a2985a7f6cf3a0067ad0eedc29e332295f86af83d2104",
];
