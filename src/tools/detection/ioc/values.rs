//! Indicator values: parsed from feed entries and event text into one normal form
//! (addresses as integers, networks with their prefix, lower-cased names, normalised
//! URLs, hashes by length).

use std::net::{IpAddr, Ipv4Addr};

use super::IocKind;

/// A parsed indicator value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    V4(u32),
    V6(u128),
    Net4(u32, u8),
    Net6(u128, u8),
    Domain(String),
    Url(String),
    Hash(IocKind, String),
    Email(String),
}

impl Value {
    pub(super) fn kind(&self) -> IocKind {
        match self {
            Value::V4(_) => IocKind::Ipv4,
            Value::V6(_) => IocKind::Ipv6,
            Value::Net4(..) | Value::Net6(..) => IocKind::Cidr,
            Value::Domain(_) => IocKind::Domain,
            Value::Url(_) => IocKind::Url,
            Value::Hash(k, _) => *k,
            Value::Email(_) => IocKind::Email,
        }
    }
}

pub(super) fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@' | b':')
}

pub(super) fn clip(s: &str) -> String {
    crate::text::sanitize(s, 120)
}

pub(super) fn hash_kind(s: &str) -> Option<IocKind> {
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match s.len() {
        32 => Some(IocKind::Md5),
        40 => Some(IocKind::Sha1),
        64 => Some(IocKind::Sha256),
        _ => None,
    }
}

pub(super) fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
        })
        && d.rsplit('.').next().is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// Parses one indicator; `hint` is the kind the feed says it is.
pub(super) fn parse_value(raw: &str, hint: Option<IocKind>) -> Option<Value> {
    let s = raw.trim().trim_matches('"');
    if s.is_empty() {
        return None;
    }
    let as_ip = |s: &str| -> Option<Value> {
        if let Some((a, len)) = s.split_once('/') {
            let len: u8 = len.parse().ok()?;
            return match a.parse::<IpAddr>().ok()? {
                IpAddr::V4(a) if len <= 32 => {
                    let a = u32::from(a);
                    // A /32 is an address.
                    if len == 32 {
                        Some(Value::V4(a))
                    } else {
                        Some(Value::Net4(if len == 0 { 0 } else { a & (u32::MAX << (32 - len)) }, len))
                    }
                }
                IpAddr::V6(a) if len <= 128 => {
                    let a = u128::from(a);
                    if len == 128 {
                        Some(Value::V6(a))
                    } else {
                        Some(Value::Net6(if len == 0 { 0 } else { a & (u128::MAX << (128 - len)) }, len))
                    }
                }
                _ => None,
            };
        }
        match s.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Some(Value::V4(a.into())),
            IpAddr::V6(a) => Some(Value::V6(a.into())),
        }
    };
    match hint {
        Some(IocKind::Ipv4 | IocKind::Ipv6 | IocKind::Cidr) => as_ip(s),
        Some(IocKind::Domain) => {
            let d = s.trim_end_matches('.').to_ascii_lowercase();
            valid_domain(&d).then_some(Value::Domain(d))
        }
        Some(IocKind::Url) if s.contains("://") => normalize_url(s).map(Value::Url),
        Some(IocKind::Url) => {
            // Feeds (MISP `url` attributes) often leave the scheme out: `www.x.top/p`.
            // Such a value is a URL when it starts with a host name or an address.
            let host = s
                .split(['/', '?'])
                .next()
                .unwrap_or("")
                .rsplit_once(':')
                .map_or(s.split(['/', '?']).next().unwrap_or(""), |(h, _)| h);
            let ok = host.parse::<Ipv4Addr>().is_ok() || valid_domain(&host.to_ascii_lowercase());
            if ok { normalize_url(&format!("http://{s}")).map(Value::Url) } else { None }
        }
        Some(k @ (IocKind::Md5 | IocKind::Sha1 | IocKind::Sha256)) => {
            (hash_kind(s) == Some(k)).then(|| Value::Hash(k, s.to_ascii_lowercase()))
        }
        Some(IocKind::Email) => {
            let (user, dom) = s.rsplit_once('@')?;
            (!user.is_empty() && valid_domain(&dom.to_ascii_lowercase())).then(|| Value::Email(s.to_ascii_lowercase()))
        }
        None => {
            if let Some(v) = as_ip(s) {
                return Some(v);
            }
            if s.contains("://") {
                return normalize_url(s).map(Value::Url);
            }
            if s.contains('@') {
                return parse_value(s, Some(IocKind::Email));
            }
            if let Some(k) = hash_kind(s) {
                return Some(Value::Hash(k, s.to_ascii_lowercase()));
            }
            parse_value(s, Some(IocKind::Domain))
        }
    }
}

/// `scheme://host[:port]/path?query` with scheme and host lower-cased, the default
/// port and any fragment dropped, and an empty path written `/`.
pub fn normalize_url(u: &str) -> Option<String> {
    let u = u.trim();
    let (scheme, rest) = u.split_once("://")?;
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.') {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.split('#').next().unwrap_or("");
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let host_port = authority.rsplit('@').next().unwrap_or(authority).to_ascii_lowercase();
    if host_port.is_empty() {
        return None;
    }
    let host_port = match (scheme.as_str(), host_port.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) | ("ftp", Some((h, "21"))) => h.to_string(),
        _ => host_port,
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Some(format!("{scheme}://{host_port}{path}"))
}
