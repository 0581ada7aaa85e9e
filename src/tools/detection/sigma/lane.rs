//! A source's lane for the Sigma rules: its thread matches each batch's events against
//! its own compiled copy of the detection rules (rsigma's engine keeps caches that are
//! not shared between threads) before the batch is sent. The agent's `analyze_logs`
//! then feeds those matches to the correlations and its suppression, in the batch's
//! order: only the stateless part moves, so the findings are the same.

use std::sync::Arc;

use rsigma_eval::EvaluationResult;

use super::{RuleSet, SigmaView, load_with};
use crate::ingest::{Lane, LaneMaker};
use crate::messages::{LogBatch, Prematched};

/// One event's matches: `None` when no rule admits its logsource (it is not evaluated
/// at all), else the detection rules it matched (often none).
pub struct Matches(pub(super) Option<Vec<EvaluationResult>>);

/// A batch's matches, event by event.
struct BatchMatches(Vec<Option<Vec<EvaluationResult>>>);

/// Makes lanes for one agent's rule files.
pub struct SigmaLanes {
    files: Arc<Vec<(String, String)>>,
}

impl SigmaLanes {
    /// `None` when there are no rules to match.
    pub fn new(files: Arc<Vec<(String, String)>>) -> Option<Arc<dyn LaneMaker>> {
        (!files.is_empty()).then(|| Arc::new(SigmaLanes { files }) as Arc<dyn LaneMaker>)
    }
}

/// Correlation groups a lane's copy keeps: none are ever used (a lane only matches).
const LANE_GROUPS: usize = 16;

impl LaneMaker for SigmaLanes {
    fn make(&self) -> Box<dyn Lane> {
        Box::new(SigmaLane(load_with(&self.files, LANE_GROUPS)))
    }
}

struct SigmaLane(RuleSet);

impl Lane for SigmaLane {
    fn prepare(&mut self, batch: &mut LogBatch) {
        let set = &mut self.0;
        if set.engine.detection_rule_count() == 0 {
            return;
        }
        let file = batch.file.as_deref();
        let matches = batch
            .events
            .iter()
            .map(|ev| set.detections(ev, &SigmaView::new(ev, ev.file.as_deref().or(file))))
            .collect();
        batch.matched = Some(Prematched { by: set.id, results: Arc::new(BatchMatches(matches)) });
    }
}

impl RuleSet {
    /// The matches of event `i` of a batch of `len` events, when a lane of these same
    /// rules made them (otherwise the agent matches the event itself).
    pub fn matches(&self, matched: Option<&Prematched>, i: usize, len: usize) -> Option<Matches> {
        let m = matched.filter(|m| m.by == self.id)?;
        let all = m.results.downcast_ref::<BatchMatches>().filter(|b| b.0.len() == len)?;
        Some(Matches(all.0.get(i)?.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::BatchBuilder;
    use crate::tools::detection::sigma::{SigmaState, load};

    fn files() -> Arc<Vec<(String, String)>> {
        let text = include_str!("../../../../actors/threat-detection/rules/ssh_invalid_user_enumeration.yml");
        Arc::new(vec![("enum.yml".to_string(), text.to_string())])
    }

    /// A batch matched by a source's lane gives the agent's rules the same findings as
    /// matching it there (a correlation over five lines included), and only rules of the
    /// same files take a lane's matches.
    #[test]
    fn a_lanes_matches_give_the_findings_the_agent_would_find() {
        let mut b = BatchBuilder::new(crate::config::LogFormat::Auto, chrono::Utc::now());
        for (i, user) in ["alice", "bob", "carol", "dave", "erin"].iter().enumerate() {
            b.line(format!("Nov 26 10:00:0{i} h1 sshd[9]: Invalid user {user} from 203.0.113.9 port 4000"));
            b.line(format!("Nov 26 10:00:0{i} h1 cron[7]: (root) CMD (run-parts /etc/cron.hourly {i})"));
        }
        let mut batch = b.take("auth", None, None);
        let lanes = SigmaLanes::new(files()).expect("rules");
        lanes.make().prepare(&mut batch);
        assert!(batch.matched.is_some());
        let w = chrono::Duration::seconds(600);
        let (mut agent, mut alone) = (load(&files()), load(&files()));
        let (mut st_agent, mut st_alone) = (SigmaState::default(), SigmaState::default());
        let n = batch.events.len();
        let (mut with_lane, mut without) = (Vec::new(), Vec::new());
        for (i, ev) in batch.events.iter().enumerate() {
            let pre = agent.matches(batch.matched.as_ref(), i, n);
            assert!(pre.is_some(), "event {i}: the lane's matches are taken");
            with_lane.extend(agent.evaluate_matched(ev, None, &mut st_agent, w, pre));
            without.extend(alone.evaluate(ev, None, &mut st_alone, w));
        }
        assert_eq!(with_lane.len(), 1, "{with_lane:#?}");
        assert_eq!(with_lane, without);
        // Other rules, or a batch of another length, ignore them.
        let other = load(&[(
            "other.yml".to_string(),
            "title: x\nlogsource:\n  product: linux\ndetection:\n  k:\n    - y\n  condition: k\nlevel: low\n"
                .to_string(),
        )]);
        assert!(other.matches(batch.matched.as_ref(), 0, n).is_none());
        assert!(agent.matches(batch.matched.as_ref(), 0, n + 1).is_none());
    }
}
