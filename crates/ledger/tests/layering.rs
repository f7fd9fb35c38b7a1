//! The ledger's components import each other without cycles (docs/layout.md gives the
//! layering). Read from the sources, so a new `use super::x` that closes a loop fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The component modules a source file names through `super::` or `crate::components::`
/// (comment lines skipped; brace groups `{a, b::c}` split).
fn imports(src: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    for prefix in ["super::", "crate::components::"] {
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + prefix.len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                group[..group.find('}').unwrap_or(group.len())]
                    .split(',')
                    .collect()
            } else {
                vec![rest]
            };
            for n in names {
                let first: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&first) {
                    out.insert(first);
                }
            }
        }
    }
    out
}

#[test]
fn ledger_components_import_each_other_without_cycles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/components");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name != "mod" {
            sources.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let graph: BTreeMap<&String, BTreeSet<String>> = sources
        .iter()
        .map(|(name, src)| {
            let mut deps = imports(src, &modules);
            deps.remove(name);
            (name, deps)
        })
        .collect();
    for (m, deps) in &graph {
        println!("{m} imports {deps:?}");
    }
    assert!(graph.len() >= 8, "found only {graph:?}");
    // Depth-first search; a module met again on the current path is a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<&String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| *p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m);
        for d in &graph[&m.to_string()] {
            visit(d, graph, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_import_reader_sees_groups_paths_and_skips_comments() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let src =
        "use super::{a, b::X};\n// super::c in a comment\nfn f() { crate::components::d::g(); }";
    let got: Vec<_> = imports(src, &modules).into_iter().collect();
    assert_eq!(got, ["a", "b", "d"]);
}
