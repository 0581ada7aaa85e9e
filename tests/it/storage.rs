//! A full disk under a running daemon: its database on a small tmpfs mounted in a
//! throwaway mount namespace (`unshare --mount`, root), filled and emptied through
//! `nsenter`. Writes fail loudly, the API keeps answering, nothing read is lost, and
//! Warden resumes by itself — restarting in place — once space returns.

use std::process::Command;

use crate::support::*;

fn in_namespace(pid: u32, script: &str) -> bool {
    Command::new("nsenter").args(["-t", &pid.to_string(), "-m", "sh", "-c", script]).status().is_ok_and(|s| s.success())
}

/// A daemon in `tmp` whose database (`data/db`) is a tmpfs of `mib` MiB in its own mount
/// namespace, with its pid (for [`in_namespace`]); `None` (SKIPPED) unless root.
fn on_small_disk(tmp: &std::path::Path, mib: u32, config: &str) -> Option<(Daemon, u32)> {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIPPED: needs root (a tmpfs in a private mount namespace)");
        return None;
    }
    let db = tmp.join("data/db");
    std::fs::create_dir_all(&db).unwrap();
    let mount = format!("mount -t tmpfs -o size={mib}m,mode=0700 none {db:?} && exec \"$@\"");
    let wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", &mount, "sh"];
    let d = Daemon::start_wrapped(tmp, config, wrapper.iter().map(|s| s.to_string()).collect());
    let pid = d.child.as_ref().unwrap().id();
    Some((d, pid))
}

#[test]
fn a_full_disk_degrades_then_warden_resumes_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let db = tmp.path().join("data/db");
    // An 8 MB disk is "nearly full" by the default min_free_mb (256): not what this tests.
    let sources = format!(
        "[storage]\nmin_free_mb = 1\n[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\n",
        log.display().to_string()
    );
    let Some((mut d, pid)) = on_small_disk(tmp.path(), 8, &sources) else { return };

    // Fill the database's disk, then attack.
    assert!(in_namespace(pid, &format!("dd if=/dev/zero of={:?} bs=64k 2>/dev/null; true", db.join("filler"))));
    let attack: String = (0..12).map(|i| failed(&format!("203.0.113.{}", 70 + i % 2), "root", i)).collect();
    append(&log, &attack);
    let health = eventually(60, "health says the storage failed", || {
        let h: serde_json::Value = serde_json::from_str(&d.get("/v1/health").ok()?.body).ok()?;
        (h["storage"]["ok"] == false).then_some(h)
    });
    assert_eq!(health["status"], "degraded");
    assert!(health["storage"]["error"].as_str().unwrap().contains("No space left"), "{health:#}");
    // The API keeps answering (a failed sled can spin forever on a read: it is not read).
    assert_eq!(d.metric("warden_storage_ok"), Some(0), "/metrics keeps answering");
    let r = d.get("/v1/incidents").expect("answers");
    assert!(r.status == 500 && r.body.contains("storage failure"), "{} {}", r.status, r.body);

    // Space returns: the same process (restarted in place) catches up on its own.
    assert!(in_namespace(pid, &format!("rm {:?}", db.join("filler"))));
    for ip in ["203.0.113.70", "203.0.113.71"] {
        // The API is briefly away while the daemon restarts in place.
        let inc = eventually(60, &format!("incident for {ip}"), || {
            let all: Vec<serde_json::Value> = serde_json::from_str(&d.get("/v1/incidents").ok()?.body).ok()?;
            incident_for(&all, ip).cloned()
        });
        assert!(inc["type"].as_str().unwrap().contains("brute_force"), "{inc:#}");
    }
    assert_eq!(d.child.as_ref().unwrap().id(), pid);
    assert!(d.child.as_mut().unwrap().try_wait().unwrap().is_none(), "still running");
    let incidents = d.incidents();
    for ip in ["203.0.113.70", "203.0.113.71"] {
        let n = incidents.iter().filter(|i| i["entities"].as_array().is_some_and(|e| e[0] == ip)).count();
        assert_eq!(n, 1, "one incident for {ip}, not one per attempt: {incidents:#?}");
    }
    let blind: Vec<_> = incidents
        .iter()
        .filter(|i| i["type"] == "visibility" && i["title"].as_str().unwrap().contains("could not write"))
        .collect();
    assert_eq!(blind.len(), 1, "one incident for the outage: {incidents:#?}");
    let health: serde_json::Value = serde_json::from_str(&d.get("/v1/health").unwrap().body).unwrap();
    assert_eq!(health["status"], "ok", "{health:#}");
    // Every line counted once across the restart.
    let lines =
        eventually(30, "lines counted", || d.metric("warden_source_lines_total{source=\"auth\"}").filter(|n| *n >= 12));
    assert_eq!(lines, 12);

    // Full again: SIGTERM still stops it (within the harness's 20 s; Warden cuts its stop
    // short after 8 s), saying the final flush failed.
    assert!(in_namespace(pid, &format!("dd if=/dev/zero of={:?} bs=64k 2>/dev/null; true", db.join("filler"))));
    // (sled writes into space it already holds until it needs more: attack until it does)
    let mut round = 0u32;
    eventually(120, "the second failure seen", || {
        round += 1;
        let burst: String =
            (0..300).map(|i| failed(&format!("198.18.{}.{}", round % 250, i % 250), "admin", i % 3600)).collect();
        append(&log, &burst);
        let h: serde_json::Value = serde_json::from_str(&d.get("/v1/health").ok()?.body).ok()?;
        (h["storage"]["ok"] == false).then_some(())
    });
    assert_eq!(d.terminate(), Some(1), "a stop whose final flush failed is not a clean exit");
}

/// A database file cut short (a failed disk, a bad copy) used to make sled panic, or to
/// open silently with what was left. Now: a clear error naming it and what to do.
#[test]
fn a_damaged_database_is_a_clear_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    let lines: String = (0..1500).map(|i| failed(&format!("198.51.100.{}", i % 200), "root", i % 3600)).collect();
    std::fs::write(&log, lines).unwrap();
    let sources = format!("[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\n", log.display().to_string());
    let mut d = Daemon::start(tmp.path(), &sources, "", None);
    eventually(60, "every line read", || d.metric("warden_source_lines_total{source=\"auth\"}").filter(|n| *n == 1500));
    assert_eq!(d.terminate(), Some(0));
    let file = d.data_dir.join("db/db");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len / 2).unwrap();

    let run = Command::new(BIN).arg("run").arg("--config").arg(&d.config).output().unwrap();
    let said = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(said.contains("is damaged") && said.contains("warden restore"), "{said}");
    assert!(said.contains(&d.data_dir.join("db").display().to_string()), "names the database: {said}");
    assert!(!said.contains("panicked"), "{said}");
    let verify = d.cli(&["audit", "verify", "--offline"]);
    assert!(!verify.status.success() && String::from_utf8_lossy(&verify.stderr).contains("is damaged"));
}

/// Before the disk is full: less free space than `[storage] min_free_mb` is a
/// `visibility` incident (a blind spot ahead), once, and the free space is on `/metrics`.
#[test]
fn a_nearly_full_data_disk_is_an_incident_before_it_is_full() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("data/db");
    let config = "[storage]\nmin_free_mb = 8\n[[sources]]\nname = \"in\"\nkind = \"stdin\"\n";
    let Some((d, pid)) = on_small_disk(tmp.path(), 16, config) else { return };
    let free = eventually(30, "free space measured", || d.metric("warden_storage_free_bytes"));
    assert!(free > 8 << 20 && free <= 16 << 20, "{free}");
    assert!(d.incidents().is_empty(), "enough space: no incident");
    assert!(in_namespace(pid, &format!("dd if=/dev/zero of={:?} bs=1M count=10 2>/dev/null", db.join("filler"))));
    let inc =
        eventually(30, "the nearly-full incident", || d.incidents().into_iter().find(|i| i["type"] == "visibility"));
    assert!(inc["title"].as_str().unwrap().contains("data disk is nearly full"), "{inc:#}");
    assert!(d.metric("warden_storage_free_bytes").unwrap() < 8 << 20);
    // Still low a while later: still one incident.
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(d.incidents().iter().filter(|i| i["type"] == "visibility").count(), 1);
}
