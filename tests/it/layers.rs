//! The architecture, checked from the source (rust-analyzer's `tidy` tests are the
//! model): top-level modules import only modules of lower layers, so they form no
//! cycle; each external dependency is named by the one module that owns it; no file is
//! over 800 lines before its tests and no function over 120 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's layers, lowest first: a module may import any module of a lower
/// layer, none of its own or a higher one.
const LAYERS: &[&[&str]] = &[
    &["text", "messages", "store"],
    &["config", "telemetry"],
    &["kb", "llm"],
    &["ingest", "outbox"],
    &["cluster"],
    &["tools"],
    &["definitions"],
    &["routing"],
    &["agents"],
    &["supervisor"],
    &["admin", "runtime"],
];

/// External crates and the only places (path prefixes below `src/`) that name them.
const OWNERS: &[(&str, &[&str])] = &[
    ("sled", &["store/"]),
    ("rig_core", &["llm/rig.rs"]),
    ("rig_agent", &["llm/rig.rs"]),
    ("notify", &["ingest/"]),
    ("flate2", &["ingest/"]),
    ("anyhow", &["main.rs", "cli/"]),
    ("rustls", &["admin/tls.rs"]),
    ("libc", &["cli/memory.rs"]),
    ("async_nats", &["cluster/"]),
    ("hashbrown", &["tools/detection/tracked.rs"]),
    ("smallvec", &["tools/detection/network/mod.rs"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A file's code without comments, string and character literals (their text could
/// look like code), and without its test module(s) — test-only files (`tests.rs`)
/// have no code at all.
fn code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    strip(text)
}

/// Removes comments and literals, keeping line breaks (so line counts hold).
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                if b[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !b.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                if b[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                } else if b[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1b}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The top-level module a file belongs to (`None`: the crate roots).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Top-level module → the top-level modules it names through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for f in &files {
        let Some(m) = module_of(f) else { continue };
        let text = code(f);
        let mut named = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a::X, b}`: every path of the group.
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    named.insert(part.trim().split("::").next().unwrap_or("").to_string());
                }
            } else {
                let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
                named.insert(rest[..end].to_string());
            }
        }
        let deps = graph.get_mut(&m).unwrap();
        deps.extend(named.into_iter().filter(|n| modules.contains(n) && *n != m));
    }
    graph
}

#[test]
fn layers_point_one_way() {
    let graph = imports();
    let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    let mut wrong = Vec::new();
    for (m, deps) in &graph {
        if m == "cli" {
            // The binary's commands: they use the library from outside (`warden::`).
            assert!(deps.is_empty(), "cli names the library through `crate::`: {deps:?}");
            continue;
        }
        let Some(own) = layer(m) else {
            wrong.push(format!("`{m}` is in no layer: add it to LAYERS"));
            continue;
        };
        for d in deps {
            match layer(d) {
                Some(l) if l < own => {}
                _ => wrong.push(format!("`{m}` imports `{d}`, which is not below it")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What the check relies on: a known edge is seen.
    assert!(graph["agents"].contains("tools") && graph["tools"].contains("messages"), "{graph:?}");
}

#[test]
fn each_external_dependency_has_one_owner() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src()).unwrap().to_string_lossy().to_string();
        let text = code(f);
        for (krate, owners) in OWNERS {
            let named = text.contains(&format!("{krate}::")) || text.contains(&format!("use {krate}"));
            if named && !owners.iter().any(|o| rel.starts_with(o)) {
                wrong.push(format!("{rel} names `{krate}` (owned by {owners:?})"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn files_and_functions_a_newcomer_can_hold() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src()).unwrap().display().to_string();
        let text = code(f);
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > 800 {
            wrong.push(format!("{rel}: {} lines before its tests", lines.len()));
        }
        for (n, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let t = t
                .strip_prefix("pub ")
                .or_else(|| t.strip_prefix("pub(super) "))
                .or_else(|| t.strip_prefix("pub(crate) "))
                .unwrap_or(t);
            let t = t.strip_prefix("async ").or_else(|| t.strip_prefix("const ")).unwrap_or(t);
            if !t.starts_with("fn ") {
                continue;
            }
            // The body: from the first `{` to the brace that closes it (a declaration
            // ending in `;` has none).
            let (mut depth, mut opened) = (0i32, false);
            for (k, l) in lines[n..].iter().enumerate() {
                for c in l.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if !opened && l.trim_end().ends_with(';') {
                    break;
                }
                if opened && depth <= 0 {
                    if k + 1 > 120 {
                        wrong.push(format!(
                            "{rel}:{}: `{}` is {} lines",
                            n + 1,
                            t.split('(').next().unwrap_or(t),
                            k + 1
                        ));
                    }
                    break;
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A file's tests come last: no code hides after its test module.
#[test]
fn test_modules_come_last() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let Some(at) = text.find("#[cfg(test)]\nmod tests {") else { continue };
        let tail = strip(&text[at..]);
        let (mut depth, mut end) = (0i32, None);
        for (i, c) in tail.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        if end.is_none_or(|e| !tail[e + 1..].trim().is_empty()) {
            wrong.push(f.strip_prefix(src()).unwrap().display().to_string());
        }
    }
    assert!(wrong.is_empty(), "code after the test module: {wrong:?}");
}

#[test]
fn the_source_reader_sees_past_literals_and_comments() {
    let stripped = strip("let s = \"{ // }\"; let c = '{'; let r = r#\"}\"#; // crate::x {\nfn f<'a>() {}\n");
    assert_eq!(stripped.matches('{').count(), stripped.matches('}').count(), "{stripped}");
    assert!(!stripped.contains("crate::x") && stripped.contains("fn f<'a>() {}"), "{stripped}");
}
