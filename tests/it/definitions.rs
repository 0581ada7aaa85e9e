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
