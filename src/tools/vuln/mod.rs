//! Vulnerability management: inventory, offline OSV advisories, risk, remediation,
//! patch verification.

pub mod inventory;
pub mod osv;
pub mod remediate;
pub mod risk;
pub mod scan;
pub mod verify;
pub mod version;
