//! `recommend_remediation`: the smallest fixed version that clears every advisory
//! matching a package, the exact command for its ecosystem, and a mitigation when no
//! fix is published.

use serde::{Deserialize, Serialize};

use super::inventory::Package;
use super::osv::{AdvisoryDb, Match};
use super::version::Ecosystem;

/// What to do about one vulnerable package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remediation {
    pub package: Package,
    /// The advisories this remediation is for.
    pub advisories: Vec<String>,
    /// The version to move to (`None`: no published version clears them all).
    pub target: Option<String>,
    /// The command, as argv (run in `cwd` for lockfiles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// When there is no fix (or no safe command): what to do instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<String>,
    /// Advisories that still affect the target version (other than those cleared).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining: Vec<String>,
    /// A check to run after patching (argv, exit status 0 = good), from configuration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check: Vec<String>,
    /// Why this target, in plain words.
    pub explanation: String,
}

impl Remediation {
    /// The command as a shell-quoted line, for people to read or paste.
    pub fn command_line(&self) -> String {
        self.command.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
    }
}

/// Quotes an argument for display (`'…'` unless it is plainly safe).
pub fn shell_quote(a: &str) -> String {
    if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:@+~%^,".contains(&b)) && !a.contains('=')
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// A name or version that can stand as one argument without changing a command's
/// meaning: no option lookalike, no whitespace or control or shell characters.
fn safe_arg(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.len() <= 214
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+~:@/".contains(&b))
}

/// Recommends for one package and the advisories that match it.
pub fn recommend(db: &AdvisoryDb, matches: &[Match], release: Option<&str>) -> Option<Remediation> {
    let pkg = &matches.first()?.package;
    let eco = pkg.ecosystem;
    let (name, _) = pkg.match_key();
    let ids: Vec<String> = matches.iter().map(|m| m.advisory.clone()).collect();
    let mut candidates: Vec<&str> = matches.iter().flat_map(|m| m.fixed.iter().map(String::as_str)).collect();
    candidates.sort_by(|a, b| eco.compare(a, b));
    candidates.dedup_by(|a, b| eco.compare(a, b).is_eq());
    let mut choice = None;
    for c in &candidates {
        let still = db.affects(eco, name, c, release);
        if !still.iter().any(|a| ids.contains(a)) {
            choice = Some((c.to_string(), still));
            break;
        }
    }
    let mut r = Remediation {
        package: pkg.clone(),
        advisories: ids.clone(),
        target: None,
        command: Vec::new(),
        cwd: None,
        mitigation: None,
        remaining: Vec::new(),
        check: Vec::new(),
        explanation: String::new(),
    };
    let Some((target, remaining)) = choice else {
        r.mitigation = Some(mitigation(pkg, matches, candidates.is_empty()));
        r.explanation = if candidates.is_empty() {
            format!(
                "No fixed version of {} is published for {}. Until one is, reduce the exposure as described.",
                pkg.name,
                ids.join(", ")
            )
        } else {
            format!(
                "The fixed versions published ({}) each still carry one of {}: no single upgrade clears them all.",
                candidates.join(", "),
                ids.join(", ")
            )
        };
        return Some(r);
    };
    r.explanation = format!(
        "{} {} is affected by {}. Version {target} is the lowest release that fixes {}{}.",
        pkg.name,
        pkg.version,
        ids.join(", "),
        if ids.len() > 1 { "all of them" } else { "it" },
        if remaining.is_empty() {
            String::new()
        } else {
            format!(" (it is still affected by {})", remaining.join(", "))
        }
    );
    r.remaining = remaining;
    if safe_arg(&pkg.name) && safe_arg(&target) && safe_arg(&pkg.version) {
        r.command = command(eco, &pkg.name, &pkg.version, &target);
        if matches!(eco, Ecosystem::CratesIo | Ecosystem::Npm | Ecosystem::PyPI) {
            r.cwd = std::path::Path::new(&pkg.location).parent().map(|p| p.display().to_string());
        }
    } else {
        r.mitigation = Some(format!(
            "The package name or version contains characters that are not safe in a command; upgrade {} to {target} by hand.",
            crate::text::sanitize(&pkg.name, 64)
        ));
    }
    r.target = Some(target);
    Some(r)
}

/// The command that moves `name` from `installed` to `target`.
pub fn command(eco: Ecosystem, name: &str, installed: &str, target: &str) -> Vec<String> {
    let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match eco {
        Ecosystem::Debian | Ecosystem::Ubuntu => {
            v(&["apt-get", "install", "--only-upgrade", "-y", &format!("{name}={target}")])
        }
        Ecosystem::Alpine => v(&["apk", "add", "--upgrade", &format!("{name}={target}")]),
        Ecosystem::CratesIo => v(&["cargo", "update", "-p", &format!("{name}@{installed}"), "--precise", target]),
        Ecosystem::Npm => v(&["npm", "install", &format!("{name}@{target}")]),
        Ecosystem::PyPI => v(&["pip", "install", &format!("{name}=={target}")]),
    }
}

fn mitigation(pkg: &Package, matches: &[Match], no_fix: bool) -> String {
    let mut out = String::new();
    if no_fix {
        out.push_str("No fix is published. ");
    }
    out.push_str(&format!(
        "Remove {} if it is not needed, or replace it; otherwise limit who can reach the service that uses it \
         (firewall it to known networks), watch its logs for the advisories' indicators, and re-scan when a fix appears.",
        crate::text::sanitize(&pkg.name, 64)
    ));
    if pkg.dev {
        out.push_str(" It is only a development dependency: keep it out of production builds.");
    }
    if let Some(url) = matches.iter().flat_map(|m| m.references.iter()).find(|u| u.contains("advisor")) {
        out.push_str(&format!(" Workarounds, if any: {url}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_argv_and_quoted_for_display() {
        let c = command(Ecosystem::PyPI, "requests", "2.0.0", "2.31.0");
        assert_eq!(c, ["pip", "install", "requests==2.31.0"]);
        let r = Remediation {
            package: Package {
                ecosystem: Ecosystem::PyPI,
                name: "requests".into(),
                version: "2.0.0".into(),
                source: None,
                source_version: None,
                location: "/srv/app/requirements.txt".into(),
                dev: false,
            },
            advisories: vec![],
            target: Some("2.31.0".into()),
            command: c,
            cwd: None,
            mitigation: None,
            remaining: vec![],
            check: vec![],
            explanation: String::new(),
        };
        assert_eq!(r.command_line(), "pip install 'requests==2.31.0'");
        assert_eq!(
            command(Ecosystem::Debian, "openssl", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),
            ["apt-get", "install", "--only-upgrade", "-y", "openssl=3.0.11-1~deb12u2"]
        );
        assert_eq!(command(Ecosystem::CratesIo, "hyper", "0.14.9", "0.14.12")[3], "hyper@0.14.9");
        assert!(!safe_arg("--config=evil") && !safe_arg("a b") && !safe_arg("x;rm") && safe_arg("1:2.3-1~deb12u1"));
    }
}
