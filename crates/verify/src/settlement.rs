//! Whether a receipt settled: the ledger's record under `infer/settled/<request id>`, proven
//! against a state root (by [`crate::light`] against a certified one, or by a caller that
//! chose to trust a node's root), must be this receipt's, paid for what it says.

use crate::report::Failure;
use opal_types::receipt::{Receipt, Settled};
use opal_types::Hash;

/// The state key of a request's settlement record (the ledger's `keys::inference::settled`;
/// a ledger test pins the two together).
pub fn settled_key(request_id: &Hash) -> Vec<u8> {
    [b"infer/settled/".as_slice(), &request_id.0].concat()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    #[error("not settled as of height {height} (proof of absence checked against {root})")]
    NotSettled { height: u64, root: Hash },
    #[error("the settled record is unreadable: {0}")]
    Unreadable(String),
    #[error("a different receipt {0} was settled for this request")]
    OtherReceipt(Hash),
    #[error("the settled record differs from the receipt (output or price)")]
    Differs,
}

impl Failure for SettlementError {
    fn code(&self) -> &'static str {
        match self {
            SettlementError::NotSettled { .. } => "not_settled",
            SettlementError::Unreadable(_) => "settled_unreadable",
            SettlementError::OtherReceipt(_) => "other_receipt_settled",
            SettlementError::Differs => "settled_differs",
        }
    }
}

/// Check the proven value of `settled_key(request id)` in the state after `height` (whose root
/// is `root`): present, decodable, and this receipt's. Returns the record.
pub fn check_settled(
    value: Option<&[u8]>,
    r: &Receipt,
    root: Hash,
    height: u64,
) -> Result<Settled, SettlementError> {
    let b = value.ok_or(SettlementError::NotSettled { height, root })?;
    let rec: Settled =
        borsh::from_slice(b).map_err(|e| SettlementError::Unreadable(e.to_string()))?;
    if rec.receipt_id != r.id() {
        return Err(SettlementError::OtherReceipt(rec.receipt_id));
    }
    if rec.output_hash != r.body.output_hash || rec.price != r.body.price {
        return Err(SettlementError::Differs);
    }
    Ok(rec)
}
