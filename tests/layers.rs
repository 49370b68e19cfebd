//! The shape of the code: every `crate::` path in `src/` (and every
//! `dailydigest::` path of the binary) points to a layer below (or beside)
//! its own, never above, and no cli module uses another. The layers, top
//! to bottom (ARCHITECTURE.md):
//! `main → cli → serve → pipeline → mail / render → edition → summarize /
//! embed / ingest → text / store / config / article / lock / models`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A module's layer: higher may use lower (or equal), never the reverse.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "main" => 9,
        "cli" => 8,
        "serve" => 7,
        "pipeline" => 6,
        "mail" => 5,
        "render" => 4,
        "edition" => 3,
        "summarize" | "ingest" | "embed" => 2,
        "text" | "store" | "config" | "article" | "lock" | "models" | "progress" => 1,
        _ => return None,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without comments and without its unit-test module;
/// the binary's `dailydigest::x` (the library, seen from `main.rs` and
/// `cli/`) reads as `crate::x`.
fn code(text: &str) -> String {
    let without_tests = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    without_tests
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("dailydigest::", "crate::")
}

/// The top-level modules a file names with `crate::x`, including inside
/// `use crate::{a, b::c}` groups.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn layers_point_down_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    let mut unknown = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let Some(own) = layer(&top) else {
            unknown.push(rel.display().to_string());
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in uses(&code(&text)) {
            match layer(&used) {
                Some(l) if l > own => upward.push(format!("{} -> crate::{used}", rel.display())),
                Some(_) => {}
                None if used == "Article" => {}
                None => unknown.push(format!("{} names crate::{used}", rel.display())),
            }
        }
        // No cli module uses another (cli/mod.rs holds what they share).
        if top == "cli" && !rel.ends_with("mod.rs") {
            for sibling in [
                "args",
                "dkim",
                "edition",
                "model",
                "preview",
                "progress",
                "run",
                "send",
                "subscribers",
                "summarize",
            ] {
                if text.contains(&format!("super::{sibling}")) {
                    upward.push(format!("{} -> cli::{sibling}", rel.display()));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules without a layer (add them to `layer` and the README): {unknown:?}"
    );
    assert!(upward.is_empty(), "imports that point up: {upward:#?}");
}

#[test]
fn the_checker_sees_upward_imports() {
    let found = uses(&code(
        "use crate::{article::Article, pipeline};\nfn f() { crate::cli::run(); }\n// crate::serve\n",
    ));
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["article", "cli", "pipeline"]
    );
}

/// One store handle per process: only the pipeline opens the database (a
/// day's run opens it once and passes it down; the delivery loop's workers
/// share it).
#[test]
fn only_the_pipeline_opens_the_database() {
    let openers = outside_the_store(|code| code.contains("Store::open"));
    assert_eq!(openers, ["pipeline/mod.rs"]);
}

/// The files under `src/` but outside `src/store/` whose code (comments
/// left out) passes `test`, sorted.
fn outside_the_store(test: impl Fn(&str) -> bool) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(src.join("store")))
        .filter(|f| test(&code(&std::fs::read_to_string(f).unwrap())))
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    found.sort();
    found
}

/// The store is one interface (`store::Backend`, a trait per table) that
/// a second backend can implement: outside `src/store/` nothing names
/// SQLite, its crate or its backend type, so what the rest of the program
/// asks of storage is all in the traits.
#[test]
fn only_the_store_knows_it_is_sqlite() {
    let knowing = outside_the_store(|code| code.contains("rusqlite") || code.contains("Sqlite"));
    assert_eq!(knowing, Vec::<String>::new());
    // Nor that PostgreSQL is spoken through a client crate.
    let knowing = outside_the_store(|code| {
        code.contains("postgres::")
            || code.contains("tokio_postgres")
            || code.contains("store::Postgres")
    });
    assert_eq!(knowing, Vec::<String>::new());
}
