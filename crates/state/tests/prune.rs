//! Pruning (`Retention::Last(n)`): every version kept reads, proves and roots exactly as in an
//! archive store fed the same writes; older versions answer `Pruned`; the tables stop growing.

mod common;

use common::{b, fresh, w, Map};
use opal_state::{Retention, StateError, Store};
use proptest::prelude::*;

/// Version `v`'s writes: overwrite a sliding window of 40 of 100 keys, delete a few, and
/// re-create some deleted ones (deterministic from `v`).
fn writes(v: u64) -> Map {
    let mut m = Map::new();
    for i in 0..40u64 {
        let k = (v * 7 + i) % 100;
        m.insert(
            format!("k/{k:03}").into_bytes(),
            Some(format!("v{v}-{i}").into_bytes()),
        );
    }
    for i in 0..3u64 {
        let k = (v * 13 + i * 31) % 100;
        m.insert(format!("k/{k:03}").into_bytes(), None);
    }
    m
}

fn feed(store: &Store, versions: u64) {
    for v in 0..versions {
        store.commit(v, writes(v), Default::default()).unwrap();
    }
}

fn keys() -> Vec<Vec<u8>> {
    (0..100).map(|k| format!("k/{k:03}").into_bytes()).collect()
}

#[test]
fn kept_versions_read_like_the_archive_and_older_ones_are_pruned() {
    let (_a, archive) = fresh();
    let (_p, pruned) = fresh();
    pruned.set_retention(Retention::Last(10)).unwrap();
    feed(&archive, 200);
    feed(&pruned, 200);
    assert_eq!(pruned.oldest_version(), 190);
    assert_eq!(archive.oldest_version(), 0);
    for v in 190..200 {
        let (sa, sp) = (
            archive.snapshot_at(v).unwrap(),
            pruned.snapshot_at(v).unwrap(),
        );
        assert_eq!(sa.root(), sp.root(), "root of version {v}");
        for k in keys() {
            assert_eq!(sa.get(&k).unwrap(), sp.get(&k).unwrap(), "version {v}");
            let (value, proof) = sp.get_with_proof(&k).unwrap();
            assert_eq!(value, sa.get(&k).unwrap());
            // The pruned store's proof checks against the archive's root of that version.
            proof.verify(&sa.root(), &k, value.as_deref()).unwrap();
        }
        assert_eq!(sa.prefix(b"k/").unwrap(), sp.prefix(b"k/").unwrap());
    }
    for v in [0, 100, 189] {
        match pruned.snapshot_at(v) {
            Err(StateError::Pruned { version, oldest }) => {
                assert_eq!((version, oldest), (v, 190));
            }
            other => panic!("version {v}: {other:?}"),
        }
        // Roots stay for every version.
        assert_eq!(pruned.root_at(v).unwrap(), archive.root_at(v).unwrap());
    }
    let msg = pruned.snapshot_at(5).unwrap_err().to_string();
    assert!(
        msg.contains("version 5 was pruned") && msg.contains("190"),
        "{msg}"
    );
}

#[test]
fn pruned_tables_stop_growing_while_the_archive_grows() {
    let (_a, archive) = fresh();
    let (_p, pruned) = fresh();
    pruned.set_retention(Retention::Last(5)).unwrap();
    feed(&archive, 100);
    feed(&pruned, 100);
    let at_100 = pruned.stats().unwrap();
    for v in 100..300 {
        archive.commit(v, writes(v), Default::default()).unwrap();
        pruned.commit(v, writes(v), Default::default()).unwrap();
    }
    let (sa, sp) = (archive.stats().unwrap(), pruned.stats().unwrap());
    println!("after 300 versions: archive {sa:?}\n                    pruned  {sp:?}");
    // The same writes repeat with period 100: a pruned store holds the same amount after 100
    // and after 300 versions (within one version's changes).
    assert!(sp.nodes <= at_100.nodes + 200, "{at_100:?} -> {sp:?}");
    assert!(sp.values <= at_100.values + 50, "{at_100:?} -> {sp:?}");
    assert!(sa.nodes > 5 * sp.nodes, "archive {sa:?} vs pruned {sp:?}");
    assert!(sa.values > 5 * sp.values, "archive {sa:?} vs pruned {sp:?}");
    assert_eq!(sp.roots, 300);
    assert_eq!(sp.preimages, 100);
}

#[test]
fn switching_an_archive_to_pruning_catches_up_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let s = Store::open(&path).unwrap();
        feed(&s, 50);
        s.set_retention(Retention::Last(3)).unwrap();
        s.commit(50, writes(50), Default::default()).unwrap();
        assert_eq!(s.oldest_version(), 48);
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.oldest_version(), 48, "oldest is durable");
    assert_eq!(
        s.retention(),
        Retention::Archive,
        "retention is the opener's choice"
    );
    assert!(matches!(s.snapshot_at(47), Err(StateError::Pruned { .. })));
    // The tree at the latest version is whole: the next commit builds on it.
    s.commit(51, writes(51), Default::default()).unwrap();
    let (_a, archive) = fresh();
    feed(&archive, 52);
    assert_eq!(s.root_at(51).unwrap(), archive.root_at(51).unwrap());
    for k in keys() {
        assert_eq!(
            s.snapshot().unwrap().get(&k).unwrap(),
            archive.snapshot().unwrap().get(&k).unwrap()
        );
    }
}

#[test]
fn keeping_only_the_latest_version_still_commits_and_proves() {
    let (_d, s) = fresh();
    assert!(s.set_retention(Retention::Last(0)).is_err());
    s.set_retention(Retention::Last(1)).unwrap();
    s.commit(
        0,
        w(&[("a", Some("1")), ("b", Some("2"))]),
        Default::default(),
    )
    .unwrap();
    s.commit(1, w(&[("a", None)]), Default::default()).unwrap();
    let r2 = s
        .commit(2, w(&[("a", Some("3"))]), Default::default())
        .unwrap();
    assert_eq!(s.oldest_version(), 2);
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.get(b"a").unwrap(), Some(b("3")));
    assert_eq!(snap.get(b"b").unwrap(), Some(b("2")));
    let (v, p) = snap.get_with_proof(b"b").unwrap();
    p.verify(&r2, b"b", v.as_deref()).unwrap();
    assert!(matches!(s.snapshot_at(1), Err(StateError::Pruned { .. })));
    // Only the live entries are left: two values, no stale index.
    let st = s.stats().unwrap();
    assert_eq!(
        (st.values, st.stale_values, st.stale_nodes),
        (2, 0, 0),
        "{st:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Random writes and deletes over a few keys, random retention: every kept version equals
    /// the archive's.
    #[test]
    fn random_histories_prune_consistently(
        history in prop::collection::vec(
            prop::collection::btree_map(0u8..12, prop::option::of(0u8..4), 0..6), 1..40),
        keep in 1u64..6,
    ) {
        let (_a, archive) = fresh();
        let (_p, pruned) = fresh();
        pruned.set_retention(Retention::Last(keep)).unwrap();
        for (v, ws) in history.iter().enumerate() {
            let m: Map = ws
                .iter()
                .map(|(k, val)| (vec![*k], val.map(|x| vec![x])))
                .collect();
            archive.commit(v as u64, m.clone(), Default::default()).unwrap();
            pruned.commit(v as u64, m, Default::default()).unwrap();
        }
        let latest = history.len() as u64 - 1;
        let oldest = pruned.oldest_version();
        prop_assert_eq!(oldest, latest.saturating_sub(keep - 1));
        for v in oldest..=latest {
            let (sa, sp) = (archive.snapshot_at(v).unwrap(), pruned.snapshot_at(v).unwrap());
            prop_assert_eq!(sa.root(), sp.root());
            for k in 0u8..12 {
                prop_assert_eq!(sa.get(&[k]).unwrap(), sp.get(&[k]).unwrap());
                let (val, proof) = sp.get_with_proof(&[k]).unwrap();
                prop_assert!(proof.verify(&sa.root(), &[k], val.as_deref()).is_ok());
            }
        }
    }
}
