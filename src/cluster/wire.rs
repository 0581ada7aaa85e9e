//! How a shipped batch travels: its lines as the payload, one per `\n`, and in headers
//! what the analysis node needs to read them as the host would have — the source's
//! format, the lines a parser must read first (a Zeek TSV header in effect), and the
//! host's checkpoint after the batch (what a restarted shipper resumes from when the
//! stream is ahead of its own state).

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;

use crate::config::LogFormat;
use crate::config::cluster::valid_token;
use crate::messages::Checkpoint;

const FORMAT: &str = "Warden-Format";
const LINES: &str = "Warden-Lines";
const CHECKPOINT: &str = "Warden-Checkpoint";
const PREAMBLE: &str = "Warden-Preamble";

/// A batch as shipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipped {
    pub format: LogFormat,
    pub checkpoint: Option<Checkpoint>,
    pub preamble: Vec<String>,
    pub lines: Vec<String>,
}

/// Why a message on a logs subject cannot be read (it is acknowledged, counted and
/// logged: it would never read better).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("subject `{0}` is not warden.logs.<host>.<source>")]
    Subject(String),
    #[error("header {0} missing or unreadable")]
    Header(&'static str),
    #[error("{said} lines announced, {found} in the payload")]
    Count { said: usize, found: usize },
    #[error("the payload is not UTF-8")]
    Utf8,
}

/// The subject a host's source publishes on.
pub fn subject(host: &str, source: &str) -> String {
    format!("warden.logs.{host}.{}", crate::config::cluster::subject_token(source))
}

/// The host and source of a logs subject.
pub fn host_source(subject: &str) -> Result<(&str, &str), WireError> {
    let bad = || WireError::Subject(crate::text::sanitize(subject, 200));
    let rest = subject.strip_prefix("warden.logs.").ok_or_else(bad)?;
    let (host, source) = rest.split_once('.').ok_or_else(bad)?;
    if !valid_token(host) || !valid_token(source) {
        return Err(bad());
    }
    Ok((host, source))
}

/// Headers and payload of a batch; `id` makes a re-published batch a duplicate
/// JetStream drops.
pub fn encode(shipped: &Shipped, id: &str) -> (HeaderMap, Vec<u8>) {
    let mut h = HeaderMap::new();
    h.insert(NATS_MESSAGE_ID, id);
    h.insert(FORMAT, shipped.format.as_str());
    h.insert(LINES, shipped.lines.len().to_string().as_str());
    if let Some(cp) = &shipped.checkpoint
        && let Ok(json) = serde_json::to_string(cp)
    {
        h.insert(CHECKPOINT, json.as_str());
    }
    if !shipped.preamble.is_empty()
        && let Ok(json) = serde_json::to_string(&shipped.preamble)
    {
        h.insert(PREAMBLE, json.as_str());
    }
    (h, shipped.lines.join("\n").into_bytes())
}

/// Reads a batch back.
pub fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Shipped, WireError> {
    let get = |k: &'static str| headers.and_then(|h| h.get(k)).map(|v| v.as_str());
    let format = match get(FORMAT) {
        Some("auth") => LogFormat::Auth,
        Some("web") => LogFormat::Web,
        Some("json") => LogFormat::Json,
        Some("zeek") => LogFormat::Zeek,
        Some("auto") => LogFormat::Auto,
        _ => return Err(WireError::Header(FORMAT)),
    };
    let said: usize = get(LINES).and_then(|n| n.parse().ok()).ok_or(WireError::Header(LINES))?;
    let checkpoint = match get(CHECKPOINT) {
        Some(j) => Some(serde_json::from_str(j).map_err(|_| WireError::Header(CHECKPOINT))?),
        None => None,
    };
    let preamble = match get(PREAMBLE) {
        Some(j) => serde_json::from_str(j).map_err(|_| WireError::Header(PREAMBLE))?,
        None => Vec::new(),
    };
    let text = std::str::from_utf8(payload).map_err(|_| WireError::Utf8)?;
    let lines: Vec<String> = if said == 0 { Vec::new() } else { text.split('\n').map(String::from).collect() };
    if lines.len() != said || (said == 0 && !text.is_empty()) {
        return Err(WireError::Count { said, found: lines.len() });
    }
    Ok(Shipped { format, checkpoint, preamble, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_as_sent() {
        let cp = Checkpoint { offset: 120, seq: 7, lines_total: 3, ..Checkpoint::default() };
        for lines in [vec![], vec![String::new()], vec!["a\tb".to_string(), String::new(), "c\r".into()]] {
            let s = Shipped {
                format: LogFormat::Zeek,
                checkpoint: Some(cp.clone()),
                preamble: vec!["#separator \\x09".into(), "#fields\tts\tuid".into()],
                lines,
            };
            let (h, body) = encode(&s, "web-1.auth.7");
            assert_eq!(h.get(NATS_MESSAGE_ID).map(|v| v.as_str()), Some("web-1.auth.7"));
            assert_eq!(decode(Some(&h), &body), Ok(s));
        }
    }

    #[test]
    fn malformed_messages_are_errors() {
        let s = Shipped { format: LogFormat::Auth, checkpoint: None, preamble: vec![], lines: vec!["x".into()] };
        let (h, body) = encode(&s, "i");
        assert_eq!(decode(None, &body), Err(WireError::Header(FORMAT)));
        assert_eq!(decode(Some(&h), b"x\ny"), Err(WireError::Count { said: 1, found: 2 }));
        assert_eq!(decode(Some(&h), b"\xff"), Err(WireError::Utf8));
        let mut bad = h.clone();
        bad.insert(CHECKPOINT, "{");
        assert_eq!(decode(Some(&bad), &body), Err(WireError::Header(CHECKPOINT)));
    }

    #[test]
    fn subjects_name_host_and_source() {
        assert_eq!(subject("web-1", "auth.log"), "warden.logs.web-1.auth_log");
        assert_eq!(host_source("warden.logs.web-1.auth"), Ok(("web-1", "auth")));
        for bad in ["warden.logs.web-1", "warden.logs.a.b.c", "other.web.auth", "warden.logs.*.x"] {
            assert!(host_source(bad).is_err(), "{bad}");
        }
    }
}
