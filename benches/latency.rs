//! Live latency: `cargo bench --bench latency [-- TRIALS]`.
//!
//! Starts the release `warden run` on a temporary log file, then, for each trial,
//! appends five failed logins from a new address and measures the time from the append
//! of the fifth line to the moment the incident was stored (the incident's own
//! `created_at`, set by incident response when it commits the incident — so polling the
//! API does not add to the figure). Reports median, p90, p99 and max.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let trials: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let tmp = std::env::temp_dir().join(format!("warden-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let log = tmp.join("auth.log");
    std::fs::write(&log, "").unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = tmp.join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:{port}\"\n[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n",
            tmp.join("data").display().to_string(),
            log.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let token_path = tmp.join("data/admin.token");
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = loop {
        if let Ok(t) = std::fs::read_to_string(&token_path)
            && !t.is_empty()
            && warden::admin::client::request(addr, "GET", "/v1/health", Some(&t), None).is_ok_and(|r| r.status == 200)
        {
            break t;
        }
        assert!(Instant::now() < deadline, "warden did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut samples = Vec::with_capacity(trials);
    for n in 0..trials {
        let ip = format!("198.18.{}.{}", n / 250, 1 + n % 250);
        let now = chrono::Local::now();
        let ts = now.format("%b %e %H:%M:%S");
        let head: String = (0..4)
            .map(|i| {
                format!("{ts} bench sshd[{}]: Failed password for root from {ip} port {} ssh2\n", 100 + i, 40000 + i)
            })
            .collect();
        file.write_all(head.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let last = format!("{ts} bench sshd[104]: Failed password for root from {ip} port 40004 ssh2\n");
        let written = chrono::Utc::now();
        file.write_all(last.as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let created = loop {
            let r = warden::admin::client::request(addr, "GET", "/v1/incidents", Some(&token), None).unwrap();
            let list: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
            if let Some(i) = list.iter().find(|i| i["entities"][0] == ip.as_str()) {
                break chrono::DateTime::parse_from_rfc3339(i["created_at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&chrono::Utc);
            }
            assert!(Instant::now() < deadline, "no incident for {ip}");
            std::thread::sleep(Duration::from_millis(2));
        };
        samples.push((created - written).num_microseconds().unwrap() as f64 / 1000.0);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&tmp);
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "latency from append to stored incident over {trials} trials: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        q(0.5),
        q(0.9),
        q(0.99),
        samples[samples.len() - 1]
    );
}
