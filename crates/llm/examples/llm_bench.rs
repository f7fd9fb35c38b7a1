//! Benchmark of the candle LLM backend on a GGUF file, and measurement of the activation
//! verification's detection rates.
//!
//! ```text
//! cargo run --release -p opal-llm --example llm_bench -- [--model PATH] [--runs N] [--detect N] [--f32]
//! ```
//! Without `--model`, `scripts/fetch-smollm2` finds SmolLM2-135M-Instruct Q4_1.
//! Prints prefill and decode tokens/s, the overhead of committing during generation, the cost of
//! verification against generation, the commitment size, and with `--detect N` the verifier's
//! statistics over N honest and N tampered generations of each kind, with the pass counts under
//! TOPLOC's and the strict f32 tolerance (used to pick the tolerance in docs/llm.md). With
//! `--f32`, the honest rows include verifiers whose f32 weights are perturbed by a relative
//! `2^-22` (1-4 ulps; `LlmModel::load_with_weight_noise`, a stand-in for another machine's
//! rounding) and, as stress, up to `2^-10`, a generator on one GEMM thread, and a generator on
//! the quantized kernels.

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
            commit_activations: None,
        };
        let t = Instant::now();
        let a = m.generate(&r, &mut |_| true).unwrap();
        gen_plain.push(t.elapsed().as_secs_f64() / a.tokens.len() as f64);
        let rc = GenerateRequest {
            commit_activations: Some(opal_llm::CommitParams::DEFAULT),
            ..r.clone()
        };
        let t = Instant::now();
        let b = m.generate(&rc, &mut |_| true).unwrap();
        gen_commit.push(t.elapsed().as_secs_f64() / b.tokens.len() as f64);
        assert_eq!(a.tokens, b.tokens);
        let c = b.commitment.unwrap();
        sizes.push((c.to_bytes().len(), b.tokens.len(), c.chunks.len()));
        let t = Instant::now();
        let rep = opal_llm::verify_activations(
            &m,
            &r.prompt_tokens,
            &b.tokens,
            &c,
            &opal_llm::CommitParams::DEFAULT,
        )
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

/// The worst chunk and token of one verification.
struct RunWorst {
    min_exp: usize,
    max_mean: f64,
    max_median: f64,
    prompt_exp: usize,
    prompt_mean: f64,
    /// Greedy runs: the largest logit gap of a committed token to the verifier's maximum.
    greedy_gap: Option<f64>,
    /// Sampled runs: the largest distance of a draw outside its token's interval (negative:
    /// every draw inside its interval, by at least that much).
    cdf_margin: Option<f64>,
}

struct Reports {
    toploc: VerifyReport,
    strict: VerifyReport,
}

struct Tally {
    name: String,
    passed_toploc: usize,
    passed_strict: usize,
    runs: Vec<RunWorst>,
}

fn quantile<T: Copy + PartialOrd>(v: &[T], f: f64) -> Option<T> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(((v.len() as f64 - 1.0) * f).round() as usize)
        .copied()
}

impl Tally {
    fn new(name: &str) -> Self {
        Tally {
            name: name.into(),
            passed_toploc: 0,
            passed_strict: 0,
            runs: Vec::new(),
        }
    }
    /// `r`: the report under each tolerance (the token checks depend on the sampling tolerance).
    fn add(&mut self, r: &Reports, greedy: bool) {
        self.passed_toploc += r.toploc.passed as usize;
        self.passed_strict += r.strict.passed as usize;
        let r = &r.strict;
        let all: Vec<_> = r.chunks.iter().filter(|c| c.k > 0).collect();
        let margins = r
            .tokens
            .iter()
            .map(|t| t.margin)
            .fold(f64::NEG_INFINITY, f64::max);
        self.runs.push(RunWorst {
            min_exp: all.iter().map(|c| c.exp_matches).min().unwrap_or(128),
            max_mean: all.iter().map(|c| c.mean_mantissa_diff).fold(0.0, f64::max),
            max_median: all
                .iter()
                .map(|c| c.median_mantissa_diff)
                .fold(0.0, f64::max),
            prompt_exp: r.chunks[0].exp_matches,
            prompt_mean: r.chunks[0].mean_mantissa_diff,
            greedy_gap: (greedy && !r.tokens.is_empty()).then_some(margins),
            cdf_margin: (!greedy && !r.tokens.is_empty()).then_some(margins),
        });
    }
    fn print(&self) {
        let col = |f: &dyn Fn(&RunWorst) -> f64| -> Vec<f64> { self.runs.iter().map(f).collect() };
        let exp = col(&|w| w.min_exp as f64);
        let mean = col(&|w| w.max_mean);
        let med = col(&|w| w.max_median);
        let pexp = col(&|w| w.prompt_exp as f64);
        let pmean = col(&|w| w.prompt_mean);
        let q = |v: &[f64], f: f64| quantile(v, f).unwrap_or(f64::NAN);
        let gaps: Vec<f64> = self.runs.iter().filter_map(|w| w.greedy_gap).collect();
        let cdfs: Vec<f64> = self.runs.iter().filter_map(|w| w.cdf_margin).collect();
        let opt = |v: &[f64], prec: usize| {
            if v.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "{:.*}",
                    prec,
                    v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                )
            }
        };
        let n = self.runs.len();
        println!(
            "| {} | {}/{n} | {}/{n} | {} / {} / {} | {:.2} / {:.2} / {:.2} | {} / {} / {} | {} / {:.2} | {} | {} |",
            self.name,
            self.passed_toploc,
            self.passed_strict,
            q(&exp, 0.0),
            q(&exp, 0.5),
            q(&exp, 1.0),
            q(&mean, 0.0),
            q(&mean, 0.5),
            q(&mean, 1.0),
            q(&med, 0.0),
            q(&med, 0.5),
            q(&med, 1.0),
            q(&pexp, 0.0),
            q(&pmean, 1.0),
            opt(&gaps, 4),
            opt(&cdfs, 4),
        );
    }
}

fn load(path: &std::path::Path, f32_weights: bool) -> LlmModel {
    LlmModel::load_with(
        path,
        &LoadOptions {
            device: opal_llm::candle_core::Device::Cpu,
            dequantize_weights: f32_weights,
        },
    )
    .unwrap()
}

/// N generations per scenario; the verifier (the registered Q4_1 model, on candle's quantized CPU
/// kernels, or f32 weights with `--f32`) inspects each.
fn detect(m: &LlmModel, path: &std::path::Path, n: usize) {
    let tol = VerifyTolerance::for_model(m.info());
    println!(
        "\ntolerances: TOPLOC {:?}\nstrict f32 {:?}\npolicy of this verifier (f32 weights: {}): {}",
        VerifyTolerance::toploc(),
        VerifyTolerance::strict_f32(),
        m.info().f32_weights,
        if tol == VerifyTolerance::strict_f32() {
            "strict"
        } else {
            "TOPLOC"
        }
    );
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
        load(&p, m.info().f32_weights)
    };
    // The other arithmetic: quantized kernels if `m` is on f32 weights, and vice versa.
    let other = load(path, !m.info().f32_weights);
    // Verifiers standing in for other machines: every f32 weight times (1 + e*r), r in [-1, 1].
    // 2^-22 is 1-4 f32 ulps (the rounding of another CPU or GPU); the larger e are stress levels.
    let noise_levels: &[(i32, &[u64])] = &[
        (-22, &[1, 2]),
        (-20, &[3]),
        (-16, &[4]),
        (-12, &[5]),
        (-10, &[6]),
    ];
    let mut noisy: Vec<(Vec<LlmModel>, Tally)> = Vec::new();
    if m.info().f32_weights {
        let opts = LoadOptions {
            device: opal_llm::candle_core::Device::Cpu,
            dequantize_weights: true,
        };
        for &(e, seeds) in noise_levels {
            let models = seeds
                .iter()
                .map(|&seed| {
                    LlmModel::load_with_weight_noise(path, &opts, 2f32.powi(e), seed).unwrap()
                })
                .collect();
            let name = format!(
                "honest, verifier weights x(1 + 2^{e} r), {} seed(s){}",
                seeds.len(),
                if e > -22 { " (stress)" } else { "" }
            );
            noisy.push((models, Tally::new(&name)));
        }
    }
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
        commit_activations: Some(opal_llm::CommitParams::DEFAULT),
    };
    // tokens after the user message in the chat template
    let tail = m.tokenize("<|im_end|>\n<|im_start|>assistant\n").unwrap();
    let mut honest = Tally::new("honest, same arithmetic");
    let mut honest_1t = Tally::new("honest, generator on 1 GEMM thread, verifier on 2");
    let mut honest_other = Tally::new(if m.info().f32_weights {
        "honest, quantized-kernel generator (other arithmetic)"
    } else {
        "honest, f32 generator (other arithmetic)"
    });
    let mut prompt_mid = Tally::new("prompt changed (1 token, middle)");
    let mut prompt_first = Tally::new("prompt changed (1 token, first of the user message)");
    let mut prompt_last = Tally::new("prompt changed (1 token, last of the user message)");
    // tokens before the user message in the chat template
    let head = {
        let t = m
            .apply_chat_template(&[ChatMessage::new("user", "")])
            .unwrap();
        m.tokenize(&t).unwrap().len() - tail.len()
    };
    let mut out_t = Tally::new("output changed (1 token, middle)");
    let mut seed_t = Tally::new("wrong seed (sampled runs only)");
    let mut swaps: Vec<Tally> = scenarios.iter().map(|(s, _)| Tally::new(s)).collect();
    let mut seed_fn_prob = Vec::new();
    let mut same_1t = 0;
    for i in 0..n {
        let greedy = i % 2 == 0;
        let r = req(i, greedy);
        let g = m.generate(&r, &mut |_| true).unwrap();
        let c = g.commitment.clone().unwrap();
        let inspect =
            |v: &LlmModel, p: &[u32], t: &[u32], c: &opal_llm::ActivationCommitment| Reports {
                toploc: inspect_activations(
                    v,
                    p,
                    t,
                    c,
                    &opal_llm::CommitParams::DEFAULT,
                    &VerifyTolerance::toploc(),
                )
                .unwrap(),
                strict: inspect_activations(
                    v,
                    p,
                    t,
                    c,
                    &opal_llm::CommitParams::DEFAULT,
                    &VerifyTolerance::strict_f32(),
                )
                .unwrap(),
            };
        let rep = inspect(m, &r.prompt_tokens, &g.tokens, &c);
        honest.add(&rep, greedy);
        for (models, tally) in noisy.iter_mut() {
            for v in models.iter() {
                tally.add(&inspect(v, &r.prompt_tokens, &g.tokens, &c), greedy);
            }
        }
        if !greedy {
            let policy = if tol == VerifyTolerance::strict_f32() {
                &rep.strict
            } else {
                &rep.toploc
            };
            seed_fn_prob.push(policy.wrong_seed_pass_probability);
            let mut c2 = c.clone();
            c2.sampling.seed ^= 0x5555;
            seed_t.add(&inspect(m, &r.prompt_tokens, &g.tokens, &c2), greedy);
        }
        // candle's GEMM reads RAYON_NUM_THREADS at every call: one thread for this generation
        // (single-threaded here, the only reader of the variable).
        let threads = std::env::var("RAYON_NUM_THREADS").ok();
        std::env::set_var("RAYON_NUM_THREADS", "1");
        let g1 = m.generate(&r, &mut |_| true).unwrap();
        match threads {
            Some(t) => std::env::set_var("RAYON_NUM_THREADS", t),
            None => std::env::remove_var("RAYON_NUM_THREADS"),
        }
        same_1t += (g1.tokens == g.tokens && g1.commitment == g.commitment) as usize;
        honest_1t.add(
            &inspect(
                m,
                &r.prompt_tokens,
                &g1.tokens,
                g1.commitment.as_ref().unwrap(),
            ),
            greedy,
        );
        let g2 = other.generate(&r, &mut |_| true).unwrap();
        honest_other.add(
            &inspect(
                m,
                &r.prompt_tokens,
                &g2.tokens,
                g2.commitment.as_ref().unwrap(),
            ),
            greedy,
        );
        // one prompt token changed: the middle of the prompt, and the user message's last token
        let p = &r.prompt_tokens;
        assert!(p.ends_with(&tail), "template tail");
        for (j, tally) in [
            (head, &mut prompt_first),
            (p.len() / 2, &mut prompt_mid),
            (p.len() - tail.len() - 1, &mut prompt_last),
        ] {
            let mut p2 = p.clone();
            p2[j] = (p2[j] + 17) % 49000;
            tally.add(&inspect(m, &p2, &g.tokens, &c), greedy);
        }
        if g.tokens.len() > 2 {
            let mut t2 = g.tokens.clone();
            let j = t2.len() / 2;
            t2[j] = (t2[j] + 1) % 49000;
            out_t.add(&inspect(m, &r.prompt_tokens, &t2, &c), greedy);
        }
        for ((_, sm), tally) in scenarios.iter().zip(swaps.iter_mut()) {
            let gs = sm.generate(&r, &mut |_| true).unwrap();
            tally.add(
                &inspect(
                    m,
                    &r.prompt_tokens,
                    &gs.tokens,
                    gs.commitment.as_ref().unwrap(),
                ),
                greedy,
            );
        }
        eprintln!("detect: run {}/{n} done", i + 1);
    }
    println!("\nN={n} generations (64 new tokens, even runs greedy, odd runs sampled); per run the worst chunk and the worst token are taken");
    println!("| scenario | passed TOPLOC | passed strict | worst exp-matches per run (/128): min / median / max | worst mean mantissa diff per run: min / median / max | worst median per run: min / median / max | prompt chunk: min exp-matches / max mean | greedy: max logit gap | sampled: max cdf margin |");
    println!("|---|---|---|---|---|---|---|---|---|");
    honest.print();
    for (_, t) in &noisy {
        t.print();
    }
    honest_1t.print();
    honest_other.print();
    for t in &swaps {
        t.print();
    }
    prompt_first.print();
    prompt_mid.print();
    prompt_last.print();
    out_t.print();
    seed_t.print();
    println!("\ngenerator on 1 GEMM thread: tokens and commitment bit-identical to 2 threads in {same_1t}/{n} runs");
    if !seed_fn_prob.is_empty() {
        println!(
            "wrong-seed pass probability per sampled 64-token output (computed from the verifier's intervals): median {:.2e}, max {:.2e}",
            median(seed_fn_prob.clone()),
            seed_fn_prob.iter().cloned().fold(0.0, f64::max)
        );
    }
}
