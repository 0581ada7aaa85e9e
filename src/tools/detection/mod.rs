//! The threat-detection toolbelt. `analyze_logs` runs the built-in authentication
//! detectors over parsed events, on event time.

pub mod attack;
pub mod auth;
pub mod correlate;
pub mod injection;
pub mod ioc;
pub mod network;
pub mod sigma;
pub mod tracked;

pub use auth::{AuthDetector, AuthDetectorState};

use serde::Deserialize;

pub use auth::{BruteForceParams, SuccessAfterFailuresParams};
pub use correlate::CorrelationParams;
pub use network::NetworkParams;

/// Parameters of the threat-detection agent's built-in detectors.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionParams {
    #[serde(default)]
    pub brute_force: BruteForceParams,
    #[serde(default)]
    pub success_after_failures: SuccessAfterFailuresParams,
    #[serde(default)]
    pub network: NetworkParams,
    #[serde(default)]
    pub correlation: CorrelationParams,
}
