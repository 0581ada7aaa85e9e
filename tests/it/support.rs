//! Helpers shared by the integration tests: a real `warden run` process on loopback
//! with temporary directories, an admin client, and polling with a deadline.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warden::admin::client::{self, Response};

pub const BIN: &str = env!("CARGO_BIN_EXE_warden");

/// Polls `f` until it returns `Some`, or panics with `what` after `secs`.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shipped actors folder.
pub fn actors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("actors")
}

/// Copies the shipped actors folder so a test can change a definition.
pub fn copy_actors(to: &Path) -> PathBuf {
    let dst = to.join("actors");
    for entry in walk(&actors_dir()) {
        let rel = entry.strip_prefix(actors_dir()).unwrap();
        let target = dst.join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
    dst
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// A syslog auth.log line with a fixed, recent timestamp.
pub fn auth_line(second: u32, msg: &str) -> String {
    let now = chrono::Local::now();
    let t = now - chrono::Duration::seconds(3600 - second as i64);
    format!("{} testhost sshd[{}]: {msg}\n", t.format("%b %e %H:%M:%S"), 1000 + second)
}

pub fn failed(ip: &str, user: &str, second: u32) -> String {
    auth_line(second, &format!("Failed password for {user} from {ip} port {} ssh2", 40000 + second))
}

/// A `warden run` process; killed when dropped.
pub struct Daemon {
    pub child: Option<Child>,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    pub token: String,
    pub actors: Option<PathBuf>,
    pub stderr_log: PathBuf,
    /// A command the daemon runs under (`warden run …` is appended to it).
    pub wrapper: Vec<String>,
    /// How to speak TLS to its admin API, when it serves TLS.
    pub tls: Option<client::ClientTls>,
}

impl Daemon {
    /// Writes a config with `sources_toml` and `extra_toml` and starts the daemon.
    pub fn start(dir: &Path, sources_toml: &str, extra_toml: &str, actors: Option<PathBuf>) -> Daemon {
        let mut d = Daemon::configured(dir, sources_toml, extra_toml);
        d.actors = actors;
        d.spawn();
        d
    }

    /// Like [`Daemon::start`], under `wrapper` (e.g. `unshare` with a mount).
    pub fn start_wrapped(dir: &Path, sources_toml: &str, wrapper: Vec<String>) -> Daemon {
        let mut d = Daemon::configured(dir, sources_toml, "");
        d.wrapper = wrapper;
        d.spawn();
        d
    }

    /// Like [`Daemon::start`] with more `[admin]` settings (TLS), spoken to with `tls`.
    pub fn start_admin(dir: &Path, admin_toml: &str, tls: Option<client::ClientTls>) -> Daemon {
        let mut d = Daemon::configured_admin(dir, "", "", admin_toml);
        d.tls = tls;
        d.spawn();
        d
    }

    /// Writes a config with `sources_toml` and `extra_toml`; does not start the daemon.
    fn configured(dir: &Path, sources_toml: &str, extra_toml: &str) -> Daemon {
        Daemon::configured_admin(dir, sources_toml, extra_toml, "")
    }

    fn configured_admin(dir: &Path, sources_toml: &str, extra_toml: &str, admin_toml: &str) -> Daemon {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let data_dir = dir.join("data");
        let config = dir.join("warden.toml");
        std::fs::write(
            &config,
            format!("data_dir = {:?}\n[admin]\nlisten = \"{addr}\"\nmax_body_bytes = 65536\n{admin_toml}\n[ingest]\npoll_interval_ms = 100\nfeed_poll_secs = 1\n[visibility]\ntick_secs = 1\n{sources_toml}\n{extra_toml}\n", data_dir.display().to_string()),
        )
        .unwrap();
        Daemon {
            child: None,
            config,
            data_dir,
            addr,
            token: String::new(),
            actors: None,
            stderr_log: dir.join("warden.stderr"),
            wrapper: Vec::new(),
            tls: None,
        }
    }

    pub fn spawn(&mut self) {
        self.spawn_within(30);
    }

    /// Starts the daemon and waits up to `secs` for its API (a restart after `kill -9`
    /// on a large database recovers sled's log first).
    pub fn spawn_within(&mut self, secs: u64) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.stderr_log).unwrap();
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("run").arg("--config").arg(&self.config);
        if let Some(a) = &self.actors {
            cmd.arg("--actors").arg(a);
        }
        cmd.env("RUST_LOG", "info").stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("start warden"));
        let token_path = self.data_dir.join("admin.token");
        let deadline = Instant::now() + Duration::from_secs(secs);
        // The token (created at the first start, kept) and an answer to it.
        loop {
            if let Some(t) = std::fs::read_to_string(&token_path).ok().filter(|t| !t.is_empty()) {
                self.token = t;
                if self.get("/v1/health").is_ok_and(|r| r.status == 200) {
                    return;
                }
            }
            if Instant::now() > deadline || self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Say why: whether it exited, and what it logged last.
        let status = self.child.as_mut().map(|c| c.try_wait());
        let log = self.stderr();
        let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        panic!(
            "warden did not answer within {secs} s (process: {status:?}); last lines of its log:\n{}",
            tail.join("\n")
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        Command::new("kill").arg("-TERM").arg(c.id().to_string()).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("warden did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn endpoint(&self) -> client::Endpoint {
        client::Endpoint { addr: self.addr, tls: self.tls.clone() }
    }

    pub fn get(&self, path: &str) -> Result<Response, client::ClientError> {
        client::request(self.endpoint(), "GET", path, Some(&self.token), None)
    }

    pub fn post(&self, path: &str, body: &str) -> Result<Response, client::ClientError> {
        client::request(self.endpoint(), "POST", path, Some(&self.token), Some(body))
    }

    /// Every incident, as the API lists them (written one at a time): oldest first.
    pub fn incidents(&self) -> Vec<serde_json::Value> {
        let r = self.get("/v1/incidents").unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let all: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
        let created: Vec<chrono::DateTime<chrono::Utc>> =
            all.iter().map(|i| serde_json::from_value(i["created_at"].clone()).unwrap()).collect();
        assert!(created.windows(2).all(|w| w[0] <= w[1]), "listed oldest first: {created:?}");
        all
    }

    pub fn agents(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.get("/v1/agents").unwrap().body).unwrap()
    }

    /// A metric's value from `/metrics` (`name{labels}` exactly as rendered).
    pub fn metric(&self, series: &str) -> Option<u64> {
        let body = self.get("/metrics").ok()?.body;
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
    }

    /// Runs a CLI client command against this daemon.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN).args(args).arg("--config").arg(&self.config).output().unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failing test shows what the daemon said last.
        if std::thread::panicking() {
            let text = self.stderr();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("--- last lines of {} ---", self.stderr_log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Finds the incident whose entities include `entity`.
pub fn incident_for<'a>(incidents: &'a [serde_json::Value], entity: &str) -> Option<&'a serde_json::Value> {
    // The incident opened for the entity, else one that lists it.
    incidents
        .iter()
        .find(|i| i["entities"][0] == entity)
        .or_else(|| incidents.iter().find(|i| i["entities"].as_array().is_some_and(|e| e.iter().any(|x| x == entity))))
}

/// Appends text to a file (creating it).
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A path inside the public corpora, or `None` (with a message saying the test is
/// skipped) when `WARDEN_CORPORA` is not set.
pub fn corpus(rel: &str) -> Option<PathBuf> {
    match std::env::var_os("WARDEN_CORPORA") {
        Some(root) => Some(Path::new(&root).join(rel)),
        None => {
            eprintln!("SKIPPED corpus test on {rel}: WARDEN_CORPORA is not set");
            None
        }
    }
}

/// Zeek's JSON form of a TSV log (what `LogAscii::use_json` writes): counts, ports and
/// times as numbers, booleans as booleans, sets and vectors as arrays, unset fields left
/// out, no `_path`.
pub fn zeek_json(tsv: &str) -> String {
    let fields: Vec<&str> =
        tsv.lines().find_map(|l| l.strip_prefix("#fields\t")).expect("a #fields header").split('\t').collect();
    let numeric = [
        "ts",
        "id.orig_p",
        "id.resp_p",
        "duration",
        "orig_bytes",
        "resp_bytes",
        "missed_bytes",
        "orig_pkts",
        "orig_ip_bytes",
        "resp_pkts",
        "resp_ip_bytes",
        "trans_id",
        "rtt",
        "qclass",
        "qtype",
        "rcode",
        "Z",
        "trans_depth",
        "request_body_len",
        "response_body_len",
        "status_code",
    ];
    let boolean = ["AA", "TC", "RD", "RA", "rejected", "resumed", "established", "local_orig", "local_resp"];
    let vector = ["answers", "TTLs", "tunnel_parents", "tags", "orig_fuids", "resp_fuids", "cert_chain_fps"];
    let mut out = String::new();
    for line in tsv.lines().filter(|l| !l.starts_with('#')) {
        let mut m = serde_json::Map::new();
        for (f, v) in fields.iter().zip(line.split('\t')) {
            if v == "-" {
                continue;
            }
            let value = match v.parse::<f64>() {
                Ok(n) if numeric.contains(f) => serde_json::json!(n),
                _ if boolean.contains(f) => serde_json::json!(v == "T"),
                _ if vector.contains(f) && v == "(empty)" => serde_json::json!([]),
                _ if vector.contains(f) => serde_json::json!(v.split(',').collect::<Vec<_>>()),
                _ => serde_json::json!(v),
            };
            m.insert(f.to_string(), value);
        }
        out.push_str(&serde_json::Value::Object(m).to_string());
        out.push('\n');
    }
    out
}

/// `text` gzip-compressed.
pub fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, text.as_bytes()).unwrap();
    e.finish().unwrap()
}
