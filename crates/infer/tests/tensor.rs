//! Tensor encodings: JSON round trips, bounded decoding, the frozen canonical bytes and hash.

use opal_infer::{parse_input_data, DType, InferError, Tensor, TensorData, TensorSpec};

fn sample() -> Tensor {
    Tensor::from_f32(vec![2, 3], vec![0.0, -0.0, 1.5, -2.25, 1e-30, 3.0e38]).unwrap()
}

#[test]
fn json_round_trip_every_dtype() {
    let tensors = [
        sample(),
        Tensor::from_i64(vec![3], vec![i64::MIN, 0, i64::MAX]).unwrap(),
        Tensor::new(vec![1, 2], TensorData::I32(vec![i32::MIN, 7])).unwrap(),
        Tensor::new(vec![4], TensorData::U8(vec![0, 1, 128, 255])).unwrap(),
        Tensor::from_f32(vec![0, 5], vec![]).unwrap(),
        Tensor::from_f32(vec![], vec![42.0]).unwrap(),
    ];
    for t in tensors {
        let json = t.to_json();
        let back = Tensor::from_json(json.as_bytes()).unwrap();
        assert_eq!(back, t, "{json}");
        assert_eq!(back.canonical_bytes(), t.canonical_bytes());
        // serde's own entry point agrees with from_json.
        let via_serde: Tensor = serde_json::from_str(&json).unwrap();
        assert_eq!(via_serde, t);
    }
}

#[test]
fn json_form_is_the_documented_one() {
    let t = Tensor::from_f32(vec![1, 3], vec![0.5, 7.0, -1.0]).unwrap();
    assert_eq!(
        t.to_json(),
        r#"{"dtype":"f32","shape":[1,3],"data":[0.5,7.0,-1.0]}"#
    );
    let t = Tensor::from_json(br#"{"data":[1,2],"shape":[2],"dtype":"i64"}"#).unwrap();
    assert_eq!(t.as_i64(), Some(&[1i64, 2][..]));
    // Integers are accepted for f32.
    let t = Tensor::from_json(br#"{"dtype":"f32","shape":[2],"data":[1,2.5]}"#).unwrap();
    assert_eq!(t.as_f32(), Some(&[1.0f32, 2.5][..]));
}

#[test]
fn non_finite_floats_round_trip_as_strings() {
    let t = Tensor::from_f32(vec![3], vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY]).unwrap();
    let json = t.to_json();
    assert_eq!(
        json,
        r#"{"dtype":"f32","shape":[3],"data":["NaN","Infinity","-Infinity"]}"#
    );
    let back = Tensor::from_json(json.as_bytes()).unwrap();
    assert_eq!(back.first_nan(), Some(0));
    assert_eq!(back.canonical_bytes(), t.canonical_bytes());
}

fn code(r: Result<Tensor, InferError>) -> &'static str {
    r.unwrap_err().code()
}

#[test]
fn json_decoding_refuses_bad_tensors_with_typed_errors() {
    let cases: &[(&str, &str)] = &[
        ("not json", "tensor_invalid"),
        (
            r#"{"dtype":"f16","shape":[1],"data":[1]}"#,
            "tensor_invalid",
        ),
        (
            r#"{"dtype":"f32","shape":[3],"data":[1,2]}"#,
            "tensor_invalid",
        ),
        (
            r#"{"dtype":"f32","shape":[-1],"data":[]}"#,
            "tensor_invalid",
        ),
        (
            r#"{"dtype":"i64","shape":[1],"data":[1.5]}"#,
            "tensor_invalid",
        ),
        (
            r#"{"dtype":"u8","shape":[1],"data":[256]}"#,
            "tensor_invalid",
        ),
        (
            r#"{"dtype":"i32","shape":[1],"data":[2147483648]}"#,
            "tensor_invalid",
        ),
        (
            r#"{"dtype":"i64","shape":[1],"data":[9223372036854775808]}"#,
            "tensor_invalid",
        ),
        (
            r#"{"dtype":"f32","shape":[1],"data":[1e39]}"#,
            "tensor_invalid",
        ),
        (
            r#"{"dtype":"f32","shape":[1],"data":["nan"]}"#,
            "tensor_invalid",
        ),
        (
            r#"{"dtype":"f32","shape":[1],"data":[1],"extra":0}"#,
            "tensor_invalid",
        ),
        (r#"{"dtype":"f32","shape":[1]}"#, "tensor_invalid"),
        (
            r#"{"dtype":"f32","shape":[1,1,1,1,1,1,1,1,1],"data":[1]}"#,
            "too_large",
        ),
        (
            r#"{"dtype":"f32","shape":[4294967296,4294967296],"data":[]}"#,
            "too_large",
        ),
        (
            r#"{"dtype":"f32","shape":[18446744073709551615,18446744073709551615],"data":[]}"#,
            "too_large",
        ),
    ];
    for (json, want) in cases {
        assert_eq!(code(Tensor::from_json(json.as_bytes())), *want, "{json}");
    }
}

#[test]
fn json_decoding_counts_but_never_stores_past_the_element_bound() {
    let n = Tensor::MAX_ELEMENTS + 3;
    let mut json = String::with_capacity(2 * n + 64);
    json.push_str(r#"{"dtype":"u8","shape":[1],"data":["#);
    for i in 0..n {
        if i > 0 {
            json.push(',');
        }
        json.push('0');
    }
    json.push_str("]}");
    match Tensor::from_json(json.as_bytes()) {
        Err(InferError::TooLarge { what, limit, got }) => {
            assert_eq!(what, "tensor elements");
            assert_eq!(limit, Tensor::MAX_ELEMENTS as u64);
            assert_eq!(got, n as u64);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn constructors_check_consistency() {
    assert_eq!(
        Tensor::from_f32(vec![2, 2], vec![1.0; 3])
            .unwrap_err()
            .code(),
        "tensor_invalid"
    );
    assert_eq!(
        Tensor::from_f32(vec![1; 9], vec![1.0]).unwrap_err().code(),
        "too_large"
    );
    assert_eq!(
        Tensor::from_f32(vec![usize::MAX, 2], vec![])
            .unwrap_err()
            .code(),
        "too_large"
    );
}

/// The canonical encoding of a fixed tensor, byte for byte, and its hash. If this test fails the
/// encoding drifted: every receipt's input and output hash would change. Do not update the
/// constants; bump the version instead. (The two hashes were also computed independently, with
/// Python's `blake3` package in derive-key mode over the bytes spelled out below.)
#[test]
fn canonical_bytes_fixture_is_frozen() {
    let t = Tensor::from_f32(vec![1, 3], vec![1.0, -0.0, f32::NAN]).unwrap();
    let expected: Vec<u8> = [
        &[1u8, 1, 2][..],    // version, dtype f32, rank 2
        &1u64.to_le_bytes(), // dims
        &3u64.to_le_bytes(),
        &[0x00, 0x00, 0x80, 0x3f], // 1.0
        &[0x00, 0x00, 0x00, 0x80], // -0.0
        &[0x00, 0x00, 0xc0, 0x7f], // canonical NaN
    ]
    .concat();
    assert_eq!(t.canonical_bytes(), expected);
    // Any NaN payload encodes the same.
    let other_nan = f32::from_bits(0xffc0_0001);
    let t2 = Tensor::from_f32(vec![1, 3], vec![1.0, -0.0, other_nan]).unwrap();
    assert_eq!(t2.canonical_bytes(), expected);

    let i = Tensor::from_i64(vec![2], vec![-1, 258]).unwrap();
    let expected_i: Vec<u8> = [
        &[1u8, 2, 1][..],
        &2u64.to_le_bytes(),
        &(-1i64).to_le_bytes(),
        &258i64.to_le_bytes(),
    ]
    .concat();
    assert_eq!(i.canonical_bytes(), expected_i);

    assert_eq!(
        hex::encode(t.hash()),
        "281f1ea9878712a7f06a42d771823d5060905e61080760bf7f6581db4d3d5312"
    );
    assert_eq!(
        hex::encode(i.hash()),
        "b4bbe95437a2dc2d32c23f7da6cb497e431a704b37dbdc8653c6ff5cc9f1c6ba"
    );
}

#[test]
fn hash_is_derive_key_over_canonical_bytes() {
    for t in [
        sample(),
        Tensor::new(vec![5], TensorData::U8(vec![1, 2, 3, 4, 5])).unwrap(),
        // Large enough to cross the internal chunking.
        Tensor::from_f32(vec![3000], (0..3000).map(|i| i as f32 * 0.5).collect()).unwrap(),
    ] {
        let direct = blake3::derive_key(Tensor::HASH_CONTEXT, &t.canonical_bytes());
        assert_eq!(t.hash(), direct);
    }
    // Shape is part of the hash.
    let a = Tensor::from_f32(vec![2, 1], vec![1.0, 2.0]).unwrap();
    let b = Tensor::from_f32(vec![1, 2], vec![1.0, 2.0]).unwrap();
    assert_ne!(a.hash(), b.hash());
}

#[test]
fn canonical_bytes_decode_back_and_refuse_bad_input() {
    for t in [
        sample(),
        Tensor::from_i64(vec![2, 1], vec![-5, 5]).unwrap(),
        Tensor::new(vec![1], TensorData::I32(vec![-9])).unwrap(),
        Tensor::new(vec![0], TensorData::U8(vec![])).unwrap(),
    ] {
        let bytes = t.canonical_bytes();
        assert_eq!(Tensor::from_canonical_bytes(&bytes).unwrap(), t);
        // Every strict prefix and any trailing byte is refused.
        for cut in 0..bytes.len() {
            assert!(Tensor::from_canonical_bytes(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Tensor::from_canonical_bytes(&longer).is_err());
    }
    let good = sample().canonical_bytes();
    let mut bad_version = good.clone();
    bad_version[0] = 2;
    assert_eq!(
        Tensor::from_canonical_bytes(&bad_version)
            .unwrap_err()
            .code(),
        "tensor_invalid"
    );
    let mut bad_tag = good.clone();
    bad_tag[1] = 9;
    assert!(Tensor::from_canonical_bytes(&bad_tag).is_err());
    let mut big_rank = good.clone();
    big_rank[2] = 200;
    assert_eq!(
        Tensor::from_canonical_bytes(&big_rank).unwrap_err().code(),
        "too_large"
    );
    // A huge declared shape is refused before any allocation.
    let mut huge = vec![1u8, 1, 2];
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        Tensor::from_canonical_bytes(&huge).unwrap_err().code(),
        "too_large"
    );
    // A non-canonical NaN is refused.
    let mut nan = vec![1u8, 1, 1];
    nan.extend_from_slice(&1u64.to_le_bytes());
    nan.extend_from_slice(&0xffc0_0000u32.to_le_bytes());
    assert!(Tensor::from_canonical_bytes(&nan).is_err());
}

fn spec(shape: Vec<Option<usize>>, dtype: DType) -> TensorSpec {
    TensorSpec {
        name: "X".into(),
        dtype,
        shape,
    }
}

#[test]
fn input_data_format_is_reshaped_to_the_declared_shape() {
    let doc = br#"{"input_data": [[1, 2.5, 3, 4, 5, 6]], "output_data": [[0]]}"#;
    let t = parse_input_data(doc, &[spec(vec![None, Some(3)], DType::F32)]).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].shape(), &[2, 3]);
    assert_eq!(t[0].as_f32().unwrap()[1], 2.5);

    let t = parse_input_data(doc, &[spec(vec![Some(6)], DType::F32)]).unwrap();
    assert_eq!(t[0].shape(), &[6]);

    let ints = br#"{"input_data": [[1, 2]]}"#;
    let t = parse_input_data(ints, &[spec(vec![Some(1), None], DType::I64)]).unwrap();
    assert_eq!(t[0].as_i64(), Some(&[1i64, 2][..]));

    let e = parse_input_data(doc, &[spec(vec![None, Some(4)], DType::F32)]).unwrap_err();
    assert_eq!(e.code(), "input_shape");
    let e = parse_input_data(doc, &[spec(vec![Some(5)], DType::F32)]).unwrap_err();
    assert_eq!(e.code(), "input_shape");
    let e = parse_input_data(doc, &[spec(vec![None, None], DType::F32)]).unwrap_err();
    assert_eq!(e.code(), "tensor_invalid");
    let e = parse_input_data(
        doc,
        &[spec(vec![None], DType::F32), spec(vec![None], DType::F32)],
    )
    .unwrap_err();
    assert_eq!(e.code(), "input_count");
    let e = parse_input_data(doc, &[spec(vec![None], DType::I64)]).unwrap_err();
    assert_eq!(e.code(), "tensor_invalid");
    let e = parse_input_data(br#"{"input": [[1]]}"#, &[spec(vec![None], DType::F32)]).unwrap_err();
    assert_eq!(e.code(), "tensor_invalid");
    let e =
        parse_input_data(br#"{"input_data": [[]]}"#, &[spec(vec![None], DType::F32)]).unwrap_err();
    assert_eq!(e.code(), "input_shape");
}

#[test]
fn the_list_hash_of_tensors_is_the_ledgers_hash_of_their_canonical_bytes() {
    let a = Tensor::from_f32(vec![1, 2], vec![0.5, -1.0]).unwrap();
    let b = Tensor::from_i64(vec![3], vec![1, 2, 3]).unwrap();
    let list = [a.clone(), b.clone()];
    assert_eq!(
        opal_infer::tensors_hash(&list),
        opal_types::receipt::tensor_list_hash(&[a.canonical_bytes(), b.canonical_bytes()])
    );
    assert_ne!(
        opal_infer::tensors_hash(&list),
        opal_infer::tensors_hash(&[b, a]),
        "order counts"
    );
}
