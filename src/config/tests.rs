use super::*;

/// The admin API used to start silently on plain HTTP on any address it was given.
#[test]
fn an_admin_api_reachable_from_the_network_is_refused() {
    for listen in ["0.0.0.0:8720", "[::]:8720", "192.0.2.10:8720", "[::ffff:192.0.2.10]:8720"] {
        let e = Config::parse(&format!("[admin]\nlisten = \"{listen}\"\n"), "warden.toml").unwrap_err().to_string();
        assert!(e.contains("plain HTTP") && e.contains("tls_cert"), "{listen}: {e}");
        assert!(e.starts_with("warden.toml:2: "), "{e}");
    }
    for listen in ["127.0.0.1:8720", "127.0.0.2:1", "[::1]:8720", "[::ffff:127.0.0.1]:8720"] {
        assert!(Config::parse(&format!("[admin]\nlisten = \"{listen}\"\n"), "warden.toml").is_ok(), "{listen}");
    }
}

#[test]
fn embedded_default_parses() {
    let c = Config::parse(DEFAULT_CONFIG, "default").unwrap();
    assert_eq!(c.sources.len(), 1);
    assert_eq!(c.sources[0].path.as_deref(), Some(Path::new("/var/log/auth.log")));
    assert_eq!(c.sources[0].format, LogFormat::Auto);
    assert_eq!(c.response.mode, ResponseMode::Observe);
    assert!(c.admin.listen.ip().is_loopback());
    assert!(!c.testing.fault_injection);
}

#[test]
fn the_default_follows_the_host() {
    let on = |present: &'static str| move |p: &Path| p == Path::new(present);
    let debian = Config::parse(&default_config_for(on("/var/log/auth.log")), "d").unwrap();
    assert_eq!(debian.sources[0].path.as_deref(), Some(Path::new("/var/log/auth.log")));
    let rpm = Config::parse(&default_config_for(on("/var/log/secure")), "d").unwrap();
    assert_eq!(
        (rpm.sources[0].kind, rpm.sources[0].path.as_deref()),
        (SourceKind::File, Some(Path::new("/var/log/secure")))
    );
    let journal = Config::parse(&default_config_for(|_| false), "d").unwrap();
    let s = &journal.sources[0];
    assert_eq!(
        (s.kind, s.path.as_deref(), s.directory.as_deref(), s.format),
        (SourceKind::Journald, None, None, LogFormat::Auto)
    );
    assert_eq!(journal.response.mode, ResponseMode::Observe);
}

#[test]
fn journald_sources_are_checked() {
    let src = |extra: &str| format!("[[sources]]\nname = \"j\"\nkind = \"journald\"\n{extra}");
    let ok = Config::parse(
        &src("directory = \"/tmp/j\"\nmatches = [\"_SYSTEMD_UNIT=ssh.service\", \"+\", \"SYSLOG_IDENTIFIER=sshd\"]\n"),
        "w",
    )
    .unwrap();
    assert_eq!(ok.sources[0].matches.len(), 3);
    for (extra, says) in [
        ("path = \"/var/log/x\"\n", "not a `path`"),
        ("matches = [\"sshd\"]\n", "not `FIELD=value`"),
        ("matches = [\"_unit=x\"]\n", "not `FIELD=value`"),
    ] {
        let e = Config::parse(&src(extra), "w").unwrap_err().to_string();
        assert!(e.contains(says), "{extra}: {e}");
    }
    let e = Config::parse("[[sources]]\nname = \"f\"\nkind = \"file\"\npath = \"/x\"\ndirectory = \"/y\"\n", "w")
        .unwrap_err()
        .to_string();
    assert!(e.contains("for journald sources"), "{e}");
}

#[test]
fn unknown_key_is_an_error_with_its_line() {
    let text = "[admin]\nlisten = \"127.0.0.1:1\"\n\n[response]\nmode = \"observe\"\nbogus = 1\n";
    let e = Config::parse(text, "w.toml").unwrap_err().to_string();
    assert!(e.starts_with("w.toml:6: "), "{e}");
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn bad_mode_is_an_error() {
    let e = Config::parse("[response]\nmode = \"yolo\"\n", "w.toml").unwrap_err().to_string();
    assert!(e.starts_with("w.toml:2: "), "{e}");
}

#[test]
fn file_source_needs_a_path() {
    let e = Config::parse("[[sources]]\nname = \"a\"\nkind = \"file\"\n", "w.toml").unwrap_err().to_string();
    assert!(e.contains("without a `path`"), "{e}");
}

/// With TLS, any address; TLS settings that do not go together are refused.
#[test]
fn tls_opens_the_network_and_its_settings_are_checked() {
    let tls = "tls_cert = \"/etc/warden/cert.pem\"\ntls_key = \"/etc/warden/key.pem\"\n";
    let c = Config::parse(&format!("[admin]\nlisten = \"0.0.0.0:8720\"\n{tls}"), "w").unwrap();
    assert!(c.admin.tls() && c.admin.tls_client_ca.is_none());
    for (text, says) in [
        ("[admin]\ntls_cert = \"/c.pem\"\n", "without tls_key"),
        ("[admin]\ntls_key = \"/k.pem\"\n", "without tls_cert"),
        ("[admin]\ntls_client_ca = \"/ca.pem\"\n", "needs TLS"),
    ] {
        let e = Config::parse(text, "w").unwrap_err().to_string();
        assert!(e.contains(says) && e.starts_with("w:"), "{text}: {e}");
    }
}

/// Validation errors used to name neither the line nor the value.
#[test]
fn validation_errors_name_the_line_and_the_value() {
    let text = "[ingest]\nbatch_lines = 10\nmax_line_bytes = 100\n";
    let e = Config::parse(text, "w.toml").unwrap_err().to_string();
    assert_eq!(e, "w.toml:3: [ingest] max_line_bytes = 100 is below 256");
    let text = "[[sources]]\nname = \"a\"\nkind = \"stdin\"\n\n[[sources]]\nname = \"b\"\nkind = \"syslog-tcp\"\n\
                listen = \"127.0.0.1:1\"\nmax_connections = 0\n";
    let e = Config::parse(text, "w.toml").unwrap_err().to_string();
    assert!(e.starts_with("w.toml:9: ") && e.contains("max_connections = 0"), "{e}");
    let e = Config::parse("[[sources]]\nname = \"x\"\nkind = \"file\"\n", "w.toml").unwrap_err().to_string();
    assert!(e.starts_with("w.toml:3: "), "{e}");
}

/// `max_body_bytes = 0` and a network with host bits used to be accepted silently.
#[test]
fn values_that_cannot_be_meant_are_refused() {
    let e = Config::parse("[admin]\nmax_body_bytes = 0\n", "w").unwrap_err().to_string();
    assert!(e.starts_with("w:2: ") && e.contains("max_body_bytes = 0"), "{e}");
    let e = Config::parse("[response]\nprotected = [\"192.0.2.0/24\", \"10.0.0.1/8\"]\n", "w").unwrap_err().to_string();
    assert!(e.starts_with("w:2: ") && e.contains("`10.0.0.0/8`"), "{e}");
    let e = Config::parse("[response]\nmanagement = [\"2001:db8::1/32\"]\n", "w").unwrap_err().to_string();
    assert!(e.contains("2001:db8::/32"), "{e}");
    let c = Config::parse("[response]\nprotected = [\"10.0.0.0/8\", \"192.0.2.7\"]\n", "w").unwrap();
    assert_eq!(c.response.protected.iter().map(|n| n.to_string()).collect::<Vec<_>>(), ["10.0.0.0/8", "192.0.2.7/32"]);
}

/// The memory budget sizes the page cache and every in-memory table.
#[test]
fn the_memory_budget_sizes_the_cache_and_the_tables() {
    // 256 MiB: 160 once the process's own 96 are set aside.
    let c = Config::parse("[storage]\nmemory_budget_mb = 256\n", "w").unwrap();
    let m = c.storage.memory_shares();
    assert_eq!(m.cache_bytes, 10 << 20, "a sixteenth, below cache_mb = 32");
    assert_eq!((m.incidents_held, m.detector_addresses, m.correlation_groups), (1048, 5120, 5120));
    let d = Config::parse("", "w").unwrap().storage.memory_shares();
    assert_eq!((d.cache_bytes, d.detector_addresses, d.correlation_groups), (32 << 20, 17_408, 17_408));
    assert_eq!((m.network_keys, d.network_keys), (34_952, 118_838), "an eighth at 600 bytes a pair");
    // Below what Warden itself needs and a flood's headroom: refused, saying why.
    let e = Config::parse("[storage]\nmemory_budget_mb = 128\n", "w").unwrap_err().to_string();
    assert!(e.contains("memory_budget_mb = 128 is below 192"), "{e}");
}

/// A NATS source needs `[cluster]` and a subject below `warden.logs.`; `subject` is for
/// NATS sources only; each refusal names its line.
#[test]
fn nats_sources_are_checked() {
    let cluster = "[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\n";
    let ok = Config::parse(&format!("{cluster}[[sources]]\nname = \"fleet\"\nkind = \"nats\"\n"), "w.toml").unwrap();
    assert_eq!((ok.sources[0].kind, ok.sources[0].subject.as_deref()), (SourceKind::Nats, None));
    let narrow = format!("{cluster}[[sources]]\nname = \"web\"\nkind = \"nats\"\nsubject = \"warden.logs.*.nginx\"\n");
    assert!(Config::parse(&narrow, "w.toml").is_ok());
    for (text, says) in [
        ("[[sources]]\nname = \"fleet\"\nkind = \"nats\"\n".to_string(), "needs a [cluster]"),
        (format!("{cluster}[[sources]]\nname = \"fleet\"\nkind = \"nats\"\nsubject = \"other.>\"\n"), "not below"),
        (format!("{cluster}[[sources]]\nname = \"fleet\"\nkind = \"nats\"\nsubject = \"warden.logs.\"\n"), "not below"),
        (
            format!(
                "{cluster}[[sources]]\nname = \"a\"\nkind = \"file\"\npath = \"/x\"\nsubject = \"warden.logs.>\"\n"
            ),
            "NATS",
        ),
        (format!("{cluster}logs_max_bytes = 0\n"), "bounded"),
    ] {
        let e = Config::parse(&text, "w.toml").unwrap_err().to_string();
        assert!(e.contains(says) && e.starts_with("w.toml:"), "{text}: {e}");
    }
    let crash = Config::parse("[testing]\ncrash_at = \"before_ack\"\n", "w.toml").unwrap();
    assert_eq!(crash.testing.crash_at, Some(CrashPoint::BeforeAck));
}
