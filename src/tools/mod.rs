//! Tools and the per-agent `ToolExecutor` that runs them.

pub mod detection;
pub mod executor;
mod name;
pub mod response;
pub mod vuln;

pub use executor::{DetectionRestore, ExecuteTool, ToolCall, ToolExecutor, ToolOutcome, ToolOutput};
pub use name::ToolName;
