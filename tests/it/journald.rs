//! journald sources on real journal files, written by `systemd-journal-remote` from
//! journal export format and read by `journalctl`. Under CI (`CI` set) a missing
//! `systemd-journal-remote` is a failure, elsewhere the tests say SKIPPED.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{BIN, Daemon, eventually};

fn journal_remote(test: &str) -> Option<PathBuf> {
    let found = ["/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must run {test}: systemd-journal-remote is not installed");
        eprintln!("SKIPPED {test}: systemd-journal-remote is not installed");
    }
    found
}

/// One journal entry: seconds after `base`, identifier, pid, message.
type Entry<'a> = (i64, &'a str, u32, String);

/// Writes `entries` as the journal file `dir/name` (through journal export format).
fn write_journal(remote: &Path, dir: &Path, name: &str, base: chrono::DateTime<chrono::Utc>, entries: &[Entry]) {
    let mut export = String::new();
    for (secs, ident, pid, msg) in entries {
        let t = (base + chrono::Duration::seconds(*secs)).timestamp_micros();
        // One boot: the journal orders its entries by monotonic time, so it grows with
        // the realtime across files.
        let monotonic = (secs + 1) * 1_000_000;
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={monotonic}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=web1\nSYSLOG_IDENTIFIER={ident}\n_PID={pid}\n_COMM={ident}\n_SYSTEMD_UNIT={unit}.service\nPRIORITY=6\nMESSAGE={msg}\n\n",
            unit = if *ident == "sshd" { "ssh" } else { ident },
        ));
    }
    let src = dir.with_extension(format!("{name}.export"));
    std::fs::write(&src, export).unwrap();
    let out = Command::new(remote).arg(format!("--output={}", dir.join(name).display())).arg(&src).output().unwrap();
    assert!(out.status.success(), "systemd-journal-remote: {}", String::from_utf8_lossy(&out.stderr));
}

fn failures(ip: &str, from: i64, n: i64) -> Vec<Entry<'static>> {
    (0..n)
        .map(|i| {
            (from + i, "sshd", 2000 + i as u32, format!("Failed password for root from {ip} port {} ssh2", 40000 + i))
        })
        .collect()
}

fn source(dir: &Path) -> String {
    format!(
        "[[sources]]\nname = \"journal\"\nkind = \"journald\"\ndirectory = {:?}\nmatches = [\"_SYSTEMD_UNIT=ssh.service\"]\n",
        dir.display().to_string()
    )
}

fn lines(d: &Daemon) -> u64 {
    d.metric("warden_source_lines_total{source=\"journal\"}").unwrap_or(0)
}

/// A journal directory is followed; `kill -9` between two journal files loses and
/// repeats nothing (the cursor is the checkpoint): the attacker's five failures across
/// the restart are one brute force, and the source counts each entry once.
#[test]
fn a_journal_is_followed_and_its_cursor_survives_kill_9() {
    let Some(remote) = journal_remote("a_journal_is_followed_and_its_cursor_survives_kill_9") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut first = failures("203.0.113.31", 0, 3);
    first.push((5, "cron", 99, "(root) CMD (Failed password for root from 203.0.113.99 port 1 ssh2)".into()));
    write_journal(&remote, &dir, "a.journal", base, &first);
    let mut d = Daemon::start(tmp.path(), &source(&dir), "", None);
    eventually(30, "the first journal's ssh entries read", || (lines(&d) == 3).then_some(()));
    d.kill9();
    write_journal(&remote, &dir, "b.journal", base, &failures("203.0.113.31", 10, 2));
    d.spawn();
    let inc = eventually(30, "the brute force across the restart", || {
        d.incidents().into_iter().find(|i| i["entities"][0] == "203.0.113.31")
    });
    assert_eq!(inc["findings"][0]["rule"], "ssh_brute_force");
    assert_eq!(inc["findings"][0]["event_count"], 5, "{inc:#}");
    assert_eq!(inc["findings"][0]["host"], "web1", "the entry's _HOSTNAME is the event's host");
    // Entries written while Warden runs are followed too.
    write_journal(&remote, &dir, "c.journal", base, &failures("203.0.113.32", 20, 5));
    eventually(30, "the live entries", || d.incidents().into_iter().find(|i| i["entities"][0] == "203.0.113.32"));
    assert_eq!(lines(&d), 10, "every matching entry once (the cron entry does not match the unit)");
    // Every line this process read was taken by the sshd parser (how many depends on
    // whether the last checkpoint before the kill was on disk yet: re-read lines are
    // applied exactly once, as the durable count above shows).
    let read = d.metric("warden_lines_read_total{source=\"journal\"}");
    assert!(read.is_some_and(|n| n >= 7));
    assert_eq!(d.metric("warden_lines_parsed_total{source=\"journal\",parser=\"sshd\"}"), read);
    assert_eq!(d.incidents().len(), 2);
}

/// A journal vacuumed past the checkpointed cursor: said, counted, and reading resumes
/// at the oldest entry left.
#[test]
fn a_journal_vacuumed_past_the_cursor_is_said_and_read_from_its_oldest_entry() {
    let Some(remote) = journal_remote("a_journal_vacuumed_past_the_cursor_is_said_and_read_from_its_oldest_entry")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    write_journal(&remote, &dir, "old.journal", base, &failures("203.0.113.41", 0, 2));
    let mut d = Daemon::start(tmp.path(), &source(&dir), "", None);
    eventually(30, "the old journal read", || (lines(&d) == 2).then_some(()));
    assert_eq!(d.terminate(), Some(0));
    std::fs::remove_file(dir.join("old.journal")).unwrap();
    write_journal(&remote, &dir, "new.journal", base, &failures("203.0.113.42", 100, 5));
    d.spawn();
    eventually(30, "the new journal read from its oldest entry", || {
        d.incidents().into_iter().find(|i| i["entities"][0] == "203.0.113.42")
    });
    assert_eq!(d.metric("warden_source_gaps_total{source=\"journal\"}"), Some(1), "{}", d.stderr());
    assert_eq!(lines(&d), 7);
    assert!(d.stderr().contains("no longer holds the checkpointed entry"), "{}", d.stderr());
}

/// A missing journal directory stops `warden run` with a clear error; a corrupt journal
/// file beside good ones is said (journalctl's words, counted) and the rest is read.
#[test]
fn missing_and_corrupt_journals_are_clear_errors_never_a_panic() {
    let Some(remote) = journal_remote("missing_and_corrupt_journals_are_clear_errors_never_a_panic") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("missing.toml");
    let missing = tmp.path().join("no-such-journal");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:0\"\n{}",
            tmp.path().join("d1").display().to_string(),
            source(&missing)
        ),
    )
    .unwrap();
    let out = Command::new(BIN).arg("run").arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("journald source `journal`: journal directory {}: No such file", missing.display())),
        "{err}"
    );

    let dir = tmp.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    let noise: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.join("system.journal"), noise).unwrap();
    write_journal(
        &remote,
        &dir,
        "good.journal",
        chrono::Utc::now() - chrono::Duration::hours(1),
        &failures("203.0.113.51", 0, 5),
    );
    let d = Daemon::start(tmp.path(), &source(&dir), "", None);
    eventually(30, "the good journal read", || d.incidents().into_iter().find(|i| i["entities"][0] == "203.0.113.51"));
    eventually(30, "journalctl's complaint logged", || d.stderr().contains("corrupted").then_some(()));
    assert!(d.metric("warden_source_errors_total").unwrap_or(0) >= 1);
}

/// A host that logs only to the journal (no `/var/log/auth.log`, no `/var/log/secure`):
/// `warden run` with no configuration at all reads the system journal and detects an SSH
/// brute force. The host is simulated in a mount namespace (this test's `/var/log` is a
/// folder holding only `journal/<machine-id>/system.journal`) and a network namespace
/// (the default admin address, 127.0.0.1:8720, is this test's own). Needs root and the
/// host's machine id.
#[test]
fn with_no_configuration_a_journald_only_host_is_watched() {
    const TEST: &str = "with_no_configuration_a_journald_only_host_is_watched";
    let Some(remote) = journal_remote(TEST) else { return };
    let skip = |why: &str| {
        assert!(std::env::var_os("CI").is_none(), "CI must run {TEST}: {why}");
        eprintln!("SKIPPED {TEST}: {why}");
    };
    if !rustix::process::geteuid().is_root() {
        return skip("needs root (mount and network namespaces)");
    }
    let Some(machine) =
        std::fs::read_to_string("/etc/machine-id").ok().map(|m| m.trim().to_string()).filter(|m| m.len() == 32)
    else {
        return skip("no /etc/machine-id (journalctl reads the local machine's journal only)");
    };
    let tmp = tempfile::tempdir().unwrap();
    let varlog = tmp.path().join("varlog");
    let journal = varlog.join("journal").join(&machine);
    std::fs::create_dir_all(&journal).unwrap();
    write_journal(
        &remote,
        &journal,
        "system.journal",
        chrono::Utc::now() - chrono::Duration::minutes(30),
        &failures("203.0.113.61", 0, 5),
    );
    let data_dir = tmp.path().join("data");
    let stderr_log = tmp.path().join("warden.stderr");
    std::thread::spawn(move || {
        // SAFETY: only this thread (and the processes it starts) leaves the host's mount
        // and network namespaces; nothing it shares with other threads depends on them.
        unsafe {
            rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS | rustix::thread::UnshareFlags::NEWNET)
        }
        .expect("unshare");
        let sh = |argv: &[&str]| {
            let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        sh(&["mount", "--make-rprivate", "/"]);
        sh(&["mount", "--bind", &varlog.display().to_string(), "/var/log"]);
        if Path::new("/run/log").is_dir() {
            sh(&["mount", "-t", "tmpfs", "tmpfs", "/run/log"]);
        }
        sh(&["ip", "link", "set", "lo", "up"]);
        let log = std::fs::File::create(&stderr_log).unwrap();
        let child = Command::new(BIN)
            .arg("run")
            .arg("--data-dir")
            .arg(&data_dir)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let token = eventually(30, "admin token file", || {
            std::fs::read_to_string(data_dir.join("admin.token")).ok().filter(|t| !t.is_empty())
        });
        let d = Daemon {
            child: Some(child),
            config: PathBuf::new(),
            data_dir,
            addr: "127.0.0.1:8720".parse().unwrap(),
            token,
            actors: None,
            stderr_log,
            wrapper: Vec::new(),
            tls: None,
        };
        eventually(30, "the admin API", || d.get("/v1/health").ok().filter(|r| r.status == 200));
        let inc = eventually(30, "the brute force read from the system journal, and its block", || {
            d.incidents()
                .into_iter()
                .find(|i| i["entities"][0] == "203.0.113.61" && i["actions"].as_array().is_some_and(|a| !a.is_empty()))
        });
        assert_eq!(inc["type"], "brute_force");
        assert_eq!(inc["actions"][0]["status"], "dry_run", "the default is observe: {inc:#}");
        assert!(d.stderr().contains("following the journal"), "{}", d.stderr());
    })
    .join()
    .unwrap();
}
