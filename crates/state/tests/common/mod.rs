#![allow(dead_code)]
use std::collections::BTreeMap;

use opal_state::Store;

pub type Map = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

pub fn w(entries: &[(&str, Option<&str>)]) -> Map {
    entries
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
        .collect()
}

pub fn none() -> Map {
    BTreeMap::new()
}

pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state.redb")).expect("open");
    (dir, store)
}
