//! The harness: the real `cinegate` binary on loopback, its operator CLI, a blocking HTTP
//! client, raw-socket requests (for paths a URL library would normalise), generated
//! sources, and one shared server with two packaged, published films.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_cinegate");

/// A playback pace no test client can exceed (`playback.max_pace`), for servers whose tests
/// fetch a film's keys at machine speed to reach coverage but are not about pace.
pub const FAST_PACE: (&str, &str) = ("CINEGATE_PLAYBACK__MAX_PACE", "1000000");

/// Upload limit of the shared server (the oversize test sends more).
pub const SHARED_MAX_BYTES: u64 = 16 * 1024 * 1024;

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Joins a scoped thread, re-raising its panic in the caller (so the test fails with it).
pub fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A blocking client that never follows redirects (tests step through them), for talking
/// to peers and to the server as a browser would.
pub fn no_redirect_client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("HTTP client")
    })
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", describe(cmd)));
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout: {}\nstderr: {}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------------------------------
// Sources, generated once with the ffmpeg CLI and cached under target/tmp
// ---------------------------------------------------------------------------------------

pub fn cache_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cinegate-server-tests");
    std::fs::create_dir_all(&dir).expect("create the source cache");
    dir
}

static GENERATE: Mutex<()> = Mutex::new(());

/// `ffmpeg -y ARGS OUT`, cached by `name` (written to a temporary name, then renamed).
pub fn generated(name: &str, args: &[&str]) -> PathBuf {
    let _guard = GENERATE.lock().unwrap_or_else(|e| e.into_inner());
    let path = cache_dir().join(name);
    if path.is_file() {
        return path;
    }
    let tmp = cache_dir().join(format!("tmp{}-{name}", std::process::id()));
    run_ok(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y"])
            .args(args)
            .arg(&tmp),
    );
    std::fs::rename(&tmp, &path).expect("rename generated source");
    path
}

fn av_args(pattern: &str, size: &str, secs: u32, freq: u32, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "-f".to_string(),
        "lavfi".into(),
        "-i".into(),
        format!("{pattern}=size={size}:rate=25:duration={secs}"),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency={freq}:sample_rate=48000:duration={secs}"),
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "ultrafast".into(),
        "-pix_fmt".into(),
        "yuv420p".into(),
        "-g".into(),
        "50".into(),
        "-c:a".into(),
        "aac".into(),
        "-b:a".into(),
        "64k".into(),
    ]
    .into();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn gen_av(name: &str, pattern: &str, size: &str, secs: u32, freq: u32, extra: &[&str]) -> PathBuf {
    let args = av_args(pattern, size, secs, freq, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    generated(name, &refs)
}

/// The main film: 66 s, 640x360, 25 fps, 440 Hz tone. 6 s segments → N = 11, P = 2.
pub const MAIN_SECONDS: f64 = 66.0;
pub const FPS: f64 = 25.0;

pub fn src_main() -> PathBuf {
    gen_av("main-66s-640x360.mp4", "testsrc2", "640x360", 66, 440, &[])
}

/// A second, different film: 12 s, 640x360, another pattern and tone. N = 2, P = 1.
pub fn src_other() -> PathBuf {
    gen_av("other-12s-640x360.mp4", "testsrc", "640x360", 12, 880, &[])
}

/// A 4 s audio-only file.
pub fn src_audio_only() -> PathBuf {
    generated(
        "audio-only-4s.m4a",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=4",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
        ],
    )
}

/// An 8 s faststart mp4 (moov first) cut to half its size.
pub fn src_truncated() -> PathBuf {
    let full = gen_av(
        "faststart-8s.mp4",
        "testsrc2",
        "320x240",
        8,
        440,
        &["-movflags", "+faststart"],
    );
    let _guard = GENERATE.lock().unwrap_or_else(|e| e.into_inner());
    let half = cache_dir().join("faststart-8s-half.mp4");
    if !half.is_file() {
        let bytes = std::fs::read(&full).expect("read full");
        let tmp = cache_dir().join(format!("tmp{}-half.mp4", std::process::id()));
        std::fs::write(&tmp, &bytes[..bytes.len() / 2]).expect("write half");
        std::fs::rename(&tmp, &half).expect("rename half");
    }
    half
}

/// Seconds of media in FILE per ffprobe.
pub fn probe_duration(target: &str) -> f64 {
    let out = run_ok(Command::new("ffprobe").args([
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "default=noprint_wrappers=1:nokey=1",
        target,
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe duration of {target}: {text:?}"))
}

/// What the ffmpeg CLI, used as an HLS client over HTTP, decoded.
#[derive(Debug)]
pub struct Decoded {
    pub ok: bool,
    pub frames: u64,
    pub seconds: f64,
    pub stderr: String,
}

/// `ffmpeg -i URL -map 0:v:0 -map 0:a:0 -f null -`: decodes (and decrypts) every sample.
pub fn ffmpeg_decode(url: &str) -> Decoded {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", url])
        .args([
            "-map",
            "0:v:0",
            "-map",
            "0:a:0",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut frames = 0;
    let mut micros = 0i64;
    for line in stdout.lines() {
        if let Some(v) = line.strip_prefix("frame=") {
            frames = v.trim().parse().unwrap_or(frames);
        }
        if let Some(v) = line.strip_prefix("out_time_us=") {
            micros = v.trim().parse().unwrap_or(micros);
        }
    }
    Decoded {
        ok: out.status.success(),
        frames,
        seconds: micros as f64 / 1e6,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

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

// ---------------------------------------------------------------------------------------
// HTTP responses
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.brief()))
    }

    /// `error.code` of an error body ("" when there is none).
    pub fn code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn brief(&self) -> String {
        let text = self.text();
        let cut: String = text.chars().take(400).collect();
        format!("HTTP {} {cut}", self.status)
    }

    /// Asserts status and error code together.
    pub fn expect_error(&self, status: u16, code: &str, what: &str) {
        assert_eq!(
            (self.status, self.code().as_str()),
            (status, code),
            "{what}: {}",
            self.brief()
        );
    }

    pub fn expect(&self, status: u16, what: &str) -> &Self {
        assert_eq!(self.status, status, "{what}: {}", self.brief());
        self
    }
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

static EMAILS: AtomicU32 = AtomicU32::new(0);

pub fn unique_email(tag: &str) -> String {
    format!(
        "{tag}-{}-{}@test.example",
        std::process::id(),
        EMAILS.fetch_add(1, Ordering::SeqCst)
    )
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

pub struct Server {
    pub root: PathBuf,
    pub port: u16,
    pub base: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
    _tmp: Option<tempfile::TempDir>,
    http: Client,
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
            let mut sent = false;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !sent && line.contains("cinegate listening on") {
                            let _ = tx.send(line.trim().to_string());
                            sent = true;
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
        let port: u16 = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
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

    // -- HTTP ------------------------------------------------------------------------------

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub fn exec(&self, req: RequestBuilder) -> Resp {
        let resp = req.send().expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp.bytes().expect("response body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.req(method, path);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.exec(req)
    }

    pub fn get(&self, path: &str, bearer: Option<&str>) -> Resp {
        self.call(Method::GET, path, bearer, None)
    }

    pub fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> Resp {
        self.call(Method::POST, path, bearer, Some(body))
    }

    /// One request over a fresh TCP connection with the request target sent exactly as
    /// given (no normalisation of `..` or percent-escapes).
    pub fn raw_get(&self, target: &str) -> Resp {
        raw_request(
            self.port,
            &format!(
                "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                self.port
            ),
        )
    }

    // -- accounts --------------------------------------------------------------------------

    /// The sign-in token from `cinegate user login-link` (the last line ends with the URL).
    pub fn login_link_token(&self, email: &str) -> String {
        let out = self.cli(&["user", "login-link", email]);
        let last = out.lines().last().unwrap_or("").trim().to_string();
        let token = last
            .rsplit_once("token=")
            .map(|(_, t)| t.to_string())
            .unwrap_or_else(|| panic!("no token= in login-link output {out:?}"));
        assert!(last.contains("/login?token="), "login link: {last:?}");
        token
    }

    /// Creates a user with the CLI and signs in with a login link.
    pub fn user(&self, tag: &str, admin: bool) -> User {
        let email = unique_email(tag);
        let mut args = vec!["user", "create", email.as_str()];
        if admin {
            args.push("--admin");
        }
        let out = self.cli(&args);
        assert!(out.starts_with("created"), "user create printed {out:?}");
        let link = self.login_link_token(&email);
        let pair = self
            .post("/api/v1/auth/link", None, json!({ "token": link }))
            .expect(200, "auth/link")
            .json();
        let access = pair["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        let refresh = pair["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string();
        let me = self
            .get("/api/v1/me", Some(&access))
            .expect(200, "GET /me")
            .json();
        User {
            id: me["id"].as_str().expect("me.id").to_string(),
            email,
            access,
            refresh,
        }
    }

    // -- films and jobs --------------------------------------------------------------------

    pub fn create_film(&self, admin: &User, title: &str) -> String {
        let film = self
            .post(
                "/api/v1/admin/films",
                Some(&admin.access),
                json!({ "title": title, "description": "made by the tests" }),
            )
            .expect(201, "create film")
            .json();
        film["id"].as_str().expect("film id").to_string()
    }

    pub fn put_source(&self, admin: &User, film: &str, body: Vec<u8>) -> Resp {
        self.exec(
            self.req(Method::PUT, &format!("/api/v1/admin/films/{film}/source"))
                .bearer_auth(&admin.access)
                .header("Content-Type", "application/octet-stream")
                .body(body),
        )
    }

    pub fn jobs(&self, admin: &User) -> Vec<Value> {
        self.get("/api/v1/admin/jobs", Some(&admin.access))
            .expect(200, "jobs")
            .json()["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn job(&self, admin: &User, id: &str) -> Value {
        self.get(&format!("/api/v1/admin/jobs/{id}"), Some(&admin.access))
            .expect(200, "job")
            .json()
    }

    /// Polls until the job is finished; panics unless it ends `ready`.
    pub fn wait_job_ready(&self, admin: &User, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(admin, id);
            match job["state"].as_str() {
                Some("ready") => return job,
                Some("failed") | Some("cancelled") => {
                    panic!("job {id} ended {job}; log:\n{}", self.log_tail(30))
                }
                _ if Instant::now() > deadline => {
                    panic!("job {id} not ready after {timeout:?}: {job}")
                }
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// `cinegate ingest FILE --title T --publish` → (film id, job id).
    pub fn ingest(&self, file: &Path, title: &str, publish: bool) -> (String, String) {
        let file = file.to_string_lossy().into_owned();
        let mut args = vec!["ingest", file.as_str(), "--title", title];
        if publish {
            args.push("--publish");
        }
        let out = self.cli(&args);
        // "film {id} created; packaging job {id} queued …"
        let words: Vec<&str> = out.split_whitespace().collect();
        let after = |w: &str| {
            words
                .iter()
                .position(|x| *x == w)
                .and_then(|i| words.get(i + 1))
                .map(|s| s.trim_end_matches(';').to_string())
                .unwrap_or_else(|| panic!("no {w:?} in ingest output {out:?}"))
        };
        (after("film"), after("job"))
    }

    pub fn grant(&self, admin: &User, film: &str, user: &User) {
        let r = self.call(
            Method::PUT,
            &format!("/api/v1/admin/films/{film}/grants/{}", user.id),
            Some(&admin.access),
            None,
        );
        assert!(
            (200..300).contains(&r.status),
            "grant {film} to {}: {}",
            user.id,
            r.brief()
        );
    }

    // -- playback --------------------------------------------------------------------------

    /// `POST /films/{id}/playback`; returns the answer and the `/hls/{token}` prefix.
    pub fn playback(&self, user: &User, film: &str) -> Playback {
        let answer = self
            .post(
                &format!("/api/v1/films/{film}/playback"),
                Some(&user.access),
                json!({}),
            )
            .expect(200, "playback")
            .json();
        let master_url = answer["master_url"].as_str().expect("master_url");
        let path = master_url
            .find("/hls/")
            .map(|i| &master_url[i..])
            .unwrap_or_else(|| panic!("master_url without /hls/: {master_url}"));
        let prefix = path
            .strip_suffix("/master.m3u8")
            .unwrap_or_else(|| panic!("master_url not …/master.m3u8: {master_url}"))
            .to_string();
        let token = prefix.trim_start_matches("/hls/").to_string();
        Playback {
            master: self.url(path),
            prefix,
            token,
            answer,
        }
    }

    pub fn progress(&self, user: &User, film: &str) -> Value {
        self.get(
            &format!("/api/v1/films/{film}/progress"),
            Some(&user.access),
        )
        .expect(200, "progress")
        .json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        self.end_watchdog();
    }
}

pub struct Playback {
    /// Absolute master playlist URL on the real port.
    pub master: String,
    /// `/hls/{token}`.
    pub prefix: String,
    pub token: String,
    pub answer: Value,
}

impl Playback {
    pub fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix)
    }
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1 over a socket
// ---------------------------------------------------------------------------------------

pub fn raw_request(port: u16, request: &str) -> Resp {
    parse_response(&raw_exchange(port, request))
}

/// Sends `request` (one or several, pipelined) on a fresh connection and returns every
/// byte the server sends until it closes the connection.
pub fn raw_exchange(port: u16, request: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    raw
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..eol])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .unwrap_or(0);
            if size == 0 || rest.len() < eol + 2 + size {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[(eol + 4 + size).min(rest.len())..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

// ---------------------------------------------------------------------------------------
// The shared server: two packaged, published films
// ---------------------------------------------------------------------------------------

pub struct FilmInfo {
    pub id: String,
    pub segments: usize,
    pub preview: usize,
    pub duration: f64,
    pub renditions: Vec<String>,
    /// The package directory on disk (media/films/{id}/{dir}).
    pub package_dir: PathBuf,
}

pub struct Shared {
    pub server: Server,
    pub admin: User,
    /// 66 s: N = 11, P = 2.
    pub main: FilmInfo,
    /// 12 s, different content.
    pub other: FilmInfo,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

pub fn shared() -> &'static Shared {
    let result = SHARED.get_or_init(|| {
        std::panic::catch_unwind(build_shared).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())
        })
    });
    match result {
        Ok(s) => s,
        Err(e) => panic!("the shared server could not be set up: {e}"),
    }
}

fn build_shared() -> Shared {
    let main_src = src_main();
    let other_src = src_other();
    let max = SHARED_MAX_BYTES.to_string();
    let server = Server::start_leaked(&[
        ("CINEGATE_UPLOAD__MAX_BYTES", max.as_str()),
        // The comment hold list the social tests exercise.
        ("CINEGATE_SOCIAL__HELD_WORDS", "[\"spoiler\"]"),
        FAST_PACE,
    ]);
    let admin = server.user("admin", true);
    let (main_id, main_job) = server.ingest(&main_src, "Main film", true);
    let (other_id, other_job) = server.ingest(&other_src, "Other film", true);
    server.wait_job_ready(&admin, &main_job, Duration::from_secs(240));
    server.wait_job_ready(&admin, &other_job, Duration::from_secs(120));
    let main = film_info(&server, &admin, &main_id);
    let other = film_info(&server, &admin, &other_id);
    Shared {
        server,
        admin,
        main,
        other,
    }
}

pub fn film_info(server: &Server, admin: &User, id: &str) -> FilmInfo {
    let view = server
        .get(&format!("/api/v1/films/{id}"), None)
        .expect(200, "film detail")
        .json();
    let adminv = server
        .get(&format!("/api/v1/admin/films/{id}"), Some(&admin.access))
        .expect(200, "admin film")
        .json();
    let pkg = &adminv["package"];
    FilmInfo {
        id: id.to_string(),
        segments: view["total_segments"].as_u64().expect("total_segments") as usize,
        preview: view["preview_segments"].as_u64().expect("preview_segments") as usize,
        duration: view["duration_seconds"].as_f64().expect("duration_seconds"),
        renditions: pkg["renditions"]
            .as_array()
            .expect("renditions")
            .iter()
            .map(|r| r.as_str().unwrap_or("").to_string())
            .collect(),
        package_dir: server
            .root
            .join("media/films")
            .join(id)
            .join(pkg["dir"].as_str().expect("package dir")),
    }
}

/// `P = ceil(0.10 × N)`, computed here independently of the server.
pub fn preview_of(n: usize) -> usize {
    (n as f64 * 0.10 - 1e-9).ceil().max(1.0) as usize
}
