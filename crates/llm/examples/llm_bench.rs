//! Benchmark of the candle LLM backend on a GGUF file, and measurement of the activation
//! verification's detection rates.
//!
//! ```text
//! cargo run --release -p opal-llm --example llm_bench -- [--model PATH] [--runs N] [--detect N] [--f32]
//! ```
//! Without `--model`, `scripts/fetch-smollm2` finds SmolLM2-135M-Instruct Q4_1.
//! Prints prefill and decode tokens/s, the overhead of committing during generation, the cost of
//! verification against generation, the commitment size, and with `--detect N` the verifier's
//! statistics over N honest and N tampered generations of each kind (used to pick the tolerance
//! in docs/llm.md).

use std::path::PathBuf;
use std::time::Instant;

use opal_llm::{
    inspect_activations, ChatMessage, GenerateRequest, LlmModel, LoadOptions, SamplingParams,
    VerifyReport, VerifyTolerance,
};

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1).cloned())
}

fn model_path() -> PathBuf {
    if let Some(p) = arg("--model").or_else(|| std::env::var("OPAL_SMOLLM2_GGUF").ok()) {
        return p.into();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/fetch-smollm2");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .expect("run fetch-smollm2");
    assert!(out.status.success(), "fetch-smollm2 failed");
    String::from_utf8_lossy(&out.stdout).trim().into()
}

const PROMPTS: &[&str] = &[
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how photosynthesis works to a ten year old.",
    "What are the main differences between Rust and C++? Give examples.",
    "Describe a walk through a busy market in Marrakech.",
    "Give me a recipe for a vegetable soup, step by step.",
    "Why do cats purr? List a few theories.",
    "Write a letter to a friend about your first week at a new job.",
    "Summarize the plot of a heist movie you invent.",
];

fn prompt(m: &LlmModel, i: usize) -> Vec<u32> {
    let t = m
        .apply_chat_template(&[ChatMessage::new("user", PROMPTS[i % PROMPTS.len()])])
        .unwrap();
    m.tokenize(&t).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let path = model_path();
    let runs: usize = arg("--runs").map(|s| s.parse().unwrap()).unwrap_or(3);
    let t0 = Instant::now();
    // `--f32`: weights dequantized to f32 at load (candle's f32 matmul instead of its quantized
    // kernels), to compare the two on the same file.
    let f32_weights = std::env::args().any(|a| a == "--f32");
    let m = LlmModel::load_with(
        &path,
        &LoadOptions {
            device: opal_llm::candle_core::Device::Cpu,
            dequantize_weights: f32_weights,
        },
    )
    .expect("load");
    let load_s = t0.elapsed().as_secs_f64();
    if f32_weights {
        println!("weights dequantized to f32 at load (--f32)");
    }
    let info = m.info();
    println!(
        "model {} ({}, {}, {} layers, hidden {}), {:.1} MB, load {:.2}s, threads {}",
        info.name,
        info.architecture,
        info.quantization,
        info.n_layer,
        info.hidden_size,
        info.file_size as f64 / 1e6,
        load_s,
        opal_llm::candle_core::utils::get_num_threads()
    );

    // Prefill: a fixed-length prompt of real text (repeated prompts), fresh cache each run.
    let long: Vec<u32> = (0..PROMPTS.len()).flat_map(|i| prompt(&m, i)).collect();
    for &n in &[128usize, 512] {
        let toks: Vec<u32> = long.iter().cycle().take(n).cloned().collect();
        let mut ts = Vec::new();
        for _ in 0..runs {
            let mut cache = m.new_cache();
            let t = Instant::now();
            m.forward(&toks, &mut cache).unwrap();
            ts.push(t.elapsed().as_secs_f64());
        }
        println!(
            "prefill {n:4} tokens: {:8.1} tok/s (median of {runs})",
            n as f64 / median(ts)
        );
    }

    // Decode: 128 tokens one at a time after a 64-token prompt.
    let p: Vec<u32> = long[..64].to_vec();
    let mut ts = Vec::new();
    for _ in 0..runs {
        let mut cache = m.new_cache();
        let mut logits = m.forward(&p, &mut cache).unwrap();
        let t = Instant::now();
        for _ in 0..128 {
            let next = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0 as u32;
            logits = m.forward(&[next], &mut cache).unwrap();
        }
        ts.push(t.elapsed().as_secs_f64());
    }
    println!(
        "decode  128 tokens (after 64): {:8.1} tok/s (median of {runs})",
        128.0 / median(ts)
    );

    // Generation with and without the commitment; verification.
    let mut gen_plain = Vec::new();
    let mut gen_commit = Vec::new();
    let mut verify = Vec::new();
    let mut sizes = Vec::new();
    let mut ntok = 0;
    for i in 0..runs {
        let r = GenerateRequest {
            prompt_tokens: prompt(&m, i),
            max_tokens: 128,
            sampling: SamplingParams {
                seed: i as u64,
                ..Default::default()
            },
            stop: vec![],
            commit_activations: false,
        };
        let t = Instant::now();
        let a = m.generate(&r, &mut |_| true).unwrap();
        gen_plain.push(t.elapsed().as_secs_f64() / a.tokens.len() as f64);
        let rc = GenerateRequest {
            commit_activations: true,
            ..r.clone()
        };
        let t = Instant::now();
        let b = m.generate(&rc, &mut |_| true).unwrap();
        gen_commit.push(t.elapsed().as_secs_f64() / b.tokens.len() as f64);
        assert_eq!(a.tokens, b.tokens);
        let c = b.commitment.unwrap();
        sizes.push((c.to_bytes().len(), b.tokens.len(), c.chunks.len()));
        let t = Instant::now();
        let rep = opal_llm::verify_activations(&m, &r.prompt_tokens, &b.tokens, &c)
            .expect("honest verifies");
        verify.push(t.elapsed().as_secs_f64() / b.tokens.len() as f64);
        assert!(rep.passed);
        ntok += b.tokens.len();
    }
    let (gp, gc, v) = (median(gen_plain), median(gen_commit), median(verify));
    println!(
        "generate (sampled, up to 128 tokens, {} tokens total): {:.2} ms/token plain, {:.2} ms/token committing (+{:.1}%)",
        ntok,
        gp * 1e3,
        gc * 1e3,
        (gc / gp - 1.0) * 100.0
    );
    println!(
        "verify: {:.2} ms per output token = {:.1}x cheaper than generating it",
        v * 1e3,
        gc / v
    );
    for (bytes, toks, chunks) in &sizes {
        println!("commitment: {bytes} bytes for {toks} output tokens ({chunks} chunks incl. the prompt's; 258 B per chunk)");
    }

    if let Some(n) = arg("--detect").map(|s| s.parse::<usize>().unwrap()) {
        detect(&m, &path, n);
    }
}

struct Tally {
    name: String,
    passed: usize,
    total: usize,
    min_exp: usize,
    max_mean: f64,
    max_median: f64,
    worst_token_margin: f64,
    chunk_exp: Vec<usize>,
}

impl Tally {
    fn new(name: &str) -> Self {
        Tally {
            name: name.into(),
            passed: 0,
            total: 0,
            min_exp: usize::MAX,
            max_mean: 0.0,
            max_median: 0.0,
            worst_token_margin: f64::NEG_INFINITY,
            chunk_exp: Vec::new(),
        }
    }
    fn add(&mut self, r: &VerifyReport) {
        self.total += 1;
        self.passed += r.passed as usize;
        for c in &r.chunks {
            if c.k == 0 {
                continue;
            }
            self.min_exp = self.min_exp.min(c.exp_matches);
            self.max_mean = self.max_mean.max(c.mean_mantissa_diff);
            self.max_median = self.max_median.max(c.median_mantissa_diff);
            self.chunk_exp.push(c.exp_matches);
        }
        for t in &r.tokens {
            self.worst_token_margin = self.worst_token_margin.max(t.margin);
        }
    }
    fn print(&self) {
        let mut e = self.chunk_exp.clone();
        e.sort();
        let q = |f: f64| {
            e.get(((e.len() as f64 - 1.0) * f) as usize)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "| {} | {}/{} | {} | {} / {} / {} | {:.2} | {:.1} | {:.3} |",
            self.name,
            self.passed,
            self.total,
            self.min_exp,
            q(0.0),
            q(0.5),
            q(1.0),
            self.max_mean,
            self.max_median,
            self.worst_token_margin
        );
    }
}

/// N generations per scenario; the verifier (the registered Q4_1 model, on candle's quantized CPU
/// kernels, or f32 weights with `--f32`) inspects each.
fn detect(m: &LlmModel, path: &std::path::Path, n: usize) {
    let tol = VerifyTolerance::default();
    let cache = std::env::var("OPAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/opal"))
        .join("models/derived");
    std::fs::create_dir_all(&cache).unwrap();
    let requant = |q: &str| {
        let p = cache.join(format!("SmolLM2-135M-Instruct.{q}-from-Q4_1.gguf"));
        if !p.exists() {
            let tmp = p.with_extension("tmp");
            opal_llm::quantize::requantize_gguf(
                path,
                &tmp,
                opal_llm::quantize::parse_dtype(q).unwrap(),
            )
            .unwrap();
            std::fs::rename(&tmp, &p).unwrap();
        }
        // Same arithmetic as the model under test (`m`), so only the weights differ.
        LlmModel::load_with(
            &p,
            &LoadOptions {
                device: opal_llm::candle_core::Device::Cpu,
                dequantize_weights: m.info().f32_weights,
            },
        )
        .unwrap()
    };
    let f32k = LlmModel::load_with(
        path,
        &LoadOptions {
            device: opal_llm::candle_core::Device::Cpu,
            dequantize_weights: true,
        },
    )
    .unwrap();
    let scenarios: Vec<(&str, LlmModel)> = vec![
        ("Q4_0 re-quantized (cheaper model)", requant("Q4_0")),
        ("Q5_0 re-quantized", requant("Q5_0")),
        ("Q8_0 re-quantized (near-lossless copy)", requant("Q8_0")),
    ];
    let req = |i: usize, greedy: bool| GenerateRequest {
        prompt_tokens: prompt(m, i),
        max_tokens: 64,
        sampling: if greedy {
            SamplingParams::greedy()
        } else {
            SamplingParams {
                seed: 1000 + i as u64,
                ..Default::default()
            }
        },
        stop: vec![],
        commit_activations: true,
    };
    println!("\n| scenario (N={n} per row, 64 new tokens, half greedy) | passed | min exp-matches /128 | exp-matches min / median / max | max mean mantissa diff | max median | worst token margin |");
    println!("|---|---|---|---|---|---|---|");
    let mut honest = Tally::new("honest, same kernels");
    let mut honest_f32 = Tally::new("honest, f32 kernels (other arithmetic)");
    let mut prompt_t = Tally::new("prompt changed (1 token)");
    let mut out_t = Tally::new("output changed (1 token, middle)");
    let mut seed_t = Tally::new("wrong seed (sampled runs only)");
    let mut swaps: Vec<Tally> = scenarios.iter().map(|(s, _)| Tally::new(s)).collect();
    let mut seed_fn_prob = Vec::new();
    for i in 0..n {
        let r = req(i, i % 2 == 0);
        let g = m.generate(&r, &mut |_| true).unwrap();
        let c = g.commitment.clone().unwrap();
        let rep = inspect_activations(m, &r.prompt_tokens, &g.tokens, &c, &tol).unwrap();
        honest.add(&rep);
        if !r.sampling.is_greedy() {
            seed_fn_prob.push(rep.wrong_seed_pass_probability);
            let mut c2 = c.clone();
            c2.sampling.seed ^= 0x5555;
            seed_t.add(&inspect_activations(m, &r.prompt_tokens, &g.tokens, &c2, &tol).unwrap());
        }
        let g2 = f32k.generate(&r, &mut |_| true).unwrap();
        honest_f32.add(
            &inspect_activations(
                m,
                &r.prompt_tokens,
                &g2.tokens,
                g2.commitment.as_ref().unwrap(),
                &tol,
            )
            .unwrap(),
        );
        // one prompt token changed (the middle of the user message)
        let mut p2 = r.prompt_tokens.clone();
        let j = p2.len() / 2;
        p2[j] = (p2[j] + 17) % 49000;
        prompt_t.add(&inspect_activations(m, &p2, &g.tokens, &c, &tol).unwrap());
        if g.tokens.len() > 2 {
            let mut t2 = g.tokens.clone();
            let j = t2.len() / 2;
            t2[j] = (t2[j] + 1) % 49000;
            out_t.add(&inspect_activations(m, &r.prompt_tokens, &t2, &c, &tol).unwrap());
        }
        for ((_, sm), tally) in scenarios.iter().zip(swaps.iter_mut()) {
            let gs = sm.generate(&r, &mut |_| true).unwrap();
            tally.add(
                &inspect_activations(
                    m,
                    &r.prompt_tokens,
                    &gs.tokens,
                    gs.commitment.as_ref().unwrap(),
                    &tol,
                )
                .unwrap(),
            );
        }
    }
    honest.print();
    honest_f32.print();
    for t in &swaps {
        t.print();
    }
    prompt_t.print();
    out_t.print();
    seed_t.print();
    if !seed_fn_prob.is_empty() {
        println!(
            "\nwrong-seed pass probability per sampled 64-token output (computed from the verifier's intervals): median {:.2e}, max {:.2e}",
            median(seed_fn_prob.clone()),
            seed_fn_prob.iter().cloned().fold(0.0, f64::max)
        );
    }
}
