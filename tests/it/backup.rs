//! `warden backup` while the daemon runs, `warden restore` into an empty data
//! directory, and the restored copy verified and served.

use std::process::Command;

use crate::support::*;

#[test]
fn a_backup_taken_while_running_restores_verifies_and_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    let attack: String = (0..6).map(|i| failed("203.0.113.90", "root", i)).collect();
    std::fs::write(&log, attack).unwrap();
    let sources = format!("[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\n", log.display().to_string());
    let mut d = Daemon::start(tmp.path(), &sources, "", None);
    eventually(30, "the incident", || incident_for(&d.incidents(), "203.0.113.90").cloned());

    let backup = tmp.path().join("backup");
    let out = d.cli(&["backup", backup.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let ledger: u64 = said.split("audit ledger of ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(ledger > 0, "{said}");
    let again = d.cli(&["backup", backup.to_str().unwrap()]);
    assert!(
        !again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "never over a backup"
    );
    assert_eq!(d.terminate(), Some(0));

    let other = tempfile::tempdir().unwrap();
    let restored = other.path().join("data");
    let warden = |args: &[&str]| {
        Command::new(BIN).args(args).arg("--config").arg(&d.config).arg("--data-dir").arg(&restored).output().unwrap()
    };
    let out = warden(&["restore", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verify = warden(&["audit", "verify", "--offline"]);
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && said.contains(&format!("audit ledger OK: {ledger} records")), "{said}");
    let twice = warden(&["restore", backup.to_str().unwrap()]);
    assert!(!twice.status.success() && String::from_utf8_lossy(&twice.stderr).contains("not empty"));
    let not_one = warden(&["restore", other.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&not_one.stderr).contains("not a Warden backup"));

    // A daemon on the restored directory has the incident.
    let served = Daemon::start(other.path(), "", "", None);
    let inc = incident_for(&served.incidents(), "203.0.113.90").cloned().expect("restored incident");
    assert!(inc["type"].as_str().unwrap().contains("brute_force"), "{inc:#}");
}
