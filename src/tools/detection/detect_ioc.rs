//! `detect_ioc`: every event of a batch matched against the threat-intel feeds (parsed
//! fields and raw text); hits open findings and enrich the batch's other findings. For
//! a model, a lookup of indicators in a text.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::Intel;
use super::ioc::{IocMatcher, STATE_PREFIX};
use crate::llm::Refusal;
use crate::messages::{Event, Finding};
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct DetectIoc {
    /// `None` without feeds: findings pass unchanged.
    matcher: Option<IocMatcher>,
    keep_delta: bool,
}

/// What to match.
pub struct IocArgs {
    pub events: Arc<Vec<Event>>,
    /// The batch's findings so far, to enrich with the hits.
    pub findings: Vec<Finding>,
}

/// A text to look indicators up in.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// Addresses, domains, URLs, hashes or e-mail addresses, in any text.
    text: String,
}

impl Tool for DetectIoc {
    const NAME: &'static str = "detect_ioc";
    const DESCRIPTION: &'static str =
        "Look up addresses, domains, URLs, hashes and e-mail addresses in the loaded threat-intel feeds.";
    const STATE_PREFIX: Option<&'static str> = Some(STATE_PREFIX);
    type Args = IocArgs;
    type Output = Intel;
    type Request = Request;

    fn build(setup: &ToolSetup, state: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        let matcher = match &setup.feeds {
            Some(store) => {
                let mut m = IocMatcher::new(store.clone());
                m.restore(state)?;
                Some(m)
            }
            None => None,
        };
        Ok(DetectIoc { matcher, keep_delta: setup.durable })
    }

    fn run(&mut self, IocArgs { events, mut findings }: IocArgs) -> Run<Intel> {
        let Some(m) = self.matcher.as_mut() else {
            return ToolOutcome::Succeeded(Intel { enriched: findings, ..Intel::default() }).into();
        };
        let added = m.run(&events, &mut findings);
        let keyed = if self.keep_delta { m.take_delta() } else { m.discard_delta() };
        let evicted = std::mem::take(&mut m.evicted);
        ToolOutcome::Succeeded(Intel { enriched: findings, added, keyed, evicted }).into()
    }

    fn answer(cx: ModelCx, r: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let store = cx.setup.feeds.as_ref().ok_or("no threat-intel feeds configured")?;
            let hits = store.index().match_text(&r.text);
            Ok(if hits.is_empty() {
                "no indicator matches".into()
            } else {
                hits.iter()
                    .map(|h| {
                        format!(
                            "{} ({}) in feed {}: {}",
                            h.indicator,
                            h.kind,
                            h.feed,
                            h.label.as_deref().unwrap_or("-")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        .boxed()
    }
}
