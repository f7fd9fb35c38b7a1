//! The canonical executor gives the same bytes for every thread count and kernel.

use opal_quant::*;
use proptest::prelude::*;

mod common;
use common::{random_input, random_model};

const PATHS: [ExecPath; 3] = [ExecPath::Auto, ExecPath::Portable, ExecPath::Lanes];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]
    #[test]
    fn every_thread_count_and_kernel_gives_the_reference_bytes(seed in any::<u64>()) {
        let Some(m) = random_model(seed) else { return Ok(()) };
        let x = random_input(&m, seed);
        let reference = m.execute(&x).unwrap();
        prop_assert_eq!(m.run(&x).unwrap(), reference.output().to_vec());
        for threads in [1, 2, 4] {
            for path in PATHS {
                let opts = ExecOptions { threads, path };
                let t = m.execute_with(&x, opts).unwrap();
                prop_assert_eq!(&t, &reference, "threads {} path {:?}", threads, path);
                prop_assert_eq!(
                    output_bytes(&m.run_with(&x, opts).unwrap()),
                    output_bytes(reference.output())
                );
            }
        }
    }
}

#[test]
fn avx2_is_used_where_it_applies_and_refused_where_i32_pairs_could_overflow() {
    let small = ValueShape {
        len: 4,
        max_abs: 128,
    };
    let wide = ValueShape {
        len: 4,
        max_abs: (1 << 15) - 1,
    };
    // A bound of exactly 2^15 admits +2^15, which is not an i16.
    let edge = ValueShape {
        len: 4,
        max_abs: 1 << 15,
    };
    assert_ne!(kernel_for(ExecPath::Auto, 2, edge), Kernel::Avx2);
    assert_eq!(kernel_for(ExecPath::Portable, 8, small), Kernel::Scalar);
    assert_eq!(kernel_for(ExecPath::Lanes, 8, small), Kernel::Lanes);
    // 2 * 2^15 * 2^15 would not fit i32, but the i16 condition already excludes a bound of
    // 2^15; 2 * 2^15 * (2^15 - 1) < 2^31 does fit.
    if !portable_forced() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert_eq!(kernel_for(ExecPath::Auto, 8, small), Kernel::Avx2);
            assert_eq!(kernel_for(ExecPath::Auto, 15, wide), Kernel::Avx2);
            assert_eq!(kernel_for(ExecPath::Auto, 16, wide), Kernel::Avx2);
        }
    }
}

#[test]
fn extreme_values_at_the_i16_boundary_agree() {
    // weight -2^15 and input -2^15 everywhere: the worst case for the madd kernel.
    for (wb, ib) in [(16u8, 16u8), (15, 16), (16, 15), (8, 16)] {
        let cols = 37;
        let m = QuantModel {
            input_len: cols,
            input_bits: ib,
            layers: vec![Layer::Dense(Dense {
                rows: 3,
                cols,
                weight_bits: wb,
                weights: vec![(-(1i32 << (wb - 1))) as i16; 3 * cols as usize],
                bias: vec![0, 1, -1],
            })],
            input_scale: 1.0,
            output_scale: 1.0,
        };
        let x = vec![-(1i64 << (ib - 1)); cols as usize];
        let r = m.run(&x).unwrap();
        assert_eq!(r[0], cols as i64 * (1i64 << (wb - 1)) * (1i64 << (ib - 1)));
        for threads in [1, 2, 3] {
            for path in PATHS {
                assert_eq!(m.run_with(&x, ExecOptions { threads, path }).unwrap(), r);
            }
        }
    }
}

#[test]
fn run_with_checks_inputs_like_execute() {
    let m = random_model(1).or_else(|| random_model(2)).unwrap();
    let opts = ExecOptions {
        threads: 2,
        path: ExecPath::Auto,
    };
    assert!(matches!(
        m.run_with(&vec![0; m.input_len as usize + 1], opts),
        Err(QuantError::LengthMismatch { .. })
    ));
    let mut x = vec![0; m.input_len as usize];
    x[0] = 1 << 20;
    assert!(matches!(
        m.run_with(&x, opts),
        Err(QuantError::InputOutOfRange { .. })
    ));
}

#[test]
fn the_generator_covers_every_kernel() {
    let mut valid = 0;
    let mut kernels = std::collections::BTreeSet::new();
    for seed in 0..300u64 {
        let Some(m) = random_model(seed) else {
            continue;
        };
        valid += 1;
        for l in &m.layers {
            kernels.insert(
                match l {
                    Layer::MaxPool2d(_) => "maxpool",
                    Layer::Add(_) => "add",
                    _ => "other",
                }
                .to_string(),
            );
        }
        let shapes = m.validate().unwrap();
        for (k, l) in m.layers.iter().enumerate() {
            let wb = match l {
                Layer::Dense(d) => d.weight_bits,
                Layer::Conv2d(c) => c.weight_bits,
                _ => continue,
            };
            kernels.insert(format!("{:?}", kernel_for(ExecPath::Auto, wb, shapes[k])));
        }
    }
    assert!(valid >= 100, "only {valid} of 300 random models are valid");
    assert!(kernels.contains("Lanes"), "{kernels:?}");
    assert!(
        kernels.contains("maxpool") && kernels.contains("add"),
        "{kernels:?}"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && !portable_forced() {
        assert!(kernels.contains("Avx2"), "{kernels:?}");
    }
}

#[test]
fn an_intermediate_of_exactly_plus_2_pow_15_is_not_truncated() {
    // Dense 1x1 with weight -128 on a 9-bit input -256 gives +32768 (bound exactly 2^15); the
    // next Dense must see +32768, not the i16 wrap -32768.
    let m = QuantModel {
        input_len: 1,
        input_bits: 9,
        layers: vec![
            Layer::Dense(Dense {
                rows: 1,
                cols: 1,
                weight_bits: 8,
                weights: vec![-128],
                bias: vec![0],
            }),
            Layer::Dense(Dense {
                rows: 1,
                cols: 1,
                weight_bits: 2,
                weights: vec![1],
                bias: vec![0],
            }),
        ],
        input_scale: 1.0,
        output_scale: 1.0,
    };
    assert_eq!(m.run(&[-256]).unwrap(), vec![32768]);
    for path in PATHS {
        for threads in [1, 2] {
            assert_eq!(
                m.run_with(&[-256], ExecOptions { threads, path }).unwrap(),
                vec![32768]
            );
        }
    }
}
