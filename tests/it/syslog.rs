//! The syslog source on real sockets (127.0.0.1): RFC 5424 and RFC 3164 over UDP, and
//! TCP with octet-counting and newline framing. The host in each message's header
//! becomes the finding's host.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};

use crate::support::*;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rfc5424(host: &str, ip: &str, i: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::seconds(60 - i);
    format!(
        "<38>1 {} {host} sshd {} - - Failed password for root from {ip} port {} ssh2",
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        4000 + i,
        50000 + i
    )
}

fn rfc3164(host: &str, ip: &str, i: i64) -> String {
    let t = chrono::Local::now() - chrono::Duration::seconds(60 - i);
    format!(
        "<38>{} {host} sshd[{}]: Failed password for admin from {ip} port {} ssh2",
        t.format("%b %e %H:%M:%S"),
        4000 + i,
        50000 + i
    )
}

#[test]
fn syslog_over_udp_and_tcp_feeds_detection_with_the_senders_host() {
    let tmp = tempfile::tempdir().unwrap();
    let (udp, tcp) = (free_udp_port(), free_port());
    let sources = format!(
        "[[sources]]\nname = \"net-udp\"\nkind = \"syslog-udp\"\nlisten = \"127.0.0.1:{udp}\"\nformat = \"auth\"\n\
         [[sources]]\nname = \"net-tcp\"\nkind = \"syslog-tcp\"\nlisten = \"127.0.0.1:{tcp}\"\nformat = \"auth\"\n"
    );
    let d = Daemon::start(tmp.path(), &sources, "", None);

    // UDP: three RFC 5424 and two RFC 3164 messages from web1, plus garbage.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..3 {
        sock.send_to(rfc5424("web1", "203.0.113.61", i).as_bytes(), ("127.0.0.1", udp)).unwrap();
    }
    for i in 3..5 {
        sock.send_to(rfc3164("web1", "203.0.113.61", i).as_bytes(), ("127.0.0.1", udp)).unwrap();
    }
    sock.send_to(b"not syslog at all \xff", ("127.0.0.1", udp)).unwrap();

    // TCP, octet counting (RFC 6587), written in awkward pieces.
    let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let framed: String =
        (0..5).map(|i| rfc5424("db1", "203.0.113.62", i)).map(|m| format!("{} {m}", m.len())).collect();
    for piece in framed.as_bytes().chunks(37) {
        s.write_all(piece).unwrap();
        s.flush().unwrap();
    }
    // TCP, newline framing, on another connection.
    let mut s2 = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let lines: String = (0..5).map(|i| rfc3164("mail1", "203.0.113.63", i) + "\n").collect();
    s2.write_all(lines.as_bytes()).unwrap();
    drop(s2);

    for (ip, host) in [("203.0.113.61", "web1"), ("203.0.113.62", "db1"), ("203.0.113.63", "mail1")] {
        let inc = eventually(20, &format!("incident for {ip}"), || incident_for(&d.incidents(), ip).cloned());
        assert_eq!(inc["findings"][0]["host"], host, "{inc:#}");
        assert_eq!(inc["findings"][0]["event_count"], 5);
    }
    eventually(10, "garbage counted", || {
        (d.metric("warden_lines_unparsed_total{source=\"net-udp\"}").unwrap_or(0) >= 1).then_some(())
    });
    drop(s);
}

#[test]
fn a_syslog_port_in_use_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cfg = tmp.path().join("w.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:{}\"\n[[sources]]\nname = \"n\"\nkind = \"syslog-tcp\"\nlisten = \"127.0.0.1:{port}\"\n",
            tmp.path().join("d").display().to_string(),
            free_port()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BIN).arg("run").arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}/tcp")), "{err}");
}

/// A TCP connection to `port` from the loopback address `from` (127.0.0.0/8 is all ours).
fn connect_from(from: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let stream = s.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap();
        stream.into_std().unwrap()
    })
}

/// Whether the server closed the connection (rather than leaving it open).
fn closed_by_server(s: &mut TcpStream) -> bool {
    use std::io::Read;
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    match s.read(&mut [0u8; 16]) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Anyone who reaches the port used to be able to hold every connection slot with idle
/// sockets, locking real senders out for good. Now one sender gets only its share, and
/// when the listener is full an idle connection gives way to a newcomer.
#[test]
fn idle_connections_cannot_lock_real_senders_out() {
    let tmp = tempfile::tempdir().unwrap();
    let tcp = free_port();
    let sources = format!(
        "[[sources]]\nname = \"net-tcp\"\nkind = \"syslog-tcp\"\nlisten = \"127.0.0.1:{tcp}\"\nformat = \"auth\"\n\
         max_connections = 6\nmax_connections_per_peer = 3\nidle_timeout_secs = 600\n"
    );
    let d = Daemon::start(tmp.path(), &sources, "", None);
    let mut idle: Vec<TcpStream> = Vec::new();
    for from in ["127.0.0.2", "127.0.0.3"] {
        for _ in 0..3 {
            idle.push(connect_from(from, tcp));
        }
    }
    let mut fourth = connect_from("127.0.0.2", tcp);
    assert!(closed_by_server(&mut fourth), "a sender's connections beyond its share are refused");
    eventually(20, "refusal counted", || {
        (d.metric("warden_syslog_refused_total{source=\"net-tcp\"}").unwrap_or(0) >= 1).then_some(())
    });
    // Once the squatters have been idle a while, a real sender still gets in.
    std::thread::sleep(std::time::Duration::from_secs(warden::config::EVICTABLE_IDLE_SECS + 1));
    let mut real = connect_from("127.0.0.9", tcp);
    let lines: String = (0..5).map(|i| rfc3164("web7", "203.0.113.64", i) + "\n").collect();
    real.write_all(lines.as_bytes()).unwrap();
    let inc = eventually(30, "incident from the real sender", || incident_for(&d.incidents(), "203.0.113.64").cloned());
    assert_eq!(inc["findings"][0]["host"], "web7");
    let closed_now = |s: &TcpStream| {
        use std::io::Read;
        s.set_nonblocking(true).unwrap();
        match (&*s).read(&mut [0u8; 16]) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    };
    assert_eq!(idle.iter().filter(|s| closed_now(s)).count(), 1, "exactly one idle connection made room");
    assert!(d.metric("warden_syslog_idle_closed_total{source=\"net-tcp\"}").unwrap_or(0) >= 1);
}

#[test]
fn a_syslog_connection_that_sends_nothing_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let tcp = free_port();
    let sources = format!(
        "[[sources]]\nname = \"net-tcp\"\nkind = \"syslog-tcp\"\nlisten = \"127.0.0.1:{tcp}\"\nidle_timeout_secs = 1\n"
    );
    let d = Daemon::start(tmp.path(), &sources, "", None);
    let mut s = connect_from("127.0.0.4", tcp);
    // Bytes that never make a message do not count as activity.
    s.write_all(b"<38>Nov 30 12:00:00 h sshd[1]: no end").unwrap();
    assert!(closed_by_server(&mut s), "an idle connection is closed by the server");
    eventually(20, "idle close counted", || {
        (d.metric("warden_syslog_idle_closed_total{source=\"net-tcp\"}").unwrap_or(0) >= 1).then_some(())
    });
}
