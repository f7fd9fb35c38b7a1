//! Load time and per-request latency of the demo model on tract, plus the cost of what a node
//! adds around a run (decoding the JSON input, hashing input and output).
//!
//! ```text
//! cargo run --release -p opal-infer --example digits_bench [-- ITERATIONS]
//! ```
//!
//! Prints one line per measurement; the numbers go into docs/benchmarks.md.

use std::time::{Duration, Instant};

use opal_infer::{Limits, PreparedModel, Tensor};

const MODEL: &[u8] = include_bytes!("../../../models/digits/model.onnx");
const SAMPLE: &[u8] = include_bytes!("../../../models/digits/sample_input.json");

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
    min: Duration,
}

fn measure(iters: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..iters.div_ceil(10) {
        f(); // warm-up
    }
    let mut t: Vec<Duration> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    let total: Duration = t.iter().sum();
    Stats {
        mean: total / iters as u32,
        p50: t[iters / 2],
        p99: t[(iters * 99 / 100).min(iters - 1)],
        min: t[0],
    }
}

fn line(what: &str, s: &Stats) {
    println!(
        "{what:<44} mean {:>9.2?}  p50 {:>9.2?}  p99 {:>9.2?}  min {:>9.2?}",
        s.mean, s.p50, s.p99, s.min
    );
}

fn main() -> anyhow::Result<()> {
    let iters: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    println!(
        "digits MLP (64-32-10), model.onnx {} bytes, {iters} iterations, profile {}",
        MODEL.len(),
        if cfg!(debug_assertions) {
            "debug (numbers meaningless: use --release)"
        } else {
            "release"
        }
    );

    let limits = Limits::default();
    let load = measure(50, || {
        PreparedModel::load(MODEL, &limits).expect("load");
    });
    line("load (parse+typecheck+optimise+plan)", &load);

    let model = PreparedModel::load(MODEL, &limits)?;
    let input = Tensor::from_json(SAMPLE)?;
    let one = std::slice::from_ref(&input);

    let run = measure(iters, || {
        std::hint::black_box(model.run(one).expect("run"));
    });
    line("run, batch 1", &run);

    let batch: Vec<f32> = input.as_f32().unwrap().repeat(32);
    let batch = vec![Tensor::from_f32(vec![32, 64], batch)?];
    let run32 = measure(iters / 10, || {
        std::hint::black_box(model.run(&batch).expect("run"));
    });
    line("run, batch 32 (whole batch)", &run32);
    println!("{:<44} {:>9.2?}", "  per row in batch 32", run32.mean / 32);

    let decode = measure(iters, || {
        std::hint::black_box(Tensor::from_json(SAMPLE).expect("json"));
    });
    line("decode input JSON", &decode);
    let outputs = model.run(one)?;
    let hash = measure(iters, || {
        std::hint::black_box(input.hash());
        for o in &outputs {
            std::hint::black_box(o.hash());
        }
    });
    line("hash input + outputs (opal/tensor/v1)", &hash);
    let encode = measure(iters, || {
        for o in &outputs {
            std::hint::black_box(o.to_json());
        }
    });
    line("encode outputs JSON", &encode);
    let overhead = decode.mean + hash.mean + encode.mean;
    println!(
        "{:<44} {:>9.2?} ({:.1}% of run)",
        "decode + hash + encode",
        overhead,
        100.0 * overhead.as_secs_f64() / run.mean.as_secs_f64()
    );
    println!(
        "{:<44} {:>9.2?} ({:.1}% of run)",
        "hash alone (what a receipt needs)",
        hash.mean,
        100.0 * hash.mean.as_secs_f64() / run.mean.as_secs_f64()
    );
    Ok(())
}
