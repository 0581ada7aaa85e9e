//! Vulnerability management against real public data: every ordered pair of the OSV
//! version-ordering fixtures for Debian, Alpine, PyPI and semver.

use std::cmp::Ordering;

use warden::tools::vuln::version::Ecosystem;

use crate::support::*;

/// Checks every `A < B`, `A = B`, `A > B` line of `file` (and each pair reversed);
/// returns how many pairs were checked, panicking with every disagreement.
fn ordering_file(eco: Ecosystem, file: &str) -> usize {
    let Some(path) = corpus(&format!("osv/version-ordering/{file}")) else { return 0 };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        let (a, op, b) = match line.split_whitespace().collect::<Vec<_>>()[..] {
            [a, op, b] => (a, op, b),
            _ => panic!("{file}:{}: not `A op B`: {line}", n + 1),
        };
        let want = match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            _ => panic!("{file}:{}: operator {op}", n + 1),
        };
        checked += 1;
        let (got, back) = (eco.compare(a, b), eco.compare(b, a));
        if got != want || back != want.reverse() {
            wrong.push(format!("{file}:{}: {a} {op} {b}, got {got:?} (reversed {back:?})", n + 1));
        }
    }
    assert!(wrong.is_empty(), "{} of {checked} pairs wrong:\n{}", wrong.len(), wrong.join("\n"));
    checked
}

#[test]
fn version_order_agrees_with_every_corpus_pair() {
    let mut total = 0;
    for (eco, files) in [
        (Ecosystem::Debian, ["debian-versions.txt", "debian-versions-generated.txt"]),
        (Ecosystem::Alpine, ["alpine-versions.txt", "alpine-versions-generated.txt"]),
        (Ecosystem::PyPI, ["pypi-versions.txt", "pypi-versions-generated.txt"]),
    ] {
        for f in files {
            total += ordering_file(eco, f);
        }
    }
    total += ordering_file(Ecosystem::CratesIo, "semver-versions.txt");
    if std::env::var_os("WARDEN_CORPORA").is_some() {
        assert!(total > 40_000, "only {total} pairs checked");
    }
}
