//! Command-line interface. Each subcommand lives in its own module; `run` dispatches.

mod backup;
mod doctor;
mod ingest;
mod package;
mod probe;
mod restore;
mod runner;
mod serve;
mod storage;
mod user;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cinegate",
    version,
    about = "Self-hosted pay-per-view film server"
)]
pub struct Cli {
    /// Configuration file (default: ./config.toml if present, else built-in defaults).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Manage users (talks to the running server, or opens the store when none runs).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Add a film from a file already on this machine and package it.
    Ingest(ingest::IngestArgs),
    /// Print what a source file holds (container, duration, streams).
    Probe(probe::ProbeArgs),
    /// Package a film into encrypted HLS (the same pipeline the server runs).
    Package(package::PackageArgs),
    /// Write a backup archive: a point-in-time store snapshot, the keys, the packages.
    Backup(backup::BackupArgs),
    /// Restore a backup archive into an empty data root and keys directory.
    Restore(restore::RestoreArgs),
    /// Check the installation: config, permissions, free disk, FFmpeg, clock, providers.
    /// Runs with or without a server; exits non-zero if a check fails.
    Doctor(doctor::DoctorArgs),
    /// Object storage (`[storage]`): `migrate` moves local packages to the bucket.
    #[command(subcommand)]
    Storage(storage::StorageCommand),
    /// Package an origin's queued jobs on this machine: lease, download, package, upload.
    Runner(runner::RunnerArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve::run(cli.config.as_deref()),
        Command::User(cmd) => user::run(cli.config.as_deref(), cmd),
        Command::Ingest(args) => ingest::run(cli.config.as_deref(), args),
        Command::Backup(args) => backup::run(cli.config.as_deref(), args),
        Command::Restore(args) => restore::run(cli.config.as_deref(), args),
        Command::Storage(cmd) => storage::run(cli.config.as_deref(), cmd),
        Command::Probe(args) => {
            init_logging("warn");
            probe::run(args)
        }
        Command::Package(args) => {
            init_logging("warn");
            package::run(args)
        }
        Command::Runner(args) => {
            init_logging("info");
            runner::run(args)
        }
        Command::Doctor(args) => {
            init_logging("warn");
            doctor::run(cli.config.as_deref(), args)
        }
    }
}

/// Logs go to stderr as text; `filter` is a tracing EnvFilter. For the one-off commands
/// (`probe`, `package`, …); the server logs as `[log]` says ([`init_logging_as`]).
/// The packaging progress bar of `package`, `ingest` and `runner` (permille of the source
/// packaged), or a hidden one when nobody watches a terminal.
pub fn packaging_bar(visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} packaging [{bar:40}] {percent:>3}% eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

pub fn init_logging(filter: &str) {
    init_logging_as(filter, crate::config::LogFormat::Text);
}

/// Logs go to stderr; `filter` is a tracing EnvFilter (`log.filter`), `format` the line
/// format (`log.format`). Text has colour only on a terminal: redirected to a file or the
/// journal, escape codes are noise (`ESC[2m…ESC[33m WARN`), and `NO_COLOR` turns it off
/// anywhere. JSON is one object per line for log shippers: `timestamp`, `level`, `target`,
/// the event's `fields`, and the enclosing `span`'s fields (a request's `request_id`);
/// never colour.
pub fn init_logging_as(filter: &str, format: crate::config::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).try_init()
        }
        crate::config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<crate::config::Config> {
    Ok(crate::config::Config::load(path)?)
}
