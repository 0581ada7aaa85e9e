//! Warden's configuration: TOML, strict (unknown keys are errors), with an embedded
//! default that follows the host's authentication log in observe mode: `/var/log/auth.log`
//! (Debian family), else `/var/log/secure` (RPM family), else the systemd journal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::messages::ResponseMode;

pub mod cidr;
pub mod cluster;
mod llm;
mod notifications;
mod visibility;

pub use cluster::{ClusterConfig, EnforceConfig, EnforceMode, ShipConfig};
pub use llm::{LlmConfig, Provider};
pub use notifications::{NotifyConfig, WebhookFormat};
pub use visibility::VisibilityConfig;

/// The configuration `warden run` uses when no `--config` is given, on a host whose
/// authentication log is `/var/log/auth.log` (see [`default_config_for`]).
pub const DEFAULT_CONFIG: &str = r#"# Warden's embedded default configuration.
[admin]
listen = "127.0.0.1:8720"

[[sources]]
name = "auth"
kind = "file"
path = "/var/log/auth.log"

[response]
mode = "observe"
"#;

/// The embedded default for a host, given which files exist on it: its authentication
/// log (`/var/log/auth.log`, else `/var/log/secure`), else the systemd journal (Debian
/// 12+, Ubuntu 24.04+, Fedora, Arch log sshd only there).
pub fn default_config_for(exists: impl Fn(&Path) -> bool) -> String {
    for log in ["/var/log/auth.log", "/var/log/secure"] {
        if exists(Path::new(log)) {
            return DEFAULT_CONFIG.replace("/var/log/auth.log", log);
        }
    }
    DEFAULT_CONFIG.replace(
        "kind = \"file\"\npath = \"/var/log/auth.log\"\n",
        "kind = \"journald\"\n# The system journal; add `matches = [\"_SYSTEMD_UNIT=ssh.service\"]` to narrow it.\n",
    )
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A webhook for notifications (off when absent).
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// Where the database and the admin token live.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub response: ResponseConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub visibility: VisibilityConfig,
    #[serde(default)]
    pub testing: TestingConfig,
    /// A language model for the agents' reasoning (off when absent).
    #[serde(default)]
    pub llm: Option<LlmConfig>,
    /// The fleet on NATS JetStream (off when absent).
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// What `warden ship` calls this host.
    #[serde(default)]
    pub ship: ShipConfig,
    /// How `warden enforce` applies the fleet's decisions here.
    #[serde(default)]
    pub enforce: EnforceConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// TLS: the certificate chain (PEM, the server's certificate first) and its private
    /// key. Required to listen on anything but loopback.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// With TLS, require a client certificate issued by one of these CAs (PEM).
    #[serde(default)]
    pub tls_client_ca: Option<PathBuf>,
}

impl AdminConfig {
    /// Whether the API is served over TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// What is wrong with these settings, if anything: the key it is about, and why.
    fn problem(&self) -> Option<(&'static str, String)> {
        if !self.listen.ip().to_canonical().is_loopback() && !self.tls() {
            return Some((
                "listen",
                format!(
                    "[admin] listen = \"{}\" would serve the admin API and its bearer token to the network over \
                     plain HTTP: configure TLS (`tls_cert` and `tls_key`, and `tls_client_ca` to require client \
                     certificates), or listen on loopback (127.0.0.1 or ::1)",
                    self.listen
                ),
            ));
        }
        if self.max_body_bytes < 1024 {
            let why = format!(
                "[admin] max_body_bytes = {} is below 1024: every request would be refused",
                self.max_body_bytes
            );
            return Some(("max_body_bytes", why));
        }
        let tls = match (&self.tls_cert, &self.tls_key, &self.tls_client_ca) {
            (Some(_), None, _) => "[admin] tls_cert is set without tls_key",
            (None, Some(_), _) => "[admin] tls_key is set without tls_cert",
            (None, None, Some(_)) => "[admin] tls_client_ca needs TLS: set tls_cert and tls_key",
            _ => return None,
        };
        Some(("tls_cert", tls.to_string()))
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8720))
}
fn default_max_body() -> usize {
    1 << 20
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    File,
    Stdin,
    /// Syslog messages over UDP (RFC 3164 or RFC 5424), one per datagram.
    SyslogUdp,
    /// Syslog over TCP, framed by newlines or by octet counting (RFC 6587).
    SyslogTcp,
    /// The systemd journal (read with `journalctl --output=json`), checkpointed by the
    /// journal's cursor.
    Journald,
    /// Lines shipped by `warden ship` on other hosts, from the JetStream logs stream
    /// (`[cluster]`), through a durable consumer.
    Nats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Syslog lines only (`auth.log`: sshd, PAM, and the other programs Warden reads).
    Auth,
    /// Apache/nginx access logs (common or combined format).
    Web,
    /// JSON lines: one object per line, fields as given (Zeek's JSON logs: see `Zeek`).
    Json,
    /// Zeek logs (`conn`, `dns`, `http`, `ssh`, …): TSV with their `#fields` header, or
    /// Zeek's JSON form.
    Zeek,
    /// Each line as whichever format it is (the default): syslog (each program by its
    /// own parser), web access logs, JSON, and the services' own logs (Apache and nginx
    /// error logs, MySQL, PostgreSQL, exim, vsftpd, dovecot, audit).
    Auto,
}

impl LogFormat {
    /// The name configurations and the command line use.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auth => "auth",
            LogFormat::Web => "web",
            LogFormat::Json => "json",
            LogFormat::Zeek => "zeek",
            LogFormat::Auto => "auto",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The address a syslog source listens on.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    #[serde(default = "default_format")]
    pub format: LogFormat,
    /// A journald source's journal directory (e.g. what `systemd-journal-remote`
    /// writes); the system journal when absent.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// A journald source's journalctl match expressions (`FIELD=value`, `+` between
    /// alternatives), e.g. `["_SYSTEMD_UNIT=ssh.service"]`.
    #[serde(default)]
    pub matches: Vec<String>,
    /// Syslog sources: a TCP connection that sends nothing for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Syslog sources: open TCP connections at most; when full, the connection idle the
    /// longest (at least [`EVICTABLE_IDLE_SECS`]) is closed for a new one, else it is refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Syslog sources: open TCP connections from one address at most.
    #[serde(default = "default_max_per_peer")]
    pub max_connections_per_peer: usize,
    /// Syslog sources: the UDP socket's receive buffer (`SO_RCVBUF`), in bytes. The kernel
    /// caps it at `net.core.rmem_max`; the size obtained is logged.
    #[serde(default = "default_recv_buffer")]
    pub recv_buffer_bytes: usize,
    /// A NATS source's subjects (default `warden.logs.>`: every host, every source).
    #[serde(default)]
    pub subject: Option<String>,
}

/// A syslog TCP connection idle at least this long may be closed to admit a new one.
pub const EVICTABLE_IDLE_SECS: u64 = 5;

fn default_idle_timeout() -> u64 {
    300
}

fn default_max_connections() -> usize {
    256
}

fn default_max_per_peer() -> usize {
    16
}

fn default_recv_buffer() -> usize {
    4 << 20
}

/// The limits of a syslog source's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogLimits {
    pub idle_timeout: std::time::Duration,
    pub max_connections: usize,
    pub max_per_peer: usize,
    pub recv_buffer_bytes: usize,
}

impl SourceConfig {
    pub fn syslog_limits(&self) -> SyslogLimits {
        SyslogLimits {
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
            max_per_peer: self.max_connections_per_peer,
            recv_buffer_bytes: self.recv_buffer_bytes,
        }
    }
}

fn default_format() -> LogFormat {
    LogFormat::Auto
}

/// Whether a journalctl match is well formed: `FIELD=value` (an upper-case field name)
/// or `+`.
fn valid_match(m: &str) -> bool {
    if m == "+" {
        return true;
    }
    let Some((field, _)) = m.split_once('=') else { return false };
    !field.is_empty() && field.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    #[serde(default)]
    pub mode: ResponseMode,
    /// Addresses and networks never acted against, besides loopback and the host's own.
    #[serde(default, deserialize_with = "cidr::list")]
    pub protected: Vec<IpNet>,
    /// Accounts never disabled (every UID-0 account is protected as well).
    #[serde(default = "default_protected_accounts")]
    pub protected_accounts: Vec<String>,
    /// Networks that stay reachable when this host is isolated (the admins' way in).
    /// Without one, isolating this host is refused.
    #[serde(default, deserialize_with = "cidr::list")]
    pub management: Vec<IpNet>,
    /// Where quarantined files go (default: `<data_dir>/quarantine`).
    #[serde(default)]
    pub quarantine_dir: Option<PathBuf>,
    /// The argv that isolates a remote host, `{host}` standing for it (e.g. a call to
    /// the EDR or switch API); and the one that releases it.
    #[serde(default)]
    pub isolate_command: Vec<String>,
    #[serde(default)]
    pub release_command: Vec<String>,
    /// Where collected evidence is stored (default: `<data_dir>/evidence`).
    #[serde(default)]
    pub evidence_dir: Option<PathBuf>,
    /// External evidence collectors: `{ name, argv }`, their standard output stored.
    #[serde(default)]
    pub collectors: Vec<Collector>,
}

/// An external evidence collector.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Collector {
    pub name: String,
    pub argv: Vec<String>,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            mode: ResponseMode::default(),
            protected: Vec::new(),
            protected_accounts: default_protected_accounts(),
            management: Vec::new(),
            quarantine_dir: None,
            isolate_command: Vec::new(),
            release_command: Vec::new(),
            evidence_dir: None,
            collectors: Vec::new(),
        }
    }
}

fn default_protected_accounts() -> Vec<String> {
    vec!["root".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Lines longer than this are cut here (and counted).
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// The backstop poll of tailed files, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Most lines in one batch.
    #[serde(default = "default_batch_lines")]
    pub batch_lines: usize,
    /// The backstop poll of threat-intel feed files, in seconds (changes are also
    /// picked up at once through file notifications).
    #[serde(default = "default_feed_poll")]
    pub feed_poll_secs: u64,
    /// A tailed file that was there and stays removed this long is a blind spot (a log
    /// deleted and not recreated: ATT&CK T1070.002).
    #[serde(default = "default_missing_file")]
    pub missing_file_secs: u64,
    /// Set by `warden ship` (not a setting): sources pass lines on as read, unparsed.
    #[serde(skip)]
    pub ship: bool,
}

fn default_missing_file() -> u64 {
    300
}

fn default_feed_poll() -> u64 {
    30
}

fn default_max_line() -> usize {
    64 * 1024
}
fn default_poll_ms() -> u64 {
    250
}
fn default_batch_lines() -> usize {
    2048
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_line_bytes: default_max_line(),
            poll_interval_ms: default_poll_ms(),
            batch_lines: default_batch_lines(),
            feed_poll_secs: default_feed_poll(),
            missing_file_secs: default_missing_file(),
            ship: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// sled's page cache, in MiB.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// Free space on the data directory's disk below which a `visibility` incident is
    /// opened (a blind spot ahead: a full disk stops every write), in MiB.
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
    /// The resident memory the daemon is sized to stay within, in MiB: the page cache
    /// and the in-memory tables are derived from it ([`StorageConfig::memory_shares`]).
    #[serde(default = "default_memory_budget_mb")]
    pub memory_budget_mb: u64,
}

/// What Warden takes before any table, in MiB: the program and its threads, compiled
/// rules, and sled — whose pages stay in memory well beyond its cache capacity while it
/// writes (about 80 MB at the peak of a flood of 36,000 attackers with an 8 MiB cache),
/// and whose page table grows with the database (about 1 % of its size on disk).
pub const PROCESS_MEMORY_MB: u64 = 96;

/// The smallest memory budget accepted: the process's own share and as much again.
pub const MIN_MEMORY_BUDGET_MB: u64 = 2 * PROCESS_MEMORY_MB;

/// What the memory budget allows each consumer, from what is left of it once the
/// process's own share ([`PROCESS_MEMORY_MB`]) is set aside: half of that in all; the
/// other half is headroom for a flood's transients (a batch of findings in flight, the
/// queues between agents, the allocator's slack). Incidents are about 20 KB each held
/// (findings with their evidence lines), an entity entry about 100 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryShares {
    /// sled's page cache capacity: `cache_mb`, at most a sixteenth (sled counts pages
    /// at their size on disk; in memory they take about twice that).
    pub cache_bytes: u64,
    /// Incidents incident response holds in memory: an eighth.
    pub incidents_held: usize,
    /// Entities (addresses, campaigns) pointing to their active incident: a sixteenth.
    pub incident_entities: usize,
    /// Source addresses an authentication detector follows (about 2 KB each): a
    /// sixteenth, at most `[detection.limits] addresses`.
    pub detector_addresses: usize,
    /// Sigma correlation groups (about 2 KB each): a sixteenth, at most
    /// `[detection.limits] correlation_groups`.
    pub correlation_groups: usize,
    /// Keys of each network analytics table (about 600 bytes a source–destination
    /// pair): an eighth, at most `[detection.limits] network_keys`.
    pub network_keys: usize,
}

impl StorageConfig {
    /// What is wrong with these settings, if anything.
    fn problem(&self) -> Option<String> {
        (self.memory_budget_mb < MIN_MEMORY_BUDGET_MB).then(|| {
            format!(
                "[storage] memory_budget_mb = {} is below {MIN_MEMORY_BUDGET_MB}: Warden itself (the program, its \
                 threads, its compiled rules and the database's pages while it writes) takes about \
                 {PROCESS_MEMORY_MB} MiB before any table, and a flood needs as much again",
                self.memory_budget_mb
            )
        })
    }

    pub fn memory_shares(&self) -> MemoryShares {
        let rest = self.memory_budget_mb.saturating_sub(PROCESS_MEMORY_MB);
        MemoryShares {
            cache_bytes: self.cache_mb.min(rest / 16).max(1) << 20,
            incidents_held: ((rest << 20) / 8 / 20_000).max(64) as usize,
            incident_entities: ((rest << 20) / 16 / 100).max(1024) as usize,
            detector_addresses: ((rest << 20) / 16 / 2048).max(256) as usize,
            correlation_groups: ((rest << 20) / 16 / 2048).max(256) as usize,
            network_keys: ((rest << 20) / 8 / 600).max(1024) as usize,
        }
    }
}

impl Default for MemoryShares {
    fn default() -> Self {
        StorageConfig::default().memory_shares()
    }
}

fn default_memory_budget_mb() -> u64 {
    640
}

fn default_min_free_mb() -> u64 {
    256
}

fn default_cache_mb() -> u64 {
    32
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            cache_mb: default_cache_mb(),
            min_free_mb: default_min_free_mb(),
            memory_budget_mb: default_memory_budget_mb(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestingConfig {
    /// Enables `POST /v1/testing/agents/{name}/panic`. Never turn on in production.
    #[serde(default)]
    pub fault_injection: bool,
    /// Aborts the process at a point where a crash is the hardest to survive, once the
    /// point is reached (the crash tests). Never set in production.
    #[serde(default)]
    pub crash_at: Option<CrashPoint>,
}

/// Where `[testing] crash_at` aborts the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    /// An analysis node: a shipped batch applied and flushed, not yet acknowledged.
    BeforeAck,
    /// A shipper: a batch acknowledged by JetStream, its checkpoint not yet committed.
    AfterPublish,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}: {message}")]
    Parse { file: String, line: usize, message: String },
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { file: String, line: Option<usize>, message: String },
}

/// The line (1-based) of `key = …` in the `nth` table named `table` (`""`: the top
/// level; `[t]` and `[[t]]` alike); the table's header when the key is not written there.
fn line_of(text: &str, table: &str, nth: usize, key: &str) -> Option<usize> {
    let mut current = "";
    let mut seen = 0usize;
    let mut header = None;
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            let name = l.trim_start_matches('[').split(']').next().unwrap_or("").trim();
            if current == table && seen == nth + 1 && header.is_some() {
                break; // Past the table asked for.
            }
            current = if name == table { table } else { "\0" };
            if current == table {
                seen += 1;
                if seen == nth + 1 {
                    header = Some(i + 1);
                }
            }
            continue;
        }
        let here = current == table && (table.is_empty() || seen == nth + 1);
        if here
            && !key.is_empty()
            && let Some(rest) = l.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(i + 1);
        }
    }
    header
}

impl Config {
    /// Parses and validates a configuration; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            line: e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1).unwrap_or(0),
            message: e.message().trim().replace('\n', " "),
        })?;
        cfg.validate(file, text)?;
        Ok(cfg)
    }

    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Config::parse(&default_config_for(|p| p.exists()), "<embedded default config>"),
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?;
                Config::parse(&text, &p.display().to_string())
            }
        }
    }

    fn validate(&self, file: &str, text: &str) -> Result<(), ConfigError> {
        // Each error names the line it is about (the key, else its table) and the value.
        let at = |table: &str, nth: usize, key: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            line: line_of(text, table, nth, key),
            message,
        };
        if let Some((key, p)) = self.admin.problem() {
            return Err(at("admin", 0, key, p));
        }
        if let Some(p) = self.storage.problem() {
            return Err(at("storage", 0, "memory_budget_mb", p));
        }
        let mut names = std::collections::HashSet::new();
        for (nth, s) in self.sources.iter().enumerate() {
            let bad = |key: &str, message: String| Err(at("sources", nth, key, message));
            if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return bad(
                    "name",
                    format!("source name `{}` must be non-empty and use only letters, digits, `-`, `_`, `.`", s.name),
                );
            }
            if !names.insert(s.name.as_str()) {
                return bad("name", format!("two sources are named `{}`", s.name));
            }
            match s.kind {
                SourceKind::File if s.path.is_none() => {
                    return bad("kind", format!("source `{}` is a file source without a `path`", s.name));
                }
                SourceKind::Stdin if s.path.is_some() => {
                    return bad("path", format!("source `{}` reads stdin and takes no `path`", s.name));
                }
                SourceKind::SyslogUdp | SourceKind::SyslogTcp if s.listen.is_none() || s.path.is_some() => {
                    return bad(
                        "kind",
                        format!("syslog source `{}` needs a `listen` address and takes no `path`", s.name),
                    );
                }
                SourceKind::SyslogUdp | SourceKind::SyslogTcp
                    if s.idle_timeout_secs == 0 || s.max_connections == 0 || s.max_connections_per_peer == 0 =>
                {
                    let key = [
                        ("idle_timeout_secs", s.idle_timeout_secs as usize),
                        ("max_connections", s.max_connections),
                        ("max_connections_per_peer", s.max_connections_per_peer),
                    ]
                    .into_iter()
                    .find(|(_, v)| *v == 0)
                    .map_or("kind", |(k, _)| k);
                    return bad(key, format!("syslog source `{}`: {key} = 0, it must be at least 1", s.name));
                }
                SourceKind::File | SourceKind::Stdin | SourceKind::Journald if s.listen.is_some() => {
                    return bad("listen", format!("source `{}` does not listen: remove `listen`", s.name));
                }
                SourceKind::Journald if s.path.is_some() => {
                    return bad(
                        "path",
                        format!("journald source `{}` takes a journal `directory`, not a `path`", s.name),
                    );
                }
                _ => {}
            }
            if let Some(p) = nats_source_problem(s, self.cluster.is_some()) {
                return bad(p.0, p.1);
            }
            if s.kind != SourceKind::Journald && (s.directory.is_some() || !s.matches.is_empty()) {
                let key = if s.directory.is_some() { "directory" } else { "matches" };
                return bad(key, format!("`directory` and `matches` are for journald sources, not `{}`", s.name));
            }
            if let Some(m) = s.matches.iter().find(|m| !valid_match(m)) {
                return bad(
                    "matches",
                    format!(
                        "source `{}`: match `{m}` is not `FIELD=value` (an upper-case journal field) or `+`",
                        s.name
                    ),
                );
            }
        }
        if let Some(c) = &self.cluster
            && let Some((key, p)) = c.problem()
        {
            return Err(at("cluster", 0, key, p));
        }
        if let Some((key, p)) = self.ship.problem() {
            return Err(at("ship", 0, key, p));
        }
        if let Some((key, p)) = self.enforce.problem() {
            return Err(at("enforce", 0, key, p));
        }
        if let Some(l) = &self.llm
            && let Some(p) = l.problems().into_iter().next()
        {
            return Err(at("llm", 0, "", p));
        }
        if let Some(p) = self.visibility.problem() {
            return Err(at("visibility", 0, "", p));
        }
        let i = &self.ingest;
        if i.max_line_bytes < 256 {
            return Err(at(
                "ingest",
                0,
                "max_line_bytes",
                format!("[ingest] max_line_bytes = {} is below 256", i.max_line_bytes),
            ));
        }
        for (key, v) in [("batch_lines", i.batch_lines as u64), ("poll_interval_ms", i.poll_interval_ms)] {
            if v == 0 {
                return Err(at("ingest", 0, key, format!("[ingest] {key} = 0, it must be at least 1")));
            }
        }
        Ok(())
    }

    /// The data directory: `--data-dir`, else the config's `data_dir`, else a default
    /// that a fresh machine can write (`/var/lib/warden` for root, the user's state
    /// directory otherwise).
    pub fn data_dir(&self, cli: Option<&Path>) -> PathBuf {
        if let Some(d) = cli {
            return d.to_path_buf();
        }
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        default_data_dir()
    }
}

/// What is wrong with a source about NATS, if anything: a NATS source needs `[cluster]`
/// and a subject below `warden.logs.`; `subject` is for NATS sources only.
fn nats_source_problem(s: &SourceConfig, cluster: bool) -> Option<(&'static str, String)> {
    if s.kind != SourceKind::Nats {
        return s.subject.is_some().then(|| ("subject", format!("`subject` is for NATS sources, not `{}`", s.name)));
    }
    if !cluster {
        return Some(("kind", format!("NATS source `{}` needs a [cluster] section (nats_url)", s.name)));
    }
    if s.path.is_some() || s.listen.is_some() {
        return Some(("kind", format!("NATS source `{}` takes a `subject`, not a `path` or `listen`", s.name)));
    }
    let subject = s.subject.as_deref().unwrap_or(crate::config::cluster::LOGS_SUBJECTS);
    let ok = subject.strip_prefix("warden.logs.").is_some_and(|rest| {
        !rest.is_empty() && rest.split('.').all(|t| t == "*" || t == ">" || cluster::valid_token(t))
    });
    (!ok).then(|| ("subject", format!("NATS source `{}`: subject `{subject}` is not below `warden.logs.`", s.name)))
}

/// This machine's host name, as its own syslog lines carry it.
pub fn local_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = crate::text::sanitize(name.trim(), 255);
    (!name.is_empty()).then_some(name)
}

/// `/var/lib/warden` when running as root, else `$XDG_STATE_HOME/warden` or
/// `~/.local/state/warden`.
pub fn default_data_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let is_root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/warden");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(x).join("warden");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/warden"),
        None => PathBuf::from("warden-data"),
    }
}

#[cfg(test)]
mod tests;
