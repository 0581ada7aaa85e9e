//! Restart budget and jittered exponential backoff.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::definitions::RestartBudget;

/// Restart history of one agent.
#[derive(Debug, Clone, Default)]
pub struct RestartHistory {
    recent: VecDeque<Instant>,
    pub total: u64,
}

/// What to do after an agent exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    RestartAfter(Duration),
    GiveUp,
}

impl RestartHistory {
    /// Records an exit at `now` and decides: restart after a jittered, doubling delay,
    /// or give up when the budget (`max_restarts` within `within_secs`) is spent.
    pub fn on_exit(&mut self, budget: &RestartBudget, now: Instant, jitter: f64) -> Verdict {
        let window = Duration::from_secs(budget.within_secs);
        while self.recent.front().is_some_and(|t| now.duration_since(*t) > window) {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= budget.max_restarts {
            return Verdict::GiveUp;
        }
        let n = self.recent.len() as u32;
        self.recent.push_back(now);
        self.total += 1;
        let base = budget.backoff_ms.saturating_mul(1u64 << n.min(20)).min(budget.backoff_max_ms);
        // Jitter in [0.5, 1.5) spreads restarts of agents that failed together.
        let ms = (base as f64 * (0.5 + jitter.clamp(0.0, 1.0))) as u64;
        Verdict::RestartAfter(Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_then_give_up_and_window_forgets() {
        let b = RestartBudget { max_restarts: 3, within_secs: 60, backoff_ms: 100, backoff_max_ms: 250 };
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        assert_eq!(h.on_exit(&b, t0, 0.5), Verdict::RestartAfter(Duration::from_millis(100)));
        assert_eq!(h.on_exit(&b, t0, 0.5), Verdict::RestartAfter(Duration::from_millis(200)));
        assert_eq!(h.on_exit(&b, t0, 0.5), Verdict::RestartAfter(Duration::from_millis(250)));
        assert_eq!(h.on_exit(&b, t0, 0.5), Verdict::GiveUp);
        assert_eq!(h.total, 3);
        // After the window, the budget is available again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(h.on_exit(&b, later, 0.0), Verdict::RestartAfter(Duration::from_millis(50)));
    }
}
