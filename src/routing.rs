//! Routing: which agent an envelope goes to, and how a routed envelope is stored.
//!
//! Decided here and only here. The supervisor routes envelopes from outside (the admin
//! API) and the agent shell routes the envelopes an agent's effects name; both call
//! [`RoutingTable::route`], which picks the target and returns the writes that put the
//! envelope in the durable inbox (and a handoff in the `handoffs` tree) — committed by
//! the caller in the same transaction as whatever caused the envelope.
//!
//! Architecture invariant: the table is built once from the definitions and never
//! changes; loading fails if a payload kind has no handler.

use std::collections::BTreeMap;

use crate::definitions::{AgentKind, Definitions};
use crate::kb::Write;
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::messages::{Envelope, InboxEntry, Payload, PayloadKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no agent named `{0}`")]
    UnknownAgent(String),
    #[error("agent `{agent}` does not handle `{kind}` payloads")]
    NotHandled { agent: String, kind: PayloadKind },
    #[error("no agent handles `{0}` payloads")]
    NoHandler(PayloadKind),
}

/// A routed envelope: its inbox entry, and what to commit to persist it.
#[derive(Debug)]
pub struct Routed {
    pub entry: InboxEntry,
    pub writes: Vec<Write>,
    pub audit: Vec<AuditEntry>,
}

/// Built once from the definitions; immutable afterwards.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    /// The agents that declare each kind, built-in ones first, each in name order; the
    /// first is the default.
    handlers: BTreeMap<PayloadKind, Vec<String>>,
    agents: BTreeMap<String, Vec<PayloadKind>>,
}

impl RoutingTable {
    /// Fails if any payload kind has no handler.
    pub fn new(defs: &Definitions) -> Result<RoutingTable, RouteError> {
        let mut handlers: BTreeMap<PayloadKind, Vec<String>> = BTreeMap::new();
        let mut agents = BTreeMap::new();
        for (name, def) in &defs.agents {
            for k in &def.handles {
                handlers.entry(*k).or_default().push(name.clone());
            }
            agents.insert(name.clone(), def.handles.clone());
        }
        for k in PayloadKind::ALL {
            if handlers.get(&k).is_none_or(|h| h.is_empty()) {
                return Err(RouteError::NoHandler(k));
            }
        }
        // A built-in agent stays the default handler of its kinds: adding a custom agent
        // never changes where an envelope without a target goes.
        for names in handlers.values_mut() {
            names.sort_by_key(|n| defs.agents.get(n).is_some_and(|d| d.kind == AgentKind::Custom));
        }
        Ok(RoutingTable { handlers, agents })
    }

    fn default_for(&self, kind: PayloadKind) -> Result<String, RouteError> {
        self.handlers.get(&kind).and_then(|h| h.first()).cloned().ok_or(RouteError::NoHandler(kind))
    }

    fn check(&self, agent: &str, kind: PayloadKind) -> Result<String, RouteError> {
        let handles = self.agents.get(agent).ok_or_else(|| RouteError::UnknownAgent(agent.to_string()))?;
        if handles.contains(&kind) {
            Ok(agent.to_string())
        } else {
            Err(RouteError::NotHandled { agent: agent.to_string(), kind })
        }
    }

    /// The agent an envelope goes to: `to` if given (it must handle the kind), the
    /// handoff's own target for a handoff, else the default handler of its kind.
    fn target_for(&self, env: &Envelope, to: Option<&str>) -> Result<String, RouteError> {
        let kind = env.payload.kind();
        let explicit = match &env.payload {
            Payload::Handoff(h) => Some(h.to.as_str()),
            Payload::Detection(_)
            | Payload::Triage(_)
            | Payload::Containment(_)
            | Payload::PatchVerification(_)
            | Payload::Instruction(_)
            | Payload::Approval(_)
            | Payload::PlaybookStep(_)
            | Payload::Close(_)
            | Payload::Scan(_)
            | Payload::Enforcement(_) => None,
        };
        match (explicit, to) {
            (Some(a), Some(b)) if a != b => Err(RouteError::NotHandled { agent: b.to_string(), kind }),
            (Some(a), _) | (None, Some(a)) => self.check(a, kind),
            (None, None) => self.default_for(kind),
        }
    }

    /// Routes an envelope on behalf of `actor`: its inbox entry, and the writes and
    /// audit records that persist it (a handoff is also stored in the `handoffs` tree, in
    /// the same commit, before its target can receive it).
    pub fn route(&self, actor: &str, envelope: Envelope, to: Option<&str>) -> Result<Routed, RouteError> {
        let target = self.target_for(&envelope, to)?;
        let entry = InboxEntry { target, envelope, attempts: 0 };
        let e = &entry.envelope;
        let mut writes = vec![Write::InboxPut(entry.clone())];
        let mut audit = vec![AuditEntry::new(
            actor,
            AuditKind::EnvelopeRouted,
            e.id,
            serde_json::json!({ "kind": e.payload.kind(), "to": entry.target, "origin": e.origin, "causation_id": e.causation_id }),
        )];
        if let Payload::Handoff(h) = &e.payload {
            let record = serde_json::json!({ "envelope_id": e.id, "from": h.from, "to": h.to, "incident_id": h.incident_id, "context": h.context, "at": e.created_at });
            writes.push(Write::Handoff { id: e.id, record: record.clone() });
            audit.push(AuditEntry::new(actor, AuditKind::Handoff, e.id, record));
        }
        Ok(Routed { entry, writes, audit })
    }

    /// The agent an envelope of this kind goes to when it names none.
    pub fn default_handler(&self, kind: PayloadKind) -> Option<&str> {
        self.handlers.get(&kind).and_then(|h| h.first()).map(String::as_str)
    }

    pub fn handles(&self, agent: &str) -> &[PayloadKind] {
        self.agents.get(agent).map(|v| v.as_slice()).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Instruction, PayloadKind};

    /// A custom agent named to sort first never becomes the default handler of a kind a
    /// built-in agent handles; it gets what is addressed to it.
    #[test]
    fn built_in_agents_stay_the_default_handlers() {
        let mut defs = crate::agents::test_support::definitions();
        let mut custom = defs.agents["threat-detection"].clone();
        custom.name = "aaa-analyst".into();
        custom.kind = AgentKind::Custom;
        custom.handles = vec![PayloadKind::Instruction, PayloadKind::Handoff];
        defs.agents.insert(custom.name.clone(), custom);
        let table = RoutingTable::new(&defs).unwrap();
        let ask = Envelope::new("admin", Payload::Instruction(Instruction { text: "?".into(), incident_id: None }));
        assert_eq!(table.target_for(&ask, None).unwrap(), "incident-response");
        assert_eq!(table.target_for(&ask, Some("aaa-analyst")).unwrap(), "aaa-analyst");
        let routed = table.route("admin", ask, Some("aaa-analyst")).unwrap();
        assert_eq!(routed.entry.target, "aaa-analyst");
        assert!(matches!(routed.writes[0], Write::InboxPut(_)));
        assert_eq!(routed.audit[0].kind, AuditKind::EnvelopeRouted);
    }
}
