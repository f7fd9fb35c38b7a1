//! The application each simulated validator runs: an in-memory [`BlockExecutor`] whose blocks
//! form a hash chain, so that a fork would also show up as a block that does not extend the
//! committed chain. It is the node's "disk": it survives a simulated crash.

use borsh::{BorshDeserialize, BorshSerialize};
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
}

/// In-memory executor: committed blocks with their certificates, and reported evidence.
pub struct MemExecutor {
    chain_id: String,
    validators: Vec<Validator>,
    blocks: Vec<(Vec<u8>, CommitCertificate)>,
    /// Evidence reports from the consensus layer (borsh of `opal_consensus::codec::Evidence`).
    pub evidence: Vec<Vec<u8>>,
    built: u64,
}

impl MemExecutor {
    pub fn new(chain_id: &str, validators: Vec<Validator>) -> Self {
        Self {
            chain_id: chain_id.to_string(),
            validators,
            blocks: Vec::new(),
            evidence: Vec::new(),
            built: 0,
        }
    }

    /// `value_id` of the last committed block (zero before the first).
    pub fn tip_id(&self) -> Hash32 {
        self.blocks
            .last()
            .map(|(b, _)| value_id(b))
            .unwrap_or([0; 32])
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
        let b = SimBlock {
            height,
            parent: self.tip_id(),
            proposer,
            round,
            payload,
        };
        borsh::to_vec(&b).unwrap_or_default()
    }
}

impl BlockExecutor for MemExecutor {
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

    fn verify_block(&self, height: Height, block: &[u8]) -> Result<(), String> {
        let b: SimBlock =
            borsh::from_slice(block).map_err(|e| format!("undecodable block: {e}"))?;
        if b.height != height {
            return Err(format!("block says height {} for slot {height}", b.height));
        }
        if height == self.last_committed() + 1 && b.parent != self.tip_id() {
            return Err("block does not extend the committed chain".into());
        }
        if !self.validators.iter().any(|v| v.public_key == b.proposer) {
            return Err("proposer is not a validator".into());
        }
        Ok(())
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
