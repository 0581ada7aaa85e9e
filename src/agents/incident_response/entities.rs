//! Which active incident each entity (an attacker's address, a campaign) attaches its
//! findings to. Only what can still attach is kept: an entry whose incident has been
//! quiet longer than the active window (in log time) is dropped, and past a cap the
//! longest quiet entries give way (counted) — a flood of one-off addresses cannot grow
//! it without bound.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::telemetry::Metrics;

pub(super) struct Entities {
    /// Entity → (incident, the incident's last activity when the entry was set).
    map: HashMap<String, (Uuid, DateTime<Utc>)>,
    cap: usize,
    /// The latest activity seen: the log's own clock (replays run in the past).
    newest: DateTime<Utc>,
    /// Changes since the last sweep (a sweep is paid once per tenth of the cap).
    since_sweep: usize,
    metrics: Arc<Metrics>,
}

impl Entities {
    pub(super) fn new(cap: usize, metrics: Arc<Metrics>) -> Entities {
        Entities { map: HashMap::new(), cap: cap.max(16), newest: DateTime::<Utc>::MIN_UTC, since_sweep: 0, metrics }
    }

    pub(super) fn get(&self, entity: &str) -> Option<Uuid> {
        self.map.get(entity).map(|(id, _)| *id)
    }

    /// `entity`'s findings attach to `incident`, last active at `at`.
    pub(super) fn set(&mut self, entity: String, incident: Uuid, at: DateTime<Utc>) {
        self.newest = self.newest.max(at);
        let slot = self.map.entry(entity).or_insert((incident, at));
        *slot = (incident, slot.1.max(at));
        self.since_sweep += 1;
    }

    /// Like `set`, unless the entity already points to an incident active later (the
    /// newest incident of an entity is the one its findings attach to).
    pub(super) fn set_if_later(&mut self, entity: String, incident: Uuid, at: DateTime<Utc>) {
        self.newest = self.newest.max(at);
        match self.map.get(&entity) {
            Some((_, t)) if *t > at => {}
            _ => {
                self.map.insert(entity, (incident, at));
            }
        }
    }

    /// Forgets `entity` if it points to `incident` (which was closed).
    pub(super) fn remove_if(&mut self, entity: &str, incident: Uuid) {
        if self.get(entity) == Some(incident) {
            self.map.remove(entity);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Drops entries quiet longer than `active` before the newest activity; past the
    /// cap, the quietest down to 90 % of it.
    pub(super) fn sweep(&mut self, active: Duration) {
        if self.since_sweep >= self.cap / 10 || self.map.len() > self.cap {
            self.sweep_now(active);
        }
    }

    pub(super) fn sweep_now(&mut self, active: Duration) {
        self.since_sweep = 0;
        let horizon = self.newest.checked_sub_signed(active).unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.map.retain(|_, (_, at)| *at >= horizon);
        let mut evicted = 0;
        if self.map.len() > self.cap {
            let keep = self.cap - self.cap / 10;
            let mut by_age: Vec<(DateTime<Utc>, String)> =
                self.map.iter().map(|(e, (_, at))| (*at, e.clone())).collect();
            by_age.sort_unstable();
            let excess = by_age.len() - keep;
            for (_, e) in by_age.into_iter().take(excess) {
                self.map.remove(&e);
            }
            evicted = excess as u64;
        }
        self.metrics.state_table("incident_entities", None, evicted);
    }
}
