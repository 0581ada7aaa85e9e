//! What the parsers' tests compare: an event's kind, its client (the address, else the
//! name) and its user.

use crate::messages::{AuthEvent, AuthEventKind};

pub type Got = Option<(AuthEventKind, String, Option<String>)>;

pub fn who(e: &AuthEvent) -> String {
    e.src_ip.map(|i| i.to_string()).or(e.src_name.clone()).unwrap_or_default()
}

pub fn got(ev: Option<AuthEvent>) -> Got {
    ev.map(|e| (e.kind, who(&e), e.user))
}

pub fn x(k: AuthEventKind, a: &str, u: Option<&str>) -> Got {
    Some((k, a.to_string(), u.map(String::from)))
}
