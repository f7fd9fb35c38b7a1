//! The registry is pinned: every string is unique, and the list equals the committed fixture
//! `tests/domains.txt` (so an edited string fails here before it breaks ids and signatures).

use std::collections::BTreeSet;

#[test]
fn every_domain_string_is_unique() {
    let mut seen = BTreeSet::new();
    for (name, value) in opal_domains::ALL {
        assert!(seen.insert(*value), "{name}: {value:?} is registered twice");
    }
}

#[test]
fn the_registry_equals_the_frozen_fixture() {
    let fixture = include_str!("domains.txt");
    let pinned: Vec<(&str, &str)> = fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split_once(" = ").expect("NAME = VALUE"))
        .collect();
    let now: Vec<(&str, &str)> = opal_domains::ALL.to_vec();
    for (name, value) in &pinned {
        let got = now.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(
            got,
            Some(*value),
            "{name} changed or was removed: domain strings are frozen"
        );
    }
    assert_eq!(
        now.len(),
        pinned.len(),
        "a domain string was added: add it to tests/domains.txt"
    );
}
