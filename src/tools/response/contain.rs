//! `contain_threat`: the exact argv of a containment action, and the protected set no
//! action may touch.
//!
//! Commands are built as argument vectors from parsed values (an `IpAddr` is rendered
//! from its parsed form), never as shell strings, so nothing from a log line can reach
//! a shell.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::messages::{ActionKind, ResponseMode};

/// The nftables table and sets Warden's blocks live in.
pub const NFT_TABLE: &str = "warden";
pub const NFT_SET_V4: &str = "blocklist_v4";
pub const NFT_SET_V6: &str = "blocklist_v6";

/// What to contain, how long, and in which mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainSpec {
    pub kind: ActionKind,
    pub target: String,
    pub ttl_secs: u64,
    pub mode: ResponseMode,
    /// The incident it contains (carried into a fleet's decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<uuid::Uuid>,
}

/// The set of Warden's table an address of this family goes into.
pub fn nft_set(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { NFT_SET_V4 } else { NFT_SET_V6 }
}

/// The argv that blocks `ip` for `ttl_secs` by adding it to Warden's nftables set.
pub fn block_ip_argv(ip: IpAddr, ttl_secs: u64) -> Vec<String> {
    let set = nft_set(ip);
    vec![
        "nft".into(),
        "add".into(),
        "element".into(),
        "inet".into(),
        NFT_TABLE.into(),
        set.into(),
        format!("{{ {ip} timeout {ttl_secs}s }}"),
    ]
}

/// Addresses never acted against: loopback, unspecified, broadcast and multicast (no
/// single attacker sends from them: a "source" there is spoofed or a parsing accident),
/// the host's own addresses and the configured networks.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    nets: Vec<IpNet>,
}

impl Protected {
    /// The built-in set plus `extra`, plus the host's own addresses.
    pub fn new(extra: &[IpNet]) -> Self {
        let mut nets: Vec<IpNet> = vec![
            "127.0.0.0/8".parse().expect("static net"),
            "::1/128".parse().expect("static net"),
            "0.0.0.0/32".parse().expect("static net"),
            "::/128".parse().expect("static net"),
            "255.255.255.255/32".parse().expect("static net"),
            "224.0.0.0/4".parse().expect("static net"),
            "ff00::/8".parse().expect("static net"),
        ];
        nets.extend(host_addresses().into_iter().map(IpNet::from));
        nets.extend_from_slice(extra);
        Protected { nets }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

/// The host's own addresses, read from `/proc` (IPv4 local routes and IPv6 interfaces).
pub fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        // A local address appears as `|-- A.B.C.D` followed by `/32 host LOCAL`.
        let mut last: Option<IpAddr> = None;
        for line in trie.lines() {
            let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
            if let Ok(ip) = t.parse::<IpAddr>() {
                last = Some(ip);
            } else if t.contains("host LOCAL")
                && let Some(ip) = last
                && !out.contains(&ip)
            {
                out.push(ip);
            }
        }
    }
    if let Ok(v6) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in v6.lines() {
            let Some(hex) = line.split_whitespace().next() else {
                continue;
            };
            if hex.len() != 32 {
                continue;
            }
            let mut bytes = [0u8; 16];
            let ok = (0..16).all(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map(|b| bytes[i] = b).is_ok());
            if ok {
                let ip = IpAddr::from(bytes);
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_exact_and_family_aware() {
        assert_eq!(
            block_ip_argv("203.0.113.7".parse().unwrap(), 3600),
            ["nft", "add", "element", "inet", "warden", "blocklist_v4", "{ 203.0.113.7 timeout 3600s }"]
        );
        assert_eq!(block_ip_argv("2001:db8::7".parse().unwrap(), 60)[5], "blocklist_v6");
    }

    #[test]
    fn loopback_own_and_configured_are_protected() {
        let p = Protected::new(&["10.0.0.0/8".parse().unwrap()]);
        assert!(p.contains("127.0.0.1".parse().unwrap()));
        assert!(p.contains("127.8.9.1".parse().unwrap()));
        assert!(p.contains("::1".parse().unwrap()));
        assert!(p.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(p.contains("10.200.3.4".parse().unwrap()));
        assert!(!p.contains("203.0.113.9".parse().unwrap()));
        for never in ["255.255.255.255", "224.0.0.251", "239.255.255.250", "ff02::1", "ff05::1:3", "::ffff:224.0.0.1"] {
            assert!(p.contains(never.parse().unwrap()), "{never}");
        }
        for own in host_addresses() {
            assert!(p.contains(own), "{own}");
        }
    }
}
