//! Vulnerability management: inventory, offline OSV advisories, risk, remediation,
//! patch verification.

pub mod inventory;
pub mod version;
pub mod osv;
