//! Vulnerability scanning: `cargo bench --bench vuln [-- ADVISORIES]`.
//!
//! Generates an OSV database (50,000 advisories by default, over 25,000 npm, PyPI and
//! Debian packages, two ranges each) and a host root with a 3,000-package dpkg status
//! and a 20,000-package package-lock.json, then measures in this process: importing the
//! records into the store, opening it, and one whole scan (inventory, matching with
//! each ecosystem's version order, risk, remediation) — with the resident memory.

use std::io::Write;
use std::time::Instant;

use warden::tools::vuln::{osv, risk, scan};

#[path = "support/rss.rs"]
mod rss;
use rss::rss_kb;

fn main() {
    let total: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50_000);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-vuln");
    let _ = std::fs::remove_dir_all(&dir);
    let recs = dir.join("records");
    std::fs::create_dir_all(&recs).unwrap();
    // One JSON file per ecosystem would be unusual; osv.dev ships one record per file.
    for i in 0..total {
        let (eco, name, v) = match i % 3 {
            0 => ("npm", format!("pkg-{}", i % 12_000), format!("{}.{}.0", i % 7, i % 11)),
            1 => ("PyPI", format!("py-{}", i % 8_000), format!("{}.{}", i % 9, i % 13)),
            _ => ("Debian:12", format!("deb{}", i % 5_000), format!("{}.{}-{}+deb12u1", i % 5, i % 17, i % 3 + 1)),
        };
        let rec = serde_json::json!({
            "id": format!("BENCH-{i}"), "modified": "2026-01-01T00:00:00Z", "aliases": [format!("CVE-2026-{i:05}")],
            "summary": "generated advisory",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [{"package": {"ecosystem": eco, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": v}, {"introduced": format!("{}0", v)}, {"fixed": format!("{}1", v)}]}]}]
        });
        std::fs::write(recs.join(format!("BENCH-{i}.json")), rec.to_string()).unwrap();
    }
    let host = dir.join("host");
    std::fs::create_dir_all(host.join("etc")).unwrap();
    std::fs::create_dir_all(host.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(host.join("srv/app")).unwrap();
    std::fs::write(host.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    let mut st = std::io::BufWriter::new(std::fs::File::create(host.join("var/lib/dpkg/status")).unwrap());
    for i in 0..3_000 {
        writeln!(
            st,
            "Package: deb{i}\nStatus: install ok installed\nVersion: {}.{}-1\nDescription: x\n",
            i % 4,
            i % 19
        )
        .unwrap();
    }
    drop(st);
    let mut pkgs = serde_json::Map::new();
    for i in 0..20_000 {
        pkgs.insert(
            format!("node_modules/pkg-{i}"),
            serde_json::json!({ "version": format!("{}.{}.{}", i % 6, i % 10, i % 3) }),
        );
    }
    let lock = serde_json::json!({ "lockfileVersion": 3, "packages": pkgs });
    std::fs::write(host.join("srv/app/package-lock.json"), lock.to_string()).unwrap();

    let store = dir.join("osv");
    let rss0 = rss_kb();
    let t = Instant::now();
    let (report, stored) = osv::AdvisoryDb::import(&store, &recs).unwrap();
    let import = t.elapsed();
    let rss1 = rss_kb();
    println!(
        "import: {} files, {stored} advisories in {:.2} s (resident +{} MB)",
        report.files,
        import.as_secs_f64(),
        rss1.saturating_sub(rss0) / 1024
    );
    let t = Instant::now();
    let db = osv::AdvisoryDb::open(&store).unwrap();
    println!(
        "open: {} advisories in {:.2} s (resident +{} MB more)",
        db.len(),
        t.elapsed().as_secs_f64(),
        rss_kb().saturating_sub(rss1) / 1024
    );
    let target = scan::Target { path: host.clone(), asset: "bench".into(), hosts: vec![] };
    let asset = risk::AssetContext {
        name: "bench".into(),
        criticality: Default::default(),
        exposure: Default::default(),
        known: false,
    };
    let t = Instant::now();
    let r = scan::scan_target(
        &target,
        asset,
        &db,
        &Default::default(),
        &Default::default(),
        &Default::default(),
        chrono::Utc::now(),
    );
    let secs = t.elapsed().as_secs_f64();
    println!(
        "scan: {} packages, {} vulnerable, in {secs:.2} s ({:.0} packages/s); resident {} MB",
        r.packages,
        r.items.len(),
        r.packages as f64 / secs,
        rss_kb() / 1024
    );
}
