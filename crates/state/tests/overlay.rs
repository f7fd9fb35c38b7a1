mod common;

use common::{b, fresh, none, w};
use opal_state::Overlay;

#[test]
fn empty_overlay_put_get_delete() {
    let mut o = Overlay::empty();
    assert_eq!(o.get(b"a").unwrap(), None);
    o.put(b("a"), b("1"));
    assert_eq!(o.get(b"a").unwrap(), Some(b("1")));
    o.delete(b("a"));
    assert_eq!(o.get(b"a").unwrap(), None);
    assert_eq!(o.writes().get(&b("a")[..]), Some(&None));
}

#[test]
fn overlay_over_snapshot_reads_through_and_shadows() {
    let (_d, s) = fresh();
    s.commit(
        0,
        w(&[
            ("a", Some("1")),
            ("b", Some("2")),
            ("p/1", Some("x")),
            ("p/3", Some("z")),
        ]),
        none(),
    )
    .unwrap();
    let mut o = Overlay::new(s.snapshot().unwrap());
    assert_eq!(o.get(b"a").unwrap(), Some(b("1")));
    o.put(b("a"), b("10"));
    o.delete(b("b"));
    o.put(b("p/2"), b("y"));
    o.delete(b("p/3"));
    assert_eq!(o.get(b"a").unwrap(), Some(b("10")));
    assert_eq!(o.get(b"b").unwrap(), None);
    assert_eq!(
        o.prefix(b"p/").unwrap(),
        vec![(b("p/1"), b("x")), (b("p/2"), b("y"))]
    );
    // base untouched
    assert_eq!(s.snapshot().unwrap().get(b"b").unwrap(), Some(b("2")));
    // committing the overlay's writes gives the state it showed
    let writes = o.into_writes();
    s.commit(1, writes, none()).unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.get(b"a").unwrap(), Some(b("10")));
    assert_eq!(snap.get(b"b").unwrap(), None);
    assert_eq!(
        snap.prefix(b"p/").unwrap(),
        vec![(b("p/1"), b("x")), (b("p/2"), b("y"))]
    );
}

#[test]
fn fork_sees_parent_and_apply_merges() {
    let mut parent = Overlay::empty();
    parent.put(b("a"), b("1"));
    parent.put(b("c"), b("3"));
    let mut child = parent.fork();
    assert_eq!(child.get(b"a").unwrap(), Some(b("1")));
    child.put(b("a"), b("2"));
    child.put(b("b"), b("x"));
    child.delete(b("c"));
    assert!(child.writes().len() == 3, "child holds only its own writes");
    assert_eq!(
        child.prefix(b"").unwrap(),
        vec![(b("a"), b("2")), (b("b"), b("x"))]
    );
    // parent does not see child's writes before apply
    assert_eq!(parent.get(b"a").unwrap(), Some(b("1")));
    assert_eq!(parent.get(b"b").unwrap(), None);
    parent.apply(child);
    assert_eq!(parent.get(b"a").unwrap(), Some(b("2")));
    assert_eq!(parent.get(b"b").unwrap(), Some(b("x")));
    assert_eq!(parent.get(b"c").unwrap(), None);
    let ws = parent.into_writes();
    assert_eq!(ws, w(&[("a", Some("2")), ("b", Some("x")), ("c", None)]));
}

#[test]
fn dropped_fork_changes_nothing() {
    let mut parent = Overlay::empty();
    parent.put(b("a"), b("1"));
    {
        let mut child = parent.fork();
        child.put(b("a"), b("bad"));
        child.put(b("z"), b("bad"));
    }
    assert_eq!(parent.get(b"a").unwrap(), Some(b("1")));
    assert_eq!(parent.get(b"z").unwrap(), None);
    assert_eq!(parent.writes().len(), 1);
    // parent can keep writing after a fork was dropped
    parent.put(b("b"), b("2"));
    assert_eq!(parent.writes().len(), 2);
}

#[test]
fn nested_forks() {
    let (_d, s) = fresh();
    s.commit(0, w(&[("base", Some("0")), ("k/1", Some("b1"))]), none())
        .unwrap();
    let mut block = Overlay::new(s.snapshot().unwrap());
    block.put(b("k/2"), b("blk"));
    let mut tx = block.fork();
    tx.put(b("k/3"), b("tx"));
    let mut call = tx.fork();
    call.delete(b("k/1"));
    call.put(b("k/4"), b("call"));
    assert_eq!(
        call.prefix(b"k/").unwrap(),
        vec![
            (b("k/2"), b("blk")),
            (b("k/3"), b("tx")),
            (b("k/4"), b("call"))
        ]
    );
    assert_eq!(call.get(b"base").unwrap(), Some(b("0")));
    tx.apply(call);
    assert_eq!(tx.get(b"k/1").unwrap(), None);
    block.apply(tx);
    let ws = block.into_writes();
    assert_eq!(
        ws,
        w(&[
            ("k/1", None),
            ("k/2", Some("blk")),
            ("k/3", Some("tx")),
            ("k/4", Some("call"))
        ])
    );
}

#[test]
fn fork_is_a_snapshot_of_parent_writes() {
    let mut parent = Overlay::empty();
    parent.put(b("a"), b("1"));
    let child = parent.fork();
    parent.put(b("a"), b("2")); // copy-on-write: child keeps seeing "1"
    assert_eq!(child.get(b"a").unwrap(), Some(b("1")));
    assert_eq!(parent.get(b"a").unwrap(), Some(b("2")));
}

#[test]
fn apply_empty_child_and_apply_into_empty_parent() {
    let mut p = Overlay::empty();
    let c = p.fork();
    p.apply(c);
    assert!(p.writes().is_empty());
    let mut c = p.fork();
    c.put(b("x"), b("1"));
    p.apply(c);
    assert_eq!(p.writes().len(), 1);
    assert_eq!(p.get(b"x").unwrap(), Some(b("1")));
}

#[test]
fn overlay_outlives_later_commits() {
    let (_d, s) = fresh();
    s.commit(0, w(&[("a", Some("1"))]), none()).unwrap();
    let o = Overlay::new(s.snapshot().unwrap());
    s.commit(1, w(&[("a", Some("2"))]), none()).unwrap();
    assert_eq!(o.get(b"a").unwrap(), Some(b("1")));
}

mod first {
    use super::common::{fresh, none};
    use opal_state::Overlay;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(i: u8) -> Vec<u8> {
        // Two prefixes interleaved, so the scan must stop at the prefix's end.
        let p = if i % 3 == 0 { b"q/" } else { b"p/" };
        [p.as_slice(), &[i / 3]].concat()
    }

    proptest! {
        /// Over committed versions (with deletes) and two layers of forked writes, `first`
        /// is always the head of the full merged scan.
        #[test]
        fn first_is_the_head_of_the_merged_prefix_scan(
            versions in prop::collection::vec(prop::collection::vec((0u8..30, any::<bool>()), 0..12), 1..4),
            block in prop::collection::vec((0u8..30, any::<bool>()), 0..12),
            tx in prop::collection::vec((0u8..30, any::<bool>()), 0..12),
        ) {
            let (_d, s) = fresh();
            for (v, ops) in versions.iter().enumerate() {
                let w: BTreeMap<Vec<u8>, Option<Vec<u8>>> = ops
                    .iter()
                    .map(|(k, put)| (key(*k), put.then(|| vec![*k, v as u8])))
                    .collect();
                s.commit(v as u64, w, none()).unwrap();
            }
            let mut o = Overlay::new(s.snapshot().unwrap());
            let apply = |o: &mut Overlay, ops: &[(u8, bool)]| {
                for (k, put) in ops {
                    if *put { o.put(key(*k), vec![*k, 99]) } else { o.delete(key(*k)) }
                }
            };
            apply(&mut o, &block);
            let mut child = o.fork();
            apply(&mut child, &tx);
            for view in [&o, &child] {
                for prefix in [b"p/".as_slice(), b"q/", b""] {
                    let head = view.prefix(prefix).unwrap().into_iter().next();
                    prop_assert_eq!(view.first(prefix).unwrap(), head);
                }
            }
            prop_assert_eq!(Overlay::empty().first(b"p/").unwrap(), None);
        }
    }
}
