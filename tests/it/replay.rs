//! `warden replay`: data-driven scenarios from fixtures/scenarios, the public OpenSSH
//! corpus (when WARDEN_CORPORA is set), and the CLI's error messages.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::support::{BIN, corpus};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    reference: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    incidents: Vec<ExpectedIncident>,
    /// When present, exactly these findings (grouped by rule and entity) must exist.
    #[serde(default)]
    findings: Vec<ExpectedFindings>,
    /// The input must produce no finding at all.
    #[serde(default)]
    no_findings: bool,
    /// `[detection.network] ignore_sources` for this scenario (monitoring hosts, the
    /// organisation's scanners), set in a copy of the shipped definitions.
    #[serde(default)]
    ignore_sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedFindings {
    rule: String,
    /// The finding's entity: its address, `user:NAME` or `host:NAME`.
    entity: String,
    count: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedIncident {
    #[serde(rename = "type")]
    kind: String,
    entity: String,
    /// How many findings it holds (not checked when absent).
    #[serde(default)]
    findings: Option<usize>,
    severity: String,
    /// Words its title contains.
    #[serde(default)]
    title: Option<String>,
    /// Its priority (`P1` … `P4`), when checked.
    #[serde(default)]
    priority: Option<String>,
    action: String,
    #[serde(default)]
    note: Option<String>,
    /// The playbook that ran, and each step's outcome in order.
    #[serde(default)]
    playbook: Option<String>,
    #[serde(default)]
    steps: Option<Vec<String>>,
}

fn replay_json(file: &Path) -> Vec<serde_json::Value> {
    replay_with(file, "--json")
}

fn replay_with(file: &Path, flag: &str) -> Vec<serde_json::Value> {
    replay_in(file, flag, None)
}

fn replay_in(file: &Path, flag: &str, actors: Option<&Path>) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(BIN);
    cmd.arg("replay").arg(flag).arg(file);
    if let Some(a) = actors {
        cmd.arg("--actors").arg(a);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// How a scenario's inputs are given to replay.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Variant {
    /// As written: `input.log`, or the case's logs of one capture as a directory.
    AsWritten,
    /// Each Zeek TSV log in Zeek's JSON form, gzip-compressed (`conn.log.gz`).
    JsonGzip,
}

/// Runs one scenario and compares what replay found with what it expects.
fn check(case: &Path, variant: Variant) {
    let expected: Expected = toml::from_str(&std::fs::read_to_string(case.join("expected.toml")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // One input file is replayed as the file; several (the logs of one capture) as their
    // directory, merged on time.
    let single = case.join("input.log").exists();
    let dir = tmp.path().join("capture");
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(case).unwrap() {
        let from = e.unwrap().path();
        let name = from.file_name().unwrap().to_string_lossy().to_string();
        if name == "expected.toml" || name == "golden.json" {
            continue;
        }
        let to = match variant {
            Variant::AsWritten => dir.join(if single { "auth.log".to_string() } else { name }),
            Variant::JsonGzip => {
                let json = crate::support::zeek_json(&std::fs::read_to_string(&from).unwrap());
                let to = dir.join(format!("{name}.gz"));
                std::fs::write(&to, crate::support::gzip(&json)).unwrap();
                to
            }
        };
        if variant == Variant::AsWritten {
            std::fs::copy(&from, &to).unwrap();
        }
        let f = std::fs::File::options().write(true).open(&to).unwrap();
        f.set_modified(expected.reference.into()).unwrap();
    }
    let input = if single { std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path() } else { dir };
    let actors = (!expected.ignore_sources.is_empty()).then(|| {
        let actors = crate::support::copy_actors(tmp.path());
        let def = actors.join("threat-detection/agent.toml");
        let toml = std::fs::read_to_string(&def).unwrap();
        let ignore = format!("ignore_sources = {:?}", expected.ignore_sources);
        assert!(toml.contains("\nignore_sources = []\n"), "the shipped definition sets ignore_sources");
        std::fs::write(&def, toml.replace("\nignore_sources = []\n", &format!("\n{ignore}\n"))).unwrap();
        actors
    });
    let got = replay_in(&input, "--json", actors.as_deref());
    let name = format!("{} ({variant:?})", case.file_name().unwrap().to_string_lossy());
    let findings = replay_in(&input, "--findings", actors.as_deref());
    // The whole output as written, pinned (the JSON/gzip variant must find the same, as
    // checked below, but its evidence lines are its own).
    if variant == Variant::AsWritten {
        let whole = serde_json::json!({ "findings": findings, "incidents": got });
        crate::golden::compare(&name, &case.join("golden.json"), &crate::golden::normalize(&whole, tmp.path()));
    }
    if !expected.findings.is_empty() || expected.no_findings {
        let mut groups: std::collections::BTreeMap<(String, String), usize> = Default::default();
        for f in findings {
            // As incident response groups them: the finding's entity, else its address,
            // else its host.
            let entity = match (f["entity"].as_str(), f["src_ip"].as_str()) {
                (Some(e), _) => e.to_string(),
                (None, Some(ip)) => ip.to_string(),
                (None, None) => format!("host:{}", f["host"].as_str().unwrap()),
            };
            *groups.entry((f["rule"].as_str().unwrap().to_string(), entity)).or_default() += 1;
        }
        let want: std::collections::BTreeMap<(String, String), usize> =
            expected.findings.iter().map(|f| ((f.rule.clone(), f.entity.clone()), f.count)).collect();
        assert_eq!(groups, want, "{name}: findings");
    }
    assert_eq!(got.len(), expected.incidents.len(), "{name}: incidents {got:#?}");
    for want in &expected.incidents {
        let inc = crate::support::incident_for(&got, &want.entity)
            .unwrap_or_else(|| panic!("{name}: no incident for {}", want.entity));
        assert_eq!(inc["type"], want.kind.as_str(), "{name}");
        assert_eq!(inc["severity"], want.severity.as_str(), "{name}");
        if let Some(n) = want.findings {
            assert_eq!(inc["findings"].as_array().unwrap().len(), n, "{name}: {inc:#}");
        }
        if let Some(t) = &want.title {
            assert!(inc["title"].as_str().unwrap().contains(t.as_str()), "{name}: title {}", inc["title"]);
        }
        if let Some(p) = &want.priority {
            assert_eq!(inc["priority"], p.as_str(), "{name}");
        }
        let actions = inc["actions"].as_array().unwrap();
        match want.action.as_str() {
            "none" => assert!(actions.is_empty(), "{name}: {inc:#}"),
            status => {
                assert_eq!(actions.len(), 1, "{name}");
                assert_eq!(actions[0]["status"], status, "{name}");
                assert_eq!(actions[0]["target"], want.entity.as_str(), "{name}");
            }
        }
        if let Some(pb) = &want.playbook {
            assert_eq!(inc["playbook"]["playbook"], pb.as_str(), "{name}: {inc:#}");
        }
        if let Some(steps) = &want.steps {
            let got: Vec<String> = inc["playbook"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| format!("{}:{}", s["id"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
                .collect();
            assert_eq!(&got, steps, "{name}");
        }
        if let Some(note) = &want.note {
            assert!(
                inc["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains(note.as_str())),
                "{name}: {inc:#}"
            );
        }
    }
}

#[test]
fn scenarios() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 5);
    for case in cases {
        check(&case, Variant::AsWritten);
        // Every network scenario holds in Zeek's JSON form, compressed, too.
        if case.file_name().unwrap().to_string_lossy().starts_with("net-") {
            check(&case, Variant::JsonGzip);
        }
    }
}

#[test]
fn replay_prints_a_readable_summary() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/brute-force/input.log");
    let out = Command::new(BIN).arg("replay").arg(&case).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("block_ip 203.0.113.7 mode=observe status=dry_run: nft add element inet warden blocklist_v4"),
        "{text}"
    );
    assert!(text.contains("replayed 9 lines"), "{text}");
}

/// Several files are one stream merged on event time: failed logins in one file and
/// the success that followed them in another (read first, by name) are a success after
/// failures only when read in time order; so for a directory holding them. Each
/// evidence pointer names the file its line is in, at the line's offset there. A
/// directory's README is skipped, saying so; a log of it in which no line parses is an
/// error naming it.
#[test]
fn several_files_are_merged_on_time_with_evidence_in_each() {
    let whole = std::fs::read_to_string("fixtures/scenarios/success-after-failures/input.log").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    for (name, success) in [("a.log", true), ("b.log", false)] {
        let part: String =
            whole.lines().filter(|l| l.contains("Accepted") == success).map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join(name), part).unwrap();
        let f = std::fs::File::options().write(true).open(dir.join(name)).unwrap();
        f.set_modified(chrono::DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z").unwrap().into()).unwrap();
    }
    for given in [vec![dir.join("a.log"), dir.join("b.log")], vec![dir.clone()]] {
        let mut cmd = Command::new(BIN);
        cmd.args(["replay", "--findings"]).args(&given);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let found: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let hits: Vec<&serde_json::Value> =
            found.iter().filter(|f| f["rule"] == "ssh_success_after_failures").collect();
        assert_eq!(hits.len(), 1, "{found:#?}");
        let refs = hits[0]["evidence_refs"].as_array().expect("evidence pointers");
        let files: std::collections::BTreeSet<&str> = refs.iter().map(|r| r["file"].as_str().unwrap()).collect();
        assert_eq!(files.len(), 2, "lines of both files: {refs:#?}");
        for r in refs {
            let text = std::fs::read_to_string(r["file"].as_str().unwrap()).unwrap();
            let at = r["offset"].as_u64().unwrap() as usize;
            let line = text[at..].lines().next().unwrap();
            let evidence = hits[0]["evidence"].as_array().unwrap();
            assert!(evidence.iter().any(|e| e == line), "{line:?} is not the finding's evidence: {r:#}");
        }
    }
    // A README next to the logs is skipped, saying so; a log of which nothing parses
    // is an error.
    std::fs::write(dir.join("README.md"), "# capture of 2 March\n").unwrap();
    let out = Command::new(BIN).args(["replay", "--findings"]).arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("skipping") && err.contains("README.md: not a log by its name"), "{err}");
    std::fs::write(dir.join("junk.log"), "not a log line\n").unwrap();
    let out = Command::new(BIN).arg("replay").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("junk.log parsed as format `auto`"), "{err}");
}

/// `--stats` says which parser took how many lines, and how many none understood: each
/// mail server's lines by its own parser, recognised from the program name or the
/// line's shape (exim's main log has no syslog header).
#[test]
fn replay_stats_count_lines_per_parser() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/rule-mail/input.log");
    let out = Command::new(BIN).arg("replay").arg("--stats").arg(&case).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lines by parser: postfix=13 dovecot=14 exim=5 courier=5 cyrus=5 unparsed=0"), "{text}");
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/bad-input-attribution/input.log");
    let out = Command::new(BIN).arg("replay").arg("--stats").arg(&case).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lines by parser: sshd=22 postfix=5 syslog=5 unparsed=1"), "{text}");
    // And what the replay stored (the benchmarks divide by it): as many findings as
    // `--findings` prints.
    let stored = text.lines().find(|l| l.starts_with("stored: ")).unwrap_or_else(|| panic!("{text}"));
    let n: usize = stored["stored: ".len()..].split(' ').next().unwrap().parse().unwrap();
    let out = Command::new(BIN).arg("replay").arg("--findings").arg(&case).output().unwrap();
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(n > 0 && n == findings.len(), "{stored} but {} findings", findings.len());
}

/// Real sshd logs from loghub: every address with at least five failed attempts inside
/// ten minutes, counted per line as fail2ban's `sshd` filter counts them (computed here
/// independently, from the raw lines), gets exactly one incident, and no other address
/// does.
#[test]
fn loghub_openssh_corpus() {
    let Some(root) = std::env::var_os("WARDEN_CORPORA") else {
        eprintln!("SKIPPED loghub_openssh_corpus: WARDEN_CORPORA is not set");
        return;
    };
    let file = Path::new(&root).join("loghub/OpenSSH/OpenSSH_2k.log");
    let text = std::fs::read_to_string(&file).unwrap();
    // Independent ground truth: (second of day, ip) of every failure — `Failed <method>`
    // (a rejected key excepted), `Invalid user`, a client's `Auth fail`, `Too many
    // authentication failures` (its address from an earlier line of the same sshd
    // process) — expanded for rsyslog's "message repeated N times".
    let mut failures: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    let mut by_pid: std::collections::HashMap<String, String> = Default::default();
    for line in text.lines() {
        let pid = line.split("sshd[").nth(1).and_then(|r| r.split(']').next()).unwrap_or("").to_string();
        let from = line
            .rsplit(" from ")
            .next()
            .filter(|_| line.contains(" from "))
            .map(|r| r.split([' ', ':']).next().unwrap().to_string());
        if let Some(ip) = from.as_ref().filter(|ip| ip.parse::<std::net::IpAddr>().is_ok()) {
            by_pid.insert(pid.clone(), ip.clone());
        }
        let counted = (line.contains("]: Failed ") || line.contains("[ Failed ")) && !line.contains("Failed publickey")
            || line.contains("]: Invalid user ")
            || line.contains(": Auth fail")
            || line.contains("Too many authentication failures");
        if !counted {
            continue;
        }
        let Some(ip) = by_pid.get(&pid).cloned() else { continue };
        let secs = line[7..15].split(':').map(|p| p.parse::<u32>().unwrap()).fold(0, |a, p| a * 60 + p);
        let n = line
            .find("message repeated ")
            .map(|j| line[j + 17..].split(' ').next().unwrap().parse::<usize>().unwrap())
            .unwrap_or(1);
        failures.entry(ip).or_default().extend(std::iter::repeat_n(secs, n));
    }
    let expected: std::collections::BTreeSet<String> = failures
        .iter()
        .filter(|(_, ts)| ts.iter().enumerate().any(|(k, t)| ts[k..].iter().take_while(|u| **u < t + 600).count() >= 5))
        .map(|(ip, _)| ip.clone())
        .collect();
    assert!(expected.contains("183.62.140.253"));
    let got = replay_json(&file);
    let got_ips: std::collections::BTreeSet<String> =
        got.iter().map(|i| i["entities"][0].as_str().unwrap().to_string()).collect();
    assert_eq!(got_ips, expected);
    assert_eq!(got.len(), expected.len(), "one incident per attacker");
    let busiest = crate::support::incident_for(&got, "183.62.140.253").unwrap();
    assert_eq!(busiest["actions"][0]["status"], "dry_run");
}

#[test]
fn clear_errors_for_bad_config_data_dir_and_port() {
    let tmp = tempfile::tempdir().unwrap();
    // A config error names the file and line.
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "[admin]\nlisten = \"127.0.0.1:1\"\n[response]\nmode = \"yolo\"\n").unwrap();
    let out = Command::new(BIN).arg("run").arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4: unknown variant `yolo`", cfg.display())), "{err}");
    // An unusable data directory (a file where a directory should be).
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(BIN).arg("run").arg("--data-dir").arg(file.join("sub")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create the data directory"), "{out:?}");
    // A port in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cfg = tmp.path().join("busy.toml");
    std::fs::write(&cfg, format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let with_cfg = |cmd: &str| {
        Command::new(BIN)
            .arg(cmd)
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(tmp.path().join("d"))
            .output()
            .unwrap()
    };
    let out = with_cfg("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
    // The CLI without a running daemon says so.
    drop(busy);
    let out = with_cfg("status");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `warden run` running?"), "{out:?}");
}

/// An Acunetix scan of DVWA (everything from 192.168.4.25 is attack traffic): the
/// scanner gets one incident, found by several of the shipped web rules, and nobody
/// else is flagged.
#[test]
fn acunetix_scan_flags_the_scanner() {
    let Some(file) = corpus("web/scanner/acunetix.txt") else { return };
    let findings = replay_with(&file, "--findings");
    let rules: std::collections::BTreeSet<&str> = findings.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    eprintln!("acunetix: {} findings from rules {rules:?}", findings.len());
    assert!(findings.iter().all(|f| f["src_ip"] == "192.168.4.25"), "only the scanner is flagged");
    assert!(rules.len() >= 4, "{rules:?}");
    let incidents = replay_json(&file);
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["entities"][0], "192.168.4.25");
    assert_eq!(incidents[0]["actions"][0]["status"], "dry_run");
}

/// 10,000 real, mostly benign Apache requests: the false positives are printed and
/// must stay at or below 0.1 % of the lines.
#[test]
fn benign_apache_log_false_positives_stay_low() {
    let Some(file) = corpus("web/benign/apache_logs") else { return };
    let findings = replay_with(&file, "--findings");
    eprintln!("benign apache log: {} findings on 10,000 lines", findings.len());
    for f in &findings {
        eprintln!("  {} {}: {}", f["rule"], f["src_ip"], f["evidence"][0]);
    }
    assert!(findings.len() <= 10, "{} false positives", findings.len());
}

/// Hostile lines: user names carrying shell syntax and terminal escapes, a user name that
/// names another address, and a 60 KB request built against the rules' regular
/// expressions. The block command holds only the parsed address, the evidence is
/// escaped, and the long line is handled like any other.
#[test]
fn hostile_lines_cannot_reach_commands_reports_or_the_regex_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("mixed.log");
    let mut text = String::new();
    for i in 0..5 {
        text.push_str(&format!(
            "Mar  1 10:00:0{i} web1 sshd[1]: Failed password for invalid user $(rm -rf /);`reboot`\u{1b}[2J from 10.9.9.9 port 22 ssh2 from 203.0.113.66 port 4{i} ssh2\n"
        ));
    }
    let evil_query = format!("page=http://{}.txt", "a".repeat(60_000));
    text.push_str(&format!(
        "203.0.113.67 - - [01/Mar/2026:10:01:00 +0000] \"GET /i.php?{evil_query} HTTP/1.1\" 200 1 \"-\" \"x\"\n"
    ));
    std::fs::write(&input, text).unwrap();
    let out = Command::new(BIN).args(["replay", "--json"]).arg(&input).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let incidents: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(crate::support::incident_for(&incidents, "10.9.9.9").is_none(), "a user name cannot frame an address");
    let inc = crate::support::incident_for(&incidents, "203.0.113.66").expect("the real attacker");
    let argv: Vec<&str> = inc["actions"][0]["argv"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(argv, ["nft", "add", "element", "inet", "warden", "blocklist_v4", "{ 203.0.113.66 timeout 3600s }"]);
    let text = serde_json::to_string(inc).unwrap();
    assert!(!text.contains('\u{1b}'), "terminal escapes are escaped in stored evidence");
    assert!(text.contains("\\\\u{1b}[2J"), "and kept visible: {text}");
}

/// Stratosphere's Zeek logs (conn, dns, http; TSV with headers) parse completely: every
/// record becomes an event with Zeek's field names and its own time.
#[test]
fn zeek_tsv_logs_parse_completely() {
    use warden::config::LogFormat;
    use warden::ingest::{BatchStats, LineParser};
    let Some(root) = corpus("zeek/stratosphere") else { return };
    let mut checked = 0;
    for case in ["003-zeek-scenario-malicious", "005-zeek-scenario-malicious"] {
        for log in ["conn.log", "dns.log", "http.log"] {
            let path = root.join(case).join(log);
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            for format in [LogFormat::Zeek, LogFormat::Auto] {
                let mut p = LineParser::new(format, chrono::Utc::now());
                let (mut stats, mut events) = (BatchStats::default(), Vec::new());
                for line in text.lines() {
                    p.parse(line.to_string(), &mut stats, &mut events);
                }
                let records = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
                assert_eq!(stats.unparsed, 0, "{}", path.display());
                assert_eq!(events.len(), records, "{}", path.display());
                let first = &events[0];
                let fields = first.fields.as_deref().unwrap();
                assert!(fields.contains_key("id.orig_h"), "{}", path.display());
                let ts: f64 = fields.text("ts").unwrap().parse().unwrap();
                assert_eq!(first.time.timestamp(), ts.trunc() as i64, "the record's own time");
            }
            checked += 1;
        }
    }
    eprintln!("zeek: {checked} logs parsed");
    assert!(checked >= 4);
}
