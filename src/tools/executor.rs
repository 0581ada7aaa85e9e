//! The `ToolExecutor` actor: one per agent, its toolbelt.
//!
//! Owns: the agent's declared tools, built from the registry, including stateful ones
//! (the detectors' windows). Accepts: [`ExecuteTool`]. Emits: a [`ToolOutcome`] per
//! call — `Succeeded`, `Failed`, `Denied`, `TimedOut` or `DryRun`.
//! Survives a restart: nothing by itself. A stateful tool returns what a call changed
//! with its output; the agent stores it in the same commit as the call's cause, and a
//! new executor resumes every tool from that stored state.
//!
//! The executor knows no tool by name: it runs whatever the registry built for the
//! agent's declared tools. A call of a tool the agent did not declare is denied. A
//! panic inside a tool is caught here and becomes `Failed`; a stateful tool that
//! panicked (or whose stored state could not be read) fails every later call until the
//! agent — and with it the executor — is rebuilt from durable state.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use actix::prelude::*;
use futures_util::FutureExt;

use super::tool::AnyTool;
use super::{Call, Run, ToolName, ToolOutcome, ToolSetup, registry};

/// A call for the executor to run.
#[derive(Message, Debug)]
#[rtype(result = "ToolOutcome")]
pub struct ExecuteTool(pub Call);

/// One declared tool: the instance, or why it cannot run.
struct Slot {
    tool: Option<Box<dyn AnyTool>>,
    /// Set once the tool's state is lost (a panic, an unreadable stored state).
    lost: Option<String>,
    stateful: bool,
}

/// The toolbelt of one agent.
pub struct ToolExecutor {
    agent: String,
    tools: BTreeMap<ToolName, Slot>,
}

impl ToolExecutor {
    /// The executor of an agent's declared tools. `state` holds the stored entries of
    /// its stateful tools, keys relative to the agent's name; each tool gets those below
    /// its prefix, the prefix taken off.
    pub fn new(setup: &ToolSetup, declared: &[ToolName], mut state: Vec<(String, serde_json::Value)>) -> Self {
        let mut tools = BTreeMap::new();
        for name in declared {
            let Some(spec) = registry::spec(*name) else { continue };
            let mine = match spec.state_prefix {
                Some(prefix) => {
                    let (mine, rest): (Vec<_>, Vec<_>) = state.into_iter().partition(|(k, _)| k.starts_with(prefix));
                    state = rest;
                    mine.into_iter().map(|(k, v)| (k[prefix.len()..].to_string(), v)).collect()
                }
                None => Vec::new(),
            };
            let slot = match catch_unwind(AssertUnwindSafe(|| spec.build(setup, mine))) {
                Ok(Ok(tool)) => Slot { tool: Some(tool), lost: None, stateful: spec.state_prefix.is_some() },
                Ok(Err(e)) => {
                    tracing::error!(agent = %setup.agent, tool = %name, error = %e, "cannot restore the tool's state");
                    Slot { tool: None, lost: Some(format!("stored state unreadable: {e}")), stateful: true }
                }
                Err(p) => {
                    Slot { tool: None, lost: Some(format!("panicked while built: {}", panic_text(&p))), stateful: true }
                }
            };
            tools.insert(*name, slot);
        }
        ToolExecutor { agent: setup.agent.clone(), tools }
    }

    /// Runs one call: at once, or as a future to await (commands, the file system).
    fn run(&mut self, Call { tool, args }: Call) -> Run<Box<dyn std::any::Any + Send>> {
        let Some(slot) = self.tools.get_mut(&tool) else {
            return ToolOutcome::Denied(format!("agent `{}` does not declare tool `{tool}`", self.agent)).into();
        };
        if let Some(why) = &slot.lost {
            return ToolOutcome::Failed(format!("{tool}: {why}; the agent must be rebuilt")).into();
        }
        let Some(t) = slot.tool.as_mut() else {
            return ToolOutcome::Failed(format!("{tool} is not available")).into();
        };
        match catch_unwind(AssertUnwindSafe(|| t.run_any(args))) {
            Ok(run) => run,
            Err(p) => {
                let text = panic_text(&p);
                if slot.stateful {
                    slot.lost = Some(format!("state lost after a panic ({text})"));
                }
                ToolOutcome::Failed(format!("{tool} panicked: {text}")).into()
            }
        }
    }
}

/// The text of a caught panic.
pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Actor for ToolExecutor {
    type Context = Context<Self>;
}

impl Handler<ExecuteTool> for ToolExecutor {
    type Result = ResponseActFuture<Self, ToolOutcome>;

    fn handle(&mut self, ExecuteTool(call): ExecuteTool, _: &mut Self::Context) -> Self::Result {
        let tool = call.tool;
        match self.run(call) {
            Run::Done(o) => Box::pin(fut::ready(o)),
            Run::Later(f) => Box::pin(
                AssertUnwindSafe(f)
                    .catch_unwind()
                    .map(move |r| {
                        r.unwrap_or_else(|p| ToolOutcome::Failed(format!("{tool} panicked: {}", panic_text(&p))))
                    })
                    .into_actor(self),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The executor with a tool of its own: undeclared tools are denied, a panic is a
    //! failure, and a stateful tool that panicked fails every later call.

    use futures_util::FutureExt;
    use futures_util::future::BoxFuture;

    use super::*;
    use crate::llm::Refusal;
    use crate::tools::{ModelCx, StateError, Tool, typed};

    /// Panics on `true`, else answers how often it ran.
    struct Boom(u32);

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Nothing {}

    impl Tool for Boom {
        const NAME: &'static str = "boom";
        const DESCRIPTION: &'static str = "test";
        const STATE_PREFIX: Option<&'static str> = Some("boom/");
        type Args = bool;
        type Output = u32;
        type Request = Nothing;

        fn build(_: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
            Ok(Boom(0))
        }

        fn run(&mut self, panic: bool) -> Run<u32> {
            assert!(!panic, "boom");
            self.0 += 1;
            ToolOutcome::Succeeded(self.0).into()
        }

        fn answer(_: ModelCx, _: Nothing) -> BoxFuture<'static, Result<String, Refusal>> {
            futures_util::future::ready(Ok(String::new())).boxed()
        }
    }

    fn executor() -> ToolExecutor {
        let mut e = ToolExecutor::new(&ToolSetup { agent: "a".into(), ..Default::default() }, &[], Vec::new());
        let slot = Slot { tool: Some(Box::new(Boom(0))), lost: None, stateful: true };
        e.tools.insert(ToolName::of::<Boom>(), slot);
        e
    }

    fn run(e: &mut ToolExecutor, args: bool) -> ToolOutcome<u32> {
        match e.run(Call::new::<Boom>(args)) {
            Run::Done(o) => typed::<Boom>(o),
            Run::Later(_) => panic!("runs at once"),
        }
    }

    #[test]
    fn panics_fail_and_lose_a_stateful_tool() {
        let mut e = executor();
        assert!(matches!(run(&mut e, false), ToolOutcome::Succeeded(1)));
        assert!(matches!(run(&mut e, true), ToolOutcome::Failed(m) if m.starts_with("boom panicked: boom")));
        let after = run(&mut e, false);
        assert!(matches!(&after, ToolOutcome::Failed(m) if m.contains("state lost after a panic")), "{after:?}");
        // A tool the agent does not declare is denied.
        let inc = crate::messages::Incident::open(
            uuid::Uuid::nil(),
            String::new(),
            String::new(),
            crate::messages::Severity::Low,
            vec![],
            vec![],
            chrono::Utc::now(),
        );
        let call = Call::new::<crate::tools::response::triage_incident::TriageIncident>(std::sync::Arc::new(inc));
        let undeclared = e.run(call);
        let Run::Done(ToolOutcome::Denied(why)) = undeclared else { panic!("not denied") };
        assert_eq!(why, "agent `a` does not declare tool `triage_incident`");
    }
}
