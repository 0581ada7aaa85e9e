//! Warden's configuration: TOML, strict (unknown keys are errors), with an embedded
//! default that follows the host's authentication log in observe mode: `/var/log/auth.log`
//! (Debian family), else `/var/log/secure` (RPM family), else the systemd journal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::messages::ResponseMode;

mod llm;
mod notifications;

pub use llm::{LlmConfig, Provider};
pub use notifications::{NotifyConfig, WebhookFormat};

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
    pub testing: TestingConfig,
    /// A language model for the agents' reasoning (off when absent).
    #[serde(default)]
    pub llm: Option<LlmConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8720))
}
fn default_max_body() -> usize {
    1 << 20
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: default_listen(), max_body_bytes: default_max_body() }
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Syslog lines only (`auth.log`: sshd, PAM, and the other programs Warden reads).
    Auth,
    /// Apache/nginx access logs (common or combined format).
    Web,
    /// JSON lines: one object per line, fields as given (Zeek's JSON logs too).
    Json,
    /// Zeek TSV logs (`conn`, `dns`, `http`, `ssh`, …) with their `#fields` header.
    Zeek,
    /// Each line as whichever format it is (the default): syslog (each program by its
    /// own parser), web access logs, JSON, and the services' own logs (Apache and nginx
    /// error logs, MySQL, PostgreSQL, exim, vsftpd, dovecot, audit).
    Auto,
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
    #[serde(default)]
    pub protected: Vec<IpNet>,
    /// Accounts never disabled (every UID-0 account is protected as well).
    #[serde(default = "default_protected_accounts")]
    pub protected_accounts: Vec<String>,
    /// Networks that stay reachable when this host is isolated (the admins' way in).
    /// Without one, isolating this host is refused.
    #[serde(default)]
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
}

fn default_min_free_mb() -> u64 {
    256
}

fn default_cache_mb() -> u64 {
    64
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { cache_mb: default_cache_mb(), min_free_mb: default_min_free_mb() }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestingConfig {
    /// Enables `POST /v1/testing/agents/{name}/panic`. Never turn on in production.
    #[serde(default)]
    pub fault_injection: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}: {message}")]
    Parse { file: String, line: usize, message: String },
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

impl Config {
    /// Parses and validates a configuration; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            line: e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1).unwrap_or(0),
            message: e.message().trim().replace('\n', " "),
        })?;
        cfg.validate(file)?;
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

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { file: file.to_string(), message };
        if !self.admin.listen.ip().to_canonical().is_loopback() {
            return Err(invalid(format!(
                "[admin] listen = \"{}\" would serve the admin API and its bearer token to the network over plain \
                 HTTP, and Warden does not serve TLS yet: listen on loopback (127.0.0.1 or ::1) and reach it through \
                 an SSH tunnel or a TLS-terminating reverse proxy on this host",
                self.admin.listen
            )));
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.sources {
            if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(invalid(format!(
                    "source name `{}` must be non-empty and use only letters, digits, `-`, `_`, `.`",
                    s.name
                )));
            }
            if !names.insert(s.name.as_str()) {
                return Err(invalid(format!("two sources are named `{}`", s.name)));
            }
            match s.kind {
                SourceKind::File if s.path.is_none() => {
                    return Err(invalid(format!("source `{}` is a file source without a `path`", s.name)));
                }
                SourceKind::Stdin if s.path.is_some() => {
                    return Err(invalid(format!("source `{}` reads stdin and takes no `path`", s.name)));
                }
                SourceKind::SyslogUdp | SourceKind::SyslogTcp if s.listen.is_none() || s.path.is_some() => {
                    return Err(invalid(format!(
                        "syslog source `{}` needs a `listen` address and takes no `path`",
                        s.name
                    )));
                }
                SourceKind::SyslogUdp | SourceKind::SyslogTcp
                    if s.idle_timeout_secs == 0 || s.max_connections == 0 || s.max_connections_per_peer == 0 =>
                {
                    return Err(invalid(format!(
                        "syslog source `{}`: idle_timeout_secs, max_connections and max_connections_per_peer must be at least 1",
                        s.name
                    )));
                }
                SourceKind::File | SourceKind::Stdin | SourceKind::Journald if s.listen.is_some() => {
                    return Err(invalid(format!("source `{}` does not listen: remove `listen`", s.name)));
                }
                SourceKind::Journald if s.path.is_some() => {
                    return Err(invalid(format!(
                        "journald source `{}` takes a journal `directory`, not a `path`",
                        s.name
                    )));
                }
                _ => {}
            }
            if s.kind != SourceKind::Journald && (s.directory.is_some() || !s.matches.is_empty()) {
                return Err(invalid(format!("`directory` and `matches` are for journald sources, not `{}`", s.name)));
            }
            if let Some(m) = s.matches.iter().find(|m| !valid_match(m)) {
                return Err(invalid(format!(
                    "source `{}`: match `{m}` is not `FIELD=value` (an upper-case journal field) or `+`",
                    s.name
                )));
            }
        }
        if let Some(l) = &self.llm
            && let Some(p) = l.problems().into_iter().next()
        {
            return Err(invalid(p));
        }
        if self.ingest.max_line_bytes < 256 {
            return Err(invalid("`ingest.max_line_bytes` must be at least 256".into()));
        }
        if self.ingest.batch_lines == 0 || self.ingest.poll_interval_ms == 0 {
            return Err(invalid("`ingest.batch_lines` and `ingest.poll_interval_ms` must be at least 1".into()));
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
mod tests {
    use super::*;

    /// The admin API used to start silently on plain HTTP on any address it was given.
    #[test]
    fn an_admin_api_reachable_from_the_network_is_refused() {
        for listen in ["0.0.0.0:8720", "[::]:8720", "192.0.2.10:8720", "[::ffff:192.0.2.10]:8720"] {
            let e = Config::parse(&format!("[admin]\nlisten = \"{listen}\"\n"), "warden.toml").unwrap_err().to_string();
            assert!(e.contains("plain HTTP") && e.contains("SSH tunnel"), "{listen}: {e}");
        }
        for listen in ["127.0.0.1:8720", "127.0.0.2:1", "[::1]:8720", "[::ffff:127.0.0.1]:8720"] {
            assert!(Config::parse(&format!("[admin]\nlisten = \"{listen}\"\n"), "warden.toml").is_ok(), "{listen}");
        }
    }

    #[test]
    fn embedded_default_parses() {
        let c = Config::parse(DEFAULT_CONFIG, "default").unwrap();
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].path.as_deref(), Some(Path::new("/var/log/auth.log")));
        assert_eq!(c.sources[0].format, LogFormat::Auto);
        assert_eq!(c.response.mode, ResponseMode::Observe);
        assert!(c.admin.listen.ip().is_loopback());
        assert!(!c.testing.fault_injection);
    }

    #[test]
    fn the_default_follows_the_host() {
        let on = |present: &'static str| move |p: &Path| p == Path::new(present);
        let debian = Config::parse(&default_config_for(on("/var/log/auth.log")), "d").unwrap();
        assert_eq!(debian.sources[0].path.as_deref(), Some(Path::new("/var/log/auth.log")));
        let rpm = Config::parse(&default_config_for(on("/var/log/secure")), "d").unwrap();
        assert_eq!(
            (rpm.sources[0].kind, rpm.sources[0].path.as_deref()),
            (SourceKind::File, Some(Path::new("/var/log/secure")))
        );
        let journal = Config::parse(&default_config_for(|_| false), "d").unwrap();
        let s = &journal.sources[0];
        assert_eq!(
            (s.kind, s.path.as_deref(), s.directory.as_deref(), s.format),
            (SourceKind::Journald, None, None, LogFormat::Auto)
        );
        assert_eq!(journal.response.mode, ResponseMode::Observe);
    }

    #[test]
    fn journald_sources_are_checked() {
        let src = |extra: &str| format!("[[sources]]\nname = \"j\"\nkind = \"journald\"\n{extra}");
        let ok = Config::parse(&src("directory = \"/tmp/j\"\nmatches = [\"_SYSTEMD_UNIT=ssh.service\", \"+\", \"SYSLOG_IDENTIFIER=sshd\"]\n"), "w").unwrap();
        assert_eq!(ok.sources[0].matches.len(), 3);
        for (extra, says) in [
            ("path = \"/var/log/x\"\n", "not a `path`"),
            ("matches = [\"sshd\"]\n", "not `FIELD=value`"),
            ("matches = [\"_unit=x\"]\n", "not `FIELD=value`"),
        ] {
            let e = Config::parse(&src(extra), "w").unwrap_err().to_string();
            assert!(e.contains(says), "{extra}: {e}");
        }
        let e = Config::parse("[[sources]]\nname = \"f\"\nkind = \"file\"\npath = \"/x\"\ndirectory = \"/y\"\n", "w")
            .unwrap_err()
            .to_string();
        assert!(e.contains("for journald sources"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let text = "[admin]\nlisten = \"127.0.0.1:1\"\n\n[response]\nmode = \"observe\"\nbogus = 1\n";
        let e = Config::parse(text, "w.toml").unwrap_err().to_string();
        assert!(e.starts_with("w.toml:6: "), "{e}");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn bad_mode_is_an_error() {
        let e = Config::parse("[response]\nmode = \"yolo\"\n", "w.toml").unwrap_err().to_string();
        assert!(e.starts_with("w.toml:2: "), "{e}");
    }

    #[test]
    fn file_source_needs_a_path() {
        let e = Config::parse("[[sources]]\nname = \"a\"\nkind = \"file\"\n", "w.toml").unwrap_err().to_string();
        assert!(e.contains("without a `path`"), "{e}");
    }
}
