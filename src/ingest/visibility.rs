//! The visibility watcher: looks at every source's counters at each tick and raises
//! the blind spots they show — a source silent far beyond its learned rhythm (or that
//! never gave a line), a jump in the share of lines no parser understood, datagrams
//! the kernel dropped on a syslog socket — and stores one `visibility` incident per
//! blind-spot episode, whoever raised it (tails, feeds, the storage watcher too).
//!
//! Architecture invariant: the judging ([`Watcher::tick`]) is given the time; only
//! [`run`] reads the clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::VisibilityConfig;
use crate::kb::Kb;
use crate::messages::{Finding, Incident, Severity};
use crate::telemetry::{BlindKind, BlindSpot, BlindSpots, Metrics, SourceCounters};

/// Days of gaps a source's rhythm remembers.
const RHYTHM_DAYS: usize = 7;

/// One source's rhythm: when it last gave a line, and the longest gaps between lines.
#[derive(Debug, Clone)]
struct Rhythm {
    watched_since: Instant,
    lines: u64,
    last_line: Option<Instant>,
    /// The longest gap of each of the last days (index: day since watched_since).
    longest: [(u64, Duration); RHYTHM_DAYS],
}

/// One source's unparsed share: the window being filled and the share learned.
#[derive(Debug, Clone)]
struct Share {
    window_start: Instant,
    lines: u64,
    unparsed: u64,
    /// Lines and unparsed counters at the previous tick.
    seen: (u64, u64),
    learned: Option<f64>,
    windows: u32,
}

/// Judges the sources' counters, tick by tick.
#[derive(Debug)]
pub struct Watcher {
    cfg: VisibilityConfig,
    rhythm: BTreeMap<String, Rhythm>,
    share: BTreeMap<String, Share>,
    /// Kernel drops seen, and when they last rose.
    drops: BTreeMap<String, (u64, Instant)>,
}

impl Watcher {
    /// Watches `sources` (the configured ones: a source that never gives a line is
    /// watched too) from `now`.
    pub fn new(cfg: VisibilityConfig, sources: &[String], now: Instant) -> Watcher {
        let mut w = Watcher { cfg, rhythm: BTreeMap::new(), share: BTreeMap::new(), drops: BTreeMap::new() };
        for s in sources {
            w.rhythm.insert(s.clone(), Rhythm::new(now));
        }
        w
    }

    /// One look at the counters at `now`.
    pub fn tick(&mut self, counters: &BTreeMap<String, SourceCounters>, spots: &BlindSpots, now: Instant) {
        for source in counters.keys() {
            self.rhythm.entry(source.clone()).or_insert_with(|| Rhythm::new(now));
        }
        let empty = SourceCounters::default();
        let names: Vec<String> = self.rhythm.keys().cloned().collect();
        for source in names {
            let c = counters.get(&source).unwrap_or(&empty);
            let subject = format!("source:{source}");
            self.judge_rhythm(&source, &subject, c.lines, spots, now);
            self.judge_share(&source, &subject, c, spots, now);
            self.judge_drops(&source, &subject, c.kernel_drops, spots, now);
        }
    }

    fn judge_rhythm(&mut self, source: &str, subject: &str, lines: u64, spots: &BlindSpots, now: Instant) {
        let cfg = &self.cfg;
        let r = self.rhythm.get_mut(source).expect("inserted in tick");
        if lines > r.lines {
            r.lines = lines;
            if let Some(last) = r.last_line {
                r.note_gap(now.saturating_duration_since(last), now);
            }
            r.last_line = Some(now);
            spots.clear(BlindKind::SourceSilent, subject);
            return;
        }
        let watched = now.saturating_duration_since(r.watched_since);
        let Some(last) = r.last_line else {
            if watched >= Duration::from_secs(cfg.first_line_secs) {
                spots.raise(
                    BlindKind::SourceSilent,
                    subject,
                    format!("source `{source}` has given no line in the {} s since Warden started", watched.as_secs()),
                    false,
                );
            }
            return;
        };
        if watched < Duration::from_secs(cfg.learn_secs) {
            return;
        }
        let longest = r.longest.iter().map(|(_, d)| *d).max().unwrap_or_default();
        let limit = longest.mul_f64(cfg.silence_factor).max(Duration::from_secs(cfg.silence_min_secs));
        let silent = now.saturating_duration_since(last);
        if silent >= limit {
            spots.raise(
                BlindKind::SourceSilent,
                subject,
                format!(
                    "source `{source}` has been silent for {} s; its longest gap was {} s",
                    silent.as_secs(),
                    longest.as_secs()
                ),
                false,
            );
        }
    }

    fn judge_share(&mut self, source: &str, subject: &str, c: &SourceCounters, spots: &BlindSpots, now: Instant) {
        let cfg = &self.cfg;
        let s = self.share.entry(source.to_string()).or_insert_with(|| Share {
            window_start: now,
            lines: 0,
            unparsed: 0,
            seen: (c.lines, c.unparsed),
            learned: None,
            windows: 0,
        });
        s.lines += c.lines.saturating_sub(s.seen.0);
        s.unparsed += c.unparsed.saturating_sub(s.seen.1);
        s.seen = (c.lines, c.unparsed);
        if now.saturating_duration_since(s.window_start) < Duration::from_secs(cfg.unparsed_window_secs) {
            return;
        }
        let (lines, unparsed) = (std::mem::take(&mut s.lines), std::mem::take(&mut s.unparsed));
        s.window_start = now;
        if lines < cfg.unparsed_min_lines {
            return;
        }
        let share = unparsed as f64 / lines as f64;
        let open = spots.is_open(BlindKind::UnparsedJump, subject);
        match s.learned {
            // Not one line understood: the source's format is wrong (or it is not the
            // log it was said to be) — a blind spot from the first window, never learned
            // as normal.
            _ if unparsed == lines => {
                spots.raise(
                    BlindKind::UnparsedJump,
                    subject,
                    format!(
                        "none of the {lines} lines of source `{source}` in the last {} s was understood by a \
                         parser: is its `format` right, and is it the log it is said to be?",
                        cfg.unparsed_window_secs
                    ),
                    false,
                );
            }
            Some(learned) if s.windows >= 3 && share >= learned + cfg.unparsed_jump => {
                spots.raise(
                    BlindKind::UnparsedJump,
                    subject,
                    format!(
                        "{:.0} % of the lines of source `{source}` are understood by no parser (usually {:.0} %): \
                         the log format changed, or something writes into it",
                        share * 100.0,
                        learned * 100.0
                    ),
                    false,
                );
            }
            Some(learned) if open && share >= learned + cfg.unparsed_jump / 2.0 => {}
            _ => {
                if open {
                    spots.clear(BlindKind::UnparsedJump, subject);
                }
                // The learned share moves slowly, and never during an episode.
                s.learned = Some(s.learned.map_or(share, |l| 0.8 * l + 0.2 * share));
                s.windows += 1;
            }
        }
    }

    fn judge_drops(&mut self, source: &str, subject: &str, drops: u64, spots: &BlindSpots, now: Instant) {
        let (seen, last_rise) = self.drops.entry(source.to_string()).or_insert((0, now));
        if drops > *seen {
            let new = drops - *seen;
            *seen = drops;
            *last_rise = now;
            spots.raise(
                BlindKind::KernelDrops,
                subject,
                format!(
                    "the kernel dropped {new} datagrams on syslog source `{source}` (its receive buffer was full): \
                     those messages were never seen; raise recv_buffer_bytes or send over TCP"
                ),
                false,
            );
        } else if now.saturating_duration_since(*last_rise) >= Duration::from_secs(self.cfg.drops_quiet_secs) {
            spots.clear(BlindKind::KernelDrops, subject);
        }
    }
}

impl Rhythm {
    fn new(now: Instant) -> Rhythm {
        Rhythm { watched_since: now, lines: 0, last_line: None, longest: [(0, Duration::ZERO); RHYTHM_DAYS] }
    }

    fn note_gap(&mut self, gap: Duration, now: Instant) {
        let day = now.saturating_duration_since(self.watched_since).as_secs() / 86_400;
        let slot = &mut self.longest[day as usize % RHYTHM_DAYS];
        if slot.0 != day {
            *slot = (day, Duration::ZERO);
        }
        slot.1 = slot.1.max(gap);
    }
}

/// The incident of a blind spot's episode (its id from the kind, subject and start).
pub fn incident(spot: &BlindSpot) -> Incident {
    incident_keyed(spot, &spot.since.to_rfc3339())
}

/// The incident of the blind spot's day: one per kind, subject and day, so that a
/// restart in the middle of an episode (or a spot that comes and goes) does not open a
/// second one while the first is open.
fn incident_of_day(spot: &BlindSpot) -> Incident {
    incident_keyed(spot, &spot.since.date_naive().to_string())
}

fn incident_keyed(spot: &BlindSpot, when: &str) -> Incident {
    let (severity, title, advice) = match spot.kind {
        BlindKind::SourceSilent => (
            Severity::Medium,
            "a source went silent",
            "Check that the service still logs and that Warden reads where it writes (journal matches, file path, syslog forwarding).",
        ),
        BlindKind::SourceUnreadable => (
            Severity::High,
            "a source cannot be read",
            "Lines written there are not read until it can be read again. If nobody changed its permissions or replaced it on purpose, treat it as tampering with the log.",
        ),
        BlindKind::LogDeleted => (
            Severity::High,
            "a tailed log was deleted",
            "The log was removed and not recreated: nothing the service writes is seen. If no administrator did this, treat it as an attacker removing traces (ATT&CK T1070.002) and impairing defences (T1562).",
        ),
        BlindKind::LogTruncated => (
            Severity::High,
            "a tailed log was truncated outside a rotation",
            "Lines before the truncation may be gone from the file (Warden read them up to where it was). If no administrator did this, treat it as an attacker clearing traces (ATT&CK T1070.002, T1562).",
        ),
        BlindKind::UnparsedJump => (
            Severity::Medium,
            "lines no parser understands",
            "Check the service's log format (an upgrade, a changed LogFormat), or whether something else writes into this log.",
        ),
        BlindKind::KernelDrops => (
            Severity::High,
            "syslog messages dropped by the kernel",
            "Datagrams arrive faster than they are read: raise the source's recv_buffer_bytes, or have the senders use TCP.",
        ),
        BlindKind::FeedStale => (
            Severity::Medium,
            "a threat-intel feed is stale",
            "The feed has not been updated within its max_age_hours: check the job that downloads it.",
        ),
        BlindKind::DiskNearlyFull => (
            Severity::Medium,
            "the data disk is nearly full",
            "When it fills up, Warden stops storing findings, incidents and checkpoints until space returns. Free space, or move data_dir to a larger disk.",
        ),
    };
    let key = format!("{}/{}/{when}", spot.kind.as_str(), spot.subject);
    let title = format!("Blind spot: {title} ({})", crate::text::sanitize(&spot.subject, 120));
    let mut inc = Incident::blind_spot(
        &key,
        title.clone(),
        if spot.deliberate { Severity::High } else { severity },
        spot.subject.clone(),
        format!("{} {advice}", spot.detail),
        spot.since,
    );
    let techniques = if spot.deliberate { vec!["T1562".into(), "T1070.002".into()] } else { Vec::new() };
    inc.findings.push(Finding {
        id: uuid::Uuid::new_v5(&inc.id, b"finding"),
        rule: format!("visibility/{}", spot.kind.as_str()),
        title,
        severity: inc.severity,
        confidence: if spot.deliberate { 0.6 } else { 1.0 },
        first_seen: spot.since,
        last_seen: spot.since,
        entity: Some(spot.subject.clone()),
        techniques,
        ..Finding::default()
    });
    inc
}

/// Stores the incident of every blind spot not reported yet.
pub async fn report(kb: &Kb, spots: &BlindSpots) {
    for spot in spots.unreported() {
        let day = incident_of_day(&spot);
        let inc = match kb.incident(day.id).await {
            Ok(None) => day,
            // Already said today and still open: nothing new to store.
            Ok(Some(open)) if open.status != crate::messages::IncidentStatus::Closed => {
                spots.reported(&spot);
                continue;
            }
            // Said today and closed since: this is a new episode.
            Ok(Some(_)) => incident(&spot),
            Err(e) => {
                tracing::error!(subject = %spot.subject, error = %e, "cannot look up a visibility incident");
                continue;
            }
        };
        let id = inc.id;
        match kb.store_incident(inc).await {
            Ok(()) => {
                tracing::warn!(kind = spot.kind.as_str(), subject = %spot.subject, incident = %id, "blind spot: visibility incident");
                spots.reported(&spot);
            }
            Err(e) => tracing::error!(subject = %spot.subject, error = %e, "cannot store a visibility incident"),
        }
    }
}

/// Runs the watcher over `sources` until the system stops.
pub async fn run(kb: Kb, metrics: Arc<Metrics>, cfg: VisibilityConfig, sources: Vec<String>) {
    let every = Duration::from_secs(cfg.tick_secs);
    let mut w = Watcher::new(cfg, &sources, Instant::now());
    loop {
        tokio::time::sleep(every).await;
        w.tick(&metrics.sources(), &metrics.blind_spots, Instant::now());
        report(&kb, &metrics.blind_spots).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VisibilityConfig {
        VisibilityConfig {
            tick_secs: 10,
            silence_min_secs: 60,
            silence_factor: 4.0,
            learn_secs: 100,
            first_line_secs: 300,
            unparsed_window_secs: 60,
            unparsed_min_lines: 10,
            unparsed_jump: 0.25,
            drops_quiet_secs: 120,
        }
    }

    fn counters(source: &str, lines: u64, unparsed: u64, drops: u64) -> BTreeMap<String, SourceCounters> {
        let c = SourceCounters { lines, unparsed, kernel_drops: drops, ..Default::default() };
        BTreeMap::from([(source.to_string(), c)])
    }

    fn open(spots: &BlindSpots, kind: BlindKind) -> Option<BlindSpot> {
        spots.open().into_iter().find(|s| s.kind == kind)
    }

    #[test]
    fn a_source_silent_beyond_its_rhythm_and_one_that_never_spoke() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let spots = BlindSpots::default();
        let mut w = Watcher::new(cfg(), &["auth".into(), "journal".into()], t0);
        // A line every 20 s for 200 s: the longest gap is 20 s, the limit max(4 × 20, 60) = 80 s.
        let mut lines = 0;
        for s in (0..=200).step_by(10) {
            if s % 20 == 0 {
                lines += 5;
            }
            w.tick(&counters("auth", lines, 0, 0), &spots, at(s));
        }
        assert!(open(&spots, BlindKind::SourceSilent).is_none());
        w.tick(&counters("auth", lines, 0, 0), &spots, at(270));
        assert!(open(&spots, BlindKind::SourceSilent).is_none(), "70 s is within the rhythm");
        w.tick(&counters("auth", lines, 0, 0), &spots, at(280));
        let silent = open(&spots, BlindKind::SourceSilent).expect("80 s of silence");
        assert_eq!(silent.subject, "source:auth");
        assert!(silent.detail.contains("longest gap was 20 s"), "{}", silent.detail);
        w.tick(&counters("auth", lines + 1, 0, 0), &spots, at(290));
        assert!(open(&spots, BlindKind::SourceSilent).is_none(), "a line ends it");
        // `journal` never gave a line: a blind spot once first_line_secs have passed.
        w.tick(&counters("auth", lines + 2, 0, 0), &spots, at(300));
        let never = open(&spots, BlindKind::SourceSilent).expect("a source that never spoke");
        assert_eq!(never.subject, "source:journal");
    }

    #[test]
    fn a_jump_in_unparsed_lines_and_its_end() {
        let t0 = Instant::now();
        let spots = BlindSpots::default();
        let mut w = Watcher::new(cfg(), &["web".into()], t0);
        let (mut lines, mut unparsed) = (0, 0);
        let mut window = |share_pct: u64, w: &mut Watcher, k: u64| {
            lines += 100;
            unparsed += share_pct;
            w.tick(&counters("web", lines, unparsed, 0), &spots, t0 + Duration::from_secs(60 * k));
        };
        for k in 0..=4 {
            window(10, &mut w, k);
        }
        assert!(open(&spots, BlindKind::UnparsedJump).is_none());
        window(30, &mut w, 5);
        assert!(open(&spots, BlindKind::UnparsedJump).is_none(), "20 points is below the jump");
        window(70, &mut w, 6);
        let jump = open(&spots, BlindKind::UnparsedJump).expect("60 points over the learned share");
        assert!(jump.detail.contains("70 %"), "{}", jump.detail);
        window(30, &mut w, 7);
        assert!(open(&spots, BlindKind::UnparsedJump).is_some(), "still above half the jump");
        window(10, &mut w, 8);
        assert!(open(&spots, BlindKind::UnparsedJump).is_none(), "back to normal");
    }

    /// A source of which no line parses (a wrong `format`) is a blind spot from its first
    /// window: all-unparsed is never learned as its normal.
    #[test]
    fn a_source_no_line_of_which_parses_is_a_blind_spot_at_once() {
        let t0 = Instant::now();
        let spots = BlindSpots::default();
        let mut w = Watcher::new(cfg(), &["conn".into()], t0);
        w.tick(&counters("conn", 0, 0, 0), &spots, t0);
        w.tick(&counters("conn", 50, 50, 0), &spots, t0 + Duration::from_secs(60));
        let spot = open(&spots, BlindKind::UnparsedJump).expect("nothing parsed");
        assert!(spot.detail.contains("none of the 50 lines of source `conn`"), "{}", spot.detail);
        w.tick(&counters("conn", 150, 150, 0), &spots, t0 + Duration::from_secs(120));
        assert!(open(&spots, BlindKind::UnparsedJump).is_some(), "still nothing parsed");
        w.tick(&counters("conn", 250, 150, 0), &spots, t0 + Duration::from_secs(180));
        assert!(open(&spots, BlindKind::UnparsedJump).is_none(), "lines parse again");
    }

    #[test]
    fn kernel_drops_open_a_blind_spot_until_they_stop() {
        let t0 = Instant::now();
        let spots = BlindSpots::default();
        let mut w = Watcher::new(cfg(), &["syslog".into()], t0);
        w.tick(&counters("syslog", 10, 0, 0), &spots, t0);
        w.tick(&counters("syslog", 20, 0, 345), &spots, t0 + Duration::from_secs(10));
        assert!(open(&spots, BlindKind::KernelDrops).expect("drops").detail.contains("dropped 345"));
        w.tick(&counters("syslog", 30, 0, 345), &spots, t0 + Duration::from_secs(100));
        assert!(open(&spots, BlindKind::KernelDrops).is_some());
        w.tick(&counters("syslog", 40, 0, 345), &spots, t0 + Duration::from_secs(130));
        assert!(open(&spots, BlindKind::KernelDrops).is_none());
    }

    #[test]
    fn a_deliberate_blind_spot_is_classified_and_its_incident_id_is_stable() {
        let spots = BlindSpots::default();
        spots.raise(BlindKind::LogTruncated, "source:auth", "auth.log shrank".into(), true);
        let spot = spots.unreported().remove(0);
        let a = incident(&spot);
        assert_eq!(a.id, incident(&spot).id);
        assert_eq!((a.kind.as_str(), a.severity), ("visibility", Severity::High));
        assert_eq!(a.findings[0].techniques, ["T1562", "T1070.002"]);
        assert!(a.notes[0].starts_with("auth.log shrank"), "{}", a.notes[0]);
        spots.raise(BlindKind::SourceSilent, "source:web", "quiet".into(), false);
        let quiet = spots.unreported().into_iter().find(|s| s.kind == BlindKind::SourceSilent).unwrap();
        let b = incident(&quiet);
        assert!(b.findings[0].techniques.is_empty() && b.severity == Severity::Medium);
    }

    /// A restart in the middle of an episode (a fresh registry raising it again) or a
    /// blind spot that comes and goes the same day: one incident while it is open; once
    /// closed, a new episode opens a new one.
    #[actix_rt::test]
    async fn one_incident_per_open_episode_across_restarts() {
        let kb = Kb::temporary();
        let visibility = |all: &[Incident]| all.iter().filter(|i| i.kind == "visibility").count();
        for _restart in 0..2 {
            let spots = BlindSpots::default();
            spots.raise(BlindKind::SourceUnreadable, "source:auth", "cannot read".into(), false);
            report(&kb, &spots).await;
            assert!(spots.unreported().is_empty());
            spots.clear(BlindKind::SourceUnreadable, "source:auth");
            spots.raise(BlindKind::SourceUnreadable, "source:auth", "cannot read again".into(), false);
            report(&kb, &spots).await;
        }
        let all = kb.incidents().await.unwrap();
        assert_eq!(visibility(&all), 1, "{all:#?}");
        let mut closed = all.into_iter().find(|i| i.kind == "visibility").unwrap();
        closed.status = crate::messages::IncidentStatus::Closed;
        kb.store_incident(closed).await.unwrap();
        let spots = BlindSpots::default();
        spots.raise(BlindKind::SourceUnreadable, "source:auth", "and again".into(), false);
        report(&kb, &spots).await;
        assert_eq!(visibility(&kb.incidents().await.unwrap()), 2);
    }
}
