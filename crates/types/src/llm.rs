//! What an LLM receipt signs, shared by the serving node, the ledger (which checks an LLM case's
//! revealed data against the signed hashes) and the CLI (`opal verify`, `opal node watch`).
//!
//! - `input_hash = BLAKE3-derive("opal 2026 llm input v1", borsh(LlmInput))`.
//! - `output_hash`:
//!   - `signed` tier: `BLAKE3-derive("opal 2026 llm output v1", borsh(Vec<u32> output tokens))`;
//!   - `activations` tier: `BLAKE3-derive("opal 2026 llm output activations v1",
//!     borsh(Vec<u32>) || BLAKE3(commitment bytes))`, so the node's signature also binds the
//!     activation commitment it handed the caller: it cannot reveal another one when audited.
//!
//! An LLM case's `RevealData` carries `inputs = [borsh(LlmInput)]` and
//! `outputs = [borsh(Vec<u32>)]`, plus the commitment bytes as a second output for the
//! `activations` tier ([`reveal_hashes`]).

use crate::encoding::{decode, encode};
use crate::hash::Hash;
use crate::registry::ModelRef;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// BLAKE3 derive-key context of an LLM request's input hash.
pub const LLM_INPUT_CONTEXT: &str = opal_domains::derive::LLM_INPUT;
/// BLAKE3 derive-key context of an LLM reply's output hash (`signed` tier).
pub const LLM_OUTPUT_CONTEXT: &str = opal_domains::derive::LLM_OUTPUT;
/// BLAKE3 derive-key context of an LLM reply's output hash with its activation commitment.
pub const LLM_OUTPUT_ACTIVATIONS_CONTEXT: &str = opal_domains::derive::LLM_OUTPUT_ACTIVATIONS;
/// Decoding bound of a revealed `LlmInput` (a 64k-token prompt and the stop strings fit).
pub const MAX_LLM_INPUT_BYTES: usize = 512 * 1024;
/// Decoding bound of revealed output tokens.
pub const MAX_LLM_OUTPUT_BYTES: usize = 256 * 1024;

/// Everything that determines an LLM reply; its hash is the request's `input_hash`.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct LlmInput {
    pub model: ModelRef,
    /// The prompt's token ids (chat: after the model's chat template).
    pub prompt_tokens: Vec<u32>,
    pub max_tokens: u32,
    pub seed: u64,
    /// The sampling parameters exactly as the sampler uses them (`opal_llm::SamplingParams`).
    pub temperature: f32,
    pub top_p: f32,
    /// 0: no top-k cut.
    pub top_k: u32,
    pub repetition_penalty: f32,
    pub stop: Vec<String>,
}

impl LlmInput {
    /// Canonical bytes (what `RevealData` carries). Finite floats only: a composed input
    /// always has them (the node validates the sampling parameters first).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decode untrusted bytes (bounded, canonical; NaN floats are refused by borsh).
    pub fn from_bytes(bytes: &[u8]) -> Result<LlmInput, crate::encoding::DecodeError> {
        decode("llm input", bytes, MAX_LLM_INPUT_BYTES)
    }

    pub fn hash(&self) -> Hash {
        input_hash_of_bytes(&self.to_bytes())
    }
}

/// The input hash of canonical `LlmInput` bytes.
pub fn input_hash_of_bytes(bytes: &[u8]) -> Hash {
    Hash(blake3::derive_key(LLM_INPUT_CONTEXT, bytes))
}

/// Canonical bytes of output tokens.
pub fn tokens_to_bytes(tokens: &[u32]) -> Vec<u8> {
    encode(&tokens.to_vec())
}

/// Decode untrusted output-token bytes.
pub fn tokens_from_bytes(bytes: &[u8]) -> Result<Vec<u32>, crate::encoding::DecodeError> {
    decode("llm output tokens", bytes, MAX_LLM_OUTPUT_BYTES)
}

/// The output hash over canonical token bytes and, for the `activations` tier, the commitment.
pub fn output_hash_of_bytes(token_bytes: &[u8], commitment: Option<&[u8]>) -> Hash {
    match commitment {
        None => Hash(blake3::derive_key(LLM_OUTPUT_CONTEXT, token_bytes)),
        Some(c) => {
            let mut m = token_bytes.to_vec();
            m.extend_from_slice(blake3::hash(c).as_bytes());
            Hash(blake3::derive_key(LLM_OUTPUT_ACTIVATIONS_CONTEXT, &m))
        }
    }
}

/// The output hash of an LLM reply (see the module docs).
pub fn output_hash(tokens: &[u32], commitment: Option<&[u8]>) -> Hash {
    output_hash_of_bytes(&tokens_to_bytes(tokens), commitment)
}

/// The hashes an LLM case's revealed data must reproduce: `(input_hash, output_hash)`, or why
/// the reveal does not have the LLM shape (`[LlmInput]`, `[tokens]` or `[tokens, commitment]`).
pub fn reveal_hashes(
    inputs: &[Vec<u8>],
    outputs: &[Vec<u8>],
    with_commitment: bool,
) -> Result<(Hash, Hash), String> {
    let [input] = inputs else {
        return Err(format!(
            "an LLM reveal has exactly one input (the LlmInput bytes), got {}",
            inputs.len()
        ));
    };
    let out = match (outputs, with_commitment) {
        ([tokens], false) => output_hash_of_bytes(tokens, None),
        ([tokens, c], true) => output_hash_of_bytes(tokens, Some(c)),
        _ => {
            return Err(format!(
                "an LLM reveal has {} output(s) (the tokens{}), got {}",
                if with_commitment { 2 } else { 1 },
                if with_commitment {
                    " and the activation commitment"
                } else {
                    ""
                },
                outputs.len()
            ))
        }
    };
    Ok((input_hash_of_bytes(input), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> LlmInput {
        LlmInput {
            model: "smollm2-135m@1".parse().unwrap(),
            prompt_tokens: vec![1, 2, 3],
            max_tokens: 16,
            seed: 7,
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            repetition_penalty: 1.1,
            stop: vec!["\n".into()],
        }
    }

    #[test]
    fn input_bytes_round_trip_and_refuse_garbage() {
        let i = input();
        let b = i.to_bytes();
        assert_eq!(LlmInput::from_bytes(&b).unwrap(), i);
        assert_eq!(input_hash_of_bytes(&b), i.hash());
        assert!(LlmInput::from_bytes(&b[..b.len() - 1]).is_err());
        let mut longer = b.clone();
        longer.push(0);
        assert!(LlmInput::from_bytes(&longer).is_err());
        assert!(LlmInput::from_bytes(&[0xff; 64]).is_err());
        // A NaN temperature does not decode.
        let mut nan = i.clone();
        nan.temperature = 0.5;
        let mut nb = nan.to_bytes();
        // Layout tail: temperature, top_p, top_k, repetition_penalty (4 bytes each), then
        // stop = ["\n"] (4 + 4 + 1 bytes).
        let at = nb.len() - 9 - 16;
        assert_eq!(f32::from_le_bytes(nb[at..at + 4].try_into().unwrap()), 0.5);
        nb[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(LlmInput::from_bytes(&nb).is_err());
    }

    #[test]
    fn input_hash_binds_every_field() {
        let base = input().hash();
        assert_eq!(base, input().hash());
        type Change = Box<dyn Fn(&mut LlmInput)>;
        let variants: Vec<Change> = vec![
            Box::new(|i| i.model.version = 2),
            Box::new(|i| i.prompt_tokens.push(4)),
            Box::new(|i| i.max_tokens = 9),
            Box::new(|i| i.seed = 43),
            Box::new(|i| i.temperature = 0.8),
            Box::new(|i| i.top_p = 1.0),
            Box::new(|i| i.top_k = 0),
            Box::new(|i| i.repetition_penalty = 1.0),
            Box::new(|i| i.stop.clear()),
        ];
        for (n, f) in variants.iter().enumerate() {
            let mut i = input();
            f(&mut i);
            assert_ne!(i.hash(), base, "variant {n} did not change the input hash");
        }
        // The readable copy round-trips through JSON to the same hash.
        let back: LlmInput =
            serde_json::from_value(serde_json::to_value(input()).unwrap()).unwrap();
        assert_eq!(back.hash(), base);
    }

    #[test]
    fn output_hash_binds_tokens_and_commitment() {
        let t = [5u32, 6, 7];
        assert_eq!(output_hash(&t, None), output_hash(&t, None));
        assert_ne!(output_hash(&t, None), output_hash(&[5, 6], None));
        assert_ne!(output_hash(&t, None), output_hash(&t, Some(b"c")));
        assert_ne!(output_hash(&t, Some(b"c")), output_hash(&t, Some(b"d")));
        assert_ne!(output_hash(&[], None), output_hash(&[0], None));
    }

    #[test]
    fn reveal_shapes() {
        let i = input();
        let ib = vec![i.to_bytes()];
        let tb = vec![tokens_to_bytes(&[1, 2])];
        let (ih, oh) = reveal_hashes(&ib, &tb, false).unwrap();
        assert_eq!(ih, i.hash());
        assert_eq!(oh, output_hash(&[1, 2], None));
        let with_c = vec![tb[0].clone(), b"c".to_vec()];
        let (_, oh) = reveal_hashes(&ib, &with_c, true).unwrap();
        assert_eq!(oh, output_hash(&[1, 2], Some(b"c")));
        assert!(reveal_hashes(&ib, &tb, true).is_err());
        assert!(reveal_hashes(&[ib[0].clone(), ib[0].clone()], &tb, false).is_err());
        assert!(reveal_hashes(&[], &tb, false).is_err());
    }
}
