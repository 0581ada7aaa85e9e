//! Decide once, enforce everywhere, for real: a `nats-server`, two `warden enforce`
//! processes (each with its own nftables table) and the test, all inside one throwaway
//! network namespace. Needs root, `nft` and `nats-server`; under CI (`CI` set) their
//! absence is a failure, elsewhere the test says SKIPPED.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use warden::cluster::Cluster;
use warden::cluster::decisions::{Decision, Decisions, Report};

use crate::cluster::{Nats, Shipper, attack, central_with};
use crate::support::*;

const TEST: &str = "decisions_reach_every_enforcer_which_checks_its_own_ground";

/// Skips (or fails under CI) without nftables in a network namespace.
fn skip(test: &str) -> bool {
    match nft_available() {
        Ok(()) => false,
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "CI must run {test}: {why}");
            eprintln!("SKIPPED {test}: {why}");
            true
        }
    }
}

fn nft_available() -> Result<(), String> {
    let ok = Command::new("unshare").args(["--net", "nft", "list", "tables"]).output();
    match ok {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("`unshare --net` and `nft` are needed (root)".into()),
    }
}

/// Moves the calling thread into a new network namespace with its loopback up.
fn new_netns() {
    // SAFETY: only the network namespace is unshared (not the file table), which
    // affects this thread and the processes it starts, nothing shared with others.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }.expect("unshare");
    let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("ip");
    assert!(up.success());
}

fn set_of(table: &str) -> String {
    let out = Command::new("nft").args(["list", "set", "inet", table, "blocklist_v4"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nft(args: &[&str]) {
    let out = Command::new("nft").args(args).output().unwrap();
    assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn enforcer(dir: &Path, nats: &Nats, host: &str) -> Child {
    enforcer_with(dir, nats, host, &format!("mode = \"enforce\"\ntable = \"t_{host}\"\n"))
}

/// `warden enforce` as `host`, with more of `[enforce]`.
pub fn enforcer_with(dir: &Path, nats: &Nats, host: &str, enforce: &str) -> Child {
    let config = dir.join(format!("{host}.toml"));
    std::fs::write(&config, format!("{}[enforce]\nhost = \"{host}\"\n{enforce}", nats.cluster_toml(host))).unwrap();
    let log = std::fs::File::create(dir.join(format!("{host}.stderr"))).unwrap();
    Command::new(BIN)
        .arg("enforce")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start warden enforce")
}

fn block(ip: &str, secs: i64) -> Decision {
    let now = chrono::Utc::now();
    Decision {
        target: ip.parse().unwrap(),
        expires_at: now + chrono::Duration::seconds(secs),
        incident: None,
        reason: "test".into(),
        origin: "central".into(),
        decided_at: now,
        fence: 0,
    }
}

/// Reads reports until one from each host in `hosts` about `target` (skipping earlier
/// ones); returns them by host.
async fn reports(sub: &mut async_nats::Subscriber, target: &str, hosts: &[&str]) -> Vec<Report> {
    let mut got: Vec<Report> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while hosts.iter().any(|h| !got.iter().any(|r| r.host == *h)) {
        let m = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("reports about {target} from {hosts:?}; got {got:?}"))
            .expect("subscription open");
        let r: Report = serde_json::from_slice(&m.payload).unwrap();
        if r.target == target && !got.iter().any(|g| g.host == r.host) {
            got.push(r);
        }
    }
    got.sort_by(|a, b| a.host.cmp(&b.host));
    got
}

fn outcomes(rs: &[Report]) -> Vec<(String, String)> {
    rs.iter()
        .map(|r| (r.host.clone(), serde_json::to_value(r.outcome).unwrap().as_str().unwrap().to_string()))
        .collect()
}

fn pair(a: &str, b: &str) -> Vec<(String, String)> {
    vec![("a".into(), a.into()), ("b".into(), b.into())]
}

/// A block reaches both enforcers' sets; an address protected on the hosts is refused
/// there; a host whose drop rule was removed says its block is ineffective, and why;
/// an enforcer that was down while decisions changed, its table deleted, comes back to
/// exactly the decisions in force.
#[test]
fn decisions_reach_every_enforcer_which_checks_its_own_ground() {
    if skip(TEST) {
        return;
    }
    std::thread::spawn(|| {
        new_netns();
        let tmp = tempfile::tempdir().unwrap();
        let Some(nats) = Nats::start(TEST, tmp.path()) else { return };
        let mut a = enforcer(tmp.path(), &nats, "a");
        let mut b = enforcer(tmp.path(), &nats, "b");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let cfg: warden::config::ClusterConfig = toml::from_str(&format!("nats_url = \"{}\"", nats.url)).unwrap();
            let decisions: Decisions =
                Cluster::connect(&cfg, "test", Duration::from_secs(10)).await.unwrap().decisions().await.unwrap();
            let client = async_nats::connect(nats.url.as_str()).await.unwrap();
            let mut sub = client.subscribe("warden.enforcement.>").await.unwrap();
            client.flush().await.unwrap();
            // Both enforcers watching: their table exists.
            eventually(30, "both tables", || {
                (set_of("t_a").contains("blocklist") && set_of("t_b").contains("blocklist")).then_some(())
            });

            decisions.block(&block("203.0.113.80", 3600)).await.unwrap();
            assert_eq!(outcomes(&reports(&mut sub, "203.0.113.80", &["a", "b"]).await), pair("applied", "applied"));
            assert!(set_of("t_a").contains("203.0.113.80") && set_of("t_b").contains("203.0.113.80"));

            decisions.block(&block("127.0.0.9", 3600)).await.unwrap();
            let refused = reports(&mut sub, "127.0.0.9", &["a", "b"]).await;
            assert_eq!(outcomes(&refused), pair("refused", "refused"));
            assert!(refused[0].reason.contains("protected"), "{refused:?}");
            assert!(!set_of("t_a").contains("127.0.0.9") && !set_of("t_b").contains("127.0.0.9"));

            // Host b's drop rules gone: its element is there, and stops nothing.
            nft(&["flush", "chain", "inet", "t_b", "input"]);
            decisions.block(&block("203.0.113.81", 3600)).await.unwrap();
            let r = reports(&mut sub, "203.0.113.81", &["a", "b"]).await;
            assert_eq!(outcomes(&r), pair("applied", "ineffective"));
            assert!(r[1].reason.contains("hooked into input"), "{r:?}");

            // Host a down; its table deleted; decisions change meanwhile.
            a.kill().unwrap();
            a.wait().unwrap();
            nft(&["delete", "table", "inet", "t_a"]);
            decisions.unblock("203.0.113.80".parse::<IpAddr>().unwrap()).await.unwrap();
            decisions.block(&block("203.0.113.82", 3600)).await.unwrap();
            assert_eq!(
                outcomes(&reports(&mut sub, "203.0.113.82", &["b"]).await),
                [("b".into(), "ineffective".into())]
            );
            a = enforcer(tmp.path(), &nats, "a");
            eventually(30, "host a back to the decisions in force", || {
                let set = set_of("t_a");
                (set.contains("203.0.113.81") && set.contains("203.0.113.82")).then_some(set)
            });
            assert!(!set_of("t_a").contains("203.0.113.80"), "an unblocked address is not re-applied");
            assert!(!set_of("t_b").contains("203.0.113.80"), "host b removed the unblocked address");
        });
        let _ = a.kill();
        let _ = b.kill();
        let _ = a.wait();
        let _ = b.wait();
    })
    .join()
    .unwrap();
}

/// The headline: an attack logged on one host, shipped, found on the analysis node in
/// enforce mode, is decided once and blocked on every enforcing host; the incident's
/// block is `published` (the node claims nothing itself) and lists each host's report:
/// in force on both, so the incident is contained.
#[test]
fn a_brute_force_shipped_from_one_host_is_blocked_on_every_host() {
    const TEST: &str = "a_brute_force_shipped_from_one_host_is_blocked_on_every_host";
    if skip(TEST) {
        return;
    }
    std::thread::spawn(|| {
        new_netns();
        let tmp = tempfile::tempdir().unwrap();
        let Some(nats) = Nats::start(TEST, tmp.path()) else { return };
        let mut enforcers = [enforcer(tmp.path(), &nats, "a"), enforcer(tmp.path(), &nats, "b")];
        let log = tmp.path().join("auth.log");
        append(&log, &attack("203.0.113.90", 0));
        let mut ship = Shipper::configure(tmp.path(), &nats, "web-1", &log);
        ship.spawn();
        let mut central = central_with(tmp.path(), &nats, "[response]\nmode = \"enforce\"\n");
        eventually(60, "the address in both hosts' sets", || {
            (set_of("t_a").contains("203.0.113.90") && set_of("t_b").contains("203.0.113.90")).then_some(())
        });
        // The incident says, per host, that the block is in force (and only then that
        // the attacker is contained).
        let inc = eventually(60, "both hosts' reports on the incident", || {
            let incidents = central.incidents();
            let inc = incident_for(&incidents, "203.0.113.90")?.clone();
            let block = inc["actions"].as_array()?.iter().find(|a| a["kind"] == "block_ip")?.clone();
            let mut hosts: Vec<(String, String)> = block["enforcement"]
                .as_array()?
                .iter()
                .map(|e| (e["host"].as_str().unwrap().to_string(), e["outcome"].as_str().unwrap().to_string()))
                .collect();
            hosts.sort();
            (hosts == pair("applied", "applied")).then_some(inc)
        });
        let dropped = central.stderr().lines().filter(|l| l.contains("enforcement report about no")).count();
        assert_eq!(dropped, 0, "{}", central.stderr());
        let block = inc["actions"].as_array().unwrap().iter().find(|a| a["kind"] == "block_ip").unwrap();
        assert_eq!(
            (block["mode"].as_str(), block["status"].as_str()),
            (Some("enforce"), Some("published")),
            "{block:#}"
        );
        assert!(block["output"].as_str().unwrap().contains("published to the fleet"), "{block:#}");
        assert_eq!(inc["status"], "contained", "{inc:#}");
        // `warden status`: the leader, and each enforcer with the block in force.
        let cluster = eventually(30, "both enforcers holding the block in the status", || {
            let out = central.cli(&["status"]);
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let c = status["cluster"].clone();
            let held = c["enforcers"]
                .as_array()?
                .iter()
                .filter(|e| e["in_force"] == 1 && e["applied"].as_u64() >= Some(1))
                .count();
            (held == 2).then_some(c)
        });
        assert_eq!(
            (cluster["leader"].as_str(), cluster["leading"].as_bool()),
            (Some("central"), Some(true)),
            "{cluster:#}"
        );
        assert_eq!(cluster["decisions"], 1, "{cluster:#}");

        // The central node killed while the host keeps logging: the attack logged
        // meanwhile is found and enforced after the restart, nothing is filed twice.
        central.kill9();
        append(&log, &attack("203.0.113.91", 30));
        central.spawn();
        eventually(60, "the new address in both hosts' sets", || {
            (set_of("t_a").contains("203.0.113.91") && set_of("t_b").contains("203.0.113.91")).then_some(())
        });
        let incidents = central.incidents();
        for ip in ["203.0.113.90", "203.0.113.91"] {
            let of_ip =
                incidents.iter().filter(|i| i["entities"].as_array().is_some_and(|e| e.iter().any(|x| x == ip)));
            assert_eq!(of_ip.count(), 1, "one incident for {ip}: {incidents:#?}");
        }
        for e in &mut enforcers {
            let _ = e.kill();
            let _ = e.wait();
        }
    })
    .join()
    .unwrap();
}
