//! Sigma rules: loading with `file:line` errors, compiling, and the per-file report.
//!
//! Parsing and evaluation build on `rsigma-parser`/`rsigma-eval` (pinned): they cover
//! detection selections, keyword lists, the field modifiers (`contains`, `startswith`,
//! `endswith`, `re`, `cidr`, `all`, `base64`, `base64offset`, `windash`, …), conditions
//! (`and`/`or`/`not`, `1 of`/`all of`, wildcards) and correlation rules (`event_count`,
//! `value_count`, `temporal`, …) with `group-by` and `timespan`, evaluated on event time.
//!
//! Loading is per file and per rule: a file that does not parse, or a rule that does not
//! compile, is reported with its file, line (where the parser gives one) and the reason,
//! and every other rule still loads.

use std::path::{Path, PathBuf};

use rsigma_eval::{CorrelationConfig, CorrelationEngine, Engine};
use rsigma_parser::{SigmaCollection, parse_sigma_yaml};

/// One rule file (or one rule in it) that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    /// 0 when the parser gives no position.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// What loading a set of rule files did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Files read.
    pub files: usize,
    /// Files whose every rule loaded.
    pub files_loaded: usize,
    pub detection_rules: usize,
    pub correlation_rules: usize,
    pub errors: Vec<RuleError>,
}

/// The compiled rules of one agent.
pub struct RuleSet {
    pub engine: CorrelationEngine,
    pub report: LoadReport,
}

/// The line a parser message points at (`... at line 12 column 3`), if any.
fn line_in(message: &str) -> usize {
    let lower = message.to_ascii_lowercase();
    lower
        .find("line ")
        .and_then(|i| lower[i + 5..].split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// The line of `title: <title>` in a file, to point a compile error at its rule.
fn line_of_title(text: &str, title: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start().strip_prefix("title:").is_some_and(|t| t.trim().trim_matches(['\'', '"']) == title)
        })
        .map(|i| i + 1)
        .unwrap_or(0)
}

/// Every `*.yml`/`*.yaml` file below `dir`, sorted.
pub fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Loads rule files given as `(name, text)`.
pub fn load(files: &[(String, String)]) -> RuleSet {
    let mut report = LoadReport { files: files.len(), ..LoadReport::default() };
    let mut good = SigmaCollection::new();
    for (name, text) in files {
        let err = |line: usize, message: String| RuleError { file: name.clone(), line, message };
        let parsed = match parse_sigma_yaml(text) {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                report.errors.push(err(line_in(&msg), msg));
                continue;
            }
        };
        let mut ok = parsed.errors.is_empty();
        for msg in &parsed.errors {
            report.errors.push(err(line_in(msg), msg.clone()));
        }
        for rule in parsed.rules {
            // Compile alone first, so one unsupported rule cannot poison the set.
            let mut probe = Engine::new();
            match probe.add_rules(std::iter::once(&rule)).into_iter().next() {
                None => {
                    report.detection_rules += 1;
                    good.rules.push(rule);
                }
                Some((_, e)) => {
                    ok = false;
                    report.errors.push(err(line_of_title(text, &rule.title), format!("rule `{}`: {e}", rule.title)));
                }
            }
        }
        good.filters.extend(parsed.filters);
        for c in parsed.correlations {
            good.correlations.push(c);
            report.correlation_rules += 1;
        }
        if ok {
            report.files_loaded += 1;
        }
    }
    let mut engine = CorrelationEngine::new(CorrelationConfig::default());
    if let Err(e) = engine.add_collection(&good) {
        // A correlation that references a missing rule fails the whole collection:
        // report it and keep the detection rules.
        report.errors.push(RuleError { file: "<correlations>".into(), line: 0, message: e.to_string() });
        report.correlation_rules = 0;
        good.correlations.clear();
        engine = CorrelationEngine::new(CorrelationConfig::default());
        if let Err(e) = engine.add_collection(&good) {
            report.errors.push(RuleError { file: "<rules>".into(), line: 0, message: e.to_string() });
        }
    }
    RuleSet { engine, report }
}

/// Loads every rule file below `dir`; paths in errors are as found.
pub fn load_dir(dir: &Path) -> std::io::Result<RuleSet> {
    let mut files = Vec::new();
    for p in rule_files(dir)? {
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| format!("# unreadable: {e}\n"));
        files.push((p.display().to_string(), text));
    }
    Ok(load(&files))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "title: Test rule\nid: 5d6a5c1e-1111-4c3b-9a8e-000000000001\nlogsource:\n  product: linux\n  service: sshd\ndetection:\n  keywords:\n    - 'Corrupted MAC on input'\n  condition: keywords\nlevel: medium\n";

    #[test]
    fn broken_files_are_reported_and_the_rest_loads() {
        let files = vec![
            ("good.yml".to_string(), GOOD.to_string()),
            ("bad-yaml.yml".to_string(), "title: x\ndetection:\n  sel: [unclosed\n".to_string()),
            (
                "bad-condition.yml".to_string(),
                "title: Bad condition\nlogsource:\n  product: linux\ndetection:\n  sel:\n    a: b\n  condition: sel and and\n".to_string(),
            ),
            (
                "bad-modifier.yml".to_string(),
                "title: Bad modifier\nlogsource:\n  product: linux\ndetection:\n  sel:\n    a|frobnicate: b\n  condition: sel\n".to_string(),
            ),
        ];
        let set = load(&files);
        let r = &set.report;
        assert_eq!((r.files, r.files_loaded, r.detection_rules), (4, 1, 1), "{:#?}", r.errors);
        assert_eq!(r.errors.len(), 3, "{:#?}", r.errors);
        let text: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
        assert!(text.iter().any(|e| e.starts_with("bad-yaml.yml:")), "{text:?}");
        assert!(text.iter().any(|e| e.starts_with("bad-condition.yml") && e.contains("and")), "{text:?}");
        assert!(text.iter().any(|e| e.starts_with("bad-modifier.yml") && e.contains("frobnicate")), "{text:?}");
        assert_eq!(set.engine.detection_rule_count(), 1);
    }

    #[test]
    fn lines_are_found_in_messages() {
        assert_eq!(line_in("YAML parse error: did not find expected node content at line 3 column 9"), 3);
        assert_eq!(line_in("no position"), 0);
        assert_eq!(line_of_title(GOOD, "Test rule"), 1);
    }
}
