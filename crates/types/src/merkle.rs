//! A binary Merkle root over a list of 32-byte leaves (used for the transaction root of a block).
//!
//! Leaves are hashed under `Domain::MerkleLeaf` and inner nodes under `Domain::MerkleNode`, so a
//! leaf can never be confused with a node. An odd node at the end of a level is promoted unchanged.
//! The root of the empty list is `Hash::ZERO`.

use crate::hash::{Domain, Hash};

pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::ZERO;
    }
    let mut level: Vec<Hash> = leaves
        .iter()
        .map(|l| Hash::of(Domain::MerkleLeaf, &l.0))
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => Hash::of_parts(Domain::MerkleNode, &[&a.0, &b.0]),
                [a] => *a,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
    }
    level[0]
}
