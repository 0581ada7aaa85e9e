//! The incidents incident response holds in memory: the recently used ones, up to a
//! cap. Every other incident is in the knowledge base and is read back when a finding,
//! an operator's decision or time needs it, so memory does not grow with the number
//! of incidents stored. An incident changed and not committed yet is never let go.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::kb::{KbError, Reader};
use crate::messages::Incident;
use crate::telemetry::Metrics;

struct Entry {
    incident: Arc<Incident>,
    /// When it was last used, on the holder's own clock.
    used: u64,
}

pub(super) struct Held {
    reader: Reader,
    map: HashMap<Uuid, Entry>,
    clock: u64,
    cap: usize,
    /// Changed since the last commit: written with the next one, never let go before.
    pub(super) dirty: BTreeSet<Uuid>,
    metrics: Arc<Metrics>,
}

impl Held {
    pub(super) fn new(reader: Reader, cap: usize, metrics: Arc<Metrics>) -> Held {
        Held { reader, map: HashMap::new(), clock: 0, cap: cap.max(1), dirty: BTreeSet::new(), metrics }
    }

    /// Makes sure `id` is held (read from the knowledge base if it is not); false when
    /// no such incident exists.
    fn load(&mut self, id: Uuid) -> Result<bool, KbError> {
        self.clock += 1;
        if let Some(e) = self.map.get_mut(&id) {
            e.used = self.clock;
            return Ok(true);
        }
        let Some(incident) = self.reader.incident(id)? else { return Ok(false) };
        self.metrics.inc(&self.metrics.incidents_loaded);
        self.map.insert(id, Entry { incident: Arc::new(incident), used: self.clock });
        Ok(true)
    }

    /// The incident, held or read back.
    pub(super) fn get(&mut self, id: Uuid) -> Result<Option<&Arc<Incident>>, KbError> {
        Ok(if self.load(id)? { self.map.get(&id).map(|e| &e.incident) } else { None })
    }

    /// The incident to change (the caller bumps its version and marks it dirty).
    pub(super) fn get_mut(&mut self, id: Uuid) -> Result<Option<&mut Arc<Incident>>, KbError> {
        Ok(if self.load(id)? { self.map.get_mut(&id).map(|e| &mut e.incident) } else { None })
    }

    /// Holds an incident (new, or back from a tool that changed it).
    pub(super) fn insert(&mut self, incident: Arc<Incident>) {
        self.clock += 1;
        self.map.insert(incident.id, Entry { incident, used: self.clock });
    }

    /// Takes an incident out (to hand it to a tool by value); `insert` puts it back.
    pub(super) fn take(&mut self, id: Uuid) -> Result<Option<Arc<Incident>>, KbError> {
        Ok(if self.load(id)? { self.map.remove(&id).map(|e| e.incident) } else { None })
    }

    /// The incident if it is held, without reading the knowledge base.
    pub(super) fn peek(&self, id: &Uuid) -> Option<&Arc<Incident>> {
        self.map.get(id).map(|e| &e.incident)
    }

    /// Every incident held now (not every incident stored).
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<Incident>> {
        self.map.values().map(|e| &e.incident)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Past the cap, lets go of the least recently used clean incidents, down to 90 %
    /// of it (so the sort is paid once per tenth of the cap).
    pub(super) fn trim(&mut self) {
        if self.map.len() <= self.cap {
            return;
        }
        let keep = self.cap - self.cap / 10;
        let mut clean: Vec<(u64, Uuid)> =
            self.map.iter().filter(|(id, _)| !self.dirty.contains(id)).map(|(id, e)| (e.used, *id)).collect();
        clean.sort_unstable();
        let excess = self.map.len().saturating_sub(keep);
        let mut released = 0;
        for (_, id) in clean.into_iter().take(excess) {
            self.map.remove(&id);
            released += 1;
        }
        self.metrics.state_table("incidents_held", None, released);
    }
}
