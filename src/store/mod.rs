//! The on-disk store: the only module that names sled.
//!
//! It knows trees, keys and byte values, applies a batch of writes atomically across
//! trees, and nothing else. Typed records, the audit chain and every policy live in
//! the knowledge base above it, whose actor is the store's only owner at run time.
//!
//! The logical trees share one sled tree, `records`, each under its own one-byte key
//! prefix ([`TreeName::tag`]): an atomic batch across logical trees is then one sled
//! `Batch` — one B-tree descent per write — where a sled transaction across trees reads
//! every key's old value first and buffers the writes twice. Databases written with one
//! sled tree per logical tree (before this layout) are moved over when they are opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The trees of the database (DESIGN.md §3, plus `state` for agents' durable
/// decision state such as detection windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TreeName {
    Findings,
    Incidents,
    Actions,
    Handoffs,
    Audit,
    Iocs,
    Assets,
    Vulns,
    Evidence,
    Checkpoints,
    Inbox,
    Meta,
    State,
    /// Finding id → the incident it is attached to.
    Links,
}

impl TreeName {
    pub const ALL: [TreeName; 14] = [
        TreeName::Findings,
        TreeName::Incidents,
        TreeName::Actions,
        TreeName::Handoffs,
        TreeName::Audit,
        TreeName::Iocs,
        TreeName::Assets,
        TreeName::Vulns,
        TreeName::Evidence,
        TreeName::Checkpoints,
        TreeName::Inbox,
        TreeName::Meta,
        TreeName::State,
        TreeName::Links,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TreeName::Findings => "findings",
            TreeName::Incidents => "incidents",
            TreeName::Actions => "actions",
            TreeName::Handoffs => "handoffs",
            TreeName::Audit => "audit",
            TreeName::Iocs => "iocs",
            TreeName::Assets => "assets",
            TreeName::Vulns => "vulns",
            TreeName::Evidence => "evidence",
            TreeName::Checkpoints => "checkpoints",
            TreeName::Inbox => "inbox",
            TreeName::Meta => "meta",
            TreeName::State => "state",
            TreeName::Links => "links",
        }
    }

    /// The key prefix of the tree's records. Stored on disk: never renumber.
    fn tag(self) -> u8 {
        match self {
            TreeName::Findings => 1,
            TreeName::Incidents => 2,
            TreeName::Actions => 3,
            TreeName::Handoffs => 4,
            TreeName::Audit => 5,
            TreeName::Iocs => 6,
            TreeName::Assets => 7,
            TreeName::Vulns => 8,
            TreeName::Evidence => 9,
            TreeName::Checkpoints => 10,
            TreeName::Inbox => 11,
            TreeName::Meta => 12,
            TreeName::State => 13,
            TreeName::Links => 14,
        }
    }

    /// `key` under the tree's prefix.
    fn key(self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(key.len() + 1);
        k.push(self.tag());
        k.extend_from_slice(key);
        k
    }
}

/// The one sled tree that holds every logical tree.
const RECORDS: &str = "records";

/// How many records move per atomic batch (older layouts moved over, backups, restores).
const MIGRATION_CHUNK: usize = 10_000;

/// A stored `(key, value)`.
pub type Record = (Vec<u8>, Vec<u8>);

/// One write of an atomic batch.
#[derive(Debug, Clone)]
pub enum RawWrite {
    Put { tree: TreeName, key: Vec<u8>, value: Vec<u8> },
    Delete { tree: TreeName, key: Vec<u8> },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database in {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "the database in {path} is damaged ({detail}): restore a backup into an empty data directory \
         (`warden restore DIR --data-dir NEW`), or move {path} aside to start with an empty knowledge base"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "another process holds the database in {path}: another `warden run` (or `warden restore`) is using this \
         data directory — stop it, or give this one its own --data-dir"
    )]
    Locked { path: PathBuf },
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    #[error("{0} is not empty: a backup is written to, and restored into, an empty place")]
    NotEmpty(PathBuf),
}

/// The sled database and the tree of its records.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    records: sled::Tree,
    /// On-disk databases only: the count of batches applied, and where the count last
    /// made durable is written (see [`Seal`]).
    seal: Option<Arc<Seal>>,
}

/// Catches a database that silently lost writes it had made durable (sled recovers a
/// damaged file by going back to its last readable state, without a word). Every batch
/// carries its number (key [`GENERATION`]); after each completed flush the number is
/// written beside the database (`warden.seal`). A database behind its seal is damaged.
/// The seal is written after the flush and without syncing it: it can lag behind the
/// database (a weaker check), never run ahead of it (no false alarm).
struct Seal {
    path: PathBuf,
    generation: std::sync::atomic::AtomicU64,
}

/// The key of the batch number: tag 0, which no logical tree uses.
const GENERATION: &[u8] = &[0, b'g'];

/// What a failure of sled's open means: the lock held by another process, damage, or
/// something else (permissions, a file where the directory should be).
fn open_error(dir: &Path, source: sled::Error) -> StoreError {
    let path = dir.to_path_buf();
    match source {
        sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => StoreError::Locked { path },
        sled::Error::Corruption { at, .. } => {
            StoreError::Damaged { path, detail: format!("sled found corruption at {at:?}") }
        }
        source => StoreError::Open { path, source },
    }
}

/// Records in key order, each read on its own (`get_gt` from the last key) rather than
/// through one sled iterator: sled 0.34 keeps every page a long-lived iterator has read
/// in memory, whatever the cache capacity (measured: a scan of a 200 MB tree left
/// 183 MB resident with an 8 MiB cache; read this way, 40 MB), so one scan of a large
/// tree would stay resident for good. A reader that needs a consistent view of several
/// records takes them under the knowledge base's single writer.
struct Cursor<'a> {
    records: &'a sled::Tree,
    prefix: Vec<u8>,
    last: Option<sled::IVec>,
    done: bool,
}

impl<'a> Cursor<'a> {
    fn new(records: &'a sled::Tree, prefix: Vec<u8>) -> Self {
        Cursor { records, prefix, last: None, done: false }
    }
}

impl Iterator for Cursor<'_> {
    type Item = sled::Result<(sled::IVec, sled::IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = match &self.last {
            // The prefix itself is a key too (a record keyed by the bare prefix).
            None => match self.records.get(&self.prefix) {
                Ok(Some(v)) => Ok(Some((sled::IVec::from(self.prefix.as_slice()), v))),
                Ok(None) => self.records.get_gt(&self.prefix),
                Err(e) => Err(e),
            },
            Some(last) => self.records.get_gt(last),
        };
        match next {
            Ok(Some((k, v))) if k.starts_with(&self.prefix) => {
                self.last = Some(k.clone());
                Some(Ok((k, v)))
            }
            Ok(_) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Store {
    /// Opens (or creates) the database under `dir` with a capped page cache. A damaged
    /// database is an error that says what to do — sled panics on some damage (a
    /// truncated file), and that panic is caught here.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let opened = without_panicking(|| {
            let db = sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .mode(sled::Mode::HighThroughput)
                .open()
                .map_err(|source| open_error(dir, source))?;
            Self::with_db(db, Some(dir.join("warden.seal")))
        });
        match opened {
            Ok(r) => r,
            Err(detail) => Err(StoreError::Damaged { path: dir.to_path_buf(), detail }),
        }
    }

    /// A database that lives only as long as the process (for `warden replay`).
    pub fn temporary(cache_bytes: u64) -> Result<Store, StoreError> {
        let db =
            sled::Config::new().temporary(true).cache_capacity(cache_bytes).mode(sled::Mode::HighThroughput).open()?;
        Self::with_db(db, None)
    }

    fn with_db(db: sled::Db, seal_path: Option<PathBuf>) -> Result<Store, StoreError> {
        let records = db.open_tree(RECORDS)?;
        let generation = match records.get(GENERATION)? {
            Some(v) => v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0),
            None => 0,
        };
        if let Some(path) = &seal_path {
            let sealed = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
            if sealed > generation {
                return Err(StoreError::Damaged {
                    path: path.parent().unwrap_or(path).to_path_buf(),
                    detail: format!(
                        "it holds the changes up to number {generation}, but number {sealed} had been made durable: \
                         writes it acknowledged are gone"
                    ),
                });
            }
        }
        let seal = seal_path.map(|path| Arc::new(Seal { path, generation: generation.into() }));
        let store = Store { db, records, seal };
        store.migrate_legacy_trees()?;
        Ok(store)
    }

    /// Writes the number of the last batch a completed flush made durable.
    fn write_seal(&self, generation: Option<u64>) {
        let (Some(seal), Some(g)) = (&self.seal, generation) else { return };
        let tmp = seal.path.with_extension("seal.tmp");
        if let Err(e) = std::fs::write(&tmp, g.to_string()).and_then(|()| std::fs::rename(&tmp, &seal.path)) {
            tracing::warn!(path = %seal.path.display(), error = %e, "cannot write the database seal");
        }
    }

    /// Moves the records of a database written with one sled tree per logical tree into
    /// `records`, then drops the old trees. Each chunk is one atomic batch of puts; a
    /// crash part-way leaves the old tree in place and the next open copies it again
    /// (the same keys and values), so nothing is lost or changed.
    fn migrate_legacy_trees(&self) -> Result<(), StoreError> {
        let names = self.db.tree_names();
        for t in TreeName::ALL {
            if !names.iter().any(|n| n.as_ref() == t.as_str().as_bytes()) {
                continue;
            }
            let old = self.db.open_tree(t.as_str())?;
            let moved = put_chunked(&self.records, old.iter().map(|kv| kv.map(|(k, v)| (t.key(&k).into(), v))))?;
            self.db.flush()?;
            self.db.drop_tree(t.as_str())?;
            tracing::info!(tree = t.as_str(), records = moved, "moved a tree of an older database layout");
        }
        Ok(())
    }

    pub fn get(&self, tree: TreeName, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.records.get(tree.key(key))?.map(|v| v.to_vec()))
    }

    /// Every `(key, value)` of a tree whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Result<Vec<Record>, StoreError> {
        self.cursor(tree, prefix).collect()
    }

    /// Iterates a whole tree in key order without collecting it.
    pub fn iter(&self, tree: TreeName) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.cursor(tree, b"")
    }

    /// The records of a tree whose key starts with `prefix`, read one at a time (see
    /// [`Cursor`]).
    fn cursor(&self, tree: TreeName, prefix: &[u8]) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        Cursor::new(&self.records, tree.key(prefix)).map(|r| r.map(unprefixed).map_err(StoreError::from))
    }

    /// The entry with the greatest key of a tree.
    pub fn last(&self, tree: TreeName) -> Result<Option<Record>, StoreError> {
        Ok(self.records.scan_prefix([tree.tag()]).next_back().transpose()?.map(unprefixed))
    }

    pub fn is_empty(&self, tree: TreeName) -> bool {
        !matches!(self.cursor(tree, b"").next(), Some(Ok(_)))
    }

    /// Counts the entries (walks the tree: not for hot paths).
    pub fn len(&self, tree: TreeName) -> usize {
        self.cursor(tree, b"").count()
    }

    /// Applies every write or none of them.
    pub fn apply(&self, writes: &[RawWrite]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        // Counted once applied: a batch that failed must not be sealed.
        let next = self.seal.as_ref().map(|seal| seal.generation.load(Ordering::SeqCst) + 1);
        if let Some(g) = next {
            batch.insert(GENERATION, &g.to_be_bytes()[..]);
        }
        for w in writes {
            match w {
                RawWrite::Put { tree, key, value } => batch.insert(tree.key(key), value.as_slice()),
                RawWrite::Delete { tree, key } => batch.remove(tree.key(key)),
            }
        }
        self.records.apply_batch(batch)?;
        if let (Some(seal), Some(g)) = (&self.seal, next) {
            seal.generation.fetch_max(g, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Writes a copy of every record to a new database in `dir` (absent or empty) and
    /// makes it durable; returns how many records it holds. Consistent when nothing
    /// writes meanwhile — the knowledge base actor, the only writer, calls it.
    pub fn snapshot_to(&self, dir: &Path, cache_bytes: u64) -> Result<u64, StoreError> {
        if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            return Err(StoreError::NotEmpty(dir.to_path_buf()));
        }
        let to = Store::open(dir, cache_bytes)?;
        self.copy_into(&to)
    }

    /// Copies every record of `from` (a backup) into this database, which must be empty.
    pub fn restore_from(&self, from: &Store, here: &Path) -> Result<u64, StoreError> {
        if !self.records.is_empty() {
            return Err(StoreError::NotEmpty(here.to_path_buf()));
        }
        from.copy_into(self)
    }

    /// Copies every record of the logical trees (not the batch number: the copy has no
    /// seal of its own yet) and makes the copy durable; returns how many.
    fn copy_into(&self, to: &Store) -> Result<u64, StoreError> {
        let records =
            Cursor::new(&self.records, Vec::new()).filter(|kv| !matches!(kv, Ok((k, _)) if k.as_ref() == GENERATION));
        let n = put_chunked(&to.records, records)?;
        to.db.flush()?;
        Ok(n)
    }

    /// Writes one value outside a transaction. Used by tests that tamper with records.
    pub fn put_raw(&self, tree: TreeName, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.records.insert(tree.key(key), value)?;
        Ok(())
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let g = self.seal.as_ref().map(|s| s.generation.load(Ordering::SeqCst));
        self.db.flush_async().await?;
        self.write_seal(g);
        Ok(())
    }

    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let g = self.seal.as_ref().map(|s| s.generation.load(Ordering::SeqCst));
        self.db.flush()?;
        self.write_seal(g);
        Ok(())
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Puts `records` into `to` in atomic batches of [`MIGRATION_CHUNK`]; returns how many.
fn put_chunked(
    to: &sled::Tree,
    records: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
) -> Result<u64, StoreError> {
    let (mut batch, mut in_batch, mut total) = (sled::Batch::default(), 0usize, 0u64);
    for kv in records {
        let (k, v) = kv?;
        batch.insert(k, v);
        in_batch += 1;
        if in_batch == MIGRATION_CHUNK {
            to.apply_batch(std::mem::take(&mut batch))?;
            total += in_batch as u64;
            in_batch = 0;
        }
    }
    to.apply_batch(batch)?;
    Ok(total + in_batch as u64)
}

/// Runs `f`; a panic in it becomes `Err(message)`, and is not printed: the caller turns
/// it into an error that says what to do. (The panic hook is process-wide: it is
/// swapped by one caller at a time and leaves other threads' panics to the previous one.)
fn without_panicking<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    type Hook = dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send;
    // One swap at a time, or two opens at once could leave the silent hook installed.
    static SWAP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static SAID: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let _one = SWAP.lock().unwrap_or_else(|p| p.into_inner());
    let previous: Arc<Box<Hook>> = Arc::new(std::panic::take_hook());
    let (here, others) = (std::thread::current().id(), previous.clone());
    std::panic::set_hook(Box::new(move |info| {
        // Other threads' panics are theirs to report, as before.
        if std::thread::current().id() != here {
            return others(info);
        }
        let at = info.location().map(|l| format!(" at {}:{}", l.file().rsplit('/').next().unwrap_or(""), l.line()));
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unreadable data".into());
        *SAID.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{msg}{}", at.unwrap_or_default()));
    }));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(Box::new(move |info| previous(info)));
    r.map_err(|_| SAID.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_else(|| "unreadable data".into()))
}

/// A record of `records` with its tree's prefix taken off its key.
fn unprefixed((k, v): (sled::IVec, sled::IVec)) -> Record {
    (k.get(1..).unwrap_or_default().to_vec(), v.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(tree: TreeName, key: &[u8], value: &[u8]) -> RawWrite {
        RawWrite::Put { tree, key: key.to_vec(), value: value.to_vec() }
    }

    #[test]
    fn trees_are_separate_and_ordered() {
        let s = Store::temporary(1 << 20).unwrap();
        s.apply(&[
            put(TreeName::Audit, &2u64.to_be_bytes(), b"two"),
            put(TreeName::Audit, &1u64.to_be_bytes(), b"one"),
            put(TreeName::Findings, b"f", b"finding"),
            put(TreeName::Inbox, b"a", b"x"),
        ])
        .unwrap();
        s.apply(&[RawWrite::Delete { tree: TreeName::Inbox, key: b"a".to_vec() }]).unwrap();
        let audit: Vec<_> = s.iter(TreeName::Audit).map(Result::unwrap).collect();
        assert_eq!(
            audit,
            vec![(1u64.to_be_bytes().to_vec(), b"one".to_vec()), (2u64.to_be_bytes().to_vec(), b"two".to_vec())]
        );
        assert_eq!(s.last(TreeName::Audit).unwrap().unwrap().1, b"two");
        assert_eq!(s.len(TreeName::Audit), 2);
        assert_eq!(s.get(TreeName::Findings, b"f").unwrap().as_deref(), Some(&b"finding"[..]));
        assert_eq!(s.get(TreeName::Incidents, b"f").unwrap(), None, "a key of one tree is not in another");
        assert!(s.is_empty(TreeName::Inbox) && s.last(TreeName::Inbox).unwrap().is_none());
        assert!(!s.is_empty(TreeName::Findings));
        assert_eq!(s.scan_prefix(TreeName::Findings, b"").unwrap(), vec![(b"f".to_vec(), b"finding".to_vec())]);
    }

    /// Scans read one record at a time (see `Cursor`): every record under the prefix, in
    /// key order, the key equal to the prefix included, nothing of the neighbouring
    /// keys or trees.
    #[test]
    fn a_scan_yields_exactly_the_records_under_its_prefix_in_order() {
        let s = Store::temporary(1 << 20).unwrap();
        let keys: [&[u8]; 6] = [b"a", b"ab", b"abc", b"abd", b"ac", b"b"];
        for k in keys.iter().rev() {
            s.put_raw(TreeName::State, k, k).unwrap();
        }
        s.put_raw(TreeName::Findings, b"ab", b"other tree").unwrap();
        s.put_raw(TreeName::Inbox, b"", b"bare").unwrap();
        let got = |p: &[u8]| s.scan_prefix(TreeName::State, p).unwrap().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(got(b"ab"), vec![b"ab".to_vec(), b"abc".to_vec(), b"abd".to_vec()]);
        assert_eq!(got(b""), keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>());
        assert_eq!(got(b"abz"), Vec::<Vec<u8>>::new());
        assert_eq!(s.len(TreeName::State), 6);
        assert_eq!(s.iter(TreeName::Inbox).map(Result::unwrap).collect::<Vec<_>>(), vec![(vec![], b"bare".to_vec())]);
        assert_eq!(s.iter(TreeName::Findings).count(), 1);
    }

    /// A data directory written with one sled tree per logical tree opens with every
    /// record where it was, and the old trees are gone.
    #[test]
    fn a_database_of_the_older_layout_is_moved_over() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let audit = db.open_tree("audit").unwrap();
            for i in 0..(MIGRATION_CHUNK as u64 + 5) {
                audit.insert(i.to_be_bytes(), format!("record {i}").as_bytes()).unwrap();
            }
            db.open_tree("checkpoints").unwrap().insert("auth", &b"{\"offset\":7}"[..]).unwrap();
            db.open_tree("iocs").unwrap();
            db.flush().unwrap();
        }
        for _ in 0..2 {
            let s = open_when_released(dir.path()).unwrap();
            assert_eq!(s.len(TreeName::Audit), MIGRATION_CHUNK + 5);
            let last = s.last(TreeName::Audit).unwrap().unwrap();
            assert_eq!(
                last,
                (
                    (MIGRATION_CHUNK as u64 + 4).to_be_bytes().to_vec(),
                    format!("record {}", MIGRATION_CHUNK + 4).into_bytes()
                )
            );
            assert_eq!(s.get(TreeName::Checkpoints, b"auth").unwrap().as_deref(), Some(&b"{\"offset\":7}"[..]));
            assert!(s.is_empty(TreeName::Iocs));
            let names = s.db.tree_names();
            assert!(!names.iter().any(|n| n.as_ref() == b"audit" || n.as_ref() == b"checkpoints"), "old trees dropped");
            s.flush_blocking().unwrap();
        }
    }

    /// Opens a database this process dropped a moment ago: sled's flusher thread can
    /// hold its lock a little after the store is gone.
    fn open_when_released(dir: &Path) -> Result<Store, StoreError> {
        for _ in 0..100 {
            match Store::open(dir, 1 << 20) {
                Err(StoreError::Locked { .. }) => std::thread::sleep(std::time::Duration::from_millis(100)),
                other => return other,
            }
        }
        panic!("the database lock in {} is not released", dir.display())
    }

    /// A truncated database file made sled panic while opening: now an error naming the
    /// directory and what to do, and the process goes on.
    #[test]
    fn a_truncated_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        {
            let s = Store::open(&db, 1 << 20).unwrap();
            for chunk in 0..20u64 {
                let writes: Vec<RawWrite> = (0..1000u64)
                    .map(|i| put(TreeName::Audit, &(chunk * 1000 + i).to_be_bytes(), &[b'x'; 400]))
                    .collect();
                s.apply(&writes).unwrap();
            }
            s.flush_blocking().unwrap();
        }
        let file = db.join("db");
        let len = std::fs::metadata(&file).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len / 2).unwrap();
        let e = match open_when_released(&db) {
            Err(e) => e.to_string(),
            Ok(s) => panic!("a damaged database opened with {} audit records", s.len(TreeName::Audit)),
        };
        assert!(
            e.contains("is damaged") && e.contains(&db.display().to_string()) && e.contains("warden restore"),
            "{e}"
        );
    }

    /// A database in use used to be "unusable (is another warden using it?)" whatever
    /// the cause; the lock held by another opener is now said as such, and only then.
    #[test]
    fn a_database_in_use_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let _first = Store::open(&db, 1 << 20).unwrap();
        // sled's lock is flock(2): a second open file description conflicts, in one
        // process as across two.
        let e = Store::open(&db, 1 << 20).err().expect("the second opener is refused");
        assert!(matches!(e, StoreError::Locked { .. }) && e.to_string().contains("--data-dir"), "{e}");
        let e = open_error(&db, sled::Error::Io(std::io::Error::other("could not acquire lock on \"x\": EAGAIN")));
        assert!(matches!(e, StoreError::Locked { .. }) && e.to_string().contains("--data-dir"), "{e}");
        let e = open_error(&db, sled::Error::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)));
        assert!(matches!(e, StoreError::Open { .. }) && !e.to_string().contains("another"), "{e}");
    }
}
