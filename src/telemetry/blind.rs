//! Blind spots: what Warden cannot see right now — a source silent beyond its rhythm,
//! a file it cannot read, lines no parser understands, datagrams the kernel dropped, a
//! stale threat-intel feed, a disk about to stop taking writes. Whoever notices one
//! raises it here (synchronously, from any thread); the visibility watcher turns each
//! new episode into one `visibility` incident, health lists the open ones, `/metrics`
//! counts them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The kinds of blind spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlindKind {
    /// A source silent far longer than its learned rhythm.
    SourceSilent,
    /// A tailed file that exists but cannot be read.
    SourceUnreadable,
    /// A tailed file removed and not recreated.
    LogDeleted,
    /// A tailed file shortened outside a rotation.
    LogTruncated,
    /// A jump in the share of lines no parser understood.
    UnparsedJump,
    /// Datagrams dropped by the kernel on a syslog socket.
    KernelDrops,
    /// A threat-intel feed older than its configured age.
    FeedStale,
    /// The data disk nearly full.
    DiskNearlyFull,
}

impl BlindKind {
    pub const ALL: [BlindKind; 8] = [
        BlindKind::SourceSilent,
        BlindKind::SourceUnreadable,
        BlindKind::LogDeleted,
        BlindKind::LogTruncated,
        BlindKind::UnparsedJump,
        BlindKind::KernelDrops,
        BlindKind::FeedStale,
        BlindKind::DiskNearlyFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BlindKind::SourceSilent => "source_silent",
            BlindKind::SourceUnreadable => "source_unreadable",
            BlindKind::LogDeleted => "log_deleted",
            BlindKind::LogTruncated => "log_truncated",
            BlindKind::UnparsedJump => "unparsed_jump",
            BlindKind::KernelDrops => "kernel_drops",
            BlindKind::FeedStale => "feed_stale",
            BlindKind::DiskNearlyFull => "disk_nearly_full",
        }
    }
}

/// One open blind spot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlindSpot {
    pub kind: BlindKind,
    /// What is blind: `source:auth`, `feed:abuse-ch`, `storage:/var/lib/warden/db`.
    pub subject: String,
    pub since: DateTime<Utc>,
    /// What was seen, in words (sanitized by whoever raised it).
    pub detail: String,
    /// It looks deliberate (a log truncated or deleted): ATT&CK T1562 / T1070.
    pub deliberate: bool,
    /// Whether its incident is stored.
    #[serde(skip)]
    pub reported: bool,
    /// A blind spot that is an event (a truncation) rather than a state ends by itself.
    #[serde(skip)]
    pub until: Option<Instant>,
}

/// The open blind spots, and how many episodes each kind had.
#[derive(Debug, Default)]
pub struct BlindSpots {
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    open: BTreeMap<(BlindKind, String), BlindSpot>,
    episodes: BTreeMap<BlindKind, u64>,
}

impl BlindSpots {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a blind spot (a no-op while the same one is open); `true` if it is new.
    pub fn raise(&self, kind: BlindKind, subject: &str, detail: String, deliberate: bool) -> bool {
        self.raise_for(kind, subject, detail, deliberate, None)
    }

    /// A blind spot that is one event: open for `lasts`, then it ends by itself.
    pub fn raise_event(&self, kind: BlindKind, subject: &str, detail: String, deliberate: bool, lasts: Duration) {
        self.raise_for(kind, subject, detail, deliberate, Some(Instant::now() + lasts));
    }

    fn raise_for(
        &self,
        kind: BlindKind,
        subject: &str,
        detail: String,
        deliberate: bool,
        until: Option<Instant>,
    ) -> bool {
        let mut r = self.lock();
        if let Some(open) = r.open.get_mut(&(kind, subject.to_string())) {
            open.until = until.max(open.until);
            return false;
        }
        *r.episodes.entry(kind).or_default() += 1;
        tracing::warn!(kind = kind.as_str(), %subject, %detail, "blind spot");
        let spot = BlindSpot {
            kind,
            subject: subject.to_string(),
            since: Utc::now(),
            detail,
            deliberate,
            reported: false,
            until,
        };
        r.open.insert((kind, subject.to_string()), spot);
        true
    }

    /// Ends a blind spot; `true` if it was open.
    pub fn clear(&self, kind: BlindKind, subject: &str) -> bool {
        let ended = self.lock().open.remove(&(kind, subject.to_string()));
        if let Some(s) = &ended {
            tracing::info!(kind = kind.as_str(), %subject, since = %s.since, "blind spot ended");
        }
        ended.is_some()
    }

    /// The open blind spots (events past their time are closed first).
    pub fn open(&self) -> Vec<BlindSpot> {
        let mut r = self.lock();
        let now = Instant::now();
        r.open.retain(|_, s| s.until.is_none_or(|u| u > now));
        r.open.values().cloned().collect()
    }

    pub fn is_open(&self, kind: BlindKind, subject: &str) -> bool {
        self.lock().open.contains_key(&(kind, subject.to_string()))
    }

    /// The open blind spots whose incident is not stored yet.
    pub fn unreported(&self) -> Vec<BlindSpot> {
        self.open().into_iter().filter(|s| !s.reported).collect()
    }

    /// Notes that the incident of this episode is stored.
    pub fn reported(&self, spot: &BlindSpot) {
        if let Some(s) = self.lock().open.get_mut(&(spot.kind, spot.subject.clone()))
            && s.since == spot.since
        {
            s.reported = true;
        }
    }

    /// (kind, open now, episodes since start) for every kind.
    pub fn counts(&self) -> Vec<(BlindKind, u64, u64)> {
        let open = self.open();
        let r = self.lock();
        BlindKind::ALL
            .iter()
            .map(|k| {
                let now = open.iter().filter(|s| s.kind == *k).count() as u64;
                (*k, now, r.episodes.get(k).copied().unwrap_or(0))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_episode_until_cleared_and_events_end_by_themselves() {
        let b = BlindSpots::default();
        assert!(b.raise(BlindKind::SourceSilent, "source:auth", "silent".into(), false));
        assert!(!b.raise(BlindKind::SourceSilent, "source:auth", "still silent".into(), false));
        assert!(b.raise(BlindKind::SourceSilent, "source:web", "silent".into(), false));
        let first = b.unreported();
        assert_eq!(first.len(), 2);
        b.reported(&first[0]);
        assert_eq!(b.unreported().len(), 1);
        assert!(b.clear(BlindKind::SourceSilent, "source:auth") && !b.clear(BlindKind::SourceSilent, "source:auth"));
        assert!(b.raise(BlindKind::SourceSilent, "source:auth", "silent again".into(), false));
        let silent = b.counts().into_iter().find(|c| c.0 == BlindKind::SourceSilent).unwrap();
        assert_eq!(silent, (BlindKind::SourceSilent, 2, 3));
        b.raise_event(BlindKind::LogTruncated, "source:auth", "truncated".into(), true, Duration::ZERO);
        assert!(!b.open().iter().any(|s| s.kind == BlindKind::LogTruncated), "an event past its time is closed");
        b.raise_event(BlindKind::LogTruncated, "source:auth", "truncated".into(), true, Duration::from_secs(60));
        assert!(b.open().iter().any(|s| s.kind == BlindKind::LogTruncated && s.deliberate));
    }
}
