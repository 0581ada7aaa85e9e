//! The soak run: a daemon under realistic mixed traffic (two tailed files and a syslog
//! TCP source at 2,000 lines/s together), its files rotated, itself killed with SIGKILL
//! and restarted, a flood burst, `/metrics` scraped every 10 s — and at the end every
//! line of the files counted exactly once, one incident per planted attacker and no
//! duplicate, the audit ledger intact, open file descriptors flat; RSS and descriptor
//! slopes printed.
//!
//! CI runs two minutes (the default). The long run: `WARDEN_SOAK_SECS=3600 cargo test
//! --release --test it soak -- --nocapture` (rotation every 5 min, a kill every 10).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

/// The schedule of a run of `secs` seconds.
struct Plan {
    secs: u64,
    rotate_every: u64,
    kill_every: u64,
    flood_at: u64,
    flood_lines: u64,
    attackers: u64,
}

impl Plan {
    fn for_secs(secs: u64) -> Plan {
        let long = secs >= 1800;
        Plan {
            secs,
            rotate_every: if long { 300 } else { (secs / 4).max(10) },
            kill_every: if long { 600 } else { (secs * 2 / 5).max(15) },
            flood_at: secs * 2 / 5 + 3,
            flood_lines: if long { 200_000 } else { 20_000 },
            attackers: (secs / 4).clamp(10, 300),
        }
    }
}

/// Lines written per source, and what the writer is doing.
#[derive(Default)]
struct Written {
    auth: AtomicU64,
    web: AtomicU64,
    syslog_sent: AtomicU64,
    stop: AtomicBool,
}

fn stamp() -> String {
    chrono::Local::now().format("%b %e %H:%M:%S").to_string()
}

fn attacker(i: u64) -> String {
    format!("203.0.{}.{}", 113 + i / 250, 1 + i % 250)
}

fn append_lines(path: &Path, text: &str) {
    std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

/// Writes the traffic: 800 auth + 800 web lines a second into the files, 400 a second
/// to syslog; the planted attackers (8 failures each, own user names) spread over the
/// run; rotations; the flood burst.
fn writer(dir: PathBuf, syslog: std::net::SocketAddr, plan: Arc<Plan>, w: Arc<Written>) {
    let (auth, web) = (dir.join("auth.log"), dir.join("web.log"));
    let start = Instant::now();
    let mut tick = 0u64;
    let mut last_rotation = 0;
    let mut flooded = false;
    let mut planted = 0u64;
    let mut attack_until = 0u64;
    let mut conn: Option<std::net::TcpStream> = None;
    // Benign lines emitted per stream; each iteration catches up with the rate.
    let (mut e_auth, mut e_web, mut e_sys) = (0u64, 0u64, 0u64);
    while !w.stop.load(Ordering::Relaxed) {
        let elapsed = start.elapsed().as_secs();
        let ms = start.elapsed().as_millis() as u64;
        let due = |rate: u64, emitted: u64| (ms * rate / 1000).saturating_sub(emitted);
        let (n_auth, n_web, n_sys) = (due(800, e_auth), due(800, e_web), due(400, e_sys));
        let mut a = String::new();
        for k in 0..n_auth {
            let n = e_auth + k;
            a += &match n % 3 {
                0 => format!(
                    "{} bastion sshd[{}]: Accepted publickey for deploy from 10.0.{}.{} port {} ssh2\n",
                    stamp(),
                    2000 + n % 5000,
                    n % 200,
                    n % 250,
                    1024 + n % 60000
                ),
                1 => format!(
                    "{} bastion CRON[{}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n",
                    stamp(),
                    3000 + n % 5000
                ),
                _ => format!(
                    "{} bastion sshd[{}]: Disconnected from user deploy 10.0.{}.{} port {}\n",
                    stamp(),
                    2000 + n % 5000,
                    n % 200,
                    n % 250,
                    1024 + n % 60000
                ),
            };
        }
        // One attacker every (duration / attackers) seconds: 8 failures over 8 ticks.
        let due = (elapsed * plan.attackers / plan.secs.max(1) + 1).min(plan.attackers);
        if planted < due && tick >= attack_until {
            planted += 1;
            attack_until = tick + 8;
        }
        if tick < attack_until {
            let i = planted - 1;
            a += &format!(
                "{} bastion sshd[{}]: Failed password for invalid user soak{i}x{} from {} port {} ssh2\n",
                stamp(),
                9000 + i,
                attack_until - tick,
                attacker(i),
                40000 + attack_until - tick
            );
        }
        e_auth += n_auth;
        append_lines(&auth, &a);
        w.auth.fetch_add(a.lines().count() as u64, Ordering::Relaxed);
        let mut web_text = String::new();
        let burst = if !flooded && elapsed >= plan.flood_at {
            flooded = true;
            plan.flood_lines
        } else {
            n_web
        };
        e_web += n_web;
        for k in 0..burst {
            web_text += &format!(
                "10.1.{}.{} - - [{}] \"GET /page/{} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0\"\n",
                k % 200,
                k % 250,
                chrono::Local::now().format("%d/%b/%Y:%H:%M:%S %z"),
                k % 1000,
                200 + k % 5000
            );
        }
        append_lines(&web, &web_text);
        w.web.fetch_add(burst, Ordering::Relaxed);
        // Syslog over one TCP connection, reconnecting after a kill (lines due while it
        // is down are skipped, not counted as sent).
        e_sys += n_sys;
        if conn.is_none() {
            conn = std::net::TcpStream::connect_timeout(&syslog, Duration::from_millis(200)).ok();
        }
        if let Some(c) = conn.as_mut() {
            let mut s = String::new();
            for k in 0..n_sys {
                s += &format!(
                    "<38>{} web-1 sshd[{}]: Accepted publickey for app from 10.2.0.{} port {} ssh2\n",
                    stamp(),
                    100 + k % 100,
                    k % 250,
                    5000 + tick % 1000
                );
            }
            match c.write_all(s.as_bytes()) {
                Ok(()) => {
                    w.syslog_sent.fetch_add(n_sys, Ordering::Relaxed);
                }
                Err(_) => conn = None,
            }
        }
        if elapsed >= last_rotation + plan.rotate_every {
            last_rotation = elapsed;
            for f in [&auth, &web] {
                let rotated = f.with_extension("log.1");
                let _ = std::fs::remove_file(&rotated);
                std::fs::rename(f, &rotated).unwrap();
                std::fs::File::create(f).unwrap();
            }
        }
        tick += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The daemon's resident memory (kB) and open descriptors, from /proc.
fn sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

/// Least-squares slope of (seconds, value) per hour.
fn slope_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let cov: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var * 3600.0 }
}

#[test]
fn soak() {
    let secs: u64 = std::env::var("WARDEN_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let plan = Arc::new(Plan::for_secs(secs));
    let tmp = tempfile::tempdir().unwrap();
    let syslog: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let file = |name: &str| {
        format!(
            "[[sources]]\nname = \"{name}\"\nkind = \"file\"\npath = {:?}\n",
            tmp.path().join(format!("{name}.log")).display().to_string()
        )
    };
    let sources = format!(
        "{}{}[[sources]]\nname = \"syslog\"\nkind = \"syslog-tcp\"\nlisten = \"{syslog}\"\n",
        file("auth"),
        file("web")
    );
    for f in ["auth.log", "web.log"] {
        std::fs::File::create(tmp.path().join(f)).unwrap();
    }
    // Its own copy of the definitions: restarts read them again, whatever happens to the
    // working tree meanwhile.
    let actors = crate::support::copy_actors(tmp.path());
    let mut d = Daemon::start(tmp.path(), &sources, "[storage]\nmin_free_mb = 1\n", Some(actors));
    let w = Arc::new(Written::default());
    let started = Instant::now();
    let writer_thread = {
        let (dir, plan, w) = (tmp.path().to_path_buf(), plan.clone(), w.clone());
        std::thread::spawn(move || writer(dir, syslog, plan, w))
    };
    let (mut rss, mut fds) = (Vec::new(), Vec::new());
    let mut kills = 0;
    // How long each restart took to answer (recovery of sled's log after `kill -9`).
    let mut restart_secs = Vec::new();
    let mut last_kill = 0;
    let mut scrapes_failed = 0;
    // Syslog has no checkpoint: its lines are counted per process, summed over lifetimes.
    let (mut syslog_before, mut syslog_now) = (0u64, 0u64);
    let syslog_read = |d: &Daemon| d.metric("warden_lines_read_total{source=\"syslog\"}");
    while started.elapsed().as_secs() < secs {
        std::thread::sleep(Duration::from_secs(10));
        let t = started.elapsed().as_secs_f64();
        if !d.get("/metrics").is_ok_and(|r| r.status == 200) {
            scrapes_failed += 1;
        }
        syslog_now = syslog_read(&d).unwrap_or(syslog_now);
        if let Some((r, f)) = d.child.as_ref().and_then(|c| sample(c.id())) {
            rss.push((t, r as f64 / 1024.0));
            fds.push((t, f as f64));
        }
        let now = started.elapsed().as_secs();
        if now >= last_kill + plan.kill_every && now + 20 < secs {
            last_kill = now;
            d.kill9();
            syslog_before += std::mem::take(&mut syslog_now);
            let restarted = Instant::now();
            d.spawn_within(180);
            restart_secs.push(restarted.elapsed().as_secs_f64());
            kills += 1;
        }
    }
    w.stop.store(true, Ordering::Relaxed);
    writer_thread.join().unwrap();
    let (auth, web, sent) =
        (w.auth.load(Ordering::Relaxed), w.web.load(Ordering::Relaxed), w.syslog_sent.load(Ordering::Relaxed));
    // Every line of the files counted once: the durable per-source totals.
    let counted = |d: &Daemon, s: &str| d.metric(&format!("warden_source_lines_total{{source=\"{s}\"}}"));
    eventually(300, "every written line counted", || {
        (counted(&d, "auth") == Some(auth) && counted(&d, "web") == Some(web)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let syslog_counted = syslog_before + syslog_read(&d).unwrap_or(syslog_now);
    // One incident per planted attacker, none twice.
    let planted: Vec<String> = (0..plan.attackers).map(attacker).collect();
    let incidents = eventually(120, "an incident for every attacker", || {
        let all = d.incidents();
        planted.iter().all(|ip| incident_for(&all, ip).is_some()).then_some(all)
    });
    for ip in &planted {
        let n = incidents
            .iter()
            .filter(|i| i["entities"].as_array().is_some_and(|e| e.iter().any(|x| x == ip.as_str())))
            .count();
        assert_eq!(n, 1, "{ip}: {n} incidents");
    }
    let verify = d.cli(&["audit", "verify"]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("audit ledger OK"), "{verify:?}");
    let (rss_max, fds_min, fds_max) = (
        rss.iter().map(|p| p.1).fold(0.0, f64::max),
        fds.iter().map(|p| p.1).fold(f64::MAX, f64::min),
        fds.iter().map(|p| p.1).fold(0.0, f64::max),
    );
    println!(
        "soak {secs} s: {auth} auth + {web} web lines written and counted, syslog at least {syslog_counted} of {sent} \
         sent received (lines in flight at a kill are lost: syslog has no acknowledgement); {} attackers, {} incidents, {kills} kills, rotation every {} s, flood of {} lines, {scrapes_failed} \
         scrapes unanswered (restarts); RSS max {rss_max:.0} MB, slope {:+.1} MB/h; fds {fds_min}–{fds_max}, slope \
         {:+.1}/h",
        plan.attackers,
        incidents.len(),
        plan.rotate_every,
        plan.flood_lines,
        slope_per_hour(&rss),
        slope_per_hour(&fds)
    );
    println!("soak RSS over time (s, MB): {:?}", rss.iter().map(|p| (p.0 as u64, p.1 as u64)).collect::<Vec<_>>());
    println!("soak restarts after kill -9, seconds to answer: {restart_secs:.1?}");
    assert!(syslog_counted <= sent, "more syslog lines counted than sent: duplicates");
    assert!(fds_max - fds_min <= 24.0, "open descriptors grew: {fds_min} → {fds_max}");
    assert!(rss_max < 1024.0, "RSS reached {rss_max} MB");
    assert_eq!(d.terminate(), Some(0));
}
