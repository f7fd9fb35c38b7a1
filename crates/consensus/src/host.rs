//! The consensus host, sans I/O: what a validator does with each request of the consensus
//! core, as plain method calls with no channels, network or clock.
//!
//! Both drivers run this one implementation: `app` (the real node, translating the engine's
//! `AppMsg`s) and `opal-sim` (the deterministic simulator, translating the core's effects
//! under simulated time and network). What differs between them is only transport: how a
//! block travels as parts, how replies reach the core, and where undecided blocks are kept
//! ([`ProposalStore`]: a redb file on a node, memory that survives simulated crashes in the
//! simulator).
//!
//! The rules kept here:
//! * a block is stored durably before the core hears of it, and `get_value` returns the block
//!   already built for a (height, round), so a validator never proposes two blocks in one slot;
//! * a block from a peer is authenticated (the round's proposer signed its parts), bounded
//!   (at most [`MAX_PROPOSALS_PER_ROUND`] kept per slot, [`MAX_PENDING`] early blocks), and
//!   checked by the executor (with the local clock for the current or a later round, against
//!   committed state only for an earlier round or a synced block);
//! * a decided block is committed with its certificate before the next height starts; a
//!   failed commit restarts the height.

use std::collections::BTreeMap;
use std::time::Duration;

use malachitebft_core_types::{LinearTimeouts, Round, Validity};
use tracing::{info, warn};

use crate::context::{Address, BlockHeight, OpalContext, PartInit, ValidatorSet, Value, ValueId};
use crate::signing::{parts_sign_bytes, verify_raw, OpalSigner};
use crate::store::{StoredProposal, UndecidedStore};
use crate::streaming::AssembledBlock;
use crate::{
    value_id, BlockExecutor, CommitCertificate, ConsensusError, Hash32, Height, StoreError,
    Timeouts, MAX_BLOCK_BYTES,
};

/// What the core is told about a block (re-exported from Malachite's core).
pub type ProposedValue = malachitebft_core_consensus::ProposedValue<OpalContext>;

/// Most distinct blocks kept per (height, round) (a Byzantine proposer could send many).
pub const MAX_PROPOSALS_PER_ROUND: usize = 4;
/// Complete blocks for future heights kept until that height starts.
pub const MAX_PENDING: usize = 16;

/// Where undecided blocks are kept until their height is committed. A put must be durable
/// when it returns: the core hears of a block only after.
pub trait ProposalStore {
    fn put(&mut self, p: &StoredProposal) -> Result<(), StoreError>;
    /// All blocks stored for (height, round), ordered by value id.
    fn at_round(&self, height: Height, round: u32) -> Result<Vec<StoredProposal>, StoreError>;
    /// The block with this id at `height`, whatever round it was proposed in.
    fn find(&self, height: Height, id: &Hash32) -> Result<Option<StoredProposal>, StoreError>;
    /// Drop everything at or below `height`.
    fn prune_through(&mut self, height: Height) -> Result<(), StoreError>;
}

impl ProposalStore for UndecidedStore {
    fn put(&mut self, p: &StoredProposal) -> Result<(), StoreError> {
        UndecidedStore::put(self, p)
    }
    fn at_round(&self, height: Height, round: u32) -> Result<Vec<StoredProposal>, StoreError> {
        UndecidedStore::at_round(self, height, round)
    }
    fn find(&self, height: Height, id: &Hash32) -> Result<Option<StoredProposal>, StoreError> {
        UndecidedStore::find(self, height, id)
    }
    fn prune_through(&mut self, height: Height) -> Result<(), StoreError> {
        UndecidedStore::prune_through(self, height)
    }
}

/// A [`ProposalStore`] in memory, with the redb store's ordering: the simulator's "disk".
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    proposals: BTreeMap<(Height, u32, Hash32), StoredProposal>,
}

impl ProposalStore for MemStore {
    fn put(&mut self, p: &StoredProposal) -> Result<(), StoreError> {
        self.proposals
            .insert((p.height, p.round, p.value_id), p.clone());
        Ok(())
    }
    fn at_round(&self, height: Height, round: u32) -> Result<Vec<StoredProposal>, StoreError> {
        Ok(self
            .proposals
            .range((height, round, [0; 32])..=(height, round, [0xff; 32]))
            .map(|(_, p)| p.clone())
            .collect())
    }
    fn find(&self, height: Height, id: &Hash32) -> Result<Option<StoredProposal>, StoreError> {
        Ok(self
            .proposals
            .range((height, 0, [0; 32])..=(height, u32::MAX, [0xff; 32]))
            .map(|(_, p)| p)
            .find(|p| &p.value_id == id)
            .cloned())
    }
    fn prune_through(&mut self, height: Height) -> Result<(), StoreError> {
        self.proposals.retain(|(h, _, _), _| *h > height);
        Ok(())
    }
}

/// What became of a decided block.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Executed and durably committed; the state root after it.
    Committed(Hash32),
    /// The executor refused or failed to commit it (the height restarts at `finalized`).
    CommitFailed(String),
    /// The decided block is not in the store (it never reached this validator).
    BlockMissing,
}

/// The engine's timeouts for Opal's [`Timeouts`] (both drivers use this mapping).
pub fn linear_timeouts(t: &Timeouts) -> LinearTimeouts {
    LinearTimeouts {
        propose: t.propose,
        propose_delta: t.propose_delta,
        prevote: t.prevote,
        prevote_delta: t.prevote_delta,
        precommit: t.precommit,
        precommit_delta: t.precommit_delta,
        rebroadcast: t.propose + t.prevote + t.precommit,
        max_timeout: Duration::from_secs(60),
    }
}

/// The core's view of a stored block.
pub fn proposed_value(p: &StoredProposal) -> ProposedValue {
    ProposedValue {
        height: BlockHeight(p.height),
        round: Round::new(p.round),
        valid_round: Round::from(p.pol_round),
        proposer: Address(p.proposer),
        value: Value {
            id: ValueId(p.value_id),
        },
        validity: Validity::from_bool(p.valid),
    }
}

/// One validator's host: its executor, its store of undecided blocks, its key, and the
/// volatile state a restart loses (the current height and round, early blocks).
pub struct Host<E: BlockExecutor, S: ProposalStore> {
    executor: E,
    store: S,
    signer: OpalSigner,
    address: Address,
    current_height: Height,
    /// The round the core last started at `current_height`.
    current_round: u32,
    pending: BTreeMap<(Height, u32, Hash32), AssembledBlock>,
}

impl<E: BlockExecutor, S: ProposalStore> Host<E, S> {
    pub fn new(executor: E, store: S, signer: OpalSigner) -> Self {
        let address = signer.address();
        Self {
            executor,
            store,
            signer,
            address,
            current_height: 0,
            current_round: 0,
            pending: BTreeMap::new(),
        }
    }

    pub fn executor(&self) -> &E {
        &self.executor
    }

    /// The executor, mutably (the simulator sets its validator's clock through this).
    pub fn executor_mut(&mut self) -> &mut E {
        &mut self.executor
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn signer(&self) -> &OpalSigner {
        &self.signer
    }

    pub fn current_height(&self) -> Height {
        self.current_height
    }

    /// Forget what a process restart loses; the executor and the store are kept.
    pub fn restart(&mut self) {
        self.current_height = 0;
        self.current_round = 0;
        self.pending.clear();
    }

    /// The validator set that votes on `height`, from the executor.
    pub fn validator_set(&self, height: Height) -> Result<ValidatorSet, ConsensusError> {
        ValidatorSet::new(&self.executor.validator_set(height)).map_err(|e| {
            ConsensusError::ValidatorSet {
                height,
                reason: e.to_string(),
            }
        })
    }

    /// Start-up: the height to run, one above the last committed block.
    pub fn ready(&mut self) -> Result<Height, ConsensusError> {
        let height = self.executor.last_committed() + 1;
        self.enter_height(height)?;
        Ok(height)
    }

    /// Move to `height`: drop early blocks and stored blocks below it.
    pub fn enter_height(&mut self, height: Height) -> Result<(), ConsensusError> {
        self.current_height = height;
        self.current_round = 0;
        self.pending.retain(|(h, _, _), _| *h >= height);
        self.store.prune_through(height.saturating_sub(1))?;
        Ok(())
    }

    /// The core started `round` at `height`: the blocks to tell it about (early arrivals now
    /// accepted, and what the store already holds for this slot after a crash).
    pub fn started_round(
        &mut self,
        height: Height,
        round: u32,
    ) -> Result<Vec<ProposedValue>, ConsensusError> {
        if height != self.current_height {
            self.enter_height(height)?;
        }
        self.current_round = round;
        let early: Vec<_> = self
            .pending
            .keys()
            .filter(|(h, _, _)| *h == height)
            .copied()
            .collect();
        for k in early {
            if let Some(b) = self.pending.remove(&k) {
                self.accept_block(b)?;
            }
        }
        let values: Vec<ProposedValue> = self
            .store
            .at_round(height, round)?
            .iter()
            .map(proposed_value)
            .collect();
        if !values.is_empty() {
            info!(
                height,
                round,
                n = values.len(),
                "replaying stored proposals"
            );
        }
        Ok(values)
    }

    /// This validator proposes at (height, round): the block it already built for the slot,
    /// or a new one from the executor, signed and stored before anyone sees it.
    pub fn get_value(
        &mut self,
        height: Height,
        round: u32,
    ) -> Result<StoredProposal, ConsensusError> {
        let existing = self
            .store
            .at_round(height, round)?
            .into_iter()
            .find(|p| p.proposer == self.address.0 && p.parts_signature.is_some());
        if let Some(p) = existing {
            info!(
                height,
                round, "re-proposing the block already built for this round"
            );
            return Ok(p);
        }
        let block = self.executor.build_block(height, round, self.address.0);
        if block.len() > MAX_BLOCK_BYTES {
            return Err(ConsensusError::Executor(format!(
                "build_block returned {} bytes (max {MAX_BLOCK_BYTES})",
                block.len()
            )));
        }
        let p = self.sign_block(height, round, block);
        self.store.put(&p)?;
        Ok(p)
    }

    /// A block of ours for (height, round), its parts signed; not stored.
    pub fn sign_block(&self, height: Height, round: u32, block: Vec<u8>) -> StoredProposal {
        let id = value_id(&block);
        let init = PartInit {
            height,
            round,
            pol_round: None,
            proposer: self.address,
            block_len: block.len() as u32,
        };
        let sig = self
            .signer
            .sign_raw(&parts_sign_bytes(self.signer.chain_id(), &init, id))
            .to_bytes();
        StoredProposal {
            height,
            round,
            value_id: id,
            proposer: self.address.0,
            pol_round: None,
            valid: true,
            parts_signature: Some(sig),
            block,
        }
    }

    /// A stored block with its parts signature, to stream again.
    pub fn restream(
        &self,
        height: Height,
        id: &Hash32,
    ) -> Result<Option<StoredProposal>, ConsensusError> {
        Ok(self
            .store
            .find(height, id)?
            .filter(|p| p.parts_signature.is_some()))
    }

    /// A complete block from a peer: authenticate, verify, store, and say what to tell the
    /// core (`None`: nothing, the block is early, stale, unauthenticated or one too many).
    pub fn accept_block(
        &mut self,
        b: AssembledBlock,
    ) -> Result<Option<ProposedValue>, ConsensusError> {
        let h = b.init.height;
        let r = b.init.round;
        if h < self.current_height {
            return Ok(None);
        }
        let id = value_id(&b.block);
        if h > self.current_height {
            if h <= self.current_height + 2 && self.pending.len() < MAX_PENDING {
                self.pending.insert((h, r, id), b);
            }
            return Ok(None);
        }
        let proposer = b.init.proposer;
        let vs = self.validator_set(h)?;
        if !vs.validators().iter().any(|v| v.address == proposer) {
            warn!(height = h, %proposer, "block from a non-validator");
            return Ok(None);
        }
        if vs.validators()[vs.proposer_index(h, r)].address != proposer {
            warn!(height = h, round = r, %proposer, "block from the wrong proposer");
            return Ok(None);
        }
        let msg = parts_sign_bytes(self.signer.chain_id(), &b.init, id);
        if !verify_raw(&proposer.0, &msg, &b.signature) {
            warn!(height = h, %proposer, "bad proposer signature on block parts");
            return Ok(None);
        }
        let at_round = self.store.at_round(h, r)?;
        if let Some(p) = at_round.iter().find(|p| p.value_id == id) {
            return Ok(Some(proposed_value(p)));
        }
        if at_round.len() >= MAX_PROPOSALS_PER_ROUND {
            warn!(
                height = h,
                round = r,
                "too many proposals for one round; dropping"
            );
            return Ok(None);
        }
        // The prevote check (with the local clock) applies to proposals of the current or a
        // later round. A block of an earlier round reaches us late (restreamed for a
        // re-proposal, or after we moved on): we prevote in the current round only, so it can
        // be decided only with votes of validators that judged it in its own round; it is
        // checked against committed state, as a synced block is.
        let verdict = if r < self.current_round {
            self.executor.verify_block(h, &b.block)
        } else {
            self.executor
                .verify_proposal(h, r, b.init.pol_round, &b.block)
        };
        let valid = match verdict {
            Ok(()) => true,
            Err(reason) => {
                warn!(height = h, round = r, %reason, "proposed block is invalid");
                false
            }
        };
        let p = StoredProposal {
            height: h,
            round: r,
            value_id: id,
            proposer: proposer.0,
            pol_round: b.init.pol_round,
            valid,
            parts_signature: Some(b.signature),
            block: b.block,
        };
        self.store.put(&p)?;
        Ok(Some(proposed_value(&p)))
    }

    /// The core decided: commit the block with its certificate.
    pub fn decided(&mut self, cert: &CommitCertificate) -> Result<Decision, ConsensusError> {
        let h = cert.height;
        let Some(p) = self.store.find(h, &cert.value_id)? else {
            return Ok(Decision::BlockMissing);
        };
        Ok(match self.executor.commit(h, &p.block, cert) {
            Ok(root) => Decision::Committed(root),
            Err(e) => Decision::CommitFailed(e.to_string()),
        })
    }

    /// The core finalized `height`: hand over the misbehaviour it saw, then the height to run
    /// next and whether it is a restart (the commit failed, so `height` runs again).
    pub fn finalized(
        &mut self,
        height: Height,
        evidence: Option<Vec<u8>>,
    ) -> Result<(Height, bool), ConsensusError> {
        if let Some(ev) = evidence {
            warn!(height, "misbehaviour observed");
            self.executor.report_evidence(ev);
        }
        if self.executor.last_committed() >= height {
            let next = height + 1;
            self.enter_height(next)?;
            Ok((next, false))
        } else {
            warn!(height, "block not committed, restarting the height");
            Ok((height, true))
        }
    }

    /// Committed blocks with their certificates from `start` through `end`, for a syncing
    /// peer: at most `max_values`, and past the first, at most about `max_bytes`.
    pub fn decided_values(
        &self,
        start: Height,
        end: Height,
        max_values: usize,
        max_bytes: usize,
    ) -> Vec<(Vec<u8>, CommitCertificate)> {
        let mut values = Vec::new();
        let mut bytes = 0usize;
        let mut h = start;
        while h <= end && values.len() < max_values {
            let Some((block, c)) = self.executor.decided(h) else {
                break;
            };
            bytes = bytes.saturating_add(block.len() + 128 * c.signatures.len() + 128);
            if !values.is_empty() && bytes > max_bytes {
                break;
            }
            values.push((block, c));
            h += 1;
        }
        values
    }

    /// A block that value sync brought with a certificate the core verified: check it against
    /// committed state, store it, and say what to tell the core (`None`: oversized, the peer's
    /// fault).
    pub fn synced_value(
        &mut self,
        height: Height,
        round: u32,
        proposer: Address,
        block: Vec<u8>,
    ) -> Result<Option<ProposedValue>, ConsensusError> {
        if block.len() > MAX_BLOCK_BYTES {
            return Ok(None);
        }
        let id = value_id(&block);
        let valid = match self.executor.verify_block(height, &block) {
            Ok(()) => true,
            Err(reason) => {
                warn!(height, %reason, "synced block failed verification");
                false
            }
        };
        let p = StoredProposal {
            height,
            round,
            value_id: id,
            proposer: proposer.0,
            pol_round: None,
            valid,
            parts_signature: None,
            block,
        };
        self.store.put(&p)?;
        Ok(Some(proposed_value(&p)))
    }
}
