//! When the database stops taking writes (a full disk, an I/O error): wait until the
//! disk takes writes again, then restart in place — the same process id, the same
//! arguments — so the database is reopened and everything resumes from its durable
//! state exactly as after a crash, with a `visibility` incident saying what happened.
//! (sled keeps its first I/O error: an open database never writes again.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use warden::kb::{Kb, StorageFailure, StorageHealth};
use warden::messages::{Incident, Severity};
use warden::telemetry::{BlindKind, Metrics};

use super::daemon::RECOVERED_ENV;

/// How often the data directory's free space is measured.
const FREE_EVERY: Duration = Duration::from_secs(5);

/// Measures the free space of the database's disk (`db_dir`); below `min_free` bytes it
/// is a blind spot, which ends above `min_free` + 10 %.
pub async fn watch_free_space(kb: Kb, metrics: Arc<Metrics>, db_dir: PathBuf, min_free: u64) {
    let subject = format!("storage:{}", db_dir.display());
    let spots = &metrics.blind_spots;
    loop {
        if let Ok(st) = rustix::fs::statvfs(&db_dir) {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            kb.health.free_bytes.store(free, std::sync::atomic::Ordering::Relaxed);
            if free < min_free {
                let detail = format!(
                    "the data disk has {} MiB free (below [storage] min_free_mb = {} MiB) in {}.",
                    free >> 20,
                    min_free >> 20,
                    db_dir.display()
                );
                // The visibility watcher stores its incident.
                spots.raise(BlindKind::DiskNearlyFull, &subject, detail, false);
            } else if free > min_free.saturating_add(min_free / 10) {
                spots.clear(BlindKind::DiskNearlyFull, &subject);
            }
        }
        tokio::time::sleep(FREE_EVERY).await;
    }
}

/// How often a failed database's disk is tried.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// What must be writable (and synced) for the database to be reopened.
const PROBE_BYTES: usize = 1 << 20;

/// Returns once the database has failed and its directory takes writes again.
pub async fn writable_again(health: Arc<StorageHealth>, db_dir: PathBuf) -> StorageFailure {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        if let Some(f) = health.failure()
            && probe(&db_dir)
        {
            return f;
        }
    }
}

/// Whether `PROBE_BYTES` can be written and synced in `dir` (the probe is removed).
fn probe(dir: &Path) -> bool {
    use std::io::Write as _;
    let path = dir.join(".space-probe");
    let ok = std::fs::File::create(&path)
        .and_then(|mut f| {
            f.write_all(&vec![0u8; PROBE_BYTES])?;
            f.sync_all()
        })
        .is_ok();
    let _ = std::fs::remove_file(&path);
    ok
}

/// Replaces this process with a fresh run of the same binary and arguments; returns
/// only if that is impossible.
pub fn restart_in_place(f: &StorageFailure) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "warden".into());
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(args)
        .env(RECOVERED_ENV, serde_json::to_string(f).unwrap_or_default())
        .exec();
    anyhow::anyhow!("cannot restart in place after the storage failure ({err}): restart warden by hand")
}

/// Opens the `visibility` incident of a storage failure survived by a restart in place
/// (one per failure: its id comes from when the failure began).
pub async fn open_recovered_incident(kb: &Kb, text: &str, data_dir: &Path) {
    let Ok(f) = serde_json::from_str::<StorageFailure>(text) else {
        tracing::warn!("{RECOVERED_ENV} is not a storage failure; ignored");
        return;
    };
    let now = Utc::now();
    let error = warden::text::sanitize(&f.error, 300);
    let incident = Incident::blind_spot(
        &format!("storage_failed/{}", f.since.to_rfc3339()),
        format!("Blind spot: the knowledge base could not write ({error})"),
        Severity::High,
        format!("storage:{}", data_dir.display()),
        format!(
            "Writes failed from {} until {now}; Warden restarted in place when {} took writes again. Lines \
             read during the outage were read again from the sources' last durable checkpoints; messages \
             received over the network (syslog) while writes failed were not kept.",
            f.since,
            data_dir.display()
        ),
        now,
    );
    let id = incident.id;
    match kb.store_incident(incident).await {
        Ok(()) => {
            tracing::warn!(incident = %id, since = %f.since, "restarted after a storage failure; visibility incident opened")
        }
        Err(e) => tracing::error!(error = %e, "cannot store the storage-failure incident"),
    }
}
