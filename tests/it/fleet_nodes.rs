//! Two analysis nodes on one cluster, for real (a `nats-server`, `warden run` twice,
//! `warden ship` and `warden enforce` processes): one leads incident response, the
//! other takes over when it is killed, and a decision from the replaced leader is
//! ignored; the shipping hosts are shared between the nodes, and a host whose node
//! died is read by the survivor, its recent logs read again so an attack that spans
//! the move is still seen — once.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use warden::cluster::Cluster;
use warden::cluster::decisions::{Decision, Report};

use crate::cluster::{Nats, Shipper, analysis_node, attack, brute_force};
use crate::fleet_enforce::enforcer_with;
use crate::support::*;

/// The node's view of the cluster (`warden status`'s `cluster`).
fn cluster_status(d: &Daemon) -> serde_json::Value {
    let r = d.get("/v1/health").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["cluster"].clone()
}

fn leading(d: &Daemon) -> Option<u64> {
    let c = cluster_status(d);
    (c["leading"] == true).then(|| c["token"].as_u64()).flatten()
}

fn decision(ip: &str, fence: u64) -> Decision {
    let now = chrono::Utc::now();
    Decision {
        target: ip.parse().unwrap(),
        expires_at: now + chrono::Duration::seconds(600),
        incident: None,
        reason: "test".into(),
        origin: "n1".into(),
        decided_at: now,
        fence,
    }
}

async fn report_about(sub: &mut async_nats::Subscriber, target: &str) -> Report {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = tokio::time::timeout_at(deadline, sub.next()).await.expect("a report").expect("subscribed");
        let r: Report = serde_json::from_slice(&m.payload).unwrap();
        if r.target == target {
            return r;
        }
    }
}

fn outcome(r: &Report) -> String {
    serde_json::to_value(r.outcome).unwrap().as_str().unwrap().to_string()
}

/// The first node leads; killed, the standby takes the lease with a newer fencing
/// token; a decision written afterwards with the old token is ignored by the enforcer
/// (and said to be stale), one with the new token is applied. `warden status` shows
/// the leader, the nodes and the enforcer.
#[test]
fn the_standby_takes_over_and_a_replaced_leaders_decision_is_ignored() {
    const TEST: &str = "the_standby_takes_over_and_a_replaced_leaders_decision_is_ignored";
    let tmp = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(TEST, tmp.path()) else { return };
    let mut n1 = analysis_node(tmp.path(), &nats, "n1", "");
    let old = eventually(30, "n1 leading", || leading(&n1));
    let n2 = analysis_node(tmp.path(), &nats, "n2", "");
    let mut enforcer = enforcer_with(tmp.path(), &nats, "e1", "");
    let status = eventually(30, "both nodes and the enforcer in n2's status", || {
        let c = cluster_status(&n2);
        let nodes = c["nodes"].as_array()?.iter().filter_map(|n| n["node"].as_str()).collect::<Vec<_>>().join(",");
        let enforcers = c["enforcers"].as_array()?.len();
        (nodes == "n1,n2" && enforcers == 1).then_some(c)
    });
    assert_eq!((status["leader"].as_str(), status["leading"].as_bool()), (Some("n1"), Some(false)), "{status:#}");
    assert_eq!(status["enforcers"][0]["host"], "e1", "{status:#}");
    assert_eq!(status["enforcers"][0]["mode"], "observe", "{status:#}");

    n1.kill9();
    let killed = Instant::now();
    let new = eventually(30, "n2 leading", || leading(&n2));
    eprintln!("{TEST}: n2 took over {:.1} s after n1's kill -9", killed.elapsed().as_secs_f64());
    assert!(new > old, "a newer fencing token: {old} then {new}: {:#}", cluster_status(&n2));

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(nats.url.as_str()).await.unwrap();
        let mut sub = client.subscribe("warden.enforcement.e1").await.unwrap();
        client.flush().await.unwrap();
        let cfg: warden::config::ClusterConfig = toml::from_str(&format!("nats_url = \"{}\"", nats.url)).unwrap();
        let decisions =
            Cluster::connect(&cfg, "test", Duration::from_secs(10)).await.unwrap().decisions().await.unwrap();
        // n1's late write, as if it had not noticed it was replaced.
        decisions.block(&decision("198.51.100.77", old)).await.unwrap();
        let r = report_about(&mut sub, "198.51.100.77").await;
        assert_eq!(outcome(&r), "stale", "{r:?}");
        assert!(r.reason.contains(&format!("fencing token {old}")), "{r:?}");
        decisions.block(&decision("198.51.100.78", new)).await.unwrap();
        let r = report_about(&mut sub, "198.51.100.78").await;
        assert_eq!(outcome(&r), "observed", "{r:?}");
    });
    let _ = enforcer.kill();
    let _ = enforcer.wait();
}

/// Whether the consumer has nothing delivered and unacknowledged, nor left to deliver.
fn all_acknowledged(nats: &Nats, consumer: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(nats.url.as_str()).await.unwrap());
        let info = js.get_stream("WARDEN_LOGS").await.unwrap().consumer_info(consumer).await.unwrap();
        info.num_ack_pending == 0 && info.num_pending == 0
    })
}

/// The first candidate host owned by `node` of the two.
fn host_of(node: &str) -> String {
    let nodes = ["n1".to_string(), "n2".to_string()];
    (1..100)
        .map(|i| format!("web{i}"))
        .find(|h| warden::cluster::source::owner(&nodes, h) == Some(node))
        .expect("some host ranks first for each node")
}

fn ship(dir: &Path, nats: &Nats, host: &str) -> (Shipper, std::path::PathBuf) {
    let dir = dir.join(format!("ship-{host}"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("auth.log");
    std::fs::write(&log, "").unwrap();
    let mut s = Shipper::configure(&dir, nats, host, &log);
    s.spawn();
    (s, log)
}

/// Each node reads its share of the hosts and the leader gets every finding; when the
/// standby dies, its host moves to the leader, which reads the host's recent logs again:
/// three failed logins before the move and two after are one brute force, and the
/// attack the dead node had already found is not filed twice.
#[test]
fn hosts_are_shared_and_a_moved_host_keeps_its_windows() {
    const TEST: &str = "hosts_are_shared_and_a_moved_host_keeps_its_windows";
    let tmp = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(TEST, tmp.path()) else { return };
    let n1 = analysis_node(tmp.path(), &nats, "n1", "");
    eventually(30, "n1 leading", || leading(&n1));
    let mut n2 = analysis_node(tmp.path(), &nats, "n2", "");
    eventually(30, "both nodes analysing", || {
        let c = cluster_status(&n1);
        (c["nodes"].as_array()?.iter().filter(|n| n["analyses"] == true).count() == 2).then_some(())
    });
    let (h1, h2) = (host_of("n1"), host_of("n2"));
    let (_s1, log1) = ship(tmp.path(), &nats, &h1);
    let (_s2, log2) = ship(tmp.path(), &nats, &h2);

    // Found by n2 (h2 is its), filed by the leader.
    append(&log2, &attack("203.0.113.71", 0));
    append(&log1, &attack("203.0.113.73", 0));
    eventually(60, "both attacks filed by the leader", || {
        (brute_force(&n1, "203.0.113.71").len() == 1 && brute_force(&n1, "203.0.113.73").len() == 1).then_some(())
    });
    assert_eq!(brute_force(&n1, "203.0.113.71"), [(h2.clone(), 5)]);
    assert_eq!(brute_force(&n1, "203.0.113.73"), [(h1.clone(), 5)]);
    assert!(n2.incidents().is_empty(), "the standby files nothing: {:#?}", n2.incidents());
    let read_by_n2 = format!("warden_lines_read_total{{source=\"fleet@{h2}\"}}");
    assert_eq!(n2.metric(&read_by_n2), Some(5), "h2 read by n2");
    assert_eq!(n1.metric(&format!("warden_lines_read_total{{source=\"fleet@{h1}\"}}")), Some(5), "h1 read by n1");

    // Three failures seen by n2, then n2 dies; two more after the move.
    let lines: Vec<String> = (100..105).map(|s| failed("203.0.113.72", "root", s)).collect();
    append(&log2, &lines[..3].concat());
    eventually(30, "n2 read the first three", || (n2.metric(&read_by_n2)? == 8).then_some(()));
    eventually(30, "n2 acknowledged them", || all_acknowledged(&nats, &format!("warden-fleet-{h2}")).then_some(()));
    n2.kill9();
    eventually(60, "n1 reading h2", || {
        n1.stderr()
            .lines()
            .any(|l| l.contains("reading the host's logs") && l.contains(&format!("host={h2}")))
            .then_some(())
    });
    append(&log2, &lines[3..].concat());
    eventually(60, "the attack spanning the move found", || {
        (!brute_force(&n1, "203.0.113.72").is_empty()).then_some(())
    });
    assert_eq!(brute_force(&n1, "203.0.113.72"), [(h2.clone(), 5)]);
    // Read again in the warm-up, the first attack is still one finding in one incident.
    assert_eq!(brute_force(&n1, "203.0.113.71"), [(h2.clone(), 5)]);
    assert_eq!(n1.incidents().len(), 3, "{:#?}", n1.incidents());
}
