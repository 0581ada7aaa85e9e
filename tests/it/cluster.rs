//! The fleet for real: a `nats-server` with JetStream on a free loopback port (its store
//! in a temporary directory), `warden ship` on a "host", `warden run` with a NATS source
//! as the analysis node, each killed with `kill -9` at the worst moments. Under CI (`CI`
//! set) a missing `nats-server` is a failure, elsewhere the tests say SKIPPED.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// A `nats-server -js` on loopback; killed when dropped.
pub struct Nats {
    child: Child,
    pub url: String,
    pub port: u16,
}

impl Nats {
    /// `None` (the test says SKIPPED, or fails under CI) without `nats-server`.
    pub fn start(test: &str, dir: &Path) -> Option<Nats> {
        Nats::start_with(test, dir, &[], &[])
    }

    /// With more arguments (a configuration, TLS, …) and environment. The server picks
    /// its own free port and says which in its log (a port chosen here could be taken
    /// by a parallel test's server before this one binds it).
    pub fn start_with(test: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Option<Nats> {
        if Command::new("nats-server").arg("--version").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "CI must run {test}: `nats-server` is not installed");
            eprintln!("SKIPPED {test}: `nats-server` is not installed");
            return None;
        }
        let log = dir.join("nats.log");
        let child = Command::new("nats-server")
            .args(args)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.join("jetstream"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start nats-server");
        let port: u16 = eventually(20, "nats-server listening", || {
            let text = std::fs::read_to_string(&log).ok()?;
            let at = text.find("Listening for client connections on 127.0.0.1:")?;
            text[at..].split(':').nth(1)?.split_whitespace().next()?.parse().ok()
        });
        Some(Nats { child, url: format!("nats://127.0.0.1:{port}"), port })
    }

    pub fn cluster_toml(&self, node: &str) -> String {
        format!("[cluster]\nnats_url = \"{}\"\nnode = \"{node}\"\n", self.url)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `warden ship` process for one host with one auth file; killed when dropped.
pub struct Shipper {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
}

impl Shipper {
    pub fn configure(dir: &Path, nats: &Nats, host: &str, file: &Path) -> Shipper {
        Shipper::configure_with(dir, nats, host, file, "")
    }

    fn configure_with(dir: &Path, nats: &Nats, host: &str, file: &Path, extra: &str) -> Shipper {
        let config = dir.join("ship.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n[ingest]\npoll_interval_ms = 100\n{}[ship]\nhost = \"{host}\"\n[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n{extra}",
                dir.join("ship-data").display().to_string(),
                nats.cluster_toml(host),
                file.display().to_string()
            ),
        )
        .unwrap();
        Shipper { child: None, config, log: dir.join("ship.stderr") }
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(BIN)
            .arg("ship")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start warden ship");
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Waits for a process to end by itself (a `[testing] crash_at` abort).
fn crashed(child: &mut Option<Child>, what: &str) {
    let c = child.as_mut().expect("running");
    eventually(60, what, || c.try_wait().unwrap().map(|_| ()));
    *child = None;
}

/// Rewrites a configuration without its `[testing] crash_at` line.
fn without_crash(config: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("crash_at")).collect();
    std::fs::write(config, kept.join("\n")).unwrap();
}

impl Drop for Shipper {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.stderr());
        }
        self.kill9();
    }
}

/// The analysis node: `warden run` reading every host's lines from the stream.
fn central(dir: &Path, nats: &Nats) -> Daemon {
    central_with(dir, nats, "")
}

pub fn central_with(dir: &Path, nats: &Nats, extra: &str) -> Daemon {
    analysis_node(dir, nats, "central", extra)
}

/// An analysis node named `node` (its data in `dir/<node>`), reading shipped logs.
pub fn analysis_node(dir: &Path, nats: &Nats, node: &str, extra: &str) -> Daemon {
    let dir = dir.join(node);
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = format!("{}{extra}", nats.cluster_toml(node));
    Daemon::start(&dir, "[[sources]]\nname = \"fleet\"\nkind = \"nats\"\n", &cluster, None)
}

/// The brute-force findings of the analysis node, per attacker: (host, event count).
pub fn brute_force(d: &Daemon, ip: &str) -> Vec<(String, u64)> {
    d.incidents()
        .iter()
        .filter(|i| i["entities"].as_array().is_some_and(|e| e.iter().any(|x| x == ip)))
        .flat_map(|i| i["findings"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["rule"] == "ssh_brute_force" && f["src_ip"] == ip)
        .map(|f| (f["host"].as_str().unwrap_or("").to_string(), f["event_count"].as_u64().unwrap_or(0)))
        .collect()
}

/// Five failed logins from `ip` (the rule's threshold: one lost line and there is no
/// finding; one line twice and it counts six).
pub fn attack(ip: &str, from: u32) -> String {
    (from..from + 5).map(|s| failed(ip, "root", s)).collect()
}

/// Lines a host ships are analysed on the central node under the shipping host's name
/// (the lines claim `testhost`).
#[test]
fn shipped_lines_are_analysed_under_the_shipping_host() {
    const TEST: &str = "shipped_lines_are_analysed_under_the_shipping_host";
    let tmp = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(TEST, tmp.path()) else { return };
    let log = tmp.path().join("auth.log");
    append(&log, &attack("203.0.113.41", 0));
    let mut ship = Shipper::configure(tmp.path(), &nats, "web-1", &log);
    ship.spawn();
    let central = central(tmp.path(), &nats);
    let found = eventually(30, "the shipped brute force found", || {
        Some(brute_force(&central, "203.0.113.41")).filter(|f| !f.is_empty())
    });
    assert_eq!(found, [("web-1".to_string(), 5)], "one finding, under the shipping host, every line once");
}

/// `kill -9` of the analysis node while the host keeps logging, and of the shipper
/// while lines keep coming: after both restart, every attack is found exactly once —
/// nothing skipped, nothing applied twice, no incident filed twice.
#[test]
fn kill9_of_shipper_and_central_loses_and_repeats_nothing() {
    const TEST: &str = "kill9_of_shipper_and_central_loses_and_repeats_nothing";
    let tmp = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(TEST, tmp.path()) else { return };
    let log = tmp.path().join("auth.log");
    let mut ship = Shipper::configure(tmp.path(), &nats, "bastion", &log);
    ship.spawn();
    let mut central = central(tmp.path(), &nats);
    append(&log, &attack("203.0.113.51", 0));
    eventually(30, "the first attack found", || Some(()).filter(|_| !brute_force(&central, "203.0.113.51").is_empty()));

    // The analysis node dies; the host keeps logging and shipping.
    central.kill9();
    append(&log, &attack("203.0.113.52", 10));
    // The shipper dies too, with lines still coming; they wait in the file.
    std::thread::sleep(Duration::from_millis(300));
    ship.kill9();
    append(&log, &attack("203.0.113.53", 20));
    ship.spawn();
    central.spawn();
    for ip in ["203.0.113.52", "203.0.113.53"] {
        eventually(60, &format!("the attack from {ip} found after the restarts"), || {
            Some(()).filter(|_| !brute_force(&central, ip).is_empty())
        });
    }
    // Both kill the node at once again, mid-stream, and come back.
    append(&log, &attack("203.0.113.54", 30));
    central.kill9();
    ship.kill9();
    ship.spawn();
    central.spawn();
    eventually(60, "the last attack found", || Some(()).filter(|_| !brute_force(&central, "203.0.113.54").is_empty()));
    for ip in ["203.0.113.51", "203.0.113.52", "203.0.113.53", "203.0.113.54"] {
        assert_eq!(brute_force(&central, ip), [("bastion".to_string(), 5)], "{ip}: one finding of five lines");
    }
    let incidents = central.incidents();
    assert_eq!(incidents.len(), 4, "one incident per attacker: {incidents:#?}");
}

/// The analysis node dies after a shipped batch's effects are on disk and before the
/// batch is acknowledged: JetStream delivers it again after the restart, and it is
/// recognised as applied — one finding, every line counted once.
#[test]
fn a_batch_applied_but_not_acknowledged_is_applied_once() {
    const TEST: &str = "a_batch_applied_but_not_acknowledged_is_applied_once";
    let tmp = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(TEST, tmp.path()) else { return };
    let mut central = central_with(tmp.path(), &nats, "[testing]\ncrash_at = \"before_ack\"\n");
    let log = tmp.path().join("auth.log");
    append(&log, &attack("203.0.113.61", 0));
    let mut ship = Shipper::configure(tmp.path(), &nats, "mail", &log);
    ship.spawn();
    crashed(&mut central.child, "the analysis node crashing before its acknowledgement");
    without_crash(&central.config);
    central.spawn();
    // Delivered again once the server's acknowledgement wait ran out.
    eventually(60, "the batch delivered again and recognised", || {
        central.stderr().contains("shipped batch already applied").then_some(())
    });
    append(&log, &attack("203.0.113.62", 10));
    eventually(30, "the next attack found", || Some(()).filter(|_| !brute_force(&central, "203.0.113.62").is_empty()));
    for ip in ["203.0.113.61", "203.0.113.62"] {
        assert_eq!(brute_force(&central, ip), [("mail".to_string(), 5)], "{ip}");
    }
    assert_eq!(central.incidents().len(), 2);
}

/// The shipper dies after JetStream took a batch and before its own checkpoint moved:
/// on restart it resumes after what the stream holds, and ships nothing twice.
#[test]
fn a_shipper_dead_after_publishing_resumes_after_the_stream() {
    const TEST: &str = "a_shipper_dead_after_publishing_resumes_after_the_stream";
    let tmp = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(TEST, tmp.path()) else { return };
    let central = central(tmp.path(), &nats);
    let log = tmp.path().join("auth.log");
    append(&log, &attack("203.0.113.71", 0));
    let mut ship =
        Shipper::configure_with(tmp.path(), &nats, "db-1", &log, "[testing]\ncrash_at = \"after_publish\"\n");
    ship.spawn();
    crashed(&mut ship.child, "the shipper crashing after JetStream's acknowledgement");
    without_crash(&ship.config);
    ship.spawn();
    append(&log, &attack("203.0.113.72", 10));
    for ip in ["203.0.113.71", "203.0.113.72"] {
        eventually(30, &format!("the attack from {ip} found"), || {
            Some(()).filter(|_| !brute_force(&central, ip).is_empty())
        });
    }
    assert!(ship.stderr().contains("the stream is ahead of this host's checkpoint"), "{}", ship.stderr());
    for ip in ["203.0.113.71", "203.0.113.72"] {
        assert_eq!(brute_force(&central, ip), [("db-1".to_string(), 5)], "{ip}");
    }
}
