//! Threat-intel index: `cargo bench --bench intel [-- INDICATORS]`.
//!
//! Writes 1,000,000 indicators (by default) as feed files — 400,000 IPv4 addresses and
//! 100,000 CIDRs in a plain list, 300,000 domains in a plain list, 100,000 URLs in a
//! URLhaus-layout CSV, 100,000 SHA-256 hashes in a plain list — then measures, in this
//! process: the time to load them into one index, the memory that adds (resident set
//! before and after, from /proc/self/status), and matching throughput over generated
//! log lines (every token of each line looked up, fields and raw text).

use std::io::Write;
use std::time::Instant;

use warden::tools::detection::ioc::{Feed, FeedFormat, FeedSource, FeedSpec, IocIndex};

#[path = "support/rss.rs"]
mod rss;
use rss::rss_kb;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

fn main() {
    let total: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-intel");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng(42);
    let part = |f: f64| (total as f64 * f) as u64;
    let mut ips = std::io::BufWriter::new(std::fs::File::create(dir.join("ips.txt")).unwrap());
    for _ in 0..part(0.4) {
        let v = rng.next() as u32;
        writeln!(ips, "{}", std::net::Ipv4Addr::from(v)).unwrap();
    }
    for _ in 0..part(0.1) {
        let len = 16 + rng.next() % 13;
        let v = (rng.next() as u32) & (u32::MAX << (32 - len));
        writeln!(ips, "{}/{len}", std::net::Ipv4Addr::from(v)).unwrap();
    }
    drop(ips);
    let mut doms = std::io::BufWriter::new(std::fs::File::create(dir.join("domains.txt")).unwrap());
    for i in 0..part(0.3) {
        writeln!(doms, "x{:x}{i}.bad-{}.example", rng.next() % 0xffffff, rng.next() % 1000).unwrap();
    }
    drop(doms);
    let mut urls = std::io::BufWriter::new(std::fs::File::create(dir.join("urlhaus.csv")).unwrap());
    writeln!(urls, "# URLhaus\n# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter").unwrap();
    for i in 0..part(0.1) {
        let ip = std::net::Ipv4Addr::from(rng.next() as u32);
        writeln!(
            urls,
            "\"{i}\",\"2025-04-21 12:35:06\",\"http://{ip}:{}/bin{i}.sh\",\"online\",\"2025-04-21\",\"malware_download\",\"elf,mips\",\"https://urlhaus.abuse.ch/url/{i}/\",\"r\"",
            1024 + rng.next() % 60000
        )
        .unwrap();
    }
    drop(urls);
    let mut hashes = std::io::BufWriter::new(std::fs::File::create(dir.join("sha256.txt")).unwrap());
    for _ in 0..part(0.1) {
        writeln!(hashes, "{:016x}{:016x}{:016x}{:016x}", rng.next(), rng.next(), rng.next(), rng.next()).unwrap();
    }
    drop(hashes);

    let feeds: Vec<Feed> = ["ips.txt", "domains.txt", "urlhaus.csv", "sha256.txt"]
        .iter()
        .map(|f| Feed {
            spec: FeedSpec {
                name: f.to_string(),
                path: f.to_string(),
                format: FeedFormat::Auto,
                confidence: 0.8,
                techniques: vec![],
                max_age_hours: None,
            },
            source: FeedSource::Path(dir.join(f)),
        })
        .collect();
    for run in 1..=3 {
        let before = rss_kb();
        let started = Instant::now();
        let idx = IocIndex::load(&feeds);
        let secs = started.elapsed().as_secs_f64();
        let after = rss_kb();
        assert!(idx.errors.is_empty(), "{:?}", &idx.errors[..idx.errors.len().min(3)]);
        println!(
            "run {run}: loaded {} indicators in {secs:.2} s; resident memory +{:.0} MB ({:.0} MB total)",
            idx.len(),
            (after.saturating_sub(before)) as f64 / 1024.0,
            after as f64 / 1024.0
        );
        // Matching: web-log-like lines with addresses, names and URLs in them.
        let lines: Vec<String> = (0..200_000u32)
            .map(|i| {
                format!(
                    "198.51.{}.{} - - [01/Mar/2026:10:00:00 +0000] \"GET /dl?u=http://{}/x{i}.sh HTTP/1.1\" 200 512 \"https://shop{i}.example/\" \"Mozilla/5.0\"",
                    i % 200,
                    i % 250,
                    std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761))
                )
            })
            .collect();
        let started = Instant::now();
        let mut hits = 0usize;
        for l in &lines {
            hits += idx.match_text(l).len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "run {run}: matched {} lines in {secs:.2} s: {:.0} lines/s on one core ({hits} hits)",
            lines.len(),
            lines.len() as f64 / secs
        );
        drop(idx);
    }
}
