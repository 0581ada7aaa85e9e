//! The threat-detection toolbelt. `analyze_logs` runs the built-in authentication
//! detectors over parsed events, on event time.

pub mod analyze_logs;
pub mod analyze_network_traffic;
pub mod attack;
pub mod auth;
pub mod correlate;
pub mod correlate_events;
pub mod detect_ioc;
pub mod injection;
pub mod ioc;
pub mod network;
pub mod sigma;
pub mod tracked;

pub use auth::{AuthDetector, AuthDetectorState};

use serde::Deserialize;

pub use auth::{BruteForceParams, SshMode, SshParams, SuccessAfterFailuresParams};
pub use correlate::CorrelationParams;
pub use network::NetworkParams;

/// Parameters of the threat-detection agent's built-in detectors.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionParams {
    #[serde(default)]
    pub ssh: SshParams,
    #[serde(default)]
    pub brute_force: BruteForceParams,
    #[serde(default)]
    pub success_after_failures: SuccessAfterFailuresParams,
    #[serde(default)]
    pub network: NetworkParams,
    #[serde(default)]
    pub correlation: CorrelationParams,
    #[serde(default)]
    pub limits: StateLimits,
}

/// Caps on detector state keyed by what attackers choose (addresses, names): past a
/// cap the least recently seen keys are evicted (counted on `/metrics` as
/// `warden_state_evictions_total{table}`), so memory and the cost of a line stay flat
/// however many distinct keys a spray brings.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateLimits {
    /// Source addresses the authentication detectors follow.
    #[serde(default = "default_addresses")]
    pub addresses: usize,
    /// Sigma correlation groups kept (one per rule and group key).
    #[serde(default = "default_groups")]
    pub correlation_groups: usize,
    /// Groups of linked findings `correlate_events` keeps (one per attacker or campaign).
    #[serde(default = "default_groups")]
    pub campaigns: usize,
    /// Keys of each table of `analyze_network_traffic` (source–destination pairs, above
    /// all: about 600 bytes a pair, its beacon series and strobe count together).
    #[serde(default = "default_network_keys")]
    pub network_keys: usize,
}

/// What the default memory budget allows (an eighth of it at about 600 bytes a pair).
fn default_network_keys() -> usize {
    100_000
}

/// What the default memory budget (512 MiB) allows: a sixteenth of it at about 2 KB an
/// address (see `config::MemoryShares`).
fn default_addresses() -> usize {
    16_384
}

fn default_groups() -> usize {
    sigma::GROUPS
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            addresses: default_addresses(),
            correlation_groups: default_groups(),
            campaigns: default_groups(),
            network_keys: default_network_keys(),
        }
    }
}

impl StateLimits {
    /// These limits lowered to what the memory budget allows (never raised).
    pub fn within(self, m: &crate::config::MemoryShares) -> StateLimits {
        StateLimits {
            addresses: self.addresses.min(m.detector_addresses),
            correlation_groups: self.correlation_groups.min(m.correlation_groups),
            campaigns: self.campaigns.min(m.correlation_groups),
            network_keys: self.network_keys.min(m.network_keys),
        }
    }
}

/// Findings of a stateful detector, and the state entries a call changed (`None`:
/// deleted), keys relative to the agent's name.
#[derive(Debug, Default)]
pub struct Detected {
    pub findings: Vec<crate::messages::Finding>,
    pub keyed: Vec<(String, Option<serde_json::Value>)>,
    /// State keys evicted by this call (a table over its cap).
    pub evicted: u64,
}

/// `detect_ioc` and `correlate_events`: the findings they were given, enriched (intel
/// hits, campaign membership), the ones they opened, and the state entries that changed.
#[derive(Debug, Default)]
pub struct Intel {
    pub enriched: Vec<crate::messages::Finding>,
    pub added: Vec<crate::messages::Finding>,
    pub keyed: Vec<(String, Option<serde_json::Value>)>,
    /// State keys evicted by this call (a table over its cap).
    pub evicted: u64,
}
