//! The binary's commands (not part of the library): the daemon and lint, replay, the
//! admin API's clients, vulnerability management. Like `main.rs`, they use `anyhow`.

pub mod client;
pub mod daemon;
pub mod data_dir;
pub mod enforce;
pub mod memory;
pub mod replay;
pub mod ship;
pub mod storage;
pub mod vuln;
