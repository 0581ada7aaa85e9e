//! The fleet: `cargo bench --bench fleet [-- ENFORCERS [DECISIONS]]`.
//!
//! Starts a `nats-server -js` on a free loopback port, ENFORCERS (default 10) release
//! `warden enforce` processes in observe mode, and publishes DECISIONS (default 200)
//! blocks one after the other, each as the analysis node does (a put to the decisions
//! bucket). For each decision and enforcer it measures the time from just before the
//! put to the arrival of that enforcer's report on `warden.enforcement.<host>`: decision
//! to applied (observe mode does everything but the `nft` call, a few milliseconds).
//! Reports p50, p90, p99 and max. Then the leader's takeover: two `warden run` nodes,
//! the leader killed with `kill -9` three times, the time until the other holds the
//! lease (read from the bucket every 20 ms). Then the resident memory of a release
//! `warden ship` that shipped 100,000 lines.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use warden::cluster::Cluster;
use warden::cluster::decisions::{Decision, Report};

#[path = "support/rss.rs"]
mod rss;

const BIN: &str = env!("CARGO_BIN_EXE_warden");

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rss_kb(pid: u32) -> u64 {
    rss::status_kb(&pid.to_string(), "VmRSS").unwrap_or(0)
}

/// `warden run` as analysis node `node` (no sources), its data in `tmp/<node>`.
fn node(url: &str, tmp: &std::path::Path, node: &str) -> Child {
    let config = tmp.join(format!("{node}.toml"));
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:{}\"\n[cluster]\nnats_url = \"{url}\"\nnode = \"{node}\"\n",
            tmp.join(node).display().to_string(),
            free_port()
        ),
    )
    .unwrap();
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the leader three times; prints how long the standby took to hold the lease.
fn takeover(rt: &tokio::runtime::Runtime, url: &str, tmp: &std::path::Path) {
    let cfg: warden::config::ClusterConfig = toml::from_str(&format!("nats_url = \"{url}\"")).unwrap();
    let bucket = rt.block_on(async {
        Cluster::connect(&cfg, "bench", Duration::from_secs(10)).await.unwrap().decisions().await.unwrap()
    });
    let holder = || rt.block_on(warden::cluster::lease::current(&bucket)).ok().flatten().map(|(h, _)| h);
    let wait_for = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while holder().as_deref() != Some(name) {
            assert!(Instant::now() < deadline, "{name} never took the lease");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let a = node(url, tmp, "a");
    wait_for("a");
    let mut nodes = [("a", a), ("b", node(url, tmp, "b"))];
    let mut times = Vec::new();
    for round in 0..3 {
        let (leader, standby) = if round % 2 == 0 { (0, 1) } else { (1, 0) };
        // The standby has read the lease at least once.
        std::thread::sleep(Duration::from_secs(3));
        nodes[leader].1.kill().unwrap();
        nodes[leader].1.wait().unwrap();
        let t0 = Instant::now();
        wait_for(nodes[standby].0);
        times.push(t0.elapsed().as_secs_f64());
        nodes[leader].1 = node(url, tmp, nodes[leader].0);
    }
    for (_, c) in &mut nodes {
        let _ = c.kill();
        let _ = c.wait();
    }
    let shown: Vec<String> = times.iter().map(|t| format!("{t:.1} s")).collect();
    println!("takeover: the standby held the lease {} after the leader's kill -9 (lease_secs = 6)", shown.join(", "));
}

fn main() {
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (enforcers, decisions) = (nums.first().copied().unwrap_or(10), nums.get(1).copied().unwrap_or(200));
    let tmp = std::env::temp_dir().join(format!("warden-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut procs = Killed(Vec::new());
    procs.0.push(
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(tmp.join("js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian package nats-server)"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..enforcers {
        let config = tmp.join(format!("e{i}.toml"));
        std::fs::write(
            &config,
            format!("[cluster]\nnats_url = \"{url}\"\n[enforce]\nhost = \"e{i}\"\nmode = \"observe\"\n"),
        )
        .unwrap();
        procs.0.push(
            Command::new(BIN)
                .args(["enforce", "--config"])
                .arg(&config)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let latencies = rt.block_on(async {
        let cfg: warden::config::ClusterConfig = toml::from_str(&format!("nats_url = \"{url}\"")).unwrap();
        let bucket = Cluster::connect(&cfg, "bench", Duration::from_secs(10)).await.unwrap().decisions().await.unwrap();
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let mut sub = client.subscribe("warden.enforcement.>").await.unwrap();
        client.flush().await.unwrap();
        let decision = |n: usize| {
            let now = chrono::Utc::now();
            Decision {
                target: std::net::IpAddr::from([198, 18, (n >> 8) as u8, n as u8]),
                expires_at: now + chrono::Duration::hours(1),
                incident: None,
                reason: "bench".into(),
                origin: "bench".into(),
                decided_at: now,
                fence: 0,
            }
        };
        // Every enforcer watching: a first decision reported by all.
        let mut all = Vec::new();
        for n in 0..=decisions {
            let d = decision(n);
            let target = d.target.to_string();
            let t0 = Instant::now();
            bucket.block(&d).await.unwrap();
            let mut seen: HashMap<String, Duration> = HashMap::new();
            while seen.len() < enforcers {
                let m = tokio::time::timeout(Duration::from_secs(60), sub.next()).await.expect("reports").unwrap();
                let r: Report = serde_json::from_slice(&m.payload).unwrap();
                if r.target == target {
                    seen.entry(r.host).or_insert_with(|| t0.elapsed());
                }
            }
            if n > 0 {
                all.extend(seen.into_values());
            }
        }
        all
    });
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    println!(
        "fleet: {enforcers} enforcers, {decisions} decisions: decision to report p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p(0.5),
        p(0.9),
        p(0.99),
        ms[ms.len() - 1]
    );
    takeover(&rt, &url, &tmp);
    // A shipper's memory: 100,000 auth lines shipped.
    let log = tmp.join("auth.log");
    let line = "Dec  2 01:50:01 web-1 sshd[1234]: Failed password for root from 203.0.113.77 port 4122 ssh2\n";
    std::fs::write(&log, line.repeat(100_000)).unwrap();
    let config = tmp.join("ship.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[cluster]\nnats_url = \"{url}\"\n[ship]\nhost = \"web-1\"\n[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n",
            tmp.join("ship-data").display().to_string(),
            log.display().to_string()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let ship = Command::new(BIN)
        .args(["ship", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = ship.id();
    procs.0.push(ship);
    // Shipped, near enough, when the JetStream store holds at least the file's bytes
    // (`du` of its directory, polled every 50 ms: the time is an upper bound).
    let checkpoint_done = || {
        let out = Command::new("du").arg("-sb").arg(tmp.join("js")).output().ok()?;
        let bytes: u64 = String::from_utf8_lossy(&out.stdout).split_whitespace().next()?.parse().ok()?;
        (bytes as usize > line.len() * 100_000).then_some(())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoint_done().is_none() {
        assert!(Instant::now() < deadline, "the shipper did not ship the file");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "ship: 100,000 lines in about {:.1} s, resident memory {:.1} MB",
        started.elapsed().as_secs_f64(),
        rss_kb(pid) as f64 / 1024.0
    );
    drop(procs);
    let _ = std::fs::remove_dir_all(&tmp);
}
