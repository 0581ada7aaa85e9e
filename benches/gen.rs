//! A deterministic generator of a realistic `auth.log` for the benchmarks: mostly
//! routine sshd/PAM/cron/sudo traffic, about 15 % attack lines (failed passwords,
//! invalid users, pre-auth probes) from a few hundred addresses.

use std::io::Write;

/// xorshift64*: deterministic and dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const USERS: [&str; 8] = ["root", "admin", "oracle", "test", "ubuntu", "git", "postgres", "deploy"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Writes `lines` lines starting on 1 March, 00:00, about 20 lines per second of log time.
pub fn generate(out: &mut impl Write, lines: u64, seed: u64) -> std::io::Result<u64> {
    let mut rng = Rng::new(seed);
    let mut attack = 0;
    for n in 0..lines {
        let secs = n / 20;
        let (day, rem) = (1 + secs / 86_400, secs % 86_400);
        let (month, day) = (2 + (day - 1) / 28, 1 + (day - 1) % 28);
        let ts = format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            MONTHS[month as usize % 12],
            day,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        );
        let pid = 1000 + rng.below(60_000);
        let roll = rng.below(100);
        if roll < 15 {
            attack += 1;
            let ip = format!("203.0.{}.{}", rng.below(4), 1 + rng.below(200));
            let user = USERS[rng.below(USERS.len() as u64) as usize];
            let port = 30_000 + rng.below(30_000);
            match rng.below(10) {
                0..=5 => writeln!(out, "{ts} web1 sshd[{pid}]: Failed password for {user} from {ip} port {port} ssh2")?,
                6 | 7 => writeln!(
                    out,
                    "{ts} web1 sshd[{pid}]: Failed password for invalid user {user}{port} from {ip} port {port} ssh2"
                )?,
                8 => writeln!(out, "{ts} web1 sshd[{pid}]: Invalid user {user}{port} from {ip} port {port}")?,
                _ => {
                    writeln!(out, "{ts} web1 sshd[{pid}]: Did not receive identification string from {ip} port {port}")?
                }
            }
        } else {
            let ip = format!("10.{}.{}.{}", rng.below(4), rng.below(250), 1 + rng.below(250));
            match rng.below(8) {
                0 => writeln!(
                    out,
                    "{ts} web1 sshd[{pid}]: Accepted publickey for deploy from {ip} port 51022 ssh2: ED25519 SHA256:q2kXh8e1YcN0o7sGd2Yb"
                )?,
                1 => writeln!(
                    out,
                    "{ts} web1 sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)"
                )?,
                2 => writeln!(out, "{ts} web1 sshd[{pid}]: pam_unix(sshd:session): session closed for user deploy")?,
                3 => writeln!(out, "{ts} web1 systemd-logind[512]: New session {pid} of user deploy.")?,
                4 => writeln!(
                    out,
                    "{ts} web1 CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"
                )?,
                5 => writeln!(
                    out,
                    "{ts} web1 sudo:   deploy : TTY=pts/0 ; PWD=/srv/app ; USER=root ; COMMAND=/usr/bin/systemctl restart app"
                )?,
                6 => writeln!(
                    out,
                    "{ts} web1 sshd[{pid}]: Received disconnect from {ip} port 51022:11: disconnected by user"
                )?,
                _ => writeln!(out, "{ts} web1 sshd[{pid}]: Connection closed by {ip} port 51022 [preauth]")?,
            }
        }
    }
    Ok(attack)
}
