//! Typed events emitted by execution; the node stores them with the block and streams them.

use opal_types::market::Side;
use opal_types::shares::RoyaltyStream;
use opal_types::{Address, Amount, Hash, ModelRef, PublicKey, Role, Tier};
use serde::{Deserialize, Serialize};

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
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Transfer {
        from: Address,
        to: Address,
        amount: Amount,
    },
    FeePaid {
        payer: Address,
        amount: Amount,
    },
    FeesDistributed {
        proposer: PublicKey,
        to: Address,
        amount: Amount,
    },
    ValidatorCreated {
        operator: Address,
        consensus_key: PublicKey,
        amount: Amount,
    },
    Delegated {
        delegator: Address,
        validator: Address,
        amount: Amount,
        #[serde(deserialize_with = "u128_from_any")]
        shares: u128,
    },
    Undelegated {
        delegator: Address,
        validator: Address,
        amount: Amount,
        completion_ms: u64,
    },
    RoleBonded {
        who: Address,
        role: Role,
        amount: Amount,
        total: Amount,
    },
    RoleUnbonding {
        who: Address,
        role: Role,
        amount: Amount,
        completion_ms: u64,
    },
    UnbondingCompleted {
        owner: Address,
        amount: Amount,
    },
    Slashed {
        validator: Address,
        amount: Amount,
        infraction_height: u64,
        reporter: Address,
        reporter_reward: Amount,
    },
    Jailed {
        validator: Address,
        until_ms: u64,
    },
    Unjailed {
        validator: Address,
    },
    ValidatorSetChanged {
        validators: u32,
        total_power: u64,
    },
    DatasetRegistered {
        name: String,
        owner: Address,
        content_hash: Hash,
    },
    ModelRegistered {
        model: ModelRef,
        owner: Address,
        content_hash: Hash,
        parent: Option<ModelRef>,
        datasets: Vec<String>,
    },
    ModelTransferred {
        name: String,
        from: Address,
        to: Address,
    },
    ServiceDeclared {
        node: Address,
        endpoint: String,
        models: Vec<ModelRef>,
    },
    EscrowFunded {
        caller: Address,
        node: Address,
        amount: Amount,
        balance: Amount,
    },
    EscrowClosing {
        caller: Address,
        node: Address,
        unlock_ms: u64,
    },
    EscrowWithdrawn {
        caller: Address,
        node: Address,
        amount: Amount,
    },
    /// A receipt was paid: `payouts` lists every credit, the treasury's included.
    ReceiptSettled {
        request_id: Hash,
        caller: Address,
        node: Address,
        model: ModelRef,
        tier: Tier,
        price: Amount,
        payouts: Vec<Payout>,
    },
    /// A receipt of a settlement batch was not paid (the rest of the batch is unaffected).
    ReceiptRejected {
        request_id: Hash,
        code: String,
        reason: String,
    },
    /// A `replay`-tier or disputable receipt settled: its price is held until its challenge
    /// window ends; the node must reveal the inputs and outputs by `reveal_by_ms`.
    ReceiptHeld {
        request_id: Hash,
        node: Address,
        price: Amount,
        reveal_by_ms: u64,
    },
    /// A caller asked for more audits than the base rate and paid the expected audit cost.
    AuditPremium {
        request_id: Hash,
        caller: Address,
        amount: Amount,
    },
    /// A paid receipt was drawn for audit.
    AuditOpened {
        request_id: Hash,
        node: Address,
        auditors: Vec<Address>,
        reveal_by_ms: u64,
    },
    DataRevealed {
        request_id: Hash,
        node: Address,
        window_ends_ms: u64,
    },
    Challenged {
        request_id: Hash,
        challenger: Address,
        bond: Amount,
        resolve_by_ms: u64,
    },
    AuditPassed {
        request_id: Hash,
        node: Address,
        resolver: Address,
        fee: Amount,
    },
    AuditLapsed {
        request_id: Hash,
        node: Address,
    },
    /// A challenge without proof failed (resolved for the node, or lapsed): the bond went to
    /// the node.
    DisputeLost {
        request_id: Hash,
        challenger: Address,
        bond: Amount,
    },
    /// A dispute of an LLM result that its committee did not decide in time: the bond went
    /// back to the challenger and the result was paid (nobody proved anything).
    DisputeLapsed {
        request_id: Hash,
        challenger: Address,
        bond: Amount,
    },
    /// A committee member voted on an LLM case.
    CommitteeVoted {
        request_id: Hash,
        voter: Address,
        valid: bool,
    },
    /// More than two thirds of an LLM case's committee power agreed: `valid` is the verdict;
    /// the members of the majority shared the audit fee (from the treasury, as far as it went)
    /// by power: `paid` lists each one's share.
    CommitteeDecided {
        request_id: Hash,
        node: Address,
        valid: bool,
        power_for: u64,
        power_total: u64,
        paid: Vec<(Address, Amount)>,
    },
    /// Re-execution proved the node's output wrong, or the node withheld its data.
    NodeConvicted {
        request_id: Hash,
        node: Address,
        outcome: crate::components::verification::Outcome,
        slashed: Amount,
        prover: Option<Address>,
        reward: Amount,
        refund: Amount,
        jailed_until_ms: u64,
    },
    /// An opal-zk verifying key was checked and stored; `id` is what a `zk`-tier model
    /// registers as its weight commitment.
    ZkKeyPublished {
        id: Hash,
        publisher: Address,
        bytes: u64,
        proof_bytes: u64,
    },
    /// Every validator verified the zk proof of a receipt before it was paid.
    ZkProofVerified {
        request_id: Hash,
        key: Hash,
    },
    // Appended last: block results store events in borsh, by variant index.
    /// A case nobody can decide (re-executing the model costs `needed`, over `limit`): the
    /// challenger's bond returned, a held price refunded to the caller, nobody slashed.
    CaseUndecidable {
        request_id: Hash,
        node: Address,
        needed: u64,
        limit: u64,
        bond_returned: Amount,
        refund: Amount,
    },
    /// Re-executing a model version's registered file showed it costs more than its
    /// registration's `replay_cost`: its results are no longer held for disputes or audited.
    ReplayCostMisdeclared {
        model: ModelRef,
        declared: u64,
        needed: u64,
    },
    /// An audit its assigned auditors let lapse went to new auditors; each that missed it lost
    /// (part of) `audit_fee` of its stake.
    AuditReassigned {
        request_id: Hash,
        node: Address,
        missed: Vec<(Address, Amount)>,
        auditors: Vec<Address>,
        resolve_by_ms: u64,
    },
    /// The auditors of an audit that finally lapsed, and what each lost.
    AuditorsPenalized {
        request_id: Hash,
        missed: Vec<(Address, Amount)>,
    },
    ProposalSubmitted {
        id: u64,
        proposer: Address,
        /// `text`, `param_change`, `treasury_spend`, `enclave_measurements`, `upgrade`.
        kind: String,
    },
    ProposalDeposit {
        id: u64,
        depositor: Address,
        amount: Amount,
        total: Amount,
    },
    VotingStarted {
        id: u64,
        voting_end_ms: u64,
    },
    Voted {
        id: u64,
        voter: Address,
        option: opal_types::gov::VoteOption,
        /// The voter had voted before; this vote replaces it.
        replaced: bool,
    },
    /// A proposal's deposit or voting period ended: `lapsed`, `no_quorum`, `vetoed`,
    /// `rejected` or `passed`.
    ProposalDecided {
        id: u64,
        status: String,
    },
    DepositsRefunded {
        id: u64,
        amount: Amount,
    },
    /// A vetoed proposal's deposits left the supply.
    DepositsBurned {
        id: u64,
        amount: Amount,
    },
    /// A passed proposal was carried out (`error: None`), or could not be.
    ProposalExecuted {
        id: u64,
        error: Option<String>,
    },
    ParamChanged {
        key: String,
        #[serde(deserialize_with = "u128_from_any")]
        value: u128,
        proposal: u64,
    },
    TreasurySpent {
        proposal: u64,
        to: Address,
        amount: Amount,
    },
    /// A block's emission: to the validators that voted on it (and their delegators, with
    /// what the last block carried), to the performance pool, and what rounding carries to
    /// the next block.
    RewardsMinted {
        amount: Amount,
        validators: Amount,
        performance: Amount,
        carried: Amount,
    },
    /// The performance pool paid to `nodes` nodes holding `points` points.
    PerformanceRewardsPaid {
        height: u64,
        nodes: u32,
        points: u64,
        paid: Amount,
    },
    RewardsWithdrawn {
        who: Address,
        amount: Amount,
    },
    CommissionSet {
        validator: Address,
        bps: u32,
    },
    /// A validator signed fewer than `min_signed_bps` of the last `window` blocks' commits: it
    /// lost `slashed` of its bonded tokens to the treasury and is jailed until `until_ms`.
    DowntimeJailed {
        validator: Address,
        missed: u64,
        window: u64,
        slashed: Amount,
        until_ms: u64,
    },
    /// A royalty stream was split into `shares` shares, all to `owner`.
    SharesSplit {
        stream: RoyaltyStream,
        owner: Address,
        shares: u64,
    },
    SharesTransferred {
        stream: RoyaltyStream,
        from: Address,
        to: Address,
        shares: u64,
    },
    SharesClaimed {
        stream: RoyaltyStream,
        holder: Address,
        amount: Amount,
    },
    /// An order was placed; `resting` shares of it went on the book (0: it filled at once).
    OrderPlaced {
        id: u64,
        owner: Address,
        stream: RoyaltyStream,
        side: Side,
        price: Amount,
        shares: u64,
        resting: u64,
    },
    /// A trade at the resting (maker) order's price; the seller paid `fee` to the treasury.
    Trade {
        stream: RoyaltyStream,
        maker: u64,
        taker: u64,
        buyer: Address,
        seller: Address,
        price: Amount,
        shares: u64,
        fee: Amount,
    },
    /// A resting order left the book unfilled: cancelled, or found expired; `refund` is the
    /// escrow returned (a buy) and `unlocked` the shares released (a sell).
    OrderClosed {
        id: u64,
        owner: Address,
        reason: String,
        refund: Amount,
        unlocked: u64,
    },
}

/// One credit made by a settlement.
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
pub struct Payout {
    /// `node`, `owner`, `parent`, `dataset:<name>`, `treasury`.
    pub role: String,
    /// `None` for the treasury, or for a royalty split into shares (`shares`).
    pub to: Option<Address>,
    pub amount: Amount,
    /// A royalty to a stream split into shares: paid to the stream's holders pro rata when
    /// the payout is made, not to `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<RoyaltyStream>,
}

/// Reads a `u128` written as a JSON number or a decimal string. serde's derive cannot read a
/// `u128` inside an internally tagged enum (like [`Event`]) through its buffered content, so the
/// field asks for "any" value and converts.
fn u128_from_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u128;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u128, E> {
            Ok(v.into())
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<u128, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u128, E> {
            u128::try_from(v).map_err(|_| E::custom("negative"))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u128, E> {
            v.parse().map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_with_u128_fields_read_back_from_json() {
        let e = Event::Delegated {
            delegator: Address([1; 20]),
            validator: Address([2; 20]),
            amount: Amount(5),
            shares: 5_000_000_000_000,
        };
        let v = serde_json::to_value(vec![e.clone()]).unwrap();
        assert_eq!(v[0]["shares"], 5_000_000_000_000u64);
        let back: Vec<Event> = serde_json::from_value(v).unwrap();
        assert_eq!(back, vec![e]);
    }
}
