//! The parameters an agent's definition sets besides its tools' own: its restart
//! budget, incident response's `[response]` and vulnerability management's `[vuln]`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How often an agent may be restarted before it is marked failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestartBudget {
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    #[serde(default = "default_within_secs")]
    pub within_secs: u64,
    /// First backoff delay; doubles per restart inside the window, with jitter.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

fn default_max_restarts() -> u32 {
    5
}
fn default_within_secs() -> u64 {
    60
}
fn default_backoff_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    10_000
}

impl Default for RestartBudget {
    fn default() -> Self {
        RestartBudget {
            max_restarts: default_max_restarts(),
            within_secs: default_within_secs(),
            backoff_ms: default_backoff_ms(),
            backoff_max_ms: default_backoff_max_ms(),
        }
    }
}

/// Parameters of the incident-response agent.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseParams {
    /// An incident stays active (later findings attach to it) this long after its last
    /// finding, in log time.
    #[serde(default = "default_active_secs")]
    pub incident_active_secs: u64,
    /// How long a block lasts before it expires.
    #[serde(default = "default_block_ttl")]
    pub block_ttl_secs: u64,
    /// Lowest finding severity that gets a containment action.
    #[serde(default = "default_contain_min")]
    pub contain_min_severity: crate::messages::Severity,
    /// Lowest finding severity that opens an incident on its own; weaker findings are
    /// stored, and attach to an incident its entity already has.
    #[serde(default = "default_open_min")]
    pub open_min_severity: crate::messages::Severity,
    /// How long an action waits for approval before it lapses.
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_secs: u64,
    /// Autonomy per action (`block_ip = "enforce"`, `disable_account = "approve"`); the
    /// stricter of it, the agent's `autonomy` and `[response] mode` wins.
    #[serde(default)]
    pub autonomy: std::collections::BTreeMap<crate::messages::ActionKind, crate::messages::ResponseMode>,
    /// Actions that are not rolled back when they expire.
    #[serde(default)]
    pub permanent: Vec<crate::messages::ActionKind>,
}

/// Parameters of the vulnerability-management agent (`[vuln]`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VulnParams {
    /// Seconds between scheduled scans of every target (0: on demand only).
    #[serde(default = "default_scan_interval")]
    pub scan_interval_secs: u64,
    /// CISA KEV catalog (JSON); absolute, or relative to the data directory.
    #[serde(default = "default_kev")]
    pub kev: String,
    /// FIRST EPSS scores (CSV); absolute, or relative to the data directory.
    #[serde(default = "default_epss")]
    pub epss: String,
    /// What to scan.
    #[serde(default)]
    pub targets: Vec<crate::tools::vuln::scan::Target>,
    /// A check command (argv) per package name, run by `verify_patch` after patching.
    #[serde(default)]
    pub checks: BTreeMap<String, Vec<String>>,
}

impl Default for VulnParams {
    fn default() -> Self {
        VulnParams {
            scan_interval_secs: default_scan_interval(),
            kev: default_kev(),
            epss: default_epss(),
            targets: Vec::new(),
            checks: BTreeMap::new(),
        }
    }
}

fn default_scan_interval() -> u64 {
    86_400
}
fn default_kev() -> String {
    "intel/known_exploited_vulnerabilities.json".into()
}
fn default_epss() -> String {
    "intel/epss_scores-current.csv".into()
}

fn default_approval_timeout() -> u64 {
    3_600
}

fn default_open_min() -> crate::messages::Severity {
    crate::messages::Severity::Medium
}

fn default_active_secs() -> u64 {
    86_400
}
fn default_block_ttl() -> u64 {
    3_600
}
fn default_contain_min() -> crate::messages::Severity {
    crate::messages::Severity::Medium
}

impl Default for ResponseParams {
    fn default() -> Self {
        ResponseParams {
            incident_active_secs: default_active_secs(),
            block_ttl_secs: default_block_ttl(),
            contain_min_severity: default_contain_min(),
            open_min_severity: default_open_min(),
            approval_timeout_secs: default_approval_timeout(),
            autonomy: Default::default(),
            permanent: Vec::new(),
        }
    }
}
