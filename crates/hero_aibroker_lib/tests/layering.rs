//! The core's folders form layers with no import circle: each folder (and root module) may use
//! only the ones before it in [`ORDER`]. Reads every source file under `src/` (tests included)
//! for `crate::<unit>` paths, so a new use across the layers fails here with file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom first. Leaves (`endpoint`, `error`, `secret`, `mcp`) use no other unit.
const ORDER: &[&str] = &[
    "endpoint",
    "error",
    "secret",
    "mcp",
    "health",
    "config",
    "accounting",
    "translate",
    "providers",
    "state",
    "pipeline",
    "surfaces",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The unit a file belongs to: its folder under `src/`, or its own name at the root.
fn unit_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

#[test]
fn folders_depend_only_on_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let rank: BTreeMap<&str, usize> = ORDER.iter().enumerate().map(|(i, u)| (*u, i)).collect();
    let mut violations = Vec::new();
    let mut seen_units = std::collections::BTreeSet::new();
    for file in &files {
        let unit = unit_of(&src, file);
        if unit == "lib" {
            continue;
        }
        seen_units.insert(unit.clone());
        let Some(&mine) = rank.get(unit.as_str()) else {
            violations.push(format!("{}: unit {unit:?} is not in ORDER", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let used: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used == unit {
                    continue;
                }
                match rank.get(used.as_str()) {
                    Some(&theirs) if theirs < mine => {}
                    _ => violations.push(format!(
                        "{}:{}: {unit} uses crate::{used}",
                        file.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering:\n{}",
        violations.join("\n")
    );
    // Every listed unit exists: the order describes the tree as it is.
    for u in ORDER {
        assert!(seen_units.contains(*u), "{u} is in ORDER but not in src/");
    }
}

/// Every folder of the core opens with a `//!` saying its job.
#[test]
fn every_folder_says_its_job() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let module = path.join("mod.rs");
            let text = std::fs::read_to_string(&module)
                .unwrap_or_else(|e| panic!("{}: {e}", module.display()));
            assert!(
                text.trim_start().starts_with("//!"),
                "{} does not open with a //! doc",
                module.display()
            );
        }
    }
}
