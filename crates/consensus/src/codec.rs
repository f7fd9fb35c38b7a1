//! Borsh codecs for everything the engine puts on the wire or in its WAL.
//!
//! Engine types are mapped to small `W*` mirror structs so that the byte format is ours
//! (stable across Malachite upgrades) and every decode is bounded: the input length is
//! checked against a per-message maximum before decoding, borsh rejects trailing bytes,
//! and variable-length fields are checked again after decoding. Nothing here panics on
//! peer bytes.

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use malachitebft_app_channel::app::engine::util::streaming::{
    StreamContent, StreamId, StreamMessage,
};
use malachitebft_app_channel::app::types::sync;
use malachitebft_codec::{Codec, HasEncodedLen};
use malachitebft_core_consensus::{LivenessMsg, ProposedValue, SignedConsensusMsg};
use malachitebft_core_types::{
    ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal, PolkaCertificate, PolkaSignature,
    Round, RoundCertificate, RoundCertificateType, RoundSignature, SignedMessage, ValidatorProof,
    Validity, VoteType,
};
use malachitebft_peer::PeerId;
use malachitebft_signing_ed25519::Signature;

use crate::context::{
    Address, BlockHeight, OpalContext, Proposal, ProposalPart, Value, ValueId, Vote,
};
use crate::MAX_BLOCK_BYTES;

/// Largest chunk of block bytes in one `Data` part.
pub const MAX_PART_DATA: usize = 1024 * 1024;
/// Largest vote extension accepted.
pub const MAX_EXTENSION_BYTES: usize = 64 * 1024;
/// Most signatures in any certificate.
pub const MAX_SIGNATURES: usize = 10_000;
/// Most decided values in one sync response.
pub const MAX_SYNC_VALUES: usize = 256;

const MAX_CONSENSUS_MSG: usize = 2 * MAX_EXTENSION_BYTES;
const MAX_STREAM_MSG: usize = MAX_PART_DATA + 4096;
const MAX_CERT_MSG: usize = 2 * 1024 * 1024;
const MAX_SMALL_MSG: usize = 64 * 1024;
/// Largest sync response (several blocks and their certificates).
pub const MAX_SYNC_RESPONSE: usize = 64 * 1024 * 1024;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message of {len} bytes exceeds the {max}-byte limit for {what}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("invalid {0}")]
    Invalid(&'static str),
}

fn decode<T: BorshDeserialize>(
    bytes: &[u8],
    max: usize,
    what: &'static str,
) -> Result<T, CodecError> {
    if bytes.len() > max {
        return Err(CodecError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    borsh::from_slice(bytes).map_err(|e| CodecError::Malformed {
        what,
        reason: e.to_string(),
    })
}

fn encode<T: BorshSerialize>(t: &T) -> Result<Bytes, CodecError> {
    borsh::to_vec(t)
        .map(Bytes::from)
        .map_err(|e| CodecError::Malformed {
            what: "encode",
            reason: e.to_string(),
        })
}

fn check(cond: bool, what: &'static str) -> Result<(), CodecError> {
    if cond {
        Ok(())
    } else {
        Err(CodecError::Invalid(what))
    }
}

// ---------------------------------------------------------------- wire mirrors

fn w_round(r: Round) -> Option<u32> {
    r.as_u32()
}
fn round(r: Option<u32>) -> Round {
    Round::from(r)
}
fn w_nil(v: &NilOrVal<ValueId>) -> Option<[u8; 32]> {
    match v {
        NilOrVal::Nil => None,
        NilOrVal::Val(id) => Some(id.0),
    }
}
fn nil(v: Option<[u8; 32]>) -> NilOrVal<ValueId> {
    match v {
        None => NilOrVal::Nil,
        Some(id) => NilOrVal::Val(ValueId(id)),
    }
}
fn w_vote_type(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    }
}
fn vote_type(b: u8) -> Result<VoteType, CodecError> {
    match b {
        0 => Ok(VoteType::Prevote),
        1 => Ok(VoteType::Precommit),
        _ => Err(CodecError::Invalid("vote type")),
    }
}
fn sig(b: [u8; 64]) -> Signature {
    Signature::from_bytes(b)
}

#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
pub struct WExt {
    pub data: Vec<u8>,
    pub sig: [u8; 64],
}

impl WExt {
    fn from_engine(e: &SignedMessage<OpalContext, Vec<u8>>) -> Self {
        WExt {
            data: e.message.clone(),
            sig: e.signature.to_bytes(),
        }
    }
    fn into_engine(self) -> Result<SignedMessage<OpalContext, Vec<u8>>, CodecError> {
        check(
            self.data.len() <= MAX_EXTENSION_BYTES,
            "vote extension size",
        )?;
        Ok(SignedMessage::new(self.data, sig(self.sig)))
    }
}

#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
pub struct WVote {
    pub vote_type: u8,
    pub height: u64,
    pub round: Option<u32>,
    pub value: Option<[u8; 32]>,
    pub validator: [u8; 32],
    pub extension: Option<WExt>,
}

#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
pub struct WSignedVote {
    pub vote: WVote,
    pub sig: [u8; 64],
}

impl WSignedVote {
    pub fn from_engine(v: &SignedMessage<OpalContext, Vote>) -> Self {
        let m = &v.message;
        WSignedVote {
            vote: WVote {
                vote_type: w_vote_type(m.vote_type),
                height: m.height.0,
                round: w_round(m.round),
                value: w_nil(&m.value),
                validator: m.validator.0,
                extension: m.extension.as_ref().map(WExt::from_engine),
            },
            sig: v.signature.to_bytes(),
        }
    }
    fn into_engine(self) -> Result<SignedMessage<OpalContext, Vote>, CodecError> {
        let v = self.vote;
        let vote = Vote {
            vote_type: vote_type(v.vote_type)?,
            height: BlockHeight(v.height),
            round: round(v.round),
            value: nil(v.value),
            validator: Address(v.validator),
            extension: v.extension.map(WExt::into_engine).transpose()?,
        };
        Ok(SignedMessage::new(vote, sig(self.sig)))
    }
}

#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
pub struct WSignedProposal {
    pub height: u64,
    pub round: Option<u32>,
    pub value: [u8; 32],
    pub pol_round: Option<u32>,
    pub proposer: [u8; 32],
    pub sig: [u8; 64],
}

impl WSignedProposal {
    pub fn from_engine(p: &SignedMessage<OpalContext, Proposal>) -> Self {
        let m = &p.message;
        WSignedProposal {
            height: m.height.0,
            round: w_round(m.round),
            value: m.value.id.0,
            pol_round: w_round(m.pol_round),
            proposer: m.proposer.0,
            sig: p.signature.to_bytes(),
        }
    }
    fn into_engine(self) -> SignedMessage<OpalContext, Proposal> {
        SignedMessage::new(
            Proposal {
                height: BlockHeight(self.height),
                round: round(self.round),
                value: Value {
                    id: ValueId(self.value),
                },
                pol_round: round(self.pol_round),
                proposer: Address(self.proposer),
            },
            sig(self.sig),
        )
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
enum WConsensusMsg {
    Vote(WSignedVote),
    Proposal(WSignedProposal),
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WPolka {
    height: u64,
    round: Option<u32>,
    value_id: [u8; 32],
    sigs: Vec<([u8; 32], [u8; 64])>,
}

impl WPolka {
    fn from_engine(c: &PolkaCertificate<OpalContext>) -> Self {
        WPolka {
            height: c.height.0,
            round: w_round(c.round),
            value_id: c.value_id.0,
            sigs: c
                .polka_signatures
                .iter()
                .map(|s| (s.address.0, s.signature.to_bytes()))
                .collect(),
        }
    }
    fn into_engine(self) -> Result<PolkaCertificate<OpalContext>, CodecError> {
        check(self.sigs.len() <= MAX_SIGNATURES, "polka signature count")?;
        Ok(PolkaCertificate {
            height: BlockHeight(self.height),
            round: round(self.round),
            value_id: ValueId(self.value_id),
            polka_signatures: self
                .sigs
                .into_iter()
                .map(|(a, s)| PolkaSignature::new(Address(a), sig(s)))
                .collect(),
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WRoundSig {
    vote_type: u8,
    value: Option<[u8; 32]>,
    address: [u8; 32],
    sig: [u8; 64],
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WRoundCert {
    height: u64,
    round: Option<u32>,
    precommit: bool,
    sigs: Vec<WRoundSig>,
}

impl WRoundCert {
    fn from_engine(c: &RoundCertificate<OpalContext>) -> Self {
        WRoundCert {
            height: c.height.0,
            round: w_round(c.round),
            precommit: c.cert_type == RoundCertificateType::Precommit,
            sigs: c
                .round_signatures
                .iter()
                .map(|s| WRoundSig {
                    vote_type: w_vote_type(s.vote_type),
                    value: w_nil(&s.value_id),
                    address: s.address.0,
                    sig: s.signature.to_bytes(),
                })
                .collect(),
        }
    }
    fn into_engine(self) -> Result<RoundCertificate<OpalContext>, CodecError> {
        check(self.sigs.len() <= MAX_SIGNATURES, "round signature count")?;
        let mut sigs = Vec::with_capacity(self.sigs.len());
        for s in self.sigs {
            sigs.push(RoundSignature::new(
                vote_type(s.vote_type)?,
                nil(s.value),
                Address(s.address),
                sig(s.sig),
            ));
        }
        Ok(RoundCertificate {
            height: BlockHeight(self.height),
            round: round(self.round),
            cert_type: if self.precommit {
                RoundCertificateType::Precommit
            } else {
                RoundCertificateType::Skip
            },
            round_signatures: sigs,
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
enum WLiveness {
    Vote(WSignedVote),
    Polka(WPolka),
    SkipRound(WRoundCert),
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WStreamMsg {
    stream_id: Vec<u8>,
    sequence: u64,
    /// `None` is the stream's `Fin` marker.
    content: Option<ProposalPart>,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WProof {
    public_key: Vec<u8>,
    peer_id: Vec<u8>,
    sig: [u8; 64],
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WProposedValue {
    height: u64,
    round: Option<u32>,
    valid_round: Option<u32>,
    proposer: [u8; 32],
    value: [u8; 32],
    valid: bool,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WStatus {
    peer_id: Vec<u8>,
    tip_height: u64,
    history_min_height: u64,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WRequest {
    start: u64,
    end: u64,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WExtSig {
    address: [u8; 32],
    sig: [u8; 64],
    extension: Option<WExt>,
}

/// Engine-format commit certificate (with optional vote extensions).
#[derive(BorshSerialize, BorshDeserialize)]
pub(crate) struct WExtCert {
    height: u64,
    round: Option<u32>,
    value_id: [u8; 32],
    sigs: Vec<WExtSig>,
}

impl WExtCert {
    fn from_engine(c: &ExtendedCommitCertificate<OpalContext>) -> Self {
        WExtCert {
            height: c.height.0,
            round: w_round(c.round),
            value_id: c.value_id.0,
            sigs: c
                .commit_signatures
                .iter()
                .map(|s| WExtSig {
                    address: s.address.0,
                    sig: s.signature.to_bytes(),
                    extension: s.extension.as_ref().map(WExt::from_engine),
                })
                .collect(),
        }
    }
    fn into_engine(self) -> Result<ExtendedCommitCertificate<OpalContext>, CodecError> {
        check(self.sigs.len() <= MAX_SIGNATURES, "commit signature count")?;
        let mut sigs = Vec::with_capacity(self.sigs.len());
        for s in self.sigs {
            sigs.push(ExtendedCommitSignature::new(
                Address(s.address),
                sig(s.sig),
                s.extension.map(WExt::into_engine).transpose()?,
            ));
        }
        Ok(ExtendedCommitCertificate {
            height: BlockHeight(self.height),
            round: round(self.round),
            value_id: ValueId(self.value_id),
            commit_signatures: sigs,
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WRawDecided {
    value_bytes: Vec<u8>,
    cert: WExtCert,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WResponse {
    start_height: u64,
    values: Vec<WRawDecided>,
}

fn check_part(p: &ProposalPart) -> Result<(), CodecError> {
    match p {
        ProposalPart::Init(i) => check(i.block_len as usize <= MAX_BLOCK_BYTES, "block length"),
        ProposalPart::Data(d) => check(d.len() <= MAX_PART_DATA, "part size"),
        ProposalPart::Fin(_) => Ok(()),
    }
}

// ---------------------------------------------------------------- the codec

/// The single codec used for the network, value sync and the WAL.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpalCodec;

impl Codec<ProposalPart> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ProposalPart, CodecError> {
        let p: ProposalPart = decode(&bytes, MAX_STREAM_MSG, "proposal part")?;
        check_part(&p)?;
        Ok(p)
    }
    fn encode(&self, msg: &ProposalPart) -> Result<Bytes, CodecError> {
        encode(msg)
    }
}

impl Codec<SignedConsensusMsg<OpalContext>> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<SignedConsensusMsg<OpalContext>, CodecError> {
        match decode::<WConsensusMsg>(&bytes, MAX_CONSENSUS_MSG, "consensus message")? {
            WConsensusMsg::Vote(v) => Ok(SignedConsensusMsg::Vote(v.into_engine()?)),
            WConsensusMsg::Proposal(p) => Ok(SignedConsensusMsg::Proposal(p.into_engine())),
        }
    }
    fn encode(&self, msg: &SignedConsensusMsg<OpalContext>) -> Result<Bytes, CodecError> {
        encode(&match msg {
            SignedConsensusMsg::Vote(v) => WConsensusMsg::Vote(WSignedVote::from_engine(v)),
            SignedConsensusMsg::Proposal(p) => {
                WConsensusMsg::Proposal(WSignedProposal::from_engine(p))
            }
        })
    }
}

impl Codec<LivenessMsg<OpalContext>> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<LivenessMsg<OpalContext>, CodecError> {
        match decode::<WLiveness>(&bytes, MAX_CERT_MSG, "liveness message")? {
            WLiveness::Vote(v) => Ok(LivenessMsg::Vote(v.into_engine()?)),
            WLiveness::Polka(p) => Ok(LivenessMsg::PolkaCertificate(p.into_engine()?)),
            WLiveness::SkipRound(r) => Ok(LivenessMsg::SkipRoundCertificate(r.into_engine()?)),
        }
    }
    fn encode(&self, msg: &LivenessMsg<OpalContext>) -> Result<Bytes, CodecError> {
        encode(&match msg {
            LivenessMsg::Vote(v) => WLiveness::Vote(WSignedVote::from_engine(v)),
            LivenessMsg::PolkaCertificate(p) => WLiveness::Polka(WPolka::from_engine(p)),
            LivenessMsg::SkipRoundCertificate(r) => {
                WLiveness::SkipRound(WRoundCert::from_engine(r))
            }
        })
    }
}

impl Codec<StreamMessage<ProposalPart>> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<StreamMessage<ProposalPart>, CodecError> {
        let w: WStreamMsg = decode(&bytes, MAX_STREAM_MSG, "stream message")?;
        check(w.stream_id.len() <= 64, "stream id length")?;
        let content = match w.content {
            Some(p) => {
                check_part(&p)?;
                StreamContent::Data(p)
            }
            None => StreamContent::Fin,
        };
        Ok(StreamMessage::new(
            StreamId::new(Bytes::from(w.stream_id)),
            w.sequence,
            content,
        ))
    }
    fn encode(&self, msg: &StreamMessage<ProposalPart>) -> Result<Bytes, CodecError> {
        encode(&WStreamMsg {
            stream_id: msg.stream_id.to_bytes().to_vec(),
            sequence: msg.sequence,
            content: msg.content.as_data().cloned(),
        })
    }
}

impl Codec<ValidatorProof<OpalContext>> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<OpalContext>, CodecError> {
        let w: WProof = decode(&bytes, MAX_SMALL_MSG, "validator proof")?;
        check(w.public_key.len() <= 64, "proof public key length")?;
        check(w.peer_id.len() <= 128, "proof peer id length")?;
        Ok(ValidatorProof::new(w.public_key, w.peer_id, sig(w.sig)))
    }
    fn encode(&self, msg: &ValidatorProof<OpalContext>) -> Result<Bytes, CodecError> {
        encode(&WProof {
            public_key: msg.public_key.clone(),
            peer_id: msg.peer_id.clone(),
            sig: msg.signature.to_bytes(),
        })
    }
}

impl Codec<PolkaCertificate<OpalContext>> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<PolkaCertificate<OpalContext>, CodecError> {
        decode::<WPolka>(&bytes, MAX_CERT_MSG, "polka certificate")?.into_engine()
    }
    fn encode(&self, msg: &PolkaCertificate<OpalContext>) -> Result<Bytes, CodecError> {
        encode(&WPolka::from_engine(msg))
    }
}

impl Codec<ProposedValue<OpalContext>> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ProposedValue<OpalContext>, CodecError> {
        let w: WProposedValue = decode(&bytes, MAX_SMALL_MSG, "proposed value")?;
        Ok(ProposedValue {
            height: BlockHeight(w.height),
            round: round(w.round),
            valid_round: round(w.valid_round),
            proposer: Address(w.proposer),
            value: Value {
                id: ValueId(w.value),
            },
            validity: Validity::from_bool(w.valid),
        })
    }
    fn encode(&self, msg: &ProposedValue<OpalContext>) -> Result<Bytes, CodecError> {
        encode(&WProposedValue {
            height: msg.height.0,
            round: w_round(msg.round),
            valid_round: w_round(msg.valid_round),
            proposer: msg.proposer.0,
            value: msg.value.id.0,
            valid: msg.validity.is_valid(),
        })
    }
}

impl Codec<sync::Status<OpalContext>> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<sync::Status<OpalContext>, CodecError> {
        let w: WStatus = decode(&bytes, MAX_SMALL_MSG, "sync status")?;
        check(w.peer_id.len() <= 128, "status peer id length")?;
        let peer_id = PeerId::from_bytes(&w.peer_id).map_err(|e| CodecError::Malformed {
            what: "peer id",
            reason: e.to_string(),
        })?;
        Ok(sync::Status {
            peer_id,
            tip_height: BlockHeight(w.tip_height),
            history_min_height: BlockHeight(w.history_min_height),
        })
    }
    fn encode(&self, msg: &sync::Status<OpalContext>) -> Result<Bytes, CodecError> {
        encode(&WStatus {
            peer_id: msg.peer_id.to_bytes(),
            tip_height: msg.tip_height.0,
            history_min_height: msg.history_min_height.0,
        })
    }
}

impl Codec<sync::Request<OpalContext>> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<sync::Request<OpalContext>, CodecError> {
        let w: WRequest = decode(&bytes, MAX_SMALL_MSG, "sync request")?;
        Ok(sync::Request::ValueRequest(
            malachitebft_sync::ValueRequest::new(BlockHeight(w.start)..=BlockHeight(w.end)),
        ))
    }
    fn encode(&self, msg: &sync::Request<OpalContext>) -> Result<Bytes, CodecError> {
        let sync::Request::ValueRequest(r) = msg;
        encode(&WRequest {
            start: r.range.start().0,
            end: r.range.end().0,
        })
    }
}

fn response_to_wire(msg: &sync::Response<OpalContext>) -> WResponse {
    let sync::Response::ValueResponse(r) = msg;
    WResponse {
        start_height: r.start_height.0,
        values: r
            .values
            .iter()
            .map(|v| WRawDecided {
                value_bytes: v.value_bytes.to_vec(),
                cert: WExtCert::from_engine(&v.certificate),
            })
            .collect(),
    }
}

impl Codec<sync::Response<OpalContext>> for OpalCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<sync::Response<OpalContext>, CodecError> {
        let w: WResponse = decode(&bytes, MAX_SYNC_RESPONSE, "sync response")?;
        check(
            w.values.len() <= MAX_SYNC_VALUES,
            "sync response value count",
        )?;
        let mut values = Vec::with_capacity(w.values.len());
        for v in w.values {
            check(v.value_bytes.len() <= MAX_BLOCK_BYTES, "synced block size")?;
            values.push(sync::RawDecidedValue::new(
                Bytes::from(v.value_bytes),
                v.cert.into_engine()?,
            ));
        }
        Ok(sync::Response::ValueResponse(
            malachitebft_sync::ValueResponse::new(BlockHeight(w.start_height), values),
        ))
    }
    fn encode(&self, msg: &sync::Response<OpalContext>) -> Result<Bytes, CodecError> {
        encode(&response_to_wire(msg))
    }
}

impl HasEncodedLen<sync::Response<OpalContext>> for OpalCodec {
    fn encoded_len(&self, msg: &sync::Response<OpalContext>) -> Result<usize, CodecError> {
        borsh::object_length(&response_to_wire(msg)).map_err(|e| CodecError::Malformed {
            what: "encoded length",
            reason: e.to_string(),
        })
    }
}

/// Misbehaviour evidence handed to [`crate::BlockExecutor::report_evidence`] as borsh bytes:
/// pairs of conflicting signed votes / proposals by one validator at one height and round.
/// Signatures cover [`crate::signing::vote_sign_bytes`] / `proposal_sign_bytes`.
#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
pub struct Evidence {
    pub double_votes: Vec<(WSignedVote, WSignedVote)>,
    pub double_proposals: Vec<(WSignedProposal, WSignedProposal)>,
}

impl Evidence {
    /// What the core gathered at a height, in the stable form.
    pub fn from_engine(e: &malachitebft_core_consensus::MisbehaviorEvidence<OpalContext>) -> Self {
        Self {
            double_votes: e
                .votes
                .iter()
                .flat_map(|(_, pairs)| pairs.iter())
                .map(|(a, b)| (WSignedVote::from_engine(a), WSignedVote::from_engine(b)))
                .collect(),
            double_proposals: e
                .proposals
                .iter()
                .flat_map(|(_, pairs)| pairs.iter())
                .map(|(a, b)| {
                    (
                        WSignedProposal::from_engine(a),
                        WSignedProposal::from_engine(b),
                    )
                })
                .collect(),
        }
    }

    /// The borsh bytes [`crate::BlockExecutor::report_evidence`] receives; `None` when the
    /// core saw no misbehaviour.
    pub fn encode_engine(
        e: &malachitebft_core_consensus::MisbehaviorEvidence<OpalContext>,
    ) -> Option<Vec<u8>> {
        if e.is_empty() {
            return None;
        }
        borsh::to_vec(&Self::from_engine(e)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::PartInit;

    fn vote() -> SignedMessage<OpalContext, Vote> {
        SignedMessage::new(
            Vote {
                vote_type: VoteType::Precommit,
                height: BlockHeight(7),
                round: Round::new(2),
                value: NilOrVal::Val(ValueId([3; 32])),
                validator: Address([4; 32]),
                extension: Some(SignedMessage::new(vec![1, 2, 3], sig([5; 64]))),
            },
            sig([6; 64]),
        )
    }

    #[test]
    fn consensus_msg_roundtrip() {
        let msg = SignedConsensusMsg::Vote(vote());
        let bytes = Codec::<SignedConsensusMsg<OpalContext>>::encode(&OpalCodec, &msg).unwrap();
        let back: SignedConsensusMsg<OpalContext> = OpalCodec.decode(bytes).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn stream_msg_roundtrip_and_fin() {
        let part = ProposalPart::Init(PartInit {
            height: 1,
            round: 0,
            pol_round: Some(3),
            proposer: Address([1; 32]),
            block_len: 10,
        });
        for content in [StreamContent::Data(part), StreamContent::Fin] {
            let m = StreamMessage::new(StreamId::new(Bytes::from_static(b"id")), 4, content);
            let bytes = Codec::<StreamMessage<ProposalPart>>::encode(&OpalCodec, &m).unwrap();
            let back: StreamMessage<ProposalPart> = OpalCodec.decode(bytes).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn rejects_oversized_and_trailing_bytes() {
        let big = Bytes::from(vec![0u8; MAX_STREAM_MSG + 1]);
        assert!(matches!(
            Codec::<StreamMessage<ProposalPart>>::decode(&OpalCodec, big),
            Err(CodecError::TooLarge { .. })
        ));
        let msg = SignedConsensusMsg::Vote(vote());
        let mut bytes = Codec::<SignedConsensusMsg<OpalContext>>::encode(&OpalCodec, &msg)
            .unwrap()
            .to_vec();
        bytes.push(0);
        assert!(
            Codec::<SignedConsensusMsg<OpalContext>>::decode(&OpalCodec, bytes.into()).is_err()
        );
        // A data part larger than allowed is refused even if the message fits.
        let huge_init = ProposalPart::Init(PartInit {
            height: 1,
            round: 0,
            pol_round: None,
            proposer: Address([1; 32]),
            block_len: (MAX_BLOCK_BYTES + 1) as u32,
        });
        let bytes = Codec::<ProposalPart>::encode(&OpalCodec, &huge_init).unwrap();
        assert!(Codec::<ProposalPart>::decode(&OpalCodec, bytes).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic pseudo-random inputs of many lengths, for every decoder.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in 0..600usize {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            let b = Bytes::from(buf);
            let c = OpalCodec;
            let _ = Codec::<ProposalPart>::decode(&c, b.clone());
            let _ = Codec::<SignedConsensusMsg<OpalContext>>::decode(&c, b.clone());
            let _ = Codec::<LivenessMsg<OpalContext>>::decode(&c, b.clone());
            let _ = Codec::<StreamMessage<ProposalPart>>::decode(&c, b.clone());
            let _ = Codec::<ValidatorProof<OpalContext>>::decode(&c, b.clone());
            let _ = Codec::<PolkaCertificate<OpalContext>>::decode(&c, b.clone());
            let _ = Codec::<ProposedValue<OpalContext>>::decode(&c, b.clone());
            let _ = Codec::<sync::Status<OpalContext>>::decode(&c, b.clone());
            let _ = Codec::<sync::Request<OpalContext>>::decode(&c, b.clone());
            let _ = Codec::<sync::Response<OpalContext>>::decode(&c, b);
        }
    }

    #[test]
    fn huge_length_prefix_is_rejected_without_allocating() {
        // A Vec length prefix of u32::MAX inside a tiny message.
        let mut bytes = vec![0u8; 8]; // start_height
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Codec::<sync::Response<OpalContext>>::decode(&OpalCodec, bytes.into()).is_err());
    }
}
