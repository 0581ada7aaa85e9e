//! Log batches: what a source hands to the threat-detection agent, and its answer.

use uuid::Uuid;

use super::{Checkpoint, Event};

/// A batch of parsed lines from one source, with the checkpoint it advances to.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<BatchAck, BatchError>")]
pub struct LogBatch {
    pub id: Uuid,
    pub source: String,
    /// Per-source batch sequence number; `None` for batches that are not checkpointed
    /// (raw lines injected through the admin API).
    pub seq: Option<u64>,
    /// The checkpoint to store with the batch's effects.
    pub checkpoint: Option<Checkpoint>,
    /// Shared so that a re-send after an agent restart does not copy the events.
    pub events: std::sync::Arc<Vec<Event>>,
    pub stats: BatchStats,
    /// The file the lines were read from (file sources and replay): with each event's
    /// offset, where evidence lines can be found again.
    pub file: Option<String>,
}

/// Counts of what a batch covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchStats {
    pub lines: u64,
    pub invalid_utf8: u64,
    pub truncated: u64,
    /// Lines whose syslog header could not be parsed.
    pub unparsed: u64,
    /// The file was truncated in place just before these lines (copytruncate, or
    /// someone emptying a log).
    #[serde(default)]
    pub file_truncated: bool,
}

impl BatchStats {
    pub fn add(&mut self, o: &BatchStats) {
        self.lines += o.lines;
        self.invalid_utf8 += o.invalid_utf8;
        self.truncated += o.truncated;
        self.unparsed += o.unparsed;
        self.file_truncated |= o.file_truncated;
    }
}

/// The answer to a batch: whether it was applied or was a stale re-send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchAck {
    Applied { findings: usize },
    AlreadyApplied,
}

/// Why a batch was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// It can never be applied (the source must drop it and say so).
    #[error("batch rejected: {0}")]
    Rejected(String),
    /// Not now: the reader is restarting, failed or went away; send it again.
    #[error("batch not applied: {0}")]
    Unavailable(String),
}
