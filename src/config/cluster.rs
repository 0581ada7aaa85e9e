//! `[cluster]` and `[ship]`: a fleet on NATS JetStream. Hosts run `warden ship`, which
//! publishes their log lines to the logs stream; analysis nodes (`warden run` with a
//! `kind = "nats"` source) consume them through a durable consumer. Without `[cluster]`
//! nothing of this runs.

use std::path::PathBuf;

use serde::Deserialize;

/// Where shipped lines are published: `warden.logs.<host>.<source>`.
pub const LOGS_SUBJECTS: &str = "warden.logs.>";

/// `[cluster]`: how to reach NATS, who this node is, and the logs stream's limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `nats://host:port` (several, comma-separated, for a NATS cluster); `tls://` for TLS.
    pub nats_url: String,
    /// This node's name (analysis nodes; the consumer's durable name derives from it).
    /// Default: the host name.
    #[serde(default)]
    pub node: Option<String>,
    /// Credentials: a user with its password read from an environment variable …
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// … or a token read from an environment variable …
    #[serde(default)]
    pub token_env: Option<String>,
    /// … or a `.creds` file (JWT and nkey seed, as `nsc` writes it) …
    #[serde(default)]
    pub creds_file: Option<PathBuf>,
    /// … or an nkey seed file (`SU…`).
    #[serde(default)]
    pub nkey_file: Option<PathBuf>,
    /// TLS: the CA that signed the server's certificate (PEM), and a client certificate
    /// and key when the server requires one.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The JetStream stream of shipped lines (subjects `warden.logs.>`).
    #[serde(default = "default_stream")]
    pub logs_stream: String,
    /// Its limits: lines older than this are dropped by the server …
    #[serde(default = "default_max_age")]
    pub logs_max_age_secs: u64,
    /// … and the oldest go past this size.
    #[serde(default = "default_max_bytes")]
    pub logs_max_bytes: u64,
    /// Stream replicas (1 on a single server; 3 on a NATS cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// The leader's lease (incident response runs on one node at a time): renewed every
    /// third of it; a standby takes over when it has not been renewed for this long.
    #[serde(default = "default_lease")]
    pub lease_secs: u64,
    /// When a shipping host's logs move to this node (another analysis node died or
    /// joined), the host's last `warmup_secs` of logs are read again first, so detector
    /// windows hold what the previous owner's held (0: start empty).
    #[serde(default = "default_warmup")]
    pub warmup_secs: u64,
}

fn default_stream() -> String {
    "WARDEN_LOGS".into()
}
fn default_max_age() -> u64 {
    7 * 86_400
}
fn default_max_bytes() -> u64 {
    10 << 30
}
fn default_replicas() -> usize {
    1
}
fn default_lease() -> u64 {
    6
}
fn default_warmup() -> u64 {
    600
}

impl ClusterConfig {
    /// What is wrong with these settings, if anything: the key it is about, and why.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let urls: Vec<&str> = self.nats_url.split(',').map(str::trim).collect();
        if let Some(u) = urls.iter().find(|u| !(u.starts_with("nats://") || u.starts_with("tls://"))) {
            return Some(("nats_url", format!("[cluster] nats_url `{u}` is not a nats:// or tls:// URL")));
        }
        let ways = [self.user.is_some(), self.token_env.is_some(), self.creds_file.is_some(), self.nkey_file.is_some()];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Some((
                "user",
                "[cluster] give one of `user` (with `password_env`), `token_env`, `creds_file`, `nkey_file`".into(),
            ));
        }
        if self.user.is_some() != self.password_env.is_some() {
            return Some(("password_env", "[cluster] `user` and `password_env` go together".into()));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Some(("tls_cert", "[cluster] `tls_cert` and `tls_key` go together".into()));
        }
        if !valid_token(&self.logs_stream) {
            return Some((
                "logs_stream",
                format!("[cluster] logs_stream `{}` must use only letters, digits, `-`, `_`", self.logs_stream),
            ));
        }
        if let Some(n) = &self.node
            && !valid_token(n)
        {
            return Some(("node", format!("[cluster] node `{n}` must use only letters, digits, `-`, `_`")));
        }
        for (key, v) in [("logs_max_age_secs", self.logs_max_age_secs), ("logs_max_bytes", self.logs_max_bytes)] {
            if v == 0 {
                return Some((key, format!("[cluster] {key} = 0: the stream must be bounded")));
            }
        }
        if !(3..=60).contains(&self.lease_secs) {
            return Some(("lease_secs", format!("[cluster] lease_secs = {}: 3 to 60", self.lease_secs)));
        }
        if self.warmup_secs > 86_400 {
            return Some(("warmup_secs", format!("[cluster] warmup_secs = {}: at most a day", self.warmup_secs)));
        }
        if !(1..=5).contains(&self.replicas) {
            return Some(("replicas", format!("[cluster] replicas = {}: 1 to 5", self.replicas)));
        }
        None
    }

    /// This node's name: `node`, else the host name (made a subject token).
    pub fn node_name(&self) -> String {
        or_host_name(&self.node)
    }
}

/// `[ship]`: what a shipping host calls itself.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipConfig {
    /// The host's name in subjects and on its events. Default: the host name.
    #[serde(default)]
    pub host: Option<String>,
}

impl ShipConfig {
    pub fn problem(&self) -> Option<(&'static str, String)> {
        match &self.host {
            Some(h) if !valid_token(h) => {
                Some(("host", format!("[ship] host `{h}` must use only letters, digits, `-`, `_`")))
            }
            _ => None,
        }
    }

    /// The host's name: `host`, else the host name (made a subject token).
    pub fn host_name(&self) -> String {
        or_host_name(&self.host)
    }
}

/// `[enforce]`: how `warden enforce` applies the fleet's decisions on this host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforceConfig {
    /// The host's name in reports. Default: the host name.
    #[serde(default)]
    pub host: Option<String>,
    /// `observe` (the default: report what would be done) or `enforce`.
    #[serde(default)]
    pub mode: EnforceMode,
    /// The nftables table the enforcer owns (inet family): its sets and drop rules.
    #[serde(default = "default_table")]
    pub table: String,
}

impl Default for EnforceConfig {
    fn default() -> Self {
        EnforceConfig { host: None, mode: EnforceMode::Observe, table: default_table() }
    }
}

fn default_table() -> String {
    "warden".into()
}

/// Whether an enforcer changes the firewall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforceMode {
    #[default]
    Observe,
    Enforce,
}

impl EnforceConfig {
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(h) = &self.host
            && !valid_token(h)
        {
            return Some(("host", format!("[enforce] host `{h}` must use only letters, digits, `-`, `_`")));
        }
        if !valid_token(&self.table) {
            return Some((
                "table",
                format!("[enforce] table `{}` must use only letters, digits, `-`, `_`", self.table),
            ));
        }
        None
    }

    pub fn host_name(&self) -> String {
        or_host_name(&self.host)
    }
}

/// Whether a name can be one token of a NATS subject (and a JetStream name): no dots,
/// wildcards or spaces.
pub fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A name made a subject token: every other character becomes `_`.
pub fn subject_token(s: &str) -> String {
    let t: String = s.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if t.is_empty() { "unknown".into() } else { t }
}

/// A configured name, else this machine's host name made a subject token.
fn or_host_name(name: &Option<String>) -> String {
    name.clone().unwrap_or_else(|| subject_token(&super::local_hostname().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(extra: &str) -> ClusterConfig {
        toml::from_str(&format!("nats_url = \"nats://127.0.0.1:4222\"\n{extra}")).unwrap()
    }

    #[test]
    fn defaults_are_bounded_and_valid() {
        let c = cluster("");
        assert_eq!(c.problem(), None);
        assert_eq!((c.logs_max_age_secs, c.logs_max_bytes, c.replicas), (7 * 86_400, 10 << 30, 1));
        assert!(valid_token(&c.node_name()), "{}", c.node_name());
    }

    #[test]
    fn contradictions_are_refused_with_their_key() {
        for (extra, key) in [
            ("logs_max_bytes = 0", "logs_max_bytes"),
            ("logs_max_age_secs = 0", "logs_max_age_secs"),
            ("user = \"a\"", "password_env"),
            ("user = \"a\"\npassword_env = \"P\"\ntoken_env = \"T\"", "user"),
            ("tls_cert = \"/c.pem\"", "tls_cert"),
            ("node = \"a.b\"", "node"),
            ("logs_stream = \"a b\"", "logs_stream"),
            ("replicas = 0", "replicas"),
            ("lease_secs = 1", "lease_secs"),
        ] {
            assert_eq!(cluster(extra).problem().map(|p| p.0), Some(key), "{extra}");
        }
        let bad_url: ClusterConfig = toml::from_str("nats_url = \"http://x\"").unwrap();
        assert_eq!(bad_url.problem().map(|p| p.0), Some("nats_url"));
        assert_eq!(ShipConfig { host: Some("web.1".into()) }.problem().map(|p| p.0), Some("host"));
    }

    #[test]
    fn names_become_subject_tokens() {
        assert_eq!(subject_token("web-1.example.com"), "web-1_example_com");
        assert_eq!(subject_token(""), "unknown");
        assert_eq!(subject_token("a>b*c"), "a_b_c");
    }
}
