//! The application loop: one `AppMsg` at a time, translated into [`BlockExecutor`] calls.
//!
//! Every reply channel is answered (the engine's host actor fails if a reply is dropped).
//! Errors that leave the node unable to continue safely (store I/O, an invalid validator set,
//! an oversized block from our own executor) end the loop; the engine then stalls and the
//! error is logged and kept in [`crate::ConsensusHandle`].

use std::time::Duration;

use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::engine::util::streaming::StreamMessage;
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::LocallyProposedValue;
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use malachitebft_core_types::LinearTimeouts;
use tokio::sync::{oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::codec::{Evidence, MAX_SYNC_RESPONSE, MAX_SYNC_VALUES};
use crate::context::{Address, BlockHeight, OpalContext, PartInit, ProposalPart, Value, ValueId};
use crate::host::{linear_timeouts, Decision, Host};
use crate::signing::OpalSigner;
use crate::store::{StoredProposal, UndecidedStore};
use crate::streaming::{split, Reassembler};
use crate::{cert, BlockExecutor, ConsensusError, Height, Timeouts};

pub(crate) struct App<E: BlockExecutor> {
    host: Host<E, UndecidedStore>,
    timeouts: LinearTimeouts,
    target_time: Option<Duration>,
    reassembler: Reassembler,
    committed: watch::Sender<Height>,
    nonce: u64,
}

impl<E: BlockExecutor> App<E> {
    pub(crate) fn new(
        executor: E,
        store: UndecidedStore,
        signer: OpalSigner,
        timeouts: &Timeouts,
        committed: watch::Sender<Height>,
    ) -> Self {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            host: Host::new(executor, store, signer),
            timeouts: linear_timeouts(timeouts),
            target_time: (!timeouts.commit.is_zero()).then_some(timeouts.commit),
            reassembler: Reassembler::new(),
            committed,
            nonce,
        }
    }

    fn params(&self, height: Height) -> Result<HeightParams<OpalContext>, ConsensusError> {
        Ok(HeightParams::new(
            self.host.validator_set(height)?,
            self.timeouts,
            self.target_time,
        ))
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
                let height = self.host.ready()?;
                self.reassembler.prune_below(height);
                self.committed.send_replace(height - 1);
                info!(%height, address = %self.host.address(), "consensus ready");
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
                self.reassembler.prune_below(height.0);
                let values = self
                    .host
                    .started_round(height.0, round.as_u32().unwrap_or(0))?;
                let _ = reply_value.send(values);
            }

            AppMsg::GetValue {
                height,
                round,
                timeout: _,
                reply,
            } => {
                let stored = self.host.get_value(height.0, round.as_u32().unwrap_or(0))?;
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
                    Ok(Some(block)) => self.host.accept_block(block)?,
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
            } => match self.host.restream(height.0, &value_id.0)? {
                Some(p) => {
                    debug!(%height, %round, %value_id, "restreaming proposal");
                    let msgs = self.stream_of(&p);
                    publish(channels, msgs).await?;
                }
                None => debug!(%height, %round, %value_id, "nothing to restream"),
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
                let _ = reply.send(BlockHeight(self.host.executor().history_min_height()));
            }

            AppMsg::Decided {
                certificate,
                extensions: _,
                reply,
            } => {
                let h = certificate.height.0;
                let cert = cert::from_engine(&certificate);
                match self.host.decided(&cert)? {
                    Decision::Committed(root) => {
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
                    Decision::CommitFailed(e) => {
                        error!(height = h, error = %e, "executor failed to commit")
                    }
                    Decision::BlockMissing => {
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
                let evidence = Evidence::encode_engine(&evidence);
                let (next, restart) = self.host.finalized(certificate.height.0, evidence)?;
                let params = self.params(next)?;
                if restart {
                    let _ = reply.send(Next::Restart(BlockHeight(next), params));
                } else {
                    self.reassembler.prune_below(next);
                    let _ = reply.send(Next::Start(BlockHeight(next), params));
                }
            }

            AppMsg::GetDecidedValues { range, reply } => {
                let (start, end) = (range.start().0, range.end().0);
                let mut values = Vec::new();
                for (block, c) in
                    self.host
                        .decided_values(start, end, MAX_SYNC_VALUES, MAX_SYNC_RESPONSE / 2)
                {
                    let Some(engine_cert) = cert::to_engine_extended(&c) else {
                        warn!(
                            height = c.height,
                            "stored certificate is malformed; not serving it"
                        );
                        break;
                    };
                    values.push(RawDecidedValue::new(block.into(), engine_cert));
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
                let outcome = match self.host.synced_value(
                    height.0,
                    round.as_u32().unwrap_or(0),
                    proposer,
                    value_bytes.to_vec(),
                ) {
                    Ok(Some(v)) => SyncedValueOutcome::Verdict(v),
                    Ok(None) => SyncedValueOutcome::PeerFault,
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
