//! `[detection.network]`: the thresholds of `analyze_network_traffic`.

use serde::Deserialize;

/// Thresholds of `analyze_network_traffic` (all in event time).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkParams {
    /// Window of the scan detectors.
    pub scan_window_secs: u64,
    /// Distinct ports of one host that make a vertical scan.
    pub vertical_scan_ports: u32,
    /// Distinct hosts on one port that make a horizontal scan.
    pub horizontal_scan_hosts: u32,
    /// Share of those attempts that must have gone unanswered or refused (a monitoring
    /// host's checks are answered).
    pub scan_min_unanswered_ratio: f64,
    /// Connections of a pair before beaconing is scored.
    pub beacon_min_connections: u32,
    /// Connections kept per pair.
    pub beacon_max_connections: usize,
    /// Median interval below which regular connections are a burst, not a beacon.
    pub beacon_min_interval_secs: f64,
    /// Score (0–1) at which a pair is reported.
    pub beacon_score: f64,
    /// Most dispersion of the intervals (median absolute deviation / median) a beacon
    /// may have, whatever its score.
    pub beacon_max_dispersion: f64,
    /// How long a pair is remembered, and the wait between two findings for it.
    pub beacon_window_secs: u64,
    /// Destination ports never scored (resolvers, time servers).
    pub beacon_ignore_ports: Vec<u16>,
    /// Score pairs whose destination is internal too (off: monitoring polls look alike).
    pub beacon_internal: bool,
    /// Destinations most internal clients talk to weigh less: above this share of the
    /// clients followed (`prevalence`), a beacon's score is reduced…
    pub beacon_prevalence_floor: f64,
    /// …by up to this fraction (at a prevalence of 1)…
    pub beacon_prevalence_weight: f64,
    /// …once at least this many internal clients are followed.
    pub beacon_prevalence_min_hosts: u32,
    /// Web proxies (CIDRs): never a beacon's destination; the requests they carry
    /// (Zeek `http.log`) are attributed to the client and the name asked for.
    pub proxies: Vec<String>,
    /// An internal address receiving proxy-style requests (CONNECT, absolute URIs) for
    /// this many distinct names is recognised as a proxy.
    pub proxy_min_names: u32,
    /// Ports of common services: an established outbound connection on any other port
    /// that exchanged at least `unusual_port_min_bytes` is reported (low severity) while
    /// at most `unusual_port_max_clients` inside hosts use that port.
    pub common_ports: Vec<u16>,
    pub unusual_port_min_bytes: u64,
    pub unusual_port_max_clients: u32,
    /// Window over which a host's outbound bytes are summed.
    pub exfil_window_secs: u64,
    /// A window this many times the host's baseline is reported…
    pub exfil_factor: f64,
    /// …when it is at least this many bytes and the baseline has this many windows.
    pub exfil_min_bytes: u64,
    pub exfil_baseline_windows: u32,
    /// Outbound bytes in one window reported whatever the baseline.
    pub exfil_threshold_bytes: u64,
    /// Networks that are not "outbound" (CIDRs).
    pub internal_networks: Vec<String>,
    /// Sources never reported (CIDRs of known scanners or monitoring hosts).
    pub ignore_sources: Vec<String>,
    /// Destinations never scored for beaconing or exfiltration (CIDRs of update and
    /// backup services whose regular calls are expected).
    pub ignore_destinations: Vec<String>,
    /// Window of the DNS tunnelling detector.
    pub dns_window_secs: u64,
    /// Distinct subdomains of one registered domain from one source in the window.
    pub dns_min_distinct: u32,
    /// A subdomain part at least this long counts as long.
    pub dns_long_subdomain: usize,
    /// A subdomain part at least `dns_entropy_min_len` long with at least this many bits
    /// of entropy per character counts as encoded.
    pub dns_entropy_bits: f64,
    pub dns_entropy_min_len: usize,
    /// Share of TXT/NULL queries that is suspicious by itself.
    pub dns_txt_share: f64,
    /// Distinct high-entropy TXT answers of one domain to one source in the DNS window
    /// that make a channel in the answers.
    pub dns_txt_answers: u32,
    /// Names that do not exist (NXDOMAIN) one source asked for in the DNS window, over
    /// at least `dga_min_domains` registered domains: a domain generation algorithm.
    pub dga_nxdomain_names: u32,
    pub dga_min_domains: u32,
    /// A connection to an outside address open this long (or a pair's overlapping
    /// connections covering this long without a gap) is a long connection.
    pub long_connection_secs: u64,
    /// Connections of one pair (inside → outside) within `strobe_window_secs` that make
    /// a strobe — reported as such, not scored as a beacon.
    pub strobe_connections: u64,
    pub strobe_window_secs: u64,
}

impl Default for NetworkParams {
    fn default() -> Self {
        NetworkParams {
            scan_window_secs: 300,
            vertical_scan_ports: 25,
            horizontal_scan_hosts: 25,
            scan_min_unanswered_ratio: 0.5,
            beacon_min_connections: 8,
            beacon_max_connections: 48,
            beacon_min_interval_secs: 5.0,
            beacon_score: 0.8,
            beacon_max_dispersion: 0.25,
            beacon_window_secs: 86_400,
            beacon_ignore_ports: vec![53, 123, 853, 5353],
            beacon_internal: false,
            beacon_prevalence_floor: 0.25,
            beacon_prevalence_weight: 0.5,
            beacon_prevalence_min_hosts: 10,
            proxies: Vec::new(),
            proxy_min_names: 10,
            common_ports: vec![
                20, 21, 22, 25, 53, 80, 110, 123, 143, 443, 465, 587, 853, 993, 995, 1194, 1883, 3478, 5060, 5061,
                5222, 5223, 5228, 5349, 8080, 8443, 8883,
            ],
            unusual_port_min_bytes: 4096,
            unusual_port_max_clients: 2,
            exfil_window_secs: 600,
            exfil_factor: 10.0,
            exfil_min_bytes: 20_000_000,
            exfil_baseline_windows: 3,
            exfil_threshold_bytes: 1_000_000_000,
            internal_networks: [
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "100.64.0.0/10",
                "169.254.0.0/16",
                "255.255.255.255/32",
                "fc00::/7",
                "fe80::/10",
            ]
            .map(String::from)
            .to_vec(),
            ignore_sources: Vec::new(),
            ignore_destinations: Vec::new(),
            dns_window_secs: 600,
            dns_min_distinct: 40,
            dns_long_subdomain: 40,
            dns_entropy_bits: 3.5,
            dns_entropy_min_len: 20,
            dns_txt_share: 0.5,
            dns_txt_answers: 10,
            dga_nxdomain_names: 50,
            dga_min_domains: 20,
            long_connection_secs: 3600,
            strobe_connections: 1000,
            strobe_window_secs: 86_400,
        }
    }
}
