//! Zeek logs in their TSV form: a header (`#separator`, `#path`, `#fields`, …) followed by
//! tab-separated records, and in their JSON form (`LogAscii::use_json`, as Security
//! Onion, Corelight and Malcolm write them): one object per line. Each record becomes an
//! event whose fields are named as Zeek names them (`id.orig_h`, `id.resp_p`, `query`,
//! `host`, …), kept as given, and whose program is `zeek:<log>` (`zeek:conn`, …).

use super::Unparsed;
use chrono::{DateTime, Utc};

use crate::messages::{Event, Fields, TsvFields, TsvMarkers, TsvNames};

/// The header state of one Zeek TSV stream.
#[derive(Debug, Clone, Default)]
pub struct ZeekHeader {
    separator: Option<char>,
    /// The `#fields` names, shared by every record of the header.
    fields: Option<std::sync::Arc<TsvNames>>,
    /// `zeek:<path>`, the records' program (one name shared by them all).
    program: std::sync::Arc<str>,
    unset: String,
    empty: String,
    /// The header lines that set this state up, as read (what a shipper sends along
    /// with a batch that starts in the middle of a file).
    lines: Vec<String>,
}

impl ZeekHeader {
    /// Whether a header has been read (records can be parsed).
    pub fn ready(&self) -> bool {
        self.fields.as_ref().is_some_and(|f| !f.is_empty())
    }

    /// The header lines read since the last `#separator` line (a header's first).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Reads a `#` line; returns false when the line is not a Zeek header line.
    pub fn header(&mut self, line: &str) -> bool {
        let known = self.read_header(line);
        if known {
            if line.starts_with("#separator ") {
                self.lines.clear();
            }
            // Bounded: a header is a handful of lines; a stream of `#` lines is not one.
            if self.lines.len() < 64 && !line.starts_with("#close") && !line.starts_with("#open") {
                self.lines.push(line.to_string());
            }
        }
        known
    }

    fn read_header(&mut self, line: &str) -> bool {
        if let Some(sep) = line.strip_prefix("#separator ") {
            // Written escaped: `\x09`.
            self.separator = match sep.trim() {
                "\\x09" => Some('\t'),
                s if s.starts_with("\\x") => u8::from_str_radix(&s[2..], 16).ok().map(char::from),
                s => s.chars().next(),
            };
            return true;
        }
        let sep = self.separator.unwrap_or('\t');
        let Some(rest) = line.strip_prefix('#') else { return false };
        let (key, value) = rest.split_once(sep).unwrap_or((rest, ""));
        match key {
            "fields" => {
                self.fields = Some(TsvNames::new(value.split(sep).map(String::from)));
                // Records of a header without `#path` are of an unnamed log.
                if self.program.is_empty() {
                    self.program = "zeek:".into();
                }
            }
            "path" => self.program = format!("zeek:{value}").into(),
            "unset_field" => self.unset = value.to_string(),
            "empty_field" => self.empty = value.to_string(),
            "set_separator" | "open" | "close" | "types" => {}
            _ => return false,
        }
        true
    }

    /// Parses one record; hands the line back if it does not fit the header.
    pub fn record(&self, line: String, fallback: DateTime<Utc>) -> Result<Event, Unparsed> {
        let markers = TsvMarkers { separator: self.separator.unwrap_or('\t'), unset: &self.unset, empty: &self.empty };
        let Some(values) = self.fields.as_ref().and_then(|names| TsvFields::parse(names, &line, markers)) else {
            return Err(Unparsed(line));
        };
        let fields = Fields::Tsv(values);
        let time =
            fields.text("ts").and_then(|t| t.parse::<f64>().ok()).and_then(super::json::epoch).unwrap_or(fallback);
        Ok(super::json::fields_event(fields, time, String::new(), self.program.clone(), line))
    }
}

/// A Zeek record written as JSON: an object with Zeek's `ts` (epoch seconds, or ISO 8601
/// with `LogAscii::json_timestamps`) and a connection id or `_path`. The log it comes
/// from is `_path` when the writer includes it (Security Onion, Corelight), else told by
/// its fields. Zeek records have no host of their own (`host` in `http.log` is the
/// request's), so the event's host is empty, as for TSV records.
pub fn json_record(line: String, fallback: DateTime<Utc>) -> Result<Event, Unparsed> {
    let map = match serde_json::from_str::<serde_json::Value>(&line) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(Unparsed(line)),
    };
    let zeekish = map.contains_key("ts")
        && (map.contains_key("_path")
            || map.contains_key("uid")
            || map.contains_key("id.orig_h")
            || map.contains_key("fuid"));
    if !zeekish {
        return Err(Unparsed(line));
    }
    // Epoch seconds (or milliseconds, `JSON::TS_MILLIS`), ISO 8601, or seconds as text.
    let time = map
        .get("ts")
        .and_then(|v| super::json::time_of(v).or_else(|| v.as_str()?.parse::<f64>().ok().and_then(super::json::epoch)))
        .unwrap_or(fallback);
    let path = match map.get("_path").and_then(|p| p.as_str()) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => log_of(&map).to_string(),
    };
    Ok(super::json::record_event(map, time, String::new(), format!("zeek:{path}").into(), line))
}

/// Which Zeek log a record without `_path` comes from, told by fields only that log has.
fn log_of(m: &serde_json::Map<String, serde_json::Value>) -> &'static str {
    let has = |k: &str| m.contains_key(k);
    if has("conn_state") || (has("proto") && has("history")) {
        "conn"
    } else if has("qtype_name") || (has("query") && has("rcode")) {
        "dns"
    } else if has("method") && has("uri") {
        "http"
    } else if has("server_name") || (has("cipher") && has("version")) {
        "ssl"
    } else if has("auth_attempts") || has("auth_success") {
        "ssh"
    } else if has("fuid") && (has("mime_type") || has("seen_bytes")) {
        "files"
    } else if has("note") {
        "notice"
    } else if has("name") && has("addl") {
        "weird"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_records() {
        let mut z = ZeekHeader::default();
        for h in [
            "#separator \\x09",
            "#set_separator\t,",
            "#empty_field\t(empty)",
            "#unset_field\t-",
            "#path\tconn",
            "#fields\tts\tid.orig_h\tid.resp_p\tservice\thistory",
            "#types\ttime\taddr\tport\tstring\tstring",
        ] {
            assert!(z.header(h), "{h}");
        }
        let now = "2026-01-01T00:00:00Z".parse().unwrap();
        let ev = z.record("1596790164.509987\t10.8.0.61\t53\t-\t(empty)".into(), now).unwrap();
        assert_eq!(ev.time.timestamp(), 1_596_790_164);
        assert_eq!(&*ev.program, "zeek:conn");
        let m = ev.fields.as_deref().unwrap();
        assert_eq!(m.text("id.orig_h"), Some("10.8.0.61"));
        assert!(!m.contains_key("service"), "unset fields are absent");
        assert_eq!(m.text("history"), Some(""), "empty fields are empty strings");
        assert_eq!(ev.src_ip().map(|i| i.to_string()).as_deref(), Some("10.8.0.61"));
        assert!(z.record("too\tfew".into(), now).is_err());
        assert!(!z.header("# a comment"));
    }

    /// Zeek's JSON form: the log from `_path` or from the fields, epoch or ISO 8601
    /// times, no host taken from `http.log`'s `host`; other JSON is not Zeek's.
    #[test]
    fn json_records_name_their_log() {
        let now = "2026-01-01T00:00:00Z".parse().unwrap();
        let conn = r#"{"ts":1596790164.509987,"uid":"C1","id.orig_h":"10.8.0.61","id.orig_p":5353,"id.resp_h":"224.0.0.251","id.resp_p":5353,"proto":"udp","conn_state":"S0","history":"D"}"#;
        let ev = json_record(conn.into(), now).unwrap();
        assert_eq!((&*ev.program, ev.time.timestamp()), ("zeek:conn", 1_596_790_164));
        assert_eq!(ev.src_ip().map(|i| i.to_string()).as_deref(), Some("10.8.0.61"));
        let http = r#"{"ts":"2020-08-07T08:49:24.509987Z","uid":"C2","id.orig_h":"10.8.0.61","host":"example.com","method":"GET","uri":"/"}"#;
        let ev = json_record(http.into(), now).unwrap();
        assert_eq!((&*ev.program, ev.host.as_str(), ev.time.timestamp()), ("zeek:http", "", 1_596_790_164));
        let named = r#"{"_path":"dns","ts":1596790164.5,"uid":"C3","id.orig_h":"10.8.0.61","query":"a.example"}"#;
        assert_eq!(&*json_record(named.into(), now).unwrap().program, "zeek:dns");
        assert!(json_record(r#"{"ts":1,"msg":"not zeek"}"#.into(), now).is_err());
        assert!(json_record("#fields\tts".into(), now).is_err());
    }
}
