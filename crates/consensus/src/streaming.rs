//! Splitting a block into proposal parts, and reassembling parts from peers.
//!
//! Stream layout: `seq 0: Init`, `seq 1..=k: Data`, `seq k+1: Fin(signature)`, then the
//! engine-level end-of-stream marker at `seq k+2`. Parts may arrive out of order. The
//! reassembly buffer is bounded (streams, parts per stream, bytes per stream) and evicts
//! the oldest stream when full, so a peer cannot make it grow without limit.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use malachitebft_app_channel::app::engine::util::streaming::{
    StreamContent, StreamId, StreamMessage,
};
use malachitebft_peer::PeerId;

use crate::context::{PartInit, ProposalPart};
use crate::MAX_BLOCK_BYTES;

/// Bytes of block per `Data` part we send.
pub const SEND_CHUNK: usize = 256 * 1024;
const MAX_STREAMS: usize = 64;
const MAX_PARTS_PER_STREAM: u64 = 4096;
const MAX_STREAM_BYTES: usize = MAX_BLOCK_BYTES + 64 * 1024;

/// Build the stream messages for a block.
pub fn split(
    init: PartInit,
    block: &[u8],
    signature: [u8; 64],
    nonce: u64,
) -> Vec<StreamMessage<ProposalPart>> {
    let mut id = Vec::with_capacity(20);
    id.extend_from_slice(&init.height.to_be_bytes());
    id.extend_from_slice(&init.round.to_be_bytes());
    id.extend_from_slice(&nonce.to_be_bytes());
    let stream_id = StreamId::new(Bytes::from(id));

    let mut msgs = Vec::with_capacity(block.len() / SEND_CHUNK + 4);
    let mut seq = 0u64;
    let mut push = |content: StreamContent<ProposalPart>| {
        msgs.push(StreamMessage::new(stream_id.clone(), seq, content));
        seq += 1;
    };
    push(StreamContent::Data(ProposalPart::Init(init)));
    for chunk in block.chunks(SEND_CHUNK) {
        push(StreamContent::Data(ProposalPart::Data(chunk.to_vec())));
    }
    push(StreamContent::Data(ProposalPart::Fin(signature)));
    push(StreamContent::Fin);
    msgs
}

/// A block whose parts have all arrived (not yet verified).
#[derive(Debug)]
pub struct AssembledBlock {
    pub init: PartInit,
    pub block: Vec<u8>,
    pub signature: [u8; 64],
}

struct Partial {
    parts: BTreeMap<u64, ProposalPart>,
    end_seq: Option<u64>,
    bytes: usize,
    created: Instant,
}

/// Why a stream was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamReject {
    TooLarge,
    Malformed(&'static str),
}

#[derive(Default)]
pub struct Reassembler {
    streams: BTreeMap<(Vec<u8>, Vec<u8>), Partial>,
}

impl Reassembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one message; returns a block once its stream is complete.
    pub fn add(
        &mut self,
        publisher: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<AssembledBlock>, StreamReject> {
        let key = (publisher.to_bytes(), msg.stream_id.to_bytes().to_vec());
        if msg.sequence > MAX_PARTS_PER_STREAM {
            self.streams.remove(&key);
            return Err(StreamReject::TooLarge);
        }
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            // Evict the oldest stream.
            if let Some(oldest) = self
                .streams
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| k.clone())
            {
                self.streams.remove(&oldest);
            }
        }
        let entry = self.streams.entry(key.clone()).or_insert_with(|| Partial {
            parts: BTreeMap::new(),
            end_seq: None,
            bytes: 0,
            created: Instant::now(),
        });
        match msg.content {
            StreamContent::Fin => entry.end_seq = Some(msg.sequence),
            StreamContent::Data(part) => {
                let size = match &part {
                    ProposalPart::Data(d) => d.len(),
                    _ => 64,
                };
                if entry.parts.insert(msg.sequence, part).is_none() {
                    entry.bytes = entry.bytes.saturating_add(size);
                }
            }
        }
        if entry.bytes > MAX_STREAM_BYTES {
            self.streams.remove(&key);
            return Err(StreamReject::TooLarge);
        }
        let complete = match entry.end_seq {
            Some(end) => entry.parts.len() as u64 == end && entry.parts.keys().all(|s| *s < end),
            None => false,
        };
        if !complete {
            return Ok(None);
        }
        let Some(partial) = self.streams.remove(&key) else {
            return Ok(None);
        };
        assemble(partial).map(Some)
    }

    /// Forget streams for heights below `height` (their blocks can no longer matter).
    pub fn prune_below(&mut self, height: u64) {
        self.streams.retain(|_, p| match p.parts.get(&0) {
            Some(ProposalPart::Init(init)) => init.height >= height,
            _ => true,
        });
    }
}

fn assemble(partial: Partial) -> Result<AssembledBlock, StreamReject> {
    let n = partial.parts.len();
    let mut iter = partial.parts.into_values();
    let Some(ProposalPart::Init(init)) = iter.next() else {
        return Err(StreamReject::Malformed("stream does not start with Init"));
    };
    if init.block_len as usize > MAX_BLOCK_BYTES {
        return Err(StreamReject::TooLarge);
    }
    let mut block = Vec::with_capacity(init.block_len as usize);
    let mut signature = None;
    for (i, part) in iter.enumerate() {
        match part {
            ProposalPart::Data(d) if signature.is_none() => {
                if block.len() + d.len() > init.block_len as usize {
                    return Err(StreamReject::Malformed("more data than announced"));
                }
                block.extend_from_slice(&d);
            }
            ProposalPart::Fin(sig) if i + 2 == n => signature = Some(sig),
            _ => return Err(StreamReject::Malformed("parts out of place")),
        }
    }
    let Some(signature) = signature else {
        return Err(StreamReject::Malformed("stream has no Fin part"));
    };
    if block.len() != init.block_len as usize {
        return Err(StreamReject::Malformed("less data than announced"));
    }
    Ok(AssembledBlock {
        init,
        block,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Address;

    fn init(len: usize) -> PartInit {
        PartInit {
            height: 3,
            round: 1,
            pol_round: None,
            proposer: Address([7; 32]),
            block_len: len as u32,
        }
    }

    fn peer() -> PeerId {
        let kp =
            malachitebft_app_channel::app::types::Keypair::ed25519_from_bytes([1u8; 32]).unwrap();
        PeerId::from_bytes(&kp.public().to_peer_id().to_bytes()).unwrap()
    }

    #[test]
    fn roundtrip_out_of_order() {
        let block: Vec<u8> = (0..(SEND_CHUNK * 2 + 17)).map(|i| i as u8).collect();
        let mut msgs = split(init(block.len()), &block, [9; 64], 42);
        msgs.reverse();
        let peer = peer();
        let mut r = Reassembler::new();
        let mut out = None;
        for m in msgs {
            if let Some(b) = r.add(peer, m).unwrap() {
                out = Some(b);
            }
        }
        let b = out.unwrap();
        assert_eq!(b.block, block);
        assert_eq!(b.signature, [9; 64]);
        assert_eq!(b.init, init(block.len()));
    }

    #[test]
    fn rejects_length_mismatch() {
        let block = vec![1u8; 10];
        let msgs = split(init(11), &block, [0; 64], 1);
        let peer = peer();
        let mut r = Reassembler::new();
        let mut res = Ok(None);
        for m in msgs {
            res = r.add(peer, m);
        }
        assert!(matches!(res, Err(StreamReject::Malformed(_))));
    }
}
