//! Block execution: the fixed order of components, per-transaction isolation, results.

use crate::components::staking::{self, ActiveValidator, BlockCtx};
use crate::components::{accounts, fees, inference, read, registry, verification, zk};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::keys;
use crate::params::Params;
use opal_state::Overlay;
use opal_types::{Action, Block, BlockHeader, Hash, Transaction};
use serde::{Deserialize, Serialize};

/// What happened to one transaction of a block.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct TxResult {
    pub hash: Hash,
    /// `None` if it was applied; otherwise the rejection, rendered (the typed error is in `code`).
    pub error: Option<String>,
    pub code: Option<String>,
    pub events: Vec<Event>,
}

#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct BlockResult {
    pub txs: Vec<TxResult>,
    /// Events of begin-block and end-block.
    pub events: Vec<Event>,
}

pub fn params(s: &Overlay) -> Result<Params, LedgerError> {
    crate::components::required(s, keys::PARAMS, "params")
}

pub fn chain_id(s: &Overlay) -> Result<String, LedgerError> {
    read(s, keys::CHAIN_ID)?.ok_or_else(|| LedgerError::Corrupt {
        key: "chain/id".into(),
        reason: "missing (genesis not applied?)".into(),
    })
}

/// The consensus validator set for the next height.
pub fn validators(s: &Overlay) -> Result<Vec<ActiveValidator>, LedgerError> {
    staking::active_set(s)
}

/// The size limit of one transaction: `max_tx_bytes`, or `max_evidence_tx_bytes` for the
/// actions that carry tensors or a model file.
pub fn tx_size_limit(tx: &Transaction, params: &Params) -> usize {
    match tx.body.action {
        Action::RevealData { .. }
        | Action::Challenge { .. }
        | Action::Resolve { .. }
        | Action::PublishZkKey { .. }
        | Action::SettleProved { .. } => {
            params.max_tx_bytes.max(params.max_evidence_tx_bytes) as usize
        }
        _ => params.max_tx_bytes as usize,
    }
}

/// Checks that need no state: size, chain id, minimum fee, signature. Run at mempool admission
/// and again for every transaction of a block.
pub fn check_tx_stateless(
    tx: &Transaction,
    encoded_len: usize,
    chain_id: &str,
    params: &Params,
    check_signature: bool,
) -> Result<(), TxError> {
    let limit = tx_size_limit(tx, params);
    if encoded_len > limit {
        return Err(TxError::TooLarge {
            size: encoded_len,
            limit,
        });
    }
    if tx.body.chain_id != chain_id {
        return Err(TxError::WrongChain {
            expected: chain_id.to_string(),
            got: tx.body.chain_id.clone(),
        });
    }
    if tx.body.fee < params.min_fee {
        return Err(TxError::FeeTooLow {
            min: params.min_fee,
            got: tx.body.fee,
        });
    }
    if check_signature {
        tx.verify_signature().map_err(|_| TxError::BadSignature)?;
    }
    Ok(())
}

/// Apply one transaction whose stateless checks passed: nonce, fee, then the action's component.
/// On `Ok(Err(_))` the caller drops `s` (it is a fork).
fn deliver_tx(
    s: &mut Overlay,
    ctx: &BlockCtx,
    params: &Params,
    tx: &Transaction,
) -> Result<Result<Vec<Event>, TxError>, LedgerError> {
    let sender = tx.sender();
    let mut events = Vec::new();
    if let Err(e) = accounts::use_nonce(s, &sender, tx.body.nonce)? {
        return Ok(Err(e));
    }
    if let Err(e) = fees::charge(s, params, &sender, tx.body.fee, &mut events)? {
        return Ok(Err(e));
    }
    let ev = &mut events;
    let r = match &tx.body.action {
        Action::Transfer { to, amount } => accounts::transfer(s, &sender, to, *amount, ev)?,
        Action::CreateValidator {
            consensus_key,
            name,
            amount,
            vrf_key,
        } => staking::create_validator(
            s,
            ctx,
            &sender,
            staking::ValidatorKeys {
                consensus: *consensus_key,
                vrf: *vrf_key,
            },
            name,
            *amount,
            ev,
        )?,
        Action::Delegate { validator, amount } => {
            staking::delegate(s, &sender, validator, *amount, ev)?
        }
        Action::Undelegate { validator, amount } => {
            staking::undelegate(s, ctx, &sender, validator, *amount, ev)?
        }
        Action::BondRole { role, amount } => staking::bond_role(s, &sender, *role, *amount, ev)?,
        Action::UnbondRole { role, amount } => {
            staking::unbond_role(s, ctx, &sender, *role, *amount, ev)?
        }
        Action::Unjail => staking::unjail(s, ctx, &sender, ev)?,
        Action::SubmitEvidence { evidence } => {
            staking::submit_evidence(s, ctx, &sender, evidence, ev)?
        }
        Action::RegisterDataset { spec } => registry::register_dataset(s, ctx, &sender, spec, ev)?,
        Action::RegisterModel { spec } => registry::register_model(s, ctx, &sender, spec, ev)?,
        Action::TransferModel { name, new_owner } => {
            registry::transfer_model(s, &sender, name, new_owner, ev)?
        }
        Action::DeclareService { spec } => registry::declare_service(s, ctx, &sender, spec, ev)?,
        Action::FundEscrow { node, amount } => inference::fund(s, &sender, node, *amount, ev)?,
        Action::CloseEscrow { node } => inference::close(s, ctx, &sender, node, ev)?,
        Action::WithdrawEscrow { node } => inference::withdraw(s, ctx, &sender, node, ev)?,
        Action::SettleReceipts { receipts } => inference::settle(s, ctx, &sender, receipts, ev)?,
        Action::RevealData {
            request_id,
            inputs,
            outputs,
        } => verification::reveal(s, ctx, &sender, request_id, inputs, outputs, ev)?,
        Action::Challenge {
            request_id,
            claimed_output_hash,
            model,
        } => verification::challenge(
            s,
            ctx,
            &sender,
            request_id,
            claimed_output_hash,
            model.as_deref(),
            ev,
        )?,
        Action::Resolve { request_id, model } => {
            verification::resolve(s, ctx, &sender, request_id, model, ev)?
        }
        Action::PublishZkKey { key, model } => zk::publish_key(s, &sender, key, model, ev)?,
        Action::SettleProved { receipt, evidence } => {
            zk::settle_proved(s, ctx, &sender, receipt, evidence, ev)?
        }
        Action::CommitteeVote { request_id, valid } => {
            verification::vote(s, ctx, &sender, request_id, *valid, ev)?
        }
    };
    Ok(r.map(|()| events))
}

/// Verify every transaction signature of a block, in one batch when all are valid.
fn signatures_ok(txs: &[Transaction]) -> Vec<bool> {
    let digests: Vec<Hash> = txs.iter().map(|t| t.body.sign_digest()).collect();
    let batch = opal_types::crypto::verify_batch(
        txs.iter()
            .zip(&digests)
            .map(|(t, d)| (&t.signer, &d.0[..], &t.signature)),
    );
    if batch.is_ok() {
        return vec![true; txs.len()];
    }
    txs.iter()
        .zip(&digests)
        .map(|(t, d)| t.signer.verify(&d.0, &t.signature).is_ok())
        .collect()
}

/// The verified randomness of a block's beacon: the proposer must be in the active set (the
/// state before the block) and its VRF proof valid for this chain and height. `Err(reason)`
/// for a block no honest validator votes for.
pub fn beacon(s: &Overlay, header: &BlockHeader) -> Result<Result<Hash, String>, LedgerError> {
    let set = validators(s)?;
    let Some(v) = set.iter().find(|v| v.public_key == header.proposer) else {
        return Ok(Err(format!(
            "proposer {} is not in the validator set",
            header.proposer
        )));
    };
    let chain_id = chain_id(s)?;
    Ok(header
        .beacon
        .verify(&v.vrf_key, &chain_id, header.height)
        .map(Hash)
        .map_err(|e| format!("audit beacon: {e}")))
}

/// Execute a decided block on `s`: begin-block, each transaction in its own fork, end-block.
/// Header checks (height, parent, time) are the caller's job; this is only the state transition.
pub fn execute_block(s: &mut Overlay, block: &Block) -> Result<BlockResult, LedgerError> {
    let params = params(s)?;
    let chain_id = chain_id(s)?;
    let ctx = BlockCtx {
        chain_id: chain_id.clone(),
        height: block.header.height,
        time_ms: block.header.time_ms,
    };
    let beacon = beacon(s, &block.header)?.map_err(LedgerError::InvalidBlock)?;
    // Begin-block, in component order: fees, then verification (the audit draw).
    fees::begin_block(s)?;
    let mut begin_events = Vec::new();
    verification::begin_block(s, &ctx, &beacon, &mut begin_events)?;
    let sig_ok = signatures_ok(&block.txs);
    let mut result = BlockResult {
        events: begin_events,
        ..BlockResult::default()
    };
    for (tx, sig_ok) in block.txs.iter().zip(sig_ok) {
        let hash = tx.hash();
        let len = opal_types::encode(tx).len();
        let outcome = match check_tx_stateless(tx, len, &chain_id, &params, false) {
            Err(e) => Err(e),
            Ok(()) if !sig_ok => Err(TxError::BadSignature),
            Ok(()) => {
                let mut fork = s.fork();
                match deliver_tx(&mut fork, &ctx, &params, tx)? {
                    Ok(events) => {
                        s.apply(fork);
                        Ok(events)
                    }
                    Err(e) => Err(e),
                }
            }
        };
        result.txs.push(match outcome {
            Ok(events) => TxResult {
                hash,
                error: None,
                code: None,
                events,
            },
            Err(e) => TxResult {
                hash,
                code: Some(e.code().to_string()),
                error: Some(e.to_string()),
                events: vec![],
            },
        });
    }
    fees::end_block(s, &block.header.proposer, &mut result.events)?;
    verification::end_block(s, &ctx, &mut result.events)?;
    staking::end_block(s, &ctx, &mut result.events)?;
    Ok(result)
}

/// Transactions chosen for a block, and those refused with why.
pub type Selection = (Vec<Transaction>, Vec<(Hash, TxError)>);

/// Choose transactions for a new block from `candidates` (in order), keeping those that apply
/// on top of the ones already chosen, within the block limits. Signatures must have been checked
/// at admission. Returns the chosen ones and the rejected ones with their errors.
pub fn select_txs(
    s: &Overlay,
    ctx: &BlockCtx,
    candidates: Vec<Transaction>,
) -> Result<Selection, LedgerError> {
    let params = params(s)?;
    let chain_id = chain_id(s)?;
    let mut scratch = s.fork();
    let mut chosen = Vec::new();
    let mut rejected = Vec::new();
    let mut bytes = 0usize;
    for tx in candidates {
        if chosen.len() >= params.max_block_txs as usize {
            break;
        }
        let len = opal_types::encode(&tx).len();
        if bytes + len > params.max_block_bytes as usize {
            break;
        }
        if let Err(e) = check_tx_stateless(&tx, len, &chain_id, &params, false) {
            rejected.push((tx.hash(), e));
            continue;
        }
        let mut fork = scratch.fork();
        match deliver_tx(&mut fork, ctx, &params, &tx)? {
            Ok(_) => {
                scratch.apply(fork);
                bytes += len;
                chosen.push(tx);
            }
            Err(e) => rejected.push((tx.hash(), e)),
        }
    }
    Ok((chosen, rejected))
}
