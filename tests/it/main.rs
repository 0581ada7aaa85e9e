//! Warden's integration tests: one binary, one module per area.

mod daemon;
mod definitions;
mod enforce;
mod kb;
mod replay;
mod runtime;
mod sigma;
mod support;
mod syslog;
mod tail;
