//! The incident-response toolbelt: `triage_incident`, `execute_playbook`,
//! `contain_threat`, `collect_evidence` and `generate_report`, with what they are made
//! of — triage rules and assets, playbooks and their interpreter, containment plans and
//! the protected set, the evidence store, reports.

pub mod actions;
pub mod collect_evidence;
pub mod contain;
pub mod contain_threat;
pub mod enforce;
pub mod evidence;
pub mod execute_playbook;
pub mod generate_report;
pub mod playbook;
pub mod report;
pub mod triage;
pub mod triage_incident;

pub use contain::{ContainSpec, Protected, block_ip_argv};
pub use triage::triage;
