//! Warden's integration tests: one binary, one module per area.

mod approvals;
mod backup;
mod contain;
mod custom;
mod daemon;
mod definitions;
mod enforce;
mod fuzz_corpus;
mod intel;
mod journald;
mod kb;
mod layers;
mod llm;
mod memory;
mod network;
mod notify;
mod playbooks;
mod replay;
mod runtime;
mod sigma;
mod soak;
mod storage;
mod support;
mod syslog;
mod tail;
mod tls;
pub mod vuln;
