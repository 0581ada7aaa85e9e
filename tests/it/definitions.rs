//! Agent definitions: the shipped folder loads; each broken fixture fails with exactly
//! the expected `file:line: message` lines (fixtures/actors-broken/*/expected.txt).

use std::path::Path;
use std::process::Command;

use warden::definitions::{ActorsDir, AgentKind, load};
use warden::messages::PayloadKind;

use crate::support::{BIN, actors_dir};

#[test]
fn the_shipped_actors_folder_loads() {
    let defs = load(&ActorsDir::Disk(actors_dir())).unwrap();
    assert!(defs.warnings.is_empty(), "every shipped rule loads: {:?}", defs.warnings);
    assert!(defs.agents["threat-detection"].rule_files.len() >= 4);
    for name in ["threat-detection", "incident-response", "vulnerability-management"] {
        let d = &defs.agents[name];
        assert!(d.prompt.as_deref().is_some_and(|p| !p.is_empty()), "{name} has a prompt");
    }
    assert_eq!(defs.agents["threat-detection"].kind, AgentKind::ThreatDetection);
    assert_eq!(defs.agents["threat-detection"].detection.brute_force.failures, 5);
    assert_eq!(defs.agents["threat-detection"].detection.brute_force.window_secs, 600);
    for k in PayloadKind::ALL {
        assert!(defs.agents.values().any(|a| a.handles(k)), "{k} has a handler");
    }
    // The copy built into the binary is the same folder.
    let embedded = load(&ActorsDir::Embedded).unwrap();
    assert_eq!(embedded.agents.keys().collect::<Vec<_>>(), defs.agents.keys().collect::<Vec<_>>());
    let out = Command::new(BIN).args(["lint", "--actors"]).arg(actors_dir()).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 agents OK"));
}

#[test]
fn broken_definitions_fail_with_the_expected_messages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/actors-broken");
    let mut cases: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 8);
    for case in cases {
        let agents = case.join("agents");
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap();
        let prefix = format!("{}/", agents.display());
        let errs = load(&ActorsDir::Disk(agents.clone())).expect_err(&format!("{} must fail", case.display()));
        let mut got: Vec<String> = errs
            .errors
            .iter()
            .map(|e| e.to_string().replace(&prefix, "").replace(&agents.display().to_string(), ""))
            .collect();
        got.sort();
        let mut want: Vec<String> = expected.lines().map(String::from).collect();
        want.sort();
        assert_eq!(got, want, "case {}", case.display());

        // `warden lint` prints the same lines and exits non-zero.
        let out = Command::new(BIN).args(["lint", "--actors"]).arg(&agents).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "case {}", case.display());
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in &want {
            assert!(stdout.contains(line.as_str()), "case {}: lint output lacks {line:?}:\n{stdout}", case.display());
        }
    }
}

#[test]
fn run_refuses_broken_definitions_with_a_clear_error() {
    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/actors-broken/missing-handler/agents");
    let tmp = tempfile::tempdir().unwrap();
    let out =
        Command::new(BIN).arg("run").arg("--actors").arg(&agents).arg("--data-dir").arg(tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent handles payload kind `patch_verification`"));
}

#[test]
fn broken_rules_are_reported_but_do_not_stop_the_others() {
    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules-broken/agents");
    let defs = load(&ActorsDir::Disk(agents.clone())).expect("definitions load despite broken rules");
    let prefix = format!("{}/threat-detection/rules/", agents.display());
    let mut got: Vec<String> = defs.warnings.iter().map(|w| w.to_string().replace(&prefix, "")).collect();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("bad-modifier.yml:6: ") && got[0].contains("frobnicate"), "{got:?}");
    assert!(got[1].starts_with("bad-yaml.yml:7: YAML parse error"), "{got:?}");
    // lint fails on them...
    let out = Command::new(BIN).args(["lint", "--actors"]).arg(&agents).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    // ...while the good rule still detects.
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/rule-sudo-to-shell/input.log");
    let out = Command::new(BIN).args(["replay", "--json", "--actors"]).arg(&agents).arg(&input).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let incidents: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["type"], "privilege_abuse");
    assert_eq!(incidents[0]["title"], "Sudo To An Interactive Shell");
}
