//! The `activations` tier's verifier (feature `activations`, which links the LLM engine): an
//! LLM reply's activation commitment recomputed from the model, with the chain's commitment
//! parameters, never the ones the commitment names. `opal verify --llm-model` and a validator
//! voting on an LLM case (`opal node watch`) both call [`verify`]; a `signed` LLM reply, which
//! has no commitment, is checked by its tokens alone ([`verify_signed`]).
//!
//! What the caller's side checks first (no model needed) is in [`crate::signed`]: the reply's
//! input, tokens and commitment are the signed ones, and the billed units are its tokens.

use crate::report::Failure;
use opal_llm::{
    ActivationCommitment, CommitParams, LlmModel, ReplySpec, SamplingParams, VerifyError,
};
use opal_types::llm::LlmInput;

impl Failure for VerifyError {
    fn code(&self) -> &'static str {
        VerifyError::code(self)
    }
}

/// Whether `e` is the verifier's own trouble (its backend, its disk), which says nothing about
/// the node: no vote or verdict may rest on it.
pub fn is_verifier_fault(e: &VerifyError) -> bool {
    matches!(
        e,
        VerifyError::Model(opal_llm::LlmError::Backend(_) | opal_llm::LlmError::Io(_))
    )
}

/// The whole off-chain check of an `activations` reply: the commitment decodes, was made with
/// the chain's commitment parameters `params` and with exactly the sampling parameters and seed
/// of the caller's signed `input`, generation stopped where it had to (the first end-of-turn
/// token, the first stop sequence, or exactly `max_tokens`: tokens sampled and billed past that
/// are padding), and the committed activations and sampled tokens match `model` within the
/// verifier's tolerance (docs/llm.md).
pub fn verify(
    model: &LlmModel,
    input: &LlmInput,
    output: &[u32],
    commitment: &[u8],
    params: &CommitParams,
) -> Result<(), VerifyError> {
    let c = ActivationCommitment::from_bytes(commitment)?;
    opal_llm::verify_reply(model, &spec(input), output, &c, params).map(|_| ())
}

/// The off-chain check of a `signed` LLM reply (no commitment), what a validator voting on a
/// signed LLM case runs: generation stopped where it had to, and every sampled token follows
/// from `model`'s logits with the caller's signed sampling parameters and seed, within the
/// verifier's tolerance ([`opal_llm::verify_tokens`]).
pub fn verify_signed(
    model: &LlmModel,
    input: &LlmInput,
    output: &[u32],
) -> Result<(), VerifyError> {
    opal_llm::verify_tokens(model, &spec(input), output).map(|_| ())
}

/// What the caller signed that determines the reply.
fn spec(input: &LlmInput) -> ReplySpec<'_> {
    ReplySpec {
        prompt_tokens: &input.prompt_tokens,
        sampling: SamplingParams {
            seed: input.seed,
            temperature: input.temperature,
            top_p: input.top_p,
            top_k: input.top_k as usize,
            repetition_penalty: input.repetition_penalty,
        },
        max_tokens: input.max_tokens as usize,
        stop: &input.stop,
    }
}
