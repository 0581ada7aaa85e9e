//! `contain_threat`: a containment action (block an address, isolate a host, disable an
//! account, kill a process, quarantine a file — or undo one) on a validated target:
//! the exact commands recorded in observe and approve modes, run in enforce mode.
//!
//! Every target is parsed before a command is built from it; commands are argv
//! vectors, never shell strings; the protected set is refused whatever asks.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use uuid::Uuid;

use super::ContainSpec;
use super::actions::{self, ContainPolicy, Native, Plan};
use crate::llm::Refusal;
use crate::messages::{ActionKind, ContainmentRequest, Payload, ResponseMode};
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup, command};

pub struct ContainThreat {
    policy: Arc<ContainPolicy>,
}

/// What an executed action did.
#[derive(Debug, Clone)]
pub struct Executed {
    pub argv: Vec<String>,
    pub output: String,
    /// The target its rollback needs when it is not the action's own (a quarantined
    /// file is restored by its SHA-256).
    pub undo: Option<String>,
    /// A decision for the fleet (its revision in the decisions bucket), not a command
    /// run here: each host's enforcer applies it and says so.
    pub published: Option<u64>,
}

/// A containment a model requests; incident response decides.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// A stored incident's id (UUID).
    incident_id: Uuid,
    /// The action.
    #[schemars(schema_with = "crate::tools::tool::flat_enum::<ActionKind>")]
    action: ActionKind,
    /// The address, host, account, process or file.
    target: String,
    /// Why.
    #[serde(default)]
    reason: String,
}

impl Tool for ContainThreat {
    const NAME: &'static str = "contain_threat";
    const DESCRIPTION: &'static str = "Request a containment action on an incident (block_ip, unblock_ip, \
        isolate_host, disable_account, enable_account, kill_process, quarantine_file). Incident response decides \
        with its policy: autonomy, protected entities, approvals, time to live. Nothing runs from this call alone.";
    type Args = ContainSpec;
    type Output = Executed;
    type Request = Request;

    fn build(setup: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(ContainThreat { policy: setup.policy.clone() })
    }

    /// A target that does not validate is denied; observe and approve modes get the
    /// commands that would run; enforce mode runs them.
    fn run(&mut self, spec: ContainSpec) -> Run<Executed> {
        let plan = match actions::plan(spec.kind, &spec.target, spec.ttl_secs, &self.policy) {
            Ok(p) => p,
            Err(why) => return ToolOutcome::Denied(why.to_string()).into(),
        };
        match spec.mode {
            ResponseMode::Observe | ResponseMode::Approve => {
                ToolOutcome::DryRun { argv: plan.primary_argv(), steps: plan.display() }.into()
            }
            ResponseMode::Enforce => {
                let policy = self.policy.clone();
                match (&policy.fleet, plan.kind) {
                    (Some(fleet), ActionKind::BlockIp | ActionKind::UnblockIp) => {
                        let fleet = fleet.clone();
                        Run::Later(async move { decide(&fleet, &plan, &spec).await }.boxed_local())
                    }
                    _ => Run::Later(async move { execute_plan(&plan, &policy).await }.boxed_local()),
                }
            }
        }
    }

    /// Routed to incident response as a request; a model never runs a containment.
    fn answer(cx: ModelCx, r: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        let target = crate::text::sanitize(&r.target, 256);
        let reason = format!("requested by the language model: {}", crate::text::sanitize(&r.reason, 256));
        let action = r.action;
        cx.request(Payload::Containment(ContainmentRequest {
            incident_id: r.incident_id,
            action,
            target: target.clone(),
            reason,
            requested_by: Some("model".into()),
        }));
        cx.audit(
            Self::NAME,
            serde_json::json!({ "by": "model", "incident": r.incident_id, "action": action, "target": target,
                "decision": "routed to incident response's policy" }),
        );
        let answer = format!(
            "{action} {target} requested; incident response applies its policy (it may refuse, wait for approval or run in observe mode)"
        );
        futures_util::future::ready(Ok(answer)).boxed()
    }
}

/// Runs a containment plan: its commands in order (stopping at the first failure; an
/// exit code the plan lists as "nothing to do" is not one), then its native step.
pub async fn execute_plan(plan: &Plan, policy: &ContainPolicy) -> ToolOutcome<Executed> {
    let mut log = Vec::new();
    if plan.kind == ActionKind::BlockIp {
        // Warden's table, sets and drop rules, created on first use.
        let list = ["nft", "list", "table", "inet", super::contain::NFT_TABLE].map(String::from);
        if !matches!(command::run(&list, None).await, Ok((0, _))) {
            let setup = ["nft", "-f", "-"].map(String::from);
            match command::run(&setup, Some(NFT_SETUP)).await {
                Ok((0, _)) => {}
                Ok((code, output)) => {
                    return ToolOutcome::Failed(format!("nft exited with {code}: {}", output.trim()));
                }
                Err(e) => return e.into(),
            }
            log.push(format!("created table inet {}", super::contain::NFT_TABLE));
        }
    }
    for (i, argv) in plan.argv.iter().enumerate() {
        let stdin = (argv.len() == 3 && argv[0] == "nft" && argv[1] == "-f" && argv[2] == "-")
            .then(|| actions::isolate_script(&policy.management));
        match command::run(argv, stdin.as_deref()).await {
            Ok((0, out)) => log.push(format!("$ {}\n{}", argv.join(" "), out.trim())),
            Ok((code, out)) if plan.ok_codes.get(i).is_some_and(|c| c.contains(&code)) => {
                log.push(format!("$ {} (exit {code}: nothing to do)\n{}", argv.join(" "), out.trim()))
            }
            Ok((code, out)) => {
                return ToolOutcome::Failed(format!("{} exited with {code}: {}", argv.join(" "), out.trim()));
            }
            Err(e) => return e.into(),
        }
    }
    let mut undo = None;
    let native = match &plan.native {
        None => Ok(None),
        Some(Native::Kill { pid, start_time, exe }) => {
            actions::kill_checked(*pid, *start_time, exe.as_deref()).map(Some)
        }
        Some(Native::Quarantine { path, dir }) => actions::quarantine(path, dir).map(|r| {
            undo = Some(r.sha256.clone());
            Some(format!("quarantined {} as {} ({} bytes, mode {:o})", r.original.display(), r.sha256, r.size, r.mode))
        }),
        Some(Native::Restore { sha256, dir }) => actions::restore(sha256, dir)
            .map(|r| Some(format!("restored {} (mode {:o})", r.original.display(), r.mode))),
    };
    match native {
        Ok(Some(line)) => log.push(line),
        Ok(None) => {}
        Err(e) => return ToolOutcome::Denied(e.0),
    }
    ToolOutcome::Succeeded(Executed { argv: plan.primary_argv(), output: log.join("\n"), undo, published: None })
}

/// A block or unblock as the fleet's decision: written to the decisions bucket with this
/// node's fencing token, refused unless it leads (the plan validated the address and
/// refused a protected one first).
async fn decide(fleet: &crate::cluster::fleet::Fleet, plan: &Plan, spec: &ContainSpec) -> ToolOutcome<Executed> {
    use crate::cluster::decisions::{BUCKET, Decision, MAX_DECISION_AGE, key};
    let Ok(ip) = plan.target.parse::<std::net::IpAddr>() else {
        return ToolOutcome::Denied(format!("`{}` is not an address", plan.target));
    };
    let now = chrono::Utc::now();
    let argv = vec!["publish".to_string(), BUCKET.to_string(), key(ip)];
    let done = if plan.kind == ActionKind::BlockIp {
        // No longer than the bucket keeps a decision (the element's own timeout in
        // each host's set ends it then).
        let secs = spec.ttl_secs.clamp(1, MAX_DECISION_AGE.as_secs());
        let ttl = chrono::Duration::seconds(i64::try_from(secs).unwrap_or(1));
        let d = Decision {
            target: ip,
            expires_at: now + ttl,
            incident: spec.incident,
            reason: format!("{} decided by {}", plan.kind, fleet.node()),
            origin: fleet.node().to_string(),
            decided_at: now,
            fence: 0,
        };
        fleet.block(d.clone()).await.map(|rev| {
            (rev, format!("block of {ip} until {} published to the fleet's decisions (revision {rev}): each host's enforcer applies it and reports whether it is in force", d.expires_at.to_rfc3339()))
        })
    } else {
        fleet.unblock(ip).await.map(|()| {
            (0, format!("unblock of {ip} published to the fleet's decisions: each host's enforcer removes it"))
        })
    };
    match done {
        Ok((rev, output)) => ToolOutcome::Succeeded(Executed { argv, output, undo: None, published: Some(rev) }),
        Err(e) => ToolOutcome::Failed(format!("the decision was not published: {e}")),
    }
}

/// The nftables table, sets and drop rules Warden's blocks go into, created once.
const NFT_SETUP: &str = "table inet warden {
  set blocklist_v4 { type ipv4_addr; flags timeout; }
  set blocklist_v6 { type ipv6_addr; flags timeout; }
  chain input {
    type filter hook input priority -10; policy accept;
    ip saddr @blocklist_v4 drop
    ip6 saddr @blocklist_v6 drop
  }
}
";
