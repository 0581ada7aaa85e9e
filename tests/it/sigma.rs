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
