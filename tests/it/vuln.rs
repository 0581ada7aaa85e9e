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

/// `name=version` of what a collector found.
fn names(c: &warden::tools::vuln::inventory::Collected) -> Vec<String> {
    c.packages.iter().map(|p| format!("{}={}", p.name, p.version)).collect()
}

#[test]
fn inventory_parsers_on_the_corpus_fixtures() {
    use warden::tools::vuln::inventory::*;
    let Some(root) = corpus("osv/inventory-fixtures/filesystem") else { return };
    let dpkg = |f: &str| {
        let p = root.join("os/dpkg/testdata/dpkg").join(f);
        parse_dpkg_status(&std::fs::read_to_string(&p).unwrap(), Ecosystem::Debian, &p)
    };
    let valid = dpkg("valid").unwrap();
    assert_eq!(valid.packages.len(), 7, "{:?}", names(&valid));
    // Advisories are filed under the source package, with its version when it differs.
    let util = valid.packages.iter().find(|p| p.name == "util-linux-extra").unwrap();
    assert_eq!(util.match_key(), ("util-linux", "2.38.1-5"));
    assert_eq!(valid.packages.iter().find(|p| p.name == "libacl1").unwrap().match_key(), ("acl", "2.3.1-3"));
    assert_eq!(names(&dpkg("transitional").unwrap()), ["iceweasel=78.13.0esr-1~deb10u1"]);
    assert_eq!(dpkg("transitional").unwrap().packages[0].match_key().0, "firefox-esr");
    assert_eq!(names(&dpkg("empty").unwrap()), Vec::<String>::new());
    for f in ["noversion", "nopackage"] {
        let c = dpkg(f).unwrap();
        assert_eq!(names(&c), ["foo=1.0", "bar=2.0"], "{f}");
        assert_eq!(c.warnings.len(), 1, "{f}: the broken record is reported: {:?}", c.warnings);
    }
    let status = dpkg("statusfield").unwrap();
    assert_eq!(
        names(&status),
        ["wantinstall_installed=1.0", "wantdeinstall_installed=1.0", "wantpurge_installed=1.0", "wantnostatus=1.0"]
    );
    let err = dpkg("invalid").unwrap_err();
    assert!(err.contains("invalid:1") && err.contains("asdf"), "{err}");

    let lock = |sub: &str, kind: Lockfile| collect_lockfile(kind, &root.join("language").join(sub));
    let cargo = |f: &str| lock(&format!("rust/cargolock/testdata/{f}"), Lockfile::Cargo);
    assert_eq!(names(&cargo("two-packages-with-local.lock").unwrap()), ["addr2line=0.15.2"]);
    assert_eq!(names(&cargo("package-with-build-string.lock").unwrap()), ["wasi=0.10.2+wasi-snapshot-preview1"]);
    assert_eq!(names(&cargo("empty.lock").unwrap()), Vec::<String>::new());
    assert_eq!(cargo("many-packages.lock").unwrap().packages.len(), 6);
    assert!(cargo("not-toml.txt").unwrap_err().contains("not a Cargo.lock"));

    let npm = |f: &str| lock(&format!("javascript/packagelockjson/testdata/{f}"), Lockfile::Npm);
    for v in ["v1", "v2"] {
        // Aliases are matched under the real package name.
        assert_eq!(
            names(&npm(&format!("alias.{v}.json")).unwrap()),
            ["@babel/code-frame=7.0.0", "string-width=5.1.2", "string-width=4.2.0"],
            "{v}"
        );
        let mut nested = names(&npm(&format!("nested-dependencies.{v}.json")).unwrap());
        nested.sort();
        assert_eq!(
            nested,
            ["postcss-calc=7.0.1", "postcss=6.0.23", "postcss=7.0.16", "supports-color=5.5.0", "supports-color=6.1.0"],
            "{v}"
        );
        let commits = npm(&format!("commits.{v}.json")).unwrap();
        assert_eq!(
            names(&commits),
            ["ansi-styles=1.0.0", "postcss-calc=7.0.1"],
            "{v}: git dependencies are not registry versions"
        );
        assert!(!commits.warnings.is_empty());
        assert!(npm(&format!("one-package-dev.{v}.json")).unwrap().packages[0].dev);
    }
    assert_eq!(
        names(&npm("bundled-dependencies.v3.json").unwrap()),
        ["ansi-regex=6.2.2", "semver=7.7.2", "strip-ansi=7.1.2"]
    );
    assert_eq!(
        names(&npm("files.v2.json").unwrap()),
        ["abbrev=2.3.4", "abbrev=1.0.9"],
        "workspace code is not a package"
    );
    assert!(npm("not-json.txt").unwrap_err().contains("not JSON"));
    assert!(npm("null.v2.jsontest").unwrap_err().contains("not an object"));

    let req = |f: &str| lock(&format!("python/requirements/testdata/{f}"), Lockfile::Requirements);
    let example = req("example.txt").unwrap();
    // `docopt == 0.6.1` pinned; `-r other-requirements.txt` followed (pandas).
    assert_eq!(names(&example), ["docopt=0.6.1", "pandas=2.2.3"]);
    assert!(example.warnings.iter().any(|w| w.contains("keyring >= 4.1.1")), "{:?}", example.warnings);
    assert_eq!(names(&req("extras.txt").unwrap()), ["pyjwt=2.1.0", "celery=4.4.7"]);
    assert_eq!(names(&req("multiline_and_comments.txt").unwrap()), ["pkga=1.0", "pkgb=2.0"]);
    assert_eq!(names(&req("loop.txt").unwrap()), Vec::<String>::new(), "an include loop ends");
    assert_eq!(names(&req("env_var.txt").unwrap()), ["asdf=1.2", "another=1.0"]);
    let invalid = req("invalid.txt").unwrap();
    assert_eq!((invalid.packages.len(), invalid.warnings.len()), (0, 4), "{:?}", invalid.warnings);
    let opts = names(&req("per_req_options.txt").unwrap());
    assert!(opts.contains(&"foo9=1.0".to_string()) && opts.contains(&"foo16-client=1.0".to_string()), "{opts:?}");
    assert!(!opts.iter().any(|o| o.starts_with("foo10=")), "{opts:?}");
}

/// The RustSec and PyPA advisories, loaded once per test that needs them.
fn corpus_db() -> Option<warden::tools::vuln::osv::AdvisoryDb> {
    use warden::tools::vuln::osv;
    let rust = corpus("osv/rustsec-osv/crates")?;
    let py = corpus("osv/pypa-advisory-database/vulns")?;
    let mut all = Vec::new();
    for dir in [rust, py] {
        let (recs, report) = osv::load(&dir).unwrap();
        assert!(report.errors.is_empty(), "{:?}", &report.errors[..report.errors.len().min(5)]);
        all.extend(recs);
    }
    Some(osv::AdvisoryDb::new(all))
}

fn affects(db: &warden::tools::vuln::osv::AdvisoryDb, eco: Ecosystem, name: &str, version: &str) -> Vec<String> {
    db.affects(eco, name, version, None)
}

#[test]
fn zz_probe() {
    let Some(db) = corpus_db() else { return };
    eprintln!("PROBE {} advisories", db.len());
    for (e, n, v) in [(Ecosystem::CratesIo, "hyper", "0.14.9"), (Ecosystem::CratesIo, "hyper", "0.14.12"), (Ecosystem::CratesIo, "hyper", "0.13.9"), (Ecosystem::PyPI, "py", "1.11.0"), (Ecosystem::PyPI, "py", "1.9.0"), (Ecosystem::PyPI, "loguru", "0.5.0"), (Ecosystem::CratesIo, "dirs", "1.0.0"), (Ecosystem::PyPI, "oslo.middleware", "3.19.0")] {
        eprintln!("PROBE {n} {v}: {:?}", affects(&db, e, n, v));
    }
}
