//! `prime-core`'s modules form a graph without cycles: a module only uses modules below it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module of each `crate::…` path used in `text`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let name: String =
            text[i + "crate::".len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Every top-level module of `src` with the top-level modules its files use (doc links and
/// comments included: they must not point upwards either).
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(src).expect("inside src");
            let first = relative.components().next().expect("a component").as_os_str().to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source file");
            let used: Vec<String> = uses(&text).into_iter().filter(|m| *m != module).collect();
            graph.entry(module).or_default().extend(used);
        }
    }
    graph
}

#[test]
fn core_modules_have_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
    let graph = graph(&src);
    assert!(graph.len() > 10, "found modules {:?}", graph.keys());
    // Depth-first search for a back edge.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| *p == m) {
            panic!("module cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m);
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    // The layering the issue asked for: the sampler knows no model, the model no sampler.
    assert!(!graph["sampler"].contains("model"), "sampler uses model: {:?}", graph["sampler"]);
    assert!(!graph["model"].contains("sampler"), "model uses sampler: {:?}", graph["model"]);
}
