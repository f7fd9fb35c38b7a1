//! The app module: the components in their one fixed order ([`Ledger`]), the router from an
//! action to its component ([`owner`]), per-transaction isolation and results.

use crate::components::staking::{self, ActiveValidator, BlockCtx};
use crate::components::{
    accounts, fees, governance, inference, liveness, market, read, registry, rewards, shares,
    verification, zk, BlockFrame, Component,
};
use crate::error::{LedgerError, TxError};
use crate::events::Event;
use crate::genesis::Genesis;
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

/// A block built and executed in one pass ([`Ledger::build_block`]).
#[derive(Debug, Clone)]
pub struct Built {
    pub block: Block,
    /// What [`Ledger::execute_block_with`] returns for `block`.
    pub result: BlockResult,
    /// Candidates left out, with why.
    pub rejected: Vec<(Hash, TxError)>,
}

impl TxResult {
    fn of(hash: Hash, outcome: Result<Vec<Event>, TxError>) -> Self {
        match outcome {
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
        }
    }
}

/// What the hooks and transactions of one block read: fixed at begin-block.
struct BlockRun {
    params: Params,
    chain_id: String,
    ctx: BlockCtx,
    proposer: opal_types::PublicKey,
    beacon: Hash,
    last_signers: Option<crate::components::LastSigners>,
}

impl BlockRun {
    fn frame(&self) -> BlockFrame<'_> {
        BlockFrame {
            ctx: &self.ctx,
            proposer: &self.proposer,
            beacon: &self.beacon,
            last_signers: self.last_signers.as_ref(),
        }
    }
}

/// The ledger: its components in their fixed call order, and what they cache between blocks
/// (decoded zk keys; a pure function of state, so no two nodes can disagree because of it).
/// Keep one for the life of a node; a fresh one gives the same results, only slower.
pub struct Ledger {
    components: [Box<dyn Component>; 12],
}

/// Index of each component in [`Ledger::components`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Fees = 0,
    Accounts = 1,
    Registry = 2,
    Inference = 3,
    Verification = 4,
    Zk = 5,
    Staking = 6,
    Liveness = 7,
    Rewards = 8,
    Governance = 9,
    Shares = 10,
    Market = 11,
}

/// The component an action is routed to. Exhaustive, so a new action does not compile until it
/// has an owner.
pub fn owner(action: &Action) -> Owner {
    use Action as A;
    match action {
        A::Transfer { .. } => Owner::Accounts,
        A::CreateValidator { .. }
        | A::Delegate { .. }
        | A::Undelegate { .. }
        | A::BondRole { .. }
        | A::UnbondRole { .. }
        | A::Unjail
        | A::SubmitEvidence { .. } => Owner::Staking,
        A::RegisterDataset { .. }
        | A::RegisterModel { .. }
        | A::TransferModel { .. }
        | A::DeclareService { .. } => Owner::Registry,
        A::FundEscrow { .. }
        | A::CloseEscrow { .. }
        | A::WithdrawEscrow { .. }
        | A::SettleReceipts { .. } => Owner::Inference,
        A::RevealData { .. }
        | A::Challenge { .. }
        | A::Resolve { .. }
        | A::CommitteeVote { .. } => Owner::Verification,
        A::PublishZkKey { .. } | A::SettleProved { .. } => Owner::Zk,
        A::SubmitProposal { .. } | A::DepositProposal { .. } | A::Vote { .. } => Owner::Governance,
        A::WithdrawRewards | A::SetCommission { .. } => Owner::Rewards,
        A::SplitShares { .. } | A::TransferShares { .. } | A::ClaimShares { .. } => Owner::Shares,
        A::PlaceOrder { .. } | A::CancelOrder { .. } => Owner::Market,
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger {
    /// The components in the order every hook is called: fees first (its pool must be empty
    /// when a block begins and is paid out first when it ends), verification's audit draw at
    /// begin-block, then liveness (who signed the previous block) and rewards' emission (to
    /// the signers of the previous block), and staking last, so that end-block's validator set update sees the
    /// slashes of verification's end-block, and governance after it, so that a parameter change
    /// executed at a block's end is in force from the next block for every component; shares
    /// (revenue shares) and market (the exchange) have no block hooks. The order is consensus: changing it changes state.
    pub fn new() -> Self {
        Ledger {
            components: [
                Box::new(fees::Fees),
                Box::new(accounts::Accounts),
                Box::new(registry::Registry),
                Box::new(inference::Inference),
                Box::new(verification::Verification),
                Box::new(zk::Zk::default()),
                Box::new(staking::Staking),
                Box::new(liveness::Liveness),
                Box::new(rewards::Rewards),
                Box::new(governance::Governance),
                Box::new(shares::Shares),
                Box::new(market::Market),
            ],
        }
    }

    /// The components, in call order.
    pub fn components(&self) -> impl Iterator<Item = &dyn Component> {
        self.components.iter().map(|c| c.as_ref())
    }

    /// Write the genesis state into `s`: the chain's own values, then each component's part.
    pub fn init_chain(&self, s: &mut Overlay, genesis: &Genesis) -> Result<(), LedgerError> {
        genesis.validate()?;
        let supply = genesis.supply()?;
        crate::components::write(s, keys::PARAMS, &genesis.params);
        crate::components::write(s, keys::CHAIN_ID, &genesis.chain_id);
        crate::components::write(s, keys::GENESIS_TIME, &genesis.genesis_time_ms);
        crate::components::write(s, keys::SUPPLY, &supply);
        for c in self.components() {
            c.init_chain(s, genesis)?;
        }
        Ok(())
    }

    /// Apply one transaction whose stateless checks passed: the ante steps (nonce, fee), then
    /// the action's component. On `Ok(Err(_))` the caller drops `s` (it is a fork).
    fn deliver_tx(
        &self,
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
        let action = &tx.body.action;
        let component = &self.components[owner(action) as usize];
        let call = crate::components::TxCall {
            ctx,
            sender: &sender,
            action,
        };
        let r = component.deliver_tx(s, call, &mut events)?;
        Ok(r.map(|()| events))
    }

    /// Execute a decided block on `s`: begin-block, each transaction in its own fork,
    /// end-block. Header checks (height, parent, time) are the caller's job; this is only the
    /// state transition.
    pub fn execute_block(
        &self,
        s: &mut Overlay,
        block: &Block,
    ) -> Result<BlockResult, LedgerError> {
        self.execute_block_with(s, block, &|_| false)
    }

    /// [`Ledger::execute_block`], skipping the signature check of the transactions for which
    /// `verified` holds: those this node itself verified before (at mempool admission). The
    /// result is the same bytes either way: a transaction's hash covers its body, signer and
    /// signature, so a transaction that hashes to one verified earlier is that transaction.
    /// `verified` must only hold for hashes of transactions whose signature was checked.
    pub fn execute_block_with(
        &self,
        s: &mut Overlay,
        block: &Block,
        verified: &dyn Fn(&Hash) -> bool,
    ) -> Result<BlockResult, LedgerError> {
        let mut result = BlockResult::default();
        let run = self.begin(
            s,
            &block.header,
            block.last_commit.as_ref(),
            &mut result.events,
        )?;
        let hashes: Vec<Hash> = block.txs.iter().map(Transaction::hash).collect();
        let sig_ok = signatures_ok(&block.txs, &hashes, verified);
        for ((tx, sig_ok), hash) in block.txs.iter().zip(sig_ok).zip(hashes) {
            let len = opal_types::encode(tx).len();
            let outcome = match check_tx_stateless(tx, len, &run.chain_id, &run.params, false) {
                Err(e) => Err(e),
                Ok(()) if !sig_ok => Err(TxError::BadSignature),
                Ok(()) => self.apply_tx(s, &run, tx)?,
            };
            result.txs.push(TxResult::of(hash, outcome));
        }
        self.end(s, &run, block, &mut result.events)?;
        Ok(result)
    }

    /// Build a block from `candidates` (in order) and execute it in the same pass: `s` ends as
    /// [`Ledger::execute_block_with`] would leave it for the returned block, with the same
    /// result, so a proposer need not execute its own block again once it is decided. A
    /// candidate is kept when it passes the stateless checks and applies on top of those kept
    /// before it (after begin-block), within `max_block_txs` and `max_block_bytes`; the others
    /// are returned with their errors and leave no trace in `s`. Signatures must have been
    /// checked at admission. `header`'s `tx_root` and `tx_count` are set here.
    pub fn build_block(
        &self,
        s: &mut Overlay,
        mut header: BlockHeader,
        last_commit: Option<opal_types::block::LastCommit>,
        candidates: Vec<Transaction>,
    ) -> Result<Built, LedgerError> {
        let mut result = BlockResult::default();
        let run = self.begin(s, &header, last_commit.as_ref(), &mut result.events)?;
        let (max_txs, max_bytes) = (
            run.params.max_block_txs as usize,
            run.params.max_block_bytes as usize,
        );
        let (mut txs, mut rejected, mut bytes) = (Vec::new(), Vec::new(), 0usize);
        for tx in candidates {
            let len = opal_types::encode(&tx).len();
            if txs.len() >= max_txs || bytes + len > max_bytes {
                break;
            }
            let outcome = match check_tx_stateless(&tx, len, &run.chain_id, &run.params, false) {
                Err(e) => Err(e),
                Ok(()) => self.apply_tx(s, &run, &tx)?,
            };
            match outcome {
                Ok(events) => {
                    bytes += len;
                    result.txs.push(TxResult::of(tx.hash(), Ok(events)));
                    txs.push(tx);
                }
                Err(e) => rejected.push((tx.hash(), e)),
            }
        }
        header.tx_root = Block::tx_root(&txs);
        header.tx_count = txs.len() as u32;
        let block = Block {
            header,
            txs,
            last_commit,
        };
        self.end(s, &run, &block, &mut result.events)?;
        Ok(Built {
            block,
            result,
            rejected,
        })
    }

    /// What every transaction of a block sees, and begin-block.
    fn begin(
        &self,
        s: &mut Overlay,
        header: &BlockHeader,
        last_commit: Option<&opal_types::block::LastCommit>,
        events: &mut Vec<Event>,
    ) -> Result<BlockRun, LedgerError> {
        let params = params(s)?;
        let chain_id = chain_id(s)?;
        let ctx = BlockCtx {
            chain_id: chain_id.clone(),
            height: header.height,
            time_ms: header.time_ms,
        };
        let beacon = beacon(s, header)?.map_err(LedgerError::InvalidBlock)?;
        // Who signed the previous block: verified once, read by liveness and rewards.
        let last_signers = crate::components::liveness::last_signers(s, &ctx, last_commit)?;
        let run = BlockRun {
            params,
            chain_id,
            ctx,
            proposer: header.proposer,
            beacon,
            last_signers,
        };
        for c in self.components() {
            c.begin_block(s, run.frame(), events)?;
        }
        Ok(run)
    }

    /// One transaction in its own fork, kept in `s` only if it applies.
    fn apply_tx(
        &self,
        s: &mut Overlay,
        run: &BlockRun,
        tx: &Transaction,
    ) -> Result<Result<Vec<Event>, TxError>, LedgerError> {
        let mut fork = s.fork();
        let outcome = self.deliver_tx(&mut fork, &run.ctx, &run.params, tx)?;
        if outcome.is_ok() {
            s.apply(fork);
        }
        Ok(outcome)
    }

    /// End-block, and the block's value id.
    fn end(
        &self,
        s: &mut Overlay,
        run: &BlockRun,
        block: &Block,
        events: &mut Vec<Event>,
    ) -> Result<(), LedgerError> {
        for c in self.components() {
            c.end_block(s, run.frame(), events)?;
        }
        // What consensus voted on for this block (`blake3` of its canonical bytes): the next
        // block's last commit must be signatures over it.
        let value_id = Hash(*blake3::hash(&block.to_bytes()).as_bytes());
        crate::components::write(s, keys::LAST_VALUE_ID, &value_id);
        Ok(())
    }
}

/// Whether each transaction of a block is validly signed: those `verified` already are; the
/// others are verified in one batch, and one by one only when the batch fails.
pub fn signatures_ok(
    txs: &[Transaction],
    hashes: &[Hash],
    verified: &dyn Fn(&Hash) -> bool,
) -> Vec<bool> {
    let mut ok = vec![true; txs.len()];
    let todo: Vec<usize> = (0..txs.len()).filter(|&i| !verified(&hashes[i])).collect();
    if todo.is_empty() {
        return ok;
    }
    let digests: Vec<Hash> = todo.iter().map(|&i| txs[i].body.sign_digest()).collect();
    let batch = opal_types::crypto::verify_batch(
        todo.iter()
            .zip(&digests)
            .map(|(&i, d)| (&txs[i].signer, &d.0[..], &txs[i].signature)),
    );
    if batch.is_err() {
        for (&i, d) in todo.iter().zip(&digests) {
            ok[i] = txs[i].signer.verify(&d.0, &txs[i].signature).is_ok();
        }
    }
    ok
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

/// Execute a decided block with a fresh [`Ledger`] (tests, tools; a node keeps one).
pub fn execute_block(s: &mut Overlay, block: &Block) -> Result<BlockResult, LedgerError> {
    Ledger::new().execute_block(s, block)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router's indices name the components they index, in the documented call order.
    #[test]
    fn owners_index_their_components_in_call_order() {
        let ledger = Ledger::new();
        let names: Vec<_> = ledger.components().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "fees",
                "accounts",
                "registry",
                "inference",
                "verification",
                "zk",
                "staking",
                "liveness",
                "rewards",
                "governance",
                "shares",
                "market"
            ]
        );
        for (owner, name) in [
            (Owner::Fees, "fees"),
            (Owner::Accounts, "accounts"),
            (Owner::Registry, "registry"),
            (Owner::Inference, "inference"),
            (Owner::Verification, "verification"),
            (Owner::Zk, "zk"),
            (Owner::Staking, "staking"),
            (Owner::Liveness, "liveness"),
            (Owner::Rewards, "rewards"),
            (Owner::Governance, "governance"),
            (Owner::Shares, "shares"),
            (Owner::Market, "market"),
        ] {
            assert_eq!(ledger.components[owner as usize].name(), name);
        }
    }

    /// A component handed an action it does not own reports a node fault; it never applies it.
    #[test]
    fn a_misrouted_action_is_a_node_fault_not_a_state_change() {
        let ledger = Ledger::new();
        let mut s = Overlay::empty();
        let ctx = BlockCtx {
            chain_id: "t".into(),
            height: 1,
            time_ms: 1,
        };
        let action = Action::Transfer {
            to: opal_types::Address([1; 20]),
            amount: opal_types::Amount::from(5u64),
        };
        assert_eq!(owner(&action), Owner::Accounts);
        let staking = &ledger.components[Owner::Staking as usize];
        let call = crate::components::TxCall {
            ctx: &ctx,
            sender: &opal_types::Address([2; 20]),
            action: &action,
        };
        let r = staking.deliver_tx(&mut s, call, &mut vec![]);
        match r {
            Err(LedgerError::Invariant(m)) => assert!(m.contains("transfer"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(s.into_writes().is_empty());
    }
}
