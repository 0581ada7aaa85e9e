//! Folders of files loaded at start (threat-intel feeds) as a source: watched with
//! notify (a wake-up hint), with a poll of the files' fingerprints as the backstop; a
//! change reloads the whole set, swapped in without a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Something loaded from files in folders, reloaded when they change.
pub trait Reloadable: Send + Sync + 'static {
    /// A fingerprint of the files (paths, sizes, modification times): a reload happens
    /// when it changes.
    type Signature: PartialEq + Send;
    /// The folders to watch.
    fn watched_dirs(&self) -> Vec<PathBuf>;
    fn signature(&self) -> Self::Signature;
    /// Loads everything again and swaps it in.
    fn reload(&self);
    /// Called at every poll: say what is wrong with the files (stale, missing).
    fn check(&self) {}
}

/// Watches `store`'s folders on a thread of its own, which ends once everyone else has
/// dropped the store.
pub fn watch<R: Reloadable>(store: &Arc<R>, poll: Duration) {
    use notify::Watcher;
    let dirs: Vec<PathBuf> = store.watched_dirs();
    if dirs.is_empty() {
        return;
    }
    let weak = Arc::downgrade(store);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new().name("warden-feeds".into()).spawn(move || {
        let mut watcher = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
            let _ = tx.send(());
        })
        .ok();
        if let Some(w) = watcher.as_mut() {
            for d in &dirs {
                // A folder that does not exist yet is found by the poll when it appears.
                let _ = w.watch(d, notify::RecursiveMode::NonRecursive);
            }
        }
        let mut last = match weak.upgrade() {
            Some(s) => {
                s.check();
                s.signature()
            }
            None => return,
        };
        loop {
            let _ = rx.recv_timeout(poll);
            // Let a writer finish before reading, and fold a burst of events into one.
            std::thread::sleep(Duration::from_millis(100));
            while rx.try_recv().is_ok() {}
            let Some(store) = weak.upgrade() else { return };
            store.check();
            let sig = store.signature();
            if sig != last {
                last = sig;
                store.reload();
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the feed watcher; feeds reload only on restart");
    }
}
