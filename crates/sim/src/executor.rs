//! The application each simulated validator runs: an in-memory [`BlockExecutor`] whose blocks
//! form a hash chain, so that a fork would also show up as a block that does not extend the
//! committed chain. It is the node's "disk": it survives a simulated crash.

use borsh::{BorshDeserialize, BorshSerialize};
use opal_consensus::time::{check_monotonic, check_timely, proposal_time, TimeBounds};
use opal_consensus::{value_id, BlockExecutor, CommitCertificate, Hash32, Height, Validator};

/// A simulated block: enough to make blocks distinct and chained.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SimBlock {
    pub height: u64,
    /// `value_id` of the block at `height - 1` (zero for the first block).
    pub parent: Hash32,
    pub proposer: [u8; 32],
    pub round: u32,
    /// Distinguishes blocks a (Byzantine) proposer builds for one slot.
    pub payload: u64,
    /// The proposer's clock when it built the block (simulated ms), as in Opal's header.
    pub time_ms: u64,
}

/// In-memory executor: committed blocks with their certificates, and reported evidence.
pub struct MemExecutor {
    chain_id: String,
    validators: Vec<Validator>,
    blocks: Vec<(Vec<u8>, CommitCertificate)>,
    /// Evidence reports from the consensus layer (borsh of `opal_consensus::codec::Evidence`).
    pub evidence: Vec<Vec<u8>>,
    built: u64,
    /// The validator's clock (simulated ms), set by the world before each call.
    pub now_ms: u64,
    /// How far ahead of the true time this validator writes block times (a Byzantine
    /// proposer pushing time forward; 0 for honest ones).
    pub clock_ahead_ms: u64,
    /// The bounds of `opal_consensus::time::check_timely` for fresh proposals.
    pub time_bounds: TimeBounds,
}

impl MemExecutor {
    pub fn new(chain_id: &str, validators: Vec<Validator>) -> Self {
        Self {
            chain_id: chain_id.to_string(),
            validators,
            blocks: Vec::new(),
            evidence: Vec::new(),
            built: 0,
            now_ms: 0,
            clock_ahead_ms: 0,
            time_bounds: TimeBounds::default(),
        }
    }

    /// `value_id` of the last committed block (zero before the first).
    pub fn tip_id(&self) -> Hash32 {
        self.blocks
            .last()
            .map(|(b, _)| value_id(b))
            .unwrap_or([0; 32])
    }

    /// Time written in the committed block at `height` (0 at genesis).
    pub fn time_at(&self, height: Height) -> u64 {
        height
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.blocks.get(i))
            .and_then(|(b, _)| borsh::from_slice::<SimBlock>(b).ok())
            .map(|b| b.time_ms)
            .unwrap_or(0)
    }

    /// `value_id` of the committed block at `height`.
    pub fn id_at(&self, height: Height) -> Option<Hash32> {
        let i = usize::try_from(height.checked_sub(1)?).ok()?;
        self.blocks.get(i).map(|(b, _)| value_id(b))
    }

    /// Build a block with an explicit payload (a Byzantine proposer's second block).
    pub fn build_with_payload(
        &self,
        height: Height,
        round: u32,
        proposer: [u8; 32],
        payload: u64,
    ) -> Vec<u8> {
        let parent_ms = self.time_at(height.saturating_sub(1));
        let b = SimBlock {
            height,
            parent: self.tip_id(),
            proposer,
            round,
            payload,
            time_ms: proposal_time(self.now_ms.saturating_add(self.clock_ahead_ms), parent_ms)
                .unwrap_or(u64::MAX),
        };
        borsh::to_vec(&b).unwrap_or_default()
    }
}

impl BlockExecutor for MemExecutor {
    /// The simulator's in-memory chain refuses a block with a reason for its trace.
    type Error = String;

    fn last_committed(&self) -> Height {
        self.blocks.len() as Height
    }

    fn validator_set(&self, _height: Height) -> Vec<Validator> {
        self.validators.clone()
    }

    fn build_block(&mut self, height: Height, round: u32, proposer: [u8; 32]) -> Vec<u8> {
        self.built += 1;
        self.build_with_payload(height, round, proposer, self.built)
    }

    fn verify_block(&self, height: Height, block: &[u8]) -> Result<(), Self::Error> {
        let b: SimBlock =
            borsh::from_slice(block).map_err(|e| format!("undecodable block: {e}"))?;
        if b.height != height {
            return Err(format!("block says height {} for slot {height}", b.height));
        }
        if height == self.last_committed() + 1 {
            if b.parent != self.tip_id() {
                return Err("block does not extend the committed chain".into());
            }
            check_monotonic(b.time_ms, self.time_at(height - 1)).map_err(|e| e.to_string())?;
        }
        if !self.validators.iter().any(|v| v.public_key == b.proposer) {
            return Err("proposer is not a validator".into());
        }
        Ok(())
    }

    /// As Opal's node: a fresh proposal must also be timely by this validator's clock.
    fn verify_proposal(
        &self,
        height: Height,
        round: u32,
        pol_round: Option<u32>,
        block: &[u8],
    ) -> Result<(), String> {
        self.verify_block(height, block)?;
        if pol_round.is_some() || height != self.last_committed() + 1 {
            return Ok(());
        }
        let b: SimBlock =
            borsh::from_slice(block).map_err(|e| format!("undecodable block: {e}"))?;
        check_timely(
            b.time_ms,
            self.time_at(height - 1),
            self.now_ms,
            round,
            &self.time_bounds,
        )
        .map_err(|e| e.to_string())
    }

    fn commit(
        &mut self,
        height: Height,
        block: &[u8],
        certificate: &CommitCertificate,
    ) -> Result<Hash32, String> {
        if height <= self.last_committed() {
            return Ok(self.id_at(height).unwrap_or([0; 32]));
        }
        if height != self.last_committed() + 1 {
            return Err(format!(
                "commit of height {height} on top of {}",
                self.last_committed()
            ));
        }
        certificate
            .verify(&self.chain_id, &self.validators)
            .map_err(|e| format!("certificate does not verify: {e}"))?;
        if certificate.value_id != value_id(block) || certificate.height != height {
            return Err("certificate is for another block".into());
        }
        self.verify_block(height, block)?;
        self.blocks.push((block.to_vec(), certificate.clone()));
        Ok(value_id(block))
    }

    fn decided(&self, height: Height) -> Option<(Vec<u8>, CommitCertificate)> {
        let i = usize::try_from(height.checked_sub(1)?).ok()?;
        self.blocks.get(i).cloned()
    }

    fn history_min_height(&self) -> Height {
        1
    }

    fn report_evidence(&mut self, evidence: Vec<u8>) {
        self.evidence.push(evidence);
    }
}
