//! An offline OSV advisory database.
//!
//! `warden vuln db import PATH` reads OSV records (JSON or YAML files in a directory tree,
//! or a zip as osv.dev publishes per ecosystem: `<Ecosystem>/all.zip`), drops withdrawn
//! ones and ecosystems Warden does not inventory, and stores them under
//! `<data_dir>/osv/<ecosystem>.jsonl` — one file per ecosystem, replaced atomically, so
//! an import while the daemon runs is safe and the next scan sees it. Scans need no
//! network.
//!
//! Matching follows the OSV schema: an affected entry applies to a package of its
//! ecosystem (and release: `Debian:12` only to Debian 12) and name; the version is
//! affected when it is listed in `versions`, or when, walking a `SEMVER`/`ECOSYSTEM`
//! range's events in version order, the last `introduced` at or below it is not followed
//! by a `fixed` at or below it or a `last_affected` below it, and it is below every
//! `limit`. `GIT` ranges are commit ranges and are not evaluated against package versions.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::inventory::Package;
use super::version::Ecosystem;

/// One OSV record, with the fields Warden uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    #[serde(default)]
    pub modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub aliases: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub summary: String,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "String::is_empty")]
    pub details: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub severity: Vec<SeverityEntry>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub affected: Vec<Affected>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub references: Vec<Reference>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityEntry {
    /// `CVSS_V3`, `CVSS_V4`, `CVSS_V2`, `Ubuntu`.
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    pub package: AffectedPackage,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ranges: Vec<Range>,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// Severity for this package only (some databases put it here).
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<SeverityEntry>,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "DatabaseSpecific::is_empty")]
    pub database_specific: DatabaseSpecific,
}

/// The part of an affected entry's `database_specific` Warden uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSpecific {
    /// RustSec's informational advisories: `unmaintained`, `unsound`, `notice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub informational: Option<String>,
}

impl DatabaseSpecific {
    fn is_empty(&self) -> bool {
        self.informational.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectedPackage {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// `SEMVER`, `ECOSYSTEM`, `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<Event>,
}

/// One range event; exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// Longest `details` kept (the summary and references carry the rest).
const DETAILS_MAX: usize = 2000;

impl Advisory {
    /// The CVE ids among the id and aliases.
    pub fn cves(&self) -> Vec<&str> {
        std::iter::once(self.id.as_str())
            .chain(self.aliases.iter().map(String::as_str))
            .filter(|a| a.starts_with("CVE-"))
            .collect()
    }

    /// A one-line title: the summary, else the first line of the details.
    pub fn title(&self) -> String {
        let t = if self.summary.trim().is_empty() {
            self.details.lines().next().unwrap_or_default()
        } else {
            &self.summary
        };
        crate::text::sanitize(t.trim(), 200)
    }

    fn trim(mut self) -> Self {
        if self.details.len() > DETAILS_MAX {
            let mut end = DETAILS_MAX;
            while !self.details.is_char_boundary(end) {
                end -= 1;
            }
            self.details.truncate(end);
        }
        self.references.truncate(8);
        self
    }
}

/// What an import read.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub files: usize,
    pub records: usize,
    pub withdrawn: usize,
    /// Records with no affected package in an ecosystem Warden inventories.
    pub other_ecosystems: usize,
    /// Files that are not OSV records (path: why).
    pub errors: Vec<String>,
}

/// Largest single record file read.
const RECORD_MAX: u64 = 16 << 20;

/// Why advisories cannot be read or stored (a broken record only gets into the load
/// report: the others load).
#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {source}", path.display())]
    Stored { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("cannot encode an advisory: {0}")]
    Encode(serde_json::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OsvError + '_ {
    move |source| OsvError::Io { path: path.to_path_buf(), source }
}

/// Reads OSV records from a file (`.json`, `.yaml`, `.yml`, `.zip`) or a directory tree.
pub fn load(path: &Path) -> Result<(Vec<Advisory>, LoadReport), OsvError> {
    let mut report = LoadReport::default();
    let mut out = Vec::new();
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        collect_files(path, &mut files, 0);
        files.sort();
        for f in files {
            load_file(&f, &mut out, &mut report);
        }
    } else {
        load_file(path, &mut out, &mut report);
    }
    Ok((out, report))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() && depth < 16 && e.file_name() != ".git" => collect_files(&p, out, depth + 1),
            Ok(t) if t.is_file() && record_format(&p).is_some() => out.push(p),
            _ => {}
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Yaml,
    Zip,
}

fn record_format(p: &Path) -> Option<Format> {
    match p.extension()?.to_str()? {
        "json" => Some(Format::Json),
        "yaml" | "yml" => Some(Format::Yaml),
        "zip" => Some(Format::Zip),
        _ => None,
    }
}

fn load_file(path: &Path, out: &mut Vec<Advisory>, report: &mut LoadReport) {
    let Some(format) = record_format(path) else {
        report.errors.push(format!("{}: not .json, .yaml or .zip", path.display()));
        return;
    };
    if format == Format::Zip {
        if let Err(e) = load_zip(path, out, report) {
            report.errors.push(format!("{}: {e}", path.display()));
        }
        return;
    }
    match std::fs::metadata(path) {
        Ok(m) if m.len() > RECORD_MAX => {
            report.errors.push(format!("{}: {} bytes, larger than any OSV record", path.display(), m.len()));
            return;
        }
        Err(e) => {
            report.errors.push(format!("{}: {e}", path.display()));
            return;
        }
        _ => {}
    }
    match std::fs::read(path) {
        Ok(bytes) => take(&path.display().to_string(), &bytes, format, out, report),
        Err(e) => report.errors.push(format!("{}: {e}", path.display())),
    }
}

/// Why a zip archive of advisories cannot be read (said in the load report).
#[derive(Debug, thiserror::Error)]
enum ZipError {
    #[error(transparent)]
    Open(std::io::Error),
    #[error("not a zip archive: {0}")]
    NotZip(zip::result::ZipError),
    #[error(transparent)]
    Entry(zip::result::ZipError),
}

fn load_zip(path: &Path, out: &mut Vec<Advisory>, report: &mut LoadReport) -> Result<(), ZipError> {
    let f = std::fs::File::open(path).map_err(ZipError::Open)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(ZipError::NotZip)?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(ZipError::Entry)?;
        let Ok(name) = entry.name().map(|n| n.to_string()) else {
            report.errors.push(format!("{}: entry {i} has an unreadable name", path.display()));
            continue;
        };
        let Some(format) = record_format(Path::new(&name)).filter(|f| *f != Format::Zip) else { continue };
        if !entry.is_file() {
            continue;
        }
        let label = format!("{}!{}", path.display(), crate::text::sanitize(&name, 200));
        if entry.size() > RECORD_MAX {
            report.errors.push(format!("{label}: {} bytes, larger than any OSV record", entry.size()));
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        if let Err(e) = (&mut entry).take(RECORD_MAX).read_to_end(&mut bytes) {
            report.errors.push(format!("{label}: {e}"));
            continue;
        }
        take(&label, &bytes, format, out, report);
    }
    Ok(())
}

fn take(label: &str, bytes: &[u8], format: Format, out: &mut Vec<Advisory>, report: &mut LoadReport) {
    report.files += 1;
    // The parsers' own messages, for the report.
    let parsed: Result<Advisory, String> = match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        _ => yaml_serde::from_slice(bytes).map_err(|e| e.to_string()),
    };
    let adv = match parsed {
        Ok(a) => a,
        Err(e) => {
            report.errors.push(format!("{label}: not an OSV record: {}", e.lines().next().unwrap_or_default()));
            return;
        }
    };
    report.records += 1;
    if adv.withdrawn.is_some() {
        report.withdrawn += 1;
        // Kept as a tombstone so an import removes an earlier copy; never matched.
        out.push(Advisory { affected: Vec::new(), ..adv });
        return;
    }
    if !adv.affected.iter().any(|a| Ecosystem::parse_osv(&a.package.ecosystem).is_some()) {
        report.other_ecosystems += 1;
        return;
    }
    out.push(adv.trim());
}

/// One advisory that affects one installed package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    pub advisory: String,
    pub aliases: Vec<String>,
    pub summary: String,
    pub package: Package,
    /// Fixed versions above the installed one, lowest first (empty: no fix published).
    pub fixed: Vec<String>,
    /// CVSS vectors (`CVSS_V3`/`CVSS_V4`), from the record and its affected entry.
    pub severity: Vec<SeverityEntry>,
    pub references: Vec<String>,
    /// Not a vulnerability but a notice (RustSec `unmaintained`, `unsound`, `notice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub informational: Option<String>,
}

/// The advisories, indexed by ecosystem and package name.
#[derive(Debug, Default)]
pub struct AdvisoryDb {
    advisories: Vec<Advisory>,
    by_package: HashMap<(Ecosystem, String), Vec<usize>>,
}

impl AdvisoryDb {
    pub fn new(advisories: Vec<Advisory>) -> Self {
        let mut db = AdvisoryDb::default();
        // The newest copy of each id wins; withdrawn ids are dropped.
        let mut latest: BTreeMap<String, Advisory> = BTreeMap::new();
        for a in advisories {
            match latest.get(&a.id) {
                Some(old) if old.modified > a.modified => {}
                _ => {
                    latest.insert(a.id.clone(), a);
                }
            }
        }
        for a in latest.into_values().filter(|a| a.withdrawn.is_none()) {
            let i = db.advisories.len();
            let mut keys: Vec<(Ecosystem, String)> = a
                .affected
                .iter()
                .filter_map(|af| {
                    let (eco, _) = Ecosystem::parse_osv(&af.package.ecosystem)?;
                    Some((eco, eco.canonical_name(&af.package.name)))
                })
                .collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                db.by_package.entry(k).or_default().push(i);
            }
            db.advisories.push(a);
        }
        db
    }

    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Advisory> {
        self.advisories.iter().find(|a| a.id == id)
    }

    /// The advisories that affect `pkg` on a host of `release` (`None`: unknown — only
    /// advisories that name no release apply).
    pub fn matches(&self, pkg: &Package, release: Option<&str>) -> Vec<Match> {
        let (name, version) = pkg.match_key();
        let eco = pkg.ecosystem;
        let key = (eco, eco.canonical_name(name));
        let mut out = Vec::new();
        for &i in self.by_package.get(&key).into_iter().flatten() {
            let a = &self.advisories[i];
            let mut hit = false;
            let mut fixed = Vec::new();
            let mut severity = a.severity.clone();
            let mut informational = None;
            for af in a.affected.iter().filter(|af| applies(af, eco, &key.1, release)) {
                if let Some(f) = affected_by(af, eco, version) {
                    hit = true;
                    informational = af.database_specific.informational.clone();
                    fixed.extend(f);
                    severity.extend(af.severity.iter().cloned());
                }
            }
            if !hit {
                continue;
            }
            fixed.sort_by(|x, y| eco.compare(x, y));
            fixed.dedup_by(|x, y| eco.compare(x, y).is_eq());
            out.push(Match {
                advisory: a.id.clone(),
                aliases: a.aliases.clone(),
                summary: a.title(),
                package: pkg.clone(),
                fixed,
                severity,
                references: a.references.iter().map(|r| r.url.clone()).collect(),
                informational,
            });
        }
        out.sort_by(|x, y| x.advisory.cmp(&y.advisory));
        out
    }

    /// Whether any advisory in the database affects `name` at `version`.
    pub fn affects(&self, eco: Ecosystem, name: &str, version: &str, release: Option<&str>) -> Vec<String> {
        let probe = Package {
            ecosystem: eco,
            name: name.to_string(),
            version: version.to_string(),
            source: None,
            source_version: None,
            location: String::new(),
            dev: false,
        };
        self.matches(&probe, release).into_iter().map(|m| m.advisory).collect()
    }

    // ------------------------------------------------------------------ storage

    /// The stored database under `dir` (empty when nothing was imported).
    pub fn open(dir: &Path) -> Result<AdvisoryDb, OsvError> {
        Ok(AdvisoryDb::new(read_store(dir)?))
    }

    /// Imports records from `path` into the store under `dir`: each ecosystem's file is
    /// rewritten (temporary file, fsync, rename) with the old and new records merged.
    pub fn import(dir: &Path, path: &Path) -> Result<(LoadReport, usize), OsvError> {
        let (new, report) = load(path)?;
        let mut all = read_store(dir)?;
        all.extend(new);
        let db = AdvisoryDb::new(all);
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut files: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
        for a in &db.advisories {
            // Stored once, in the file of its first inventoried ecosystem.
            let Some(eco) = a.affected.iter().find_map(|af| Ecosystem::parse_osv(&af.package.ecosystem)) else {
                continue;
            };
            let buf = files.entry(store_name(eco.0)).or_default();
            serde_json::to_writer(&mut *buf, a).map_err(OsvError::Encode)?;
            buf.push(b'\n');
        }
        for (name, bytes) in files {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp"));
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                std::io::Write::write_all(&mut f, &bytes)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)
            };
            write().map_err(io(&path))?;
        }
        Ok((report, db.len()))
    }
}

fn store_name(eco: Ecosystem) -> &'static str {
    match eco {
        Ecosystem::Debian => "debian.jsonl",
        Ecosystem::Ubuntu => "ubuntu.jsonl",
        Ecosystem::Alpine => "alpine.jsonl",
        Ecosystem::CratesIo => "crates.io.jsonl",
        Ecosystem::Npm => "npm.jsonl",
        Ecosystem::PyPI => "pypi.jsonl",
    }
}

fn read_store(dir: &Path) -> Result<Vec<Advisory>, OsvError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(out) };
    let mut files: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(io(&f))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let a: Advisory = serde_json::from_str(line).map_err(|source| OsvError::Stored {
                path: f.clone(),
                line: n + 1,
                source,
            })?;
            out.push(a);
        }
    }
    Ok(out)
}

/// Whether an affected entry is about this package on this release.
fn applies(af: &Affected, eco: Ecosystem, name: &str, release: Option<&str>) -> bool {
    let Some((e, rel)) = Ecosystem::parse_osv(&af.package.ecosystem) else { return false };
    if e != eco || eco.canonical_name(&af.package.name) != name {
        return false;
    }
    match (rel, release) {
        (None, _) => true,
        (Some(r), Some(host)) => r == host,
        (Some(_), None) => false,
    }
}

/// `Some(fixed versions above `version`)` when the entry affects `version`.
fn affected_by(af: &Affected, eco: Ecosystem, version: &str) -> Option<Vec<String>> {
    let mut hit = af.versions.iter().any(|v| eco.compare(v, version).is_eq());
    let mut fixed = Vec::new();
    for r in af.ranges.iter().filter(|r| r.kind == "SEMVER" || r.kind == "ECOSYSTEM") {
        let cmp = |a: &str, b: &str| if r.kind == "SEMVER" { super::version::semver(a, b) } else { eco.compare(a, b) };
        if in_range(&r.events, version, &cmp) {
            hit = true;
            fixed.extend(
                r.events
                    .iter()
                    .filter_map(|e| e.fixed.as_deref())
                    .filter(|f| cmp(f, version).is_gt())
                    .map(String::from),
            );
        }
    }
    hit.then_some(fixed)
}

/// The OSV range evaluation: events in version order (`introduced: 0` lowest).
pub fn in_range(events: &[Event], version: &str, cmp: &dyn Fn(&str, &str) -> std::cmp::Ordering) -> bool {
    fn key(e: &Event) -> Option<(&str, u8)> {
        // At one version: introduced, then last_affected, then fixed/limit.
        e.introduced
            .as_deref()
            .map(|v| (v, 0))
            .or(e.last_affected.as_deref().map(|v| (v, 1)))
            .or(e.fixed.as_deref().map(|v| (v, 2)))
            .or(e.limit.as_deref().map(|v| (v, 3)))
    }
    let mut sorted: Vec<(&str, u8)> = events.iter().filter_map(key).collect();
    let order = |a: &str, b: &str| match (a == "0", b == "0") {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => cmp(a, b),
    };
    sorted.sort_by(|x, y| order(x.0, y.0).then(x.1.cmp(&y.1)));
    let mut affected = false;
    for (v, kind) in &sorted {
        match kind {
            0 if *v == "0" || cmp(version, v).is_ge() => affected = true,
            1 if cmp(version, v).is_gt() => affected = false,
            2 if cmp(version, v).is_ge() => affected = false,
            _ => {}
        }
    }
    let below_limits = sorted.iter().filter(|(_, k)| *k == 3).all(|(v, _)| cmp(version, v).is_lt());
    affected && below_limits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, v: &str) -> Event {
        let mut e = Event::default();
        let slot = match kind {
            "i" => &mut e.introduced,
            "f" => &mut e.fixed,
            "l" => &mut e.last_affected,
            _ => &mut e.limit,
        };
        *slot = Some(v.to_string());
        e
    }

    #[test]
    fn ranges() {
        let s = |a: &str, b: &str| super::super::version::semver(a, b);
        let r = [ev("i", "0"), ev("f", "1.2.3")];
        assert!(in_range(&r, "1.2.2", &s));
        assert!(!in_range(&r, "1.2.3", &s));
        // Unsorted, several windows (as PyPI records have them).
        let r = [ev("i", "3.9.0"), ev("f", "3.19.1"), ev("i", "0"), ev("f", "3.8.1")];
        assert!(in_range(&r, "3.8.0", &s) && !in_range(&r, "3.8.5", &s) && in_range(&r, "3.10.0", &s));
        assert!(!in_range(&r, "3.19.1", &s));
        let r = [ev("i", "1.0.0"), ev("l", "1.4.0")];
        assert!(in_range(&r, "1.4.0", &s) && !in_range(&r, "1.4.1", &s) && !in_range(&r, "0.9.0", &s));
        let r = [ev("i", "0"), ev("x", "2.0.0")];
        assert!(in_range(&r, "1.9.9", &s) && !in_range(&r, "2.0.0", &s));
    }
}
