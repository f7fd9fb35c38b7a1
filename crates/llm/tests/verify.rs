//! The `activations` tier on the real SmolLM2 GGUF: honest generations verify (also across
//! thread counts, in subprocesses), tampering is detected, malformed bytes are rejected.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use opal_llm::{
    verify_activations, verify_activations_with, ActivationCommitment, GenerateRequest, Generation,
    LlmModel, SamplingParams, VerifyError, VerifyTolerance,
};

fn sampled_request(m: &LlmModel, seed: u64) -> GenerateRequest {
    GenerateRequest {
        prompt_tokens: common::chat_prompt(m, "Explain in two sentences why the sky is blue."),
        max_tokens: 48,
        sampling: SamplingParams {
            seed,
            ..Default::default()
        },
        stop: vec![],
        commit_activations: true,
    }
}

/// One honest sampled generation with its commitment (shared by the tamper tests).
fn honest() -> Option<&'static (GenerateRequest, Generation)> {
    static H: OnceLock<Option<(GenerateRequest, Generation)>> = OnceLock::new();
    H.get_or_init(|| {
        let m = common::model()?;
        let r = sampled_request(&m, 5);
        let g = m.generate(&r, &mut |_| true).unwrap();
        Some((r, g))
    })
    .as_ref()
}

#[test]
fn honest_generation_verifies() {
    let Some(m) = common::model() else { return };
    let (r, g) = honest().unwrap();
    assert!(
        g.tokens.len() > 33,
        "want at least two output chunks, got {} tokens",
        g.tokens.len()
    );
    let c = g.commitment.as_ref().unwrap();
    assert_eq!(c.chunks.len(), 1 + (g.tokens.len() - 1).div_ceil(32));
    assert_eq!(c.sampling, r.sampling);
    let bytes = c.to_bytes();
    assert!(
        bytes.len() <= 64 + 258 * c.chunks.len(),
        "{} bytes",
        bytes.len()
    );
    let c2 = ActivationCommitment::from_bytes(&bytes).unwrap();
    let rep = verify_activations(&m, &r.prompt_tokens, &g.tokens, &c2).unwrap();
    assert!(rep.passed);
    assert_eq!(
        rep.prefill_tokens,
        r.prompt_tokens.len() + g.tokens.len() - 1
    );
    assert!(
        rep.wrong_seed_pass_probability < 1e-3,
        "{}",
        rep.wrong_seed_pass_probability
    );
    // greedy with a stop on EOS verifies too
    let gr = GenerateRequest {
        sampling: SamplingParams::greedy(),
        ..r.clone()
    };
    let gg = m.generate(&gr, &mut |_| true).unwrap();
    verify_activations(
        &m,
        &gr.prompt_tokens,
        &gg.tokens,
        gg.commitment.as_ref().unwrap(),
    )
    .unwrap();
}

/// Worker mode for `honest_generation_verifies_with_1_and_2_threads`: does nothing unless
/// `OPAL_LLM_WORKER_OUT` is set; then generates, verifies in this process (whose thread count
/// the parent set with RAYON_NUM_THREADS) and writes tokens + commitment.
#[test]
fn thread_worker() {
    let Ok(out) = std::env::var("OPAL_LLM_WORKER_OUT") else {
        return;
    };
    let m = common::model().expect("worker needs the model");
    let r = sampled_request(&m, 77);
    let g = m.generate(&r, &mut |_| true).unwrap();
    let c = g.commitment.as_ref().unwrap();
    verify_activations(&m, &r.prompt_tokens, &g.tokens, c).expect("worker self-verification");
    let toks: Vec<String> = g.tokens.iter().map(|t| t.to_string()).collect();
    std::fs::write(
        &out,
        format!("{}\n{}\n", toks.join(","), hex::encode(c.to_bytes())),
    )
    .unwrap();
}

#[test]
fn honest_generation_verifies_with_1_and_2_threads() {
    let Some(m) = common::model() else { return };
    let exe = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("opal-llm-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut results = Vec::new();
    for threads in [1, 2] {
        let out: PathBuf = dir.join(format!("t{threads}.txt"));
        let st = Command::new(&exe)
            .args([
                "--exact",
                "thread_worker",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("RAYON_NUM_THREADS", threads.to_string())
            .env("OPAL_LLM_WORKER_OUT", &out)
            .env("OPAL_SMOLLM2_GGUF", common::model_path().unwrap())
            .status()
            .unwrap();
        assert!(st.success(), "worker with {threads} thread(s) failed");
        let s = std::fs::read_to_string(&out).unwrap();
        let mut lines = s.lines();
        let tokens: Vec<u32> = lines
            .next()
            .unwrap()
            .split(',')
            .map(|t| t.parse().unwrap())
            .collect();
        let c =
            ActivationCommitment::from_bytes(&hex::decode(lines.next().unwrap()).unwrap()).unwrap();
        results.push((threads, tokens, c));
    }
    let prompt = sampled_request(&m, 77).prompt_tokens;
    // cross-check: each commitment verifies in this process (default thread count) too
    for (threads, tokens, c) in &results {
        let rep = verify_activations(&m, &prompt, tokens, c)
            .unwrap_or_else(|e| panic!("{threads}-thread generation failed verification: {e}"));
        assert!(rep.passed);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn changed_prompt_is_detected() {
    let Some(m) = common::model() else { return };
    let (r, g) = honest().unwrap();
    let c = g.commitment.as_ref().unwrap();
    // same length, one word changed: "sky" -> "sea"
    let other = common::chat_prompt(&m, "Explain in two sentences why the sea is blue.");
    assert_eq!(
        other.len(),
        r.prompt_tokens.len(),
        "pick a same-length edit"
    );
    match verify_activations(&m, &other, &g.tokens, c) {
        // The prompt chunk's top-k is dominated by a few massive activations at early positions,
        // which a one-word edit barely moves; the generated chunks, which attend to the edit, fail.
        Err(VerifyError::ActivationMismatch { .. }) => {}
        other => panic!("changed prompt not detected: {other:?}"),
    }
    let shorter = &r.prompt_tokens[1..];
    assert!(matches!(
        verify_activations(&m, shorter, &g.tokens, c),
        Err(VerifyError::PromptLength { .. })
    ));
}

#[test]
fn changed_output_tokens_are_detected() {
    let Some(m) = common::model() else { return };
    let (r, g) = honest().unwrap();
    let c = g.commitment.as_ref().unwrap();
    // change one token in the middle to another plausible one
    let i = g.tokens.len() / 2;
    let mut t = g.tokens.clone();
    t[i] = m.tokenize(" purple").unwrap()[0];
    assert_ne!(t[i], g.tokens[i]);
    let e = verify_activations(&m, &r.prompt_tokens, &t, c).unwrap_err();
    assert!(
        matches!(e, VerifyError::TokenMismatch { index, .. } if index == i)
            || matches!(e, VerifyError::ActivationMismatch { .. }),
        "{e:?}"
    );
    // change only the last token (it has no hidden state of its own: the sampling check catches it)
    let mut t = g.tokens.clone();
    let last = t.len() - 1;
    t[last] = m.tokenize(" Zanzibar").unwrap()[0];
    assert_ne!(t[last], g.tokens[last]);
    match verify_activations(&m, &r.prompt_tokens, &t, c) {
        Err(VerifyError::TokenMismatch { index, .. }) => assert_eq!(index, last),
        other => panic!("changed last token not detected: {other:?}"),
    }
    let mut t = g.tokens.clone();
    t.pop();
    assert!(matches!(
        verify_activations(&m, &r.prompt_tokens, &t, c),
        Err(VerifyError::OutputLength { .. })
    ));
}

#[test]
fn wrong_seed_is_detected() {
    let Some(m) = common::model() else { return };
    let (r, g) = honest().unwrap();
    let mut c = g.commitment.clone().unwrap();
    c.sampling.seed ^= 1;
    match verify_activations(&m, &r.prompt_tokens, &g.tokens, &c) {
        Err(VerifyError::TokenMismatch { .. }) => {}
        other => panic!("wrong seed not detected: {other:?}"),
    }
}

/// The registered model is the Q4_1 GGUF; a node that serves the same weights re-quantized to
/// Q4_0 (cheaper) must fail verification.
#[test]
fn swapped_quantization_is_detected() {
    let Some(m) = common::model() else { return };
    let (r, _) = honest().unwrap();
    let path = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_0-from-Q4_1.gguf");
    if !path.exists() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let n = opal_llm::quantize::requantize_gguf(
            &common::model_path().unwrap(),
            &tmp,
            opal_llm::quantize::parse_dtype("Q4_0").unwrap(),
        )
        .unwrap();
        assert!(n > 200, "converted {n} tensors");
        std::fs::rename(&tmp, &path).unwrap();
    }
    let swapped = LlmModel::load(&path).unwrap();
    assert_eq!(swapped.info().quantization, "Q4_0");
    assert_ne!(swapped.info().content_hash, m.info().content_hash);
    // the dishonest node generates with the swapped model
    let g = swapped.generate(r, &mut |_| true).unwrap();
    let e = verify_activations(
        &m,
        &r.prompt_tokens,
        &g.tokens,
        g.commitment.as_ref().unwrap(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::ActivationMismatch { .. } | VerifyError::TokenMismatch { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn malformed_commitment_bytes_are_rejected_without_panic() {
    let Some(m) = common::model() else { return };
    let (r, g) = honest().unwrap();
    let bytes = g.commitment.as_ref().unwrap().to_bytes();
    // truncations
    for cut in 0..bytes.len().min(600) {
        assert!(ActivationCommitment::from_bytes(&bytes[..cut]).is_err());
    }
    // single-byte corruptions: either rejected at decode, or decoded and then rejected by the
    // verifier (or, for bytes of unused polynomial precision, still a valid commitment) — never a panic
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut decoded = 0;
    for _ in 0..200 {
        let mut b = bytes.clone();
        let i = (next() as usize) % b.len();
        b[i] ^= (next() as u8) | 1;
        if let Ok(c) = ActivationCommitment::from_bytes(&b) {
            decoded += 1;
            if decoded <= 5 {
                let _ = verify_activations(&m, &r.prompt_tokens, &g.tokens, &c);
            }
        }
    }
    // garbage and oversized inputs
    for len in [1usize, 7, 100, 5000] {
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = ActivationCommitment::from_bytes(&junk);
    }
    assert!(
        ActivationCommitment::from_bytes(&vec![0u8; opal_llm::MAX_COMMITMENT_BYTES + 1]).is_err()
    );
}

/// An honest node whose arithmetic differs from the verifier's: candle's quantized kernels (8-bit
/// activations, as llama.cpp) instead of the default f32 weights. Under TOPLOC's explicit
/// tolerance it verifies; the default policy of a verifier on f32 weights is the strict tolerance,
/// which rejects it: for models whose f32 copy fits `MAX_DEQUANTIZED_BYTES`, f32 weights are the
/// tier's reference arithmetic (docs/llm.md, "Tolerance policy"). Measured over 16 runs (worst
/// chunk per run): exponent matches 119-125/128, mean mantissa difference 2.8-3.6, far outside
/// the strict bounds (>= 122, <= 1.0).
#[test]
fn honest_generation_with_other_kernels_verifies_only_under_toploc() {
    let Some(m) = common::model() else { return };
    assert!(m.info().f32_weights, "the default loads f32 weights");
    let other = LlmModel::load_with(
        &common::model_path().unwrap(),
        &opal_llm::LoadOptions {
            device: opal_llm::candle_core::Device::Cpu,
            dequantize_weights: false,
        },
    )
    .unwrap();
    assert!(!other.info().f32_weights);
    let r = sampled_request(&m, 9);
    let g = other.generate(&r, &mut |_| true).unwrap();
    let c = g.commitment.as_ref().unwrap();
    let rep = verify_activations_with(
        &m,
        &r.prompt_tokens,
        &g.tokens,
        c,
        &VerifyTolerance::toploc(),
    )
    .unwrap_or_else(|e| panic!("honest quantized-kernel generation rejected under TOPLOC: {e}"));
    assert!(rep.passed);
    assert_eq!(
        VerifyTolerance::for_model(m.info()),
        VerifyTolerance::strict_f32()
    );
    match verify_activations(&m, &r.prompt_tokens, &g.tokens, c) {
        Err(VerifyError::ActivationMismatch { .. }) => {}
        other => panic!("the strict default accepted another arithmetic: {other:?}"),
    }
    // The other way round, the verifier on the quantized kernels applies TOPLOC's tolerance by
    // policy, and the f32 generation verifies.
    assert_eq!(
        VerifyTolerance::for_model(other.info()),
        VerifyTolerance::toploc()
    );
    let (r0, g0) = honest().unwrap();
    verify_activations(
        &other,
        &r0.prompt_tokens,
        &g0.tokens,
        g0.commitment.as_ref().unwrap(),
    )
    .unwrap_or_else(|e| panic!("f32 generation rejected by a quantized-kernel verifier: {e}"));
}

/// Another machine's f32 rounding, simulated by a verifier whose every f32 weight is multiplied by
/// `1 + 2^-22 r` (1-4 ulps): the strict default still accepts honest generations.
#[test]
fn honest_generation_verifies_on_a_verifier_with_perturbed_weights() {
    let Some(m) = common::model() else { return };
    let noisy = LlmModel::load_with_weight_noise(
        &common::model_path().unwrap(),
        &opal_llm::LoadOptions {
            device: opal_llm::candle_core::Device::Cpu,
            dequantize_weights: true,
        },
        2f32.powi(-22),
        1,
    )
    .unwrap();
    assert!(noisy.info().f32_weights);
    let (r, g) = honest().unwrap();
    // the perturbation is real: the logits differ
    let a = m.forward(&r.prompt_tokens, &mut m.new_cache()).unwrap();
    let b = noisy
        .forward(&r.prompt_tokens, &mut noisy.new_cache())
        .unwrap();
    assert_ne!(a, b);
    let rep = verify_activations(
        &noisy,
        &r.prompt_tokens,
        &g.tokens,
        g.commitment.as_ref().unwrap(),
    )
    .unwrap_or_else(|e| panic!("honest generation rejected by a perturbed verifier: {e}"));
    assert!(rep.passed);
}
