//! Zeek logs in their TSV form: a header (`#separator`, `#path`, `#fields`, …) followed by
//! tab-separated records. Each record becomes an event whose fields are named as Zeek
//! names them (`id.orig_h`, `id.resp_p`, `query`, `host`, …), kept as given.
//! Zeek's JSON logs need no parser of their own: they are JSON lines.

use super::Unparsed;
use chrono::{DateTime, Utc};

use crate::messages::Event;

/// The header state of one Zeek TSV stream.
#[derive(Debug, Clone, Default)]
pub struct ZeekHeader {
    separator: Option<char>,
    fields: Vec<String>,
    path: String,
    unset: String,
    empty: String,
}

impl ZeekHeader {
    /// Whether a header has been read (records can be parsed).
    pub fn ready(&self) -> bool {
        !self.fields.is_empty()
    }

    /// Reads a `#` line; returns false when the line is not a Zeek header line.
    pub fn header(&mut self, line: &str) -> bool {
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
            "fields" => self.fields = value.split(sep).map(String::from).collect(),
            "path" => self.path = value.to_string(),
            "unset_field" => self.unset = value.to_string(),
            "empty_field" => self.empty = value.to_string(),
            "set_separator" | "open" | "close" | "types" => {}
            _ => return false,
        }
        true
    }

    /// Parses one record; hands the line back if it does not fit the header.
    pub fn record(&self, line: String, fallback: DateTime<Utc>) -> Result<Event, Unparsed> {
        let sep = self.separator.unwrap_or('\t');
        let values: Vec<&str> = line.split(sep).collect();
        if !self.ready() || values.len() != self.fields.len() {
            return Err(Unparsed(line));
        }
        let mut map = serde_json::Map::with_capacity(values.len());
        for (f, v) in self.fields.iter().zip(&values) {
            if *v == self.unset && !self.unset.is_empty() {
                continue;
            }
            let v = if *v == self.empty && !self.empty.is_empty() { "" } else { v };
            map.insert(f.clone(), serde_json::Value::String(v.to_string()));
        }
        let time = map
            .get("ts")
            .and_then(|t| t.as_str())
            .and_then(|t| t.parse::<f64>().ok())
            .and_then(super::json::epoch)
            .unwrap_or(fallback);
        Ok(super::json::record_event(map, time, String::new(), format!("zeek:{}", self.path), line))
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
        assert_eq!(ev.program, "zeek:conn");
        let m = ev.json.as_ref().unwrap();
        assert_eq!(m["id.orig_h"], "10.8.0.61");
        assert!(!m.contains_key("service"), "unset fields are absent");
        assert_eq!(m["history"], "", "empty fields are empty strings");
        assert_eq!(ev.src_ip().map(|i| i.to_string()).as_deref(), Some("10.8.0.61"));
        assert!(z.record("too\tfew".into(), now).is_err());
        assert!(!z.header("# a comment"));
    }
}
