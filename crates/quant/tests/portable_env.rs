//! `OPAL_QUANT_PORTABLE=1` forces the portable kernel from outside (its own test process, so
//! the variable does not leak into other tests).

use opal_quant::*;

mod common;

#[test]
fn env_var_forces_the_portable_kernel_with_the_same_bytes() {
    let models: Vec<(QuantModel, Vec<i64>)> = (0..64u64)
        .filter_map(|s| common::random_model(s).map(|m| (m.clone(), common::random_input(&m, s))))
        .collect();
    assert!(models.len() > 16);
    let before: Vec<Vec<i64>> = models
        .iter()
        .map(|(m, x)| {
            m.run_with(
                x,
                ExecOptions {
                    threads: 2,
                    path: ExecPath::Auto,
                },
            )
            .unwrap()
        })
        .collect();
    std::env::set_var(PORTABLE_ENV, "1");
    assert!(portable_forced());
    let small = ValueShape { len: 1, max_abs: 8 };
    assert_eq!(kernel_for(ExecPath::Auto, 8, small), Kernel::Scalar);
    assert_eq!(kernel_for(ExecPath::Lanes, 8, small), Kernel::Scalar);
    for ((m, x), b) in models.iter().zip(&before) {
        for threads in [1, 2] {
            let got = m
                .run_with(
                    x,
                    ExecOptions {
                        threads,
                        path: ExecPath::Auto,
                    },
                )
                .unwrap();
            assert_eq!(output_bytes(&got), output_bytes(b));
            assert_eq!(&got, &m.run(x).unwrap());
        }
    }
    std::env::remove_var(PORTABLE_ENV);
    assert!(!portable_forced());
}
