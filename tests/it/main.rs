//! Warden's integration tests: one binary, one module per area.

mod daemon;
mod support;
