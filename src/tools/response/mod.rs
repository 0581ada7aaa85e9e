//! The incident-response toolbelt: triage and containment.

pub mod actions;
pub mod contain;
pub mod evidence;
pub mod playbook;
pub mod report;
pub mod triage;

pub use contain::{ContainSpec, Protected, block_ip_argv};
pub use triage::{TriageResult, triage};
