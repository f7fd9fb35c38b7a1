//! Every domain-separation string Opal hashes or signs under, in one registry.
//!
//! Design: a hash or signature made under one of these strings can never be confused with one
//! made under another, and the bytes are frozen: changing one changes every id, signature and
//! proof made under it (and breaks the committed fixtures). So each string is declared here
//! once, every crate refers to the constant, and `tests/registry.rs` pins the full list: a new
//! entry is added there too, an edited one fails the test. No dependencies, so every crate
//! (types, consensus, quant, zk, ...) can link it.
//!
//! [`derive`] holds BLAKE3 `derive_key` contexts; [`label`] holds labels written inside a
//! hashed or signed message (a vote's sign bytes, a transcript's protocol name).

/// BLAKE3 `derive_key` contexts (`blake3::derive_key(CONTEXT, bytes)`,
/// `blake3::Hasher::new_derive_key(CONTEXT)`).
pub mod derive {
    /// Transaction id: hash of the whole signed transaction.
    pub const TX_ID: &str = "opal 2026 tx id v1";
    /// What a transaction's signer signs: the transaction body.
    pub const TX_SIGN: &str = "opal 2026 tx sign v1";
    /// Block header hash (the block id).
    pub const BLOCK_HEADER: &str = "opal 2026 block header v1";
    /// Leaves and inner nodes of the transaction Merkle root.
    pub const MERKLE_LEAF: &str = "opal 2026 merkle leaf v1";
    pub const MERKLE_NODE: &str = "opal 2026 merkle node v1";
    /// Address derivation from a public key.
    pub const ADDRESS: &str = "opal 2026 address v1";
    /// Identity of a piece of misbehaviour evidence.
    pub const EVIDENCE: &str = "opal 2026 evidence v1";
    /// What a caller signs: an inference request.
    pub const REQUEST_SIGN: &str = "opal 2026 inference request sign v1";
    /// The request id: hash of the signed request.
    pub const REQUEST_ID: &str = "opal 2026 inference request id v1";
    /// What an inference node signs: a receipt body.
    pub const RECEIPT_SIGN: &str = "opal 2026 receipt sign v1";
    /// The receipt id: hash of the signed receipt.
    pub const RECEIPT_ID: &str = "opal 2026 receipt id v1";
    /// The inputs or outputs of one inference: the list of their tensor hashes.
    pub const TENSOR_LIST: &str = "opal 2026 tensor list v1";
    /// What a caller signs: a standing spend grant (an API key).
    pub const GRANT_SIGN: &str = "opal 2026 spend grant sign v1";
    /// A grant's id: hash of the signed grant.
    pub const GRANT_ID: &str = "opal 2026 spend grant id v1";
    /// The seed that picks which receipts are audited and by whom.
    pub const AUDIT_SEED: &str = "opal 2026 audit seed v1";
    /// One tensor's hash over its canonical bytes.
    pub const TENSOR: &str = "opal/tensor/v1";
    /// An LLM call's input (model, messages, sampling) and its output in each tier.
    pub const LLM_INPUT: &str = "opal 2026 llm input v1";
    pub const LLM_OUTPUT: &str = "opal 2026 llm output v1";
    pub const LLM_OUTPUT_ACTIVATIONS: &str = "opal 2026 llm output activations v1";
    /// The VRF secret derived from a validator's consensus key.
    pub const VRF_KEY: &str = "opal 2026 vrf key v1";
    /// The libp2p identity derived from a validator's consensus key.
    pub const P2P_IDENTITY: &str = "opal-consensus p2p identity v1";
    /// The simulator's validator keys (test networks only).
    pub const SIM_VALIDATOR_KEY: &str = "opal-sim validator key v1";
    /// A canonical quantized model's id.
    pub const QUANT_MODEL: &str = "opal-quant/model/v1";
    /// The zk prover's weight commitment tree and registered-model id, and its Fiat-Shamir
    /// transcript.
    pub const ZK_PCS_LEAF: &str = "opal-zk/pcs/leaf/v1";
    pub const ZK_PCS_NODE: &str = "opal-zk/pcs/node/v1";
    pub const ZK_REGISTERED_MODEL: &str = "opal-zk/registered-model/v1";
    pub const ZK_TRANSCRIPT: &str = "opal-zk/transcript/v1";
}

/// Labels written inside a hashed or signed message.
pub mod label {
    /// Consensus sign bytes (Malachite votes, proposals, vote extensions, proposal parts).
    pub const VOTE: &str = "opal/vote/v1";
    pub const PROPOSAL: &str = "opal/proposal/v1";
    pub const VOTE_EXTENSION: &str = "opal/vote-extension/v1";
    pub const BLOCK_PARTS: &str = "opal/block-parts/v1";
    /// The proposer-selection hash.
    pub const PROPOSER: &str = "opal/proposer/v1";
    /// The block's audit beacon: the VRF input context and its output label.
    pub const AUDIT_BEACON: &str = "opal/audit-beacon/v1";
    pub const AUDIT_BEACON_OUTPUT: &str = "opal/audit-beacon/output/v1";
    /// The prefix of the stand-in output hash of a canonical model that cannot run on its
    /// inputs (followed by the error code).
    pub const REPLAY_FAILED_PREFIX: &str = "opal/replay-failed/";
    /// The zk proof format's protocol name, and the protocol labels its transcripts absorb.
    pub const ZK_PROTOCOL_NAME: &str = "opal-zk/v2";
    pub const ZK_COMMITTED_WITNESS: &str =
        "opal-zk/committed-witness/v2;field=goldilocks^2;hash=blake3;pcs=ligero-rs4-q256;limbs=8;file-hash";
    pub const ZK_REGISTRATION_WEIGHT_RANGE: &str =
        "opal-zk/registration-weight-range/v2;field=goldilocks^2;hash=blake3;pcs=ligero-rs4-q256";
    pub const ZK_MLP_COMMITTED_WEIGHTS: &str =
        "opal-zk/mlp-committed-weights/v1;field=goldilocks^2;hash=blake3;pcs=ligero-rs4-q256";
    pub const ZK_MLP_CLEAR_ACTIVATIONS: &str =
        "opal-zk/mlp-clear-activations/v1;field=goldilocks^2;hash=blake3";
}

/// Every registered string with its name, for the pinning test and for tools that list them.
pub const ALL: &[(&str, &str)] = &[
    ("derive::TX_ID", derive::TX_ID),
    ("derive::TX_SIGN", derive::TX_SIGN),
    ("derive::BLOCK_HEADER", derive::BLOCK_HEADER),
    ("derive::MERKLE_LEAF", derive::MERKLE_LEAF),
    ("derive::MERKLE_NODE", derive::MERKLE_NODE),
    ("derive::ADDRESS", derive::ADDRESS),
    ("derive::EVIDENCE", derive::EVIDENCE),
    ("derive::REQUEST_SIGN", derive::REQUEST_SIGN),
    ("derive::REQUEST_ID", derive::REQUEST_ID),
    ("derive::RECEIPT_SIGN", derive::RECEIPT_SIGN),
    ("derive::RECEIPT_ID", derive::RECEIPT_ID),
    ("derive::TENSOR_LIST", derive::TENSOR_LIST),
    ("derive::GRANT_SIGN", derive::GRANT_SIGN),
    ("derive::GRANT_ID", derive::GRANT_ID),
    ("derive::AUDIT_SEED", derive::AUDIT_SEED),
    ("derive::TENSOR", derive::TENSOR),
    ("derive::LLM_INPUT", derive::LLM_INPUT),
    ("derive::LLM_OUTPUT", derive::LLM_OUTPUT),
    (
        "derive::LLM_OUTPUT_ACTIVATIONS",
        derive::LLM_OUTPUT_ACTIVATIONS,
    ),
    ("derive::VRF_KEY", derive::VRF_KEY),
    ("derive::P2P_IDENTITY", derive::P2P_IDENTITY),
    ("derive::SIM_VALIDATOR_KEY", derive::SIM_VALIDATOR_KEY),
    ("derive::QUANT_MODEL", derive::QUANT_MODEL),
    ("derive::ZK_PCS_LEAF", derive::ZK_PCS_LEAF),
    ("derive::ZK_PCS_NODE", derive::ZK_PCS_NODE),
    ("derive::ZK_REGISTERED_MODEL", derive::ZK_REGISTERED_MODEL),
    ("derive::ZK_TRANSCRIPT", derive::ZK_TRANSCRIPT),
    ("label::VOTE", label::VOTE),
    ("label::PROPOSAL", label::PROPOSAL),
    ("label::VOTE_EXTENSION", label::VOTE_EXTENSION),
    ("label::BLOCK_PARTS", label::BLOCK_PARTS),
    ("label::PROPOSER", label::PROPOSER),
    ("label::AUDIT_BEACON", label::AUDIT_BEACON),
    ("label::AUDIT_BEACON_OUTPUT", label::AUDIT_BEACON_OUTPUT),
    ("label::REPLAY_FAILED_PREFIX", label::REPLAY_FAILED_PREFIX),
    ("label::ZK_PROTOCOL_NAME", label::ZK_PROTOCOL_NAME),
    ("label::ZK_COMMITTED_WITNESS", label::ZK_COMMITTED_WITNESS),
    (
        "label::ZK_REGISTRATION_WEIGHT_RANGE",
        label::ZK_REGISTRATION_WEIGHT_RANGE,
    ),
    (
        "label::ZK_MLP_COMMITTED_WEIGHTS",
        label::ZK_MLP_COMMITTED_WEIGHTS,
    ),
    (
        "label::ZK_MLP_CLEAR_ACTIVATIONS",
        label::ZK_MLP_CLEAR_ACTIVATIONS,
    ),
];
