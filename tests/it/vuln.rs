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

/// Hand-checked answers on the real RustSec and PyPA records.
#[test]
fn matching_the_rustsec_and_pypa_advisories() {
    use warden::tools::vuln::remediate;
    let Some(db) = corpus_db() else { return };
    assert!(db.len() > 3_500, "{} advisories", db.len());
    let (rust, py) = (Ecosystem::CratesIo, Ecosystem::PyPI);
    // RUSTSEC-2016-0001: openssl before 0.9.0 — just below the fix, and at it.
    assert!(affects(&db, rust, "openssl", "0.8.3").contains(&"RUSTSEC-2016-0001".to_string()));
    assert!(!affects(&db, rust, "openssl", "0.9.0").contains(&"RUSTSEC-2016-0001".to_string()));
    // hyper: three advisories below 0.14.10/0.14.12, none at 0.14.12; 0.13.9 also in
    // RUSTSEC-2021-0020's 0.13 window (fixed 0.13.10), whose pre-release `0.13.0-0`
    // bound includes every 0.13 release.
    assert_eq!(affects(&db, rust, "hyper", "0.14.9"), ["RUSTSEC-2021-0078", "RUSTSEC-2021-0079", "RUSTSEC-2022-0022"]);
    assert_eq!(affects(&db, rust, "hyper", "0.14.12"), Vec::<String>::new());
    assert!(affects(&db, rust, "hyper", "0.13.9").contains(&"RUSTSEC-2021-0020".to_string()));
    assert!(!affects(&db, rust, "hyper", "0.13.10").contains(&"RUSTSEC-2021-0020".to_string()));
    // PYSEC-2022-42969 (py): `last_affected: 1.11.0` — 1.11.0 is affected, above is not.
    assert_eq!(affects(&db, py, "py", "1.11.0"), ["PYSEC-2022-42969"]);
    assert_eq!(affects(&db, py, "py", "1.11.1"), Vec::<String>::new());
    assert_eq!(affects(&db, py, "py", "1.9.0"), ["PYSEC-2020-92", "PYSEC-2022-42969"]);
    // PYSEC-2018-104 (oslo.middleware, three windows, events unsorted), under the
    // normalised name.
    assert_eq!(affects(&db, py, "oslo.middleware", "3.19.0"), ["PYSEC-2018-104"]);
    assert_eq!(affects(&db, py, "Oslo_Middleware", "3.19.1"), Vec::<String>::new());
    assert_eq!(affects(&db, py, "oslo-middleware", "3.20.0"), ["PYSEC-2018-104"]);
    // Withdrawn advisories never match: RUSTSEC-2020-0053 (dirs), PYSEC-2022-15 (loguru).
    assert!(db.get("RUSTSEC-2020-0053").is_none() && db.get("PYSEC-2022-15").is_none());
    assert_eq!(affects(&db, rust, "dirs", "1.0.0"), Vec::<String>::new());
    assert!(!affects(&db, py, "loguru", "0.5.0").contains(&"PYSEC-2022-15".to_string()));

    // Remediation: the lowest version clearing all four hyper advisories is 0.14.12
    // (0.13.10 and 0.14.10 each leave one).
    let pkg = warden::tools::vuln::inventory::Package {
        ecosystem: rust,
        name: "hyper".into(),
        version: "0.13.9".into(),
        source: None,
        source_version: None,
        location: "/srv/app/Cargo.lock".into(),
        dev: false,
    };
    let matches = db.matches(&pkg, None);
    let r = remediate::recommend(&db, &matches, None).unwrap();
    assert_eq!(r.target.as_deref(), Some("0.14.12"), "{r:#?}");
    assert_eq!(r.command_line(), "cargo update -p hyper@0.13.9 --precise 0.14.12");
    assert_eq!(r.cwd.as_deref(), Some("/srv/app"));
    // No fix published: PYSEC-2022-42969 has only `last_affected`.
    let py_pkg =
        warden::tools::vuln::inventory::Package { ecosystem: py, name: "py".into(), version: "1.11.0".into(), ..pkg };
    let r = remediate::recommend(&db, &db.matches(&py_pkg, None), None).unwrap();
    assert_eq!((r.target.as_deref(), r.command.len()), (None, 0));
    assert!(r.mitigation.as_deref().unwrap().starts_with("No fix is published"), "{r:#?}");
}
