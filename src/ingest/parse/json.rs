//! JSON lines: one object per line, its fields kept as given (`fields as given`), so
//! Sigma rules can name them directly, with dots for nested objects.

use super::Unparsed;
use chrono::{DateTime, Utc};

use crate::messages::{Event, Fields, json_lookup as lookup};

/// Field names tried, in order, for the event time.
const TIME_FIELDS: [&str; 5] = ["@timestamp", "timestamp", "time", "ts", "date"];
/// Field names tried, in order, for the host.
const HOST_FIELDS: [&str; 4] = ["host", "hostname", "host.name", "computer"];

/// A Unix time in (fractional) seconds.
pub fn epoch(secs: f64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32)
}

/// A time written as RFC 3339 text or as (fractional) Unix seconds or milliseconds.
pub(super) fn time_of(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    match v {
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)),
        serde_json::Value::Number(n) => {
            let f = n.as_f64()?;
            // Seconds, or milliseconds when the number is too large to be seconds.
            epoch(if f > 1e11 { f / 1000.0 } else { f })
        }
        _ => None,
    }
}

/// An event whose fields are a JSON record's, as given.
pub fn record_event(
    map: serde_json::Map<String, serde_json::Value>,
    time: DateTime<Utc>,
    host: String,
    program: std::sync::Arc<str>,
    raw: String,
) -> Event {
    fields_event(Fields::Json(map), time, host, program, raw)
}

/// An event whose fields are a record's.
pub fn fields_event(
    fields: Fields,
    time: DateTime<Utc>,
    host: String,
    program: std::sync::Arc<str>,
    raw: String,
) -> Event {
    Event {
        time,
        host,
        program,
        auth: None,
        web: None,
        fields: Some(Box::new(fields)),
        raw,
        message_at: 0,
        offset: None,
        file: None,
    }
}

/// Parses one JSON object line; hands the line back if it is not one. `fallback` is the
/// time for objects without a recognisable timestamp.
pub fn parse_line(line: String, fallback: DateTime<Utc>) -> Result<Event, Unparsed> {
    let map = match serde_json::from_str::<serde_json::Value>(&line) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(Unparsed(line)),
    };
    let time = TIME_FIELDS.iter().find_map(|f| lookup(&map, f).and_then(time_of)).unwrap_or(fallback);
    let host = HOST_FIELDS.iter().find_map(|f| lookup(&map, f).and_then(|v| v.as_str())).unwrap_or("").to_string();
    Ok(record_event(map, time, host, Default::default(), line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_with_their_time_and_host() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let ev = parse_line(
            r#"{"@timestamp":"2026-11-26T10:00:00Z","host":{"name":"h1"},"source":{"ip":"1.2.3.4"},"msg":"x"}"#.into(),
            now,
        )
        .unwrap();
        assert_eq!(ev.time.to_rfc3339(), "2026-11-26T10:00:00+00:00");
        assert_eq!(ev.host, "h1");
        assert_eq!(ev.fields.as_deref().unwrap().text("source.ip"), Some("1.2.3.4"));
        let ev = parse_line(r#"{"ts": 1764151200.5, "a": 1}"#.into(), now).unwrap();
        assert_eq!(ev.time.timestamp(), 1_764_151_200);
        assert_eq!(parse_line(r#"{"a": 1}"#.into(), now).unwrap().time, now);
        assert!(parse_line("[1, 2]".into(), now).is_err());
        assert!(parse_line("not json".into(), now).is_err());
    }
}
