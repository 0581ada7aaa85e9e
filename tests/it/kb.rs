//! The knowledge base on a real sled database: atomic commits, versioned records, and
//! the hash-chained audit ledger with tamper detection.

use warden::kb::audit::{AuditEntry, AuditKind};
use warden::kb::{Commit, KnowledgeBase, Query, QueryAnswer, Write};
use warden::messages::Checkpoint;
use warden::store::{Store, TreeName};

/// Opens the store, waiting for a store dropped a moment ago to release its lock.
fn open(dir: &std::path::Path) -> Store {
    crate::support::eventually(10, "the database lock", || Store::open(dir, 8 << 20).ok())
}

fn entry(i: u32) -> AuditEntry {
    AuditEntry::new("test", AuditKind::ToolCall, format!("call-{i}"), serde_json::json!({ "n": i }))
}

#[test]
fn a_tampered_audit_record_is_named_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    {
        let mut kb = KnowledgeBase::new(open(&db)).unwrap();
        for i in 0..10 {
            kb.commit(&Commit { audit: vec![entry(i)], ..Commit::default() }).unwrap();
        }
        let report = kb.verify_audit().unwrap();
        assert!(report.ok);
        assert_eq!(report.records, 10);
        kb.store().flush_blocking().unwrap();
    }
    // Reopening continues the chain from the stored head.
    {
        let mut kb = KnowledgeBase::new(open(&db)).unwrap();
        kb.commit(&Commit { audit: vec![entry(10), entry(11)], ..Commit::default() }).unwrap();
        assert_eq!(kb.verify_audit().unwrap().records, 12);
        // Tamper: change the detail of record 6 without fixing its hash.
        let key = 6u64.to_be_bytes();
        let raw = kb.store().get(TreeName::Audit, &key).unwrap().unwrap();
        let forged = String::from_utf8(raw).unwrap().replace("\"n\":6", "\"n\":666");
        kb.store().put_raw(TreeName::Audit, &key, forged.as_bytes()).unwrap();
        let report = kb.verify_audit().unwrap();
        assert!(!report.ok);
        let broken = report.first_broken.unwrap();
        assert_eq!(broken.seq, 6);
        assert!(broken.reason.contains("does not match its hash"), "{}", broken.reason);
        kb.store().flush_blocking().unwrap();
    }
    // The CLI reports it too (offline, as the daemon is not running).
    let out = std::process::Command::new(crate::support::BIN)
        .args(["audit", "verify", "--offline", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN at record 6"), "{out:?}");
}

#[test]
fn a_rechained_forgery_breaks_the_next_link() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = KnowledgeBase::new(Store::open(tmp.path(), 8 << 20).unwrap()).unwrap();
    kb.commit(&Commit { audit: (0..5).map(entry).collect(), ..Commit::default() }).unwrap();
    // One commit is one page (one key) holding its five records.
    let raw = kb.store().get(TreeName::Audit, &0u64.to_be_bytes()).unwrap().unwrap();
    assert!(kb.store().get(TreeName::Audit, &2u64.to_be_bytes()).unwrap().is_none());
    // Re-chaining a forged record is detected by the next record's link.
    let mut page: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let v = &mut page[2];
    v["record"]["detail"]["n"] = 99.into();
    let rec: warden::kb::audit::AuditRecord = serde_json::from_value(v["record"].clone()).unwrap();
    v["hash"] = warden::kb::audit::chain_hash(&rec.prev, &rec).into();
    kb.store().put_raw(TreeName::Audit, &0u64.to_be_bytes(), page.to_string().as_bytes()).unwrap();
    let broken = kb.verify_audit().unwrap().first_broken.unwrap();
    assert_eq!(broken.seq, 3);
    assert!(broken.reason.contains("previous-hash link"), "{}", broken.reason);
}

#[test]
fn commits_are_atomic_and_records_versioned() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = KnowledgeBase::new(Store::open(tmp.path(), 8 << 20).unwrap()).unwrap();
    let cp = Checkpoint { inode: 7, offset: 42, seq: 3, ..Checkpoint::default() };
    kb.commit(&Commit {
        writes: vec![
            Write::Checkpoint { source: "auth".into(), checkpoint: cp.clone() },
            Write::State { key: "x".into(), value: serde_json::json!({ "a": 1 }) },
        ],
        audit: vec![entry(0)],
        flush: false,
    })
    .unwrap();
    match kb.query(&Query::Checkpoint("auth".into())).unwrap() {
        QueryAnswer::Checkpoint(Some(got)) => assert_eq!(got, cp),
        other => panic!("{other:?}"),
    }
    let raw = kb.store().get(TreeName::Checkpoints, b"auth").unwrap().unwrap();
    assert!(String::from_utf8(raw).unwrap().starts_with("{\"v\":1,"), "records carry their schema version");
    // A record from a future schema is refused, not misread.
    kb.store().put_raw(TreeName::State, b"x", br#"{"v":99,"data":{}}"#).unwrap();
    let err = kb.query(&Query::State("x".into())).unwrap_err().to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

/// The inbox is read a page at a time per agent (a flood's backlog stays on disk) and
/// counted per agent without loading it.
#[test]
fn the_inbox_is_read_a_page_at_a_time_per_agent() {
    use warden::messages::{Envelope, InboxEntry, Instruction, Payload};
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = KnowledgeBase::new(Store::open(tmp.path(), 8 << 20).unwrap()).unwrap();
    let entries: Vec<InboxEntry> = (0..10)
        .map(|i| {
            let mut envelope =
                Envelope::new("test", Payload::Instruction(Instruction { text: format!("n{i}"), incident_id: None }));
            envelope.created_at += chrono::Duration::seconds(i);
            InboxEntry { target: if i % 2 == 0 { "even" } else { "odd" }.into(), envelope, attempts: 0 }
        })
        .collect();
    kb.commit(&Commit { writes: entries.iter().cloned().map(Write::InboxPut).collect(), ..Commit::default() }).unwrap();
    let page = |target: &str, limit| match kb.query(&Query::Inbox { target: target.into(), limit }).unwrap() {
        QueryAnswer::Inbox(e) => e.into_iter().map(|e| e.envelope.id).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let odd: Vec<_> = entries.iter().filter(|e| e.target == "odd").map(|e| e.envelope.id).collect();
    assert_eq!(page("odd", 3), odd[..3], "the oldest first, only the agent's own");
    assert_eq!(page("odd", 100), odd);
    assert!(page("nobody", 5).is_empty());
    match kb.query(&Query::InboxDepths).unwrap() {
        QueryAnswer::Depths(d) => {
            assert_eq!(d.into_iter().collect::<Vec<_>>(), [("even".into(), 5), ("odd".into(), 5)])
        }
        other => panic!("{other:?}"),
    }
}

/// A commit's audit records are stored in pages of about `PAGE_BYTES` (fewer database
/// keys); every record is still read, verified and continued one by one.
#[test]
fn audit_records_are_stored_in_pages_and_read_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let big = |i: u32| {
        AuditEntry::new(
            "test",
            AuditKind::ToolCall,
            format!("call-{i}"),
            serde_json::json!({ "n": i, "pad": "x".repeat(300) }),
        )
    };
    {
        let mut kb = KnowledgeBase::new(open(&db)).unwrap();
        kb.commit(&Commit { audit: (0..40).map(big).collect(), ..Commit::default() }).unwrap();
        let pages: Vec<_> = kb.store().iter(TreeName::Audit).map(Result::unwrap).collect();
        assert!(pages.len() > 1 && pages.len() < 40, "{} pages", pages.len());
        // Each page is keyed by its first record.
        for (key, value) in &pages {
            let first = warden::kb::audit::read_page(value).unwrap()[0].record.seq;
            assert_eq!(key.as_slice(), first.to_be_bytes());
            assert!(value.len() < 2 * warden::kb::audit::PAGE_BYTES);
        }
        let report = kb.verify_audit().unwrap();
        assert!(report.ok && report.records == 40, "{report:?}");
        kb.store().flush_blocking().unwrap();
    }
    let mut kb = KnowledgeBase::new(open(&db)).unwrap();
    kb.commit(&Commit { audit: vec![entry(40)], ..Commit::default() }).unwrap();
    let report = kb.verify_audit().unwrap();
    assert!(report.ok && report.records == 41, "{report:?}");
    let QueryAnswer::AuditRecords(records) = kb.query(&Query::AuditRecords).unwrap() else { panic!() };
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..41).collect::<Vec<u64>>());
}
