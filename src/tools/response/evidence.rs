//! `collect_evidence`: log lines, files and host state, each stored by the SHA-256 of
//! its content with its size, source, time and collector; custody events (collected,
//! exported, verified) go into the audit ledger; a bundle (an uncompressed tar archive
//! with a manifest) carries them to whoever needs them, and can be verified offline.
//!
//! Host state is read from `/proc` (processes; TCP/UDP sockets, listening and
//! established) and the utmp file (logged-in users), not from commands whose output
//! could be forged by a process on the host.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;

pub use crate::messages::EvidenceItem;

/// Why a piece of evidence cannot be stored, read back, exported or verified.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A logged line cannot be read again where it was read.
    #[error("cannot {action}: {source}")]
    Reread { action: &'static str, source: std::io::Error },
    #[error("manifest.json: {0}")]
    Manifest(serde_json::Error),
    /// The content is not what it must be (a changed hash, an oversized file, a damaged
    /// bundle).
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io { path: path.display().to_string(), source }
}

fn invalid(why: String) -> EvidenceError {
    EvidenceError::Invalid(why)
}

fn hex(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Stores `content` under `<dir>/<incident>/<sha256>` (written once; the hash names it)
/// and describes it.
pub fn store(
    dir: &Path,
    incident: uuid::Uuid,
    kind: &str,
    source: &str,
    content: &[u8],
) -> Result<EvidenceItem, EvidenceError> {
    use std::os::unix::fs::PermissionsExt;
    let sha256 = hex(content);
    let folder = dir.join(incident.to_string());
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let path = folder.join(&sha256);
    if !path.exists() {
        let tmp = folder.join(format!(".{sha256}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(content).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o400)).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
    }
    Ok(EvidenceItem {
        kind: kind.into(),
        source: crate::text::sanitize(source, 512),
        sha256: sha256.clone(),
        size: content.len() as u64,
        collected_at: Utc::now(),
        collector: format!("warden {} collect_evidence", env!("CARGO_PKG_VERSION")),
        name: sha256,
    })
}

/// The longest line [`reread_line`] reads back.
const REREAD_MAX: usize = 1 << 20;

/// Reads back the line a finding points at (`file` at `offset`), decoded as the tailer
/// decodes it, and checks it against the hash taken when it was read. `Err` says why
/// it cannot be given: unreadable, or changed since (rotated and rewritten, truncated).
pub fn reread_line(r: &crate::messages::EvidenceRef) -> Result<String, EvidenceError> {
    use std::io::{BufRead, Seek, SeekFrom};
    let f = std::fs::File::open(&*r.file).map_err(|source| EvidenceError::Reread { action: "open", source })?;
    let mut f = std::io::BufReader::new(f);
    f.seek(SeekFrom::Start(r.offset)).map_err(|source| EvidenceError::Reread { action: "seek", source })?;
    let mut line = Vec::new();
    f.by_ref()
        .take(REREAD_MAX as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|source| EvidenceError::Reread { action: "read", source })?;
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line).into_owned();
    if <[u8; 32]>::from(sha2::Sha256::digest(text.as_bytes())) != r.sha256 {
        return Err(invalid("the file no longer holds that line there (hash differs)".into()));
    }
    Ok(text)
}

/// Copies a named file into the store (regular files only, at most `max` bytes).
pub fn collect_file(dir: &Path, incident: uuid::Uuid, path: &Path, max: u64) -> Result<EvidenceItem, EvidenceError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if !meta.is_file() {
        return Err(invalid(format!("{} is not a regular file", path.display())));
    }
    if meta.len() > max {
        return Err(invalid(format!("{} is {} bytes, over the {max}-byte limit", path.display(), meta.len())));
    }
    let mut content = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path).and_then(|f| f.take(max).read_to_end(&mut content)).map_err(io(path))?;
    store(dir, incident, "file", &path.display().to_string(), &content)
}

/// One process, from `/proc/PID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub start_time: u64,
    pub exe: Option<String>,
    pub cmdline: String,
}

/// One socket, from `/proc/net/{tcp,tcp6,udp,udp6}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketInfo {
    pub proto: String,
    pub local: String,
    pub remote: String,
    /// `listen`, `established`, … (TCP), `udp`.
    pub state: String,
    pub uid: u32,
    pub inode: u64,
}

/// One logged-in session, from utmp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub line: String,
    pub host: String,
    pub pid: i32,
    pub since: Option<DateTime<Utc>>,
}

/// The host's state at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSnapshot {
    pub taken_at: DateTime<Utc>,
    pub processes: Vec<ProcessInfo>,
    pub sockets: Vec<SocketInfo>,
    pub sessions: Vec<Session>,
    /// What could not be read (a container without utmp, a process gone meanwhile).
    pub notes: Vec<String>,
}

fn processes() -> Vec<ProcessInfo> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse().ok())
            .unwrap_or(u32::MAX);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim().to_string())
            .unwrap_or_default();
        out.push(ProcessInfo {
            pid,
            ppid: f.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
            uid,
            start_time: f.get(19).and_then(|p| p.parse().ok()).unwrap_or(0),
            exe: std::fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| p.display().to_string()),
            cmdline: crate::text::sanitize(&cmdline, 1024),
        });
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// `0100007F:1F90` (little-endian words) → `127.0.0.1:8080`.
pub fn proc_addr(s: &str) -> Option<String> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(a, 16).ok()?.swap_bytes())),
        32 => {
            let mut b = [0u8; 16];
            for (i, chunk) in (0..4).map(|i| &a[i * 8..i * 8 + 8]).enumerate() {
                b[i * 4..i * 4 + 4].copy_from_slice(&u32::from_str_radix(chunk, 16).ok()?.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        v4 => format!("{v4}:{port}"),
    })
}

/// Parses one `/proc/net/{tcp,udp}[6]` table.
pub fn parse_sockets(proto: &str, text: &str) -> Vec<SocketInfo> {
    let states = [
        "",
        "established",
        "syn_sent",
        "syn_recv",
        "fin_wait1",
        "fin_wait2",
        "time_wait",
        "close",
        "close_wait",
        "last_ack",
        "listen",
        "closing",
    ];
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let st = u8::from_str_radix(f.get(3)?, 16).ok()?;
            Some(SocketInfo {
                proto: proto.into(),
                local: proc_addr(f.get(1)?)?,
                remote: proc_addr(f.get(2)?)?,
                state: if proto.starts_with("udp") {
                    "udp".into()
                } else {
                    states.get(st as usize).copied().unwrap_or("unknown").into()
                },
                uid: f.get(7)?.parse().ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// Size of a glibc `struct utmp` on 64-bit Linux.
pub const UTMP_RECORD: usize = 384;

/// Logged-in sessions (`USER_PROCESS` records) of a utmp file's content.
pub fn parse_utmp(bytes: &[u8]) -> Vec<Session> {
    let cstr = |b: &[u8]| {
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        crate::text::sanitize(&String::from_utf8_lossy(&b[..end]), 256)
    };
    bytes
        .chunks_exact(UTMP_RECORD)
        .filter(|r| i32::from_ne_bytes([r[0], r[1], r[2], r[3]]) == 7)
        .map(|r| {
            let secs = i32::from_ne_bytes([r[340], r[341], r[342], r[343]]);
            Session {
                pid: i32::from_ne_bytes([r[4], r[5], r[6], r[7]]),
                line: cstr(&r[8..40]),
                user: cstr(&r[44..76]),
                host: cstr(&r[76..332]),
                since: DateTime::from_timestamp(secs as i64, 0),
            }
        })
        .collect()
}

/// Reads processes, sockets and sessions now.
pub fn snapshot() -> HostSnapshot {
    let mut notes = Vec::new();
    let mut sockets = Vec::new();
    for proto in ["tcp", "tcp6", "udp", "udp6"] {
        match std::fs::read_to_string(format!("/proc/net/{proto}")) {
            Ok(t) => sockets.extend(parse_sockets(proto, &t)),
            Err(e) => notes.push(format!("/proc/net/{proto}: {e}")),
        }
    }
    // Only what matters: listening sockets and connections with a peer.
    sockets.retain(|s| s.state == "listen" || s.state == "established" || s.state == "udp");
    let sessions = ["/run/utmp", "/var/run/utmp"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .map(|b| parse_utmp(&b))
        .unwrap_or_else(|| {
            notes.push("no utmp file: logged-in users unknown".into());
            Vec::new()
        });
    HostSnapshot { taken_at: Utc::now(), processes: processes(), sockets, sessions, notes }
}

/// The manifest of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub incident: uuid::Uuid,
    pub exported_at: DateTime<Utc>,
    pub exported_by: String,
    pub items: Vec<EvidenceItem>,
}

/// Writes a bundle: an uncompressed POSIX tar with `manifest.json` then every item by
/// name. Returns the SHA-256 of the bundle.
pub fn export(dir: &Path, manifest: &Manifest, out: &Path) -> Result<String, EvidenceError> {
    let mut tar = Vec::new();
    let m = serde_json::to_vec_pretty(manifest).map_err(EvidenceError::Manifest)?;
    tar_entry(&mut tar, "manifest.json", &m)?;
    for item in &manifest.items {
        let path = dir.join(manifest.incident.to_string()).join(&item.name);
        let content = std::fs::read(&path).map_err(io(&path))?;
        if hex(&content) != item.sha256 {
            return Err(invalid(format!("{} no longer has the hash it was collected with", path.display())));
        }
        tar_entry(&mut tar, &format!("items/{}", item.name), &content)?;
    }
    tar.extend(std::iter::repeat_n(0u8, 1024));
    std::fs::write(out, &tar).map_err(io(out))?;
    Ok(hex(&tar))
}

/// What verifying a bundle found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub ok: bool,
    pub items: usize,
    pub problems: Vec<String>,
    pub manifest: Option<Manifest>,
}

/// Checks a bundle: every item the manifest lists is there with its size and hash, and
/// nothing else is.
pub fn verify(bundle: &Path) -> Result<Verification, EvidenceError> {
    let bytes = std::fs::read(bundle).map_err(io(bundle))?;
    let entries = tar_read(&bytes)?;
    let mut problems = Vec::new();
    let Some((_, m)) = entries.iter().find(|(n, _)| n == "manifest.json") else {
        return Ok(Verification { ok: false, items: 0, problems: vec!["no manifest.json".into()], manifest: None });
    };
    let manifest: Manifest = serde_json::from_slice(m).map_err(EvidenceError::Manifest)?;
    for item in &manifest.items {
        match entries.iter().find(|(n, _)| *n == format!("items/{}", item.name)) {
            None => problems.push(format!("{} is missing", item.name)),
            Some((_, c)) if c.len() as u64 != item.size => {
                problems.push(format!("{}: {} bytes, the manifest says {}", item.name, c.len(), item.size))
            }
            Some((_, c)) if hex(c) != item.sha256 => {
                problems.push(format!("{}: content does not match its SHA-256", item.name))
            }
            Some(_) => {}
        }
    }
    for (n, _) in &entries {
        if n != "manifest.json" && !manifest.items.iter().any(|i| *n == format!("items/{}", i.name)) {
            problems.push(format!("{n} is not in the manifest"));
        }
    }
    Ok(Verification { ok: problems.is_empty(), items: manifest.items.len(), problems, manifest: Some(manifest) })
}

fn tar_entry(out: &mut Vec<u8>, name: &str, content: &[u8]) -> Result<(), EvidenceError> {
    if name.len() > 99 {
        return Err(invalid(format!("name too long for a tar header: {name}")));
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |v: u64, width: usize| format!("{v:0w$o}\0", w = width - 1);
    h[100..108].copy_from_slice(octal(0o400, 8).as_bytes());
    h[108..116].copy_from_slice(octal(0, 8).as_bytes());
    h[116..124].copy_from_slice(octal(0, 8).as_bytes());
    h[124..136].copy_from_slice(octal(content.len() as u64, 12).as_bytes());
    h[136..148].copy_from_slice(octal(Utc::now().timestamp().max(0) as u64, 12).as_bytes());
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| *b as u64).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0u8, (512 - content.len() % 512) % 512));
    Ok(())
}

/// Reads a tar archive written by [`export`] (regular entries, ustar headers, checked
/// checksums).
pub fn tar_read(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, EvidenceError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 512 <= bytes.len() {
        let h = &bytes[pos..pos + 512];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let field =
            |a: usize, b: usize| String::from_utf8_lossy(&h[a..b]).trim_matches(|c| c == '\0' || c == ' ').to_string();
        let size = u64::from_str_radix(&field(124, 136), 8)
            .map_err(|_| invalid(format!("bad size in the header at {pos}")))?;
        let stored =
            u64::from_str_radix(&field(148, 156), 8).map_err(|_| invalid(format!("bad checksum field at {pos}")))?;
        let sum: u64 = h.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as u64 }).sum();
        if sum != stored {
            return Err(invalid(format!("the header at {pos} is damaged (checksum)")));
        }
        let name = field(0, 100);
        let start = pos + 512;
        let end = start
            .checked_add(size as usize)
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| invalid("the archive is cut short".into()))?;
        out.push((name, bytes[start..end].to_vec()));
        pos = start + (size as usize).div_ceil(512) * 512;
    }
    Ok(out)
}

/// Where evidence is kept.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("evidence")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_tables_and_utmp_are_decoded() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1\n   1: 0200000A:0016 0500710A:C350 01 00000000:00000000 00:00000000 00000000  1000        0 777 1\n";
        let s = parse_sockets("tcp", tcp);
        assert_eq!((s[0].local.as_str(), s[0].state.as_str(), s[0].inode), ("127.0.0.1:8080", "listen", 12345));
        assert_eq!(
            (s[1].local.as_str(), s[1].remote.as_str(), s[1].state.as_str()),
            ("10.0.0.2:22", "10.113.0.5:50000", "established")
        );
        assert_eq!(proc_addr("00000000000000000000000001000000:0050").unwrap(), "[::1]:80");
        let mut rec = vec![0u8; UTMP_RECORD];
        rec[0..4].copy_from_slice(&7i32.to_ne_bytes());
        rec[4..8].copy_from_slice(&4242i32.to_ne_bytes());
        rec[8..13].copy_from_slice(b"pts/0");
        rec[44..49].copy_from_slice(b"alice");
        rec[76..87].copy_from_slice(b"203.0.113.9");
        rec[340..344].copy_from_slice(&1_772_409_600i32.to_ne_bytes());
        let mut dead = vec![0u8; UTMP_RECORD];
        dead[0..4].copy_from_slice(&8i32.to_ne_bytes());
        let sessions = parse_utmp(&[rec, dead].concat());
        assert_eq!(sessions.len(), 1);
        assert_eq!(
            (sessions[0].user.as_str(), sessions[0].host.as_str(), sessions[0].pid),
            ("alice", "203.0.113.9", 4242)
        );
        let snap = snapshot();
        assert!(snap.processes.iter().any(|p| p.pid == std::process::id() as i32));
    }

    #[test]
    fn bundles_round_trip_and_tampering_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let inc = uuid::Uuid::new_v4();
        let a =
            store(dir.path(), inc, "log_lines", "web1 sshd", b"Failed password for root from 203.0.113.9\n").unwrap();
        let f = dir.path().join("dropper.sh");
        std::fs::write(&f, b"#!/bin/sh\n").unwrap();
        let b = collect_file(dir.path(), inc, &f, 1 << 20).unwrap();
        assert_eq!(b.sha256, hex(b"#!/bin/sh\n"));
        let manifest = Manifest { incident: inc, exported_at: Utc::now(), exported_by: "t".into(), items: vec![a, b] };
        let out = dir.path().join("bundle.tar");
        export(dir.path(), &manifest, &out).unwrap();
        let v = verify(&out).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.items, 2);
        // One byte changed in an item's content: named, not a crash.
        let mut bytes = std::fs::read(&out).unwrap();
        let at = bytes.windows(9).position(|w| w == b"#!/bin/sh").unwrap();
        bytes[at + 2] = b'X';
        std::fs::write(&out, &bytes).unwrap();
        let v = verify(&out).unwrap();
        assert!(!v.ok && v.problems[0].contains("does not match its SHA-256"), "{v:?}");
        std::fs::write(&out, &bytes[..700]).unwrap();
        assert!(verify(&out).is_err());
        assert!(collect_file(dir.path(), inc, Path::new("/proc"), 10).is_err());
    }
}
