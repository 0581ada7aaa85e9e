//! Inventory: what is installed under a target path — a host root (`/`), a mounted image,
//! another machine's copied files, or a project directory.
//!
//! - OS packages: dpkg's `var/lib/dpkg/status` and `status.d/` (distroless images), apk's
//!   `lib/apk/db/installed`; the distribution and release from `etc/os-release`.
//! - Application lockfiles found below the target: `Cargo.lock`, `package-lock.json` /
//!   `npm-shrinkwrap.json` (v1, v2, v3), `requirements*.txt` (pinned `==` lines, following
//!   `-r` includes) and `poetry.lock`.
//!
//! A file that is not what its name says is a clear error naming the file and line; a
//! record without a name or version is skipped with a warning; nothing panics on input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::version::Ecosystem;

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    /// The source package advisories are filed under (dpkg `Source:`, apk origin), when
    /// it differs from the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The source package's version when dpkg names one (`Source: foo (1.2-3)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// The file it was read from.
    pub location: String,
    /// Only a development dependency (npm `dev`, poetry `develop`/groups).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dev: bool,
}

impl Package {
    /// The name and version advisories are matched on (the source package for OS packages).
    pub fn match_key(&self) -> (&str, &str) {
        (self.source.as_deref().unwrap_or(&self.name), self.source_version.as_deref().unwrap_or(&self.version))
    }
}

/// The distribution, from `os-release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distro {
    /// `debian`, `ubuntu`, `alpine`, …
    pub id: String,
    /// `12`, `22.04`, `3.20.3`.
    pub version_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codename: Option<String>,
}

impl Distro {
    /// The release as OSV names it (`Debian:12` → `12`, `Alpine:v3.20` → `3.20`).
    pub fn osv_release(&self) -> String {
        match self.id.as_str() {
            "alpine" => self.version_id.split('.').take(2).collect::<Vec<_>>().join("."),
            "debian" => self.version_id.split('.').next().unwrap_or_default().to_string(),
            _ => self.version_id.clone(),
        }
    }
}

/// What a scan of one target found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<Distro>,
    pub packages: Vec<Package>,
    /// The files read, each with how many packages it gave.
    pub sources: Vec<(String, usize)>,
    /// Files that could not be read as what they are named (path: why).
    pub errors: Vec<String>,
    /// Records skipped (no name or version, not pinned, not from a registry).
    pub warnings: Vec<String>,
}

/// What one collector read from one file.
#[derive(Debug, Default, PartialEq)]
pub struct Collected {
    pub packages: Vec<Package>,
    pub warnings: Vec<String>,
}

/// Directories never descended into when looking for lockfiles.
const SKIP_DIRS: [&str; 10] =
    ["proc", "sys", "dev", "run", "node_modules", ".git", "target", "__pycache__", ".cache", "tmp"];

/// Bounds on the walk for lockfiles.
const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: usize = 200_000;
/// Largest file read as an inventory source.
const MAX_FILE: u64 = 64 << 20;

/// Why a file cannot be inventoried: it cannot be read, or it is not what its name
/// says — shown as `file[:line]: reason`.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {size} bytes, more than the {MAX_FILE} read", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}: not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Format { path: PathBuf, line: Option<usize>, reason: String },
}

/// The file is not what its name says, at this line.
fn format_error(path: &Path, line: usize, reason: String) -> InventoryError {
    InventoryError::Format { path: path.to_path_buf(), line: Some(line), reason }
}

/// The file as a whole is not what its name says.
fn not_what(path: &Path, reason: String) -> InventoryError {
    InventoryError::Format { path: path.to_path_buf(), line: None, reason }
}

fn read(path: &Path) -> Result<String, InventoryError> {
    let meta = std::fs::metadata(path).map_err(|source| InventoryError::Read { path: path.to_path_buf(), source })?;
    if meta.len() > MAX_FILE {
        return Err(InventoryError::TooLarge { path: path.to_path_buf(), size: meta.len() });
    }
    let bytes = std::fs::read(path).map_err(|source| InventoryError::Read { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|_| InventoryError::NotText { path: path.to_path_buf() })
}

/// Scans `target`: OS packages at its root, lockfiles below it (or the one lockfile
/// `target` names).
pub fn scan(target: &Path) -> Inventory {
    let mut inv = Inventory { target: target.display().to_string(), ..Inventory::default() };
    let add = |inv: &mut Inventory, path: &Path, r: Result<Collected, InventoryError>| match r {
        Ok(c) => {
            inv.sources.push((path.display().to_string(), c.packages.len()));
            inv.packages.extend(c.packages);
            inv.warnings.extend(c.warnings.into_iter().map(|w| format!("{}: {w}", path.display())));
        }
        Err(e) => inv.errors.push(e.to_string()),
    };
    if target.is_file() {
        if let Some(kind) = lockfile_kind(target) {
            let r = collect_lockfile(kind, target);
            add(&mut inv, target, r);
        } else {
            inv.errors.push(format!("{}: not a file Warden can inventory", target.display()));
        }
        finish(&mut inv);
        return inv;
    }
    for rel in ["etc/os-release", "usr/lib/os-release"] {
        if let Ok(text) = read(&target.join(rel)) {
            inv.distro = parse_os_release(&text);
            break;
        }
    }
    let eco = os_ecosystem(inv.distro.as_ref(), Ecosystem::Debian);
    let status = target.join("var/lib/dpkg/status");
    if status.is_file() {
        let r = read(&status).and_then(|t| parse_dpkg_status(&t, eco, &status));
        add(&mut inv, &status, r);
    }
    let status_d = target.join("var/lib/dpkg/status.d");
    if let Ok(dir) = std::fs::read_dir(&status_d) {
        let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files.into_iter().filter(|f| f.is_file() && f.extension().is_none_or(|e| e != "md5sums")) {
            let r = read(&f).and_then(|t| parse_dpkg_status(&t, eco, &f));
            add(&mut inv, &f, r);
        }
    }
    let apk = target.join("lib/apk/db/installed");
    if apk.is_file() {
        let r = read(&apk).and_then(|t| parse_apk_installed(&t, &apk));
        add(&mut inv, &apk, r);
    }
    let mut lockfiles = Vec::new();
    let mut seen = 0usize;
    walk(target, 0, &mut seen, &mut lockfiles);
    if seen >= MAX_ENTRIES {
        inv.warnings.push(format!("stopped looking for lockfiles after {MAX_ENTRIES} directory entries"));
    }
    lockfiles.sort();
    for (path, kind) in lockfiles {
        let r = collect_lockfile(kind, &path);
        add(&mut inv, &path, r);
    }
    finish(&mut inv);
    inv
}

fn finish(inv: &mut Inventory) {
    inv.packages.sort();
    inv.packages.dedup();
}

/// The OS ecosystem for a distribution (`fallback` when unknown).
fn os_ecosystem(d: Option<&Distro>, fallback: Ecosystem) -> Ecosystem {
    match d.map(|d| d.id.as_str()) {
        Some("ubuntu") => Ecosystem::Ubuntu,
        Some("alpine") => Ecosystem::Alpine,
        Some("debian") => Ecosystem::Debian,
        _ => fallback,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lockfile {
    Cargo,
    Npm,
    Requirements,
    Poetry,
}

/// Which lockfile a path is, by its name.
pub fn lockfile_kind(path: &Path) -> Option<Lockfile> {
    let name = path.file_name()?.to_str()?;
    Some(match name {
        "Cargo.lock" => Lockfile::Cargo,
        "package-lock.json" | "npm-shrinkwrap.json" => Lockfile::Npm,
        "poetry.lock" => Lockfile::Poetry,
        n if n.starts_with("requirements") && n.ends_with(".txt") => Lockfile::Requirements,
        _ => return None,
    })
}

fn walk(dir: &Path, depth: usize, seen: &mut usize, out: &mut Vec<(PathBuf, Lockfile)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        *seen += 1;
        if *seen >= MAX_ENTRIES {
            return;
        }
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        if ft.is_dir() {
            let name = e.file_name();
            if depth < MAX_DEPTH && !SKIP_DIRS.iter().any(|s| name == *s) {
                walk(&path, depth + 1, seen, out);
            }
        } else if ft.is_file()
            && let Some(kind) = lockfile_kind(&path)
        {
            out.push((path, kind));
        }
    }
}

/// Reads one lockfile.
pub fn collect_lockfile(kind: Lockfile, path: &Path) -> Result<Collected, InventoryError> {
    match kind {
        // Reads its includes as well.
        Lockfile::Requirements => parse_requirements(path),
        Lockfile::Cargo => parse_cargo_lock(&read(path)?, path),
        Lockfile::Npm => parse_package_lock(&read(path)?, path),
        Lockfile::Poetry => parse_poetry_lock(&read(path)?, path),
    }
}

fn clean(s: &str) -> String {
    crate::text::sanitize(s.trim(), 256)
}

fn package(eco: Ecosystem, name: &str, version: &str, path: &Path) -> Package {
    Package {
        ecosystem: eco,
        name: clean(name),
        version: clean(version),
        source: None,
        source_version: None,
        location: path.display().to_string(),
        dev: false,
    }
}

// ----------------------------------------------------------------------- OS files

/// `os-release`: `KEY=value` lines, values optionally quoted.
pub fn parse_os_release(text: &str) -> Option<Distro> {
    let mut id = None;
    let mut version = None;
    let mut codename = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().trim_matches(['"', '\'']).to_string();
        match k.trim() {
            "ID" => id = Some(v.to_ascii_lowercase()),
            "VERSION_ID" => version = Some(v),
            "VERSION_CODENAME" if !v.is_empty() => codename = Some(v),
            _ => {}
        }
    }
    Some(Distro { id: id?, version_id: version.unwrap_or_default(), codename })
}

/// Paragraphs of `Field: value` lines (continuations start with a space or tab), with
/// the line each starts on.
/// A record's first line and its `(field, value)` pairs.
type Paragraph<'a> = (usize, Vec<(&'a str, &'a str)>);

fn paragraphs<'a>(text: &'a str, path: &Path) -> Result<Vec<Paragraph<'a>>, InventoryError> {
    let mut out = Vec::new();
    let mut cur: Vec<(&str, &str)> = Vec::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push((start, std::mem::take(&mut cur)));
            }
            start = i + 2;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if cur.is_empty() {
                return Err(format_error(path, i + 1, "a continuation line outside a record".into()));
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => cur.push((k, v.trim())),
            _ => {
                let line = crate::text::sanitize(line, 80);
                return Err(format_error(
                    path,
                    i + 1,
                    format!("`{line}` is not a `Field: value` line — not a package database"),
                ));
            }
        }
    }
    if !cur.is_empty() {
        out.push((start, cur));
    }
    Ok(out)
}

/// dpkg's `status` (or a `status.d/` file): installed packages only (the last word of
/// `Status:` is `installed`; `status.d` records have no `Status:` and are installed).
pub fn parse_dpkg_status(text: &str, eco: Ecosystem, path: &Path) -> Result<Collected, InventoryError> {
    let mut c = Collected::default();
    for (line, fields) in paragraphs(text, path)? {
        let get = |k: &str| fields.iter().find(|(f, _)| f.eq_ignore_ascii_case(k)).map(|(_, v)| *v);
        if get("Status").is_some_and(|s| s.split_whitespace().last() != Some("installed")) {
            continue;
        }
        let (Some(name), Some(version)) = (get("Package"), get("Version")) else {
            c.warnings.push(format!(
                "line {line}: a record without {} (skipped)",
                if get("Package").is_none() { "Package" } else { "Version" }
            ));
            continue;
        };
        if name.is_empty() || version.is_empty() {
            c.warnings.push(format!("line {line}: a record with an empty name or version (skipped)"));
            continue;
        }
        let mut p = package(eco, name, version, path);
        if let Some(src) = get("Source") {
            let (s, v) = match src.split_once('(') {
                Some((s, v)) => (s.trim(), Some(v.trim_end_matches(')').trim())),
                None => (src.trim(), None),
            };
            if !s.is_empty() && s != name {
                p.source = Some(clean(s));
            }
            p.source_version = v.filter(|v| !v.is_empty()).map(clean);
        }
        c.packages.push(p);
    }
    Ok(c)
}

/// apk's `installed` database: `P:` name, `V:` version, `o:` origin (source package).
pub fn parse_apk_installed(text: &str, path: &Path) -> Result<Collected, InventoryError> {
    let mut c = Collected::default();
    let mut fields: Vec<(u8, &str)> = Vec::new();
    let mut start = 1;
    let flush = |fields: &mut Vec<(u8, &str)>, start: usize, c: &mut Collected| {
        if fields.is_empty() {
            return;
        }
        let get = |k: u8| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
        match (get(b'P'), get(b'V')) {
            (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => {
                let mut p = package(Ecosystem::Alpine, n, v, path);
                p.source = get(b'o').filter(|o| !o.is_empty() && *o != n).map(clean);
                c.packages.push(p);
            }
            _ => c.warnings.push(format!("line {start}: a record without a name or version (skipped)")),
        }
        fields.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            flush(&mut fields, start, &mut c);
            start = i + 2;
            continue;
        }
        let b = line.as_bytes();
        if b.len() < 2 || b[1] != b':' {
            let line = crate::text::sanitize(line, 80);
            return Err(format_error(
                path,
                i + 1,
                format!("`{line}` is not an apk `X:value` line — not an apk database"),
            ));
        }
        fields.push((b[0], &line[2..]));
    }
    flush(&mut fields, start, &mut c);
    Ok(c)
}

// ---------------------------------------------------------------------- lockfiles

#[derive(Deserialize)]
struct CargoLock {
    #[serde(default)]
    package: Vec<CargoPackage>,
}

#[derive(Deserialize)]
struct CargoPackage {
    name: String,
    version: String,
    source: Option<String>,
}

/// `Cargo.lock`: packages from a registry (workspace and path crates are not
/// published crates; git dependencies are named in a warning).
pub fn parse_cargo_lock(text: &str, path: &Path) -> Result<Collected, InventoryError> {
    let lock: CargoLock =
        toml::from_str(text).map_err(|e| not_what(path, format!("not a Cargo.lock: {}", first_line(&e))))?;
    let mut c = Collected::default();
    for p in lock.package {
        match p.source.as_deref() {
            Some(s) if s.starts_with("registry+") || s.starts_with("sparse+") => {
                c.packages.push(package(Ecosystem::CratesIo, &p.name, &p.version, path));
            }
            Some(s) if s.starts_with("git+") => c.warnings.push(format!(
                "{} {} comes from git, not crates.io (not matched)",
                clean(&p.name),
                clean(&p.version)
            )),
            _ => {}
        }
    }
    Ok(c)
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// `package-lock.json` / `npm-shrinkwrap.json`: v2/v3 `packages` (keyed by install path;
/// aliases carry the real `name`), else v1's nested `dependencies`.
pub fn parse_package_lock(text: &str, path: &Path) -> Result<Collected, InventoryError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| not_what(path, format!("not JSON: {e}")))?;
    let Some(top) = v.as_object() else {
        return Err(not_what(path, "not a package-lock: the top level is not an object".into()));
    };
    let mut c = Collected::default();
    if let Some(pkgs) = top.get("packages").and_then(|p| p.as_object()) {
        for (key, entry) in pkgs {
            if key.is_empty() || entry.get("link").and_then(|l| l.as_bool()) == Some(true) {
                continue;
            }
            // Outside `node_modules/` is the project's own code (workspaces, `file:` deps).
            let Some((_, installed_as)) = key.rsplit_once("node_modules/").filter(|(_, n)| !n.is_empty()) else {
                continue;
            };
            let name = entry.get("name").and_then(|n| n.as_str()).unwrap_or(installed_as);
            npm_package(&mut c, name, entry, path);
        }
        return Ok(c);
    }
    if let Some(deps) = top.get("dependencies").and_then(|d| d.as_object()) {
        let mut stack: Vec<&serde_json::Map<String, serde_json::Value>> = vec![deps];
        while let Some(deps) = stack.pop() {
            for (name, entry) in deps {
                npm_package(&mut c, name, entry, path);
                if let Some(nested) = entry.get("dependencies").and_then(|d| d.as_object()) {
                    stack.push(nested);
                }
            }
        }
        return Ok(c);
    }
    if top.contains_key("lockfileVersion") {
        return Ok(c);
    }
    Err(not_what(path, "not a package-lock: neither `packages` nor `dependencies` nor `lockfileVersion`".into()))
}

fn npm_package(c: &mut Collected, name: &str, entry: &serde_json::Value, path: &Path) {
    let Some(version) = entry.get("version").and_then(|v| v.as_str()) else {
        c.warnings.push(format!("{} has no version (skipped)", clean(name)));
        return;
    };
    // v1 alias: `"version": "npm:@babel/code-frame@7.0.0"`.
    let (name, version) = match version.strip_prefix("npm:").and_then(|a| a.rsplit_once('@')) {
        Some((n, v)) if !n.is_empty() => (n, v),
        _ => (name, version),
    };
    let resolved = entry.get("resolved").and_then(|r| r.as_str()).unwrap_or_default();
    let from_git = resolved.starts_with("git") || resolved.starts_with("github:");
    if from_git || version.contains([':', '/', '#']) || version.is_empty() {
        c.warnings.push(format!("{} {} is not from the registry (not matched)", clean(name), clean(version)));
        return;
    }
    let mut p = package(Ecosystem::Npm, name, version, path);
    p.dev = entry.get("dev").and_then(|d| d.as_bool()).unwrap_or(false);
    c.packages.push(p);
}

#[derive(Deserialize)]
struct PoetryLock {
    #[serde(default)]
    package: Vec<PoetryPackage>,
}

#[derive(Deserialize)]
struct PoetryPackage {
    name: String,
    version: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    source: Option<PoetrySource>,
}

#[derive(Deserialize)]
struct PoetrySource {
    #[serde(rename = "type", default)]
    kind: String,
}

/// `poetry.lock`: packages from an index (git, directory and file sources are named in
/// a warning).
pub fn parse_poetry_lock(text: &str, path: &Path) -> Result<Collected, InventoryError> {
    let lock: PoetryLock =
        toml::from_str(text).map_err(|e| not_what(path, format!("not a poetry.lock: {}", first_line(&e))))?;
    let mut c = Collected::default();
    for p in lock.package {
        if let Some(s) = p.source.as_ref().filter(|s| !matches!(s.kind.as_str(), "legacy" | "")) {
            c.warnings.push(format!(
                "{} {} comes from a {} source (not matched)",
                clean(&p.name),
                clean(&p.version),
                clean(&s.kind)
            ));
            continue;
        }
        let mut pkg = package(Ecosystem::PyPI, &Ecosystem::PyPI.canonical_name(&p.name), &p.version, path);
        pkg.dev = p.category.as_deref() == Some("dev");
        c.packages.push(pkg);
    }
    Ok(c)
}

/// `requirements.txt`: pinned requirements (`name==version`, `name===version`), with
/// extras, markers, per-requirement options and comments stripped; `-r FILE` included
/// (once each, so include loops end). Unpinned requirements are listed as warnings.
pub fn parse_requirements(path: &Path) -> Result<Collected, InventoryError> {
    let mut c = Collected::default();
    let mut seen = BTreeSet::new();
    requirements_file(path, &mut seen, &mut c, 0)?;
    Ok(c)
}

fn requirements_file(
    path: &Path,
    seen: &mut BTreeSet<PathBuf>,
    c: &mut Collected,
    depth: usize,
) -> Result<(), InventoryError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(canonical) || depth > 16 {
        return Ok(());
    }
    let text = read(path)?;
    // Join continuation lines; keep the number of the first line of each.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (n, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
                pending = Some((n, acc));
            }
            None => {
                acc.push_str(raw);
                logical.push((n, acc));
            }
        }
    }
    logical.extend(pending);
    for (n, line) in logical {
        // A comment starts at `#` at the start of the line or after whitespace.
        let line = match line
            .char_indices()
            .find(|&(i, ch)| ch == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)))
        {
            Some((i, _)) => &line[..i],
            None => &line[..],
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(opt) = line.strip_prefix('-') {
            let mut words = opt.split_whitespace();
            let flag = words.next().unwrap_or_default();
            let (flag, inline) = match flag.split_once('=') {
                Some((f, v)) => (f, Some(v)),
                None => (flag, None),
            };
            if matches!(flag, "r" | "-requirement") {
                let Some(file) = inline.or_else(|| words.next()) else { continue };
                let inc = path.parent().unwrap_or(Path::new(".")).join(file);
                if let Err(e) = requirements_file(&inc, seen, c, depth + 1) {
                    c.warnings.push(format!("line {n}: included file: {e}"));
                }
            }
            continue;
        }
        match pinned(line) {
            Some((name, version)) => {
                let name = Ecosystem::PyPI.canonical_name(name);
                c.packages.push(package(Ecosystem::PyPI, &name, version, path));
            }
            None => c.warnings.push(format!("line {n}: `{}` is not pinned with == (not matched)", clean(line))),
        }
    }
    Ok(())
}

/// `name[extras] == version` of one requirement line, else `None`.
fn pinned(line: &str) -> Option<(&str, &str)> {
    // Markers after `;`, per-requirement options from the first ` -` on.
    let line = line.split(';').next()?;
    let line = match line.find(" -") {
        Some(i) => &line[..i],
        None => line,
    };
    let line = line.trim();
    let name_end =
        line.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut rest = line[name_end..].trim_start();
    if let Some(r) = rest.strip_prefix('[') {
        rest = r.split_once(']')?.1.trim_start();
    }
    let spec = rest.strip_prefix("===").or_else(|| rest.strip_prefix("=="))?.trim();
    let valid =
        !spec.is_empty() && spec.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '!'));
    valid.then_some((name, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_lines() {
        assert_eq!(pinned("docopt == 0.6.1"), Some(("docopt", "0.6.1")));
        assert_eq!(pinned("pyjwt [crypto] == 2.1.0"), Some(("pyjwt", "2.1.0")));
        assert_eq!(pinned("foo5==1.0; python_version < \"2.7\" --hash=sha256:123"), Some(("foo5", "1.0")));
        assert_eq!(pinned("foo1==1.0 --hash=sha256:123"), Some(("foo1", "1.0")));
        assert_eq!(pinned("requests [security] >= 2.8.1, == 2.8.*"), None);
        assert_eq!(pinned("qwert==${MY_VARIABLE_1}"), None);
        assert_eq!(pinned("asdf=="), None);
        assert_eq!(pinned("==1.0"), None);
        assert_eq!(pinned("urllib3 @ https://x/==1.26.8.zip"), None);
    }

    #[test]
    fn dpkg_sources_and_status() {
        let text = "Package: libssl3\nStatus: install ok installed\nSource: openssl (3.0.11-1~deb12u2)\nVersion: 3.0.11-1~deb12u2+b1\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: nover\nStatus: install ok installed\n";
        let c = parse_dpkg_status(text, Ecosystem::Debian, Path::new("status")).unwrap();
        assert_eq!(c.packages.len(), 1);
        assert_eq!(c.packages[0].match_key(), ("openssl", "3.0.11-1~deb12u2"));
        assert_eq!(c.warnings, ["line 12: a record without Version (skipped)"]);
        let err = parse_dpkg_status("asdf\n\nyolo\n", Ecosystem::Debian, Path::new("status")).unwrap_err().to_string();
        assert!(err.contains("status:1") && err.contains("not a package database"), "{err}");
    }

    #[test]
    fn os_release() {
        let d = parse_os_release("PRETTY_NAME=\"Alpine\"\nID=alpine\nVERSION_ID=3.20.3\n").unwrap();
        assert_eq!(d.osv_release(), "3.20");
        let d = parse_os_release("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n").unwrap();
        assert_eq!((d.osv_release().as_str(), d.codename.as_deref()), ("12", Some("bookworm")));
    }
}
