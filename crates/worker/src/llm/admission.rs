//! Admission of an LLM call, in the order the module documentation gives: the API key (a spend
//! grant), the body, the model and the tier, the licence, the prompt and the context, then
//! payment (escrow and grant allowance, less what is unsettled or reserved by calls in flight)
//! and the ledger's settlement rule at the worst case. Nothing is charged or signed here.

use super::*;

impl LlmService {
    /// Check an API key: a spend grant signed by the caller, for this chain and node, unexpired.
    pub fn authorize(&self, api_key: &str) -> Result<SignedGrant, LlmServeError> {
        let g = SignedGrant::from_api_key(api_key.trim()).map_err(|e| {
            LlmServeError::auth(format!(
                "Incorrect API key provided: it is not an Opal spend grant ({e}). Mint one with `opal llm key --node NODE --max AMOUNT --ttl DURATION`."
            ))
        })?;
        g.verify().map_err(|e| {
            LlmServeError::auth(format!(
                "Incorrect API key provided: the grant's signature does not verify ({e})."
            ))
        })?;
        let chain = self.inf.chain().chain_id();
        if g.grant.chain_id != chain {
            return Err(LlmServeError::auth(format!(
                "This API key is for chain {:?}; this node is on {chain:?}.",
                g.grant.chain_id
            )));
        }
        if g.grant.node != self.node() {
            return Err(LlmServeError::auth(format!(
                "This API key grants spending to node {}; this node is {}.",
                g.grant.node,
                self.node()
            )));
        }
        if g.grant.expires_ms <= self.inf.clock().now_ms() {
            return Err(LlmServeError::auth(format!(
                "This API key expired at {} (ms since the epoch); mint a new one with `opal llm key`.",
                g.grant.expires_ms
            )));
        }
        Ok(g)
    }

    /// Admission (everything but running the model): resolve the model, load it, apply the
    /// chat template and tokenize, check the context and the payment, compose the request and
    /// reserve its worst-case price. Blocking (it may load the model).
    pub fn prepare(
        self: &Arc<Self>,
        grant: &SignedGrant,
        ask: &Ask,
    ) -> Result<Prepared, LlmServeError> {
        let (o, height) = self.state()?;
        let internal = |e: opal_ledger::LedgerError| LlmServeError::internal(e.to_string());
        let r = self.resolve(&o, &ask.model)?;
        if !r.offer.tiers.contains(&ask.tier) || !r.spec.tiers.contains(&ask.tier) {
            return Err(LlmServeError::invalid(
                Some("opal_tier"),
                Some("tier_not_offered"),
                format!(
                    "This node does not serve {} under tier `{}` (offered: {}).",
                    r.id,
                    ask.tier.as_str(),
                    r.offer
                        .tiers
                        .iter()
                        .filter(|t| r.spec.tiers.contains(t))
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !matches!(ask.tier, Tier::Signed | Tier::Activations) {
            return Err(LlmServeError::invalid(
                Some("opal_tier"),
                Some("tier_unsupported"),
                format!(
                    "Tier `{}` is not served for LLMs (use `signed` or `activations`).",
                    ask.tier.as_str()
                ),
            ));
        }
        let caller = grant.caller.address();
        r.spec
            .licence
            .permits(&caller, ask.commercial)
            .map_err(|why| LlmServeError {
                status: 403,
                kind: "invalid_request_error",
                code: Some("licence_forbids".into()),
                param: None,
                message: format!("The model's licence does not allow this call: {why}"),
            })?;
        let model = self.load(&r.spec.content_hash)?;
        let ctx = model.info().context_length;
        let (text, param) = match &ask.prompt {
            Prompt::Chat(messages) => (
                model.chat_prompt(messages).map_err(|e| match e {
                    LlmError::ContextTooLong { .. } => LlmServeError::from_llm(e),
                    e => LlmServeError::invalid(
                        Some("messages"),
                        Some("invalid_messages"),
                        format!(
                            "The messages cannot be rendered with the model's chat template: {e}"
                        ),
                    ),
                })?,
                "messages",
            ),
            Prompt::Text(t) => (t.clone(), "prompt"),
        };
        let prompt_tokens = model.tokenize(&text).map_err(|e| match e {
            LlmError::ContextTooLong { .. } => LlmServeError::from_llm(e),
            e => LlmServeError::invalid(
                Some(param),
                None,
                format!("The {param} cannot be tokenized: {e}"),
            ),
        })?;
        if prompt_tokens.is_empty() {
            return Err(LlmServeError::invalid(
                Some(param),
                None,
                format!("The {param} is empty."),
            ));
        }
        let n_prompt = prompt_tokens.len();
        let room = ctx.saturating_sub(n_prompt);
        let max_tokens = match ask.max_tokens {
            Some(m) => m,
            None => {
                let default = match ask.prompt {
                    Prompt::Chat(_) => DEFAULT_CHAT_MAX_TOKENS,
                    Prompt::Text(_) => DEFAULT_COMPLETION_MAX_TOKENS,
                };
                default.min(room as u32)
            }
        };
        if n_prompt >= ctx || max_tokens == 0 || n_prompt + max_tokens as usize > ctx {
            return Err(LlmServeError::invalid(
                Some(param),
                Some("context_length_exceeded"),
                format!(
                    "This model's maximum context length is {ctx} tokens. However, you requested {} tokens ({n_prompt} in the {param}, {max_tokens} in the completion). Please reduce the length of the {param} or completion.",
                    n_prompt + max_tokens as usize
                ),
            ));
        }

        // Payment: the worst case must fit the escrow and the grant; a higher audit rate also
        // charges the escrow its premium at settlement.
        let max_price = mul(r.unit_price, (n_prompt + max_tokens as usize) as u128)?;
        let premium = inference::audit_premium(
            &inference::params(&o).map_err(internal)?,
            ask.escalation.audit_bps,
        );
        // (The settlement rule below checks the same again, with every other condition.)
        let escrow = inference::escrow(&o, &caller, &self.node()).map_err(internal)?;
        if escrow.unlock_ms.is_some() {
            return Err(LlmServeError::quota(format!(
                "Your escrow with node {} is closing; fund a new one (`opal tx escrow fund`).",
                self.node()
            )));
        }
        if self.inf.log().is_full() {
            return Err(LlmServeError::unavailable(
                "busy",
                "This node holds too many unsettled receipts; try again shortly.",
            ));
        }
        let gid = grant.id();
        let owed = self
            .inf
            .log()
            .unsettled_sum(&o, &caller, |_| true)
            .map_err(internal)?;
        let pending_under_grant = self
            .inf
            .log()
            .unsettled_sum(&o, &caller, |rc| {
                rc.body.request.grant.as_ref().map(|g| g.id()) == Some(gid)
            })
            .map_err(internal)?;
        let charged = inference::grant_spent(&o, &gid).map_err(internal)?;
        let mut res = self.reserved.lock();
        let held_caller = res.by_caller.get(&caller).copied().unwrap_or(0);
        let held_grant = res.by_grant.get(&gid).copied().unwrap_or(0);
        let escrow_left = escrow
            .balance
            .0
            .saturating_sub(owed.0)
            .saturating_sub(held_caller);
        let escrow_need = max_price.0.saturating_add(premium.0);
        if escrow_left < escrow_need {
            return Err(LlmServeError::quota(format!(
                "Your escrow with node {} holds {escrow_left} after unsettled and in-flight calls; this call may cost up to {max_price} ({n_prompt} prompt tokens + max_tokens {max_tokens}, at {} per token){}. Fund it with `opal tx escrow fund` or lower max_tokens.",
                self.node(),
                r.unit_price,
                if premium.is_zero() { String::new() } else { format!(" plus an audit premium of {premium}") }
            )));
        }
        let grant_left = grant
            .grant
            .max_total
            .0
            .saturating_sub(charged.0)
            .saturating_sub(pending_under_grant.0)
            .saturating_sub(held_grant);
        if grant_left < max_price.0 {
            return Err(LlmServeError::quota(format!(
                "This API key's allowance has {grant_left} left of {}; this call may cost up to {max_price} ({n_prompt} prompt tokens + max_tokens {max_tokens}, at {} per token). Mint a new key or lower max_tokens.",
                grant.grant.max_total, r.unit_price
            )));
        }
        *res.by_caller.entry(caller).or_insert(0) += escrow_need;
        *res.by_grant.entry(gid).or_insert(0) += max_price.0;
        drop(res);
        let reservation = Reservation {
            svc: self.clone(),
            caller,
            grant: gid,
            amount: max_price.0,
            escrow_amount: escrow_need,
        };

        let input = LlmInput {
            model: r.model.clone(),
            prompt_tokens,
            max_tokens,
            seed: ask.seed.unwrap_or_else(random_u64),
            temperature: ask.temperature as f32,
            top_p: ask.top_p as f32,
            top_k: ask.top_k,
            repetition_penalty: ask.repetition_penalty as f32,
            stop: ask.stop.clone(),
        };
        let request = InferenceRequest {
            chain_id: self.inf.chain().chain_id().to_string(),
            node: self.node(),
            model: r.model.clone(),
            model_hash: r.spec.content_hash,
            input_hash: input.hash(),
            tier: ask.tier,
            max_price,
            commercial: ask.commercial,
            salt: random_u64(),
            expires_ms: (self.inf.clock().now_ms() + LLM_REQUEST_TTL_MS)
                .min(grant.grant.expires_ms),
            escalation: ask.escalation,
        }
        .under_grant(grant.clone());
        // The ledger's settlement rule at the worst case (max_tokens generated, on top of what
        // is unsettled and in flight): a call this node could not be paid for (it is jailed or
        // unbonded, or its price does not cover what the owner and the treasury are owed) is
        // not run.
        let at = inference::Settlement {
            chain_id: self.inf.chain().chain_id(),
            height,
            time_ms: self.inf.clock().now_ms(),
            receipt_height: height,
        };
        let unsettled = inference::Unsettled {
            escrow: Amount(owed.0.saturating_add(held_caller)),
            grant: Amount(pending_under_grant.0.saturating_add(held_grant)),
        };
        let units = (n_prompt + max_tokens as usize) as u64;
        let p_inf = inference::params(&o).map_err(internal)?;
        let chain = opal_ledger::exec::params(&o).map_err(internal)?;
        let commit = CommitParams {
            chunk_size: chain.llm_commit_chunk,
            top_k: chain.llm_commit_top_k,
        };
        inference::terms(
            &o, &at, &p_inf, &request, max_price, units, false, unsettled,
        )
        .map_err(internal)?
        .map_err(|e| LlmServeError::from(ServeError::from_settle(e, request.id())))?;
        Ok(Prepared {
            id: r.id,
            model_ref: r.model,
            request,
            input,
            unit_price: r.unit_price,
            height,
            commit,
            model,
            _reservation: reservation,
        })
    }
}
