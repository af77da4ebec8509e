//! Running a script of the Chromium test peer (`tests/peers/browser/*.mjs`, Debian's
//! Chromium driven by playwright-core; see `tests/peers/browser/lib.mjs`).

use std::error::Error;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::peer_scripts::peer;

/// The whole script's budget inside node (lib.mjs's `BROWSER_TIMEOUT_MS`).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long past that budget node may take to close Chromium and exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(30);

/// Runs `node tests/peers/browser/<script>` from the repository root with `env` set and
/// screenshots going to `<repo>/target/console-shots`, and returns what it printed (its
/// `ok <step>` lines). Fails, carrying stdout and stderr, when it exits non-zero or
/// outlives its timeout.
pub fn run_browser(script: &str, env: &[(&str, String)]) -> Result<String, Box<dyn Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("node");
    cmd.arg(peer("browser").join(script))
        .current_dir(&root)
        .env("SHOTS_DIR", root.join("target/console-shots"))
        .env("BROWSER_TIMEOUT_MS", SCRIPT_TIMEOUT.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start node for {script}: {e}"))?;
    // Drained on their own threads so a chatty script cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait(&mut child, SCRIPT_TIMEOUT + EXIT_GRACE);
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    match status {
        Ok(s) if s.success() => Ok(out),
        Ok(s) => Err(format!("{script} failed ({s}):\nstdout:\n{out}\nstderr:\n{err}").into()),
        Err(why) => Err(format!("{script} {why}:\nstdout:\n{out}\nstderr:\n{err}").into()),
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait(child: &mut Child, limit: Duration) -> Result<std::process::ExitStatus, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(s),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("was killed after {limit:?}"));
            }
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
    }
}
