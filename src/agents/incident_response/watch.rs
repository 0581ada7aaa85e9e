//! The incidents time still has work for: an action waiting for approval (it lapses),
//! a block in force that is not permanent (it is rolled back when its time is up or
//! its incident is closed), a playbook waiting at a gate (it times out). The tick looks
//! only at those whose time has come, and reads them back if they are not held.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::messages::{ActionStatus, Incident, IncidentStatus, RunStatus};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Watch {
    /// The earliest time something of it is due (`None`: only a change to the incident,
    /// such as closing it, can make something due).
    pub due: Option<DateTime<Utc>>,
    /// The gate its playbook waits at, answered by an approval with this id.
    pub gate: Option<Uuid>,
}

impl Watch {
    pub(super) fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.due.is_some_and(|d| d <= now)
    }
}

/// What time has to do for `inc`, if anything.
pub(super) fn watch_of(inc: &Incident) -> Option<Watch> {
    let closed = inc.status == IncidentStatus::Closed;
    let mut due: Option<DateTime<Utc>> = None;
    let mut earliest = |d: DateTime<Utc>| due = Some(due.map_or(d, |x| x.min(d)));
    let mut live = false;
    for a in &inc.actions {
        let lives = match a.status {
            ActionStatus::PendingApproval => true,
            ActionStatus::Executed | ActionStatus::Published => !a.permanent && a.rollback.is_none(),
            _ => false,
        };
        if !lives {
            continue;
        }
        live = true;
        match (closed, a.expires_at) {
            (true, _) => earliest(DateTime::<Utc>::MIN_UTC),
            (false, Some(at)) => earliest(at),
            (false, None) => {}
        }
    }
    let run = inc.playbook.as_ref().filter(|r| r.status == RunStatus::Waiting);
    if let Some(at) = run.and_then(|r| r.gate_deadline) {
        earliest(at);
    }
    (live || run.is_some()).then_some(Watch { due, gate: run.and_then(|r| r.gate) })
}
