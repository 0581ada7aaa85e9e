//! The `KnowledgeBase` actor: the only owner of the store at run time.
//!
//! Owns: the [`Store`] and the head of the audit chain (next sequence number and hash).
//! Accepts: [`Commit`] (an atomic batch of typed writes plus audit entries) and typed
//! queries. Emits: nothing; it only answers.
//! Survives a restart: everything — it is the durable state. The audit head is
//! re-read from the last record on open.
//!
//! Every commit is one sled transaction across trees, so the effects of a batch and the
//! checkpoint (or inbox acknowledgement) that produced them land together or not at all.

pub mod audit;
mod reader;
mod records;

pub use reader::Reader;

use actix::prelude::*;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::messages::{Action, Checkpoint, Finding, InboxEntry, Incident};
use crate::store::{RawWrite, Store, StoreError, TreeName};
use audit::{AuditEntry, AuditRecord, AuditReport};
use records::{IncidentIn, IncidentOut, decode, encode, join};

/// Schema version of every stored record.
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode a {what} record: {source}")]
    Encode { what: &'static str, source: serde_json::Error },
    #[error("stored {what} record is unreadable: {source}")]
    Decode { what: &'static str, source: serde_json::Error },
    #[error("stored record has schema version {found}, this build reads {RECORD_VERSION}")]
    Version { found: u32 },
    #[error("the audit ledger's last page holds no record")]
    AuditEmptyPage,
    #[error("knowledge base is not running")]
    Gone,
    /// After a write failure the database is not touched again (a failed sled can spin
    /// forever on a read): everything waits for the restart in place.
    #[error("the knowledge base stopped after a storage failure ({0}); it resumes when the disk takes writes again")]
    StorageDown(String),
}

impl KbError {
    /// A backup or restore aimed at a place that already holds data.
    pub fn is_not_empty(&self) -> bool {
        matches!(self, KbError::Store(StoreError::NotEmpty(_)))
    }
}

/// Key of an inbox entry: creation time then id, so a scan delivers in routing order.
pub fn inbox_key(created_at: DateTime<Utc>, id: Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&(created_at.timestamp_nanos_opt().unwrap_or(0) as u64).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// One typed write of a [`Commit`].
#[derive(Debug, Clone)]
pub enum Write {
    Finding(Finding),
    Incident(std::sync::Arc<Incident>),
    Action {
        incident_id: Uuid,
        action: Action,
    },
    Handoff {
        id: Uuid,
        record: serde_json::Value,
    },
    Checkpoint {
        source: String,
        checkpoint: Checkpoint,
    },
    State {
        key: String,
        value: serde_json::Value,
    },
    StateDelete {
        key: String,
    },
    InboxPut(InboxEntry),
    InboxAck {
        created_at: DateTime<Utc>,
        id: Uuid,
    },
    /// A finding attached to an incident (or moved to another by a merge).
    Link {
        finding: Uuid,
        incident: Uuid,
    },
    Meta {
        key: String,
        value: serde_json::Value,
    },
    /// Vulnerability management's records (scans, remediation plans), by key.
    Vuln {
        key: String,
        value: serde_json::Value,
    },
}

/// Applies writes and appends audit entries atomically; with `flush`, answers only once
/// they are on disk.
#[derive(Message, Debug, Clone, Default)]
#[rtype(result = "Result<(), KbError>")]
pub struct Commit {
    pub writes: Vec<Write>,
    pub audit: Vec<AuditEntry>,
    pub flush: bool,
}

/// Typed queries.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<QueryAnswer, KbError>")]
pub enum Query {
    Incident(Uuid),
    Incidents,
    /// Every stored finding, by first event time.
    Findings,
    /// The findings last seen at or after a time (in no particular order).
    FindingsSince(DateTime<Utc>),
    Finding(Uuid),
    Checkpoint(String),
    Checkpoints,
    State(String),
    /// Every state record whose key starts with the prefix.
    StatePrefix(String),
    /// Every vulnerability record whose key starts with the prefix.
    VulnPrefix(String),
    InboxContains(Vec<u8>),
    InboxEmpty,
    /// The first `limit` pending inbox entries routed to one agent, oldest first.
    Inbox {
        target: String,
        limit: usize,
    },
    /// Pending inbox entries per agent.
    InboxDepths,
    VerifyAudit,
    /// Writes a consistent copy of the whole knowledge base (ledger included) into a new
    /// database in this directory (absent or empty).
    Backup(std::path::PathBuf),
    /// Every audit record, in order.
    AuditRecords,
    /// Every stored handoff.
    Handoffs,
    Stats,
}

#[derive(Debug, Clone)]
pub enum QueryAnswer {
    /// A backup written: its records, and the ledger it holds (records and head hash).
    Backup {
        records: u64,
        audit_records: u64,
        audit_head: String,
    },
    Incident(Option<Incident>),
    Incidents(Vec<Incident>),
    Findings(Vec<Finding>),
    Finding(Option<Finding>),
    Checkpoint(Option<Checkpoint>),
    Checkpoints(Vec<(String, Checkpoint)>),
    State(Option<serde_json::Value>),
    States(Vec<(String, serde_json::Value)>),
    Contains(bool),
    Inbox(Vec<InboxEntry>),
    Depths(std::collections::BTreeMap<String, usize>),
    Audit(AuditReport),
    AuditRecords(Vec<AuditRecord>),
    Handoffs(Vec<serde_json::Value>),
    Stats(KbStats),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct KbStats {
    pub findings: usize,
    pub incidents: usize,
    pub actions: usize,
    pub inbox: usize,
    pub audit_records: u64,
    pub size_on_disk: u64,
}

/// Makes everything committed so far durable.
#[derive(Message)]
#[rtype(result = "Result<(), KbError>")]
pub struct Flush;

/// The page cache of a backup being written.
const BACKUP_CACHE: u64 = 16 << 20;

/// The knowledge base: a store plus the audit head.
pub struct KnowledgeBase {
    store: Store,
    next_seq: u64,
    head: String,
    health: Arc<StorageHealth>,
}

/// Whether the database still takes writes. Once a write fails (a full disk, an I/O
/// error) the database refuses every later one, even after space returns: sled keeps
/// its first I/O error. The daemon then reopens it by restarting in place (see `cli`).
#[derive(Debug)]
pub struct StorageHealth {
    failed: std::sync::Mutex<Option<StorageFailure>>,
    /// Commits that failed on the database, since the process started.
    pub write_failures: std::sync::atomic::AtomicU64,
    /// Free bytes on the database's disk, as last measured (`u64::MAX`: not measured).
    pub free_bytes: std::sync::atomic::AtomicU64,
}

/// The first write failure of this process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StorageFailure {
    pub since: DateTime<Utc>,
    pub error: String,
}

impl Default for StorageHealth {
    fn default() -> Self {
        StorageHealth { failed: Default::default(), write_failures: Default::default(), free_bytes: u64::MAX.into() }
    }
}

impl StorageHealth {
    pub fn failure(&self) -> Option<StorageFailure> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `StorageDown` once a write failed: the database is not touched again.
    fn down(&self) -> Option<KbError> {
        self.failure().map(|f| KbError::StorageDown(f.error))
    }

    /// Passes a commit's or flush's result on, noting a database error.
    fn noted<T>(&self, res: Result<T, KbError>) -> Result<T, KbError> {
        if let Err(e) = &res {
            self.record(e);
        }
        res
    }

    fn record(&self, e: &KbError) {
        if let KbError::Store(err) = e {
            self.write_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                tracing::error!(error = %err, "the knowledge base cannot write: findings, incidents and checkpoints wait until it can");
                *f = Some(StorageFailure { since: Utc::now(), error: err.to_string() });
            }
        }
    }
}

impl KnowledgeBase {
    /// Opens the knowledge base over a store, reading the audit head.
    pub fn new(store: Store) -> Result<KnowledgeBase, KbError> {
        let (next_seq, head) = match store.last(TreeName::Audit)? {
            Some((_, v)) => {
                let page = audit::read_page(&v).map_err(|source| KbError::Decode { what: "audit", source })?;
                match page.into_iter().last() {
                    Some(s) => (s.record.seq + 1, s.hash),
                    None => return Err(KbError::AuditEmptyPage),
                }
            }
            None => (0, audit::GENESIS.to_string()),
        };
        records::link_findings(&store)?;
        Ok(KnowledgeBase { store, next_seq, head, health: Arc::default() })
    }

    /// The health this knowledge base reports to (shared with its [`Kb`] handles).
    pub fn health(&self) -> Arc<StorageHealth> {
        self.health.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A reader of this knowledge base, for use beside the actor.
    pub fn reader(&self) -> Reader {
        Reader::new(self.store.clone(), self.health.clone())
    }

    /// Applies a commit synchronously (the actor's handler and tests use this).
    pub fn commit(&mut self, c: &Commit) -> Result<(), KbError> {
        let mut raw = Vec::with_capacity(c.writes.len() + c.audit.len());
        for w in &c.writes {
            raw.push(self.raw_write(w)?);
        }
        let mut seq = self.next_seq;
        let mut head = self.head.clone();
        let now = Utc::now();
        // Pages of about PAGE_BYTES: sled rewrites a leaf (16 keys) whole, and past a
        // quarter of its segment size (128 KiB) it writes the leaf as a file of its own.
        let (mut page, mut page_seq, mut page_bytes) = (Vec::new(), seq, 0);
        for entry in &c.audit {
            let (hash, value) = audit::seal(&audit::RecordRef { seq, at: &now, prev: &head, entry });
            page_bytes += value.len();
            page.push(value);
            head = hash;
            seq += 1;
            if page_bytes >= audit::PAGE_BYTES {
                let key = page_seq.to_be_bytes().to_vec();
                raw.push(RawWrite::Put { tree: TreeName::Audit, key, value: audit::page(std::mem::take(&mut page)) });
                (page_seq, page_bytes) = (seq, 0);
            }
        }
        if !page.is_empty() {
            raw.push(RawWrite::Put {
                tree: TreeName::Audit,
                key: page_seq.to_be_bytes().to_vec(),
                value: audit::page(page),
            });
        }
        self.store.apply(&raw)?;
        self.next_seq = seq;
        self.head = head;
        Ok(())
    }

    fn raw_write(&self, w: &Write) -> Result<RawWrite, KbError> {
        Ok(match w {
            Write::Finding(f) => put(TreeName::Findings, f.id.as_bytes().to_vec(), encode("finding", f)?),
            Write::Incident(i) => {
                put(TreeName::Incidents, i.id.as_bytes().to_vec(), encode("incident", &IncidentOut::from(i.as_ref()))?)
            }
            Write::Action { incident_id, action } => {
                let rec = serde_json::json!({ "incident_id": incident_id, "action": action });
                put(TreeName::Actions, action.id.as_bytes().to_vec(), encode("action", &rec)?)
            }
            Write::Handoff { id, record } => {
                put(TreeName::Handoffs, id.as_bytes().to_vec(), encode("handoff", record)?)
            }
            Write::Checkpoint { source, checkpoint } => {
                put(TreeName::Checkpoints, source.as_bytes().to_vec(), encode("checkpoint", checkpoint)?)
            }
            Write::State { key, value } => put(TreeName::State, key.as_bytes().to_vec(), encode("state", value)?),
            Write::StateDelete { key } => RawWrite::Delete { tree: TreeName::State, key: key.as_bytes().to_vec() },
            Write::InboxPut(e) => {
                put(TreeName::Inbox, inbox_key(e.envelope.created_at, e.envelope.id), encode("inbox", e)?)
            }
            Write::InboxAck { created_at, id } => {
                RawWrite::Delete { tree: TreeName::Inbox, key: inbox_key(*created_at, *id) }
            }
            Write::Link { finding, incident } => {
                put(TreeName::Links, finding.as_bytes().to_vec(), encode("link", incident)?)
            }
            Write::Meta { key, value } => put(TreeName::Meta, key.as_bytes().to_vec(), encode("meta", value)?),
            Write::Vuln { key, value } => put(TreeName::Vulns, key.as_bytes().to_vec(), encode("vuln", value)?),
        })
    }

    /// Recomputes the audit chain.
    pub fn verify_audit(&self) -> Result<AuditReport, KbError> {
        Ok(audit::verify(self.store.iter(TreeName::Audit))?)
    }

    /// Answers a query synchronously.
    pub fn query(&self, q: &Query) -> Result<QueryAnswer, KbError> {
        let s = &self.store;
        Ok(match q {
            Query::Incident(id) => QueryAnswer::Incident(match s.get(TreeName::Incidents, id.as_bytes())? {
                Some(v) => Some(join(s, decode::<IncidentIn>("incident", &v)?)?),
                None => None,
            }),
            Query::Incidents => {
                let mut all = Vec::new();
                for item in s.iter(TreeName::Incidents) {
                    let (_, v) = item?;
                    all.push(join(s, decode::<IncidentIn>("incident", &v)?)?);
                }
                all.sort_by_key(|i| i.created_at);
                QueryAnswer::Incidents(all)
            }
            Query::Findings => {
                let mut all = Vec::new();
                for item in s.iter(TreeName::Findings) {
                    let (_, v) = item?;
                    all.push(decode::<Finding>("finding", &v)?);
                }
                all.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.id.cmp(&b.id)));
                QueryAnswer::Findings(all)
            }
            Query::FindingsSince(since) => {
                let mut found = Vec::new();
                for item in s.iter(TreeName::Findings) {
                    let (_, v) = item?;
                    let f = decode::<Finding>("finding", &v)?;
                    if f.last_seen >= *since {
                        found.push(f);
                    }
                }
                QueryAnswer::Findings(found)
            }
            Query::Finding(id) => QueryAnswer::Finding(
                s.get(TreeName::Findings, id.as_bytes())?.map(|v| decode("finding", &v)).transpose()?,
            ),
            Query::Checkpoint(src) => QueryAnswer::Checkpoint(
                s.get(TreeName::Checkpoints, src.as_bytes())?.map(|v| decode("checkpoint", &v)).transpose()?,
            ),
            Query::Checkpoints => {
                let mut out = Vec::new();
                for item in s.iter(TreeName::Checkpoints) {
                    let (k, v) = item?;
                    out.push((String::from_utf8_lossy(&k).into_owned(), decode("checkpoint", &v)?));
                }
                QueryAnswer::Checkpoints(out)
            }
            Query::StatePrefix(prefix) => {
                let mut out = Vec::new();
                for (k, v) in s.scan_prefix(TreeName::State, prefix.as_bytes())? {
                    out.push((String::from_utf8_lossy(&k).into_owned(), decode("state", &v)?));
                }
                QueryAnswer::States(out)
            }
            Query::VulnPrefix(prefix) => {
                let mut out = Vec::new();
                for (k, v) in s.scan_prefix(TreeName::Vulns, prefix.as_bytes())? {
                    out.push((String::from_utf8_lossy(&k).into_owned(), decode("vuln", &v)?));
                }
                QueryAnswer::States(out)
            }
            Query::InboxEmpty => QueryAnswer::Contains(s.is_empty(TreeName::Inbox)),
            Query::InboxContains(key) => QueryAnswer::Contains(s.get(TreeName::Inbox, key)?.is_some()),
            Query::State(key) => {
                QueryAnswer::State(s.get(TreeName::State, key.as_bytes())?.map(|v| decode("state", &v)).transpose()?)
            }
            Query::Inbox { target, limit } => QueryAnswer::Inbox(inbox_page(s, target, *limit)?),
            Query::InboxDepths => QueryAnswer::Depths(inbox_depths(s)?),
            Query::VerifyAudit => QueryAnswer::Audit(audit::verify(s.iter(TreeName::Audit))?),
            Query::Backup(dir) => QueryAnswer::Backup {
                records: s.snapshot_to(dir, BACKUP_CACHE)?,
                audit_records: self.next_seq,
                audit_head: self.head.clone(),
            },
            Query::AuditRecords => {
                let mut out = Vec::new();
                for item in s.iter(TreeName::Audit) {
                    let (_, v) = item?;
                    let page = audit::read_page(&v).map_err(|source| KbError::Decode { what: "audit", source })?;
                    out.extend(page.into_iter().map(|stored| stored.record));
                }
                QueryAnswer::AuditRecords(out)
            }
            Query::Handoffs => {
                let mut out = Vec::new();
                for item in s.iter(TreeName::Handoffs) {
                    let (_, v) = item?;
                    out.push(decode("handoff", &v)?);
                }
                QueryAnswer::Handoffs(out)
            }
            Query::Stats => QueryAnswer::Stats(KbStats {
                findings: s.len(TreeName::Findings),
                incidents: s.len(TreeName::Incidents),
                actions: s.len(TreeName::Actions),
                inbox: s.len(TreeName::Inbox),
                audit_records: self.next_seq,
                size_on_disk: s.size_on_disk(),
            }),
        })
    }
}

fn put(tree: TreeName, key: Vec<u8>, value: Vec<u8>) -> RawWrite {
    RawWrite::Put { tree, key, value }
}

impl Actor for KnowledgeBase {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Err(e) = self.store.flush_blocking() {
            tracing::error!(error = %e, "flushing the knowledge base on stop failed");
        }
    }
}

impl Handler<Commit> for KnowledgeBase {
    type Result = ResponseFuture<Result<(), KbError>>;

    fn handle(&mut self, msg: Commit, _: &mut Self::Context) -> Self::Result {
        if let Some(e) = self.health.down() {
            return Box::pin(async move { Err(e) });
        }
        let res = self.commit(&msg);
        let (store, health) = (self.store.clone(), self.health.clone());
        Box::pin(async move {
            health.noted(match res {
                Ok(()) if msg.flush => store.flush().await.map_err(KbError::from),
                other => other,
            })
        })
    }
}

impl Handler<Query> for KnowledgeBase {
    type Result = Result<QueryAnswer, KbError>;

    fn handle(&mut self, msg: Query, _: &mut Self::Context) -> Self::Result {
        if let Some(e) = self.health.down() {
            return Err(e);
        }
        self.query(&msg)
    }
}

impl Handler<Flush> for KnowledgeBase {
    type Result = ResponseFuture<Result<(), KbError>>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        if let Some(e) = self.health.down() {
            return Box::pin(async move { Err(e) });
        }
        let (store, health) = (self.store.clone(), self.health.clone());
        Box::pin(async move { health.noted(store.flush().await.map_err(KbError::from)) })
    }
}

/// The first `limit` inbox entries routed to `target`, oldest first.
fn inbox_page(s: &Store, target: &str, limit: usize) -> Result<Vec<InboxEntry>, KbError> {
    let mut out = Vec::new();
    for item in s.iter(TreeName::Inbox) {
        if out.len() >= limit {
            break;
        }
        let (_, v) = item?;
        // The target first: entries for other agents are not decoded whole.
        if decode::<records::InboxTarget>("inbox", &v)?.target == target {
            out.push(decode("inbox", &v)?);
        }
    }
    Ok(out)
}

/// Pending inbox entries per agent, without decoding the entries whole.
fn inbox_depths(s: &Store) -> Result<std::collections::BTreeMap<String, usize>, KbError> {
    let mut depths = std::collections::BTreeMap::new();
    for item in s.iter(TreeName::Inbox) {
        let (_, v) = item?;
        *depths.entry(decode::<records::InboxTarget>("inbox", &v)?.target).or_insert(0) += 1;
    }
    Ok(depths)
}

/// A cloneable handle to the knowledge base actor with typed helpers.
#[derive(Clone)]
pub struct Kb {
    pub addr: Addr<KnowledgeBase>,
    pub health: Arc<StorageHealth>,
    /// Reads of committed records without a message to the actor.
    pub reader: Reader,
}

impl Kb {
    /// A knowledge base on a temporary database, started on the current actix system
    /// (for tests).
    #[cfg(test)]
    pub fn temporary() -> Kb {
        let store = crate::store::Store::temporary(1 << 20).expect("a temporary store");
        let kb = KnowledgeBase::new(store).expect("a fresh knowledge base");
        Kb { health: kb.health(), reader: kb.reader(), addr: kb.start() }
    }

    pub async fn commit(&self, c: Commit) -> Result<(), KbError> {
        self.addr.send(c).await.map_err(|_| KbError::Gone)?
    }

    /// Stores one incident that no agent owns (the supervisor's and the sources' own,
    /// e.g. a blind spot) and makes it durable.
    pub async fn store_incident(&self, incident: Incident) -> Result<(), KbError> {
        self.commit(Commit { writes: vec![Write::Incident(Arc::new(incident))], flush: true, ..Commit::default() })
            .await
    }

    pub async fn query(&self, q: Query) -> Result<QueryAnswer, KbError> {
        self.addr.send(q).await.map_err(|_| KbError::Gone)?
    }

    pub async fn flush(&self) -> Result<(), KbError> {
        self.addr.send(Flush).await.map_err(|_| KbError::Gone)?
    }

    pub async fn incident(&self, id: Uuid) -> Result<Option<Incident>, KbError> {
        match self.query(Query::Incident(id)).await? {
            QueryAnswer::Incident(i) => Ok(i),
            _ => Ok(None),
        }
    }

    pub async fn incidents(&self) -> Result<Vec<Incident>, KbError> {
        match self.query(Query::Incidents).await? {
            QueryAnswer::Incidents(i) => Ok(i),
            _ => Ok(Vec::new()),
        }
    }

    /// The findings last seen at or after `since` (the others are not loaded).
    pub async fn findings_since(&self, since: DateTime<Utc>) -> Result<Vec<Finding>, KbError> {
        match self.query(Query::FindingsSince(since)).await? {
            QueryAnswer::Findings(f) => Ok(f),
            _ => Ok(Vec::new()),
        }
    }

    pub async fn findings(&self) -> Result<Vec<Finding>, KbError> {
        match self.query(Query::Findings).await? {
            QueryAnswer::Findings(f) => Ok(f),
            _ => Ok(Vec::new()),
        }
    }

    pub async fn checkpoint(&self, source: &str) -> Result<Option<Checkpoint>, KbError> {
        match self.query(Query::Checkpoint(source.to_string())).await? {
            QueryAnswer::Checkpoint(c) => Ok(c),
            _ => Ok(None),
        }
    }

    pub async fn checkpoints(&self) -> Result<Vec<(String, Checkpoint)>, KbError> {
        match self.query(Query::Checkpoints).await? {
            QueryAnswer::Checkpoints(c) => Ok(c),
            _ => Ok(Vec::new()),
        }
    }

    pub async fn inbox_contains(&self, created_at: DateTime<Utc>, id: Uuid) -> Result<bool, KbError> {
        match self.query(Query::InboxContains(inbox_key(created_at, id))).await? {
            QueryAnswer::Contains(b) => Ok(b),
            _ => Ok(false),
        }
    }

    pub async fn states(&self, prefix: &str) -> Result<Vec<(String, serde_json::Value)>, KbError> {
        match self.query(Query::StatePrefix(prefix.to_string())).await? {
            QueryAnswer::States(s) => Ok(s),
            _ => Ok(Vec::new()),
        }
    }

    /// Vulnerability records whose key starts with `prefix`.
    pub async fn vulns(&self, prefix: &str) -> Result<Vec<(String, serde_json::Value)>, KbError> {
        match self.query(Query::VulnPrefix(prefix.to_string())).await? {
            QueryAnswer::States(s) => Ok(s),
            _ => Ok(Vec::new()),
        }
    }

    pub async fn inbox_empty(&self) -> Result<bool, KbError> {
        match self.query(Query::InboxEmpty).await? {
            QueryAnswer::Contains(b) => Ok(b),
            _ => Ok(false),
        }
    }

    pub async fn state(&self, key: &str) -> Result<Option<serde_json::Value>, KbError> {
        match self.query(Query::State(key.to_string())).await? {
            QueryAnswer::State(s) => Ok(s),
            _ => Ok(None),
        }
    }

    /// The first `limit` pending inbox entries routed to `target`, oldest first.
    pub async fn inbox(&self, target: &str, limit: usize) -> Result<Vec<InboxEntry>, KbError> {
        match self.query(Query::Inbox { target: target.to_string(), limit }).await? {
            QueryAnswer::Inbox(e) => Ok(e),
            _ => Ok(Vec::new()),
        }
    }

    /// Pending inbox entries per agent.
    pub async fn inbox_depths(&self) -> Result<std::collections::BTreeMap<String, usize>, KbError> {
        match self.query(Query::InboxDepths).await? {
            QueryAnswer::Depths(d) => Ok(d),
            _ => Ok(Default::default()),
        }
    }

    /// Writes a consistent copy of the knowledge base into `dir` (see [`Query::Backup`]):
    /// `(records, audit records, audit head)`.
    pub async fn backup(&self, dir: std::path::PathBuf) -> Result<(u64, u64, String), KbError> {
        match self.query(Query::Backup(dir)).await? {
            QueryAnswer::Backup { records, audit_records, audit_head } => Ok((records, audit_records, audit_head)),
            _ => Err(KbError::Gone),
        }
    }

    pub async fn verify_audit(&self) -> Result<AuditReport, KbError> {
        match self.query(Query::VerifyAudit).await? {
            QueryAnswer::Audit(r) => Ok(r),
            _ => Err(KbError::Gone),
        }
    }

    pub async fn audit_records(&self) -> Result<Vec<AuditRecord>, KbError> {
        match self.query(Query::AuditRecords).await? {
            QueryAnswer::AuditRecords(r) => Ok(r),
            _ => Err(KbError::Gone),
        }
    }

    pub async fn handoffs(&self) -> Result<Vec<serde_json::Value>, KbError> {
        match self.query(Query::Handoffs).await? {
            QueryAnswer::Handoffs(h) => Ok(h),
            _ => Err(KbError::Gone),
        }
    }

    pub async fn stats(&self) -> Result<KbStats, KbError> {
        match self.query(Query::Stats).await? {
            QueryAnswer::Stats(s) => Ok(s),
            _ => Err(KbError::Gone),
        }
    }
}
