//! `parse_inputs`: every accepted form, and the bounded, typed refusals.

use opal_infer::{parse_inputs, DType, InferError, Tensor, TensorSpec};

fn spec(name: &str, dtype: DType, shape: Vec<Option<usize>>) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dtype,
        shape,
    }
}

fn one() -> Vec<TensorSpec> {
    vec![spec("X", DType::F32, vec![None, Some(3)])]
}

fn two() -> Vec<TensorSpec> {
    vec![
        spec("ids", DType::I64, vec![Some(1), None]),
        spec("scale", DType::F32, vec![Some(1)]),
    ]
}

#[test]
fn nested_array_takes_its_shape_from_the_nesting_and_its_dtype_from_the_model() {
    let t = parse_inputs(b"[[1, 2.5, 3], [4, 5, 6]]", &one()).unwrap();
    assert_eq!(
        t,
        vec![Tensor::from_f32(vec![2, 3], vec![1.0, 2.5, 3.0, 4.0, 5.0, 6.0]).unwrap()]
    );
    let t = parse_inputs(b" [1, 2, 3] ", &one()).unwrap();
    assert_eq!(t[0].shape(), &[3]);
    let t = parse_inputs(b"[[[1], [2]], [[3], [4]]]", &one()).unwrap();
    assert_eq!(t[0].shape(), &[2, 2, 1]);
    let t = parse_inputs(b"[[]]", &one()).unwrap();
    assert_eq!(t[0].shape(), &[1, 0]);
    let t = parse_inputs(br#"[["NaN", "Infinity"]]"#, &one()).unwrap();
    assert_eq!(t[0].first_nan(), Some(0));
    let ints = vec![spec("ids", DType::I64, vec![None])];
    let t = parse_inputs(b"[7, -8]", &ints).unwrap();
    assert_eq!(t[0].as_i64(), Some(&[7i64, -8][..]));
}

#[test]
fn named_inputs_come_back_in_model_order() {
    let doc = br#"{"scale": {"dtype": "f32", "shape": [1], "data": [0.5]}, "ids": [[3, 4, 5]]}"#;
    let t = parse_inputs(doc, &two()).unwrap();
    assert_eq!(t[0], Tensor::from_i64(vec![1, 3], vec![3, 4, 5]).unwrap());
    assert_eq!(t[1], Tensor::from_f32(vec![1], vec![0.5]).unwrap());
    let missing = parse_inputs(br#"{"ids": [[1]]}"#, &two()).unwrap_err();
    assert_eq!(missing.code(), "tensor_invalid");
    assert!(missing.to_string().contains("`scale`"), "{missing}");
}

#[test]
fn tensor_objects_and_input_data_are_accepted() {
    let t = parse_inputs(br#"{"dtype":"f32","shape":[1,3],"data":[1,2,3]}"#, &one()).unwrap();
    assert_eq!(t[0].shape(), &[1, 3]);
    let t = parse_inputs(
        br#"{"input_data": [[1,2,3,4,5,6]], "output_data": [[0]]}"#,
        &one(),
    )
    .unwrap();
    assert_eq!(t[0].shape(), &[2, 3]);
    let sample = include_bytes!("../../../models/digits/sample_input.json");
    let digits = vec![spec("X", DType::F32, vec![None, Some(64)])];
    let t = parse_inputs(sample, &digits).unwrap();
    assert_eq!(t[0], Tensor::from_json(sample).unwrap());
}

fn code(json: &str, specs: &[TensorSpec]) -> &'static str {
    parse_inputs(json.as_bytes(), specs).unwrap_err().code()
}

#[test]
fn bad_documents_get_typed_errors() {
    let o = one();
    for (json, want) in [
        ("", "tensor_invalid"),
        ("5", "tensor_invalid"),
        ("[[1, 2], [3]]", "tensor_invalid"),
        ("[[1, 2], 3]", "tensor_invalid"),
        ("[3, [1, 2]]", "tensor_invalid"),
        ("[[1], []]", "tensor_invalid"),
        ("[[1, 2]] trailing", "tensor_invalid"),
        ("[[1, true]]", "tensor_invalid"),
        (r#"[["nan"]]"#, "tensor_invalid"),
        ("[[1e39]]", "tensor_invalid"),
        ("[[[[[[[[[1]]]]]]]]]", "too_large"),
        (r#"{"dtype":"f32","shape":[1]}"#, "tensor_invalid"),
        (r#"{"other": 1}"#, "tensor_invalid"),
        (r#"{"X": [[1]], "input_data": [[1]]}"#, "tensor_invalid"),
        (r#"{"input_data": [[1, 2]]}"#, "input_shape"),
        (r#"{"input_data": [[1, 2, 3], [4]]}"#, "input_count"),
    ] {
        assert_eq!(code(json, &o), want, "{json}");
    }
    // A nested array or a bare tensor names one input only.
    assert_eq!(code("[[1]]", &two()), "input_count");
    assert_eq!(
        code(r#"{"dtype":"f32","shape":[1],"data":[1]}"#, &two()),
        "input_count"
    );
    // Element types follow the model: floats are refused for an integer input.
    let ints = vec![spec("ids", DType::I64, vec![None])];
    assert_eq!(code("[1.5]", &ints), "tensor_invalid");
    assert_eq!(code(r#"{"ids": [1.5]}"#, &ints), "tensor_invalid");
}

#[test]
fn nested_arrays_are_bounded_while_streaming() {
    let n = Tensor::MAX_ELEMENTS + 5;
    let mut json = String::with_capacity(2 * n + 2);
    json.push('[');
    for i in 0..n {
        if i > 0 {
            json.push(',');
        }
        json.push('0');
    }
    json.push(']');
    match parse_inputs(json.as_bytes(), &one()).unwrap_err() {
        InferError::TooLarge { what, got, .. } => {
            assert_eq!(what, "tensor elements");
            assert_eq!(got, n as u64);
        }
        other => panic!("{other:?}"),
    }
}
