//! `cinegate doctor`: runs the installation checks (`crate::doctor`) and prints one line per
//! check, then how to fix what is wrong. Exits non-zero when a check fails (warnings and
//! skipped checks do not).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use clap::Args;

use crate::doctor::{self, Status};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// How long each provider may take to answer.
    #[arg(long, default_value = "5s", value_parser = humantime_serde::re::humantime::parse_duration)]
    pub timeout: Duration,
}

pub fn run(config: Option<&Path>, args: DoctorArgs) -> anyhow::Result<()> {
    let checks = doctor::run(config, args.timeout);
    let terminal = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for c in &checks {
        let mark = match (c.status, terminal) {
            (Status::Ok, true) => "✓",
            (Status::Warn, true) => "!",
            (Status::Fail, true) => "✗",
            (Status::Skip, true) => "-",
            (Status::Ok, false) => "ok  ",
            (Status::Warn, false) => "warn",
            (Status::Fail, false) => "FAIL",
            (Status::Skip, false) => "skip",
        };
        println!("{mark} {}: {}", c.name, c.message);
        if let Some(fix) = c.fix.as_ref().filter(|_| c.status != Status::Ok) {
            println!("    fix: {fix}");
        }
    }
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} check(s) failed: {}", failed.len(), failed.join(", "))
    }
}
