//! The `warden` command line: the daemon, replay, lint, and clients of the admin API.
//! The commands themselves are in [`cli`].

mod cli;

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use warden::config::LogFormat;

use cli::{client, daemon, replay, vuln};

#[derive(Parser)]
#[command(name = "warden", version, about = "An autonomous Security Operations Center in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ClientOpts {
    /// The daemon's configuration file (for its admin address and data directory).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The daemon's data directory (holds admin.token).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// With `[admin] tls_client_ca`: the client certificate (PEM chain) to present.
    #[arg(long, global = true, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, requires = "client_cert")]
    client_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: tail the configured sources, detect, respond, serve the admin API.
    Run {
        #[command(flatten)]
        opts: ClientOpts,
        /// Folder of agent definitions (default: ./actors if present, else the built-in copy).
        #[arg(long)]
        actors: Option<PathBuf>,
    },
    /// Run log files through the agents as fast as possible and print what they found.
    Replay {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the incidents as JSON.
        #[arg(long)]
        json: bool,
        /// Also print the process's peak memory (resident set).
        #[arg(long)]
        stats: bool,
        /// Print every finding (JSON) instead of the incidents.
        #[arg(long)]
        findings: bool,
        /// The files' format: auth (syslog auth.log), web (access log) or auto.
        #[arg(long, default_value = "auto")]
        format: String,
        #[arg(long)]
        actors: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// On each host of a fleet: read the configured sources and publish their lines to
    /// the cluster's logs stream (`[cluster]`, `[ship]`), for analysis nodes to read.
    Ship(ClientOpts),
    /// On each host of a fleet: apply the cluster's containment decisions to this
    /// host's nftables table (`[enforce]`; observe mode unless configured).
    Enforce(ClientOpts),
    /// Check agent definitions; prints every error as file:line: message.
    Lint {
        #[arg(long)]
        actors: Option<PathBuf>,
    },
    /// Show the daemon's health.
    Status(ClientOpts),
    /// List agents with their state and restarts.
    Agents(ClientOpts),
    /// List incidents.
    Incidents {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        json: bool,
    },
    /// Show one incident as JSON.
    Incident {
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// An incident's report: `--audience executive|technical --format markdown|html|json`.
    Report {
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long, default_value = "technical")]
        audience: String,
        #[arg(long, default_value = "markdown")]
        format: String,
    },
    /// Approve an action waiting for approval: it runs now, recorded with who and when.
    Approve(Decision),
    /// Close an incident: its actions are rolled back (unless permanent).
    Close(Decision),
    /// Reject an action waiting for approval.
    Reject(Decision),
    /// Inject an envelope (`--payload JSON [--to AGENT]`) or raw log lines (`--source NAME LINE...`).
    Inject {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        to: Option<String>,
        /// The payload as JSON, tagged by "kind", e.g. '{"kind":"instruction","text":"hi"}'.
        #[arg(long, conflicts_with = "source")]
        payload: Option<String>,
        /// The configured source the lines belong to.
        #[arg(long)]
        source: Option<String>,
        /// Lines (with --source).
        lines: Vec<String>,
    },
    /// Evidence: export an incident's bundle, verify a bundle.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Write a consistent copy of the knowledge base and its ledger into DIR (absent or
    /// empty, on the daemon's host) while the daemon runs.
    Backup {
        dir: PathBuf,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Bring a backup back into the data directory (`--data-dir` or the config's), which
    /// must be empty; the daemon must be stopped. Then `warden audit verify --offline`.
    Restore {
        dir: PathBuf,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Audit ledger commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Scan for vulnerable packages now, offline, and print the result (no daemon
    /// needed): the configured targets, or `--target PATH` (a host root, an image, a
    /// project directory or one lockfile).
    Scan {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        target: Option<PathBuf>,
        /// Print the scans as JSON instead of the posture report.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        actors: Option<PathBuf>,
    },
    /// Ask an agent (with a language model configured) to investigate and answer:
    /// `warden ask --to incident-response --incident ID "what happened?"`.
    Ask {
        #[command(flatten)]
        opts: ClientOpts,
        /// The agent (default: the first that handles instructions).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        incident: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 120)]
        wait: u64,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Vulnerability management: the advisory database, the posture report, patch
    /// verification.
    Vuln {
        #[command(subcommand)]
        command: VulnCommand,
    },
}

#[derive(Subcommand)]
enum VulnCommand {
    /// The offline OSV advisory database.
    Db {
        #[command(subcommand)]
        command: VulnDbCommand,
    },
    /// The posture over the daemon's latest scans: `--format markdown|html|json`.
    Report {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long, default_value = "markdown")]
        format: String,
    },
    /// Ask the daemon to scan now (one configured target, or all).
    Scan {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        target: Option<String>,
    },
    /// Ask the daemon to verify an incident's remediation (after the patch is applied).
    Verify {
        incident: String,
        #[command(flatten)]
        opts: ClientOpts,
        /// Only this package's remediation.
        #[arg(long, default_value = "")]
        package: String,
        /// The version that was installed, when it is not the recommended one.
        #[arg(long)]
        fixed: Option<String>,
    },
}

#[derive(Subcommand)]
enum VulnDbCommand {
    /// Import OSV records (a directory of JSON/YAML records, or an osv.dev `all.zip`).
    Import {
        path: PathBuf,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

/// An operator's decision about an action, a playbook gate or an incident.
#[derive(Args)]
struct Decision {
    id: String,
    #[command(flatten)]
    opts: ClientOpts,
    /// Who decides (default: $SUDO_USER or $USER).
    #[arg(long)]
    by: Option<String>,
    #[arg(long, default_value = "")]
    comment: String,
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Write an incident's evidence bundle (tar: manifest.json + items by hash).
    Export {
        incident: String,
        #[command(flatten)]
        opts: ClientOpts,
        /// Where to write it (default: ./incident-ID.tar).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        by: Option<String>,
    },
    /// Check a bundle: every item present with its size and SHA-256. Recorded in the
    /// ledger when the daemon is reachable.
    Verify {
        bundle: PathBuf,
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and name the first broken record.
    Verify {
        #[command(flatten)]
        opts: ClientOpts,
        /// Open the database directly instead of asking the daemon (it must be stopped).
        #[arg(long)]
        offline: bool,
    },
}

fn main() {
    warden::admin::tls::install_default_provider();
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run { opts, actors } => daemon::run(opts, actors),
        Command::Replay { files, json, stats, findings, format, actors, config } => {
            let format = match format.as_str() {
                "auth" => LogFormat::Auth,
                "web" => LogFormat::Web,
                "json" => LogFormat::Json,
                "zeek" => LogFormat::Zeek,
                "auto" => LogFormat::Auto,
                other => bail!("unknown format `{other}` (expected auth, web, json, zeek or auto)"),
            };
            replay::replay(files, replay::ReplayOutput { json, stats, findings, format }, actors, config)
        }
        Command::Lint { actors } => daemon::lint(actors),
        Command::Ship(opts) => cli::ship::ship(opts),
        Command::Enforce(opts) => cli::enforce::enforce(opts),
        Command::Status(o) => client::print_get(&o, "/v1/health"),
        Command::Agents(o) => client::agents(&o),
        Command::Incidents { opts, json } => client::incidents(&opts, json),
        Command::Incident { id, opts } => client::print_get(&opts, &format!("/v1/incidents/{id}")),
        Command::Inject { opts, to, payload, source, lines } => client::inject(&opts, to, payload, source, lines),
        Command::Approve(d) => client::decide(&d.opts, &d.id, d.by, d.comment, true),
        Command::Reject(d) => client::decide(&d.opts, &d.id, d.by, d.comment, false),
        Command::Report { id, opts, audience, format } => client::report(&opts, &id, &audience, &format),
        Command::Close(d) => client::close(d),
        Command::Audit { command: AuditCommand::Verify { opts, offline } } => client::audit_verify(&opts, offline),
        Command::Backup { dir, opts } => client::backup(&opts, &dir),
        Command::Restore { dir, opts } => client::restore(&opts, &dir),
        Command::Scan { opts, target, json, actors } => vuln::scan(&opts, target, json, actors.as_deref()),
        Command::Ask { opts, to, incident, wait, text } => client::ask(&opts, to, incident, wait, text),
        Command::Vuln { command } => match command {
            VulnCommand::Db { command: VulnDbCommand::Import { path, opts } } => vuln::import(&opts, &path),
            VulnCommand::Report { opts, format } => vuln::report(&opts, &format),
            VulnCommand::Scan { opts, target } => vuln::scan_now(&opts, target),
            VulnCommand::Verify { incident, opts, package, fixed } => vuln::verify(&opts, &incident, package, fixed),
        },
        Command::Evidence { command } => match command {
            EvidenceCommand::Export { incident, opts, out, by } => client::evidence_export(&opts, &incident, out, by),
            EvidenceCommand::Verify { bundle, opts, by } => client::evidence_verify(&opts, &bundle, by),
        },
    }
}
