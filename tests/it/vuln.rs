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
    let err = dpkg("invalid").unwrap_err().to_string();
    assert!(err.contains("invalid:1") && err.contains("asdf"), "{err}");

    let lock = |sub: &str, kind: Lockfile| collect_lockfile(kind, &root.join("language").join(sub));
    let cargo = |f: &str| lock(&format!("rust/cargolock/testdata/{f}"), Lockfile::Cargo);
    assert_eq!(names(&cargo("two-packages-with-local.lock").unwrap()), ["addr2line=0.15.2"]);
    assert_eq!(names(&cargo("package-with-build-string.lock").unwrap()), ["wasi=0.10.2+wasi-snapshot-preview1"]);
    assert_eq!(names(&cargo("empty.lock").unwrap()), Vec::<String>::new());
    assert_eq!(cargo("many-packages.lock").unwrap().packages.len(), 6);
    assert!(cargo("not-toml.txt").unwrap_err().to_string().contains("not a Cargo.lock"));

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
    let mut files = names(&npm("files.v2.json").unwrap());
    files.sort();
    assert_eq!(files, ["abbrev=1.0.9", "abbrev=2.3.4"], "workspace code is not a package");
    assert!(npm("not-json.txt").unwrap_err().to_string().contains("not JSON"));
    assert!(npm("null.v2.jsontest").unwrap_err().to_string().contains("not an object"));

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

// ------------------------------------------------------------------ own fixtures

pub fn fixtures(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vuln").join(rel)
}

fn fixture_db() -> warden::tools::vuln::osv::AdvisoryDb {
    let (recs, report) = warden::tools::vuln::osv::load(&fixtures("advisories")).unwrap();
    assert_eq!((report.files, report.records, report.withdrawn), (8, 7, 1), "{report:#?}");
    assert_eq!(report.errors.len(), 1, "the file that is not a record is named: {:?}", report.errors);
    assert!(report.errors[0].contains("not-osv.json") && report.errors[0].contains("not an OSV record"));
    warden::tools::vuln::osv::AdvisoryDb::new(recs)
}

/// Copies a fixture tree (a host root) into `to`.
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

#[test]
fn advisories_load_from_a_directory_and_a_zip_and_import_idempotently() {
    use std::io::Write;
    let db = fixture_db();
    assert_eq!(db.len(), 6, "the withdrawn record is dropped");
    // The same records as osv.dev publishes them: a zip per ecosystem.
    let tmp = tempfile::tempdir().unwrap();
    let zip_path = tmp.path().join("all.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for sub in ["debian", "alpine", "npm", "pypi", "crates.io"] {
        for e in std::fs::read_dir(fixtures("advisories").join(sub)).unwrap() {
            let p = e.unwrap().path();
            zip.start_file(format!("{sub}/{}", p.file_name().unwrap().to_str().unwrap()), opts).unwrap();
            zip.write_all(&std::fs::read(&p).unwrap()).unwrap();
        }
    }
    zip.finish().unwrap();
    let (recs, report) = warden::tools::vuln::osv::load(&zip_path).unwrap();
    assert_eq!((report.records, report.withdrawn, report.errors.len()), (7, 1, 1), "{report:#?}");
    assert_eq!(warden::tools::vuln::osv::AdvisoryDb::new(recs).len(), 6);
    // Import twice: stored once.
    let store = tmp.path().join("osv");
    let (_, n1) = warden::tools::vuln::osv::AdvisoryDb::import(&store, &zip_path).unwrap();
    let (_, n2) = warden::tools::vuln::osv::AdvisoryDb::import(&store, &fixtures("advisories")).unwrap();
    assert_eq!((n1, n2), (6, 6));
    let reopened = warden::tools::vuln::osv::AdvisoryDb::open(&store).unwrap();
    assert_eq!(reopened.len(), 6);
    assert!(reopened.get("DEBIAN-CVE-2099-0001").is_some() && reopened.get("PYSEC-2099-6").is_none());
    // A broken zip is a clear error for that file, not a crash.
    std::fs::write(tmp.path().join("broken.zip"), b"PK\x03\x04 not really").unwrap();
    let (_, report) = warden::tools::vuln::osv::load(&tmp.path().join("broken.zip")).unwrap();
    assert!(report.errors[0].contains("not a zip archive"), "{:?}", report.errors);
}

/// One line per vulnerable item: `name version: advisories → target | command`.
fn summary(r: &warden::tools::vuln::scan::ScanReport) -> Vec<String> {
    let mut out: Vec<String> = r
        .items
        .iter()
        .map(|i| {
            format!(
                "{} {}: {} → {} | {}",
                i.package.name,
                i.package.version,
                i.advisories.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(","),
                i.remediation.target.as_deref().unwrap_or("no fix"),
                i.remediation.command_line()
            )
        })
        .collect();
    out.sort();
    out
}

fn asset(name: &str) -> warden::tools::vuln::risk::AssetContext {
    use warden::tools::response::triage::{Criticality, Exposure};
    warden::tools::vuln::risk::AssetContext {
        name: name.into(),
        criticality: Criticality::High,
        exposure: Exposure::Internet,
        known: true,
    }
}

#[test]
fn scanning_fixture_hosts_finds_what_is_spelled_out() {
    use warden::tools::vuln::scan::{Target, scan_target};
    let db = fixture_db();
    let ctx = warden::tools::vuln::risk::ThreatContext::default();
    let now = chrono::Utc::now();
    let t = Target { path: fixtures("hosts/debian-web"), asset: "web-1".into(), hosts: vec![] };
    let r = scan_target(&t, asset("web-1"), &db, &ctx, &Default::default(), &Default::default(), now);
    assert_eq!(r.distro.as_ref().unwrap().osv_release(), "12");
    // bash (5.2.15-2+b2, source bash 5.2.15-2) is only in a Debian 11 advisory; express,
    // serde and the poetry-locked requests 2.31.0 are not affected; oldpkg is removed.
    assert_eq!(
        summary(&r),
        [
            "libssl3 3.0.11-1~deb12u1: DEBIAN-CVE-2099-0001 → 3.0.11-1~deb12u2 | apt-get install --only-upgrade -y 'libssl3=3.0.11-1~deb12u2'",
            "lodash 4.17.20: GHSA-wt00-test-0001 → 4.17.21 | npm install lodash@4.17.21",
            "openssl 3.0.11-1~deb12u1: DEBIAN-CVE-2099-0001 → 3.0.11-1~deb12u2 | apt-get install --only-upgrade -y 'openssl=3.0.11-1~deb12u2'",
            "requests 2.25.0: PYSEC-2099-5 → 2.31.0 | pip install 'requests==2.31.0'",
            "smallvec 1.6.0: RUSTSEC-2099-0007 → no fix | ",
        ],
        "{r:#?}"
    );
    // dpkg 3 (not the removed one), npm 2, requirements 1, Cargo 2 (not the local crate), poetry 2.
    assert_eq!(r.packages, 10, "{:?}", r.sources);
    let lodash = r.items.iter().find(|i| i.package.name == "lodash").unwrap();
    // CVSS 4.0 9.3 from the vector × high criticality 1.15 × internet 1.2 → capped at 10.
    assert_eq!(
        (lodash.risk.cvss, lodash.risk.score, lodash.risk.priority),
        (Some(9.3), 10.0, warden::messages::Priority::P1)
    );
    let smallvec = r.items.iter().find(|i| i.package.name == "smallvec").unwrap();
    assert!(smallvec.remediation.mitigation.as_deref().unwrap().starts_with("No fix is published"));
    assert!(r.warnings.iter().any(|w| w.contains("flask>=2.0")), "{:?}", r.warnings);

    let t = Target { path: fixtures("hosts/alpine"), asset: "edge".into(), hosts: vec![] };
    let r = scan_target(&t, asset("edge"), &db, &ctx, &Default::default(), &Default::default(), now);
    assert_eq!(r.distro.as_ref().unwrap().osv_release(), "3.20");
    assert_eq!(
        summary(&r),
        [
            "busybox 1.36.1-r28: ALPINE-CVE-2099-0003 → 1.36.1-r29 | apk add --upgrade 'busybox=1.36.1-r29'",
            "ssl_client 1.36.1-r28: ALPINE-CVE-2099-0003 → 1.36.1-r29 | apk add --upgrade 'ssl_client=1.36.1-r29'",
        ]
    );
}

#[test]
fn risk_rises_with_kev_epss_and_an_attack_in_progress() {
    use warden::tools::vuln::{risk, scan};
    let db = fixture_db();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("kev.json"),
        r#"{"title":"CISA Catalog of Known Exploited Vulnerabilities","catalogVersion":"2099.01.01","count":1,
        "vulnerabilities":[{"cveID":"CVE-2099-0005","vendorProject":"psf","product":"requests","dateAdded":"2021-12-10",
        "dueDate":"2021-12-24","knownRansomwareCampaignUse":"Unknown","requiredAction":"Apply updates"}]}"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("epss.csv"),
        "#model_version:v2025.03.14,score_date:2099-01-01T00:00:00+0000\ncve,epss,percentile\nCVE-2099-0005,0.50000,0.97000\n",
    )
    .unwrap();
    let ctx =
        risk::ThreatContext::load(Some(&tmp.path().join("kev.json")), Some(&tmp.path().join("epss.csv"))).unwrap();
    let m = scan::inventory_and_match(&fixtures("hosts/debian-web"), &db);
    let requests = m.vulnerable.iter().find(|ms| ms[0].package.name == "requests").unwrap();
    let plain = risk::prioritize(requests, &asset("api"), &risk::ThreatContext::default(), None, chrono::Utc::now());
    let hot = risk::prioritize(requests, &asset("api"), &ctx, Some("incident X"), chrono::Utc::now());
    // No vector: 5.0 × 1.15 × 1.2 = 6.9 (P3); + KEV 2 + EPSS 2×0.5 + attack 2.5 → 10 (P1).
    assert_eq!((plain.score, plain.priority), (6.9, warden::messages::Priority::P3), "{:#?}", plain.reasons);
    assert_eq!((hot.score, hot.priority, hot.kev, hot.attacked), (10.0, warden::messages::Priority::P1, true, true));
    assert!(hot.reasons.iter().any(|r| r.contains("CISA KEV")) && hot.reasons.iter().any(|r| r.contains("EPSS 0.500")));
    // A KEV due date sooner than the P1 window (here long past) sets the deadline.
    assert_eq!(hot.deadline.to_rfc3339(), "2021-12-24T23:59:59+00:00");
    assert!(plain.deadline > chrono::Utc::now() + chrono::Duration::days(29));
}

/// Rewrites a dpkg status file's version of a package (an upgrade "applied").
fn set_dpkg_version(root: &std::path::Path, package: &str, version: &str) {
    let status = root.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).unwrap();
    let mut out = String::new();
    let mut this = false;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("Package: ") {
            this = p == package;
        }
        if this && line.starts_with("Version: ") {
            out.push_str(&format!("Version: {version}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&status, out).unwrap();
}

#[test]
fn verify_patch_checks_the_upgrade_the_advisories_and_running_processes() {
    use warden::tools::vuln::verify::{CheckStatus, VerifyStatus, VerifyTarget, verify};
    let db = fixture_db();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("host");
    std::fs::create_dir_all(&root).unwrap();
    copy_tree(&fixtures("hosts/debian-web"), &root);
    let m = warden::tools::vuln::scan::inventory_and_match(&root, &db);
    let pkg = |name: &str| m.vulnerable.iter().find(|ms| ms[0].package.name == name).unwrap()[0].package.clone();
    let target = |name: &str, check: Vec<String>| VerifyTarget {
        root: root.clone(),
        package: pkg(name),
        fixed: "3.0.11-1~deb12u2".into(),
        check,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let run = |t: &VerifyTarget| rt.block_on(verify(t, &db, None, std::path::Path::new("/proc")));
    let status = |v: &warden::tools::vuln::verify::Verification, name: &str| {
        v.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}: {v:#?}")).status
    };

    // Not upgraded: the re-inventory and the re-match fail.
    let v = run(&target("openssl", vec![]));
    assert_eq!(v.status, VerifyStatus::Failed, "{v:#?}");
    assert_eq!((status(&v, "re-inventory"), status(&v, "re-match")), (CheckStatus::Failed, CheckStatus::Failed));
    assert_eq!(v.recommendation, "escalate remediation failure");
    assert_eq!(status(&v, "attack stopped"), CheckStatus::Skipped);

    // Upgraded between the two scans: verified (a custom check that passes counts).
    set_dpkg_version(&root, "openssl", "3.0.11-1~deb12u2");
    set_dpkg_version(&root, "libssl3", "3.0.11-1~deb12u2");
    let v = run(&target("openssl", vec!["true".into()]));
    assert_eq!(v.status, VerifyStatus::Verified, "{v:#?}");
    assert_eq!(v.installed.as_deref(), Some("3.0.11-1~deb12u2"));
    assert_eq!(status(&v, "custom check"), CheckStatus::Passed);
    assert_eq!(v.recommendation, "mark as remediated");
    // A custom check that fails fails the verification.
    let v = run(&target("openssl", vec!["false".into()]));
    assert_eq!((v.status, status(&v, "custom check")), (VerifyStatus::Failed, CheckStatus::Failed));

    // The restart check: a real process maps the library file, which the upgrade then
    // replaces (deletes): until that process is restarted, the patch is not in effect.
    let lib = root.join("usr/lib/x86_64-linux-gnu/libssl.so.3");
    std::fs::copy("/bin/sleep", &lib).unwrap();
    let mut child = std::process::Command::new(&lib).arg("60").spawn().unwrap();
    // The process maps its executable once it runs.
    let maps = format!("/proc/{}/maps", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&maps).unwrap_or_default().contains("libssl.so.3") {
        assert!(std::time::Instant::now() < deadline, "the child never mapped its executable");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::remove_file(&lib).unwrap();
    let v = run(&target("libssl3", vec![]));
    assert_eq!((v.status, status(&v, "restart")), (VerifyStatus::Failed, CheckStatus::Failed), "{v:#?}");
    let detail = &v.checks.iter().find(|c| c.name == "restart").unwrap().detail;
    assert!(detail.contains(&format!("pid {}", child.id())) && detail.contains("libssl.so.3"), "{detail}");
    child.kill().unwrap();
    child.wait().unwrap();
    let v = run(&target("libssl3", vec![]));
    assert_eq!((v.status, status(&v, "restart")), (VerifyStatus::Verified, CheckStatus::Passed), "{v:#?}");
}

/// The whole loop through the agents: a web attack exploiting a CVE on a host with the
/// vulnerable package → incident → the web-attack playbook hands the root cause to
/// vulnerability management → remediation scheduled on the incident → verification
/// before the patch fails (escalated) → the patch applied in the fixture → verified →
/// the incident is resolved.
#[test]
fn an_exploited_package_is_remediated_and_verified_before_the_incident_resolves() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    copy_tree(&fixtures("hosts/debian-web"), &host);
    // Vulnerability management scans the fixture host root, known as this machine.
    let actors = vm_actors(tmp.path(), &host, 0);
    // A detection for the exploit, naming its CVE.
    std::fs::write(
        actors.join("threat-detection/rules/test_lodash_prototype_pollution.yml"),
        "title: Lodash Prototype Pollution Exploit\nid: 0d1c3a52-6b1e-4f3d-9c61-2a7e5d0b9901\nstatus: test\n\
         tags:\n  - attack.initial-access\n  - attack.t1190\n  - cve.2099-0004\nlogsource:\n  category: webserver\n\
         detection:\n  selection:\n    cs-uri-query|contains: '__proto__'\n  condition: selection\nlevel: high\n",
    )
    .unwrap();
    // The advisory database, imported offline before the daemon starts.
    import_fixture_advisories(&tmp.path().join("data"));

    let log = tmp.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let sources = format!(
        "[[sources]]\nname = \"web\"\nkind = \"file\"\npath = {:?}\nformat = \"web\"\n",
        log.display().to_string()
    );
    let mut d = Daemon::start(tmp.path(), &sources, "", Some(actors));
    let now = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000");
    let ip = "198.51.100.77";
    append(
        &log,
        &format!("{ip} - - [{now}] \"GET /api/merge?payload=__proto__[admin]=1 HTTP/1.1\" 200 12 \"-\" \"curl/8.5\"\n"),
    );
    let inc = eventually(60, "the remediation to be scheduled on the incident", || {
        incident_for(&d.incidents(), ip).filter(|i| i["remediation"].as_array().is_some_and(|r| !r.is_empty())).cloned()
    });
    let id = inc["id"].as_str().unwrap().to_string();
    assert_eq!(inc["playbook"]["playbook"], "web-attack", "{inc:#}");
    let rem = &inc["remediation"].as_array().unwrap();
    // The detection named CVE-2099-0004: the root cause is lodash, not everything vulnerable.
    assert_eq!(rem.len(), 1, "{inc:#}");
    assert_eq!(rem[0]["package"], "lodash");
    assert_eq!(rem[0]["status"], "scheduled");
    assert_eq!(rem[0]["command"], "npm install lodash@4.17.21");
    assert_eq!(rem[0]["advisories"][0], "GHSA-wt00-test-0001");
    assert_eq!(rem[0]["priority"], "P1", "exploited now, CVSS 9.3: {inc:#}");
    let priority_before = inc["priority"].as_str().unwrap().to_string();
    // The plan is durable: a crash here forgets nothing.
    d.kill9();
    d.spawn();

    // Verified before the patch: it fails, the incident stays open and is escalated.
    let out = d.cli(&["vuln", "verify", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inc = eventually(30, "the failed verification", || {
        d.incidents().into_iter().find(|i| i["id"] == id.as_str() && i["remediation"][0]["status"] == "failed")
    });
    assert_ne!(inc["status"], "resolved");
    assert!(
        inc["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("remediation failure")),
        "{inc:#}"
    );
    let checks = inc["remediation"][0]["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c.as_str().unwrap().starts_with("re-inventory: Failed")), "{checks:?}");
    // A high web attack is P2; the failed remediation raises it to P1.
    assert_eq!((priority_before.as_str(), inc["priority"].as_str().unwrap()), ("P2", "P1"), "{inc:#}");

    // The patch, applied: lodash 4.17.21 in the lockfile. The next scan sees the upgrade
    // and verifies the plan on its own: the incident resolves.
    let lock = host.join("srv/shop/package-lock.json");
    std::fs::write(&lock, std::fs::read_to_string(&lock).unwrap().replace("4.17.20", "4.17.21")).unwrap();
    let out = d.cli(&["vuln", "scan"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inc = eventually(30, "the incident to be resolved", || {
        d.incidents().into_iter().find(|i| i["id"] == id.as_str() && i["status"] == "resolved")
    });
    assert_eq!(inc["remediation"][0]["status"], "verified", "{inc:#}");
    let checks: Vec<&str> =
        inc["remediation"][0]["checks"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(checks.iter().any(|c| c.starts_with("re-inventory: Passed")), "{checks:?}");
    assert!(checks.iter().any(|c| c.starts_with("re-match: Passed")), "{checks:?}");
    assert!(checks.iter().any(|c| c.starts_with("attack stopped: Passed")), "{checks:?}");

    // The posture report shows the host's remaining vulnerabilities; the ledger is whole.
    let out = d.cli(&["vuln", "report", "--format", "json"]);
    let posture: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(posture["targets"], 1);
    assert!(posture["vulnerable_packages"].as_u64().unwrap() >= 4, "{posture:#}");
    let verify: serde_json::Value = serde_json::from_str(&d.get("/v1/audit/verify").unwrap().body).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
}

/// Writes an actors copy whose vulnerability management scans `host` every
/// `interval` seconds.
pub fn vm_actors(dir: &std::path::Path, host: &std::path::Path, interval: u64) -> std::path::PathBuf {
    let actors = copy_actors(dir);
    let vm = actors.join("vulnerability-management/agent.toml");
    let text = std::fs::read_to_string(&vm).unwrap();
    let head = &text[..text.find("[[vuln.targets]]").unwrap()];
    let text = format!(
        "{}[[vuln.targets]]\npath = {:?}\nasset = \"web-1\"\nhosts = [\"@local\"]\n",
        head.replace("scan_interval_secs = 86400", &format!("scan_interval_secs = {interval}")),
        host.display().to_string()
    );
    std::fs::write(&vm, text).unwrap();
    actors
}

pub fn import_fixture_advisories(data_dir: &std::path::Path) {
    let out = std::process::Command::new(BIN)
        .args(["vuln", "db", "import"])
        .arg(fixtures("advisories"))
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("6 advisories now in"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Scheduled scans (from the definition) keep the latest scan per target with what
/// changed; a scan on demand goes through the admin API; `warden scan` works offline.
#[test]
fn scans_run_on_schedule_and_on_demand_and_track_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    copy_tree(&fixtures("hosts/debian-web"), &host);
    import_fixture_advisories(&tmp.path().join("data"));

    // Offline, no daemon: `warden scan --target PATH --json`.
    let out = std::process::Command::new(BIN)
        .args(["scan", "--json", "--target"])
        .arg(&host)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let scans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scans[0]["items"].as_array().unwrap().len(), 5, "{scans:#}");
    let out = std::process::Command::new(BIN)
        .args(["scan", "--target"])
        .arg(host.join("srv/shop/package-lock.json"))
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.starts_with("# Vulnerability posture") && md.contains("lodash 4.17.20"), "{md}");

    let actors = vm_actors(tmp.path(), &host, 1);
    let d = Daemon::start(tmp.path(), "", "", Some(actors));
    let latest = |d: &Daemon| -> Option<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&d.get("/v1/vulns").ok()?.body).ok()?;
        v.as_array()?.first().cloned()
    };
    let first = eventually(30, "a scheduled scan", || latest(&d));
    assert_eq!(first["items"].as_array().unwrap().len(), 5, "{first:#}");
    // The upgrade lands between two scheduled scans: the next one says lodash is resolved.
    let lock = host.join("srv/shop/package-lock.json");
    std::fs::write(&lock, std::fs::read_to_string(&lock).unwrap().replace("4.17.20", "4.17.21")).unwrap();
    let later = eventually(30, "a scan after the upgrade", || {
        latest(&d).filter(|s| s["changes"]["resolved"].as_array().is_some_and(|r| !r.is_empty()))
    });
    assert_eq!(later["items"].as_array().unwrap().len(), 4);
    let resolved = later["changes"]["resolved"][0].as_str().unwrap();
    assert!(resolved.starts_with("web-1|npm|lodash|"), "{resolved}");
    // On demand, through the API and the CLI; an unknown target is refused.
    let r = d.post("/v1/scan", "{}").unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let out = d.cli(&["vuln", "scan", "--target", host.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The posture report in each format.
    for (format, marker) in
        [("markdown", "# Vulnerability posture"), ("html", "<!DOCTYPE html>"), ("json", "\"vulnerable_packages\"")]
    {
        let r = d.get(&format!("/v1/vulns/report?format={format}")).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body.contains(marker) && r.body.contains("openssl"), "{format}: {}", r.body);
    }
    assert_eq!(d.get("/v1/vulns/report?format=pdf").unwrap().status, 400);
}
