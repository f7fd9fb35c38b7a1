//! Undecided-proposal store: a small redb file (`home/consensus.redb`).
//!
//! Every block this node proposed or received (complete and checked) for a height that is
//! not yet committed is written here, with fsync, *before* the engine learns about it. After
//! a crash, `StartedRound` replays what the store holds for `(height, round)` and `GetValue`
//! returns the value already built for `(height, round)`, so this node never proposes two
//! different blocks at the same height and round. Entries at or below the committed height are
//! pruned after each commit.

use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use redb::{Database, ReadableDatabase, TableDefinition};

use crate::Hash32;

const PROPOSALS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("undecided_v1");

/// Errors of the undecided store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redb: {0}")]
    Db(String),
    #[error("corrupt entry in consensus store: {0}")]
    Corrupt(String),
}

fn dberr<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

/// One stored block proposal.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredProposal {
    pub height: u64,
    pub round: u32,
    pub value_id: Hash32,
    pub proposer: [u8; 32],
    pub pol_round: Option<u32>,
    pub valid: bool,
    /// Proposer's signature over the streamed parts (see `signing::parts_sign_bytes`);
    /// `None` for a block that arrived through value sync.
    pub parts_signature: Option<[u8; 64]>,
    pub block: Vec<u8>,
}

fn key(height: u64, round: u32, id: &Hash32) -> [u8; 44] {
    let mut k = [0u8; 44];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..12].copy_from_slice(&round.to_be_bytes());
    k[12..].copy_from_slice(id);
    k
}

pub struct UndecidedStore {
    db: Database,
}

impl UndecidedStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(dberr)?;
        let tx = db.begin_write().map_err(dberr)?;
        tx.open_table(PROPOSALS).map_err(dberr)?;
        tx.commit().map_err(dberr)?;
        Ok(Self { db })
    }

    /// Durably store a proposal (fsync before returning).
    pub fn put(&self, p: &StoredProposal) -> Result<(), StoreError> {
        let bytes = borsh::to_vec(p).map_err(dberr)?;
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = tx.open_table(PROPOSALS).map_err(dberr)?;
            t.insert(
                key(p.height, p.round, &p.value_id).as_slice(),
                bytes.as_slice(),
            )
            .map_err(dberr)?;
        }
        tx.commit().map_err(dberr)
    }

    fn scan(&self, lo: [u8; 44], hi: [u8; 44]) -> Result<Vec<StoredProposal>, StoreError> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(PROPOSALS).map_err(dberr)?;
        let mut out = Vec::new();
        for item in t.range(lo.as_slice()..=hi.as_slice()).map_err(dberr)? {
            let (_, v) = item.map_err(dberr)?;
            let p = StoredProposal::try_from_slice(v.value())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push(p);
        }
        Ok(out)
    }

    /// All proposals stored for `(height, round)`.
    pub fn at_round(&self, height: u64, round: u32) -> Result<Vec<StoredProposal>, StoreError> {
        self.scan(
            key(height, round, &[0; 32]),
            key(height, round, &[0xff; 32]),
        )
    }

    /// All proposals stored for `height`, in round order.
    pub fn at_height(&self, height: u64) -> Result<Vec<StoredProposal>, StoreError> {
        self.scan(key(height, 0, &[0; 32]), key(height, u32::MAX, &[0xff; 32]))
    }

    /// The block with id `value_id` at `height`, whatever round it was proposed in.
    pub fn find(
        &self,
        height: u64,
        value_id: &Hash32,
    ) -> Result<Option<StoredProposal>, StoreError> {
        Ok(self
            .at_height(height)?
            .into_iter()
            .find(|p| &p.value_id == value_id))
    }

    /// Drop everything at or below `height`.
    pub fn prune_through(&self, height: u64) -> Result<(), StoreError> {
        let hi = key(height, u32::MAX, &[0xff; 32]);
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = tx.open_table(PROPOSALS).map_err(dberr)?;
            t.retain_in(..=hi.as_slice(), |_, _| false).map_err(dberr)?;
        }
        tx.commit().map_err(dberr)
    }
}
