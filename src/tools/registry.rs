//! Every tool Warden has, one line each. Adding a tool is adding its file (one type
//! implementing [`Tool`](super::Tool)) and its line here.

use super::detection::{analyze_logs, analyze_network_traffic, correlate_events, detect_ioc};
use super::response::{collect_evidence, contain_threat, execute_playbook, generate_report, triage_incident};
use super::vuln::{generate_vuln_report, prioritize_risk, recommend_remediation, scan_vulnerabilities, verify_patch};
use super::{ToolName, ToolSpec};

/// The registry, in the order tools are shown.
pub static TOOLS: [ToolSpec; 14] = [
    ToolSpec::of::<analyze_logs::AnalyzeLogs>(),
    ToolSpec::of::<analyze_network_traffic::AnalyzeNetworkTraffic>(),
    ToolSpec::of::<detect_ioc::DetectIoc>(),
    ToolSpec::of::<correlate_events::CorrelateEvents>(),
    ToolSpec::of::<triage_incident::TriageIncident>(),
    ToolSpec::of::<execute_playbook::ExecutePlaybook>(),
    ToolSpec::of::<contain_threat::ContainThreat>(),
    ToolSpec::of::<collect_evidence::CollectEvidence>(),
    ToolSpec::of::<generate_report::GenerateReport>(),
    ToolSpec::of::<scan_vulnerabilities::ScanVulnerabilities>(),
    ToolSpec::of::<prioritize_risk::PrioritizeRisk>(),
    ToolSpec::of::<recommend_remediation::RecommendRemediation>(),
    ToolSpec::of::<verify_patch::VerifyPatch>(),
    ToolSpec::of::<generate_vuln_report::GenerateVulnReport>(),
];

/// The registry entry of a tool.
pub fn spec(name: ToolName) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_registered_once_with_an_object_schema() {
        let mut names: Vec<&str> = TOOLS.iter().map(|t| t.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len(), "tool names are unique");
        for t in &TOOLS {
            assert_eq!(ToolName::parse(t.name.as_str()), Some(t.name));
            assert_eq!(spec(t.name).map(|s| s.name), Some(t.name));
            assert!(!t.description.is_empty(), "{} describes itself", t.name);
            let schema = t.schema();
            eprintln!("{}: {schema}", t.name);
            assert_eq!(schema["type"], "object", "{}: {schema}", t.name);
            assert!(schema["properties"].is_object(), "{}: {schema}", t.name);
            // Self-contained: a model need not resolve references.
            assert!(!schema.to_string().contains("$ref"), "{}: {schema}", t.name);
        }
        assert_eq!(ToolName::parse("analyze_logz"), None);
    }
}
