//! The application loop: one `AppMsg` at a time, translated into [`BlockExecutor`] calls.
//!
//! Every reply channel is answered (the engine's host actor fails if a reply is dropped).
//! Errors that leave the node unable to continue safely (store I/O, an invalid validator set,
//! an oversized block from our own executor) end the loop; the engine then stalls and the
//! error is logged and kept in [`crate::ConsensusHandle`].

use std::collections::BTreeMap;
use std::time::Duration;

use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::engine::util::streaming::StreamMessage;
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, ProposedValue};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use malachitebft_core_consensus::MisbehaviorEvidence;
use malachitebft_core_types::{LinearTimeouts, Round, Validity};
use tokio::sync::{oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::codec::{Evidence, WSignedProposal, WSignedVote, MAX_SYNC_RESPONSE, MAX_SYNC_VALUES};
use crate::context::{Address, BlockHeight, OpalContext, PartInit, ProposalPart, Value, ValueId};
use crate::signing::{parts_sign_bytes, verify_raw, OpalSigner};
use crate::store::{StoredProposal, UndecidedStore};
use crate::streaming::{split, AssembledBlock, Reassembler};
use crate::{cert, value_id, BlockExecutor, ConsensusError, Height, Timeouts, MAX_BLOCK_BYTES};

/// Most distinct blocks kept per (height, round) (a Byzantine proposer could send many).
const MAX_PROPOSALS_PER_ROUND: usize = 4;
/// Complete blocks for future heights kept until that height starts.
const MAX_PENDING: usize = 16;

pub(crate) struct App<E: BlockExecutor> {
    executor: E,
    store: UndecidedStore,
    signer: OpalSigner,
    address: Address,
    timeouts: LinearTimeouts,
    target_time: Option<Duration>,
    current_height: Height,
    /// The round the engine last started at `current_height`.
    current_round: u32,
    reassembler: Reassembler,
    pending: BTreeMap<(Height, u32, [u8; 32]), AssembledBlock>,
    committed: watch::Sender<Height>,
    nonce: u64,
}

fn linear(t: &Timeouts) -> LinearTimeouts {
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

impl<E: BlockExecutor> App<E> {
    pub(crate) fn new(
        executor: E,
        store: UndecidedStore,
        signer: OpalSigner,
        timeouts: &Timeouts,
        committed: watch::Sender<Height>,
    ) -> Self {
        let address = signer.address();
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            executor,
            store,
            signer,
            address,
            timeouts: linear(timeouts),
            target_time: (!timeouts.commit.is_zero()).then_some(timeouts.commit),
            current_height: 0,
            current_round: 0,
            reassembler: Reassembler::new(),
            pending: BTreeMap::new(),
            committed,
            nonce,
        }
    }

    fn validator_set(
        &self,
        height: Height,
    ) -> Result<crate::context::ValidatorSet, ConsensusError> {
        crate::context::ValidatorSet::new(&self.executor.validator_set(height)).map_err(|e| {
            ConsensusError::ValidatorSet {
                height,
                reason: e.to_string(),
            }
        })
    }

    fn params(&self, height: Height) -> Result<HeightParams<OpalContext>, ConsensusError> {
        Ok(HeightParams::new(
            self.validator_set(height)?,
            self.timeouts,
            self.target_time,
        ))
    }

    fn enter_height(&mut self, height: Height) -> Result<(), ConsensusError> {
        self.current_height = height;
        self.current_round = 0;
        self.reassembler.prune_below(height);
        self.pending.retain(|(h, _, _), _| *h >= height);
        self.store.prune_through(height.saturating_sub(1))?;
        Ok(())
    }

    /// Run until the engine closes the channel or `stop` fires.
    pub(crate) async fn run(
        mut self,
        mut channels: Channels<OpalContext>,
        mut stop: oneshot::Receiver<()>,
    ) -> Result<(), ConsensusError> {
        loop {
            let msg = tokio::select! {
                _ = &mut stop => return Ok(()),
                msg = channels.consensus.recv() => msg,
            };
            let Some(msg) = msg else {
                return Ok(());
            };
            if let Err(e) = self.handle(msg, &mut channels).await {
                error!(error = %e, "consensus application loop stopped");
                return Err(e);
            }
        }
    }

    fn next_nonce(&mut self) -> u64 {
        self.nonce = self.nonce.wrapping_add(1);
        self.nonce
    }

    async fn handle(
        &mut self,
        msg: AppMsg<OpalContext>,
        channels: &mut Channels<OpalContext>,
    ) -> Result<(), ConsensusError> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let last = self.executor.last_committed();
                let height = last + 1;
                self.enter_height(height)?;
                self.committed.send_replace(last);
                info!(%height, address = %self.address, "consensus ready");
                let params = self.params(height)?;
                let _ = reply.send((BlockHeight(height), params));
            }

            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                debug!(%height, %round, %proposer, ?role, "started round");
                let h = height.0;
                if h != self.current_height {
                    self.enter_height(h)?;
                }
                self.current_round = round.as_u32().unwrap_or(0);
                // Blocks that arrived before this height started.
                let early: Vec<_> = self
                    .pending
                    .keys()
                    .filter(|(ph, _, _)| *ph == h)
                    .copied()
                    .collect();
                for k in early {
                    if let Some(b) = self.pending.remove(&k) {
                        self.accept_block(b)?;
                    }
                }
                let r = round.as_u32().unwrap_or(0);
                let values = self
                    .store
                    .at_round(h, r)?
                    .into_iter()
                    .map(|p| proposed_value(&p))
                    .collect::<Vec<_>>();
                if !values.is_empty() {
                    info!(%height, %round, n = values.len(), "replaying stored proposals");
                }
                let _ = reply_value.send(values);
            }

            AppMsg::GetValue {
                height,
                round,
                timeout: _,
                reply,
            } => {
                let h = height.0;
                let r = round.as_u32().unwrap_or(0);
                let existing = self
                    .store
                    .at_round(h, r)?
                    .into_iter()
                    .find(|p| p.proposer == self.address.0 && p.parts_signature.is_some());
                let stored = match existing {
                    Some(p) => {
                        info!(%height, %round, "re-proposing the block already built for this round");
                        p
                    }
                    None => {
                        let block = self.executor.build_block(h, r, self.address.0);
                        if block.len() > MAX_BLOCK_BYTES {
                            return Err(ConsensusError::Executor(format!(
                                "build_block returned {} bytes (max {MAX_BLOCK_BYTES})",
                                block.len()
                            )));
                        }
                        let id = value_id(&block);
                        let init = PartInit {
                            height: h,
                            round: r,
                            pol_round: None,
                            proposer: self.address,
                            block_len: block.len() as u32,
                        };
                        let sig = self
                            .signer
                            .sign_raw(&parts_sign_bytes(self.signer.chain_id(), &init, id))
                            .to_bytes();
                        let p = StoredProposal {
                            height: h,
                            round: r,
                            value_id: id,
                            proposer: self.address.0,
                            pol_round: None,
                            valid: true,
                            parts_signature: Some(sig),
                            block,
                        };
                        // Durable before anyone (engine or peer) sees it.
                        self.store.put(&p)?;
                        p
                    }
                };
                let value = Value {
                    id: ValueId(stored.value_id),
                };
                let _ = reply.send(LocallyProposedValue::new(height, round, value));
                let msgs = self.stream_of(&stored);
                publish(channels, msgs).await?;
            }

            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let publisher = published_by.unwrap_or(from);
                let value = match self.reassembler.add(publisher, part) {
                    Ok(Some(block)) => self.accept_block(block)?,
                    Ok(None) => None,
                    Err(e) => {
                        warn!(%from, reason = ?e, "dropped proposal stream");
                        None
                    }
                };
                let _ = reply.send(value);
            }

            AppMsg::RestreamProposal {
                height,
                round,
                value_id,
                ..
            } => match self.store.find(height.0, &value_id.0)? {
                Some(p) if p.parts_signature.is_some() => {
                    debug!(%height, %round, %value_id, "restreaming proposal");
                    let msgs = self.stream_of(&p);
                    publish(channels, msgs).await?;
                }
                _ => debug!(%height, %round, %value_id, "nothing to restream"),
            },

            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }

            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                // Opal's votes carry no extensions (`ExtendVote` answers none): one that does
                // comes from a modified or Byzantine node and is refused, never passed on.
                if !extensions.is_empty() {
                    warn!(
                        n = extensions.len(),
                        "refusing vote extensions (Opal uses none)"
                    );
                }
                let verdicts = extensions
                    .into_iter()
                    .map(|(a, x)| (a, crate::vote_extension_verdict(Some(&x))))
                    .collect();
                let _ = reply.send(verdicts);
            }

            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(BlockHeight(self.executor.history_min_height()));
            }

            AppMsg::Decided {
                certificate,
                extensions: _,
                reply,
            } => {
                let h = certificate.height.0;
                let cert = cert::from_engine(&certificate);
                match self.store.find(h, &cert.value_id)? {
                    Some(p) => match self.executor.commit(h, &p.block, &cert) {
                        Ok(root) => {
                            info!(
                                height = h,
                                round = cert.round,
                                value = %certificate.value_id,
                                signatures = cert.signatures.len(),
                                state_root = %hex::encode(&root[..8]),
                                "committed"
                            );
                            self.committed.send_replace(h);
                        }
                        Err(e) => error!(height = h, error = %e, "executor failed to commit"),
                    },
                    None => {
                        error!(height = h, value = %certificate.value_id, "decided block not in store")
                    }
                }
                let _ = reply.send(());
            }

            AppMsg::Finalized {
                certificate,
                extensions: _,
                evidence,
                reply,
            } => {
                if !evidence.is_empty() {
                    warn!(height = %certificate.height, "misbehaviour observed");
                    self.executor.report_evidence(encode_evidence(&evidence));
                }
                let h = certificate.height.0;
                if self.executor.last_committed() >= h {
                    let next = h + 1;
                    let params = self.params(next)?;
                    self.enter_height(next)?;
                    let _ = reply.send(Next::Start(BlockHeight(next), params));
                } else {
                    warn!(height = h, "block not committed, restarting the height");
                    let params = self.params(h)?;
                    let _ = reply.send(Next::Restart(BlockHeight(h), params));
                }
            }

            AppMsg::GetDecidedValues { range, reply } => {
                let (start, end) = (range.start().0, range.end().0);
                let mut values = Vec::new();
                let mut bytes = 0usize;
                let mut h = start;
                while h <= end && values.len() < MAX_SYNC_VALUES {
                    let Some((block, c)) = self.executor.decided(h) else {
                        break;
                    };
                    let Some(engine_cert) = cert::to_engine_extended(&c) else {
                        warn!(
                            height = h,
                            "stored certificate is malformed; not serving it"
                        );
                        break;
                    };
                    bytes = bytes.saturating_add(block.len() + 128 * c.signatures.len() + 128);
                    if !values.is_empty() && bytes > MAX_SYNC_RESPONSE / 2 {
                        break;
                    }
                    values.push(RawDecidedValue::new(block.into(), engine_cert));
                    h += 1;
                }
                let _ = reply.send(values);
            }

            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                if value_bytes.len() > MAX_BLOCK_BYTES {
                    let _ = reply.send(SyncedValueOutcome::PeerFault);
                    return Ok(());
                }
                let h = height.0;
                let block = value_bytes.to_vec();
                let id = value_id(&block);
                let valid = match self.executor.verify_block(h, &block) {
                    Ok(()) => true,
                    Err(reason) => {
                        warn!(%height, %reason, "synced block failed verification");
                        false
                    }
                };
                let p = StoredProposal {
                    height: h,
                    round: round.as_u32().unwrap_or(0),
                    value_id: id,
                    proposer: proposer.0,
                    pol_round: None,
                    valid,
                    parts_signature: None,
                    block,
                };
                let outcome = match self.store.put(&p) {
                    Ok(()) => SyncedValueOutcome::Verdict(ProposedValue {
                        height,
                        round,
                        valid_round: Round::Nil,
                        proposer,
                        value: Value { id: ValueId(id) },
                        validity: Validity::from_bool(valid),
                    }),
                    Err(e) => {
                        error!(error = %e, "cannot store synced block");
                        SyncedValueOutcome::LocalTransientError
                    }
                };
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }

    fn stream_of(&mut self, p: &StoredProposal) -> Vec<StreamMessage<ProposalPart>> {
        let init = PartInit {
            height: p.height,
            round: p.round,
            pol_round: p.pol_round,
            proposer: Address(p.proposer),
            block_len: p.block.len() as u32,
        };
        let sig = p.parts_signature.unwrap_or([0; 64]);
        let nonce = self.next_nonce();
        split(init, &p.block, sig, nonce)
    }

    /// A complete block from a peer: authenticate, verify, store, and hand to the engine.
    fn accept_block(
        &mut self,
        b: AssembledBlock,
    ) -> Result<Option<ProposedValue<OpalContext>>, ConsensusError> {
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
}

async fn publish(
    channels: &mut Channels<OpalContext>,
    msgs: Vec<StreamMessage<ProposalPart>>,
) -> Result<(), ConsensusError> {
    for m in msgs {
        channels
            .network
            .send(NetworkMsg::PublishProposalPart(m))
            .await
            .map_err(|_| ConsensusError::Engine("network channel closed".into()))?;
    }
    Ok(())
}

fn proposed_value(p: &StoredProposal) -> ProposedValue<OpalContext> {
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

fn encode_evidence(e: &MisbehaviorEvidence<OpalContext>) -> Vec<u8> {
    let ev = Evidence {
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
    };
    borsh::to_vec(&ev).unwrap_or_default()
}
