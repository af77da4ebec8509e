//! Command-line interface. Each subcommand lives in its own module; `run` dispatches.

mod package;
mod probe;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cinegate",
    version,
    about = "Self-hosted pay-per-view film server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what a source file holds (container, duration, streams).
    Probe(probe::ProbeArgs),
    /// Package a film into encrypted HLS (the same pipeline the server runs).
    Package(package::PackageArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Probe(args) => probe::run(args),
        Command::Package(args) => package::run(args),
    }
}
