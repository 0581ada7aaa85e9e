//! `[visibility]`: when what Warden cannot see becomes a blind spot (a `visibility`
//! incident). Every threshold has a default that a busy and a quiet host both live with.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisibilityConfig {
    /// How often the sources' counters are looked at.
    #[serde(default = "tick")]
    pub tick_secs: u64,
    /// A source is silent when no line came for `silence_factor` times the longest
    /// gap it showed (over the last week of this process), and at least this long.
    #[serde(default = "silence_min")]
    pub silence_min_secs: u64,
    #[serde(default = "silence_factor")]
    pub silence_factor: f64,
    /// How long a source is watched before its rhythm is trusted.
    #[serde(default = "learn")]
    pub learn_secs: u64,
    /// A source that gave no line at all this long after start is a blind spot.
    #[serde(default = "first_line")]
    pub first_line_secs: u64,
    /// The share of unparsed lines is compared window by window (windows of fewer
    /// lines are not judged); a rise of `unparsed_jump` (0.25: 25 points) over the
    /// learned share is a blind spot.
    #[serde(default = "unparsed_window")]
    pub unparsed_window_secs: u64,
    #[serde(default = "unparsed_min_lines")]
    pub unparsed_min_lines: u64,
    #[serde(default = "unparsed_jump")]
    pub unparsed_jump: f64,
    /// Kernel drops on a syslog socket end as a blind spot after this long without one.
    #[serde(default = "drops_quiet")]
    pub drops_quiet_secs: u64,
}

fn tick() -> u64 {
    10
}
fn silence_min() -> u64 {
    3600
}
fn silence_factor() -> f64 {
    4.0
}
fn learn() -> u64 {
    6 * 3600
}
fn first_line() -> u64 {
    6 * 3600
}
fn unparsed_window() -> u64 {
    300
}
fn unparsed_min_lines() -> u64 {
    100
}
fn unparsed_jump() -> f64 {
    0.25
}
fn drops_quiet() -> u64 {
    600
}

impl Default for VisibilityConfig {
    fn default() -> Self {
        VisibilityConfig {
            tick_secs: tick(),
            silence_min_secs: silence_min(),
            silence_factor: silence_factor(),
            learn_secs: learn(),
            first_line_secs: first_line(),
            unparsed_window_secs: unparsed_window(),
            unparsed_min_lines: unparsed_min_lines(),
            unparsed_jump: unparsed_jump(),
            drops_quiet_secs: drops_quiet(),
        }
    }
}

impl VisibilityConfig {
    pub(super) fn problem(&self) -> Option<String> {
        if self.tick_secs == 0 || self.unparsed_window_secs == 0 {
            return Some("[visibility] tick_secs and unparsed_window_secs must be at least 1".into());
        }
        if !(self.silence_factor >= 1.0) {
            return Some(format!("[visibility] silence_factor = {} must be at least 1", self.silence_factor));
        }
        if !(self.unparsed_jump > 0.0 && self.unparsed_jump <= 1.0) {
            return Some(format!("[visibility] unparsed_jump = {} must be in (0, 1]", self.unparsed_jump));
        }
        None
    }
}
