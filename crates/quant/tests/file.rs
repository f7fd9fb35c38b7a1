//! `.opalq` model files: round trip, typed errors, and no panic on hostile bytes.

use opal_quant::*;
use proptest::prelude::*;

mod common;
use common::random_model;

fn some_model() -> QuantModel {
    (0..100).find_map(random_model).unwrap()
}

#[test]
fn round_trip_and_header() {
    for seed in 0..40 {
        let Some(m) = random_model(seed) else {
            continue;
        };
        let b = m.to_file_bytes();
        assert_eq!(&b[..8], b"OPALQNT\0");
        assert_eq!(u16::from_le_bytes([b[8], b[9]]), FILE_VERSION);
        let back = QuantModel::from_file_bytes(&b).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.model_id(), m.model_id());
        assert_eq!(back.to_file_bytes(), b);
    }
}

#[test]
fn typed_errors() {
    let m = some_model();
    let b = m.to_file_bytes();
    assert_eq!(
        QuantModel::from_file_bytes(b"nope"),
        Err(FileError::BadMagic)
    );
    assert_eq!(QuantModel::from_file_bytes(&[]), Err(FileError::BadMagic));
    let mut v = b.clone();
    v[8] = 2;
    assert_eq!(
        QuantModel::from_file_bytes(&v),
        Err(FileError::UnsupportedVersion(2))
    );
    assert!(matches!(
        QuantModel::from_file_bytes(&b[..b.len() - 1]),
        Err(FileError::Truncated { .. })
    ));
    let mut v = b.clone();
    v.push(0);
    assert_eq!(
        QuantModel::from_file_bytes(&v),
        Err(FileError::TrailingBytes(1))
    );
    // A model that decodes but is invalid (weight out of its bit range).
    let mut bad = m.clone();
    for l in &mut bad.layers {
        if let Layer::Dense(d) = l {
            d.weight_bits = 2;
            d.weights[0] = 5;
            break;
        }
    }
    assert!(matches!(
        QuantModel::from_file_bytes(&bad.to_file_bytes()),
        Err(FileError::Invalid(_))
    ));
    let mut bad = m.clone();
    bad.input_scale = 0.0;
    assert!(matches!(
        QuantModel::from_file_bytes(&bad.to_file_bytes()),
        Err(FileError::BadScale { .. })
    ));
    // Payload length field pointing past a lie: declared length larger than the file.
    let mut v = b.clone();
    v[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        QuantModel::from_file_bytes(&v),
        Err(FileError::Truncated { .. })
    ));
}

#[test]
fn huge_declared_vector_lengths_do_not_allocate() {
    // A payload whose first Vec claims 2^32 - 1 layers: borsh must fail on the short input
    // without reserving that much memory.
    let mut payload = Vec::new();
    payload.extend_from_slice(&4u32.to_le_bytes()); // input_len
    payload.push(8); // input_bits
    payload.extend_from_slice(&u32::MAX.to_le_bytes()); // layers len
    payload.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff]); // Requant? garbage
    let mut f = Vec::new();
    f.extend_from_slice(&FILE_MAGIC);
    f.extend_from_slice(&FILE_VERSION.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&payload);
    assert!(matches!(
        QuantModel::from_file_bytes(&f),
        Err(FileError::Decode(_))
    ));
}

#[test]
fn canonical_mappings() {
    let m = QuantModel {
        input_len: 6,
        input_bits: 8,
        layers: vec![Layer::Dense(Dense {
            rows: 1,
            cols: 6,
            weight_bits: 8,
            weights: vec![1; 6],
            bias: vec![0],
        })],
        input_scale: 0.5,
        output_scale: 1.0,
    };
    // x / 0.5, round half away from zero, saturate; NaN -> 0.
    assert_eq!(
        m.input_from_f32(&[0.25, -0.25, 0.74, 1000.0, -1000.0, f32::NAN])
            .unwrap(),
        vec![1, -1, 1, 127, -128, 0]
    );
    assert!(m.input_from_f32(&[0.0; 5]).is_err());
    assert_eq!(output_bytes(&[1, -2]), {
        let mut v = 1i64.to_le_bytes().to_vec();
        v.extend_from_slice(&(-2i64).to_le_bytes());
        v
    });
    assert_eq!(
        output_from_bytes(&output_bytes(&[5, -7, i64::MIN])).unwrap(),
        vec![5, -7, i64::MIN]
    );
    assert_eq!(output_from_bytes(&[0; 7]), None);
    assert_eq!(argmax(&[3, 9, 9, 1]), Some(1));
    assert_eq!(argmax(&[]), None);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = QuantModel::from_file_bytes(&b);
        let mut v = FILE_MAGIC.to_vec();
        v.extend_from_slice(&FILE_VERSION.to_le_bytes());
        v.extend_from_slice(&(b.len() as u32).to_le_bytes());
        v.extend_from_slice(&b);
        if let Ok(m) = QuantModel::from_file_bytes(&v) {
            prop_assert_eq!(m.to_file_bytes(), v);
        }
    }

    #[test]
    fn flips_and_truncations_never_panic(seed in 0u64..50, pos in any::<usize>(), bit in 0u8..8, cut in any::<usize>()) {
        let Some(m) = random_model(seed) else { return Ok(()) };
        let b = m.to_file_bytes();
        let mut v = b.clone();
        let i = pos % v.len();
        v[i] ^= 1 << bit;
        if let Ok(m2) = QuantModel::from_file_bytes(&v) {
            // Whatever decodes is canonical: it is exactly the flipped bytes.
            prop_assert_eq!(m2.to_file_bytes(), v);
        }
        let c = cut % b.len();
        prop_assert!(QuantModel::from_file_bytes(&b[..c]).is_err());
    }
}
