//! Containment for real: nftables in throwaway network namespaces (a test thread and an
//! "attacker" thread each get their own, joined by a veth pair), a throwaway local
//! account, child processes. Needs root, `ip` and `nft`: under CI (`CI` set) their
//! absence is a failure, elsewhere the tests say SKIPPED.

use std::net::UdpSocket;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use warden::messages::ActionKind;
use warden::tools::ToolOutcome;
use warden::tools::response::Protected;
use warden::tools::response::actions::{ContainPolicy, plan};
use warden::tools::response::contain_threat::{Executed, execute_plan};

fn skip(test: &str, why: &str) -> bool {
    assert!(std::env::var_os("CI").is_none(), "CI must run {test}: {why}");
    eprintln!("SKIPPED {test}: {why}");
    true
}

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

fn sh(argv: &[&str]) {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Moves the calling thread into a new, empty network namespace.
fn new_netns() -> std::io::Result<()> {
    // SAFETY: only the network namespace is unshared (not the file table), which
    // affects this thread and the processes it starts, nothing shared with others.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }.map_err(std::io::Error::from)
}

fn run(policy: &ContainPolicy, kind: ActionKind, target: &str, ttl: u64) -> String {
    let p = plan(kind, target, ttl, policy).unwrap_or_else(|e| panic!("{kind} {target}: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match rt.block_on(execute_plan(&p, policy)) {
        ToolOutcome::Succeeded(Executed { output, .. }) => output,
        other => panic!("{kind} {target}: {}", other.summary()),
    }
}

/// The attacker's side: a thread in its own namespace, holding 10.9.0.2 and 10.9.0.3,
/// that sends one UDP datagram from the address it is told.
struct Attacker {
    send: mpsc::Sender<Option<&'static str>>,
}

impl Attacker {
    fn start() -> Attacker {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let (send, rx) = mpsc::channel::<Option<&'static str>>();
        std::thread::spawn(move || {
            new_netns().unwrap();
            tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get()).unwrap();
            ready_rx.recv().unwrap();
            sh(&["ip", "link", "set", "lo", "up"]);
            sh(&["ip", "addr", "add", "10.9.0.2/24", "dev", "wv1"]);
            sh(&["ip", "addr", "add", "10.9.0.3/24", "dev", "wv1"]);
            sh(&["ip", "link", "set", "wv1", "up"]);
            while let Ok(Some(from)) = rx.recv() {
                let s = UdpSocket::bind((from, 0)).unwrap();
                let _ = s.send_to(from.as_bytes(), "10.9.0.1:9999");
            }
        });
        let tid = tid_rx.recv().unwrap();
        sh(&["ip", "link", "add", "wv0", "type", "veth", "peer", "name", "wv1"]);
        sh(&["ip", "link", "set", "wv1", "netns", &tid.to_string()]);
        sh(&["ip", "addr", "add", "10.9.0.1/24", "dev", "wv0"]);
        sh(&["ip", "link", "set", "wv0", "up"]);
        sh(&["ip", "link", "set", "lo", "up"]);
        ready_tx.send(()).unwrap();
        Attacker { send }
    }

    /// Whether a datagram sent from `from` arrives (ten tries, 300 ms each: the link
    /// may still be coming up, and a loaded machine schedules the sender late). A
    /// "does not arrive" is always checked next to one that does.
    fn reaches(&self, sock: &UdpSocket, from: &'static str) -> bool {
        let mut buf = [0u8; 64];
        for _ in 0..10 {
            self.send.send(Some(from)).unwrap();
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                if &buf[..n] == from.as_bytes() && peer.ip().to_string() == from {
                    return true;
                }
            }
        }
        false
    }
}

/// `block_ip` puts the address in Warden's set: its packets are dropped while another
/// address still passes; the set's timeout lifts the block; `unblock_ip` lifts it at
/// once; `isolate_host` leaves loopback and the management network reachable and cuts
/// everything else until `release_host`.
#[test]
fn nftables_block_ttl_unblock_and_isolation() {
    const TEST: &str = "nftables_block_ttl_unblock_and_isolation";
    if !root() && skip(TEST, "needs root for network namespaces") {
        return;
    }
    let handle = std::thread::spawn(|| {
        if let Err(e) = new_netns() {
            return Err(format!("cannot create a network namespace: {e}"));
        }
        if Command::new("nft").args(["list", "tables"]).output().map(|o| !o.status.success()).unwrap_or(true) {
            return Err("`nft` is not installed".into());
        }
        let attacker = Attacker::start();
        let sock = UdpSocket::bind("10.9.0.1:9999").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut policy = ContainPolicy::new(std::sync::Arc::new(Protected::new(&[])));
        policy.management = vec!["10.9.0.3/32".parse().unwrap()];
        assert!(attacker.reaches(&sock, "10.9.0.2") && attacker.reaches(&sock, "10.9.0.3"), "before any block");

        let out = run(&policy, ActionKind::BlockIp, "10.9.0.2", 8);
        assert!(out.contains("created table inet warden"), "{out}");
        assert!(!attacker.reaches(&sock, "10.9.0.2"), "blocked");
        assert!(attacker.reaches(&sock, "10.9.0.3"), "another address still passes");
        // The timeout (8 s) lifts it: polled, no timing assertion.
        crate::support::eventually(20, "the block to expire", || attacker.reaches(&sock, "10.9.0.2").then_some(()));

        run(&policy, ActionKind::BlockIp, "10.9.0.2", 3600);
        assert!(!attacker.reaches(&sock, "10.9.0.2"));
        run(&policy, ActionKind::UnblockIp, "10.9.0.2", 0);
        assert!(attacker.reaches(&sock, "10.9.0.2"), "unblocked");
        // Unblocking what is no longer blocked (expired, or undone) is not a failure.
        let out = run(&policy, ActionKind::UnblockIp, "10.9.0.2", 0);
        assert!(out.contains("nothing to do"), "{out}");

        run(&policy, ActionKind::IsolateHost, "local", 0);
        assert!(attacker.reaches(&sock, "10.9.0.3"), "the management network stays reachable");
        assert!(!attacker.reaches(&sock, "10.9.0.2"), "everything else is cut");
        let lo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let lo_rx = UdpSocket::bind("127.0.0.1:9998").unwrap();
        lo_rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        lo.send_to(b"lo", "127.0.0.1:9998").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(lo_rx.recv(&mut buf).ok(), Some(2), "loopback stays up");
        run(&policy, ActionKind::ReleaseHost, "local", 0);
        assert!(attacker.reaches(&sock, "10.9.0.2"), "released");
        let _ = attacker.send.send(None);
        Ok(())
    });
    if let Err(why) = handle.join().unwrap() {
        skip(TEST, &why);
    }
}

/// A throwaway local account: `disable_account` locks and expires it and ends its
/// processes; `enable_account` unlocks it.
#[test]
fn account_is_locked_then_unlocked() {
    const TEST: &str = "account_is_locked_then_unlocked";
    if !root() && skip(TEST, "needs root to create an account") {
        return;
    }
    if Command::new("useradd").arg("--help").output().is_err() {
        skip(TEST, "`useradd` is not installed");
        return;
    }
    let user = format!("wardent{}", std::process::id() % 100_000);
    sh(&["useradd", "--no-create-home", "--shell", "/bin/sh", &user]);
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("pkill").args(["--signal", "KILL", "--uid", &self.0]).status();
            let _ = Command::new("userdel").arg(&self.0).status();
        }
    }
    let _cleanup = Cleanup(user.clone());
    let shadow = |u: &str| -> (String, String) {
        let text = std::fs::read_to_string("/etc/shadow").unwrap();
        let line = text.lines().find(|l| l.starts_with(&format!("{u}:"))).unwrap().to_string();
        let f: Vec<&str> = line.split(':').collect();
        (f[1].to_string(), f[7].to_string())
    };
    // A process of the account's: ended by the disable.
    let mut child = Command::new("setpriv")
        .args(["--reuid", &user, "--regid", &user, "--clear-groups", "sleep", "300"])
        .spawn()
        .unwrap();
    let policy = ContainPolicy::new(std::sync::Arc::new(Protected::new(&[])));
    let out = run(&policy, ActionKind::DisableAccount, &user, 0);
    let (pw, expire) = shadow(&user);
    assert!(pw.starts_with('!'), "locked: {pw:?} ({out})");
    assert_eq!(expire, "1", "expired");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the account's process was ended");
    run(&policy, ActionKind::EnableAccount, &user, 0);
    let (pw, expire) = shadow(&user);
    assert!(!pw.starts_with('!') || pw == "!", "unlocked: {pw:?}");
    assert_eq!(expire, "", "no expiry");
    // root and a hostile name are refused whatever asks.
    assert!(plan(ActionKind::DisableAccount, "root", 0, &policy).unwrap_err().contains("protected"));
    assert!(plan(ActionKind::DisableAccount, &format!("{user}\nroot"), 0, &policy).is_err());
}

/// `kill_process` kills the process that was seen, and refuses one whose start time no
/// longer matches (a PID reused by another process).
#[test]
fn kill_process_checks_the_process_identity() {
    let policy = ContainPolicy::new(std::sync::Arc::new(Protected::new(&[])));
    let mut child = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = child.id() as i32;
    let p = plan(ActionKind::KillProcess, &pid.to_string(), 0, &policy).unwrap();
    assert!(p.target.starts_with(&format!("{pid}@")));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = rt.block_on(execute_plan(&p, &policy));
    assert!(matches!(out, ToolOutcome::Succeeded(_)), "{}", out.summary());
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed with SIGKILL");

    // A plan made for one process, carried out when the PID is another's: refused.
    let mut other = Command::new("sleep").arg("300").spawn().unwrap();
    let opid = other.id() as i32;
    let start = warden::tools::response::actions::process_start_time(opid).unwrap();
    let stale = format!("{opid}@{}", start + 1);
    let e = plan(ActionKind::KillProcess, &stale, 0, &policy).unwrap_err();
    assert!(e.contains("not the one that was seen"), "{e}");
    let mut p = plan(ActionKind::KillProcess, &opid.to_string(), 0, &policy).unwrap();
    if let Some(warden::tools::response::actions::Native::Kill { start_time, .. }) = p.native.as_mut() {
        *start_time += 1;
    }
    let out = rt.block_on(execute_plan(&p, &policy));
    assert!(matches!(&out, ToolOutcome::Denied(e) if e.contains("not the one that was seen")), "{}", out.summary());
    assert!(other.try_wait().unwrap().is_none(), "still running");
    other.kill().unwrap();
    let _ = other.wait();
}
