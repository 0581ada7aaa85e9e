//! Tools and the per-agent `ToolExecutor` that runs them.
//!
//! A tool is one file implementing [`Tool`] (see [`tool`]), listed once in
//! [`registry`]. The toolbelts group them with the code behind them: [`detection`]
//! (threat detection), [`response`] (incident response) and [`vuln`] (vulnerability
//! management). [`command`] runs argv vectors, never a shell.

pub mod command;
pub mod detection;
pub mod executor;
pub mod model;
mod name;
pub mod registry;
pub mod response;
pub mod tool;
pub mod vuln;

pub use executor::{ExecuteTool, ToolExecutor};
pub use model::{ModelCx, Sinks, Snapshot};
pub use name::ToolName;
pub use tool::{Call, Run, StateError, Tool, ToolOutcome, ToolSetup, ToolSpec, reply, typed};
