//! `generate_report`: an incident written up for two audiences, in three formats.
//!
//! - executive: what happened, the impact, where it stands, what was done and what is
//!   needed, in plain language;
//! - technical: the timeline, every finding with its evidence lines, the indicators,
//!   the ATT&CK mapping, every action with its exact command and result, the playbook
//!   run, triage's reasons.
//!
//! Everything in an incident that came from a log line is attacker-controlled: Markdown
//! escapes it (and puts evidence in fenced blocks whose fence is longer than any run of
//! backticks inside), HTML escapes it, JSON is built by serde. A hostile user name or
//! URL can therefore not add a heading, a link, a script or a JSON field.

use serde::{Deserialize, Serialize};

use crate::messages::{ActionStatus, Incident};

/// Who the report is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum Audience {
    Executive,
    Technical,
}

/// Its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Markdown,
    Html,
    Json,
}

/// A report option that is none of its choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}`: {choices}")]
pub struct UnknownChoice {
    what: &'static str,
    value: String,
    choices: &'static str,
}

impl std::str::FromStr for Audience {
    type Err = UnknownChoice;
    fn from_str(s: &str) -> Result<Self, UnknownChoice> {
        match s {
            "executive" => Ok(Audience::Executive),
            "technical" => Ok(Audience::Technical),
            _ => Err(UnknownChoice { what: "audience", value: s.to_string(), choices: "executive or technical" }),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = UnknownChoice;
    fn from_str(s: &str) -> Result<Self, UnknownChoice> {
        match s {
            "markdown" | "md" => Ok(Format::Markdown),
            "html" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            _ => Err(UnknownChoice { what: "format", value: s.to_string(), choices: "markdown, html or json" }),
        }
    }
}

/// A report as structured data (the JSON format, and the source of the others).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub audience: Audience,
    pub incident: uuid::Uuid,
    pub title: String,
    pub generated_at: chrono::DateTime<chrono::Utc>,
    /// (heading, paragraphs or list items, whether the items are verbatim evidence)
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub heading: String,
    pub items: Vec<String>,
    /// Items are verbatim text (log lines, commands): shown as code.
    #[serde(default)]
    pub verbatim: bool,
}

fn tactic_name(id: &str) -> &str {
    match id {
        "TA0043" => "Reconnaissance",
        "TA0042" => "Resource Development",
        "TA0001" => "Initial Access",
        "TA0002" => "Execution",
        "TA0003" => "Persistence",
        "TA0004" => "Privilege Escalation",
        "TA0005" => "Defense Evasion",
        "TA0006" => "Credential Access",
        "TA0007" => "Discovery",
        "TA0008" => "Lateral Movement",
        "TA0009" => "Collection",
        "TA0010" => "Exfiltration",
        "TA0011" => "Command and Control",
        "TA0040" => "Impact",
        other => other,
    }
}

fn plain_type(kind: &str) -> &str {
    match kind {
        "brute_force" => "password-guessing attack",
        "credential_compromise" => "account compromise (a login with guessed or stolen credentials succeeded)",
        "web_attack" => "attack against a web application",
        "malware_c2" => "malware infection talking to its controller",
        "ransomware" => "ransomware",
        "phishing" => "phishing",
        "data_exfiltration" => "data theft (data left the network)",
        "privilege_abuse" => "misuse of administrator privileges",
        "vulnerability_exploitation" => "exploitation of a vulnerability",
        "reconnaissance" => "scanning and probing",
        "defense_evasion" => "tampering with logs",
        "agent_failure" => "failure of a Warden agent",
        other => other,
    }
}

/// What both reports name: the attackers, hosts and accounts, and when it happened.
struct Facts<'a> {
    attackers: Vec<&'a str>,
    hosts: Vec<&'a str>,
    accounts: Vec<&'a str>,
    first: Option<chrono::DateTime<chrono::Utc>>,
    last: Option<chrono::DateTime<chrono::Utc>>,
}

impl<'a> Facts<'a> {
    fn of(inc: &'a Incident) -> Facts<'a> {
        let mut attackers: Vec<&str> =
            inc.entities.iter().filter(|e| e.parse::<std::net::IpAddr>().is_ok()).map(|e| e.as_str()).collect();
        attackers.dedup();
        let mut hosts: Vec<&str> =
            inc.findings.iter().filter(|f| !f.host.is_empty()).map(|f| f.host.as_str()).collect();
        hosts.sort();
        hosts.dedup();
        let mut accounts: Vec<&str> = inc.findings.iter().flat_map(|f| f.users.iter().map(|u| u.as_str())).collect();
        accounts.sort();
        accounts.dedup();
        accounts.truncate(20);
        Facts {
            attackers,
            hosts,
            accounts,
            first: inc.findings.iter().map(|f| f.first_seen).min(),
            last: inc.findings.iter().map(|f| f.last_seen).max(),
        }
    }
}

/// Builds the report.
pub fn build(inc: &Incident, audience: Audience) -> Report {
    let facts = Facts::of(inc);
    let mut sections = match audience {
        Audience::Executive => executive(inc, &facts),
        Audience::Technical => technical(inc, &facts),
    };
    // With a language model configured: its narrative of the incident (its triage
    // explanation, its answers, the findings' narratives), labelled as the model's.
    let mut narrative: Vec<String> = inc
        .notes
        .iter()
        .filter_map(|n| {
            n.strip_prefix("triage explained by the model: ").or_else(|| n.strip_prefix("model (incident-response): "))
        })
        .map(String::from)
        .collect();
    narrative.extend(inc.findings.iter().filter_map(|f| f.narrative.as_ref().map(|n| format!("{}: {n}", f.title))));
    if !narrative.is_empty() {
        sections.insert(
            1.min(sections.len()),
            Section { heading: "Narrative (written by the language model)".into(), items: narrative, verbatim: false },
        );
    }
    Report { audience, incident: inc.id, title: inc.title.clone(), generated_at: chrono::Utc::now(), sections }
}

/// For management: what happened, impact, status, what was done, what is needed.
fn executive(inc: &Incident, facts: &Facts) -> Vec<Section> {
    let Facts { attackers, hosts, accounts, first, last } = facts;
    let (first, last) = (*first, *last);
    let t = inc.triage.as_ref();
    let executed: Vec<_> = inc.actions.iter().filter(|a| a.status == ActionStatus::Executed).collect();
    let pending: Vec<_> = inc.actions.iter().filter(|a| a.status == ActionStatus::PendingApproval).collect();
    let mut sections = Vec::new();
    let mut what = vec![format!(
        "A {} was detected{}{}.",
        plain_type(&inc.kind),
        if hosts.is_empty() { String::new() } else { format!(" on {}", hosts.join(", ")) },
        match (first, last) {
            (Some(a), Some(b)) =>
                format!(" between {} and {}", a.format("%Y-%m-%d %H:%M UTC"), b.format("%Y-%m-%d %H:%M UTC")),
            _ => String::new(),
        }
    )];
    if !attackers.is_empty() {
        what.push(format!("It came from {} address(es): {}.", attackers.len(), attackers.join(", ")));
    }
    what.push(format!("Warden recorded {} finding(s) about it.", inc.findings.len()));
    sections.push(Section { heading: "What happened".into(), items: what, verbatim: false });
    let mut impact = vec![format!(
        "Severity {}, priority {:?}{}.",
        inc.severity,
        inc.priority,
        t.and_then(|t| t.deadline)
            .map(|d| format!(" (respond by {})", d.format("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default()
    )];
    if let Some(a) = t.and_then(|t| t.asset.as_ref()) {
        impact.push(format!("Affected asset: {a}."));
    }
    if !accounts.is_empty() && inc.kind == "credential_compromise" {
        impact.push(format!("Accounts involved: {}.", accounts.join(", ")));
    }
    sections.push(Section { heading: "Impact".into(), items: impact, verbatim: false });
    sections.push(Section {
        heading: "Status".into(),
        items: vec![format!("The incident is {:?}.", inc.status).to_lowercase()],
        verbatim: false,
    });
    let mut done: Vec<String> = executed.iter().map(|a| format!("{} {} (done)", a.kind, a.target)).collect();
    done.extend(
        inc.actions
            .iter()
            .filter(|a| a.status == ActionStatus::Published)
            .map(|a| format!("{} {} (decided for the fleet: each host's enforcer applies it)", a.kind, a.target)),
    );
    done.extend(
        inc.actions
            .iter()
            .filter(|a| a.status == ActionStatus::DryRun)
            .map(|a| format!("{} {} (recorded, not carried out: observe mode)", a.kind, a.target)),
    );
    if done.is_empty() {
        done.push("No containment action was taken yet.".into());
    }
    sections.push(Section { heading: "What was done".into(), items: done, verbatim: false });
    let mut needed: Vec<String> =
        pending.iter().map(|a| format!("Approve or reject: {} {} (action {})", a.kind, a.target, a.id)).collect();
    if let Some(run) = &inc.playbook
        && let Some(g) = run.gate
    {
        needed.push(format!("Approve or reject the next step of playbook {} (id {g}).", run.playbook));
    }
    if needed.is_empty() {
        needed.push("Nothing is waiting for a decision.".into());
    }
    sections.push(Section { heading: "What is needed".into(), items: needed, verbatim: false });
    sections
}

/// For responders: the timeline, findings with evidence, indicators, ATT&CK, actions
/// with their exact commands, triage reasons and notes.
fn technical(inc: &Incident, facts: &Facts) -> Vec<Section> {
    let attackers = &facts.attackers;
    let t = inc.triage.as_ref();
    let mut sections = Vec::new();
    let mut timeline: Vec<(chrono::DateTime<chrono::Utc>, String)> = inc
        .findings
        .iter()
        .map(|f| {
            (f.first_seen, format!("{} finding {} ({}) — {}", f.first_seen.to_rfc3339(), f.rule, f.severity, f.title))
        })
        .collect();
    timeline.extend(inc.actions.iter().map(|a| {
        (a.created_at, format!("{} action {} {} — {:?}", a.created_at.to_rfc3339(), a.kind, a.target, a.status))
    }));
    if let Some(run) = &inc.playbook {
        timeline.extend(run.steps.iter().map(|s| {
            (s.at, format!("{} playbook {} step {}: {} {}", s.at.to_rfc3339(), run.playbook, s.id, s.outcome, s.detail))
        }));
    }
    timeline.sort_by_key(|(t, _)| *t);
    sections.push(Section {
        heading: "Timeline".into(),
        items: timeline.into_iter().map(|(_, l)| l).collect(),
        verbatim: false,
    });
    for f in &inc.findings {
        let mut items = vec![format!(
            "rule {} · severity {} · confidence {:.2} · events {} · {} → {}",
            f.rule,
            f.severity,
            f.confidence,
            f.event_count,
            f.first_seen.to_rfc3339(),
            f.last_seen.to_rfc3339()
        )];
        if !f.numbers.is_empty() {
            items.push(f.numbers.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
        }
        sections.push(Section { heading: format!("Finding: {}", f.title), items, verbatim: false });
        if !f.evidence.is_empty() {
            sections.push(Section {
                heading: format!("Evidence of {}", f.rule),
                items: f.evidence.clone(),
                verbatim: true,
            });
        }
    }
    let mut iocs: Vec<String> = attackers.iter().map(|a| format!("ip {a}")).collect();
    for f in &inc.findings {
        for h in &f.intel {
            iocs.push(format!("{} {} (feed {}, confidence {:.2})", h.kind, h.indicator, h.feed, h.confidence));
        }
        if let Some(e) = &f.entity
            && !e.starts_with("host:")
            && !iocs.iter().any(|i| i.ends_with(e.as_str()))
        {
            iocs.push(e.clone());
        }
    }
    iocs.sort();
    iocs.dedup();
    sections.push(Section { heading: "Indicators".into(), items: iocs, verbatim: true });
    let mut attack: Vec<String> = Vec::new();
    for f in &inc.findings {
        for t in &f.tactics {
            let line = format!("{t} {} — {}", tactic_name(t), f.techniques.join(", "));
            if !attack.contains(&line) {
                attack.push(line);
            }
        }
    }
    sections.push(Section { heading: "ATT&CK".into(), items: attack, verbatim: false });
    let actions: Vec<String> = inc
        .actions
        .iter()
        .map(|a| {
            let mut s = format!("{} {} [{:?}, {:?}] $ {}", a.kind, a.target, a.mode, a.status, a.argv.join(" "));
            if let Some(o) = &a.output {
                s.push_str(&format!(" → {}", o.replace('\n', " | ")));
            }
            if let Some(d) = &a.decision {
                s.push_str(&format!(" (approved={} by {} at {})", d.approved, d.by, d.at.to_rfc3339()));
            }
            if let Some(r) = &a.rollback {
                s.push_str(&format!(" (rolled back {}: {})", r.at.to_rfc3339(), r.why));
            }
            s
        })
        .collect();
    sections.push(Section { heading: "Actions".into(), items: actions, verbatim: true });
    if let Some(t) = t {
        sections.push(Section { heading: "Triage".into(), items: t.reasons.clone(), verbatim: false });
    }
    if !inc.notes.is_empty() {
        sections.push(Section { heading: "Notes".into(), items: inc.notes.clone(), verbatim: false });
    }
    sections
}

/// Markdown-escapes text for a paragraph or list item: every character Markdown gives a
/// meaning inline is backslash-escaped (list markers only at the start), and line
/// breaks become spaces.
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '!' | '|' | '<' | '>' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            // List and numbering markers matter only where an item begins.
            '+' | '-' | '.' | '=' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// HTML-escapes text.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Renders a report.
pub fn render(r: &Report, format: Format) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(r).unwrap_or_default();
    }
    let kind = if r.audience == Audience::Executive { "executive" } else { "technical" };
    let subtitle = format!("Incident `{}` · generated {}", r.incident, r.generated_at.to_rfc3339());
    render_document(&format!("Incident report ({kind})"), &r.title, &subtitle, &r.sections, format)
}

/// A titled document of sections as Markdown or HTML (`subtitle` may hold `code`
/// spans in backticks, which HTML shows as code). Text is escaped, verbatim items fenced.
pub fn render_document(heading: &str, title: &str, subtitle: &str, sections: &[Section], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(sections).unwrap_or_default(),
        Format::Markdown => {
            let mut out = format!("# {heading}: {}\n\n{subtitle}\n", md_escape(title));
            for s in sections {
                out.push_str(&format!("\n## {}\n\n", md_escape(&s.heading)));
                if s.verbatim {
                    // A fence longer than any backtick run inside cannot be closed early.
                    let longest = s.items.iter().map(|i| max_run(i, '`')).max().unwrap_or(0);
                    let fence = "`".repeat((longest + 1).max(3));
                    out.push_str(&format!("{fence}text\n"));
                    for i in &s.items {
                        out.push_str(&i.replace(['\n', '\r'], " "));
                        out.push('\n');
                    }
                    out.push_str(&format!("{fence}\n"));
                } else {
                    for i in &s.items {
                        out.push_str(&format!("- {}\n", md_escape(i)));
                    }
                }
            }
            out
        }
        Format::Html => {
            let subtitle_html = html_escape(subtitle)
                .split('`')
                .enumerate()
                .map(|(i, part)| if i % 2 == 1 { format!("<code>{part}</code>") } else { part.to_string() })
                .collect::<String>();
            let mut out = format!(
                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>{}</title><style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}pre{{background:#f4f4f4;padding:.5em;overflow-x:auto}}</style></head><body>\n<h1>{}: {}</h1>\n<p>{subtitle_html}</p>\n",
                html_escape(title),
                html_escape(heading),
                html_escape(title),
            );
            for s in sections {
                out.push_str(&format!("<h2>{}</h2>\n", html_escape(&s.heading)));
                if s.verbatim {
                    out.push_str("<pre>");
                    for i in &s.items {
                        out.push_str(&html_escape(&i.replace(['\n', '\r'], " ")));
                        out.push('\n');
                    }
                    out.push_str("</pre>\n");
                } else {
                    out.push_str("<ul>\n");
                    for i in &s.items {
                        out.push_str(&format!("<li>{}</li>\n", html_escape(i)));
                    }
                    out.push_str("</ul>\n");
                }
            }
            out.push_str("</body></html>\n");
            out
        }
    }
}

fn max_run(s: &str, c: char) -> usize {
    let (mut best, mut cur) = (0, 0);
    for ch in s.chars() {
        if ch == c {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Finding, IncidentStatus, Priority, Severity};

    fn hostile() -> Incident {
        let t: chrono::DateTime<chrono::Utc> = "2026-03-01T10:00:00Z".parse().unwrap();
        let evil_user = "x\n# Pwned\n<script>alert(1)</script> [click](http://evil) ```";
        let findings = vec![Finding {
            rule: "ssh_success_after_failures".into(),
            title: format!("login as {evil_user}"),
            users: vec![evil_user.into()],
            host: "web1".into(),
            first_seen: t,
            last_seen: t,
            evidence: vec![format!("Accepted password for {evil_user} from 203.0.113.5 ````")],
            tactics: vec!["TA0001".into()],
            techniques: vec!["T1078".into()],
            ..Default::default()
        }];
        Incident {
            status: IncidentStatus::Triaged,
            priority: Priority::P2,
            ..Incident::open(
                uuid::Uuid::nil(),
                "credential_compromise".into(),
                format!("Successful SSH login as {evil_user}"),
                Severity::High,
                vec!["203.0.113.5".into()],
                findings,
                t,
            )
        }
    }

    #[test]
    fn hostile_text_cannot_change_the_report_structure() {
        let inc = hostile();
        for audience in [Audience::Executive, Audience::Technical] {
            let r = build(&inc, audience);
            let md = render(&r, Format::Markdown);
            // Every heading is one Warden wrote.
            for line in md.lines().filter(|l| l.starts_with('#')) {
                assert!(line.starts_with("# Incident report") || line.starts_with("## "), "{line}");
                assert!(!line.contains("Pwned") || line.contains("\\#"), "{line}");
            }
            // Outside code blocks (where evidence is verbatim), no live link survives.
            let mut fence: Option<String> = None;
            for line in md.lines() {
                let ticks: String = line.chars().take_while(|c| *c == '`').collect();
                match &fence {
                    Some(f) if ticks.len() >= f.len() && line.trim_end() == ticks => fence = None,
                    Some(_) => continue,
                    None if ticks.len() >= 3 => fence = Some(ticks),
                    None => assert!(!line.contains("](http"), "a live link: {line}"),
                }
            }
            assert!(fence.is_none(), "every code block is closed");
            let html = render(&r, Format::Html);
            assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"), "{html}");
            let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
            assert_eq!(json["incident"], uuid::Uuid::nil().to_string());
        }
        let md = render(&build(&inc, Audience::Technical), Format::Markdown);
        assert!(md.contains("`````text"), "a fence longer than the evidence's backticks: {md}");
        let ex = render(&build(&inc, Audience::Executive), Format::Markdown);
        assert!(ex.contains("## What happened") && ex.contains("## What is needed"), "{ex}");
        assert!(ex.contains("account compromise"));
    }
}
