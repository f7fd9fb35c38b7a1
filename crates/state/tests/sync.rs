//! State sync: a version served as chunks rebuilds, in a fresh store, the same tree (root,
//! values, proofs, prefix scans) that goes on committing like the original; a chunk that lies
//! in any way is refused, nothing of it is kept, and the range is fetched again from an honest
//! source.

mod common;

use common::{fresh, Map};
use opal_state::{Chunk, Restore, StateError, Store};

/// A store with 600 keys over 5 versions, some overwritten, some deleted.
fn source() -> (tempfile::TempDir, Store) {
    let (d, s) = fresh();
    for v in 0..5u64 {
        let mut m = Map::new();
        for i in 0..600u64 {
            if (i + v) % 3 == 0 || v == 0 {
                m.insert(
                    format!("acct/{i:04}").into_bytes(),
                    Some(format!("v{v}-{i}").into_bytes()),
                );
            }
        }
        for i in (v * 7..600).step_by(41) {
            m.insert(format!("acct/{i:04}").into_bytes(), None);
        }
        s.commit(v, m, Default::default()).unwrap();
    }
    (d, s)
}

/// Every honest chunk of version `v`, `limit` leaves each.
fn honest_chunks(s: &Store, v: u64, limit: usize) -> Vec<Chunk> {
    let snap = s.snapshot_at(v).unwrap();
    let mut out = vec![];
    let mut after = None;
    loop {
        let c = snap.chunk(after, limit).unwrap();
        after = c.last_key_hash();
        let last = c.last;
        out.push(c);
        if last {
            return out;
        }
    }
}

/// Feed `r` honest chunks from `src` until it is done.
fn complete(r: &mut Restore, src: &Store, v: u64, limit: usize) {
    let snap = src.snapshot_at(v).unwrap();
    while !r.is_done() {
        let c = snap.chunk(r.after(), limit).unwrap();
        r.add(&c).unwrap();
    }
}

fn same_state(a: &Store, va: u64, b: &Store) {
    let (sa, sb) = (a.snapshot_at(va).unwrap(), b.snapshot().unwrap());
    assert_eq!(sa.root(), sb.root());
    assert_eq!(sa.prefix(b"acct/").unwrap(), sb.prefix(b"acct/").unwrap());
    for i in (0..600).step_by(37) {
        let k = format!("acct/{i:04}").into_bytes();
        let (v, p) = sb.get_with_proof(&k).unwrap();
        assert_eq!(v, sa.get(&k).unwrap());
        p.verify(&sa.root(), &k, v.as_deref()).unwrap();
    }
}

#[test]
fn chunks_rebuild_the_same_tree_which_goes_on_committing() {
    let (_d, src) = source();
    let v = 4;
    let root = src.root_at(v).unwrap();
    let chunks = honest_chunks(&src, v, 64);
    assert!(chunks.len() > 5, "{} chunks", chunks.len());
    let (_e, dst) = fresh();
    let mut r = dst.restore(v, root).unwrap();
    for c in &chunks {
        // Through bytes, as over the network.
        r.add(&Chunk::from_bytes(&c.to_bytes()).unwrap()).unwrap();
    }
    assert!(r.is_done());
    let leaves = r.leaves();
    assert_eq!(r.finish().unwrap(), root);
    assert_eq!(dst.latest_version(), Some(v));
    assert_eq!(dst.oldest_version(), v);
    assert!(matches!(
        dst.snapshot_at(v - 1),
        Err(StateError::Pruned { .. })
    ));
    assert_eq!(
        leaves as usize,
        src.snapshot_at(v).unwrap().prefix(b"acct/").unwrap().len()
    );
    same_state(&src, v, &dst);

    // The next block's writes give the same root in both.
    let mut next = Map::new();
    next.insert(b"acct/0001".to_vec(), Some(b"later".to_vec()));
    next.insert(b"acct/0002".to_vec(), None);
    next.insert(b"new/key".to_vec(), Some(b"x".to_vec()));
    let r_dst = dst.commit(v + 1, next.clone(), Default::default()).unwrap();
    assert_eq!(src.commit(v + 1, next, Default::default()).unwrap(), r_dst);
}

/// Each kind of lie, sent instead of the honest next chunk, is refused; the honest chunk from
/// elsewhere is then accepted and the restore completes with the right root.
#[test]
fn lying_chunks_are_refused_and_fetched_again() {
    let (_d, src) = source();
    let v = 4;
    let root = src.root_at(v).unwrap();
    let other = src.snapshot_at(2).unwrap();
    let (_e, dst) = fresh();
    let mut r = dst.restore(v, root).unwrap();
    // Two honest chunks first, so lies hit a restore in progress.
    let snap = src.snapshot_at(v).unwrap();
    for _ in 0..2 {
        r.add(&snap.chunk(r.after(), 50).unwrap()).unwrap();
    }
    type Lie = fn(&mut Chunk, &Chunk);
    let lies: Vec<(&str, Lie)> = vec![
        ("altered value", |c, _| c.entries[3].1.push(b'!')),
        ("dropped leaf", |c, _| {
            c.entries.remove(10);
        }),
        ("swapped leaves", |c, _| c.entries.swap(4, 5)),
        ("extra leaf", |c, _| {
            c.entries
                .insert(7, (b"acct/forged".to_vec(), b"1".to_vec()))
        }),
        ("claims to be the last", |c, _| {
            c.entries.truncate(20);
            c.last = true;
        }),
        ("an honest chunk but the last flag set", |c, _| {
            c.last = true
        }),
        ("proof of another chunk", |c, o| {
            let mut moved = o.clone();
            moved.entries = c.entries.clone();
            moved.version = c.version;
            *c = moved;
        }),
        ("other version's leaves", |c, o| {
            c.entries = o.entries.clone()
        }),
        ("wrong version", |c, _| c.version += 1),
        ("empty", |c, _| c.entries.clear()),
    ];
    for (name, lie) in lies {
        let before = r.after();
        let leaves = r.leaves();
        let honest = snap.chunk(before, 50).unwrap();
        let decoy = other.chunk(before, 50).unwrap();
        let mut bad = honest.clone();
        lie(&mut bad, &decoy);
        match r.add(&bad) {
            Err(StateError::BadChunk(m)) => println!("{name}: refused: {m}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(r.leaves() == leaves, "{name}: nothing of it is counted");
        // Refetch from an honest peer where the restore now says.
        r.add(&snap.chunk(r.after(), 50).unwrap())
            .unwrap_or_else(|e| panic!("after {name}: {e}"));
    }
    assert!(r.refused() >= 10);
    complete(&mut r, &src, v, 50);
    assert_eq!(r.finish().unwrap(), root);
    same_state(&src, v, &dst);
}

#[test]
fn a_forged_root_refuses_every_chunk() {
    let (_d, src) = source();
    let mut root = src.root_at(4).unwrap();
    root[0] ^= 1;
    let (_e, dst) = fresh();
    let mut r = dst.restore(4, root).unwrap();
    let c = src.snapshot_at(4).unwrap().chunk(None, 100).unwrap();
    assert!(matches!(r.add(&c), Err(StateError::BadChunk(_))));
    assert!(r.finish().is_err(), "an incomplete restore cannot finish");
    assert_eq!(
        dst.latest_version(),
        None,
        "the store was not made to look synced"
    );
}

#[test]
fn garbage_chunks_never_panic() {
    let mut seed = 7u64;
    for len in [0usize, 1, 4, 9, 40, 200, 5000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        assert!(Chunk::from_bytes(&bytes).is_err());
    }
    let (_d, src) = source();
    let good = src
        .snapshot_at(1)
        .unwrap()
        .chunk(None, 10)
        .unwrap()
        .to_bytes();
    for cut in [1, good.len() / 2, good.len() - 1] {
        assert!(Chunk::from_bytes(&good[..cut]).is_err());
    }
    let mut long = good.clone();
    long.push(0);
    assert!(Chunk::from_bytes(&long).is_err(), "trailing bytes");
}

#[test]
fn only_an_empty_store_is_restored_and_an_empty_tree_restores() {
    let (_d, src) = source();
    assert!(src.restore(1, src.root_at(1).unwrap()).is_err());
    let (_e, empty_src) = fresh();
    empty_src.commit(0, Map::new(), Default::default()).unwrap();
    let c = empty_src.snapshot().unwrap().chunk(None, 10).unwrap();
    assert!(c.last && c.entries.is_empty());
    let (_f, dst) = fresh();
    let r = dst.restore(0, Store::empty_root()).unwrap();
    assert!(r.is_done());
    assert_eq!(r.finish().unwrap(), Store::empty_root());
}

/// A server that hides the end (clears the flag on the true last chunk) cannot stall the
/// restore: the proof says it is the last one.
#[test]
fn the_end_is_read_from_the_proof_not_the_flag() {
    let (_d, src) = source();
    let root = src.root_at(4).unwrap();
    let (_e, dst) = fresh();
    let mut r = dst.restore(4, root).unwrap();
    let snap = src.snapshot_at(4).unwrap();
    while !r.is_done() {
        let mut c = snap.chunk(r.after(), 100).unwrap();
        assert_eq!(
            c.last,
            c.proves_rightmost(),
            "honest chunks agree with their proofs"
        );
        c.last = false;
        r.add(&c).unwrap();
    }
    assert_eq!(r.finish().unwrap(), root);
}
