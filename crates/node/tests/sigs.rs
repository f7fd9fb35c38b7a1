//! Parallel batch signature verification (batch admission): the same answer as checking each
//! signature alone, wherever the forgeries sit (a failing batch falls back to one by one).

use opal_node::sigs::signatures_parallel;
use opal_types::*;

fn tx(i: u64) -> Transaction {
    TxBody {
        chain_id: "c".into(),
        nonce: i,
        fee: Amount(10),
        action: Action::Transfer {
            to: SecretKey::from_seed([99; 32]).address(),
            amount: Amount(1 + i as u128),
        },
    }
    .sign(&SecretKey::from_seed([(i % 7) as u8 + 1; 32]))
}

#[test]
fn parallel_batches_agree_with_one_by_one() {
    for (n, forged) in [
        (0usize, vec![]),
        (10, vec![3]),
        (500, vec![]),
        (500, vec![0, 250, 499]),
        (1_001, vec![700]),
    ] {
        let mut txs: Vec<Transaction> = (0..n as u64).map(tx).collect();
        for &i in &forged {
            txs[i].body.nonce += 1_000; // the signature no longer covers the body
        }
        let got = signatures_parallel(&txs);
        let want: Vec<bool> = txs.iter().map(|t| t.verify_signature().is_ok()).collect();
        assert_eq!(got, want, "n = {n}, forged {forged:?}");
        assert_eq!(want.iter().filter(|ok| !**ok).count(), forged.len());
    }
}
