use opal_ledger::TxError;

/// Why a transaction was refused at admission (before it reached a block).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error("transaction {0} is already known")]
    AlreadyKnown(String),
    #[error("mempool is full ({0} transactions) of transactions paying as much per byte; retry later or pay a higher fee")]
    MempoolFull(usize),
    #[error("this sender already has {0} transactions waiting; retry once some are in a block")]
    SenderLimit(usize),
}

impl AdmitError {
    /// A stable machine-readable code.
    pub fn code(&self) -> String {
        match self {
            AdmitError::Tx(e) => e.code().into(),
            AdmitError::AlreadyKnown(_) => "already_known".into(),
            AdmitError::MempoolFull(_) => "mempool_full".into(),
            AdmitError::SenderLimit(_) => "sender_limit".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Home(String),
    #[error("state: {0}")]
    State(#[from] opal_state::StateError),
    #[error("ledger: {0}")]
    Ledger(#[from] opal_ledger::LedgerError),
    #[error("consensus: {0}")]
    Consensus(#[from] opal_consensus::ConsensusError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt block store at height {height}: {reason}")]
    CorruptBlock { height: u64, reason: String },
}
