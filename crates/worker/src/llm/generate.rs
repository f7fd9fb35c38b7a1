//! Running an admitted LLM call: generation (streamed token by token), the activation
//! commitment for the `activations` tier, the signed receipt made durable before the reply
//! leaves.

use super::*;

impl LlmService {
    /// Run an admitted call: generate (calling `on_token` for each token; it returns false to
    /// stop), sign the receipt for the tokens produced, make it durable, return the reply.
    /// Blocking.
    pub fn run(
        &self,
        p: Prepared,
        on_token: &mut dyn FnMut(&str) -> bool,
    ) -> Result<LlmServed, LlmServeError> {
        let activations = p.request.request.tier == Tier::Activations;
        let req = GenerateRequest {
            prompt_tokens: p.input.prompt_tokens.clone(),
            max_tokens: p.input.max_tokens as usize,
            sampling: SamplingParams {
                seed: p.input.seed,
                temperature: p.input.temperature,
                top_p: p.input.top_p,
                top_k: p.input.top_k as usize,
                repetition_penalty: p.input.repetition_penalty,
            },
            stop: p.input.stop.clone(),
            // The chain's commitment parameters: verifiers require exactly these.
            commit_activations: activations.then_some(p.commit),
        };
        let t0 = Instant::now();
        // A checkable reply must end where generation ends (an end-of-turn token, a stop
        // sequence or max_tokens; verifiers refuse a reply cut short). So when the client of an
        // `activations` call goes away, the generation runs on, unstreamed, to its end, and the
        // receipt bills what was generated (within the max_tokens the caller signed and
        // reserved). Other tiers stop at once.
        let mut client_gone = false;
        let mut gen = p
            .model
            .generate(&req, &mut |ev| {
                if client_gone {
                    return true;
                }
                if on_token(&ev.text) {
                    return true;
                }
                client_gone = true;
                activations
            })
            .map_err(LlmServeError::from_llm)?;
        if self.inf.fault_wrong_output(&p.request.id()) && gen.tokens.len() >= 2 {
            // Fault injection (tests only): bill and sign a changed middle token.
            let mid = gen.tokens.len() / 2;
            gen.tokens[mid] = gen.tokens[mid].wrapping_add(1) % p.model.info().vocab_size as u32;
        }
        let compute_ms = t0.elapsed().as_secs_f64() * 1e3;
        let prompt_tokens = p.input.prompt_tokens.len() as u32;
        let completion_tokens = gen.tokens.len() as u32;
        let price = mul(
            p.unit_price,
            prompt_tokens as u128 + completion_tokens as u128,
        )?;
        let commitment = if activations {
            Some(
                gen.commitment
                    .as_ref()
                    .ok_or_else(|| {
                        LlmServeError::internal("the model produced no activation commitment")
                    })?
                    .to_bytes(),
            )
        } else {
            None
        };
        {
            // What the node must reveal if the receipt is audited or disputed (both tiers are
            // checked by the validators' committee): the signed input, the tokens and, for
            // `activations`, the commitment. Durable before the receipt exists.
            let mut outputs = vec![opal_types::llm::tokens_to_bytes(&gen.tokens)];
            outputs.extend(commitment.clone());
            self.inf
                .store_reveal_data(&p.request.id(), vec![p.input.to_bytes()], outputs)
                .map_err(|e| {
                    LlmServeError::internal(format!("cannot persist the reveal data: {e}"))
                })?;
        }
        let key = self.inf.key();
        let receipt = ReceiptBody {
            request: p.request.clone(),
            output_hash: opal_types::llm::output_hash(&gen.tokens, commitment.as_deref()),
            price,
            units: prompt_tokens as u64 + completion_tokens as u64,
            height: p.height,
            node_key: key.public_key(),
        }
        .sign(key);
        let mut envelope = ReceiptEnvelope::new(receipt);
        if let Some(bytes) = commitment {
            envelope.attachments.push(Attachment {
                tier: Tier::Activations,
                version: ACTIVATIONS_ATTACHMENT_VERSION,
                bytes,
            });
        }
        self.inf.log().record(&envelope)?;
        let finish_reason = match gen.finish_reason {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        };
        let receipt_json = receipt_json(&envelope, &p.input, &gen.tokens, p.unit_price, &p.id);
        Ok(LlmServed {
            text: gen.text,
            finish_reason,
            prompt_tokens,
            completion_tokens,
            envelope,
            receipt_json,
            compute_ms,
        })
    }
}
