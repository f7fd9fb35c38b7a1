//! The OpenAPI 3.1 description served at `/openapi.json`. Kept beside the router: a test checks
//! that every route the router serves is described here. The component schemas are generated
//! from the wire types (`opal_api::schemas`), so they say what the node sends.

use serde_json::{json, Value};

fn err_ref() -> Value {
    json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

/// A JSON response whose body is the component schema `name`.
fn body(description: &str, name: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}})
}

pub fn document() -> Value {
    let mut doc = paths();
    for more in [gov_paths(), openai_paths()] {
        if let (Some(all), Value::Object(more)) = (doc["paths"].as_object_mut(), more) {
            all.extend(more);
        }
    }
    doc["components"] = json!({"schemas": opal_api::schemas()});
    doc
}

fn paths() -> Value {
    json!({
      "openapi": "3.1.0",
      "info": {"title": "Opal node API", "version": env!("CARGO_PKG_VERSION"),
               "description": "Opal: a ledger for verifiable AI. Amounts are decimal strings in base units; hashes, keys and proofs are hex."},
      "paths": {
        "/api/status": {"get": {"summary": "Chain id, latest height, state root, block hash, mempool size, total supply, parameters",
            "responses": {"200": body("status", "Status")}}},
        "/api/txs": {"post": {"summary": "Submit a signed transaction",
            "requestBody": {"required": true, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SubmitTx"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"202": {"description": "admitted to the mempool", "content": {"application/json": {"schema": {"type": "object", "properties": {"hash": {"type": "string"}, "status": {"const": "pending"}}}}}},
                          "400": err_ref(), "409": err_ref(), "413": err_ref(), "503": err_ref()}}},
        "/api/txs/batch": {"post": {"summary": "Submit up to 4096 transactions at once (borsh GossipBatch of canonical transaction bytes, at most 4 MiB): each admitted as by POST /api/txs, in order; signatures verified in parallel batches",
            "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"200": body("what became of each transaction", "BatchReply"), "400": err_ref(), "413": err_ref()}}},
        "/api/gossip/txs": {"post": {"summary": "Mempool gossip between nodes: a batch of encoded transactions (borsh GossipBatch, at most 4 MiB and 4096 transactions), each admitted as by POST /api/txs; those new here are gossiped on",
            "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"200": body("counts: admitted, known, refused", "GossipReceived"),
                          "400": err_ref(), "413": err_ref()}}},
        "/api/txs/{hash}": {"get": {"summary": "Status of a transaction: committed (with its result and events), pending, dropped, or unknown",
            "parameters": [{"name": "hash", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": body("known transaction", "TxStatus"), "404": body("unknown transaction", "TxStatus"), "400": err_ref()}}},
        "/api/accounts/{address}": {"get": {"summary": "Balance and nonce of an account, optionally with a Merkle proof against the state root",
            "parameters": [{"name": "address", "in": "path", "required": true, "schema": {"type": "string"}},
                           {"name": "prove", "in": "query", "schema": {"type": "boolean"}},
                           {"name": "height", "in": "query", "schema": {"type": "integer"}}],
            "responses": {"200": body("account", "Account"), "400": err_ref(), "404": err_ref()}}},
        "/api/blocks/latest": {"get": {"summary": "The latest committed block", "responses": {"200": body("block", "BlockReply"), "404": err_ref()}}},
        "/api/blocks/{height}": {"get": {"summary": "A committed block with its transactions, results, state root, commit certificate and the previous block's signers",
            "parameters": [{"name": "height", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "responses": {"200": body("block", "BlockReply"), "400": err_ref(), "404": err_ref()}}},
        "/api/light/{height}": {"get": {"summary": "A light block: block bytes, commit certificate, and the validator set that voted on it with its Merkle proof against the header's prev_state_root (all hex; checked by the client, trusted by nobody)",
            "parameters": [{"name": "height", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "light block: block, certificate, validators, validators_proof, height"}, "400": err_ref(), "404": err_ref()}}},
        "/api/snapshots": {"get": {"summary": "The heights whose state this node serves for state sync (multiples of its snapshot_interval that it keeps), newest first",
            "responses": {"200": body("snapshot list", "SnapshotList")}}},
        "/api/snapshots/{height}/chunk": {"get": {"summary": "State-sync chunk: up to `limit` leaves of the tree at `height` after key hash `after` (hex; empty: from the first), with their range proof; borsh `opal_state::Chunk`, checked by the client against a root it verified",
            "parameters": [{"name": "height", "in": "path", "required": true, "schema": {"type": "integer"}},
                           {"name": "after", "in": "query", "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "chunk bytes", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}, "400": err_ref(), "404": err_ref(), "410": err_ref()}}},
        "/api/state/{key}": {"get": {"summary": "A raw state value (hex key) with a proof of presence or absence",
            "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}},
                           {"name": "height", "in": "query", "schema": {"type": "integer"}}],
            "responses": {"200": body("value and proof", "StateValue"), "400": err_ref(), "404": err_ref()}}},
        "/api/validators": {"get": {"summary": "All validators (operator, consensus key, tokens, jail status, commission, missed commit signatures in the liveness window) and the active consensus set with voting power",
            "responses": {"200": body("validators", "Validators")}}},
        "/api/models": {"get": {"summary": "Every registered model version (spec, owner, calls, revenue)",
            "responses": {"200": body("models", "Models")}}},
        "/api/models/{model}": {"get": {"summary": "One model version (NAME@VERSION, or NAME for the newest) with the inference nodes serving it",
            "parameters": [{"name": "model", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": body("model", "ModelDetail"), "404": err_ref()}}},
        "/api/models/{model}/lineage": {"get": {"summary": "A model's lineage: datasets with owners and shares, ancestors, descendants",
            "parameters": [{"name": "model", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": body("lineage", "LineageReply"), "404": err_ref()}}},
        "/api/datasets/{name}": {"get": {"summary": "A dataset and the models that name it in their lineage",
            "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": body("dataset", "DatasetReply"), "404": err_ref()}}},
        "/api/services": {"get": {"summary": "Declared inference services (endpoint, offers); ?model=NAME[@VERSION] filters",
            "responses": {"200": body("services", "Services")}}},
        "/api/escrows/{caller}/{node}": {"get": {"summary": "A caller's escrow with an inference node (balance, unlock time if closing)",
            "responses": {"200": body("escrow", "Escrow"), "400": err_ref()}}},
        "/api/receipts/{request_id}": {"get": {"summary": "Whether a request was settled; ?prove=true adds the state key, value and a Merkle proof against the state root",
            "responses": {"200": body("settlement record", "ReceiptStatus"), "400": err_ref()}}},
        "/api/cases": {"get": {"summary": "Open verification cases (held results, audits, disputes) with revealed inputs and outputs; ?node=ADDR&model=NAME@V&limit=N",
            "responses": {"200": body("cases", "Cases")}}},
        "/api/cases/{request_id}": {"get": {"summary": "One request's open verification case or its verdict",
            "responses": {"200": body("case and verdict", "CaseReply")}}},
        "/api/zk/keys/{id}": {"get": {"summary": "A published opal-zk verifying key (hex) by its id, a zk-tier model's weight commitment",
            "responses": {"200": body("key", "ZkKey"), "404": err_ref()}}},
        "/api/proofs/{request_id}": {"get": {"summary": "The zk proof of a served zk-tier request (inference nodes only): queued, proving (progress), done (evidence hex) or failed",
            "responses": {"200": body("proof state", "ProofStatus"), "404": err_ref()}}},
        "/api/infer": {"post": {"summary": "Run a registered model for a signed request (inference nodes only): {request: hex SignedRequest, inputs: [tensor]}; replies with outputs and the signed receipt envelope",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferBody"}}}},
            "responses": {"200": body("outputs and receipt", "Inferred"), "400": {"description": "malformed or refused request"}, "402": {"description": "price above max or escrow short"},
                          "403": {"description": "licence forbids"}, "404": {"description": "unknown model, or inference not served here"}, "409": {"description": "request already served"}, "413": {"description": "body too large"}}}},
        "/api/artifacts": {"get": {"summary": "Artifacts in this node's content-addressed store (see docs/artifacts.md for upload and download routes)",
            "responses": {"200": {"description": "artifacts"}}}},
        "/api/events": {"get": {"summary": "Live event stream (server-sent events): new_block and tx events, JSON in each data line",
            "responses": {"200": {"description": "text/event-stream"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (OpenMetrics text): height, mempool size, transactions admitted/refused (by code)/committed/failed, block commit time and size",
            "responses": {"200": {"description": "application/openmetrics-text"}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}
      }
    })
}

/// The governance routes (a second `json!`: one holding every route exceeds the macro's
/// recursion limit).
fn gov_paths() -> Value {
    json!({
        "/api/params": {"get": {"summary": "Every chain parameter in force (section.field), its governance bounds, and the proposal that last set it",
            "responses": {"200": body("parameters", "ParamsInForce")}}},
        "/api/gov": {"get": {"summary": "Governance parameters, treasury, deposits held, open proposals, trusted enclave measurements, upgrade signal",
            "responses": {"200": body("governance overview", "GovOverview")}}},
        "/api/gov/proposals": {"get": {"summary": "Every proposal, oldest first, with its live or final tally; ?status=voting_period filters",
            "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": body("proposals", "Proposals")}}},
        "/api/gov/proposals/{id}": {"get": {"summary": "One proposal with its deposits and its live (voting) or final tally",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "responses": {"200": body("proposal", "Proposal"), "400": err_ref(), "404": err_ref()}}},
        "/api/gov/proposals/{id}/votes": {"get": {"summary": "The votes on a proposal (voter, option); a later vote replaces an earlier one",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "responses": {"200": body("votes", "Votes"), "400": err_ref(), "404": err_ref()}}},
        "/api/rewards/{address}": {"get": {"summary": "What an address can withdraw now (each delegation's rewards, its validator's commission) and its performance points this epoch",
            "parameters": [{"name": "address", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": body("rewards", "Rewards"), "400": err_ref()}}},
        "/api/shares": {"get": {"summary": "Every royalty stream (model:NAME or dataset:NAME) split into revenue shares",
            "responses": {"200": body("streams", "Streams")}}},
        "/api/shares/{stream}": {"get": {"summary": "One split stream and its holders in address order, a page at a time (limit 1-1000, default 100; next is the after of the next page)",
            "parameters": [{"name": "stream", "in": "path", "required": true, "schema": {"type": "string"}},
                           {"name": "after", "in": "query", "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
            "responses": {"200": body("stream", "StreamReply"), "400": err_ref(), "404": err_ref()}}},
        "/api/shares/{stream}/{address}": {"get": {"summary": "One holder's shares of a stream and what it can claim now, with the holding's state key (its proof: GET /api/state/{key})",
            "parameters": [{"name": "stream", "in": "path", "required": true, "schema": {"type": "string"}},
                           {"name": "address", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": body("holding", "HoldingReply"), "400": err_ref(), "404": err_ref()}}},
        "/api/market/{stream}/book": {"get": {"summary": "The exchange's resting orders for a stream's shares: bids and asks, best first (price, then time)",
            "parameters": [{"name": "stream", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": body("book", "Book"), "400": err_ref()}}},
        "/api/market/{stream}/trades": {"get": {"summary": "The newest trades of a stream's shares (at most 256), oldest first",
            "parameters": [{"name": "stream", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": body("trades", "Trades"), "400": err_ref()}}},
        "/api/market/orders/{id}": {"get": {"summary": "One resting order (404 once filled, cancelled or closed)",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "responses": {"200": body("order", "OrderStatus"), "400": err_ref(), "404": err_ref()}}}
    })
}

/// The OpenAI-compatible routes (inference nodes that serve GGUF models). The key is an Opal
/// spend grant (`Authorization: Bearer`); errors are OpenAI's shape.
fn openai_paths() -> Value {
    let oerr = || json!({"description": "error (OpenAI's shape)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorReply"}}}});
    let completion = |summary: &str| {
        json!({"post": {"summary": summary,
            "parameters": [{"name": "authorization", "in": "header", "required": true, "schema": {"type": "string"}, "description": "Bearer <spend grant> (`opal llm key`)"}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "the completion with its Opal receipt (`opal_receipt`; header x-opal-receipt: the request id); with stream=true, server-sent events of chunks, `data: [DONE]` last",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Completion"}}, "text/event-stream": {"schema": {"type": "string"}}}},
                          "400": oerr(), "401": oerr(), "402": oerr(), "403": oerr(), "404": oerr(), "413": oerr(), "429": oerr()}}})
    };
    json!({
        "/v1/models": {"get": {"summary": "The GGUF models this node offers, with Opal's per-token price and tiers",
            "responses": {"200": body("models", "ModelList"), "404": oerr()}}},
        "/v1/models/{model}": {"get": {"summary": "One offered model (NAME or NAME@VERSION)",
            "parameters": [{"name": "model", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": body("model", "ModelObject"), "404": oerr()}}},
        "/v1/chat/completions": completion("OpenAI chat completion, paid per token from the caller's escrow under the grant; opal_tier signed or activations"),
        "/v1/completions": completion("OpenAI text completion, paid per token from the caller's escrow under the grant"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_names_a_generated_schema() {
        let doc = document();
        let mut all = vec![];
        refs(&doc, &mut all);
        assert!(all.len() > 10, "{all:?}");
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("a reference outside the components: {r}"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} is not in the document"
            );
        }
    }

    /// Each required property of a schema is in a value the node sends.
    fn has_required(schema: &Value, v: &Value) {
        for p in schema["required"].as_array().into_iter().flatten() {
            let p = p.as_str().unwrap();
            assert!(
                v.get(p).is_some(),
                "{p} is required by the schema, missing from {v}"
            );
        }
    }

    #[test]
    fn replies_carry_what_their_schemas_require() {
        let doc = document();
        let s = &doc["components"]["schemas"];
        let inferred = opal_api::Inferred {
            outputs: vec![],
            request_id: opal_types::Hash([1; 32]),
            receipt_id: opal_types::Hash([2; 32]),
            price: opal_types::Amount(3),
            height: 4,
            receipt: "00".into(),
            compute_ms: 1.0,
        };
        has_required(&s["Inferred"], &serde_json::to_value(inferred).unwrap());
        let proof = opal_api::ProofStatus {
            state: opal_api::ProofState::Proving { progress: 0.5 },
            request_id: opal_types::Hash([1; 32]),
            evidence_version: None,
            evidence: None,
        };
        let v = serde_json::to_value(proof).unwrap();
        assert_eq!(v["state"], "proving");
        has_required(&s["ProofStatus"], &v);
        let err = opal_api::ErrorBody {
            error: opal_api::ErrorDetail {
                code: "c".into(),
                message: "m".into(),
            },
        };
        has_required(&s["ErrorBody"], &serde_json::to_value(err).unwrap());
        let chunk = opal_api::openai::Completion {
            id: "chatcmpl-1".into(),
            object: "chat.completion.chunk".into(),
            created: 1,
            model: "m".into(),
            system_fingerprint: "opal-1".into(),
            choices: vec![opal_api::openai::Choice::delta("hi", None, true)],
            usage: None,
            opal_receipt: None,
        };
        let v = serde_json::to_value(chunk).unwrap();
        has_required(&s["Completion"], &v);
        // A chunk's choice has a null finish reason and null logprobs, both present.
        assert!(v["choices"][0]["finish_reason"].is_null());
        assert!(v["choices"][0].get("logprobs").is_some());
    }
}
