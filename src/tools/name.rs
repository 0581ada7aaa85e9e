//! The names of the tools agents declare.

use serde::Deserialize;

/// Every tool name Warden knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolName {
    AnalyzeLogs,
    AnalyzeNetworkTraffic,
    DetectIoc,
    CorrelateEvents,
    TriageIncident,
    ExecutePlaybook,
    ContainThreat,
    CollectEvidence,
    GenerateReport,
    ScanVulnerabilities,
    PrioritizeRisk,
    RecommendRemediation,
    VerifyPatch,
    GenerateVulnReport,
}

impl ToolName {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolName::AnalyzeLogs => "analyze_logs",
            ToolName::AnalyzeNetworkTraffic => "analyze_network_traffic",
            ToolName::DetectIoc => "detect_ioc",
            ToolName::CorrelateEvents => "correlate_events",
            ToolName::TriageIncident => "triage_incident",
            ToolName::ExecutePlaybook => "execute_playbook",
            ToolName::ContainThreat => "contain_threat",
            ToolName::CollectEvidence => "collect_evidence",
            ToolName::GenerateReport => "generate_report",
            ToolName::ScanVulnerabilities => "scan_vulnerabilities",
            ToolName::PrioritizeRisk => "prioritize_risk",
            ToolName::RecommendRemediation => "recommend_remediation",
            ToolName::VerifyPatch => "verify_patch",
            ToolName::GenerateVulnReport => "generate_vuln_report",
        }
    }
}
