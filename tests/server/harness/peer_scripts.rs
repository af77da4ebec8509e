//! The test peers' scripts under `tests/peers`, and running a Python one for the JSON it
//! prints.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use testkit::process::run_ok;

pub fn peer(script: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script)
}

/// Runs a Python peer and parses the JSON it prints.
pub fn python_json(script: &str, args: &[&str]) -> Value {
    let out = run_ok(Command::new("python3").arg(peer(script)).args(args));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
