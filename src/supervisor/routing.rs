//! The routing table: which agent handles which payload kind.

use std::collections::BTreeMap;

use crate::definitions::Definitions;
use crate::messages::{Envelope, Payload, PayloadKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no agent named `{0}`")]
    UnknownAgent(String),
    #[error("agent `{agent}` does not handle `{kind}` payloads")]
    NotHandled { agent: String, kind: PayloadKind },
    #[error("no agent handles `{0}` payloads")]
    NoHandler(PayloadKind),
}

/// Built once from the definitions; immutable afterwards.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    /// The agents that declare each kind, in name order; the first is the default.
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
    pub fn target_for(&self, env: &Envelope, to: Option<&str>) -> Result<String, RouteError> {
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
            | Payload::Scan(_) => None,
        };
        match (explicit, to) {
            (Some(a), Some(b)) if a != b => Err(RouteError::NotHandled { agent: b.to_string(), kind }),
            (Some(a), _) | (None, Some(a)) => self.check(a, kind),
            (None, None) => self.default_for(kind),
        }
    }

    pub fn handles(&self, agent: &str) -> &[PayloadKind] {
        self.agents.get(agent).map(|v| v.as_slice()).unwrap_or(&[])
    }
}
