mod common;

use common::{b, fresh, none, w};
use opal_state::{StateError, Store};

#[test]
fn empty_store() {
    let (_d, s) = fresh();
    assert_eq!(s.latest_version(), None);
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.version(), None);
    assert_eq!(snap.root(), Store::empty_root());
    assert_eq!(snap.get(b"x").unwrap(), None);
    assert!(snap.prefix(b"").unwrap().is_empty());
    assert!(matches!(s.root_at(0), Err(StateError::UnknownVersion(0))));
    assert!(matches!(
        s.snapshot_at(0),
        Err(StateError::UnknownVersion(0))
    ));
}

#[test]
fn empty_first_commit_has_empty_root() {
    let (_d, s) = fresh();
    let r = s.commit(0, none(), none()).unwrap();
    assert_eq!(r, Store::empty_root());
    assert_eq!(s.latest_version(), Some(0));
    let r1 = s.commit(1, none(), none()).unwrap();
    assert_eq!(r1, r);
    // deleting keys that never existed keeps the empty root
    let r2 = s.commit(2, w(&[("ghost", None)]), none()).unwrap();
    assert_eq!(r2, Store::empty_root());
    assert_eq!(s.snapshot().unwrap().get(b"ghost").unwrap(), None);
}

#[test]
fn first_commit_may_delete_unknown_keys() {
    let (_d, s) = fresh();
    let r = s
        .commit(0, w(&[("ghost", None), ("real", Some("1"))]), none())
        .unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.get(b"real").unwrap(), Some(b("1")));
    assert_eq!(snap.prefix(b"").unwrap(), vec![(b("real"), b("1"))]);
    let (_, p) = snap.get_with_proof(b"ghost").unwrap();
    p.verify(&r, b"ghost", None).unwrap();
}

#[test]
fn put_get_across_versions() {
    let (_d, s) = fresh();
    let r0 = s
        .commit(0, w(&[("a", Some("1")), ("b", Some("2"))]), none())
        .unwrap();
    let r1 = s
        .commit(1, w(&[("a", Some("10")), ("c", Some("3"))]), none())
        .unwrap();
    let r2 = s.commit(2, none(), none()).unwrap();
    assert_ne!(r0, r1);
    assert_eq!(r1, r2, "empty write set keeps the root");
    assert_eq!(s.latest_version(), Some(2));
    assert_eq!(s.root_at(0).unwrap(), r0);
    assert_eq!(s.root_at(1).unwrap(), r1);
    assert_eq!(s.root_at(2).unwrap(), r2);

    let v0 = s.snapshot_at(0).unwrap();
    assert_eq!(v0.version(), Some(0));
    assert_eq!(v0.root(), r0);
    assert_eq!(v0.get(b"a").unwrap(), Some(b("1")));
    assert_eq!(v0.get(b"c").unwrap(), None);

    let latest = s.snapshot().unwrap();
    assert_eq!(latest.version(), Some(2));
    assert_eq!(latest.root(), r2);
    assert_eq!(latest.get(b"a").unwrap(), Some(b("10")));
    assert_eq!(latest.get(b"b").unwrap(), Some(b("2")));
    assert_eq!(latest.get(b"c").unwrap(), Some(b("3")));
    assert!(matches!(
        s.snapshot_at(3),
        Err(StateError::UnknownVersion(3))
    ));
}

#[test]
fn delete_and_reinsert() {
    let (_d, s) = fresh();
    let r0 = s
        .commit(0, w(&[("a", Some("1")), ("b", Some("2"))]), none())
        .unwrap();
    let r1 = s
        .commit(1, w(&[("a", None), ("zz", None)]), none())
        .unwrap();
    assert_eq!(s.snapshot().unwrap().get(b"a").unwrap(), None);
    assert_eq!(s.snapshot_at(0).unwrap().get(b"a").unwrap(), Some(b("1")));
    let r2 = s.commit(2, w(&[("a", Some("1"))]), none()).unwrap();
    assert_eq!(r2, r0, "root depends only on the key/value set");
    assert_ne!(r1, r0);
    // delete everything -> empty root again
    let r3 = s.commit(3, w(&[("a", None), ("b", None)]), none()).unwrap();
    assert_eq!(r3, Store::empty_root());
    let r4 = s.commit(4, w(&[("b", Some("2"))]), none()).unwrap();
    assert_eq!(s.snapshot().unwrap().get(b"b").unwrap(), Some(b("2")));
    assert_eq!(r4, s.root_at(4).unwrap());
}

#[test]
fn prefix_scans_at_old_and_new_versions() {
    let (_d, s) = fresh();
    s.commit(
        0,
        w(&[
            ("acct/1", Some("a")),
            ("acct/3", Some("c")),
            ("model/1", Some("m")),
        ]),
        none(),
    )
    .unwrap();
    s.commit(
        1,
        w(&[
            ("acct/2", Some("b")),
            ("acct/3", None),
            ("acct/1", Some("A")),
        ]),
        none(),
    )
    .unwrap();
    let old = s.snapshot_at(0).unwrap();
    assert_eq!(
        old.prefix(b"acct/").unwrap(),
        vec![(b("acct/1"), b("a")), (b("acct/3"), b("c"))]
    );
    let new = s.snapshot().unwrap();
    assert_eq!(
        new.prefix(b"acct/").unwrap(),
        vec![(b("acct/1"), b("A")), (b("acct/2"), b("b"))]
    );
    assert_eq!(new.prefix(b"model/").unwrap(), vec![(b("model/1"), b("m"))]);
    assert_eq!(new.prefix(b"").unwrap().len(), 3);
    assert!(new.prefix(b"zzz").unwrap().is_empty());
}

#[test]
fn prefix_handles_0xff_bytes() {
    let (_d, s) = fresh();
    let mut m = none();
    m.insert(vec![0xff, 0xff], Some(vec![1]));
    m.insert(vec![0xff, 0xff, 0x00], Some(vec![2]));
    m.insert(vec![0xff], Some(vec![3]));
    m.insert(vec![0xfe, 0xff], Some(vec![4]));
    s.commit(0, m, none()).unwrap();
    let snap = s.snapshot().unwrap();
    let got = snap.prefix(&[0xff, 0xff]).unwrap();
    assert_eq!(
        got,
        vec![(vec![0xff, 0xff], vec![1]), (vec![0xff, 0xff, 0], vec![2])]
    );
    assert_eq!(snap.prefix(&[0xff]).unwrap().len(), 3);
}

#[test]
fn empty_value_is_present_not_deleted() {
    let (_d, s) = fresh();
    let r = s.commit(0, w(&[("k", Some(""))]), none()).unwrap();
    assert_ne!(r, Store::empty_root());
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.get(b"k").unwrap(), Some(vec![]));
    let (v, p) = snap.get_with_proof(b"k").unwrap();
    assert_eq!(v, Some(vec![]));
    p.verify(&r, b"k", Some(b"")).unwrap();
    assert!(p.verify(&r, b"k", None).is_err());
}

#[test]
fn aux_put_delete_prefix() {
    let (_d, s) = fresh();
    let r0 = s
        .commit(
            0,
            none(),
            w(&[
                ("tx/1", Some("x")),
                ("tx/2", Some("y")),
                ("tx/3", Some("z")),
                ("u", Some("q")),
            ]),
        )
        .unwrap();
    assert_eq!(r0, Store::empty_root(), "aux is outside the root");
    let snap0 = s.snapshot().unwrap();
    s.commit(1, none(), w(&[("tx/2", None)])).unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.get_aux(b"tx/1").unwrap(), Some(b("x")));
    assert_eq!(snap.get_aux(b"tx/2").unwrap(), None);
    assert_eq!(
        snap.aux_prefix(b"tx/", 10).unwrap(),
        vec![(b("tx/1"), b("x")), (b("tx/3"), b("z"))]
    );
    assert_eq!(
        snap.aux_prefix(b"tx/", 1).unwrap(),
        vec![(b("tx/1"), b("x"))]
    );
    assert!(snap.aux_prefix(b"tx/", 0).unwrap().is_empty());
    // old snapshot (read txn) still sees the old aux
    assert_eq!(snap0.get_aux(b"tx/2").unwrap(), Some(b("y")));
    // snapshot_at: values as of the version, aux as of now
    assert_eq!(s.snapshot_at(0).unwrap().get_aux(b"tx/2").unwrap(), None);
}

#[test]
fn wrong_version_is_rejected_and_changes_nothing() {
    let (_d, s) = fresh();
    assert!(matches!(
        s.commit(1, w(&[("a", Some("1"))]), none()),
        Err(StateError::VersionMismatch {
            expected: 0,
            got: 1
        })
    ));
    assert_eq!(s.latest_version(), None);
    let r0 = s
        .commit(0, w(&[("a", Some("1"))]), w(&[("x", Some("1"))]))
        .unwrap();
    for bad in [0u64, 2, 100, u64::MAX] {
        let e = s.commit(
            bad,
            w(&[("a", Some("2")), ("b", Some("3"))]),
            w(&[("x", None)]),
        );
        assert!(
            matches!(e, Err(StateError::VersionMismatch { expected: 1, got }) if got == bad),
            "{e:?}"
        );
    }
    assert_eq!(s.latest_version(), Some(0));
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.root(), r0);
    assert_eq!(snap.get(b"a").unwrap(), Some(b("1")));
    assert_eq!(snap.get(b"b").unwrap(), None);
    assert_eq!(snap.get_aux(b"x").unwrap(), Some(b("1")));
    assert!(matches!(s.root_at(1), Err(StateError::UnknownVersion(1))));
    // and the store still accepts the right version afterwards
    s.commit(1, w(&[("b", Some("3"))]), none()).unwrap();
}

#[test]
fn reopen_keeps_version_root_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (r1, r0) = {
        let s = Store::open(&path).unwrap();
        let r0 = s
            .commit(0, w(&[("a", Some("1"))]), w(&[("i", Some("x"))]))
            .unwrap();
        let r1 = s.commit(1, w(&[("b", Some("2"))]), none()).unwrap();
        (r1, r0)
    };
    let s = Store::open(&path).unwrap();
    assert_eq!(s.latest_version(), Some(1));
    assert_eq!(s.root_at(1).unwrap(), r1);
    assert_eq!(s.root_at(0).unwrap(), r0);
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.root(), r1);
    assert_eq!(snap.get(b"a").unwrap(), Some(b("1")));
    assert_eq!(snap.get_aux(b"i").unwrap(), Some(b("x")));
    let r2 = s.commit(2, w(&[("c", Some("3"))]), none()).unwrap();
    drop(snap);
    drop(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.latest_version(), Some(2));
    assert_eq!(s.snapshot().unwrap().root(), r2);
}

#[test]
fn open_rejects_garbage_file_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk");
    std::fs::write(&path, vec![0x5a; 10_000]).unwrap();
    assert!(Store::open(&path).is_err());
}

#[test]
fn open_rejects_unknown_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
                .unwrap();
            meta.insert("schema", &99u32.to_be_bytes()[..]).unwrap();
        }
        txn.commit().unwrap();
    }
    assert!(matches!(
        Store::open(&path),
        Err(StateError::UnsupportedSchema {
            found: 99,
            supported: 1
        })
    ));
}

#[test]
fn determinism_same_writes_same_roots() {
    let (_d1, a) = fresh();
    let (_d2, b_) = fresh();
    let mut roots_a = vec![];
    let mut roots_b = vec![];
    for v in 0..20u64 {
        let mut m = none();
        for i in 0..50u64 {
            let k = format!("acct/{}", (v * 37 + i * 11) % 300).into_bytes();
            let val = if (v + i) % 7 == 0 {
                None
            } else {
                Some(format!("{v}:{i}").into_bytes())
            };
            m.insert(k, val);
        }
        roots_a.push(a.commit(v, m.clone(), none()).unwrap());
        roots_b.push(b_.commit(v, m, w(&[("noise", Some("differs"))])).unwrap());
    }
    assert_eq!(roots_a, roots_b);
}

#[test]
fn known_root_vector() {
    // Pins the root encoding: a one-leaf tree's root is
    // SHA-256("JMT::LeafNode" || SHA-256(key) || SHA-256(value)), computed independently.
    let (_d, s) = fresh();
    let r = s.commit(0, w(&[("a", Some("1"))]), none()).unwrap();
    assert_eq!(
        hex::encode(r),
        "7d9d282a9389c7d2ad4b73b5e924aca19080fd5f8a1c93347f7b824138d00c59"
    );
    assert_eq!(Store::empty_root(), *b"SPARSE_MERKLE_PLACEHOLDER_HASH__");
}

#[test]
fn snapshot_is_isolated_from_later_commits() {
    let (_d, s) = fresh();
    s.commit(0, w(&[("a", Some("1")), ("p/1", Some("x"))]), none())
        .unwrap();
    let before = s.snapshot().unwrap();
    let r0 = before.root();
    s.commit(
        1,
        w(&[("a", Some("2")), ("p/2", Some("y")), ("p/1", None)]),
        none(),
    )
    .unwrap();
    assert_eq!(before.version(), Some(0));
    assert_eq!(before.root(), r0);
    assert_eq!(before.get(b"a").unwrap(), Some(b("1")));
    assert_eq!(before.prefix(b"p/").unwrap(), vec![(b("p/1"), b("x"))]);
    let (v, p) = before.get_with_proof(b"a").unwrap();
    assert_eq!(v, Some(b("1")));
    p.verify(&r0, b"a", Some(b"1")).unwrap();
    assert_eq!(s.snapshot().unwrap().get(b"a").unwrap(), Some(b("2")));
}

#[test]
fn concurrent_readers_and_committer() {
    let (_d, s) = fresh();
    s.commit(0, w(&[("k", Some("0"))]), none()).unwrap();
    let reader = {
        let s = s.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                let snap = s.snapshot().unwrap();
                let v = snap.version().unwrap();
                let got = snap.get(b"k").unwrap().unwrap();
                assert_eq!(got, v.to_string().into_bytes());
                assert_eq!(snap.root(), s.root_at(v).unwrap());
            }
        })
    };
    for v in 1..30u64 {
        let mut m = none();
        m.insert(b("k"), Some(v.to_string().into_bytes()));
        s.commit(v, m, none()).unwrap();
    }
    reader.join().unwrap();
}

#[test]
fn many_keys_one_commit_and_updates() {
    let (_d, s) = fresh();
    let mut m = none();
    for i in 0..5_000u32 {
        m.insert(
            format!("acct/{i:06}").into_bytes(),
            Some(i.to_be_bytes().to_vec()),
        );
    }
    s.commit(0, m, none()).unwrap();
    let mut m = none();
    for i in (0..5_000u32).step_by(3) {
        m.insert(
            format!("acct/{i:06}").into_bytes(),
            Some((i + 1).to_be_bytes().to_vec()),
        );
    }
    let r = s.commit(1, m, none()).unwrap();
    let snap = s.snapshot().unwrap();
    let all = snap.prefix(b"acct/").unwrap();
    assert_eq!(all.len(), 5_000);
    for (i, (_k, v)) in all.iter().enumerate() {
        let i = i as u32;
        let want = if i.is_multiple_of(3) { i + 1 } else { i };
        assert_eq!(v, &want.to_be_bytes().to_vec());
    }
    for i in [0u32, 1, 2, 2_999, 4_999] {
        let k = format!("acct/{i:06}").into_bytes();
        let (v, p) = snap.get_with_proof(&k).unwrap();
        p.verify(&r, &k, v.as_deref()).unwrap();
    }
}
