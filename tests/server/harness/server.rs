//! The `cinegate` binary as a child process: started on port 0 in a temporary data root,
//! its readiness read from stdout, a watchdog that ends it if the test process dies,
//! stop / SIGKILL / restart, and its operator CLI run against the same configuration.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use testkit::process::run_ok;

pub const BIN: &str = env!("CARGO_BIN_EXE_cinegate");

/// A playback pace no test client can exceed (`playback.max_pace`), for servers whose tests
/// fetch a film's keys at machine speed to reach coverage but are not about pace.
pub const FAST_PACE: (&str, &str) = ("CINEGATE_PLAYBACK__MAX_PACE", "1000000");

/// A running `cinegate serve` (or one stopped to be restarted) and its configuration;
/// dropping it stops the process.
pub struct Server {
    pub root: PathBuf,
    pub port: u16,
    pub base: String,
    /// The HTTPS listener's port, when `tls.mode` is not `off` (its second listening line).
    pub https_port: Option<u16>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
    _tmp: Option<tempfile::TempDir>,
    pub(super) http: Client,
}

impl Server {
    /// A fresh server in a new temporary directory; `extra` env overrides the defaults.
    pub fn start(extra: &[(&str, &str)]) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("cinegate-test-")
            .tempdir()
            .expect("tempdir");
        let mut server = Server::start_in(tmp.path().to_path_buf(), extra, false);
        server._tmp = Some(tmp);
        server
    }

    /// A server that outlives every test (the shared one): its directory is removed by its
    /// watchdog when the test process exits.
    pub fn start_leaked(extra: &[(&str, &str)]) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("cinegate-test-shared-")
            .tempdir()
            .expect("tempdir")
            .keep();
        // CINEGATE_TEST_KEEP=1 keeps its directory (logs included) for a post-mortem.
        let keep = std::env::var_os("CINEGATE_TEST_KEEP").is_some();
        if keep {
            eprintln!("shared server directory: {}", tmp.display());
        }
        Server::start_in(tmp, extra, !keep)
    }

    /// A server on an existing directory (`root/media`, `root/keys`), e.g. one a restore
    /// filled; the caller removes it.
    pub fn start_on(root: PathBuf, extra: &[(&str, &str)]) -> Server {
        Server::start_in(root, extra, false)
    }

    fn start_in(root: PathBuf, extra: &[(&str, &str)], remove_root: bool) -> Server {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        let mut env = vec![
            s("CINEGATE_LISTEN", "127.0.0.1:0"),
            s("CINEGATE_MEDIA_DIR", &root.join("media").to_string_lossy()),
            s("CINEGATE_KEYS_DIR", &root.join("keys").to_string_lossy()),
            s("CINEGATE_PUBLIC_URL", "http://127.0.0.1:1"),
            s("CINEGATE_TRANSCODE__PRESET", "ultrafast"),
            s("CINEGATE_TRANSCODE__LADDER", "360:600k,240:300k"),
            s("CINEGATE_PLAYBACK__PROGRESS_FLUSH_INTERVAL", "200ms"),
            s("CINEGATE_LIMITS__AUTH_PER_MINUTE", "100000"),
            s("CINEGATE_LIMITS__NATIVE_PER_MINUTE", "100000"),
            s("CINEGATE_LIMITS__TOKEN_FAILURES_PER_MINUTE", "100000"),
            s("CINEGATE_LIMITS__REFRESH_FAMILY_PER_MINUTE", "100000"),
            s("CINEGATE_LIMITS__WEBHOOK_PER_MINUTE", "100000"),
            s("CINEGATE_LIMITS__PAY_PER_MINUTE", "100000"),
            s("CINEGATE_LIMITS__API_READS_PER_MINUTE", "1000000"),
            s("CINEGATE_LIMITS__API_READS_BURST", "1000000"),
            s("CINEGATE_LIMITS__API_WRITES_PER_MINUTE", "1000000"),
            s("CINEGATE_LIMITS__API_WRITES_BURST", "1000000"),
            s("CINEGATE_LOG", "info"),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push(s(k, v));
        }
        let mut server = Server {
            root,
            port: 0,
            base: String::new(),
            https_port: None,
            env,
            child: None,
            watchdog: None,
            _tmp: None,
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
        };
        server.spawn(remove_root);
        server
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("CINEGATE_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.root);
        cmd
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn spawn(&mut self, remove_root: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let mut child = self
            .command()
            .arg("serve")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn cinegate serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.contains("cinegate listening on") {
                            let _ = tx.send(line.trim().to_string());
                        }
                    }
                }
            }
        });
        // Kills the server if this test process dies without dropping it (statics are
        // never dropped): the watchdog's stdin closes with our last file descriptor.
        let script = r#"read _ignored; kill -TERM "$1" 2>/dev/null; i=0;
            while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done;
            kill -KILL "$1" 2>/dev/null; if [ -n "$2" ]; then rm -rf "$2"; fi"#;
        let mut watchdog = Command::new("sh")
            .args(["-c", script, "watchdog"])
            .arg(child.id().to_string())
            .arg(if remove_root {
                self.root.to_string_lossy().into_owned()
            } else {
                String::new()
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watchdog");
        let stdin = watchdog.stdin.take().expect("watchdog stdin");
        self.watchdog = Some((watchdog, stdin));
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "cinegate serve printed no listening line in 30 s; log:\n{}",
                    self.log_tail(40)
                );
            }
        };
        let port_of = |line: &str| -> u16 {
            line.rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse().ok())
                .unwrap_or_else(|| panic!("no port in {line:?}"))
        };
        let port = port_of(&line);
        // With TLS on, the HTTPS line follows at once.
        let tls_on = self
            .env
            .iter()
            .any(|(k, v)| k == "CINEGATE_TLS__MODE" && v != "off");
        self.https_port = tls_on.then(|| {
            let line = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("no https listening line; log:\n{}", self.log_tail(40)));
            assert!(line.contains("https://"), "{line}");
            port_of(&line)
        });
        self.port = port;
        self.base = format!("http://127.0.0.1:{port}");
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("server running")
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status();
    }

    /// Dismisses the watchdog without letting it act: called before we stop the server
    /// ourselves. (Letting it run after the server was reaped would signal a PID the
    /// system may already have given to an unrelated process.)
    fn end_watchdog(&mut self) {
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(stdin);
        }
    }

    /// SIGTERM, wait (up to 20 s, then SIGKILL).
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.end_watchdog();
        self.signal("-TERM");
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }

    /// SIGKILL: no shutdown work at all.
    pub fn kill9(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.end_watchdog();
        self.signal("-KILL");
        let mut child = self.child.take().expect("child");
        let _ = child.wait();
    }

    /// Starts the server again on the same directories and configuration.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a running server");
        self.spawn(false);
    }

    // -- operator CLI ----------------------------------------------------------------------

    pub fn cli(&self, args: &[&str]) -> String {
        let out = run_ok(self.command().args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        self.end_watchdog();
    }
}
