//! The open syslog TCP connections of one listener, and who may open another.
//!
//! Anyone who can reach the port can open connections, so admission is bounded three
//! ways: per sender (an IPv4 address, or an IPv6 /64 — an attacker has a whole /64 for
//! free), in total, and in time (a connection that sends no complete message for the
//! idle timeout is closed by its task). When the listener is full, the connection idle
//! the longest gives way to the new one if it has been idle at least
//! [`EVICTABLE_IDLE_SECS`]: idle connections cannot lock real senders out. Activity is a
//! complete message, not a byte: trickling bytes keeps nothing open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::{EVICTABLE_IDLE_SECS, SyslogLimits};

/// A sender as the per-sender limit counts it.
fn sender(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

struct Conn {
    sender: IpAddr,
    last: Instant,
    close: Arc<Notify>,
}

/// What became of a new connection.
pub enum Admission {
    /// Open it; it must stop when `close` is notified (it was evicted). `evicted`: an
    /// idle connection was closed to make room.
    Admitted { id: u64, close: Arc<Notify>, evicted: bool },
    /// Its sender has as many connections open as it may.
    SenderFull,
    /// The listener is full of connections that are not idle.
    Full,
}

pub struct Conns {
    limits: SyslogLimits,
    next: u64,
    open: HashMap<u64, Conn>,
}

impl Conns {
    pub fn new(limits: SyslogLimits) -> Conns {
        Conns { limits, next: 0, open: HashMap::new() }
    }

    pub fn admit(&mut self, peer: IpAddr, now: Instant) -> Admission {
        let who = sender(peer);
        if self.open.values().filter(|c| c.sender == who).count() >= self.limits.max_per_peer {
            return Admission::SenderFull;
        }
        let mut evicted = false;
        if self.open.len() >= self.limits.max_connections {
            let idlest = self.open.iter().min_by_key(|(_, c)| c.last).map(|(id, c)| (*id, c.last));
            match idlest {
                Some((id, last)) if now.saturating_duration_since(last) >= Duration::from_secs(EVICTABLE_IDLE_SECS) => {
                    if let Some(c) = self.open.remove(&id) {
                        c.close.notify_one();
                    }
                    evicted = true;
                }
                _ => return Admission::Full,
            }
        }
        let id = self.next;
        self.next += 1;
        let close = Arc::new(Notify::new());
        self.open.insert(id, Conn { sender: who, last: now, close: close.clone() });
        Admission::Admitted { id, close, evicted }
    }

    /// A complete message arrived on the connection.
    pub fn touch(&mut self, id: u64, now: Instant) {
        if let Some(c) = self.open.get_mut(&id) {
            c.last = now;
        }
    }

    pub fn remove(&mut self, id: u64) {
        self.open.remove(&id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: usize) -> SyslogLimits {
        SyslogLimits {
            idle_timeout: Duration::from_secs(300),
            max_connections: total,
            max_per_peer: per,
            recv_buffer_bytes: 1 << 20,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admitted(a: Admission) -> (u64, Arc<Notify>, bool) {
        match a {
            Admission::Admitted { id, close, evicted } => (id, close, evicted),
            Admission::SenderFull => panic!("refused: sender full"),
            Admission::Full => panic!("refused: full"),
        }
    }

    #[test]
    fn one_sender_cannot_take_more_than_its_share() {
        let t0 = Instant::now();
        let mut c = Conns::new(limits(100, 2));
        admitted(c.admit(ip("198.51.100.7"), t0));
        admitted(c.admit(ip("::ffff:198.51.100.7"), t0));
        assert!(matches!(c.admit(ip("198.51.100.7"), t0), Admission::SenderFull));
        // One IPv6 /64 is one sender.
        admitted(c.admit(ip("2001:db8:1:2::1"), t0));
        admitted(c.admit(ip("2001:db8:1:2:ffff::9"), t0));
        assert!(matches!(c.admit(ip("2001:db8:1:2::77"), t0), Admission::SenderFull));
        admitted(c.admit(ip("2001:db8:1:3::1"), t0));
    }

    #[test]
    fn when_full_the_idlest_connection_gives_way_if_it_is_idle() {
        let t0 = Instant::now();
        let mut c = Conns::new(limits(3, 3));
        let (a, a_close, _) = admitted(c.admit(ip("192.0.2.1"), t0));
        let (b, _, _) = admitted(c.admit(ip("192.0.2.2"), t0));
        let (d, _, _) = admitted(c.admit(ip("192.0.2.3"), t0));
        // Everyone is busy: a newcomer is refused rather than cutting a live sender off.
        assert!(matches!(c.admit(ip("192.0.2.4"), t0 + Duration::from_secs(1)), Admission::Full));
        let later = t0 + Duration::from_secs(EVICTABLE_IDLE_SECS + 1);
        c.touch(b, later);
        c.touch(d, later);
        let (_, _, evicted) = admitted(c.admit(ip("192.0.2.4"), later));
        assert!(evicted, "the idle connection made room");
        assert_eq!(c.len(), 3);
        // The evicted connection's task is told to stop: a permit waits for it.
        let waiting = a_close.notified();
        tokio::pin!(waiting);
        assert!(waiting.as_mut().enable(), "closing was signalled");
        c.remove(a);
        assert_eq!(c.len(), 3, "removing an evicted connection again changes nothing");
    }
}
