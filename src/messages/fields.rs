//! The fields of a structured record: a JSON object as given, or a Zeek TSV record kept
//! as its line and the spans of its values, its field names shared by every record
//! of the same header (no map of owned strings per record).

use std::sync::Arc;

use serde_json::{Map, Value};

/// The fields of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Fields {
    /// A JSON object, its values as given (nested objects reached with dotted paths).
    Json(Map<String, Value>),
    /// A tab-separated record (Zeek's TSV logs): every value is text.
    Tsv(TsvFields),
}

/// The field names of a TSV header, shared by its records.
#[derive(Debug, PartialEq, Eq)]
pub struct TsvNames {
    names: Box<[Box<str>]>,
}

impl TsvNames {
    pub fn new(names: impl IntoIterator<Item = String>) -> Arc<TsvNames> {
        Arc::new(TsvNames { names: names.into_iter().map(String::into_boxed_str).collect() })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The position of a field name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }
}

/// Where a value sits in the record's text; `UNSET` when the record left it unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    const UNSET: Span = Span { start: u32::MAX, end: u32::MAX };
}

/// One TSV record: its text and the span of each named value in it.
#[derive(Debug, Clone, PartialEq)]
pub struct TsvFields {
    names: Arc<TsvNames>,
    text: Box<str>,
    spans: Box<[Span]>,
}

/// What a TSV value is besides text: Zeek writes an unset field as `-` and an empty one
/// as `(empty)` (the header's `#unset_field` and `#empty_field`).
#[derive(Debug, Clone, Copy)]
pub struct TsvMarkers<'a> {
    pub separator: char,
    pub unset: &'a str,
    pub empty: &'a str,
}

impl TsvFields {
    /// Splits `line` by the header's separator; `None` when the number of values is not
    /// the number of names. An unset value is absent; an empty one is `""`.
    pub fn parse(names: &Arc<TsvNames>, line: &str, m: TsvMarkers<'_>) -> Option<TsvFields> {
        if line.len() >= u32::MAX as usize {
            return None;
        }
        let mut spans = Vec::with_capacity(names.len());
        let mut sep = [0u8; 4];
        let sep = m.separator.encode_utf8(&mut sep).as_bytes();
        let bytes = line.as_bytes();
        let (unset, empty) = (m.unset.as_bytes(), m.empty.as_bytes());
        // The value between two separators (byte offsets: a separator is whole characters,
        // so both ends are character boundaries).
        let mut value = |start: usize, end: usize| {
            let v = &bytes[start..end];
            let span = if !unset.is_empty() && v == unset {
                Span::UNSET
            } else if !empty.is_empty() && v == empty {
                Span { start: start as u32, end: start as u32 }
            } else {
                Span { start: start as u32, end: end as u32 }
            };
            let room = spans.len() < names.len();
            if room {
                spans.push(span);
            }
            room
        };
        let mut start = 0usize;
        if let [b] = sep {
            // One pass over the bytes: values are a few bytes long, shorter than a SIMD
            // search's setup.
            for (i, c) in bytes.iter().enumerate() {
                if c == b {
                    if !value(start, i) {
                        return None;
                    }
                    start = i + 1;
                }
            }
        } else {
            while let Some(i) = line[start..].find(m.separator) {
                if !value(start, start + i) {
                    return None;
                }
                start += i + sep.len();
            }
        }
        if !value(start, bytes.len()) {
            return None;
        }
        (spans.len() == names.len()).then(|| TsvFields {
            names: Arc::clone(names),
            text: line.into(),
            spans: spans.into_boxed_slice(),
        })
    }

    /// The header's names.
    pub fn names(&self) -> &Arc<TsvNames> {
        &self.names
    }

    /// The `i`-th value (in the header's order), if set.
    pub fn value(&self, i: usize) -> Option<&str> {
        let s = self.spans.get(i)?;
        if *s == Span::UNSET {
            return None;
        }
        self.text.get(s.start as usize..s.end as usize)
    }

    /// Every set field with its value, in the header's order.
    pub fn iter(&self) -> TsvIter<'_> {
        TsvIter { record: self, next: 0 }
    }
}

/// The set fields of a TSV record, in the header's order.
pub struct TsvIter<'a> {
    record: &'a TsvFields,
    next: usize,
}

impl<'a> Iterator for TsvIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.record.spans.len() {
            let i = self.next;
            self.next += 1;
            if let Some(v) = self.record.value(i) {
                return Some((&self.record.names.names[i], v));
            }
        }
        None
    }
}

/// One field's value, borrowed from its record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldRef<'a> {
    /// A TSV value (text; a set or vector as its elements joined by `,`).
    Text(&'a str),
    Json(&'a Value),
}

impl<'a> FieldRef<'a> {
    /// The value when it is text.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            FieldRef::Text(s) => Some(s),
            FieldRef::Json(v) => v.as_str(),
        }
    }

    /// The value as a number: a JSON number, or text that reads as one.
    pub fn as_f64(self) -> Option<f64> {
        match self {
            FieldRef::Text(s) => s.parse().ok(),
            FieldRef::Json(Value::Number(n)) => n.as_f64(),
            FieldRef::Json(Value::String(s)) => s.parse().ok(),
            FieldRef::Json(_) => None,
        }
    }

    /// The nested object, for JSON values that are one.
    pub fn as_object(self) -> Option<&'a Map<String, Value>> {
        match self {
            FieldRef::Json(v) => v.as_object(),
            FieldRef::Text(_) => None,
        }
    }

    /// The elements of a list: a JSON array's texts, or a TSV set's values (`a,b`; Zeek's
    /// unset `-` is none).
    pub fn elements(self) -> Vec<&'a str> {
        match self {
            FieldRef::Json(Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            FieldRef::Json(Value::String(s)) if s != "-" => s.split(',').collect(),
            FieldRef::Text(s) if s != "-" => s.split(',').collect(),
            _ => Vec::new(),
        }
    }

    /// The value as JSON (TSV text as a string).
    pub fn to_json(self) -> Value {
        match self {
            FieldRef::Text(s) => Value::String(s.to_string()),
            FieldRef::Json(v) => v.clone(),
        }
    }
}

impl Fields {
    /// A field by name; for JSON, a dotted path into nested objects (`source.ip`), a
    /// literal dotted key first.
    pub fn get(&self, path: &str) -> Option<FieldRef<'_>> {
        match self {
            Fields::Json(m) => json_lookup(m, path).map(FieldRef::Json),
            Fields::Tsv(t) => t.value(t.names.index(path)?).map(FieldRef::Text),
        }
    }

    /// A field's value when it is text.
    pub fn text(&self, path: &str) -> Option<&str> {
        self.get(path)?.as_str()
    }

    /// Whether a top-level field is present.
    pub fn contains_key(&self, name: &str) -> bool {
        match self {
            Fields::Json(m) => m.contains_key(name),
            Fields::Tsv(t) => t.names.index(name).is_some_and(|i| t.value(i).is_some()),
        }
    }

    /// Every top-level field with its value.
    pub fn iter(&self) -> FieldsIter<'_> {
        match self {
            Fields::Json(m) => FieldsIter::Json(m.iter()),
            Fields::Tsv(t) => FieldsIter::Tsv(t.iter()),
        }
    }

    /// The fields as one JSON object (TSV values as strings).
    pub fn to_map(&self) -> Map<String, Value> {
        match self {
            Fields::Json(m) => m.clone(),
            Fields::Tsv(t) => t.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect(),
        }
    }
}

/// The top-level fields of a record with their values.
pub enum FieldsIter<'a> {
    Json(serde_json::map::Iter<'a>),
    Tsv(TsvIter<'a>),
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = (&'a str, FieldRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            FieldsIter::Json(i) => i.next().map(|(k, v)| (k.as_str(), FieldRef::Json(v))),
            FieldsIter::Tsv(i) => i.next().map(|(k, v)| (k, FieldRef::Text(v))),
        }
    }
}

/// Stored and shown as the JSON object they stand for.
impl serde::Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Fields::Json(m) => m.serialize(s),
            Fields::Tsv(t) => s.collect_map(t.iter()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Map::deserialize(d).map(Fields::Json)
    }
}

/// Looks up a dotted path (`source.ip`) in an object; a literal dotted key wins.
pub fn json_lookup<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    let mut cur: &Value = map.get(path.split('.').next()?)?;
    for part in path.split('.').skip(1) {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Z: TsvMarkers<'static> = TsvMarkers { separator: '\t', unset: "-", empty: "(empty)" };

    #[test]
    fn tsv_values_are_spans_of_the_line() {
        let names = TsvNames::new(["ts", "id.orig_h", "service", "history"].map(String::from));
        let f = Fields::Tsv(TsvFields::parse(&names, "1.5\t10.0.0.1\t-\t(empty)", Z).unwrap());
        assert_eq!(f.text("id.orig_h"), Some("10.0.0.1"));
        assert_eq!(f.get("ts").and_then(FieldRef::as_f64), Some(1.5));
        assert_eq!(f.get("service"), None, "unset is absent");
        assert!(!f.contains_key("service") && f.contains_key("history"));
        assert_eq!(f.text("history"), Some(""), "empty is an empty string");
        assert_eq!(f.get("nope"), None);
        let keys: Vec<&str> = f.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["ts", "id.orig_h", "history"]);
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"ts": "1.5", "id.orig_h": "10.0.0.1", "history": ""})
        );
        assert!(TsvFields::parse(&names, "1.5\t10.0.0.1\t-", Z).is_none(), "too few values");
        assert!(TsvFields::parse(&names, "1\t2\t3\t4\t5", Z).is_none(), "too many values");
        // A separator of several bytes (the header may name any character).
        let wide = TsvMarkers { separator: '§', ..Z };
        let f = Fields::Tsv(TsvFields::parse(&names, "2§10.0.0.2§-§x", wide).unwrap());
        assert_eq!((f.text("ts"), f.text("id.orig_h"), f.text("history")), (Some("2"), Some("10.0.0.2"), Some("x")));
        assert!(!f.contains_key("service"));
        assert!(TsvFields::parse(&names, "", Z).is_none(), "an empty line is one empty value");
    }

    #[test]
    fn json_paths_and_lists() {
        let v = serde_json::json!({"source": {"ip": "192.0.2.1"}, "a.b": 1, "answers": ["x", "y"]});
        let f = Fields::Json(v.as_object().unwrap().clone());
        assert_eq!(f.text("source.ip"), Some("192.0.2.1"));
        assert_eq!(f.get("a.b").and_then(FieldRef::as_f64), Some(1.0));
        assert_eq!(f.get("answers").unwrap().elements(), ["x", "y"]);
        assert_eq!(FieldRef::Text("p,q").elements(), ["p", "q"]);
        assert!(FieldRef::Text("-").elements().is_empty());
        let back: Fields = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
