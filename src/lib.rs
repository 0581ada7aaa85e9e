//! Warden: an autonomous Security Operations Center in one binary.
//!
//! Log sources feed the threat-detection agent; its findings are routed by the
//! supervisor to incident response, which opens and triages incidents and contains
//! attackers (dry run by default). Every decision is stored in sled and recorded in a
//! hash-chained audit ledger.
//!
//! # Layout
//! - [`config`]: the TOML configuration and its embedded default.
//! - [`messages`]: plain data — envelopes, payloads, findings, incidents, actions.
//! - [`definitions`]: loading and linting the `actors/` folder.
//! - [`supervisor`]: the orchestrator — registry, routing, restarts, durable delivery.
//! - [`agents`]: the agents' logic and the generic actor shell.
//! - [`tools`]: the per-agent executor and the toolbelts.
//! - [`kb`] and [`store`]: the knowledge base actor and the only code that names sled.
//! - [`ingest`]: sources (file tail, replay, stdin) and parsers.
//! - [`admin`]: the HTTP API and its client.
//! - [`telemetry`]: tracing and metrics.
//! - [`runtime`]: assembles the above.
#![forbid(unsafe_code)]

pub mod admin;
pub mod agents;
pub mod config;
pub mod definitions;
pub mod ingest;
pub mod kb;
pub mod llm;
pub mod messages;
pub mod outbox;
pub mod routing;
pub mod runtime;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod text;
pub mod tools;
