//! `verify_patch`: is the remediation really in place? Five checks, each recorded with
//! its result:
//!
//! 1. re-inventory — the installed version is at or above the fixed version (a package
//!    that is gone passes: nothing of it is left to exploit);
//! 2. re-match — no advisory in the database still matches the package as installed;
//! 3. restart — no running process still maps a deleted (replaced) file of the package,
//!    read from `/proc/*/maps` (the files of a dpkg package from `info/<pkg>.list`, of an
//!    apk package from its database; for a lockfile package, anything under the project);
//! 4. attack stopped — no finding against the incident's entities since the patch;
//! 5. the remediation's own check command, when it names one (argv, exit status 0).
//!
//! The status is `verified` only when none failed (a check that cannot apply — no
//! incident, no command — is `skipped`, and says why).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::inventory::{self, Package};
use super::osv::AdvisoryDb;
use super::version::Ecosystem;
use crate::messages::Finding;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyStatus {
    Verified,
    Failed,
}

/// What `verify_patch` concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub status: VerifyStatus,
    pub checks: Vec<Check>,
    pub at: DateTime<Utc>,
    /// The installed version found (`None`: the package is gone).
    pub installed: Option<String>,
    /// "mark as remediated" / "escalate remediation failure".
    pub recommendation: String,
}

/// What is being verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyTarget {
    /// The scan target (host root or directory) the package was found under.
    pub root: PathBuf,
    pub package: Package,
    /// The version the remediation moves to.
    pub fixed: String,
    /// The remediation's check command (argv), if any.
    #[serde(default)]
    pub check: Vec<String>,
}

/// Runs the checks. `findings_since` are the findings against the incident's entities
/// newer than the patch (`None`: there is no incident to look at).
pub async fn verify(
    t: &VerifyTarget,
    db: &AdvisoryDb,
    findings_since: Option<(DateTime<Utc>, Vec<Finding>)>,
    proc_root: &Path,
) -> Verification {
    let root = t.root.clone();
    let pkg = t.package.clone();
    let (inv, files) = tokio::task::spawn_blocking(move || {
        let inv = inventory::scan(&root);
        let files = package_files(&root, &pkg);
        (inv, files)
    })
    .await
    .unwrap_or_else(|e| {
        (
            inventory::Inventory { errors: vec![format!("re-inventory panicked: {e}")], ..Default::default() },
            Ok(BTreeSet::new()),
        )
    });
    let eco = t.package.ecosystem;
    let now_pkg = inv
        .packages
        .iter()
        .filter(|p| {
            p.ecosystem == eco
                && eco.canonical_name(&p.name) == eco.canonical_name(&t.package.name)
                && p.location == t.package.location
        })
        .max_by(|a, b| eco.compare(&a.version, &b.version))
        .cloned();
    let installed = now_pkg.as_ref().map(|p| p.version.clone());
    let release = inv.distro.as_ref().map(|d| d.osv_release());
    let checks = vec![
        reinventory(t, &now_pkg, &inv),
        rematch(db, &now_pkg, release.as_deref()),
        restart(files, proc_root).await,
        attack_stopped(findings_since),
        custom_check(t).await,
    ];
    let failed = checks.iter().any(|c| c.status == CheckStatus::Failed);
    Verification {
        status: if failed { VerifyStatus::Failed } else { VerifyStatus::Verified },
        checks,
        at: Utc::now(),
        installed,
        recommendation: if failed { "escalate remediation failure".into() } else { "mark as remediated".into() },
    }
}

/// 1. re-inventory: the package at or above the fixed version (or gone).
fn reinventory(t: &VerifyTarget, now_pkg: &Option<Package>, inv: &inventory::Inventory) -> Check {
    let eco = t.package.ecosystem;
    match (now_pkg, inv.errors.first()) {
        (_, Some(e)) if now_pkg.is_none() => Check {
            name: "re-inventory".into(),
            status: CheckStatus::Failed,
            detail: format!("could not re-read the inventory: {e}"),
        },
        (None, _) => Check {
            name: "re-inventory".into(),
            status: CheckStatus::Passed,
            detail: format!("{} is no longer installed in {}", t.package.name, t.package.location),
        },
        (Some(p), _) => {
            let ok = eco.compare(p.match_key().1, &t.fixed).is_ge() || eco.compare(&p.version, &t.fixed).is_ge();
            Check {
                name: "re-inventory".into(),
                status: if ok { CheckStatus::Passed } else { CheckStatus::Failed },
                detail: format!(
                    "installed {} {} {} the fixed version {}",
                    p.name,
                    p.version,
                    if ok { "is at or above" } else { "is below" },
                    t.fixed
                ),
            }
        }
    }
}

/// 2. re-match: no advisory matches what is installed now.
fn rematch(db: &AdvisoryDb, now_pkg: &Option<Package>, release: Option<&str>) -> Check {
    match now_pkg {
        None => Check { name: "re-match".into(), status: CheckStatus::Passed, detail: "package not installed".into() },
        Some(p) => {
            let still: Vec<String> = db.matches(p, release).into_iter().map(|m| m.advisory).collect();
            Check {
                name: "re-match".into(),
                status: if still.is_empty() { CheckStatus::Passed } else { CheckStatus::Failed },
                detail: if still.is_empty() {
                    format!("no advisory among {} matches {} {}", db.len(), p.name, p.version)
                } else {
                    format!("still matched by {}", still.join(", "))
                },
            }
        }
    }
}

/// 3. restart: no process still maps a deleted file of the package.
async fn restart(files: Result<BTreeSet<PathBuf>, FilesUnknown>, proc_root: &Path) -> Check {
    match files {
        Err(why) => Check { name: "restart".into(), status: CheckStatus::Skipped, detail: why.to_string() },
        Ok(files) => {
            let proc_root = proc_root.to_path_buf();
            let stale = tokio::task::spawn_blocking(move || stale_mappings(&proc_root, &files)).await;
            match stale {
                Ok((hits, unreadable)) if hits.is_empty() => Check {
                    name: "restart".into(),
                    status: CheckStatus::Passed,
                    detail: format!(
                        "no process maps a deleted file of the package{}",
                        if unreadable > 0 {
                            format!(" ({unreadable} processes' maps unreadable)")
                        } else {
                            String::new()
                        }
                    ),
                },
                Ok((hits, _)) => Check {
                    name: "restart".into(),
                    status: CheckStatus::Failed,
                    detail: format!(
                        "still running the replaced code — restart: {}",
                        hits.iter()
                            .take(10)
                            .map(|(pid, comm, path)| format!("pid {pid} ({comm}) maps deleted {path}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                },
                Err(e) => Check {
                    name: "restart".into(),
                    status: CheckStatus::Failed,
                    detail: format!("could not read /proc: {e}"),
                },
            }
        }
    }
}

/// 4. attack stopped: no finding against the incident's entities since the patch.
fn attack_stopped(findings_since: Option<(DateTime<Utc>, Vec<Finding>)>) -> Check {
    match findings_since {
        None => {
            Check { name: "attack stopped".into(), status: CheckStatus::Skipped, detail: "no incident to watch".into() }
        }
        Some((since, f)) if f.is_empty() => Check {
            name: "attack stopped".into(),
            status: CheckStatus::Passed,
            detail: format!("no finding against the incident's entities since {}", since.to_rfc3339()),
        },
        Some((since, f)) => Check {
            name: "attack stopped".into(),
            status: CheckStatus::Failed,
            detail: format!(
                "{} finding(s) since {}: {}",
                f.len(),
                since.to_rfc3339(),
                f.iter()
                    .take(5)
                    .map(|f| format!("{} at {}", f.rule, f.last_seen.to_rfc3339()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// 5. the package's own check command.
async fn custom_check(t: &VerifyTarget) -> Check {
    if t.check.is_empty() {
        Check { name: "custom check".into(), status: CheckStatus::Skipped, detail: "the remediation names none".into() }
    } else {
        match crate::tools::command::run(&t.check, None).await {
            Ok((0, _)) => Check {
                name: "custom check".into(),
                status: CheckStatus::Passed,
                detail: format!("`{}` exited 0", t.check.join(" ")),
            },
            Ok((code, out)) => Check {
                name: "custom check".into(),
                status: CheckStatus::Failed,
                detail: format!("`{}` exited {code}: {}", t.check.join(" "), crate::text::sanitize(out.trim(), 300)),
            },
            Err(e) => Check {
                name: "custom check".into(),
                status: CheckStatus::Failed,
                detail: format!("`{}`: {}", t.check.join(" "), e.summary()),
            },
        }
    }
}

/// Why a package's files cannot be known (the restart check is then skipped).
#[derive(Debug, thiserror::Error)]
pub enum FilesUnknown {
    #[error("no file list for {package} under {}", dir.display())]
    NoList { package: String, dir: PathBuf },
    #[error("{}: {source}", db.display())]
    Unreadable { db: PathBuf, source: std::io::Error },
    #[error("no files of {package} in {}", db.display())]
    NotListed { package: String, db: PathBuf },
    #[error("the lockfile has no directory")]
    NoDirectory,
}

/// The files of a package as the host sees them (absolute; below `root` when the
/// target is not `/`), or why they cannot be known.
pub fn package_files(root: &Path, pkg: &Package) -> Result<BTreeSet<PathBuf>, FilesUnknown> {
    let host = |rel: &str| -> PathBuf {
        let rel = rel.trim_start_matches('/');
        root.join(rel)
    };
    match pkg.ecosystem {
        Ecosystem::Debian | Ecosystem::Ubuntu => {
            let info = root.join("var/lib/dpkg/info");
            let mut lists: Vec<PathBuf> = vec![info.join(format!("{}.list", pkg.name))];
            if let Ok(entries) = std::fs::read_dir(&info) {
                let prefix = format!("{}:", pkg.name);
                lists.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".list"))
                }));
            }
            let mut files = BTreeSet::new();
            for l in lists {
                if let Ok(text) = std::fs::read_to_string(&l) {
                    files.extend(text.lines().filter(|l| !l.trim().is_empty()).map(host));
                }
            }
            if files.is_empty() {
                return Err(FilesUnknown::NoList { package: pkg.name.clone(), dir: info });
            }
            Ok(files)
        }
        Ecosystem::Alpine => {
            let db = root.join("lib/apk/db/installed");
            let text =
                std::fs::read_to_string(&db).map_err(|source| FilesUnknown::Unreadable { db: db.clone(), source })?;
            let mut files = BTreeSet::new();
            let (mut this, mut dir) = (false, String::new());
            for line in text.lines() {
                if line.is_empty() {
                    this = false;
                } else if let Some(n) = line.strip_prefix("P:") {
                    this = n == pkg.name;
                } else if let Some(d) = line.strip_prefix("F:") {
                    dir = d.to_string();
                } else if let (true, Some(f)) = (this, line.strip_prefix("R:")) {
                    files.insert(host(&format!("{dir}/{f}")));
                }
            }
            if files.is_empty() {
                return Err(FilesUnknown::NotListed { package: pkg.name.clone(), db });
            }
            Ok(files)
        }
        // A lockfile package lives in its project: any deleted file below the project.
        _ => match Path::new(&pkg.location).parent() {
            Some(dir) => Ok(BTreeSet::from([dir.to_path_buf()])),
            None => Err(FilesUnknown::NoDirectory),
        },
    }
}

/// Processes mapping a deleted file among `files` (or below a directory in `files`):
/// (pid, command, path), and how many processes' maps could not be read.
pub fn stale_mappings(proc_root: &Path, files: &BTreeSet<PathBuf>) -> (Vec<(u32, String, String)>, usize) {
    let mut hits = Vec::new();
    let mut unreadable = 0;
    let Ok(entries) = std::fs::read_dir(proc_root) else { return (hits, 0) };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(maps) = std::fs::read_to_string(e.path().join("maps")) else {
            unreadable += 1;
            continue;
        };
        let mut seen = BTreeSet::new();
        for line in maps.lines() {
            let Some(path) = line.split_whitespace().nth(5).map(|_| {
                // The path is everything from the sixth field on (it may contain spaces).
                let mut rest = line;
                for _ in 0..5 {
                    rest = rest.trim_start().split_once(char::is_whitespace).map_or("", |(_, r)| r);
                }
                rest.trim()
            }) else {
                continue;
            };
            let Some(path) = path.strip_suffix(" (deleted)") else { continue };
            let p = Path::new(path);
            let belongs = files.contains(p) || files.iter().any(|f| p.starts_with(f) && f.is_dir());
            if belongs && seen.insert(path.to_string()) {
                let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                hits.push((pid, crate::text::sanitize(comm.trim(), 64), crate::text::sanitize(path, 300)));
            }
        }
    }
    hits.sort();
    (hits, unreadable)
}

/// Findings after `since` against the incident: from its entities (addresses,
/// `host:`/`user:` entities, accounts), or the same rules firing again on its hosts
/// (the exploit still working, whoever sends it).
pub fn findings_since<'a>(
    all: impl IntoIterator<Item = &'a Finding>,
    entities: &[String],
    hosts: &[String],
    rules: &[String],
    since: DateTime<Utc>,
) -> Vec<Finding> {
    all.into_iter()
        .filter(|f| f.last_seen > since && f.rule != "campaign")
        .filter(|f| {
            f.src_ip.as_ref().is_some_and(|ip| entities.contains(ip))
                || f.entity.as_ref().is_some_and(|e| entities.contains(e))
                || f.users.iter().any(|u| entities.contains(&format!("user:{u}")))
                || (hosts.contains(&f.host) && rules.contains(&f.rule))
        })
        .cloned()
        .collect()
}
