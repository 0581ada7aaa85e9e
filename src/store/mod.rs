//! The on-disk store: the only module that names sled.
//!
//! It knows trees, keys and byte values, applies a batch of writes atomically across
//! trees, and nothing else. Typed records, the audit chain and every policy live in
//! the knowledge base above it, whose actor is the store's only owner at run time.

use std::path::{Path, PathBuf};

use sled::Transactional;

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
}

impl TreeName {
    pub const ALL: [TreeName; 13] = [
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
        }
    }

    fn index(self) -> usize {
        TreeName::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

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
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    #[error("database transaction failed: {0}")]
    Transaction(String),
}

/// The sled database and its trees.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

impl Store {
    /// Opens (or creates) the database under `dir` with a capped page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| StoreError::Open { path: dir.to_path_buf(), source })?;
        Self::with_db(db)
    }

    /// A database that lives only as long as the process (for `warden replay`).
    pub fn temporary(cache_bytes: u64) -> Result<Store, StoreError> {
        let db =
            sled::Config::new().temporary(true).cache_capacity(cache_bytes).mode(sled::Mode::HighThroughput).open()?;
        Self::with_db(db)
    }

    fn with_db(db: sled::Db) -> Result<Store, StoreError> {
        let trees = TreeName::ALL.iter().map(|t| db.open_tree(t.as_str())).collect::<Result<Vec<_>, _>>()?;
        Ok(Store { db, trees })
    }

    fn tree(&self, name: TreeName) -> &sled::Tree {
        &self.trees[name.index()]
    }

    pub fn get(&self, tree: TreeName, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    /// Every `(key, value)` of a tree whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, tree: TreeName, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.tree(tree)
            .scan_prefix(prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(StoreError::from))
            .collect()
    }

    /// Iterates a whole tree in key order without collecting it.
    pub fn iter(&self, tree: TreeName) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        self.tree(tree).iter().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(StoreError::from))
    }

    /// The entry with the greatest key of a tree.
    pub fn last(&self, tree: TreeName) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        Ok(self.tree(tree).last()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    pub fn is_empty(&self, tree: TreeName) -> bool {
        self.tree(tree).is_empty()
    }

    /// Counts the entries (walks the tree: not for hot paths).
    pub fn len(&self, tree: TreeName) -> usize {
        self.tree(tree).len()
    }

    /// Applies every write or none of them.
    pub fn apply(&self, writes: &[RawWrite]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.trees
            .as_slice()
            .transaction(|txs| {
                for w in writes {
                    match w {
                        RawWrite::Put { tree, key, value } => {
                            txs[tree.index()].insert(key.as_slice(), value.as_slice())?;
                        }
                        RawWrite::Delete { tree, key } => {
                            txs[tree.index()].remove(key.as_slice())?;
                        }
                    }
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| StoreError::Transaction(format!("{e:?}")))
    }

    /// Writes one value outside a transaction. Used by tests that tamper with records.
    pub fn put_raw(&self, tree: TreeName, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree(tree).insert(key, value)?;
        Ok(())
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
