//! Fuzz targets: every parser and decoder that reads attacker-controlled bytes, each a
//! function of the bytes. The only property checked is the one every input must have:
//! no panic, no hang, and the few invariants noted per target. Shared by the AFL++
//! harness (`fuzz/src/main.rs`) and by the regression test that replays the seed
//! corpora and every crash found (`tests/it/fuzz_corpus.rs`).

use std::path::PathBuf;

use chrono::{TimeZone, Utc};

/// The targets, by name (the name is also the folder of its seeds: `fuzz/seeds/NAME`).
pub const TARGETS: &[&str] = &[
    "syslog_tcp",
    "syslog_udp",
    "log_lines",
    "pcap",
    "ioc_feed",
    "osv",
    "lockfile",
    "os_packages",
    "config",
    "admin_body",
];

/// Runs `target` on `data`; `false` for an unknown target.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "syslog_tcp" => syslog_tcp(data),
        "syslog_udp" => syslog_udp(data),
        "log_lines" => log_lines(data),
        "pcap" => pcap(data),
        "ioc_feed" => ioc_feed(data),
        "osv" => osv(data),
        "lockfile" => lockfile(data),
        "os_packages" => os_packages(data),
        "config" => config(data),
        "admin_body" => admin_body(data),
        _ => return false,
    }
    // Nothing left behind (AFL++ runs each input in a new process).
    let _ = std::fs::remove_dir_all(scratch_dir());
    true
}

/// The scratch directory of this process and thread, removed after each run.
fn scratch_dir() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    std::env::temp_dir().join(format!("warden-fuzz-{}-{thread}", std::process::id()))
}

/// A scratch file of this process and thread (decoders that read files get the bytes
/// through it).
fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let dir = scratch_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    std::fs::write(&path, data).expect("scratch file");
    path
}

/// RFC 6587 framing (octet-counted or newline), fed in two pieces, then each frame
/// normalised as a message from a peer.
fn syslog_tcp(data: &[u8]) {
    use warden::ingest::syslog::{TcpFramer, normalize};
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut framer = TcpFramer::new(4096);
    let mut frames = Vec::new();
    let ok = framer.push(&data[..split], &mut |f| frames.push(f)).is_ok()
        && framer.push(&data[split..], &mut |f| frames.push(f)).is_ok();
    if ok {
        framer.finish(&mut |f| frames.push(f));
    }
    let peer = std::net::IpAddr::from([192, 0, 2, 1]);
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    for f in frames {
        assert!(f.len() <= 4096 * 4, "a frame over the limit: {}", f.len());
        if let Ok(line) = normalize(&f, peer, now) {
            assert!(!line.contains('\n'), "a normalised message holds a newline");
        }
    }
}

/// One datagram as the UDP listener takes it (its first line), RFC 3164 or 5424,
/// normalised.
fn syslog_udp(data: &[u8]) {
    let Some((frame, _)) = warden::ingest::syslog::datagram(data, 4096) else { return };
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let peer = std::net::IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
    if let Ok(line) = warden::ingest::syslog::normalize(&frame, peer, now) {
        assert!(!line.contains('\n'), "a normalised datagram holds a newline");
    }
}

/// Lines through the batch builder in the format the first byte picks (auto, auth,
/// web, JSON, Zeek): every parser and the detectors' input.
fn log_lines(data: &[u8]) {
    use warden::config::LogFormat;
    let Some((first, rest)) = data.split_first() else { return };
    let format =
        [LogFormat::Auto, LogFormat::Auth, LogFormat::Web, LogFormat::Json, LogFormat::Zeek][*first as usize % 5];
    let mut b = warden::ingest::BatchBuilder::new(format, Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap());
    let mut offset = 0u64;
    for line in rest.split(|c| *c == b'\n') {
        b.line_at(String::from_utf8_lossy(line).into_owned(), offset);
        offset += line.len() as u64 + 1;
    }
    for ev in &b.events {
        if let Some(a) = &ev.auth
            && let Some(ip) = a.src_ip
        {
            assert_eq!(ip, ip.to_canonical(), "an IPv4-mapped address kept mapped");
        }
    }
}

/// A capture file (pcap or pcapng, any link type).
fn pcap(data: &[u8]) {
    let path = scratch("capture.pcap", data);
    let _ = warden::ingest::pcap::read(&path);
    let _ = warden::ingest::pcap::dns_question(data);
}

/// A threat-intel feed in the format the first byte picks.
fn ioc_feed(data: &[u8]) {
    use warden::tools::detection::ioc::{Feed, FeedFormat, FeedSource, FeedSpec, IocIndex};
    let Some((first, rest)) = data.split_first() else { return };
    let format =
        [FeedFormat::Auto, FeedFormat::Plain, FeedFormat::Csv, FeedFormat::Stix, FeedFormat::Misp][*first as usize % 5];
    let feed = Feed {
        spec: FeedSpec {
            name: "fuzz".into(),
            path: "fuzz".into(),
            format,
            confidence: 0.8,
            techniques: Vec::new(),
            max_age_hours: None,
        },
        source: FeedSource::Embedded(vec![("fuzz.txt".into(), String::from_utf8_lossy(rest).into_owned())]),
    };
    let _ = IocIndex::load(&[feed]);
}

/// An OSV advisory, as JSON or (first byte odd) YAML.
fn osv(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else { return };
    let name = if first % 2 == 1 { "advisory.yaml" } else { "advisory.json" };
    let path = scratch(name, rest);
    let _ = warden::tools::vuln::osv::load(&path);
}

/// A lockfile of the kind the first byte picks, named as that ecosystem names it.
fn lockfile(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else { return };
    let name = ["Cargo.lock", "package-lock.json", "requirements.txt", "poetry.lock"][*first as usize % 4];
    let path = scratch(name, rest);
    if let Some(kind) = warden::tools::vuln::inventory::lockfile_kind(&path) {
        let _ = warden::tools::vuln::inventory::collect_lockfile(kind, &path);
    }
}

/// An OS package database (dpkg status, apk installed) and os-release.
fn os_packages(data: &[u8]) {
    use warden::tools::vuln::inventory::{parse_apk_installed, parse_dpkg_status, parse_os_release};
    let text = String::from_utf8_lossy(data);
    let path = std::path::Path::new("/var/lib/dpkg/status");
    let _ = parse_dpkg_status(&text, warden::tools::vuln::version::Ecosystem::Debian, path);
    let _ = parse_apk_installed(&text, std::path::Path::new("/lib/apk/db/installed"));
    let _ = parse_os_release(&text);
}

/// The TOML configuration: an error with a line, or a configuration — never a panic.
fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = warden::config::Config::parse(&text, "fuzz.toml") {
        assert!(e.to_string().starts_with("fuzz.toml"), "an error that does not name the file: {e}");
    }
}

/// The admin API's request bodies, as the API decodes them.
fn admin_body(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else { return };
    let _ = warden::admin::decode_body(*first, rest);
}
