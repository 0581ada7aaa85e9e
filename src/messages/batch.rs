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
    /// Shipping: the lines a parser must read before the batch's first (a Zeek TSV
    /// header in effect when the batch starts in the middle of a file).
    pub preamble: Vec<String>,
    /// What the source's lane found in the batch before sending it, if it has one.
    pub matched: Option<Prematched>,
}

/// The stateless part of detection, done on the source's own thread before the batch
/// is sent (each source in parallel): opaque here, read by the detection tool whose
/// rules made it (`by` names them) and ignored by any other.
#[derive(Clone)]
pub struct Prematched {
    /// The identity of the rules that matched.
    pub by: u64,
    pub results: std::sync::Arc<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for Prematched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prematched").field("by", &self.by).finish_non_exhaustive()
    }
}

impl LogBatch {
    /// A batch of events that is not checkpointed (replays).
    pub fn of(source: &str, events: Vec<Event>, stats: BatchStats) -> LogBatch {
        LogBatch {
            id: Uuid::now_v7(),
            source: source.to_string(),
            seq: None,
            checkpoint: None,
            events: std::sync::Arc::new(events),
            stats,
            file: None,
            preamble: Vec::new(),
            matched: None,
        }
    }
}

/// Counts of what a batch covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchStats {
    pub lines: u64,
    pub invalid_utf8: u64,
    pub truncated: u64,
    /// Lines no parser understood (they still reach keyword rules).
    pub unparsed: u64,
    /// The file was truncated in place just before these lines (copytruncate, or
    /// someone emptying a log).
    #[serde(default)]
    pub file_truncated: bool,
    /// Lines each parser took.
    #[serde(default)]
    pub parsers: ParserCounts,
}

impl BatchStats {
    pub fn add(&mut self, o: &BatchStats) {
        self.lines += o.lines;
        self.invalid_utf8 += o.invalid_utf8;
        self.truncated += o.truncated;
        self.unparsed += o.unparsed;
        self.file_truncated |= o.file_truncated;
        self.parsers.add(&o.parsers);
    }
}

/// The parsers a line can be taken by: a program's messages in a syslog line, a
/// service's own log format, or a whole format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parser {
    Sshd,
    Dropbear,
    Pam,
    Sudo,
    Su,
    Accounts,
    Logind,
    Postfix,
    Dovecot,
    Exim,
    Courier,
    Cyrus,
    Vsftpd,
    Proftpd,
    PureFtpd,
    Mysql,
    Postgresql,
    ApacheError,
    NginxError,
    Audit,
    WebAccess,
    Json,
    Zeek,
    /// A syslog line of a program no parser above reads (its header is understood).
    Syslog,
}

impl Parser {
    pub const ALL: [Parser; 24] = [
        Parser::Sshd,
        Parser::Dropbear,
        Parser::Pam,
        Parser::Sudo,
        Parser::Su,
        Parser::Accounts,
        Parser::Logind,
        Parser::Postfix,
        Parser::Dovecot,
        Parser::Exim,
        Parser::Courier,
        Parser::Cyrus,
        Parser::Vsftpd,
        Parser::Proftpd,
        Parser::PureFtpd,
        Parser::Mysql,
        Parser::Postgresql,
        Parser::ApacheError,
        Parser::NginxError,
        Parser::Audit,
        Parser::WebAccess,
        Parser::Json,
        Parser::Zeek,
        Parser::Syslog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Parser::Sshd => "sshd",
            Parser::Dropbear => "dropbear",
            Parser::Pam => "pam",
            Parser::Sudo => "sudo",
            Parser::Su => "su",
            Parser::Accounts => "accounts",
            Parser::Logind => "logind",
            Parser::Postfix => "postfix",
            Parser::Dovecot => "dovecot",
            Parser::Exim => "exim",
            Parser::Courier => "courier",
            Parser::Cyrus => "cyrus",
            Parser::Vsftpd => "vsftpd",
            Parser::Proftpd => "proftpd",
            Parser::PureFtpd => "pure-ftpd",
            Parser::Mysql => "mysql",
            Parser::Postgresql => "postgresql",
            Parser::ApacheError => "apache-error",
            Parser::NginxError => "nginx-error",
            Parser::Audit => "audit",
            Parser::WebAccess => "web-access",
            Parser::Json => "json",
            Parser::Zeek => "zeek",
            Parser::Syslog => "syslog",
        }
    }

    /// Its slot in [`ParserCounts`]: `ALL` lists the parsers in declaration order (a
    /// test checks), so this is the discriminant — no search on every line.
    fn index(self) -> usize {
        self as usize
    }
}

/// Lines per parser (serialised as a map of the parsers that took any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserCounts([u64; Parser::ALL.len()]);

impl ParserCounts {
    pub fn inc(&mut self, p: Parser) {
        self.0[p.index()] += 1;
    }

    pub fn get(&self, p: Parser) -> u64 {
        self.0[p.index()]
    }

    pub fn add(&mut self, o: &ParserCounts) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += b;
        }
    }

    /// The parsers that took lines, with how many.
    pub fn iter(&self) -> impl Iterator<Item = (Parser, u64)> + '_ {
        Parser::ALL.iter().map(|p| (*p, self.get(*p))).filter(|(_, n)| *n > 0)
    }
}

impl serde::Serialize for ParserCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter().map(|(p, n)| (p.as_str(), n)))
    }
}

impl<'de> serde::Deserialize<'de> for ParserCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<String, u64>::deserialize(d)?;
        let mut out = ParserCounts::default();
        for (name, n) in m {
            if let Some(p) = Parser::ALL.iter().find(|p| p.as_str() == name) {
                out.0[p.index()] += n;
            }
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_are_listed_in_declaration_order_and_counted_apart() {
        for (i, p) in Parser::ALL.iter().enumerate() {
            assert_eq!(p.index(), i, "{}", p.as_str());
        }
        let mut c = ParserCounts::default();
        c.inc(Parser::Postfix);
        c.inc(Parser::Postfix);
        c.inc(Parser::Syslog);
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json, serde_json::json!({"postfix": 2, "syslog": 1}));
        assert_eq!(serde_json::from_value::<ParserCounts>(json).unwrap(), c);
    }
}
