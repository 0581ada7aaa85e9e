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
