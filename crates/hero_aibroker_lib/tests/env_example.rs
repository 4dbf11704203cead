//! `.env.example` documents every environment variable the services read, and nothing else:
//! the names the code reads (string literals shaped like `UPPER_CASE` in the non-test sources
//! of every service crate), the built-in providers' `{NAME}_API_KEY(S)` / `{NAME}_BASE_URL`,
//! and `RUST_LOG`. A variable added to the code without a line there, or a line left for a
//! variable the code no longer reads, fails here by name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hero_aibroker_lib::config::models::{BUILTIN_PROVIDERS, env_prefix};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Source files of the service crates, test modules and test files left out.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            sources(&path, out);
        } else if name.ends_with(".rs") && !name.ends_with("tests.rs") {
            out.push(path);
        }
    }
}

/// `"UPPER_CASE"` literals (at least one underscore) before the first `#[cfg(test)]`.
fn names_in(text: &str) -> BTreeSet<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut names = BTreeSet::new();
    for literal in text.split('"').skip(1).step_by(2) {
        let shaped = literal.contains('_')
            && literal.starts_with(|c: char| c.is_ascii_uppercase())
            && literal
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !literal.starts_with("CARGO_");
        if shaped {
            names.insert(literal.to_owned());
        }
    }
    names
}

fn read_by_code() -> BTreeSet<String> {
    let mut files = Vec::new();
    for krate in std::fs::read_dir(repo().join("crates")).expect("crates") {
        let krate = krate.expect("entry").path();
        // The testkit is test tooling: what it sets is not what the services read.
        if krate.ends_with("hero_aibroker_testkit") {
            continue;
        }
        if krate.join("src").is_dir() {
            sources(&krate.join("src"), &mut files);
        }
    }
    let mut names: BTreeSet<String> = files
        .iter()
        .flat_map(|f| names_in(&std::fs::read_to_string(f).expect("read")))
        .collect();
    for (name, _) in BUILTIN_PROVIDERS {
        let p = env_prefix(name);
        names.extend([
            format!("{p}_API_KEY"),
            format!("{p}_API_KEYS"),
            format!("{p}_BASE_URL"),
        ]);
    }
    names.insert("RUST_LOG".into());
    names.insert("NO_COLOR".into());
    names
}

/// `NAME=` at the start of a line, commented out or not.
fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join(".env.example")).expect(".env.example");
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start_matches('#').trim_start();
            let (name, _) = l.split_once('=')?;
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn env_example_lists_exactly_the_variables_the_services_read() {
    let code = read_by_code();
    let doc = documented();
    let missing: Vec<_> = code.difference(&doc).collect();
    let stale: Vec<_> = doc.difference(&code).collect();
    assert!(
        missing.is_empty(),
        "read by the code but not in .env.example: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "in .env.example but read by no service: {stale:?}"
    );
    // Sanity: the scan sees the settings it must see.
    for name in [
        "DATABASE_URL",
        "ROUTING_STRATEGY",
        "OPENROUTER_API_KEYS",
        "MCP_CONFIG_PATH",
    ] {
        assert!(code.contains(name), "{name} not found by the scan");
    }
}
