//! An event as the Sigma engine sees it (Sigma's field names over a parsed line), and
//! the references a correlation keeps to the lines it counted.

use std::borrow::Cow;

use rsigma_eval::EventValue;
use rsigma_parser::LogSource;

use crate::messages::{Event, FieldRef, Fields};

/// An event as the Sigma engine sees it: Sigma-taxonomy field names over a parsed line.
/// Keywords match the message (the whole line when it had no syslog header).
pub struct SigmaView<'a>(pub &'a Event, pub Option<&'a str>, Memo);

/// What is made at most once per event: the client address as text (rules ask for it
/// often: `src_ip|exists`, group-by) and the line's reference (a SHA-256 of the line,
/// asked for by every correlation the event feeds).
#[derive(Default)]
struct Memo {
    src: std::cell::OnceCell<Option<String>>,
    reference: std::cell::OnceCell<Option<String>>,
}

impl<'a> SigmaView<'a> {
    pub fn new(ev: &'a Event, file: Option<&'a str>) -> Self {
        SigmaView(ev, file, Memo::default())
    }

    pub(super) fn src_ip(&self) -> Option<&str> {
        self.2.src.get_or_init(|| self.0.auth.as_ref().and_then(|a| a.src_ip).map(|ip| ip.to_string())).as_deref()
    }
}

/// The prefix of the event id a correlation keeps for each contributing event: where the
/// line was read and its hash (`w<offset>.<sha256 in base64url>`), kept short because
/// the correlation windows are stored with every batch. The file is the one the
/// finding's batch was read from (a line read before a rotation then no longer matches
/// its hash there, and evidence collection says so).
const REF_PREFIX: &str = "w";

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(super) fn b64(bytes: &[u8; 32]) -> String {
    let mut out = String::with_capacity(43);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

pub(super) fn unb64(s: &str) -> Option<[u8; 32]> {
    if s.len() != 43 {
        return None;
    }
    let mut bits: u64 = 0;
    let (mut n, mut out, mut at) = (0u32, [0u8; 32], 0usize);
    for c in s.bytes() {
        let v = B64.iter().position(|b| *b == c)? as u64;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            *out.get_mut(at)? = (bits >> n) as u8;
            at += 1;
            bits &= (1 << n) - 1;
        }
    }
    (at == 32).then_some(out)
}

impl SigmaView<'_> {
    /// The id under which the correlation engine remembers this event: where it was read.
    pub(super) fn reference(&self) -> Option<&str> {
        self.2
            .reference
            .get_or_init(|| {
                // Only lines read from a file can be pointed at.
                let (offset, _file) = (self.0.offset?, self.1?);
                use sha2::Digest;
                let sha: [u8; 32] = sha2::Sha256::digest(self.0.raw.as_bytes()).into();
                Some(format!("{REF_PREFIX}{offset}.{}", b64(&sha)))
            })
            .as_deref()
    }
}

/// The evidence reference kept by [`SigmaView::reference`], in `file`.
pub(super) fn parse_reference(id: &str, file: &std::sync::Arc<str>) -> Option<crate::messages::EvidenceRef> {
    let (offset, hash) = id.strip_prefix(REF_PREFIX)?.split_once('.')?;
    Some(crate::messages::EvidenceRef { file: file.clone(), offset: offset.parse().ok()?, sha256: unb64(hash)? })
}

/// Nesting deeper than this is not searched by keywords (hostile input).
const MAX_DEPTH: usize = 32;

/// Every string in a value (nested arrays and objects too, down to [`MAX_DEPTH`]).
fn visit_strings<'a>(v: FieldRef<'a>, visit: &mut dyn FnMut(&'a str), depth: usize) {
    match v {
        FieldRef::Text(s) => visit(s),
        FieldRef::Json(serde_json::Value::String(s)) => visit(s),
        FieldRef::Json(serde_json::Value::Array(a)) if depth < MAX_DEPTH => {
            a.iter().for_each(|x| visit_strings(FieldRef::Json(x), visit, depth + 1))
        }
        FieldRef::Json(serde_json::Value::Object(o)) if depth < MAX_DEPTH => {
            o.values().for_each(|x| visit_strings(FieldRef::Json(x), visit, depth + 1))
        }
        _ => {}
    }
}

/// A JSON record's logsource, from its own `product`/`category`/`service` fields (rules
/// without those constraints match any record).
pub(super) fn json_logsource(m: &Fields) -> LogSource {
    let get = |k: &str| m.text(k).map(String::from);
    LogSource { product: get("product"), category: get("category"), service: get("service"), ..LogSource::default() }
}

/// A borrowed string field.
fn b(v: &str) -> Option<EventValue<'_>> {
    Some(EventValue::Str(Cow::Borrowed(v)))
}

impl SigmaView<'_> {
    pub(super) fn user(&self) -> Option<&str> {
        self.0.auth.as_ref().and_then(|a| a.user.as_deref())
    }
}

impl rsigma_eval::Event for SigmaView<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        let ev = self.0;
        let s = |v: &str| Some(EventValue::Str(Cow::Owned(v.to_string())));
        if let Some(m) = &ev.fields {
            return match m.get(path)? {
                FieldRef::Json(v) => Some(EventValue::from(v)),
                FieldRef::Text(t) => b(t),
            };
        }
        if let Some(w) = &ev.web {
            return match path {
                "c-ip" | "src_ip" | "ClientIP" | "c-ip-address" => Some(EventValue::Str(Cow::Borrowed(&w.client))),
                "cs-method" => b(&w.method),
                "cs-uri-stem" => b(&w.uri_stem),
                "cs-uri-query" => b(&w.uri_query),
                "cs-uri" => s(&if w.uri_query.is_empty() {
                    w.uri_stem.clone()
                } else {
                    format!("{}?{}", w.uri_stem, w.uri_query)
                }),
                "cs-version" => b(&w.protocol),
                "sc-status" => Some(EventValue::Int(w.status as i64)),
                "sc-bytes" => Some(EventValue::Int(w.bytes as i64)),
                "cs-referer" | "cs-referrer" | "cs-Referer" => b(&w.referer),
                "c-useragent" | "cs-user-agent" | "cs-User-Agent" => b(&w.user_agent),
                "cs-username" => w.user.as_deref().map(|u| EventValue::Str(Cow::Borrowed(u))),
                _ => None,
            };
        }
        match path {
            "message" | "Message" | "msg" => Some(EventValue::Str(Cow::Borrowed(ev.message()))),
            "host" | "hostname" | "Hostname" | "ComputerName" if !ev.host.is_empty() => {
                Some(EventValue::Str(Cow::Borrowed(&ev.host)))
            }
            "program" | "process" | "appname" | "syslog_program" if !ev.program.is_empty() => {
                Some(EventValue::Str(Cow::Borrowed(&ev.program)))
            }
            "user" | "User" | "SubjectUserName" | "pam_user" => self.user().map(|u| EventValue::Str(Cow::Borrowed(u))),
            "target_user" | "TargetUserName" => ev.auth.as_ref().and_then(|a| a.target_user.as_deref()).and_then(b),
            "command" | "CommandLine" => ev.auth.as_ref().and_then(|a| a.command.as_deref()).and_then(b),
            "event_kind" => ev.auth.as_ref().map(|a| EventValue::Str(Cow::Borrowed(a.kind.as_str()))),
            "service" => ev.auth.as_ref().map(|a| EventValue::Str(Cow::Borrowed(a.service.as_str()))),
            "src_name" => ev.auth.as_ref().and_then(|a| a.src_name.as_deref()).and_then(b),
            "src_ip" | "SourceIp" | "c-ip" | "pam_rhost" => self.src_ip().and_then(b),
            _ => None,
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let mut any = false;
        self.visit_string_values(&mut |v| any = any || pred(v));
        any
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let Some(m) = &self.0.fields else { return vec![Cow::Borrowed(self.0.message())] };
        let mut out = Vec::new();
        m.iter().for_each(|(_, v)| visit_strings(v, &mut |s| out.push(Cow::Borrowed(s)), 0));
        out
    }

    /// Overridden so the keyword index does not collect a `Vec` for every line.
    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        match &self.0.fields {
            Some(m) => m.iter().for_each(|(_, v)| visit_strings(v, visit, 0)),
            None => visit(self.0.message()),
        }
    }

    /// Only the correlation engine asks for this, to remember the events in a window:
    /// where the line was read is all it needs to keep (see [`SigmaView::reference`]).
    fn to_json(&self) -> serde_json::Value {
        if let Some(id) = self.reference() {
            return serde_json::json!({ "id": id });
        }
        let ev = self.0;
        if let Some(m) = &ev.fields {
            return serde_json::Value::Object(m.to_map());
        }
        if let Some(w) = &ev.web {
            return serde_json::json!({
                "c-ip": w.client, "cs-method": w.method, "cs-uri-stem": w.uri_stem, "cs-uri-query": w.uri_query,
                "sc-status": w.status, "c-useragent": w.user_agent, "cs-referer": w.referer,
            });
        }
        serde_json::json!({
            "message": ev.message(),
            "host": ev.host,
            "program": ev.program,
            "user": self.user(),
            "src_ip": ev.auth.as_ref().and_then(|a| a.src_ip).map(|ip| ip.to_string()),
        })
    }
}
