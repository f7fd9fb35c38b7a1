//! Small fixed models for tests: built from integers only (no float builder), so every
//! machine builds the same bytes, and frozen digests over them (opal-zk's) stay valid.

use crate::{Dense, Layer, QuantModel, Requant, SplitMix64};

/// A 16 → 8 → 4 integer MLP (seed 2026, one ReLU requantization) and a fixed input for it.
pub fn integer_mlp() -> (QuantModel, Vec<i64>) {
    let mut rng = SplitMix64::new(2026);
    let mut dense = |rows: u32, cols: u32| {
        Layer::Dense(Dense {
            rows,
            cols,
            weight_bits: 8,
            weights: (0..rows * cols)
                .map(|_| rng.range_i64(-127, 127) as i16)
                .collect(),
            bias: (0..rows)
                .map(|_| rng.range_i64(-1000, 1000) as i32)
                .collect(),
        })
    };
    let layers = vec![
        dense(8, 16),
        Layer::Requant(Requant {
            multiplier: 12345,
            shift: 20,
            relu: true,
            out_bits: 8,
        }),
        dense(4, 8),
    ];
    let m = QuantModel {
        input_len: 16,
        input_bits: 8,
        layers,
        input_scale: 1.0 / 127.0,
        output_scale: 1e-4,
    };
    let x = (0..16).map(|i| (i * 37 % 255) as i64 - 127).collect();
    (m, x)
}
