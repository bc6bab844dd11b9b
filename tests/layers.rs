//! The structure stays as designed (`design/architecture.md`): the top-level modules of
//! `src/` form layers, and a module may use only modules of lower layers. So there is no
//! import cycle, and a newcomer reads the code top-down: wiring → interfaces → the
//! control thread → the status hub → the pipeline threads → the wires → leaves.
//!
//! Read from the code itself: every `crate::<module>` a file names (in `use` lines or in
//! paths), outside comments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer: a module may use only modules of a lower number.
const LAYERS: &[(&str, u32)] = &[
    // wiring
    ("run", 90),
    ("bench", 85),
    ("check", 85),
    ("dashboard", 80),
    // interfaces: how people, scripts, other programs and the system reach the recorder
    ("api", 70),
    ("trigger", 70),
    ("lsl", 70),
    ("service", 70),
    ("disk", 70),
    ("repair", 70),
    ("devices", 70),
    // the executor: carries out the recorder's decisions
    ("control", 60),
    // everyone's view of everything
    ("hub", 55),
    ("numbers", 50),
    // the recordings on disk: which files, what they hold
    ("recordings", 50),
    // a recording's quality report, drawn from its files
    ("report", 52),
    // the pipeline threads
    ("capture", 45),
    ("audio", 45),
    ("writer", 40),
    ("source", 30),
    ("ring", 30),
    // the wires between threads
    ("bus", 25),
    ("event", 22),
    // leaves
    ("recorder", 20),
    ("status", 21),
    ("storage", 20),
    ("frame", 15),
    ("config", 15),
    ("logging", 15),
    ("cli", 15),
    ("flaps", 15),
    ("power", 15),
    ("clock", 10),
    ("shutdown", 10),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to (`src/writer/files.rs` → `writer`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The modules each module names, with one place each names them.
fn edges() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in files {
        let from = module_of(&f);
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != from {
                    let rel = f.strip_prefix(src()).unwrap().display().to_string();
                    out.entry(from.clone())
                        .or_default()
                        .entry(name)
                        .or_insert(format!("src/{rel}:{}", n + 1));
                }
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_lower_layers() {
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let edges = edges();
    let mut problems = Vec::new();
    let mut modules: BTreeSet<&String> = edges.keys().collect();
    modules.extend(edges.values().flat_map(|m| m.keys()));
    for m in modules {
        if !layer.contains_key(m.as_str()) {
            problems.push(format!(
                "module `{m}` has no layer: give it one in tests/layers.rs (and design/architecture.md)"
            ));
        }
    }
    for (from, tos) in &edges {
        for (to, at) in tos {
            let (Some(a), Some(b)) = (layer.get(from.as_str()), layer.get(to.as_str())) else {
                continue;
            };
            if a <= b {
                problems.push(format!(
                    "`{from}` (layer {a}) uses `{to}` (layer {b}) at {at}: a module may use only lower layers"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The same rule, stated as what it guarantees: no cycle among the top-level modules
/// (found by depth-first search, so that a broken layer table cannot hide one).
#[test]
fn there_is_no_import_cycle() {
    let edges = edges();
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for to in edges.get(m).into_iter().flat_map(|t| t.keys()) {
            if let Some(c) = visit(to, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}
