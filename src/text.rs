//! Text from outside — log lines, feed entries, lockfiles, API bodies, a model's
//! answers — made safe to show, store and log. A leaf: it imports nothing of Warden's.
//!
//! Architecture invariant: every module may use this one; it uses none of them.

/// Escapes control characters so a hostile line cannot forge terminal output or logs,
/// and cuts the result at about `max` bytes (marked with `…`).
pub fn sanitize(line: &str, max: usize) -> String {
    let mut out = String::with_capacity(line.len().min(max));
    for c in line.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_controls() {
        assert_eq!(sanitize("a\x1b[31mb\n", 100), "a\\u{1b}[31mb\\n");
    }

    #[test]
    fn sanitize_cuts_long_text() {
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }
}
