//! MITRE ATT&CK: tactic ids for the techniques Warden's detectors name, and for the
//! tactic tags of Sigma rules (`attack.credential-access`).
//!
//! A technique can serve several tactics; the table gives the ones its detections here
//! stand for (a successful login after failures is initial access, not persistence).

/// Tactic ids by Sigma tag name (both `-` and `_` spellings are accepted).
const TACTICS: &[(&str, &str)] = &[
    ("reconnaissance", "TA0043"),
    ("resource-development", "TA0042"),
    ("initial-access", "TA0001"),
    ("execution", "TA0002"),
    ("persistence", "TA0003"),
    ("privilege-escalation", "TA0004"),
    ("defense-evasion", "TA0005"),
    ("credential-access", "TA0006"),
    ("discovery", "TA0007"),
    ("lateral-movement", "TA0008"),
    ("collection", "TA0009"),
    ("exfiltration", "TA0010"),
    ("command-and-control", "TA0011"),
    ("impact", "TA0040"),
];

/// The tactics of a (parent) technique.
const TECHNIQUES: &[(&str, &[&str])] = &[
    ("T1003", &["TA0006"]),
    ("T1014", &["TA0005"]),
    ("T1021", &["TA0008"]),
    ("T1030", &["TA0010"]),
    ("T1041", &["TA0010"]),
    ("T1046", &["TA0007"]),
    ("T1048", &["TA0010"]),
    ("T1053", &["TA0002", "TA0003"]),
    ("T1059", &["TA0002"]),
    ("T1068", &["TA0004"]),
    ("T1070", &["TA0005"]),
    ("T1071", &["TA0011"]),
    ("T1078", &["TA0001"]),
    ("T1083", &["TA0007"]),
    ("T1087", &["TA0007"]),
    ("T1090", &["TA0011"]),
    ("T1098", &["TA0003"]),
    ("T1105", &["TA0011"]),
    ("T1110", &["TA0006"]),
    ("T1136", &["TA0003"]),
    ("T1189", &["TA0001"]),
    ("T1190", &["TA0001"]),
    ("T1204", &["TA0002"]),
    ("T1486", &["TA0040"]),
    ("T1505", &["TA0003"]),
    ("T1543", &["TA0003"]),
    ("T1548", &["TA0004"]),
    ("T1562", &["TA0005"]),
    ("T1566", &["TA0001"]),
    ("T1568", &["TA0011"]),
    ("T1571", &["TA0011"]),
    ("T1572", &["TA0011"]),
    ("T1573", &["TA0011"]),
    ("T1595", &["TA0043"]),
];

/// The tactic id of a Sigma tag such as `attack.credential-access` (or `credential_access`).
pub fn tactic_of_tag(tag: &str) -> Option<&'static str> {
    let name = tag.strip_prefix("attack.").unwrap_or(tag).replace('_', "-");
    TACTICS.iter().find(|(n, _)| *n == name).map(|(_, id)| *id)
}

/// The tactics of a technique id (`T1110.001` → `TA0006`).
pub fn tactics_of_technique(technique: &str) -> &'static [&'static str] {
    let parent = technique.split('.').next().unwrap_or(technique);
    TECHNIQUES.iter().find(|(t, _)| t.eq_ignore_ascii_case(parent)).map(|(_, ts)| *ts).unwrap_or(&[])
}

/// Adds the tactics of a finding's techniques to the ones it already names, sorted.
pub fn complete(f: &mut crate::messages::Finding) {
    for t in &f.techniques {
        for ta in tactics_of_technique(t) {
            if !f.tactics.iter().any(|x| x == ta) {
                f.tactics.push((*ta).to_string());
            }
        }
    }
    f.tactics.sort();
}

/// The order of tactics along the kill chain, for campaign timelines.
pub fn stage(tactic: &str) -> usize {
    const ORDER: [&str; 14] = [
        "TA0043", "TA0042", "TA0001", "TA0002", "TA0003", "TA0004", "TA0005", "TA0006", "TA0007", "TA0008", "TA0009",
        "TA0011", "TA0010", "TA0040",
    ];
    ORDER.iter().position(|t| *t == tactic).unwrap_or(ORDER.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_techniques_map_to_tactics() {
        assert_eq!(tactic_of_tag("attack.credential-access"), Some("TA0006"));
        assert_eq!(tactic_of_tag("attack.command_and_control"), Some("TA0011"));
        assert_eq!(tactic_of_tag("attack.t1110"), None);
        assert_eq!(tactics_of_technique("T1110.001"), &["TA0006"]);
        assert!(tactics_of_technique("T9999").is_empty());
        let mut f = crate::messages::Finding {
            techniques: vec!["T1046".into(), "T1110.003".into()],
            tactics: vec!["TA0006".into()],
            ..Default::default()
        };
        complete(&mut f);
        assert_eq!(f.tactics, ["TA0006", "TA0007"]);
        assert!(stage("TA0043") < stage("TA0006") && stage("TA0006") < stage("TA0010"));
    }
}
