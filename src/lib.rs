//! Warden: an autonomous Security Operations Center in one binary.
//!
//! Log sources feed the threat-detection agent; its findings are routed by the
//! supervisor to incident response, which opens and triages incidents and contains
//! attackers (dry run by default). Every decision is stored in sled and recorded in a
//! hash-chained audit ledger.
//!
//! # Layout
//! In layers from the bottom; a module imports only modules of lower layers.
//! - [`text`]: untrusted text made safe to show and store (a leaf).
//! - [`messages`]: plain data — envelopes, payloads, findings, incidents, actions, log
//!   batches. [`store`]: the only code that names sled.
//! - [`config`]: the TOML configuration and its embedded default. [`telemetry`]:
//!   tracing and metrics.
//! - [`kb`]: the knowledge base actor and the audit ledger. [`llm`]: optional reasoning
//!   by a language model (only [`llm::rig`] names rig).
//! - [`ingest`]: sources (file tail, syslog, stdin, replay) and parsers. [`outbox`]:
//!   durable notifications.
//! - [`cluster`]: the fleet on NATS JetStream — shipping lines, reading shipped lines
//!   (the only code that names NATS).
//! - [`tools`]: one way to be a tool — the `Tool` trait, the registry of 14, the
//!   per-agent executor, the toolbelts.
//! - [`definitions`]: loading and linting the `actors/` folder.
//! - [`routing`]: which agent an envelope goes to, and how it is stored on the way.
//! - [`agents`]: the agents' logic (built-in and custom) and the generic actor shell.
//! - [`supervisor`]: the orchestrator — registry, restarts, durable delivery.
//! - [`admin`]: the HTTP API and its client. [`runtime`]: assembles the above.
#![forbid(unsafe_code)]

pub mod admin;
pub mod agents;
pub mod cluster;
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
