//! One way to be a tool.
//!
//! A tool is one type implementing [`Tool`] in one file: its name and description, the
//! typed arguments an agent passes and the typed output it gets back, the arguments a
//! language model passes (whose JSON schema is derived from their type and is what the
//! model is offered), how it is built for an agent, how it runs, and how it answers a
//! model. [`ToolSpec::of`] turns it into a registry entry; the executor and the
//! language-model adapter only ever iterate over registry entries — neither knows any
//! tool by name.
//!
//! Architecture invariant: a tool never writes the knowledge base and never routes an
//! envelope itself. What it decides comes back as its output (for the calling agent to
//! commit), and what a model's call requests is collected in the call's [`Sinks`](super::Sinks).

use std::any::Any;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, LocalBoxFuture};
use serde::de::DeserializeOwned;

use super::ToolName;
use super::detection::DetectionParams;
use super::detection::ioc::FeedStore;
use super::model::ModelCx;
use super::response::actions::ContainPolicy;
use super::response::playbook::Playbook;
use super::response::triage::Assets;
use super::vuln::scan::Target;
use crate::llm::Refusal;

/// A tool: what it is called, what it tells a model, its typed arguments and output,
/// and how it runs.
pub trait Tool: Sized + 'static {
    /// The name agents declare and a model sees.
    const NAME: &'static str;
    /// What it does, for a model.
    const DESCRIPTION: &'static str;
    /// Where its state lives in the `state` tree, below the agent's name (`None`: it
    /// keeps none). Entries under it are handed to [`Tool::build`] when the agent is
    /// rebuilt.
    const STATE_PREFIX: Option<&'static str> = None;
    /// What an agent passes.
    type Args: Send + 'static;
    /// What a successful call produces.
    type Output: Send + 'static;
    /// What a model passes; its JSON schema (from the type) is what the model is offered.
    type Request: DeserializeOwned + schemars::JsonSchema;

    /// Builds the tool for an agent, resuming the state stored under its prefix. A state
    /// that cannot be read is an error: the tool then fails every call, loudly, until the
    /// agent is rebuilt (it never silently starts afresh).
    fn build(setup: &ToolSetup, state: Vec<(String, serde_json::Value)>) -> Result<Self, StateError>;

    /// Runs one call. Quick work happens here (a panic is caught by the executor); slow
    /// work (commands, the file system) is returned as a future the executor awaits.
    fn run(&mut self, args: Self::Args) -> Run<Self::Output>;

    /// Answers a model's call: the text the model reads back, or why the call was
    /// refused (also told to the model). Runs outside the executor, on the model's task;
    /// it reaches the tool itself through [`ModelCx::call`].
    fn answer(cx: ModelCx, request: Self::Request) -> BoxFuture<'static, Result<String, Refusal>>;
}

/// A tool's stored state that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state key `{key}` is malformed")]
    Key { key: String },
    #[error("state `{key}`: {source}")]
    Value { key: String, source: serde_json::Error },
}

/// What an agent's tools are built from: its definition's parameters and what the
/// runtime shares.
#[derive(Clone, Default)]
pub struct ToolSetup {
    /// The agent the tools belong to.
    pub agent: String,
    pub detection: DetectionParams,
    /// Sigma rule files: (path for messages, text).
    pub rule_files: Arc<Vec<(String, String)>>,
    /// The agent's threat-intel feeds, loaded once and reloaded on change.
    pub feeds: Option<Arc<FeedStore>>,
    pub assets: Arc<Assets>,
    pub playbooks: Arc<Vec<Playbook>>,
    /// The vulnerability scan targets (a model names one of them).
    pub targets: Vec<Target>,
    /// What containment may touch and where it puts things.
    pub policy: Arc<ContainPolicy>,
    /// False for `warden replay`'s throw-away database: stateful tools return no state
    /// deltas to store.
    pub durable: bool,
}

/// How a call runs: decided at once, or in a future the executor awaits.
pub enum Run<T> {
    Done(ToolOutcome<T>),
    Later(LocalBoxFuture<'static, ToolOutcome<T>>),
}

impl<T> From<ToolOutcome<T>> for Run<T> {
    fn from(o: ToolOutcome<T>) -> Self {
        Run::Done(o)
    }
}

/// The outcome of a tool call. Failure is a value.
pub enum ToolOutcome<T = Box<dyn Any + Send>> {
    Succeeded(T),
    Failed(String),
    Denied(String),
    TimedOut,
    /// The command that would have run, not run (observe and approve modes); `steps`
    /// lists every command and native step of the action.
    DryRun {
        argv: Vec<String>,
        steps: Vec<String>,
    },
}

impl<T> ToolOutcome<T> {
    pub fn summary(&self) -> String {
        match self {
            ToolOutcome::Succeeded(_) => "succeeded".into(),
            ToolOutcome::Failed(e) => format!("failed: {e}"),
            ToolOutcome::Denied(e) => format!("denied: {e}"),
            ToolOutcome::TimedOut => "timed out".into(),
            ToolOutcome::DryRun { .. } => "dry run".into(),
        }
    }

    /// The same outcome with its output changed by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> ToolOutcome<U> {
        match self {
            ToolOutcome::Succeeded(t) => ToolOutcome::Succeeded(f(t)),
            ToolOutcome::Failed(e) => ToolOutcome::Failed(e),
            ToolOutcome::Denied(e) => ToolOutcome::Denied(e),
            ToolOutcome::TimedOut => ToolOutcome::TimedOut,
            ToolOutcome::DryRun { argv, steps } => ToolOutcome::DryRun { argv, steps },
        }
    }

    /// The output, or the summary of what went otherwise.
    pub fn output(self) -> Result<T, ToolOutcome<()>> {
        match self {
            ToolOutcome::Succeeded(t) => Ok(t),
            other => Err(other.map(|_| ())),
        }
    }
}

impl<T> std::fmt::Debug for ToolOutcome<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

/// A tool with its types erased, as the executor holds it.
pub(super) trait AnyTool {
    fn run_any(&mut self, args: Box<dyn Any + Send>) -> Run<Box<dyn Any + Send>>;
}

fn boxed<T: Send + 'static>(t: T) -> Box<dyn Any + Send> {
    Box::new(t)
}

impl<T: Tool> AnyTool for T {
    fn run_any(&mut self, args: Box<dyn Any + Send>) -> Run<Box<dyn Any + Send>> {
        let Ok(args) = args.downcast::<T::Args>() else {
            return Run::Done(ToolOutcome::Failed(format!("{}: arguments of another tool", T::NAME)));
        };
        match self.run(*args) {
            Run::Done(o) => Run::Done(o.map(boxed)),
            Run::Later(f) => Run::Later(f.map(|o| o.map(boxed)).boxed_local()),
        }
    }
}

/// A call of tool `T`, with its types erased for the trip through the executor's
/// mailbox.
pub struct Call {
    pub tool: ToolName,
    pub args: Box<dyn Any + Send>,
}

impl Call {
    pub fn new<T: Tool>(args: T::Args) -> Call {
        Call { tool: ToolName::of::<T>(), args: Box::new(args) }
    }

    /// The arguments, if this is a call of `T` (for test doubles).
    pub fn args<T: Tool>(&self) -> Option<&T::Args> {
        (self.tool == ToolName::of::<T>()).then(|| self.args.downcast_ref::<T::Args>()).flatten()
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({})", self.tool)
    }
}

/// The executor's answer to a call of `T`, unboxed.
pub fn typed<T: Tool>(o: ToolOutcome) -> ToolOutcome<T::Output> {
    match o {
        ToolOutcome::Succeeded(b) => match b.downcast::<T::Output>() {
            Ok(out) => ToolOutcome::Succeeded(*out),
            Err(_) => ToolOutcome::Failed(format!("{}: the executor answered with another tool's output", T::NAME)),
        },
        ToolOutcome::Failed(e) => ToolOutcome::Failed(e),
        ToolOutcome::Denied(e) => ToolOutcome::Denied(e),
        ToolOutcome::TimedOut => ToolOutcome::TimedOut,
        ToolOutcome::DryRun { argv, steps } => ToolOutcome::DryRun { argv, steps },
    }
}

/// An answer for tool `T`, boxed as the executor gives it (for test doubles).
pub fn reply<T: Tool>(o: ToolOutcome<T::Output>) -> ToolOutcome {
    o.map(boxed)
}

/// Builds a tool from an agent's setup and stored state.
type BuildFn = fn(&ToolSetup, Vec<(String, serde_json::Value)>) -> Result<Box<dyn AnyTool>, StateError>;
/// Answers a model's call with its (untrusted) JSON arguments.
type AnswerFn = fn(ModelCx, serde_json::Value) -> BoxFuture<'static, Result<String, Refusal>>;

/// A tool as the registry lists it: everything the executor and the language-model
/// adapter need, with no per-tool code of their own.
pub struct ToolSpec {
    pub name: ToolName,
    pub description: &'static str,
    pub state_prefix: Option<&'static str>,
    schema: fn() -> serde_json::Value,
    build: BuildFn,
    answer: AnswerFn,
}

impl ToolSpec {
    pub const fn of<T: Tool>() -> ToolSpec {
        ToolSpec {
            name: ToolName::of::<T>(),
            description: T::DESCRIPTION,
            state_prefix: T::STATE_PREFIX,
            schema: schema_of::<T>,
            build: build_of::<T>,
            answer: answer_of::<T>,
        }
    }

    /// The JSON schema of the arguments a model passes.
    pub fn schema(&self) -> serde_json::Value {
        (self.schema)()
    }

    pub(super) fn build(
        &self,
        setup: &ToolSetup,
        state: Vec<(String, serde_json::Value)>,
    ) -> Result<Box<dyn AnyTool>, StateError> {
        (self.build)(setup, state)
    }

    /// Answers a model's call with these (untrusted) arguments.
    pub fn answer(&self, cx: ModelCx, args: serde_json::Value) -> BoxFuture<'static, Result<String, Refusal>> {
        (self.answer)(cx, args)
    }
}

/// The JSON schema of an enum of unit variants as one flat `enum` of their names
/// (schemars makes a `oneOf` of them when variants carry doc comments), for a request
/// field: `#[schemars(schema_with = "flat_enum::<T>")]`.
pub fn flat_enum<T: schemars::JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    fn names(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
        if let Some(c) = v.get("const") {
            out.push(c.clone());
        }
        for e in v.get("enum").and_then(|e| e.as_array()).into_iter().flatten() {
            out.push(e.clone());
        }
        for alt in v.get("oneOf").and_then(|o| o.as_array()).into_iter().flatten() {
            names(alt, out);
        }
    }
    let mut all = Vec::new();
    names(T::json_schema(g).as_value(), &mut all);
    all.sort_by_key(|v| v.to_string());
    schemars::json_schema!({ "type": "string", "enum": all })
}

fn schema_of<T: Tool>() -> serde_json::Value {
    let mut v = serde_json::to_value(schemars::schema_for!(T::Request)).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        // What a model needs is the object's shape; the meta keys only cost tokens.
        m.remove("$schema");
        m.remove("title");
        m.remove("description");
        m.entry("properties").or_insert_with(|| serde_json::json!({}));
    }
    v
}

fn build_of<T: Tool>(
    setup: &ToolSetup,
    state: Vec<(String, serde_json::Value)>,
) -> Result<Box<dyn AnyTool>, StateError> {
    T::build(setup, state).map(|t| Box::new(t) as Box<dyn AnyTool>)
}

fn answer_of<T: Tool>(cx: ModelCx, args: serde_json::Value) -> BoxFuture<'static, Result<String, Refusal>> {
    match serde_json::from_value::<T::Request>(args) {
        Ok(r) => T::answer(cx, r),
        Err(e) => {
            let why = format!("invalid arguments for {}: {}", T::NAME, crate::text::sanitize(&e.to_string(), 200));
            futures_util::future::ready(Err(Refusal(why))).boxed()
        }
    }
}
