//! What the benchmarks that run `warden run` share: starting it, and reading `/metrics`.

// Each bench uses some of them.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts the release `warden run --config CONFIG`, quiet; `WARDEN_BIN` names another
/// binary (an older build, to alternate with).
pub fn spawn(config: &Path) -> Child {
    let bin = std::env::var_os("WARDEN_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_warden").into());
    Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A counter from `/metrics`, by its name with labels (`warden_source_lines_total{source="web"}`).
pub fn metric(addr: std::net::SocketAddr, token: &str, name: &str) -> Option<u64> {
    let r = warden::admin::client::request(addr, "GET", "/metrics", Some(token), None).ok()?;
    r.body.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).map(|v| v as u64)
}
