//! Live latency: `cargo bench --bench latency [-- TRIALS] [quiet|load]`.
//!
//! Starts the release `warden run` on a temporary auth log, then, for each trial,
//! appends five failed logins from a new address and measures the time from the append
//! of the fifth line to the moment the incident was stored (the incident's own
//! `created_at`, set by incident response when it commits the incident — so polling the
//! API does not add to the figure). Reports median, p90, p99 and max.
//!
//! Twice by default: on a quiet daemon, and under load — a second source, an nginx
//! access log, written at 100,000 benign lines a second by another thread for the
//! whole run (its achieved rate and how many of its lines Warden read are printed).
//! The daemon's resident memory is printed for each: idle (started, two sources open,
//! nothing read yet) and its peak by the end.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/rss.rs"]
mod rss;

/// Lines a second the background source is written at.
const LOAD_LINES_PER_SEC: u64 = 100_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(200);
    let quiet = !args.iter().any(|a| a == "load");
    let load = !args.iter().any(|a| a == "quiet");
    if quiet {
        run(trials, false);
    }
    if load {
        run(trials, true);
    }
}

/// Appends benign access-log lines at [`LOAD_LINES_PER_SEC`] until `stop`, in slices of
/// a hundredth of a second, each slice's time taken from the clock.
fn background(path: std::path::PathBuf, stop: Arc<AtomicBool>, written: Arc<AtomicU64>) {
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    let per_slice = LOAD_LINES_PER_SEC / 100;
    let start = Instant::now();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let ts = chrono::Local::now().format("%d/%b/%Y:%H:%M:%S %z");
        let mut chunk = String::with_capacity(per_slice as usize * 140);
        for _ in 0..per_slice {
            n += 1;
            chunk.push_str(&format!(
                "10.20.{}.{} - - [{ts}] \"GET /static/app.{}.js HTTP/1.1\" 200 {} \"https://shop.example/\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n",
                n / 250 % 250,
                1 + n % 250,
                n % 97,
                512 + n % 4096
            ));
        }
        file.write_all(chunk.as_bytes()).unwrap();
        written.fetch_add(per_slice, Ordering::Relaxed);
        // On schedule: the next slice when its time comes, not 10 ms after this one.
        let due = start + Duration::from_millis(10 * written.load(Ordering::Relaxed) / per_slice);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// One series of trials, with or without the background source.
fn run(trials: usize, load: bool) {
    let tmp = std::env::temp_dir().join(format!("warden-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let log = tmp.join("auth.log");
    std::fs::write(&log, "").unwrap();
    let web = tmp.join("access.log");
    std::fs::write(&web, "").unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = tmp.join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:{port}\"\n[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n\
             [[sources]]\nname = \"web\"\nkind = \"file\"\npath = {:?}\nformat = \"web\"\n",
            tmp.join("data").display().to_string(),
            log.display().to_string(),
            web.display().to_string()
        ),
    )
    .unwrap();
    let mut child = daemon::spawn(&config);
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
    // Idle: started, its sources open, nothing to read yet.
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss::status_kb(&child.id().to_string(), "VmRSS");
    let (stop, written) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let writer = load.then(|| {
        let (web, stop, written) = (web.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || background(web, stop, written))
    });
    // The load runs a second before the first trial.
    std::thread::sleep(Duration::from_secs(if load { 1 } else { 0 }));
    let (loaded_at, written_before) = (Instant::now(), written.load(Ordering::Relaxed));
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
    let elapsed = loaded_at.elapsed().as_secs_f64();
    let written_then = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    if let Some(w) = writer {
        w.join().unwrap();
    }
    let read = daemon::metric(addr, &token, "warden_source_lines_total{source=\"web\"}");
    let peak = rss::status_kb(&child.id().to_string(), "VmHWM");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&tmp);
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    let what = if load {
        format!(
            "under load ({:.0} lines/s appended to a second source during the trials; {} of its {} lines read by the end)",
            (written_then - written_before) as f64 / elapsed.max(1e-9),
            read.map_or("?".to_string(), |r| r.to_string()),
            written.load(Ordering::Relaxed)
        )
    } else {
        "quiet".to_string()
    };
    let mb = |kb: Option<u64>| kb.map_or("?".to_string(), |k| format!("{:.1} MB", k as f64 / 1024.0));
    println!("resident memory, {}: idle {}, peak {}", if load { "under load" } else { "quiet" }, mb(idle), mb(peak));
    println!(
        "latency from append to stored incident over {trials} trials, {what}: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        q(0.5),
        q(0.9),
        q(0.99),
        samples[samples.len() - 1]
    );
}
