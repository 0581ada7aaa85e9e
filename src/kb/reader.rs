//! Reading the knowledge base beside its actor: typed point reads and a filtered scan
//! on the same store, for an agent that holds only part of its state in memory
//! (incident response keeps its recent incidents and loads the others when a finding,
//! a decision or time needs them).
//!
//! Only reads — the knowledge-base actor stays the only writer — and only what is
//! committed: the caller keeps what it changed and has not committed yet. After a
//! storage failure a reader refuses, as the actor does (a failed sled can spin on a read).

use std::sync::Arc;

use uuid::Uuid;

use super::records::{IncidentIn, decode, join, with_findings_of};
use super::{KbError, StorageHealth};
use crate::messages::Incident;
use crate::store::{Store, TreeName};

#[derive(Clone)]
pub struct Reader {
    store: Store,
    health: Arc<StorageHealth>,
}

impl Reader {
    pub fn new(store: Store, health: Arc<StorageHealth>) -> Reader {
        Reader { store, health }
    }

    fn get(&self, tree: TreeName, key: &[u8]) -> Result<Option<Vec<u8>>, KbError> {
        if let Some(e) = self.health.down() {
            return Err(e);
        }
        Ok(self.store.get(tree, key)?)
    }

    /// An incident with its findings.
    pub fn incident(&self, id: Uuid) -> Result<Option<Incident>, KbError> {
        match self.get(TreeName::Incidents, id.as_bytes())? {
            Some(v) => Ok(Some(join(&self.store, decode("incident", &v)?)?)),
            None => Ok(None),
        }
    }

    /// The incident a finding is attached to (its link, written when it was attached
    /// or moved by a merge).
    pub fn incident_of_finding(&self, finding: Uuid) -> Result<Option<Uuid>, KbError> {
        self.get(TreeName::Links, finding.as_bytes())?.map(|v| decode("link", &v)).transpose()
    }

    /// The incident a containment action belongs to.
    pub fn incident_of_action(&self, action: Uuid) -> Result<Option<Uuid>, KbError> {
        #[derive(serde::Deserialize)]
        struct ActionRecord {
            incident_id: Uuid,
        }
        let rec = self.get(TreeName::Actions, action.as_bytes())?.map(|v| decode::<ActionRecord>("action", &v));
        Ok(rec.transpose()?.map(|r| r.incident_id))
    }

    /// Every incident's creation time and id, oldest first (ties by id): a listing that
    /// reads each incident when it gets to it, never all at once.
    pub fn incident_order(&self) -> Result<Vec<(chrono::DateTime<chrono::Utc>, Uuid)>, KbError> {
        let mut order = Vec::new();
        self.scan_incidents(
            |i| {
                order.push((i.created_at, i.id));
                false
            },
            |_| {},
        )?;
        order.sort();
        Ok(order)
    }

    /// Hands `each` every stored incident `want` chooses, with its findings. `want`
    /// sees each incident without its findings (they are read only for the chosen
    /// ones); one incident at a time, so the scan itself holds none of them.
    pub fn scan_incidents(
        &self,
        mut want: impl FnMut(&Incident) -> bool,
        mut each: impl FnMut(Incident),
    ) -> Result<(), KbError> {
        if let Some(e) = self.health.down() {
            return Err(e);
        }
        for item in self.store.iter(TreeName::Incidents) {
            let (_, v) = item?;
            let mut rec: IncidentIn = decode("incident", &v)?;
            let ids = std::mem::take(&mut rec.finding_ids);
            let head = rec.with_findings(Vec::new());
            if want(&head) {
                each(with_findings_of(&self.store, head, &ids)?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::{KnowledgeBase, Write};
    use crate::messages::{Finding, IncidentStatus, Severity};
    use crate::store::RawWrite;

    fn incident_with(findings: Vec<Finding>) -> Incident {
        let id = Uuid::new_v4();
        Incident::open(id, "ssh_brute_force".into(), "t".into(), Severity::High, vec![], findings, chrono::Utc::now())
    }

    #[test]
    fn a_database_from_before_links_is_linked_when_opened_and_read_back_by_finding() {
        let store = Store::temporary(1 << 20).unwrap();
        let f = |n: u8| Finding { id: Uuid::from_bytes([n; 16]), ..Default::default() };
        let (a, b) = (incident_with(vec![f(1), f(2)]), incident_with(vec![f(3)]));
        let mut kb = KnowledgeBase::new(store.clone()).unwrap();
        let writes = [Write::Finding(f(1)), Write::Finding(f(2)), Write::Finding(f(3))]
            .into_iter()
            .chain([a.clone(), b.clone()].map(|i| Write::Incident(Arc::new(i))))
            .collect();
        kb.commit(&crate::kb::Commit { writes, ..Default::default() }).unwrap();
        // As written before links existed: none.
        let links: Vec<_> = store.iter(TreeName::Links).map(Result::unwrap).collect();
        let deletes: Vec<RawWrite> =
            links.into_iter().map(|(key, _)| RawWrite::Delete { tree: TreeName::Links, key }).collect();
        store.apply(&deletes).unwrap();
        assert!(store.is_empty(TreeName::Links));
        let kb = KnowledgeBase::new(store.clone()).unwrap();
        let r = kb.reader();
        assert_eq!(r.incident_of_finding(f(2).id).unwrap(), Some(a.id));
        assert_eq!(r.incident_of_finding(f(3).id).unwrap(), Some(b.id));
        assert_eq!(r.incident_of_finding(f(9).id).unwrap(), None);
        assert_eq!(r.incident(a.id).unwrap().unwrap().findings.len(), 2);
        // The scan reads findings only for what it keeps.
        let mut seen = 0;
        let mut kept = Vec::new();
        r.scan_incidents(
            |head| {
                seen += 1;
                assert!(head.findings.is_empty());
                head.id == b.id && head.status == IncidentStatus::Open
            },
            |i| kept.push(i),
        )
        .unwrap();
        assert_eq!((seen, kept.len(), kept[0].findings.len()), (2, 1, 1));
    }
}
