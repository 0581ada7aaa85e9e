//! One host's side of the fleet's containment (`warden enforce`): the decisions bucket
//! watched (pushed by the server), each block applied to the host's own nftables set
//! with the time that remains, removed on unblock, the whole current state re-applied
//! on start and whenever the watch ends and is set up again (elements no decision asks for
//! go); the client itself carries a watch across a brief reconnect. Each outcome is
//! reported on `warden.enforcement.<host>`.
//!
//! The host decides for itself whether it may: an address protected here (its own,
//! loopback, `[response] protected`) is refused whatever the decision says. After
//! applying, it checks that the block works — the element is in the set *and* a rule in
//! a chain hooked into `input` (and `forward` when the host routes) uses the set — and
//! says `ineffective`, with the reason, when it does not.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;

use super::Protected;
use crate::cluster::ClusterError;
use crate::cluster::decisions::{Change, Decision, Decisions, Outcome, Report, Update};
use crate::cluster::presence::{EnforcerInfo, HEARTBEAT, Presence};
use crate::config::EnforceMode;
use crate::tools::command;

/// What an enforcer is and may do.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub mode: EnforceMode,
    /// The nftables table (inet) this enforcer owns.
    pub table: String,
    pub protected: std::sync::Arc<Protected>,
    /// What it holds and did, for its presence in the cluster.
    pub tally: std::sync::Arc<Tally>,
}

/// What an enforcer holds and did since it started; a change wakes its presence.
#[derive(Debug, Default)]
pub struct Tally {
    counts: std::sync::Mutex<Counts>,
    changed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Counts {
    /// Each block in force and when its element times out in the set.
    in_force: HashMap<IpAddr, chrono::DateTime<Utc>>,
    applied: u64,
    not_applied: u64,
}

impl Tally {
    fn count(&self, about: &About, outcome: Outcome) {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).count(about, outcome);
        self.changed.notify_one();
    }
}

impl Counts {
    fn count(&mut self, about: &About, outcome: Outcome) {
        let ip = about.ip.to_canonical();
        match outcome {
            Outcome::Applied | Outcome::AlreadyPresent => {
                self.in_force.insert(ip, about.until.unwrap_or(chrono::DateTime::<Utc>::MAX_UTC));
                self.applied += 1;
            }
            Outcome::Removed => {
                self.in_force.remove(&ip);
            }
            Outcome::Observed => {}
            Outcome::Refused | Outcome::Failed | Outcome::Ineffective | Outcome::Stale => self.not_applied += 1,
        }
    }
}

/// The enforcer's table: two sets with timeouts, and drop rules for them in chains
/// hooked into `input` and `forward`.
fn table_script(table: &str) -> String {
    let (v4, v6) = (super::contain::NFT_SET_V4, super::contain::NFT_SET_V6);
    let chain = |hook: &str| {
        format!(
            "  chain {hook} {{\n    type filter hook {hook} priority -10; policy accept;\n    ip saddr @{v4} drop\n    ip6 saddr @{v6} drop\n  }}\n"
        )
    };
    format!(
        "table inet {table} {{\n  set {v4} {{ type ipv4_addr; flags timeout; }}\n  set {v6} {{ type ipv6_addr; flags timeout; }}\n{}{}}}\n",
        chain("input"),
        chain("forward")
    )
}

/// Runs `argv`; its exit code and output, or why it could not run.
async fn nft(args: &[&str], stdin: Option<&str>) -> Result<(i32, String), String> {
    let argv: Vec<String> = std::iter::once("nft").chain(args.iter().copied()).map(String::from).collect();
    command::run(&argv, stdin).await.map_err(|e| e.to_string())
}

/// Says that this enforcer is alive, and what it holds: every ten seconds, and soon
/// after each change.
async fn heartbeat(presence: Presence, s: Settings) {
    let started_at = Utc::now();
    loop {
        let info = {
            let mut t = s.tally.counts.lock().unwrap_or_else(|p| p.into_inner());
            // An element past its time has left the set by its own timeout.
            let now = Utc::now();
            t.in_force.retain(|_, until| *until > now);
            EnforcerInfo {
                host: s.host.clone(),
                mode: format!("{:?}", s.mode).to_lowercase(),
                table: s.table.clone(),
                started_at,
                seen_at: Utc::now(),
                in_force: t.in_force.len(),
                applied: t.applied,
                not_applied: t.not_applied,
            }
        };
        if let Err(e) = presence.say(&info).await {
            tracing::warn!(error = %e, "presence not written");
        }
        let _ = tokio::time::timeout(HEARTBEAT, s.tally.changed.notified()).await;
    }
}

/// Watches the decisions and applies them, for as long as the process runs: a lost
/// watch is set up again (and the state re-applied) after a pause.
pub async fn run(decisions: Decisions, presence: Presence, settings: Settings) {
    actix_rt::spawn(heartbeat(presence, settings.clone()));
    let mut delay = Duration::from_millis(200);
    loop {
        match session(&decisions, &settings).await {
            Ok(()) => tracing::warn!(host = %settings.host, "the decisions watch ended; watching again"),
            Err(e) => tracing::warn!(host = %settings.host, error = %e, "the decisions watch failed; watching again"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One watch: the current state first (applied as a whole once complete), then each change.
async fn session(decisions: &Decisions, s: &Settings) -> Result<(), ClusterError> {
    if s.mode == EnforceMode::Enforce
        && let Err(why) = ensure_table(&s.table).await
    {
        tracing::error!(table = %s.table, %why, "cannot set up the nftables table");
    }
    // The newest leader's token: a decision written after it with an older one is stale.
    let mut fence = crate::cluster::lease::current(decisions).await?.map_or(0, |(_, token)| token);
    let mut watch = std::pin::pin!(decisions.watch().await?);
    let mut state = Wanted::default();
    let mut synced = decisions.live_keys().await? == 0;
    if synced {
        resync(decisions, s, &state).await;
    }
    while let Some(u) = watch.next().await {
        let Update { change, revision, pending } = u?;
        let change = match change {
            Change::Lease { holder, token } => {
                if token > fence {
                    tracing::info!(host = %s.host, leader = %holder, token, "a new leader");
                }
                fence = fence.max(token);
                continue;
            }
            Change::Block(d) if d.fence < fence && revision > fence => {
                if !synced {
                    // Whatever stands for the target stays (the watch gives only the
                    // key's last value).
                    state.stale.insert(d.target.to_canonical());
                }
                let why = format!(
                    "written by {} with fencing token {} after the lease passed on (token {fence}): ignored",
                    d.origin, d.fence
                );
                report(decisions, s, About::of(&d), revision, (Outcome::Stale, why)).await;
                continue;
            }
            other => other,
        };
        if synced {
            apply(decisions, s, change, revision).await;
            continue;
        }
        match change {
            Change::Block(d) => {
                state.blocks.insert(d.target.to_canonical(), (d, revision));
            }
            Change::Unblock(ip) => {
                state.blocks.remove(&ip);
            }
            Change::Unreadable { key, why } => tracing::warn!(%key, %why, "a decision that cannot be read: ignored"),
            Change::Lease { .. } => {}
        }
        if pending == 0 {
            synced = true;
            resync(decisions, s, &state).await;
            tracing::info!(host = %s.host, decisions = state.blocks.len(), "decisions in force re-applied");
            state = Wanted::default();
        }
    }
    Ok(())
}

/// The state a re-sync brings the host to.
#[derive(Default)]
struct Wanted {
    blocks: HashMap<IpAddr, (Decision, u64)>,
    /// Targets whose last decision is stale: left as they are.
    stale: std::collections::HashSet<IpAddr>,
}

/// The whole state: each wanted block applied, every element no decision asks for
/// removed.
async fn resync(decisions: &Decisions, s: &Settings, wanted: &Wanted) {
    if s.mode == EnforceMode::Enforce {
        for ip in elements(&s.table).await {
            if !wanted.blocks.contains_key(&ip) && !wanted.stale.contains(&ip) {
                let outcome = remove(&s.table, ip).await;
                report(decisions, s, About::addr(ip), 0, outcome).await;
            }
        }
    }
    for (d, revision) in wanted.blocks.values() {
        apply(decisions, s, Change::Block(d.clone()), *revision).await;
    }
}

/// Applies one change and reports it.
async fn apply(decisions: &Decisions, s: &Settings, change: Change, revision: u64) {
    let (about, outcome) = match change {
        Change::Block(d) => (About::of(&d), block(s, &d).await),
        Change::Unblock(ip) if s.mode == EnforceMode::Observe => {
            (About::addr(ip), (Outcome::Observed, "would remove".into()))
        }
        Change::Unblock(ip) => (About::addr(ip), remove(&s.table, ip).await),
        Change::Unreadable { key, why } => {
            tracing::warn!(%key, %why, "a decision that cannot be read: ignored");
            return;
        }
        Change::Lease { .. } => return,
    };
    report(decisions, s, about, revision, outcome).await;
}

/// What a report is about: the address, the incident that decided it, and when a block
/// of it ends.
struct About {
    ip: IpAddr,
    incident: Option<uuid::Uuid>,
    until: Option<chrono::DateTime<Utc>>,
}

impl About {
    fn of(d: &Decision) -> About {
        About { ip: d.target, incident: d.incident, until: Some(d.expires_at) }
    }

    fn addr(ip: IpAddr) -> About {
        About { ip, incident: None, until: None }
    }
}

async fn report(
    decisions: &Decisions,
    s: &Settings,
    about: About,
    revision: u64,
    (outcome, reason): (Outcome, String),
) {
    tracing::info!(host = %s.host, target = %about.ip, ?outcome, %reason, revision, "decision");
    s.tally.count(&about, outcome);
    let r = Report {
        host: s.host.clone(),
        target: about.ip.to_string(),
        incident: about.incident,
        revision,
        outcome,
        reason,
        at: Utc::now(),
    };
    if let Err(e) = decisions.report(&r).await {
        tracing::warn!(error = %e, "enforcement report not sent");
    }
}

/// A block on this host: refused when protected here, the remaining time applied.
async fn block(s: &Settings, d: &Decision) -> (Outcome, String) {
    let ip = d.target.to_canonical();
    if s.protected.contains(ip) {
        return (Outcome::Refused, format!("{ip} is protected on {}", s.host));
    }
    let remaining = (d.expires_at - Utc::now()).num_seconds();
    if remaining <= 0 {
        return match s.mode {
            EnforceMode::Observe => (Outcome::Observed, "expired: would remove".into()),
            EnforceMode::Enforce => remove(&s.table, ip).await,
        };
    }
    if s.mode == EnforceMode::Observe {
        return (Outcome::Observed, format!("would block for {remaining} s"));
    }
    let (set, elem) = (super::contain::nft_set(ip), format!("{{ {ip} }}"));
    let present = matches!(nft(&["get", "element", "inet", &s.table, set, &elem], None).await, Ok((0, _)));
    let add = format!("{{ {ip} timeout {remaining}s }}");
    match nft(&["add", "element", "inet", &s.table, set, &add], None).await {
        Ok((0, _)) => {}
        Ok((code, out)) => return (Outcome::Failed, format!("nft exited with {code}: {}", out.trim())),
        Err(e) => return (Outcome::Failed, e),
    }
    match in_traffic_path(&s.table, ip).await {
        Err(why) => (Outcome::Ineffective, why),
        Ok(()) if present => (Outcome::AlreadyPresent, String::new()),
        Ok(()) => (Outcome::Applied, format!("blocked for {remaining} s")),
    }
}

async fn remove(table: &str, ip: IpAddr) -> (Outcome, String) {
    let elem = format!("{{ {ip} }}");
    match nft(&["delete", "element", "inet", table, super::contain::nft_set(ip), &elem], None).await {
        // 1: not there (expired by its timeout, or never applied): nothing to undo.
        Ok((0 | 1, _)) => (Outcome::Removed, String::new()),
        Ok((code, out)) => (Outcome::Failed, format!("nft exited with {code}: {}", out.trim())),
        Err(e) => (Outcome::Failed, e),
    }
}

/// Creates the table when it is missing (a host where it was deleted gets it back).
async fn ensure_table(table: &str) -> Result<(), String> {
    if matches!(nft(&["list", "table", "inet", table], None).await, Ok((0, _))) {
        return Ok(());
    }
    match nft(&["-f", "-"], Some(&table_script(table))).await? {
        (0, _) => Ok(()),
        (code, out) => Err(format!("nft exited with {code}: {}", out.trim())),
    }
}

/// The addresses in the table's sets.
async fn elements(table: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for set in [super::contain::NFT_SET_V4, super::contain::NFT_SET_V6] {
        if let Ok((0, json)) = nft(&["-j", "list", "set", "inet", table, set], None).await {
            out.extend(set_elements(&json));
        }
    }
    out
}

/// The addresses of `nft -j list set`: plain values, or objects with `val` (elements
/// with a timeout).
fn set_elements(json: &str) -> Vec<IpAddr> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|i| i["set"]["elem"].as_array())
        .flatten()
        .filter_map(|e| e.as_str().or_else(|| e["elem"]["val"].as_str()))
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Whether a block of `ip` works here: the element is in the set, and a rule of a chain
/// hooked into `input` — and `forward` when this host routes — uses the set.
async fn in_traffic_path(table: &str, ip: IpAddr) -> Result<(), String> {
    let set = super::contain::nft_set(ip);
    let elem = format!("{{ {ip} }}");
    if !matches!(nft(&["get", "element", "inet", table, set, &elem], None).await, Ok((0, _))) {
        return Err(format!("{ip} is not in set {set} of table inet {table} after it was added"));
    }
    let (code, json) = nft(&["-j", "list", "table", "inet", table], None).await?;
    if code != 0 {
        return Err(format!("table inet {table} cannot be listed (nft exited with {code})"));
    }
    let routes = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|s| s.trim() == "1");
    let hooks = hooks_using(&json, set);
    for hook in ["input", "forward"] {
        if (hook == "input" || routes) && !hooks.iter().any(|h| h == hook) {
            let routing = if hook == "forward" { " (this host routes: ip_forward = 1)" } else { "" };
            return Err(format!(
                "no rule in a chain hooked into {hook} of table inet {table} uses set {set}{routing}: the block does not stop traffic"
            ));
        }
    }
    Ok(())
}

/// The hooks of the base chains of a table (`nft -j list table`) that have a rule using
/// `@set` with a drop or reject verdict.
fn hooks_using(json: &str, set: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    let hooks: HashMap<String, String> = items
        .iter()
        .filter_map(|i| {
            let c = &i["chain"];
            Some((c["name"].as_str()?.to_string(), c["hook"].as_str()?.to_string()))
        })
        .collect();
    let reference = format!("\"@{set}\"");
    items
        .iter()
        .filter_map(|i| {
            let r = &i["rule"];
            let text = r["expr"].to_string();
            let stops = text.contains("\"drop\"") || text.contains("\"reject\"");
            (stops && text.contains(&reference)).then(|| hooks.get(r["chain"].as_str()?).cloned())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft -j` as nftables 1.0 writes it: elements with a timeout are objects.
    #[test]
    fn sets_and_rules_are_read_from_nft_json() {
        let set = r#"{"nftables":[{"metainfo":{"version":"1.0.6"}},{"set":{"family":"inet","name":"blocklist_v4","table":"t","type":"ipv4_addr","flags":["timeout"],"elem":[{"elem":{"val":"203.0.113.7","timeout":60,"expires":59}},"198.51.100.9"]}}]}"#;
        let got = set_elements(set);
        assert_eq!(got, ["203.0.113.7".parse::<IpAddr>().unwrap(), "198.51.100.9".parse().unwrap()]);
        let table = r#"{"nftables":[{"chain":{"family":"inet","table":"t","name":"input","type":"filter","hook":"input","prio":-10,"policy":"accept"}},{"chain":{"family":"inet","table":"t","name":"mine","hook":"forward"}},{"rule":{"family":"inet","table":"t","chain":"input","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@blocklist_v4"}},{"drop":null}]}},{"rule":{"chain":"mine","expr":[{"match":{"right":"@blocklist_v4"}},{"counter":null}]}}]}"#;
        assert_eq!(hooks_using(table, "blocklist_v4"), ["input"], "a counting rule blocks nothing");
        assert!(hooks_using(table, "blocklist_v6").is_empty());
    }

    #[test]
    fn the_table_script_hooks_both_paths() {
        let s = table_script("warden_edge");
        assert!(s.starts_with("table inet warden_edge {"));
        assert!(s.contains("hook input priority -10") && s.contains("hook forward priority -10"));
        assert!(s.contains("ip saddr @blocklist_v4 drop") && s.contains("ip6 saddr @blocklist_v6 drop"));
    }
}
