//! The fleet's credentials, for real: a `nats-server` whose users are the README's
//! sample (`fixtures/nats/scoped.conf`: an analysis node with every right, a host that
//! may publish only its own logs and its enforcer's reports and read only the
//! decisions), a token-protected server, and a TLS server.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use warden::cluster::Cluster;
use warden::cluster::decisions::{Decision, Report};
use warden::config::ClusterConfig;

use crate::cluster::Nats;
use crate::support::*;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

const SERVER_ENV: [(&str, &str); 1] = [("WARDEN_WEB1_PASSWORD", "web1-secret")];

fn cluster_cfg(toml_text: &str) -> ClusterConfig {
    toml::from_str(toml_text).unwrap()
}

/// A `warden` subcommand as host `web1`, its password in the environment.
fn as_web1(dir: &Path, cmd: &str, toml_text: &str) -> Child {
    let config = dir.join(format!("{cmd}.toml"));
    std::fs::write(&config, toml_text).unwrap();
    Command::new(BIN)
        .arg(cmd)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("WEB1_PASSWORD", "web1-secret")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{cmd}.stderr"))).unwrap())
        .spawn()
        .expect("start warden")
}

fn ship_toml(dir: &Path, cluster: &str, log: &Path) -> String {
    format!(
        "data_dir = {:?}\n[ingest]\npoll_interval_ms = 100\n{cluster}[ship]\nhost = \"web1\"\n[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n",
        dir.join("ship-data").display().to_string(),
        log.display().to_string()
    )
}

/// Waits until web1's lines are in the logs stream.
async fn shipped(logs: &async_nats::jetstream::stream::Stream) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while logs.direct_get_last_for_subject("warden.logs.web1.auth").await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "web1's lines never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// A host's credentials ship its own logs and enforce the decisions, and can do nothing
/// else: not publish another host's logs, not read any logs, not write a decision. The
/// analysis node connects by nkey; a wrong password is refused.
#[test]
fn a_hosts_credentials_ship_its_logs_and_read_decisions_only() {
    const TEST: &str = "a_hosts_credentials_ship_its_logs_and_read_decisions_only";
    let tmp = tempfile::tempdir().unwrap();
    let conf = fixture("nats/scoped.conf");
    let Some(server) = Nats::start_with(TEST, tmp.path(), &["-c", conf.to_str().unwrap()], &SERVER_ENV) else {
        return;
    };
    let url = server.url.clone();
    let host_cluster = format!("[cluster]\nnats_url = \"{url}\"\nuser = \"web1\"\npassword_env = \"WEB1_PASSWORD\"\n");
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, failed("203.0.113.90", "root", 0)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // The analysis node, by nkey, makes the streams and buckets (a host may not).
        let node = cluster_cfg(&format!("nats_url = \"{url}\"\nnkey_file = {:?}\n", fixture("nats/node.nk")));
        let central = Cluster::connect(&node, "node", Duration::from_secs(10)).await.expect("the node's nkey");
        let logs = central.logs_stream().await.unwrap();
        let decisions = central.decisions().await.unwrap();
        central.presence().await.unwrap();
        let wrong = async_nats::ConnectOptions::with_user_and_password("web1".into(), "guess".into())
            .connect(url.as_str())
            .await;
        assert!(wrong.is_err(), "a wrong password is refused");

        let shipper = as_web1(tmp.path(), "ship", &ship_toml(tmp.path(), &host_cluster, &log));
        let enforcer = as_web1(tmp.path(), "enforce", &format!("{host_cluster}[enforce]\nhost = \"web1\"\n"));
        shipped(&logs).await;

        // Its enforcer reads a decision and reports on its own subject.
        let client = async_nats::ConnectOptions::with_nkey(
            std::fs::read_to_string(fixture("nats/node.nk")).unwrap().trim().into(),
        )
        .connect(url.as_str())
        .await
        .unwrap();
        let mut reports = client.subscribe("warden.enforcement.web1").await.unwrap();
        client.flush().await.unwrap();
        let now = chrono::Utc::now();
        let d = Decision {
            target: "198.51.100.90".parse().unwrap(),
            expires_at: now + chrono::Duration::seconds(600),
            incident: None,
            reason: "test".into(),
            origin: "node".into(),
            decided_at: now,
            fence: 0,
        };
        decisions.block(&d).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(30), reports.next()).await.expect("a report").unwrap();
        let r: Report = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(
            (r.host.as_str(), r.target.as_str(), format!("{:?}", r.outcome)),
            ("web1", "198.51.100.90", "Observed".into()),
            "{r:?}"
        );

        // And nothing else.
        let web1 = async_nats::ConnectOptions::with_user_and_password("web1".into(), "web1-secret".into())
            .connect(url.as_str())
            .await
            .unwrap();
        let web1_js = async_nats::jetstream::new(web1);
        let forged = web1_js.publish("warden.logs.web2.auth", "forged".into()).await;
        let stored = match forged {
            Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack).await.ok().and_then(Result::ok),
            Err(_) => None,
        };
        assert!(stored.is_none(), "web1 published web2's logs: {stored:?}");
        assert!(logs.direct_get_last_for_subject("warden.logs.web2.auth").await.is_err(), "nothing stored for web2");
        let web1_logs = web1_js.get_stream("WARDEN_LOGS").await.unwrap();
        assert!(web1_logs.direct_get_last_for_subject("warden.logs.web1.auth").await.is_ok(), "its own last batch");
        let by_seq = tokio::time::timeout(Duration::from_secs(3), web1_logs.direct_get(1)).await;
        assert!(!matches!(by_seq, Ok(Ok(_))), "web1 read a message by sequence");
        let consumer = tokio::time::timeout(
            Duration::from_secs(3),
            web1_logs.create_consumer(async_nats::jetstream::consumer::pull::Config::default()),
        )
        .await;
        assert!(!matches!(consumer, Ok(Ok(_))), "web1 made a consumer on the logs");
        let put = match web1_js.get_key_value("warden_decisions").await {
            Ok(kv) => tokio::time::timeout(Duration::from_secs(3), kv.put("ip.198.51.100.91", "{}".into()))
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        assert!(put.is_none(), "web1 wrote a decision");
        stop(shipper);
        stop(enforcer);
    });
    drop(server);
}

/// A token over TLS: `warden ship` trusts the server's certificate through `tls_ca`
/// and presents the token from `token_env`; a wrong token ships nothing.
#[test]
fn a_token_over_tls_ships_and_a_wrong_token_does_not() {
    const TEST: &str = "a_token_over_tls_ships_and_a_wrong_token_does_not";
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (fixture("nats/ca.crt"), fixture("nats/server.crt"), fixture("nats/server.key"));
    let args =
        ["--auth", "fleet-token", "--tls", "--tlscert", cert.to_str().unwrap(), "--tlskey", key.to_str().unwrap()];
    let Some(server) = Nats::start_with(TEST, tmp.path(), &args, &[]) else { return };
    let url = format!("tls://127.0.0.1:{}", server.port);
    let cluster = |var: &str| format!("[cluster]\nnats_url = \"{url}\"\ntoken_env = \"{var}\"\ntls_ca = {ca:?}\n");
    // As `warden` does at start (two TLS providers are compiled in).
    warden::admin::tls::install_default_provider();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let central = cluster_cfg(&format!("nats_url = \"{url}\"\ntls_ca = {ca:?}\n"));
        assert!(Cluster::connect(&central, "node", Duration::from_secs(2)).await.is_err(), "no token, no connection");
        let client = async_nats::ConnectOptions::with_token("fleet-token".into())
            .add_root_certificates(ca.clone())
            .require_tls(true)
            .connect(url.as_str())
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);

        let wrong_dir = tmp.path().join("wrong");
        std::fs::create_dir_all(&wrong_dir).unwrap();
        let log = wrong_dir.join("auth.log");
        std::fs::write(&log, failed("203.0.113.91", "root", 0)).unwrap();
        let wrong = as_web1(&wrong_dir, "ship", &ship_toml(&wrong_dir, &cluster("PATH"), &log));
        let right_dir = tmp.path().join("right");
        std::fs::create_dir_all(&right_dir).unwrap();
        let log = right_dir.join("auth.log");
        std::fs::write(&log, failed("203.0.113.92", "root", 0)).unwrap();
        let right = Command::new(BIN)
            .arg("ship")
            .arg("--config")
            .arg({
                let c = right_dir.join("ship.toml");
                std::fs::write(&c, ship_toml(&right_dir, &cluster("NATS_TOKEN"), &log)).unwrap();
                c
            })
            .env("NATS_TOKEN", "fleet-token")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(right_dir.join("ship.stderr")).unwrap())
            .spawn()
            .unwrap();
        let logs = loop {
            if let Ok(s) = js.get_stream("WARDEN_LOGS").await {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        shipped(&logs).await;
        let last = logs.direct_get_last_for_subject("warden.logs.web1.auth").await.unwrap();
        assert!(String::from_utf8_lossy(&last.payload).contains("203.0.113.92"), "the right token's lines");
        let info = logs.clone().info().await.unwrap().state.messages;
        assert_eq!(info, 1, "the wrong token shipped nothing");
        stop(wrong);
        stop(right);
    });
    drop(server);
}
