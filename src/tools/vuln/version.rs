//! Version order, per ecosystem: each package manager's own rules, since "is 1.2.3-1~deb7u1
//! below the fix?" has a different answer under dpkg than under semver.
//!
//! - dpkg (Debian, Ubuntu): `[epoch:]upstream[-revision]`, compared as dpkg does — runs
//!   of non-digits character by character (`~` before everything, even the end; letters
//!   before other characters), runs of digits numerically.
//! - apk (Alpine): `number{.number}{letter}{_suffix{number}}{~hash}{-r#}`, suffixes in the
//!   order alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p; a version that
//!   does not fit is "invalid", and two invalid versions compare as text.
//! - semver (crates.io, npm, OSV `SEMVER` ranges): leniently parsed (`v` prefix, missing
//!   minor/patch), build metadata ignored, pre-releases below their release.
//! - PEP 440 (PyPI), with pre-PEP 440 ("legacy") versions ordered below every valid
//!   one, as pip's tooling did.
//!
//! Numbers of any length compare exactly (as digit strings, not machine integers).

use std::cmp::Ordering;

/// Package ecosystems Warden can inventory and match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Ecosystem {
    Debian,
    Ubuntu,
    Alpine,
    #[serde(rename = "crates.io")]
    CratesIo,
    #[serde(rename = "npm")]
    Npm,
    PyPI,
}

impl Ecosystem {
    /// The OSV name (`Debian:12` and `Alpine:v3.20` name a release of one of these).
    pub fn osv_name(self) -> &'static str {
        match self {
            Ecosystem::Debian => "Debian",
            Ecosystem::Ubuntu => "Ubuntu",
            Ecosystem::Alpine => "Alpine",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Npm => "npm",
            Ecosystem::PyPI => "PyPI",
        }
    }

    /// From an OSV `ecosystem` value: the ecosystem and the release, if one is named
    /// (`Debian:12` → Debian, `12`; `Ubuntu:22.04:LTS` → Ubuntu, `22.04`).
    pub fn parse_osv(s: &str) -> Option<(Ecosystem, Option<String>)> {
        let mut parts = s.splitn(3, ':');
        let eco = match parts.next()? {
            "Debian" => Ecosystem::Debian,
            "Ubuntu" => Ecosystem::Ubuntu,
            "Alpine" => Ecosystem::Alpine,
            "crates.io" => Ecosystem::CratesIo,
            "npm" => Ecosystem::Npm,
            "PyPI" => Ecosystem::PyPI,
            _ => return None,
        };
        let release = parts.next().map(|r| r.trim_start_matches('v').to_string()).filter(|r| !r.is_empty());
        Some((eco, release))
    }

    /// Compares two versions in this ecosystem's order.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Ecosystem::Debian | Ecosystem::Ubuntu => dpkg(a, b),
            Ecosystem::Alpine => apk(a, b),
            Ecosystem::CratesIo | Ecosystem::Npm => semver(a, b),
            Ecosystem::PyPI => pep440(a, b),
        }
    }

    /// A package name in this ecosystem's canonical form, for comparing names (PyPI
    /// names are case-insensitive and treat `_`, `.` and `-` alike: `Foo_Bar` → `foo-bar`).
    pub fn canonical_name(self, name: &str) -> String {
        match self {
            Ecosystem::PyPI => {
                let mut out = String::with_capacity(name.len());
                for c in name.trim().chars() {
                    let c = if matches!(c, '_' | '.') { '-' } else { c.to_ascii_lowercase() };
                    if !(c == '-' && out.ends_with('-')) {
                        out.push(c);
                    }
                }
                out
            }
            _ => name.trim().to_string(),
        }
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.osv_name())
    }
}

/// Two runs of ASCII digits by value, whatever their length.
fn numeric(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Splits `s` at the end of its leading run of bytes satisfying `f`.
fn take_while(s: &str, f: impl Fn(u8) -> bool) -> (&str, &str) {
    let n = s.bytes().position(|c| !f(c)).unwrap_or(s.len());
    s.split_at(n)
}

// ---------------------------------------------------------------------------- dpkg

/// dpkg's order of versions.
pub fn dpkg(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = dpkg_split(a.trim());
    let (eb, ub, rb) = dpkg_split(b.trim());
    numeric(ea, eb).then_with(|| dpkg_part(ua, ub)).then_with(|| dpkg_part(ra, rb))
}

/// `epoch:upstream-revision`: the epoch before the first `:` (when it is a number), the
/// revision after the last `-`.
fn dpkg_split(v: &str) -> (&str, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (e, r),
        _ => ("0", v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// The weight of a character in a non-digit run; `None` is the end of the run.
fn dpkg_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn dpkg_part(mut a: &str, mut b: &str) -> Ordering {
    while !a.is_empty() || !b.is_empty() {
        let (na, ra) = take_while(a, |c| !c.is_ascii_digit());
        let (nb, rb) = take_while(b, |c| !c.is_ascii_digit());
        let (na, nb) = (na.as_bytes(), nb.as_bytes());
        for i in 0..na.len().max(nb.len()) {
            let (x, y) = (dpkg_order(na.get(i).copied()), dpkg_order(nb.get(i).copied()));
            if x != y {
                return x.cmp(&y);
            }
        }
        let (da, ra) = take_while(ra, |c| c.is_ascii_digit());
        let (db, rb) = take_while(rb, |c| c.is_ascii_digit());
        let o = numeric(da, db);
        if o != Ordering::Equal {
            return o;
        }
        (a, b) = (ra, rb);
    }
    Ordering::Equal
}

// ----------------------------------------------------------------------------- apk

/// Suffix weights: alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p.
const APK_SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const APK_NO_SUFFIX: u8 = 4;

fn apk_suffix_weight(name: &str) -> Option<u8> {
    let i = APK_SUFFIXES.iter().position(|s| *s == name)? as u8;
    Some(if i >= APK_NO_SUFFIX { i + 1 } else { i })
}

#[derive(Debug)]
struct Apk<'a> {
    text: &'a str,
    numbers: Vec<&'a str>,
    letter: Option<u8>,
    suffixes: Vec<(u8, &'a str)>,
    build: &'a str,
    /// Trailing text after the build number.
    rest: &'a str,
    /// Text left over where only a build number (`-r#`) may stand.
    invalid: bool,
}

fn apk_parse(text: &str) -> Apk<'_> {
    let mut s = text;
    let mut numbers = Vec::new();
    // number{.number}: a dot continues the list only when a number may follow.
    loop {
        let (d, r) = take_while(s, |c| c.is_ascii_digit());
        if d.is_empty() {
            break;
        }
        numbers.push(d);
        s = r;
        match s.strip_prefix('.') {
            Some(r) => s = r,
            None => break,
        }
    }
    let letter = match s.as_bytes().first() {
        Some(c) if c.is_ascii_lowercase() => {
            s = &s[1..];
            Some(*c)
        }
        _ => None,
    };
    let mut suffixes = Vec::new();
    while let Some(r) = s.strip_prefix('_') {
        let (name, r2) = take_while(r, |c| c.is_ascii_lowercase());
        let Some(w) = apk_suffix_weight(name) else { break };
        let (n, r3) = take_while(r2, |c| c.is_ascii_digit());
        suffixes.push((w, n));
        s = r3;
    }
    if let Some(r) = s.strip_prefix('~') {
        let (h, r2) = take_while(r, |c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if !h.is_empty() {
            s = r2;
        }
    }
    let mut build = "";
    let mut invalid = false;
    if let Some(r) = s.strip_prefix("-r") {
        let (n, r2) = take_while(r, |c| c.is_ascii_digit());
        build = n;
        s = r2;
    } else {
        invalid = !s.is_empty();
    }
    Apk { text, numbers, letter, suffixes, build, rest: s, invalid }
}

/// apk's order of versions.
pub fn apk(a: &str, b: &str) -> Ordering {
    let (x, y) = (apk_parse(a.trim()), apk_parse(b.trim()));
    if x.invalid && y.invalid {
        return x.text.cmp(y.text);
    }
    for i in 0..x.numbers.len().max(y.numbers.len()) {
        let (p, q) = (x.numbers.get(i).copied().unwrap_or("0"), y.numbers.get(i).copied().unwrap_or("0"));
        // After the first component, a leading zero makes the number a fraction:
        // compared as text (1.06 < 1.1 as in 1.06 < 1.1 < 1.5).
        let o = if i > 0 && (p.starts_with('0') || q.starts_with('0')) { p.cmp(q) } else { numeric(p, q) };
        if o != Ordering::Equal {
            return o;
        }
    }
    let o = match (x.letter, y.letter) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(p), Some(q)) => p.cmp(&q),
    };
    if o != Ordering::Equal {
        return o;
    }
    for i in 0..x.suffixes.len().max(y.suffixes.len()) {
        let (pw, pn) = x.suffixes.get(i).copied().unwrap_or((APK_NO_SUFFIX, "0"));
        let (qw, qn) = y.suffixes.get(i).copied().unwrap_or((APK_NO_SUFFIX, "0"));
        let o = pw.cmp(&qw).then_with(|| numeric(pn, qn));
        if o != Ordering::Equal {
            return o;
        }
    }
    let o = numeric(x.build, y.build);
    if o != Ordering::Equal {
        return o;
    }
    // A clean version sorts after one with unparsed trailing text.
    match (x.rest.is_empty(), y.rest.is_empty()) {
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => Ordering::Equal,
    }
}

// -------------------------------------------------------------------------- semver

struct Semver<'a> {
    core: [&'a str; 3],
    pre: Option<&'a str>,
}

fn semver_parse(v: &str) -> Semver<'_> {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    let v = v.split_once('+').map_or(v, |(a, _)| a);
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let mut parts = ["0"; 3];
    for (slot, part) in parts.iter_mut().zip(core.split('.')) {
        let (d, _) = take_while(part, |c| c.is_ascii_digit());
        if !d.is_empty() {
            *slot = d;
        }
    }
    Semver { core: parts, pre }
}

/// Semantic Versioning 2.0 order, leniently parsed (OSV's `SEMVER`).
pub fn semver(a: &str, b: &str) -> Ordering {
    let (x, y) = (semver_parse(a), semver_parse(b));
    for i in 0..3 {
        let o = numeric(x.core[i], y.core[i]);
        if o != Ordering::Equal {
            return o;
        }
    }
    match (x.pre, y.pre) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(p), Some(q)) => {
            let (mut pi, mut qi) = (p.split('.'), q.split('.'));
            loop {
                match (pi.next(), qi.next()) {
                    (None, None) => return Ordering::Equal,
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some(s), Some(t)) => {
                        let sn = !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
                        let tn = !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
                        let o = match (sn, tn) {
                            (true, true) => numeric(s, t),
                            (true, false) => Ordering::Less,
                            (false, true) => Ordering::Greater,
                            (false, false) => s.cmp(t),
                        };
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------- PEP 440

#[derive(Debug, PartialEq, Eq)]
enum Pep440 {
    Valid {
        epoch: String,
        release: Vec<String>,
        /// (phase: 0 a, 1 b, 2 rc; number)
        pre: Option<(u8, String)>,
        post: Option<String>,
        dev: Option<String>,
        local: Vec<String>,
    },
    /// Not PEP 440: setuptools' old parse, as a list of comparable parts.
    Legacy(Vec<String>),
}

/// A cursor over a lower-cased version string.
struct Cur<'a>(&'a str);

impl<'a> Cur<'a> {
    fn digits(&mut self) -> Option<&'a str> {
        let (d, r) = take_while(self.0, |c| c.is_ascii_digit());
        if d.is_empty() {
            return None;
        }
        self.0 = r;
        Some(d)
    }
    fn sep(&mut self) {
        if let Some(r) = self.0.strip_prefix(['-', '_', '.']) {
            self.0 = r;
        }
    }
    /// The first of `words` at the cursor (after an optional separator), consumed.
    fn word(&mut self, words: &[&'static str]) -> Option<&'static str> {
        let save = self.0;
        self.sep();
        for w in words {
            if let Some(r) = self.0.strip_prefix(w) {
                self.0 = r;
                return Some(w);
            }
        }
        self.0 = save;
        None
    }
}

fn pep440_parse(v: &str) -> Pep440 {
    let lower = v.trim().to_ascii_lowercase();
    pep440_valid(&lower).unwrap_or_else(|| Pep440::Legacy(pep440_legacy(&lower)))
}

fn pep440_valid(s: &str) -> Option<Pep440> {
    let mut c = Cur(s.strip_prefix('v').unwrap_or(s));
    let mut epoch = "0";
    let first = c.digits()?;
    let first = if let Some(r) = c.0.strip_prefix('!') {
        epoch = first;
        c.0 = r;
        c.digits()?
    } else {
        first
    };
    let mut release = vec![first.to_string()];
    while let Some(r) = c.0.strip_prefix('.') {
        let save = c.0;
        c.0 = r;
        match c.digits() {
            Some(d) => release.push(d.to_string()),
            None => {
                c.0 = save;
                break;
            }
        }
    }
    let number = |c: &mut Cur| {
        let save = c.0;
        c.sep();
        c.digits().map(str::to_string).or_else(|| {
            c.0 = save;
            None
        })
    };
    let pre = match c.word(&["alpha", "a", "beta", "b", "preview", "pre", "rc", "c"]) {
        Some(w) => {
            let phase = match w {
                "alpha" | "a" => 0,
                "beta" | "b" => 1,
                _ => 2,
            };
            Some((phase, number(&mut c).unwrap_or_else(|| "0".into())))
        }
        None => None,
    };
    let post = if let Some(r) = c.0.strip_prefix('-')
        && r.starts_with(|ch: char| ch.is_ascii_digit())
    {
        c.0 = r;
        c.digits().map(str::to_string)
    } else {
        c.word(&["post", "rev", "r"]).map(|_| number(&mut c).unwrap_or_else(|| "0".into()))
    };
    let dev = c.word(&["dev"]).map(|_| number(&mut c).unwrap_or_else(|| "0".into()));
    let mut local = Vec::new();
    if let Some(r) = c.0.strip_prefix('+') {
        for part in r.split(['-', '_', '.']) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            local.push(part.to_string());
        }
        c.0 = "";
    }
    if !c.0.is_empty() {
        return None;
    }
    Some(Pep440::Valid { epoch: epoch.to_string(), release, pre, post, dev, local })
}

/// setuptools' pre-PEP 440 parse: numbers zero-padded, words marked and renamed so
/// that pre-releases sort below `final`, trailing zeros and `final-` markers dropped.
fn pep440_legacy(s: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.bytes().next() {
        let n = if c.is_ascii_digit() {
            take_while(rest, |c| c.is_ascii_digit()).0.len()
        } else if c.is_ascii_lowercase() {
            take_while(rest, |c| c.is_ascii_lowercase()).0.len()
        } else {
            1
        };
        let (tok, r) = rest.split_at(n);
        if tok != "." && (tok == "-" || tok.bytes().all(|c| c.is_ascii_alphanumeric())) {
            tokens.push(tok);
        }
        rest = r;
    }
    tokens.push("final");
    let mut parts: Vec<String> = Vec::new();
    for tok in tokens {
        let part = match tok {
            "pre" | "preview" | "rc" => "*c".to_string(),
            "-" => "*final-".to_string(),
            "dev" => "*@".to_string(),
            t if t.as_bytes()[0].is_ascii_digit() => format!("{t:0>8}"),
            t => format!("*{t}"),
        };
        if part.starts_with('*') {
            if part.as_str() < "*final" {
                while parts.last().is_some_and(|p| p == "*final-") {
                    parts.pop();
                }
            }
            while parts.last().is_some_and(|p| p == "00000000") {
                parts.pop();
            }
        }
        parts.push(part);
    }
    parts
}

/// PEP 440 order (PyPI).
pub fn pep440(a: &str, b: &str) -> Ordering {
    match (pep440_parse(a), pep440_parse(b)) {
        (Pep440::Legacy(x), Pep440::Legacy(y)) => x.cmp(&y),
        (Pep440::Legacy(_), Pep440::Valid { .. }) => Ordering::Less,
        (Pep440::Valid { .. }, Pep440::Legacy(_)) => Ordering::Greater,
        (
            Pep440::Valid { epoch: e1, release: r1, pre: p1, post: o1, dev: d1, local: l1 },
            Pep440::Valid { epoch: e2, release: r2, pre: p2, post: o2, dev: d2, local: l2 },
        ) => {
            let release = || {
                for i in 0..r1.len().max(r2.len()) {
                    let o = numeric(r1.get(i).map_or("0", |s| s), r2.get(i).map_or("0", |s| s));
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            };
            // A dev release of a version (1.0.dev0) precedes its pre-releases (1.0a0).
            let pre_key = |pre: &Option<(u8, String)>, post: &Option<String>, dev: &Option<String>| match pre {
                None if post.is_none() && dev.is_some() => (0u8, 0u8, String::new()),
                None => (2, 0, String::new()),
                Some((phase, n)) => (1, *phase, n.clone()),
            };
            let (k1, k2) = (pre_key(&p1, &o1, &d1), pre_key(&p2, &o2, &d2));
            let pre = k1.0.cmp(&k2.0).then(k1.1.cmp(&k2.1)).then_with(|| numeric(&k1.2, &k2.2));
            let post = match (&o1, &o2) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => numeric(x, y),
            };
            let dev = match (&d1, &d2) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => numeric(x, y),
            };
            let local = || {
                for (x, y) in l1.iter().zip(&l2) {
                    let xn = x.bytes().all(|c| c.is_ascii_digit());
                    let yn = y.bytes().all(|c| c.is_ascii_digit());
                    let o = match (xn, yn) {
                        (true, true) => numeric(x, y),
                        (false, false) => x.cmp(y),
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                l1.len().cmp(&l2.len())
            };
            numeric(&e1, &e2).then_with(release).then(pre).then(post).then(dev).then_with(local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn dpkg_order() {
        assert_eq!(dpkg("1.2.3-1~deb7u1", "1.2.3-1"), Less);
        assert_eq!(dpkg("1:1.0", "2.0"), Greater);
        assert_eq!(dpkg("1.0~rc1", "1.0"), Less);
        assert_eq!(dpkg("2.7.4+reloaded2-13", "2.7.4+reloaded2-13+deb9u1"), Less);
        assert_eq!(dpkg("0.0.0", "0.0.0-0"), Equal);
        assert_eq!(dpkg("1.0a", "1.0+"), Less);
    }

    #[test]
    fn apk_order() {
        assert_eq!(apk("1.2.3-r1", "1.2.3-r0"), Greater);
        assert_eq!(apk("1.0_rc1", "1.0"), Less);
        assert_eq!(apk("1.0_p1", "1.0"), Greater);
        assert_eq!(apk("1.06", "1.1"), Less);
        assert_eq!(apk("0..8", "0...8"), Greater);
    }

    #[test]
    fn semver_order() {
        assert_eq!(semver("1.0.0-alpha", "1.0.0-alpha.1"), Less);
        assert_eq!(semver("1.0.0-rc.1", "1.0.0"), Less);
        assert_eq!(semver("v1.2.3+build", "1.2.3"), Equal);
        assert_eq!(semver("1.2", "1.2.0"), Equal);
    }

    #[test]
    fn pep440_order() {
        assert_eq!(pep440("1.0.dev0", "1.0a0"), Less);
        assert_eq!(pep440("1.0", "1.0.0"), Equal);
        assert_eq!(pep440("1.0-1", "1.0.post1"), Equal);
        assert_eq!(pep440("1!1.0", "2.0"), Greater);
        assert_eq!(pep440("1.0+local", "1.0"), Greater);
        assert_eq!(pep440("0.9-doduo", "1.0"), Less);
        assert_eq!(Ecosystem::PyPI.canonical_name("Foo_Bar.baz"), "foo-bar-baz");
    }
}
