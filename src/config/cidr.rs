//! Networks as people write them: `10.0.0.0/8`, `2001:db8::/32`, or a single address
//! (`192.0.2.7`, a /32 or /128). A network written with host bits set (`10.0.0.1/8`) is
//! an error naming the network that was probably meant — silently widening or
//! narrowing what an allowlist or a protected set covers is never right.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// One network, strictly.
pub fn parse(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    let net = match t.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match t.parse::<std::net::IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => return Err(format!("`{t}` is not a network (a.b.c.d/len, x::/len) or an address")),
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "`{t}` has host bits set: write `{}` for the network, or `{}` for the one address",
            net.trunc(),
            net.addr()
        ));
    }
    Ok(net)
}

/// Every network of a list, strictly (the first error wins).
pub fn parse_all<S: AsRef<str>>(list: &[S]) -> Result<Vec<IpNet>, String> {
    list.iter().map(|s| parse(s.as_ref())).collect()
}

/// `#[serde(deserialize_with = "cidr::list")]` for a `Vec<IpNet>` field.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    parse_all(&raw).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bits_are_an_error_that_names_the_network_meant() {
        let e = parse("10.0.0.1/8").unwrap_err();
        assert!(e.contains("`10.0.0.0/8`") && e.contains("`10.0.0.1`"), "{e}");
        assert!(parse("2001:db8::1/32").unwrap_err().contains("2001:db8::/32"));
        assert_eq!(parse(" 10.0.0.0/8 ").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(parse("2001:db8::7").unwrap().to_string(), "2001:db8::7/128");
        assert!(parse("10.0.0.0/33").is_err() && parse("ten").is_err() && parse("").is_err());
        assert!(parse_all(&["10.0.0.0/8", "192.168.1.1/24"]).unwrap_err().contains("192.168.1.0/24"));
    }
}
