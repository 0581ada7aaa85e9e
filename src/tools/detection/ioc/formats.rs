//! The feed formats, read into the index: plain lists, CSV (abuse.ch layouts or a
//! header naming the indicator column), STIX 2.1 bundles and MISP event JSON. A broken
//! entry is an error with its `file:line`; the rest loads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::values::{clip, parse_value};
use super::{Feed, FeedFormat, FeedSource, IocIndex, IocKind};
use crate::tools::detection::sigma::RuleError;

impl IocIndex {
    /// Loads every feed. Errors are collected (`file:line: message`); one bad entry or
    /// file never stops the rest from loading.
    pub fn load(feeds: &[Feed]) -> IocIndex {
        let mut idx = IocIndex::default();
        for feed in feeds {
            let id = idx.feeds.len() as u16;
            idx.feeds.push(feed.spec.clone());
            idx.stats.entry(feed.spec.name.clone()).or_default();
            match &feed.source {
                FeedSource::Embedded(files) => {
                    for (path, text) in files {
                        idx.load_text(id, path, text, feed.spec.format);
                    }
                }
                FeedSource::Path(p) => {
                    for path in feed_files(p) {
                        match std::fs::read(&path) {
                            Ok(bytes) => {
                                let text = String::from_utf8_lossy(&bytes);
                                idx.load_text(id, &path.display().to_string(), &text, feed.spec.format);
                            }
                            Err(e) => idx.errors.push(RuleError {
                                file: path.display().to_string(),
                                line: 0,
                                message: format!("cannot read feed: {e}"),
                            }),
                        }
                    }
                }
            }
        }
        idx.cidr4.sort_by_key(|n| std::cmp::Reverse(n.0));
        idx.cidr6.sort_by_key(|n| std::cmp::Reverse(n.0));
        idx.label_ids = HashMap::new();
        idx
    }

    fn load_text(&mut self, feed: u16, path: &str, text: &str, format: FeedFormat) {
        self.stats_mut(feed).files += 1;
        let format = match format {
            FeedFormat::Auto => detect_format(path, text),
            f => f,
        };
        match format {
            FeedFormat::Plain | FeedFormat::Auto => self.load_plain(feed, path, text),
            FeedFormat::Csv => self.load_csv(feed, path, text),
            FeedFormat::Stix | FeedFormat::Misp => {
                let doc: serde_json::Value = match serde_json::from_str(text) {
                    Ok(d) => d,
                    Err(e) => {
                        self.errors.push(RuleError {
                            file: path.into(),
                            line: e.line(),
                            message: format!("not valid JSON: {e}"),
                        });
                        return;
                    }
                };
                if format == FeedFormat::Stix {
                    self.load_stix(feed, path, &doc)
                } else {
                    self.load_misp(feed, path, &doc)
                }
            }
        }
    }

    fn error(&mut self, feed: u16, path: &str, line: usize, message: String) {
        self.stats_mut(feed).invalid += 1;
        // Bounded: a garbage file must not fill memory with messages.
        if self.errors.len() < 1000 {
            self.errors.push(RuleError { file: path.into(), line, message });
        }
    }

    fn load_plain(&mut self, feed: u16, path: &str, text: &str) {
        for (n, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            // `value<whitespace>comment` is common in block lists.
            let value = entry.split_whitespace().next().unwrap_or(entry);
            match parse_value(value, None) {
                Some(v) => self.insert(feed, v, None),
                None => self.error(feed, path, n + 1, format!("`{}` is not an indicator", clip(value))),
            }
        }
    }

    fn load_csv(&mut self, feed: u16, path: &str, text: &str) {
        let mut header: Option<Vec<String>> = None;
        let mut last_comment: Option<Vec<String>> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            if let Some(c) = line.strip_prefix('#') {
                // abuse.ch's originals comment out the header line: remember the last
                // comment that reads like one.
                let cols = split_csv(c.trim());
                if cols.len() > 1 {
                    last_comment = Some(cols);
                }
                continue;
            }
            let cols = split_csv(line);
            if header.is_none() {
                if cols.iter().any(|c| indicator_column(c).is_some()) {
                    header = Some(cols.iter().map(|c| c.trim().to_ascii_lowercase()).collect());
                    continue;
                }
                match last_comment.take() {
                    Some(h) => header = Some(h.iter().map(|c| c.trim().to_ascii_lowercase()).collect()),
                    None => {
                        self.error(feed, path, n + 1, "CSV feed without a header naming its indicator column".into());
                        return;
                    }
                }
            }
            let h = header.as_ref().expect("set above");
            if cols.len() != h.len() {
                self.error(feed, path, n + 1, format!("{} columns where the header has {}", cols.len(), h.len()));
                continue;
            }
            let Some(col) = h.iter().position(|c| indicator_column(c).is_some()) else {
                self.error(feed, path, n + 1, "no indicator column in the header".into());
                return;
            };
            let hint = indicator_column(&h[col]).flatten();
            // The feed's own label: the malware family (Feodo), the threat and tags (URLhaus).
            let label = ["malware", "threat", "malware_printable", "tags"]
                .iter()
                .filter_map(|l| h.iter().position(|c| c == l))
                .map(|i| cols[i].trim())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let value = cols[col].trim();
            match parse_value(value, hint) {
                Some(v) => self.insert(feed, v, (!label.is_empty()).then_some(label.as_str())),
                None => self.error(feed, path, n + 1, format!("`{}` is not an indicator", clip(value))),
            }
        }
    }

    fn load_stix(&mut self, feed: u16, path: &str, doc: &serde_json::Value) {
        let objects: Vec<&serde_json::Value> = match doc.get("objects").and_then(|o| o.as_array()) {
            Some(objs) => objs.iter().collect(),
            None if doc.get("type").and_then(|t| t.as_str()) == Some("indicator") => vec![doc],
            None => {
                self.error(feed, path, 0, "not a STIX bundle (no `objects`)".into());
                return;
            }
        };
        for obj in objects {
            if obj.get("type").and_then(|t| t.as_str()) != Some("indicator") {
                continue;
            }
            if obj.get("pattern_type").and_then(|t| t.as_str()).is_some_and(|t| t != "stix") {
                self.stats_mut(feed).unsupported += 1;
                continue;
            }
            if obj.get("revoked").and_then(|r| r.as_bool()) == Some(true) {
                continue;
            }
            let Some(pattern) = obj.get("pattern").and_then(|p| p.as_str()) else {
                self.error(feed, path, 0, "indicator without a pattern".into());
                continue;
            };
            let label = obj.get("name").and_then(|n| n.as_str()).map(|s| clip(s).to_string());
            match stix_comparisons(pattern) {
                Ok(cmps) => {
                    for (object_path, value) in cmps {
                        let hint = match stix_kind(&object_path) {
                            Some(k) => k,
                            None => {
                                self.stats_mut(feed).unsupported += 1;
                                continue;
                            }
                        };
                        match parse_value(&value, Some(hint)) {
                            Some(v) => self.insert(feed, v, label.as_deref()),
                            None => self.error(
                                feed,
                                path,
                                0,
                                format!(
                                    "indicator {}: `{}` is not a valid {}",
                                    object_path,
                                    clip(&value),
                                    hint.as_str()
                                ),
                            ),
                        }
                    }
                }
                Err(e) => self.error(feed, path, 0, format!("pattern `{}`: {e}", clip(pattern))),
            }
        }
    }

    fn load_misp(&mut self, feed: u16, path: &str, doc: &serde_json::Value) {
        let event = doc.get("Event").unwrap_or(doc);
        if !event.is_object() || (event.get("Attribute").is_none() && event.get("Object").is_none()) {
            self.error(feed, path, 0, "not a MISP event (no `Attribute` or `Object`)".into());
            return;
        }
        let label = event.get("info").and_then(|i| i.as_str()).map(|s| clip(s).to_string());
        let mut attrs: Vec<&serde_json::Value> = Vec::new();
        if let Some(a) = event.get("Attribute").and_then(|a| a.as_array()) {
            attrs.extend(a);
        }
        for o in event.get("Object").and_then(|o| o.as_array()).into_iter().flatten() {
            if let Some(a) = o.get("Attribute").and_then(|a| a.as_array()) {
                attrs.extend(a);
            }
        }
        for a in attrs {
            let to_ids = match a.get("to_ids") {
                Some(serde_json::Value::Bool(b)) => *b,
                Some(serde_json::Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
                Some(serde_json::Value::Number(n)) => n.as_u64() == Some(1),
                _ => false,
            };
            if !to_ids {
                continue;
            }
            let (Some(t), Some(v)) = (a.get("type").and_then(|t| t.as_str()), a.get("value").and_then(|v| v.as_str()))
            else {
                self.error(feed, path, 0, "MISP attribute without a type or value".into());
                continue;
            };
            let Some((hint, value)) = misp_value(t, v) else {
                self.stats_mut(feed).unsupported += 1;
                continue;
            };
            match parse_value(value, hint) {
                Some(v) => self.insert(feed, v, label.as_deref()),
                None => self.error(feed, path, 0, format!("MISP {t} `{}` is not valid", clip(v))),
            }
        }
    }
}

/// Splits one CSV line (RFC 4180 quoting, `""` for a quote).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Whether a CSV column holds indicators, and of which kind (`None`: detect per value).
fn indicator_column(name: &str) -> Option<Option<IocKind>> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "dst_ip" | "ip" | "ip_address" | "ipaddress" | "ioc_ip" => None,
        "url" => Some(IocKind::Url),
        "domain" | "hostname" => Some(IocKind::Domain),
        "md5" | "md5_hash" => Some(IocKind::Md5),
        "sha1" | "sha1_hash" => Some(IocKind::Sha1),
        "sha256" | "sha256_hash" => Some(IocKind::Sha256),
        "email" => Some(IocKind::Email),
        "indicator" | "ioc" | "ioc_value" | "value" => None,
        _ => return None,
    })
}

fn detect_format(path: &str, text: &str) -> FeedFormat {
    let head = text.trim_start();
    if head.starts_with('{') || head.starts_with('[') {
        let doc_is_stix = head.contains("\"type\"") && (head.contains("\"bundle\"") || head.contains("\"indicator\""));
        if head.contains("\"Event\"") || head.contains("\"Attribute\"") {
            return FeedFormat::Misp;
        }
        if doc_is_stix || path.ends_with(".json") {
            return FeedFormat::Stix;
        }
    }
    if path.ends_with(".csv") {
        return FeedFormat::Csv;
    }
    FeedFormat::Plain
}

/// The indicator kind of a STIX object path, when Warden matches it.
fn stix_kind(path: &str) -> Option<IocKind> {
    let p = path.replace(' ', "");
    Some(match p.as_str() {
        "ipv4-addr:value" => IocKind::Ipv4,
        "ipv6-addr:value" => IocKind::Ipv6,
        "domain-name:value" => IocKind::Domain,
        "url:value" => IocKind::Url,
        "email-addr:value" | "email-message:from_ref.value" | "email-message:sender_ref.value" => IocKind::Email,
        _ => {
            let lower = p.to_ascii_lowercase();
            let h = lower.strip_prefix("file:hashes.")?.trim_matches('\'');
            match h {
                "md5" => IocKind::Md5,
                "sha-1" | "sha1" => IocKind::Sha1,
                "sha-256" | "sha256" => IocKind::Sha256,
                _ => return None,
            }
        }
    })
}

/// What is wrong with a STIX indicator pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StixError {
    #[error("unbalanced `]`")]
    Unbalanced,
    #[error("a string outside a comparison")]
    StrayString,
    #[error("comparison on `{0}` without a quoted value")]
    Unquoted(String),
    #[error("unterminated string")]
    Unterminated,
    #[error("not a STIX pattern (`[ … ]`)")]
    NotPattern,
}

/// The equality comparisons of a STIX pattern, `(object path, value)`. Observation
/// expressions (`[...]`) joined by `OR`/`AND`/`FOLLOWEDBY`, comparisons inside joined by
/// `OR`/`AND`; operators other than `=` (`MATCHES`, `LIKE`, `!=`, …) are reported as
/// unsupported by returning no comparison for them.
pub fn stix_comparisons(pattern: &str) -> Result<Vec<(String, String)>, StixError> {
    let mut out = Vec::new();
    let b = pattern.as_bytes();
    let mut i = 0;
    let mut depth = 0i32;
    let mut saw_bracket = false;
    while i < b.len() {
        match b[i] {
            b'[' => {
                depth += 1;
                saw_bracket = true;
                i += 1;
            }
            b']' => {
                depth -= 1;
                if depth < 0 {
                    return Err(StixError::Unbalanced);
                }
                i += 1;
            }
            b'\'' => return Err(StixError::StrayString),
            c if depth > 0 && (c.is_ascii_alphabetic()) => {
                // An object path, an operator, then a quoted value.
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'!' {
                    if b[i] == b'\'' {
                        // Quoted key inside the path (`hashes.'SHA-256'`).
                        i += 1;
                        while i < b.len() && b[i] != b'\'' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                // An unterminated quoted key ran to the end (found by fuzzing: `i` went one
                // past it and the operator's slice panicked).
                i = i.min(b.len());
                let path = pattern[start..i].to_string();
                if ["AND", "OR", "FOLLOWEDBY", "NOT"].contains(&path.as_str()) {
                    continue;
                }
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                let op_start = i;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                let op = pattern[op_start..i].trim().to_string();
                if i >= b.len() {
                    return Err(StixError::Unquoted(path.to_string()));
                }
                i += 1;
                let mut raw = Vec::new();
                while i < b.len() && b[i] != b'\'' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    raw.push(b[i]);
                    i += 1;
                }
                // Bytes, then text: a value with non-ASCII characters (an IDN) stays UTF-8.
                let value = String::from_utf8_lossy(&raw).into_owned();
                if i >= b.len() {
                    return Err(StixError::Unterminated);
                }
                i += 1;
                if op == "=" {
                    out.push((path, value));
                } else {
                    // Not an equality: nothing Warden can look up.
                    out.push((format!("{path} {op}"), value));
                }
            }
            _ => i += 1,
        }
    }
    if depth != 0 || !saw_bracket {
        return Err(StixError::NotPattern);
    }
    Ok(out)
}

/// The kind and value of a MISP attribute Warden matches.
fn misp_value<'a>(t: &str, v: &'a str) -> Option<(Option<IocKind>, &'a str)> {
    let second = |v: &'a str| v.split_once('|').map(|(_, b)| b);
    let first = |v: &'a str| v.split_once('|').map(|(a, _)| a).unwrap_or(v);
    Some(match t {
        "ip-src" | "ip-dst" => (None, v),
        "ip-src|port" | "ip-dst|port" => (None, first(v)),
        "domain" | "hostname" => (Some(IocKind::Domain), v),
        "domain|ip" => (Some(IocKind::Domain), first(v)),
        "url" | "link" => (Some(IocKind::Url), v),
        "md5" => (Some(IocKind::Md5), v),
        "sha1" => (Some(IocKind::Sha1), v),
        "sha256" => (Some(IocKind::Sha256), v),
        "filename|md5" => (Some(IocKind::Md5), second(v)?),
        "filename|sha1" => (Some(IocKind::Sha1), second(v)?),
        "filename|sha256" => (Some(IocKind::Sha256), second(v)?),
        "email" | "email-src" | "email-dst" => (Some(IocKind::Email), v),
        _ => return None,
    })
}

/// The files of a feed path: the file, or every regular file in the folder (sorted,
/// hidden files skipped).
pub fn feed_files(p: &Path) -> Vec<PathBuf> {
    if p.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        files.sort();
        files
    } else if p.is_file() {
        vec![p.to_path_buf()]
    } else {
        Vec::new()
    }
}
