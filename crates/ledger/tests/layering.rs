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
        if name == "mod" {
            continue;
        }
        // A component in a directory is all its files together.
        let src = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            std::fs::read_to_string(&path).unwrap()
        };
        sources.insert(name, src);
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
    if let Some(c) = cycle(&graph) {
        panic!("import cycle: {}", c.join(" -> "));
    }
}

/// A cycle of `graph`, if it has one (depth-first: a module met again on the current path).
fn cycle(graph: &BTreeMap<&String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<&String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if done.contains(m) {
            return None;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut c = path[i..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        path.push(m.to_string());
        for d in graph.get(&m.to_string()).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_only_a_cycle() {
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let mut g = BTreeMap::new();
    g.insert(&names[0], set(&["b"]));
    g.insert(&names[1], set(&["c"]));
    g.insert(&names[2], set(&[]));
    assert_eq!(cycle(&g), None);
    g.insert(&names[2], set(&["a"]));
    assert_eq!(cycle(&g).unwrap(), ["a", "b", "c", "a"]);
}

#[test]
fn the_import_reader_sees_groups_paths_and_skips_comments() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let src =
        "use super::{a, b::X};\n// super::c in a comment\nfn f() { crate::components::d::g(); }";
    let got: Vec<_> = imports(src, &modules).into_iter().collect();
    assert_eq!(got, ["a", "b", "d"]);
}
