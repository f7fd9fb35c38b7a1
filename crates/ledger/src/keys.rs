//! Every state key the ledger uses is built here, one section per component.

use opal_types::Address;

pub const PARAMS: &[u8] = b"params";
pub const CHAIN_ID: &[u8] = b"chain/id";
pub const SUPPLY: &[u8] = b"supply";
/// The active consensus validator set (`Vec<ActiveValidator>`), for the next height.
pub const VALIDATORS: &[u8] = b"validators";
/// Protocol treasury (slashed stake lands here).
pub const TREASURY: &[u8] = b"treasury";
pub const GENESIS_TIME: &[u8] = b"chain/genesis_time_ms";
/// The value id consensus voted on for the last block (`blake3` of its bytes): what the next
/// block's last commit signs.
pub const LAST_VALUE_ID: &[u8] = b"chain/last_value_id";

pub mod accounts {
    use super::*;
    pub const PREFIX: &[u8] = b"accounts/";
    pub fn account(a: &Address) -> Vec<u8> {
        let mut k = PREFIX.to_vec();
        k.extend_from_slice(&a.0);
        k
    }
}

pub mod fees {
    /// Fees collected during the current block, paid out at its end.
    pub const POOL: &[u8] = b"fees/pool";
}

pub mod staking {
    use super::*;
    use opal_types::{PublicKey, Role};

    pub const PARAMS: &[u8] = b"staking/params";
    /// Tokens bonded to validators and roles.
    pub const BONDED_POOL: &[u8] = b"staking/pool/bonded";
    /// Tokens unbonding (still slashable).
    pub const UNBONDING_POOL: &[u8] = b"staking/pool/unbonding";
    pub const UNBONDING_SEQ: &[u8] = b"staking/unbonding_seq";
    /// Set when the validator set must be recomputed at the end of this block.
    pub const SET_DIRTY: &[u8] = b"staking/set_dirty";
    pub const VALIDATOR_PREFIX: &[u8] = b"staking/val/";
    pub const UNBONDING_QUEUE_PREFIX: &[u8] = b"staking/unbq/";

    pub fn validator(operator: &Address) -> Vec<u8> {
        [VALIDATOR_PREFIX, &operator.0].concat()
    }
    pub fn by_consensus_key(pk: &PublicKey) -> Vec<u8> {
        [b"staking/valkey/".as_slice(), &pk.0].concat()
    }
    /// `staking/deleg_of/<delegator><operator>`: present while the delegation exists, so a
    /// delegator's delegations are found without scanning every validator.
    pub fn delegation_of(delegator: &Address, validator: &Address) -> Vec<u8> {
        [delegations_of_prefix(delegator).as_slice(), &validator.0].concat()
    }
    pub const DELEGATION_OF_PREFIX: &[u8] = b"staking/deleg_of/";
    pub fn delegations_of_prefix(delegator: &Address) -> Vec<u8> {
        [DELEGATION_OF_PREFIX, &delegator.0].concat()
    }
    /// `staking/del/<operator><delegator>`: a delegator's shares in a validator.
    pub const DELEGATION_PREFIX: &[u8] = b"staking/del/";
    pub fn delegation(validator: &Address, delegator: &Address) -> Vec<u8> {
        [DELEGATION_PREFIX, &validator.0, &delegator.0].concat()
    }
    pub fn role_bond(role: Role, who: &Address) -> Vec<u8> {
        [
            b"staking/role/".as_slice(),
            role.as_str().as_bytes(),
            b"/",
            &who.0,
        ]
        .concat()
    }
    pub fn role_prefix(role: Role) -> Vec<u8> {
        [b"staking/role/".as_slice(), role.as_str().as_bytes(), b"/"].concat()
    }
    /// Unbonding entries ordered by completion time, then sequence number.
    pub fn unbonding(completion_ms: u64, seq: u64) -> Vec<u8> {
        [
            UNBONDING_QUEUE_PREFIX,
            &completion_ms.to_be_bytes(),
            &seq.to_be_bytes(),
        ]
        .concat()
    }
    pub fn evidence(id: &opal_types::Hash) -> Vec<u8> {
        [b"staking/evidence/".as_slice(), &id.0].concat()
    }
    /// The set that voted on the block at whose end the set last changed, and that height:
    /// what liveness needs to know who should have signed the previous block.
    pub const PREV_SET: &[u8] = b"staking/prev_set";
    pub const SET_CHANGED_AT: &[u8] = b"staking/set_changed_at";
    /// A validator's liveness record (`Liveness`).
    pub fn liveness(op: &Address) -> Vec<u8> {
        [b"staking/live/".as_slice(), &op.0].concat()
    }
    /// Present when the validator missed the block at `index` of its window.
    pub fn missed(op: &Address, index: u64) -> Vec<u8> {
        [b"staking/missed/".as_slice(), &op.0, &index.to_be_bytes()].concat()
    }
    pub fn missed_prefix(op: &Address) -> Vec<u8> {
        [b"staking/missed/".as_slice(), &op.0].concat()
    }
}

pub mod registry {
    use opal_types::{Address, ModelRef};

    pub const DATASET_PREFIX: &[u8] = b"registry/ds/";
    pub const NAME_PREFIX: &[u8] = b"registry/name/";
    pub const MODEL_PREFIX: &[u8] = b"registry/model/";
    pub const SERVICE_PREFIX: &[u8] = b"registry/svc/";

    pub fn dataset(name: &str) -> Vec<u8> {
        [DATASET_PREFIX, name.as_bytes()].concat()
    }
    /// Owner and newest version of a model name.
    pub fn name(name: &str) -> Vec<u8> {
        [NAME_PREFIX, name.as_bytes()].concat()
    }
    /// All versions of a name, in version order (names never contain '/').
    pub fn model_versions(name: &str) -> Vec<u8> {
        [MODEL_PREFIX, name.as_bytes(), b"/"].concat()
    }
    pub fn model(m: &ModelRef) -> Vec<u8> {
        [model_versions(&m.name).as_slice(), &m.version.to_be_bytes()].concat()
    }
    /// Present when re-executing the model version's file showed it costs more than its
    /// registration's `replay_cost` declared (value: borsh `(declared, needed)`).
    pub fn replay_misdeclared(m: &ModelRef) -> Vec<u8> {
        [
            b"registry/misdeclared/".as_slice(),
            m.name.as_bytes(),
            b"/",
            &m.version.to_be_bytes(),
        ]
        .concat()
    }
    /// Children of a model in the lineage graph (models fine-tuned from it).
    pub fn children(parent: &ModelRef) -> Vec<u8> {
        [
            b"registry/child/".as_slice(),
            parent.name.as_bytes(),
            b"/",
            &parent.version.to_be_bytes(),
            b"/",
        ]
        .concat()
    }
    pub fn child(parent: &ModelRef, child: &ModelRef) -> Vec<u8> {
        [
            children(parent).as_slice(),
            child.name.as_bytes(),
            b"/",
            &child.version.to_be_bytes(),
        ]
        .concat()
    }
    /// Models that name a dataset in their lineage.
    pub fn dataset_users(dataset: &str) -> Vec<u8> {
        [b"registry/dsuse/".as_slice(), dataset.as_bytes(), b"/"].concat()
    }
    pub fn dataset_user(dataset: &str, m: &ModelRef) -> Vec<u8> {
        [
            dataset_users(dataset).as_slice(),
            m.name.as_bytes(),
            b"/",
            &m.version.to_be_bytes(),
        ]
        .concat()
    }
    pub fn service(node: &Address) -> Vec<u8> {
        [SERVICE_PREFIX, &node.0].concat()
    }
}

pub mod inference {
    use opal_types::{Address, Hash};

    pub const PARAMS: &[u8] = b"infer/params";
    /// Sum of all escrow balances.
    pub const ESCROW_POOL: &[u8] = b"infer/escrow_pool";
    pub const ESCROW_PREFIX: &[u8] = b"infer/escrow/";
    pub const SETTLED_PREFIX: &[u8] = b"infer/settled/";

    pub fn escrow(caller: &Address, node: &Address) -> Vec<u8> {
        [ESCROW_PREFIX, &caller.0, &node.0].concat()
    }
    /// Set once a request is paid: the proof that a receipt settled, and the guard against paying
    /// it twice.
    pub fn settled(request_id: &Hash) -> Vec<u8> {
        [SETTLED_PREFIX, &request_id.0].concat()
    }
    /// Open verification cases (`verification::Case`), by request id.
    pub const CASE_PREFIX: &[u8] = b"infer/case/";
    pub fn case(request_id: &Hash) -> Vec<u8> {
        [CASE_PREFIX, &request_id.0].concat()
    }
    /// How a case ended (`verification::Verdict`).
    /// Auditors an open audit had before it was reassigned (`Vec<Address>`).
    pub fn past_auditors(request_id: &Hash) -> Vec<u8> {
        [b"infer/audited_by/".as_slice(), &request_id.0].concat()
    }

    pub fn verdict(request_id: &Hash) -> Vec<u8> {
        [b"infer/verdict/".as_slice(), &request_id.0].concat()
    }
    /// Prices of held results and locked challenge bonds.
    pub const HELD_POOL: &[u8] = b"infer/held_pool";
    /// Case deadlines, ordered by time.
    pub const DUE_PREFIX: &[u8] = b"infer/due/";
    pub fn due(deadline_ms: u64, request_id: &Hash) -> Vec<u8> {
        [DUE_PREFIX, &deadline_ms.to_be_bytes(), &request_id.0].concat()
    }
    /// Paid receipts waiting for the next block's audit draw, by height.
    pub const AUDIT_QUEUE_PREFIX: &[u8] = b"infer/auditq/";
    pub fn audit_queue(height: u64, request_id: &Hash) -> Vec<u8> {
        [AUDIT_QUEUE_PREFIX, &height.to_be_bytes(), &request_id.0].concat()
    }
    /// Block time until which a convicted node may not settle.
    pub fn jail(node: &Address) -> Vec<u8> {
        [b"infer/jail/".as_slice(), &node.0].concat()
    }
    /// What has been charged under a spend grant (`Amount`).
    pub fn grant_spent(grant_id: &Hash) -> Vec<u8> {
        [b"infer/grant/".as_slice(), &grant_id.0].concat()
    }
}

#[cfg(test)]
mod tests {
    /// Light clients (`opal_verify::settlement`) prove settlement under the same key the
    /// ledger writes it to.
    #[test]
    fn the_verifier_proves_the_settled_key_the_ledger_writes() {
        let id = opal_types::Hash([9; 32]);
        assert_eq!(
            super::inference::settled(&id),
            opal_verify::settlement::settled_key(&id)
        );
    }
}

/// The `zk` component's keys: published verifying keys and the model versions naming each.
pub mod zk {
    use opal_types::{Hash, ModelRef};
    /// `zk/key/<id>`: the bytes of a published verifying key.
    pub fn key(id: &Hash) -> Vec<u8> {
        [b"zk/key/".as_slice(), &id.0].concat()
    }
    /// `zk/users/<id>`: the model versions registered with weight commitment `id`, one entry
    /// each (`zk/users/<id><name>/<version BE>`, value: borsh `ModelRef`).
    pub fn users_prefix(id: &Hash) -> Vec<u8> {
        [b"zk/users/".as_slice(), &id.0].concat()
    }
    pub fn user(id: &Hash, m: &ModelRef) -> Vec<u8> {
        [
            users_prefix(id).as_slice(),
            m.name.as_bytes(),
            b"/",
            &m.version.to_be_bytes(),
        ]
        .concat()
    }
}

/// The `governance` component's keys: proposals, their deposits and votes, the queues of
/// periods that end, which proposal last set each parameter, the enclave allowlist and the
/// upgrade signal.
pub mod gov {
    use opal_types::gov::{Measurement, ProposalId};
    use opal_types::Address;

    pub const PARAMS: &[u8] = b"gov/params";
    /// The next proposal id (`u64`, from 1).
    pub const NEXT_ID: &[u8] = b"gov/next_id";
    /// Deposits of proposals not yet decided (refunded or burned at the end).
    pub const DEPOSIT_POOL: &[u8] = b"gov/pool/deposits";
    /// Proposals in their deposit or voting period (`u32`).
    pub const ACTIVE: &[u8] = b"gov/active";
    pub const PROPOSAL_PREFIX: &[u8] = b"gov/prop/";
    pub const DEPOSIT_QUEUE_PREFIX: &[u8] = b"gov/qd/";
    pub const VOTING_QUEUE_PREFIX: &[u8] = b"gov/qv/";
    pub const PARAM_SOURCE_PREFIX: &[u8] = b"gov/src/";
    pub const TEE_PREFIX: &[u8] = b"gov/tee/";
    /// The latest passed upgrade signal.
    pub const UPGRADE: &[u8] = b"gov/upgrade";

    pub fn proposal(id: ProposalId) -> Vec<u8> {
        [PROPOSAL_PREFIX, &id.to_be_bytes()].concat()
    }
    /// Every deposit record of every open proposal.
    pub const DEPOSIT_PREFIX: &[u8] = b"gov/dep/";
    pub fn deposits_prefix(id: ProposalId) -> Vec<u8> {
        [DEPOSIT_PREFIX, &id.to_be_bytes()].concat()
    }
    pub fn deposit(id: ProposalId, depositor: &Address) -> Vec<u8> {
        [deposits_prefix(id).as_slice(), &depositor.0].concat()
    }
    pub fn votes_prefix(id: ProposalId) -> Vec<u8> {
        [b"gov/vote/".as_slice(), &id.to_be_bytes()].concat()
    }
    pub fn vote(id: ProposalId, voter: &Address) -> Vec<u8> {
        [votes_prefix(id).as_slice(), &voter.0].concat()
    }
    /// Proposals whose deposit period ends at `end_ms`, in time then id order.
    pub fn deposit_queue(end_ms: u64, id: ProposalId) -> Vec<u8> {
        [
            DEPOSIT_QUEUE_PREFIX,
            &end_ms.to_be_bytes(),
            &id.to_be_bytes(),
        ]
        .concat()
    }
    /// Proposals whose voting period ends at `end_ms`, in time then id order.
    pub fn voting_queue(end_ms: u64, id: ProposalId) -> Vec<u8> {
        [
            VOTING_QUEUE_PREFIX,
            &end_ms.to_be_bytes(),
            &id.to_be_bytes(),
        ]
        .concat()
    }
    /// The proposal that last set parameter `key` (absent: genesis).
    pub fn param_source(key: &str) -> Vec<u8> {
        [PARAM_SOURCE_PREFIX, key.as_bytes()].concat()
    }
    /// Present when the `tee` tier trusts measurement `m`.
    pub fn tee_measurement(m: &Measurement) -> Vec<u8> {
        [TEE_PREFIX, &[m.platform.tag()], m.value.as_slice()].concat()
    }
}

/// The reward pool's keys (`components::reward_pool`): what was minted, what validators,
/// delegators and inference nodes are owed, and the per-validator reward-per-share counters.
pub mod rewards {
    use opal_types::{Address, Role};

    pub const PARAMS: &[u8] = b"rewards/params";
    /// Everything minted and not yet paid out (commission, delegators' rewards, the
    /// performance pool): counted in the supply.
    pub const POOL: &[u8] = b"rewards/pool";
    /// The performance pool: paid to inference nodes by points every epoch.
    pub const PERFORMANCE_POOL: &[u8] = b"rewards/perf_pool";
    /// What rounding (or a validator without shares) left of the validators' part of a
    /// block's emission: added to the next block's.
    pub const CARRY: &[u8] = b"rewards/carry";
    /// The supply at genesis (`Amount`), and everything minted and burned since: the supply
    /// invariant checks `supply = genesis + minted - burned`.
    pub const GENESIS_SUPPLY: &[u8] = b"rewards/genesis_supply";
    pub const MINTED: &[u8] = b"rewards/minted";
    pub const BURNED: &[u8] = b"rewards/burned";
    /// The last block's emission (`Mint`), re-derived by the supply invariant.
    pub const LAST_MINT: &[u8] = b"rewards/last_mint";
    pub const COMMISSION_PREFIX: &[u8] = b"rewards/commission/";
    pub const RATE_PREFIX: &[u8] = b"rewards/rate/";
    pub const OUTSTANDING_PREFIX: &[u8] = b"rewards/outstanding/";
    pub const POINTS_PREFIX: &[u8] = b"rewards/points/";

    /// A validator's commission owed to its operator.
    pub fn commission(op: &Address) -> Vec<u8> {
        [COMMISSION_PREFIX, &op.0].concat()
    }
    /// A validator's commission rate, in bps (absent: the default).
    pub fn commission_rate(op: &Address) -> Vec<u8> {
        [b"rewards/commission_rate/".as_slice(), &op.0].concat()
    }
    /// When a validator last raised its commission (block-time ms).
    pub fn commission_raised_at(op: &Address) -> Vec<u8> {
        [b"rewards/commission_raised/".as_slice(), &op.0].concat()
    }
    /// A validator's cumulative delegator reward per share (scaled by `REWARD_SCALE`).
    pub fn rate(op: &Address) -> Vec<u8> {
        [RATE_PREFIX, &op.0].concat()
    }
    /// What a validator's delegators are owed in total (their claims round down from it).
    pub fn outstanding(op: &Address) -> Vec<u8> {
        [OUTSTANDING_PREFIX, &op.0].concat()
    }
    /// The reward-per-share a delegation was last settled at.
    pub fn entry(op: &Address, delegator: &Address) -> Vec<u8> {
        [b"rewards/entry/".as_slice(), &op.0, &delegator.0].concat()
    }
    /// A node's performance points this epoch.
    pub fn points(role: Role, who: &Address) -> Vec<u8> {
        [POINTS_PREFIX, role.as_str().as_bytes(), b"/", &who.0].concat()
    }
}

pub mod shares {
    use super::*;
    use opal_types::shares::RoyaltyStream;

    /// The tokens the share pools hold: every stream's undistributed remainder and its
    /// holders' unclaimed earnings.
    pub const POOL: &[u8] = b"shares/pool";
    pub const STREAM_PREFIX: &[u8] = b"shares/stream/";
    pub const HOLDING_PREFIX: &[u8] = b"shares/hold/";

    /// `model:NAME` or `dataset:NAME`; a name holds no ':' or '/', so keys do not collide.
    fn stream_id(st: &RoyaltyStream) -> Vec<u8> {
        st.to_string().into_bytes()
    }
    pub fn stream(st: &RoyaltyStream) -> Vec<u8> {
        [STREAM_PREFIX, &stream_id(st)].concat()
    }
    /// `shares/hold/<stream>/<holder>`: one holder's shares and earnings in one stream.
    pub fn holdings_prefix(st: &RoyaltyStream) -> Vec<u8> {
        [HOLDING_PREFIX, &stream_id(st), b"/"].concat()
    }
    pub fn holding(st: &RoyaltyStream, holder: &Address) -> Vec<u8> {
        [holdings_prefix(st).as_slice(), &holder.0].concat()
    }
}

pub mod market {
    use opal_types::market::Side;
    use opal_types::shares::RoyaltyStream;

    /// The native tokens escrowed by resting buy orders.
    pub const POOL: &[u8] = b"market/pool";
    /// The next order id (and trade sequence number).
    pub const NEXT_ID: &[u8] = b"market/next_id";
    pub const ORDER_PREFIX: &[u8] = b"market/order/";
    pub const BOOK_PREFIX: &[u8] = b"market/book/";
    pub const TRADES_PREFIX: &[u8] = b"market/trades/";

    pub fn order(id: u64) -> Vec<u8> {
        [ORDER_PREFIX, &id.to_be_bytes()].concat()
    }
    /// `market/book/<stream>/<b|s>/`: one side of a stream's book, in priority order.
    pub fn side(st: &RoyaltyStream, side: Side) -> Vec<u8> {
        let tag: &[u8] = match side {
            Side::Buy => b"/b/",
            Side::Sell => b"/s/",
        };
        [BOOK_PREFIX, st.to_string().as_bytes(), tag].concat()
    }
    /// A resting order's place: asks by price ascending, bids by price descending (the key
    /// holds `u128::MAX - price`), then by id (time) ascending.
    pub fn book_entry(st: &RoyaltyStream, side: Side, price: u128, id: u64) -> Vec<u8> {
        let p = match side {
            Side::Buy => u128::MAX - price,
            Side::Sell => price,
        };
        [
            self::side(st, side).as_slice(),
            &p.to_be_bytes(),
            &id.to_be_bytes(),
        ]
        .concat()
    }
    pub fn trades(st: &RoyaltyStream) -> Vec<u8> {
        [TRADES_PREFIX, st.to_string().as_bytes(), b"/"].concat()
    }
    /// How many trades the stream has had.
    pub fn trade_seq(st: &RoyaltyStream) -> Vec<u8> {
        [b"market/trade_seq/".as_slice(), st.to_string().as_bytes()].concat()
    }
    pub fn trade(st: &RoyaltyStream, seq: u64) -> Vec<u8> {
        [trades(st).as_slice(), &seq.to_be_bytes()].concat()
    }
}
