//! The `activations` tier on the real SmolLM2 GGUF: honest generations verify (also across
//! thread counts, in subprocesses), tampering is detected, malformed bytes are rejected.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use opal_llm::{
    check_stop, inspect_activations, verify_activations, verify_activations_with, verify_reply,
    ActivationCommitment, CommitParams, GenerateRequest, Generation, LlmModel, ReplySpec,
    SamplingParams, StopReason, VerifyError, VerifyTolerance,
};

/// The chain's commitment parameters (ledger `Params` defaults).
const CHAIN: CommitParams = CommitParams::DEFAULT;

/// What the caller signed for request `r`.
fn spec(r: &GenerateRequest) -> ReplySpec<'_> {
    ReplySpec {
        prompt_tokens: &r.prompt_tokens,
        sampling: r.sampling,
        max_tokens: r.max_tokens,
        stop: &r.stop,
    }
}

fn sampled_request(m: &LlmModel, seed: u64) -> GenerateRequest {
    GenerateRequest {
        prompt_tokens: common::chat_prompt(m, "Explain in two sentences why the sky is blue."),
        max_tokens: 48,
        sampling: SamplingParams {
            seed,
            ..Default::default()
        },
        stop: vec![],
        commit_activations: Some(CHAIN),
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
    let rep = verify_activations(&m, &r.prompt_tokens, &g.tokens, &c2, &CHAIN).unwrap();
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
        &CHAIN,
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
    verify_activations(&m, &r.prompt_tokens, &g.tokens, c, &CHAIN)
        .expect("worker self-verification");
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
        let rep = verify_activations(&m, &prompt, tokens, c, &CHAIN)
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
    match verify_activations(&m, &other, &g.tokens, c, &CHAIN) {
        // The prompt chunk's top-k is dominated by a few massive activations at early positions,
        // which a one-word edit barely moves; the generated chunks, which attend to the edit, fail.
        Err(VerifyError::ActivationMismatch { .. }) => {}
        other => panic!("changed prompt not detected: {other:?}"),
    }
    let shorter = &r.prompt_tokens[1..];
    assert!(matches!(
        verify_activations(&m, shorter, &g.tokens, c, &CHAIN),
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
    let e = verify_activations(&m, &r.prompt_tokens, &t, c, &CHAIN).unwrap_err();
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
    match verify_activations(&m, &r.prompt_tokens, &t, c, &CHAIN) {
        Err(VerifyError::TokenMismatch { index, .. }) => assert_eq!(index, last),
        other => panic!("changed last token not detected: {other:?}"),
    }
    let mut t = g.tokens.clone();
    t.pop();
    assert!(matches!(
        verify_activations(&m, &r.prompt_tokens, &t, c, &CHAIN),
        Err(VerifyError::OutputLength { .. })
    ));
}

#[test]
fn wrong_seed_is_detected() {
    let Some(m) = common::model() else { return };
    let (r, g) = honest().unwrap();
    let mut c = g.commitment.clone().unwrap();
    c.sampling.seed ^= 1;
    match verify_activations(&m, &r.prompt_tokens, &g.tokens, &c, &CHAIN) {
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
        &CHAIN,
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
    // Single-byte corruptions: rejected at decode, or decoded and then rejected by the whole
    // check (`verify_reply`, what validators run) — never a panic, never accepted. The one
    // change the tolerance accepts by design is a shift of a chunk's constant coefficient by
    // one (every committed bf16 value moves by one mantissa unit: honest noise); it is the only
    // exception allowed.
    let orig = g.commitment.as_ref().unwrap();
    let within_noise = |c: &ActivationCommitment| {
        let mut differing = orig
            .chunks
            .iter()
            .zip(&c.chunks)
            .flat_map(|(a, b)| a.coeffs.iter().zip(&b.coeffs).enumerate())
            .filter(|(_, (x, y))| x != y);
        let only_const_by_one = matches!(
            differing.next(),
            Some((0, (x, y))) if (*x as i64 - *y as i64).abs() == 1
        ) && differing.next().is_none();
        let rest_same = {
            let mut c2 = c.clone();
            for (a, b) in c2.chunks.iter_mut().zip(&orig.chunks) {
                a.coeffs[0] = b.coeffs[0];
            }
            c2 == *orig
        };
        only_const_by_one && rest_same
    };
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut decoded, mut checked) = (0, 0);
    for _ in 0..200 {
        let mut b = bytes.clone();
        let i = (next() as usize) % b.len();
        b[i] ^= (next() as u8) | 1;
        if let Ok(c) = ActivationCommitment::from_bytes(&b) {
            decoded += 1;
            assert_ne!(&c, orig);
            // Each check costs a prefill: check the first 24 that decode.
            if checked < 24 {
                checked += 1;
                match verify_reply(&m, &spec(r), &g.tokens, &c, &CHAIN) {
                    Err(_) => {}
                    Ok(_) => assert!(
                        within_noise(&c),
                        "a tampered commitment (byte {i}) was accepted"
                    ),
                }
            }
        }
    }
    assert!(decoded > 0 && checked > 0, "no corruption decoded");
    // garbage and oversized inputs
    for len in [1usize, 7, 100, 5000] {
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        assert!(ActivationCommitment::from_bytes(&junk).is_err());
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
        &CHAIN,
        &VerifyTolerance::toploc(),
    )
    .unwrap_or_else(|e| panic!("honest quantized-kernel generation rejected under TOPLOC: {e}"));
    assert!(rep.passed);
    assert_eq!(
        VerifyTolerance::for_model(m.info()),
        VerifyTolerance::strict_f32()
    );
    match verify_activations(&m, &r.prompt_tokens, &g.tokens, c, &CHAIN) {
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
        &CHAIN,
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
        &CHAIN,
    )
    .unwrap_or_else(|e| panic!("honest generation rejected by a perturbed verifier: {e}"));
    assert!(rep.passed);
}

/// A request whose honest reply ends at an end-of-turn token well before `max_tokens`.
fn short_request(m: &LlmModel) -> GenerateRequest {
    GenerateRequest {
        prompt_tokens: common::chat_prompt(m, "Say hello in three words."),
        max_tokens: 64,
        sampling: SamplingParams {
            seed: 3,
            ..Default::default()
        },
        stop: vec![],
        commit_activations: Some(CHAIN),
    }
}

fn short() -> Option<&'static (GenerateRequest, Generation)> {
    static H: OnceLock<Option<(GenerateRequest, Generation)>> = OnceLock::new();
    H.get_or_init(|| {
        let m = common::model()?;
        let r = short_request(&m);
        let g = m.generate(&r, &mut |_| true).unwrap();
        Some((r, g))
    })
    .as_ref()
}

/// Attack (a): the node picks its own commitment parameters (top-k 1, chunks of 4096
/// positions), so that almost nothing is checked. The commitment is internally consistent (it
/// passes a check that reads its parameters from it), but the verifier takes the parameters
/// from the chain and refuses it.
#[test]
fn a_commitment_with_the_nodes_own_parameters_is_refused_even_when_consistent() {
    let Some(m) = common::model() else { return };
    for own in [
        CommitParams {
            chunk_size: 4096,
            top_k: 1,
        },
        CommitParams {
            chunk_size: 32,
            top_k: 1,
        },
        CommitParams {
            chunk_size: 4096,
            top_k: 128,
        },
    ] {
        let r = GenerateRequest {
            commit_activations: Some(own),
            ..short_request(&m)
        };
        let g = m.generate(&r, &mut |_| true).unwrap();
        let c = g.commitment.as_ref().unwrap();
        assert_eq!(c.params(), own);
        // Internally consistent: with its own parameters everything matches.
        let rep = inspect_activations(
            &m,
            &r.prompt_tokens,
            &g.tokens,
            c,
            &own,
            &VerifyTolerance::strict_f32(),
        )
        .unwrap();
        assert!(rep.passed, "{own:?}: {rep:?}");
        let refused = |e: Result<_, VerifyError>| match e {
            Err(VerifyError::CommitParams {
                committed_chunk_size,
                committed_top_k,
                chunk_size,
                top_k,
            }) => {
                assert_eq!(
                    (committed_chunk_size, committed_top_k),
                    (own.chunk_size, own.top_k)
                );
                assert_eq!((chunk_size, top_k), (CHAIN.chunk_size, CHAIN.top_k));
            }
            other => panic!("{own:?} accepted or refused for another reason: {other:?}"),
        };
        refused(verify_activations(
            &m,
            &r.prompt_tokens,
            &g.tokens,
            c,
            &CHAIN,
        ));
        refused(verify_reply(&m, &spec(&r), &g.tokens, c, &CHAIN));
    }
}

/// Attack (b): a node that samples on past the end-of-turn token (or past the first stop
/// sequence, or past max_tokens) and bills the padding. Tokens and commitment are the model's
/// own (the activation check alone passes them); where generation stopped does not.
#[test]
fn a_reply_padded_past_its_end_is_refused() {
    let Some(m) = common::model() else { return };
    let (r, g) = short().unwrap();
    let n = g.tokens.len();
    assert!(
        n < r.max_tokens,
        "the honest reply must end by itself ({n} tokens)"
    );
    assert!(
        m.end_token_ids().contains(&g.tokens[n - 1]),
        "{:?}",
        g.tokens
    );
    // Honest: ends at its first end-of-turn token.
    verify_reply(
        &m,
        &spec(r),
        &g.tokens,
        g.commitment.as_ref().unwrap(),
        &CHAIN,
    )
    .expect("honest reply");
    assert_eq!(
        check_stop(&m, r.prompt_tokens.len(), &g.tokens, r.max_tokens, &r.stop).unwrap(),
        StopReason::EndToken(g.tokens[n - 1])
    );
    // Padded: the same tokens, then sampling goes on to max_tokens.
    let p = m.generate_past_end(r).unwrap();
    assert_eq!(p.tokens.len(), r.max_tokens);
    assert_eq!(&p.tokens[..n], &g.tokens[..]);
    let pc = p.commitment.as_ref().unwrap();
    verify_activations(&m, &r.prompt_tokens, &p.tokens, pc, &CHAIN)
        .expect("the padding is the model's own: only the stop check catches it");
    match verify_reply(&m, &spec(r), &p.tokens, pc, &CHAIN) {
        Err(VerifyError::PastEnd {
            stopped_at,
            end: StopReason::EndToken(t),
            output_len,
        }) => {
            assert_eq!((stopped_at, output_len), (n, r.max_tokens));
            assert_eq!(t, g.tokens[n - 1]);
        }
        other => panic!("padding past the end-of-turn token accepted: {other:?}"),
    }
    // Past max_tokens: the same padded reply under a signed max_tokens before its end token.
    let mx = n / 2;
    assert!(mx >= 1);
    let rmx = GenerateRequest {
        max_tokens: mx,
        ..r.clone()
    };
    match check_stop(&m, r.prompt_tokens.len(), &p.tokens, mx, &[]) {
        Err(VerifyError::PastEnd {
            stopped_at,
            end: StopReason::MaxTokens(max),
            ..
        }) => assert_eq!((stopped_at, max), (mx, mx)),
        other => panic!("more than max_tokens accepted: {other:?}"),
    }
    assert!(matches!(
        verify_reply(&m, &spec(&rmx), &p.tokens, pc, &CHAIN),
        Err(VerifyError::PastEnd { .. })
    ));
    // Past the first stop sequence: the caller asked to stop at a word of the honest text.
    let word = g
        .text
        .split_whitespace()
        .next()
        .expect("the honest reply has text")
        .to_string();
    let rs = GenerateRequest {
        stop: vec![word.clone()],
        ..r.clone()
    };
    let gs = m.generate(&rs, &mut |_| true).unwrap();
    let ns = gs.tokens.len();
    assert!(ns < n, "the stop sequence ends it earlier ({ns} of {n})");
    verify_reply(
        &m,
        &spec(&rs),
        &gs.tokens,
        gs.commitment.as_ref().unwrap(),
        &CHAIN,
    )
    .expect("honest reply ending at a stop sequence");
    // The reply that did not stop there (the full honest one) is padding under that request.
    match verify_reply(
        &m,
        &spec(&rs),
        &g.tokens,
        g.commitment.as_ref().unwrap(),
        &CHAIN,
    ) {
        Err(VerifyError::PastEnd {
            stopped_at,
            end: StopReason::StopSequence(s),
            ..
        }) => assert_eq!((stopped_at, s), (ns, word)),
        other => panic!("padding past a stop sequence accepted: {other:?}"),
    }
}

/// Attack (c): a reply cut short (no end-of-turn token, no stop sequence, fewer than
/// max_tokens): the node bills the prompt and delivers a fragment. Internally consistent (it is
/// an honest generation under a smaller max_tokens), refused under the signed one.
#[test]
fn a_reply_that_stops_early_is_refused() {
    let Some(m) = common::model() else { return };
    let (r, g) = short().unwrap();
    let k = g.tokens.len() - 2;
    assert!(k >= 1);
    let cut = m
        .generate(
            &GenerateRequest {
                max_tokens: k,
                ..r.clone()
            },
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(&cut.tokens[..], &g.tokens[..k]);
    let cc = cut.commitment.as_ref().unwrap();
    verify_activations(&m, &r.prompt_tokens, &cut.tokens, cc, &CHAIN)
        .expect("a prefix of the model's own reply");
    match verify_reply(&m, &spec(r), &cut.tokens, cc, &CHAIN) {
        Err(VerifyError::NoEnd {
            output_len,
            max_tokens,
        }) => assert_eq!((output_len, max_tokens), (k, r.max_tokens)),
        other => panic!("a reply cut short was accepted: {other:?}"),
    }
    // A generation the client cancelled ends early too: not a reply that verifies (the node
    // finishes such a reply before signing it, docs/llm.md).
    let mut seen = 0;
    let cancelled = m
        .generate(r, &mut |_| {
            seen += 1;
            seen < 3
        })
        .unwrap();
    assert_eq!(cancelled.finish_reason, opal_llm::FinishReason::Cancelled);
    assert!(matches!(
        check_stop(
            &m,
            r.prompt_tokens.len(),
            &cancelled.tokens,
            r.max_tokens,
            &[]
        ),
        Err(VerifyError::NoEnd { output_len: 3, .. })
    ));
    // An empty reply to a request that allowed tokens.
    assert!(matches!(
        check_stop(&m, r.prompt_tokens.len(), &[], r.max_tokens, &[]),
        Err(VerifyError::NoEnd { output_len: 0, .. })
    ));
}

/// (d) Honest replies pass the whole check: ending at an end-of-turn token, or at exactly
/// max_tokens, sampled and greedy; and the commitment's sampling parameters must be the signed
/// ones.
#[test]
fn honest_replies_pass_the_whole_check() {
    let Some(m) = common::model() else { return };
    let (r, g) = honest().unwrap();
    let rep = verify_reply(
        &m,
        &spec(r),
        &g.tokens,
        g.commitment.as_ref().unwrap(),
        &CHAIN,
    )
    .expect("honest sampled reply");
    assert!(rep.passed);
    // Exactly at max_tokens.
    let r8 = GenerateRequest {
        max_tokens: 8,
        sampling: SamplingParams::greedy(),
        ..r.clone()
    };
    let g8 = m.generate(&r8, &mut |_| true).unwrap();
    assert_eq!(g8.tokens.len(), 8);
    verify_reply(
        &m,
        &spec(&r8),
        &g8.tokens,
        g8.commitment.as_ref().unwrap(),
        &CHAIN,
    )
    .expect("honest reply at max_tokens");
    assert_eq!(
        check_stop(&m, r8.prompt_tokens.len(), &g8.tokens, 8, &[]).unwrap(),
        StopReason::MaxTokens(8)
    );
    // The signed seed differs from the committed one.
    let other_seed = GenerateRequest {
        sampling: SamplingParams {
            seed: r.sampling.seed ^ 1,
            ..r.sampling
        },
        ..r.clone()
    };
    assert!(matches!(
        verify_reply(
            &m,
            &spec(&other_seed),
            &g.tokens,
            g.commitment.as_ref().unwrap(),
            &CHAIN
        ),
        Err(VerifyError::SamplingParams { .. })
    ));
}
