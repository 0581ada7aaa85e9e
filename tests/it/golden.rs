//! Replay output, whole, against golden files: every finding and incident field —
//! titles, evidence, numbers, actions with their argv, playbook steps, notes — on the
//! scenario fixtures and on small generated benchmark files (auth, web, Zeek). What a
//! speed-up must not change is pinned here: a change of output fails with the first
//! line that differs.
//!
//! Times taken from the wall clock (an incident's `created_at`, a deadline, an action's
//! expiry) are replaced by `<now>`, the input's directory by `<dir>`; event times come
//! from the lines and the inputs' pinned modification time, and stay. After a change
//! that is meant to alter the output, `WARDEN_BLESS=1 cargo test golden` rewrites the
//! files; review their diff like code.

use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// Wall-clock times are at or after this (the test process's start, less a margin for
/// a clock step); event times of the fixtures are far older.
fn wall_clock_floor() -> DateTime<Utc> {
    static START: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *START.get_or_init(|| Utc::now() - chrono::Duration::minutes(10))
}

/// The output with wall-clock times and the input's directory replaced.
pub fn normalize(v: &serde_json::Value, dir: &Path) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(normalize_text(s, dir)),
        Value::Array(a) => Value::Array(a.iter().map(|x| normalize(x, dir)).collect()),
        // Collected evidence holds the time it was collected (and a host snapshot the
        // machine's processes): its digest and size are wall-clock ones.
        Value::Object(m) if m.contains_key("collected_at") => Value::Object(
            m.iter()
                .map(|(k, x)| match k.as_str() {
                    "sha256" | "name" => (k.clone(), Value::String("<digest>".into())),
                    "size" => (k.clone(), Value::String("<size>".into())),
                    _ => (k.clone(), normalize(x, dir)),
                })
                .collect(),
        ),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), normalize(x, dir))).collect()),
        other => other.clone(),
    }
}

fn normalize_text(s: &str, dir: &Path) -> String {
    let mut s = s.replace(&dir.display().to_string(), "<dir>");
    // A generated report holds the time it was generated: its size and digest are
    // wall-clock ones.
    if let Some(from) = s.find("report generated (")
        && let Some(to) = s[from..].find(')')
    {
        s.replace_range(from..from + to + 1, "report generated (<size>, <digest>)");
    }
    let floor = wall_clock_floor();
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(end) = timestamp_at(b, i)
            && let Some(Ok(t)) = s.get(i..end).map(DateTime::parse_from_rfc3339)
            && t.with_timezone(&Utc) >= floor
        {
            out.push_str("<now>");
            i = end;
            continue;
        }
        let ch = s[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The end of an RFC 3339 time starting at `i` (`2026-12-02T08:11:20.112Z`,
/// `…+00:00`), if one does.
fn timestamp_at(b: &[u8], i: usize) -> Option<usize> {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < i + shape.len() {
        return None;
    }
    for (k, want) in shape.iter().enumerate() {
        let c = b[i + k];
        let ok = if *want == b'd' { c.is_ascii_digit() } else { c == *want };
        if !ok {
            return None;
        }
    }
    let mut j = i + shape.len();
    if b.get(j) == Some(&b'.') {
        j += 1;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
    }
    match b.get(j) {
        Some(b'Z') => Some(j + 1),
        Some(b'+' | b'-') if b.len() >= j + 6 => Some(j + 6),
        _ => None,
    }
}

/// Compares `got` with the golden file (pretty JSON, gzip-compressed when its name ends
/// in `.gz`), or writes it with `WARDEN_BLESS=1`.
pub fn compare(name: &str, golden: &Path, got: &serde_json::Value) {
    let text = serde_json::to_string_pretty(got).unwrap() + "\n";
    let gz = golden.extension().is_some_and(|e| e == "gz");
    if std::env::var_os("WARDEN_BLESS").is_some() {
        let bytes = if gz { crate::support::gzip(&text) } else { text.into_bytes() };
        std::fs::write(golden, bytes).unwrap();
        return;
    }
    let raw = std::fs::read(golden)
        .unwrap_or_else(|e| panic!("{name}: cannot read {} ({e}); WARDEN_BLESS=1 writes it", golden.display()));
    let want = if gz {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_string(&mut s).unwrap();
        s
    } else {
        String::from_utf8(raw).unwrap()
    };
    if want == text {
        return;
    }
    let at = want
        .lines()
        .zip(text.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(want.lines().count().min(text.lines().count()));
    let around = |t: &str| t.lines().skip(at.saturating_sub(3)).take(7).collect::<Vec<_>>().join("\n");
    let kept = std::env::temp_dir().join(format!("golden-{}.json", name.replace(['/', ' ', '(', ')'], "_")));
    std::fs::write(&kept, &text).unwrap();
    panic!(
        "{name}: replay output differs from {} at line {} (whole output in {}):\n--- golden\n{}\n--- now\n{}",
        golden.display(),
        at + 1,
        kept.display(),
        around(&want),
        around(&text)
    );
}

/// Replays `input` with `flag` (`--json`, `--findings`) and returns what it printed.
fn replay(input: &Path, flag: &str) -> serde_json::Value {
    let out = std::process::Command::new(crate::support::BIN).arg("replay").arg(flag).arg(input).output().unwrap();
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[path = "../../benches/gen.rs"]
#[allow(dead_code)]
mod generator;

/// The small benchmark files, generated as `cargo bench --bench replay` generates its
/// own (same generators, same seed), with a pinned modification time.
fn bench_file(dir: &Path, kind: &str) -> PathBuf {
    let file = dir.join(format!("{kind}.log"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    match kind {
        "auth" => drop(generator::generate(&mut out, 20_000, 42).unwrap()),
        "web" => drop(generator::generate_web(&mut out, 20_000, 42).unwrap()),
        _ => generator::generate_conn(&mut out, 50_000, 42).unwrap(),
    }
    drop(out);
    let reference: DateTime<Utc> = "2026-06-30T00:00:00Z".parse().unwrap();
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(reference.into()).unwrap();
    file
}

/// Every finding, and every incident with its findings, actions and playbook, of the
/// generated benchmark files.
#[test]
fn benchmark_files_replay_exactly_as_their_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden");
    for kind in ["auth", "web", "zeek"] {
        let tmp = tempfile::tempdir().unwrap();
        let file = bench_file(tmp.path(), kind);
        let incidents = normalize(&replay(&file, "--json"), tmp.path());
        let got = serde_json::json!({
            "findings": normalize(&replay(&file, "--findings"), tmp.path()),
            "incidents": incidents,
        });
        assert!(got["findings"].as_array().is_some_and(|f| !f.is_empty()), "{kind}: no findings");
        compare(&format!("bench {kind}"), &root.join(format!("{kind}.json.gz")), &got);
    }
}

#[test]
fn normalizing_replaces_only_wall_clock_times_and_the_directory() {
    let dir = Path::new("/tmp/x1");
    let now = Utc::now().to_rfc3339();
    let v = serde_json::json!({
        "a": now, "b": "2026-03-01T10:00:00Z", "c": format!("respond by {now} at once"),
        "d": "/tmp/x1/auth.log", "e": "2026-03-01T10:00:00.5+02:00 und ü", "f": 3,
        "g": format!("technical report generated (9 bytes, sha256 {}); see", "ab".repeat(32)),
    });
    let n = normalize(&v, dir);
    assert_eq!(n["a"], "<now>");
    assert_eq!(n["b"], "2026-03-01T10:00:00Z");
    assert_eq!(n["c"], "respond by <now> at once");
    assert_eq!(n["d"], "<dir>/auth.log");
    assert_eq!(n["e"], "2026-03-01T10:00:00.5+02:00 und ü");
    assert_eq!(n["f"], 3);
    assert_eq!(n["g"], "technical report generated (<size>, <digest>); see");
    let e = serde_json::json!({ "kind": "log_lines", "sha256": "ab", "name": "ab", "size": 3, "collected_at": "x" });
    let e = normalize(&e, dir);
    assert_eq!(
        (&e["sha256"], &e["name"], &e["size"], &e["kind"]),
        (&"<digest>".into(), &"<digest>".into(), &"<size>".into(), &"log_lines".into())
    );
}
