//! The Linux audit log (`/var/log/audit/audit.log`, or auditd's lines through syslog):
//! sshd's failed authentications as SELinux systems record them (fail2ban's
//! `selinux-ssh`): `type=USER_AUTH|USER_ERR … exe="/usr/sbin/sshd" … addr=ADDR
//! terminal=ssh res=failed`. `USER_LOGIN` repeats them and is not counted. Untrusted
//! values (the account) are hex-encoded by auditd when they hold spaces or quotes, so
//! every `key=value` is one word.

use chrono::{DateTime, Utc};

use super::{client, event, field};
use crate::messages::{AuthEvent, AuthEventKind as K, Service};

/// `type=T msg=audit(EPOCH.MS:SERIAL): …`: the record's type, time and body.
pub fn record(line: &str) -> Option<(&str, DateTime<Utc>, &str)> {
    let rest = line.strip_prefix("type=")?;
    let (kind, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("msg=audit(")?;
    let (stamp, body) = rest.split_once("): ")?;
    let (epoch, _serial) = stamp.split_once(':')?;
    let time = super::json::epoch(epoch.parse().ok()?)?;
    Some((kind, time, body))
}

/// An sshd authentication failure in an audit record's body.
pub fn sshd_failure(kind: &str, body: &str) -> Option<AuthEvent> {
    if kind != "USER_AUTH" && kind != "USER_ERR" {
        return None;
    }
    let sshd = field(body, "exe=").is_some_and(|e| e.trim_matches('"').ends_with("/sshd"))
        && field(body, "terminal=") == Some("ssh")
        && field(body, "res=").is_some_and(|r| r.trim_end_matches('\'') == "failed");
    if !sshd {
        return None;
    }
    let addr = field(body, "addr=").filter(|a| *a != "?")?;
    let acct = field(body, "acct=").map(|a| a.trim_matches('"')).filter(|a| *a != "?");
    let user = acct
        .map(|a| if a.len() % 2 == 0 && a.bytes().all(|b| b.is_ascii_hexdigit()) { unhex(a) } else { a.to_string() });
    Some(event(K::Failure, Service::Ssh, Some(client(addr)?), user.as_deref()))
}

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selinux_sshd_failures() {
        let l = "type=USER_AUTH msg=audit(1383116263.000:603): pid=12887 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=password acct=\"dan\" exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.100 terminal=ssh res=failed'";
        let (kind, time, body) = record(l).unwrap();
        assert_eq!((kind, time.to_rfc3339().as_str()), ("USER_AUTH", "2013-10-30T06:57:43+00:00"));
        let ev = sshd_failure(kind, body).unwrap();
        assert_eq!(
            (ev.kind, ev.src_ip.unwrap().to_string(), ev.user.as_deref()),
            (K::Failure, "192.0.2.100".into(), Some("dan"))
        );
        let l = "type=USER_ERR msg=audit(1373330717.000:4070): user pid=12000 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=PAM:bad_ident acct=\"?\" exe=\"/usr/sbin/sshd\" hostname=192.0.2.187 addr=192.0.2.187 terminal=ssh res=failed'";
        let (kind, _, body) = record(l).unwrap();
        assert_eq!(sshd_failure(kind, body).unwrap().user, None);
        // USER_LOGIN repeats the failures; a hex-encoded account is decoded.
        let l = "type=USER_LOGIN msg=audit(1373330717.000:4073): user pid=12000 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=login acct=28696E76616C6964207573657229 exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.187 terminal=ssh res=failed'";
        let (kind, _, body) = record(l).unwrap();
        assert!(sshd_failure(kind, body).is_none());
        assert_eq!(unhex("28696E76616C6964207573657229"), "(invalid user)");
        // A success, and another program, are not failures.
        let ok = "type=USER_AUTH msg=audit(1.0:1): pid=1 uid=0 msg='op=password acct=\"dan\" exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.1 terminal=ssh res=success'";
        let (kind, _, body) = record(ok).unwrap();
        assert!(sshd_failure(kind, body).is_none());
        assert!(record("type=SYSCALL msg=audit(x): a").is_none());
    }
}
