//! Sigma rule loading against the public SigmaHQ rules (WARDEN_CORPORA).

use std::path::Path;

use warden::tools::detection::sigma::{load, rule_files};

#[test]
fn sigmahq_linux_and_web_rules_load() {
    let Some(root) = std::env::var_os("WARDEN_CORPORA") else {
        eprintln!("SKIPPED sigmahq_linux_and_web_rules_load: WARDEN_CORPORA is not set");
        return;
    };
    let mut files = Vec::new();
    for sub in ["sigma/rules/linux", "sigma/rules/web"] {
        for p in rule_files(&Path::new(&root).join(sub)).unwrap() {
            let text = std::fs::read_to_string(&p).unwrap();
            files.push((p.strip_prefix(&root).unwrap().display().to_string(), text));
        }
    }
    let set = load(&files);
    let r = &set.report;
    eprintln!(
        "SigmaHQ linux+web: {} of {} files loaded ({} detection rules, {} correlation rules)",
        r.files_loaded, r.files, r.detection_rules, r.correlation_rules
    );
    for e in &r.errors {
        eprintln!("  not loaded: {e}");
    }
    assert!(r.files >= 200, "the corpus has {} rule files", r.files);
    assert!(r.files_loaded * 100 >= r.files * 95, "{} of {} loaded", r.files_loaded, r.files);
    assert_eq!(set.engine.detection_rule_count(), r.detection_rules);
}

/// The Sigma correlation windows are stored with the batches that change them: an
/// enumeration whose first three names were read before a `kill -9` and the last two
/// after the restart is still found — once. (Two names alone are below the rule's five,
/// so a detector that forgot its windows would find nothing.)
#[test]
fn correlation_windows_survive_kill_9() {
    use crate::support::{Daemon, append, eventually};
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    let line = |i: usize, user: &str| {
        format!("Nov 26 10:00:0{i} bastion sshd[9]: Invalid user {user} from 203.0.113.77 port 4000\n")
    };
    std::fs::write(&log, "").unwrap();
    let source = format!(
        "[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n",
        log.display().to_string()
    );
    let mut d = Daemon::start(tmp.path(), &source, "", None);
    let processed = |d: &Daemon| d.metric("warden_source_lines_total{source=\"auth\"}").unwrap_or(0);
    let names = ["alice", "bob", "carol", "dave", "erin"];
    append(&log, &names[..3].iter().enumerate().map(|(i, u)| line(i, u)).collect::<String>());
    eventually(30, "the first three lines read", || (processed(&d) == 3).then_some(()));
    // An injected line is flushed before it is acknowledged, and every earlier commit
    // with it: the windows after the third name are on disk now.
    let body = serde_json::json!({ "source": "auth", "lines": ["Nov 26 10:00:04 bastion cron[1]: tick"] }).to_string();
    let r = d.post("/v1/inject", &body).unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    d.kill9();
    append(&log, &names[3..].iter().enumerate().map(|(i, u)| line(i + 5, u)).collect::<String>());
    d.spawn();
    let found = eventually(30, "the enumeration found", || {
        let all: Vec<serde_json::Value> = serde_json::from_str(&d.get("/v1/findings").unwrap().body).unwrap();
        let hits: Vec<serde_json::Value> =
            all.into_iter().filter(|f| f["rule"] == "ssh_invalid_user_enumeration").collect();
        (!hits.is_empty()).then_some(hits)
    });
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["src_ip"], "203.0.113.77");
}
