//! Remote packaging runners (issue 20): an origin that packages nothing itself
//! (`transcode.workers = 0`) and real `cinegate runner` processes on loopback. One runner
//! is SIGKILLed mid-job, the job completes on the other after the lease lapses, its
//! package matches a locally packaged one of the same source, and ffmpeg plays it for a
//! buyer. The protocol's refusals are driven by hand: a revoked token, a stale lease
//! token, upload paths that try to leave the staging directory, an incomplete package,
//! and the source's `Range`/`If-Range`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use testkit::decode::ffmpeg_decode;

use crate::harness::films::film_info;
use crate::harness::http::Resp;
use crate::harness::media::{src_main, src_other, MAIN_SECONDS};
use crate::harness::raw::raw_request;
use crate::harness::server::{Server, BIN, FAST_PACE};
use crate::harness::shared::shared;
use crate::harness::users::User;

const LEASE_TTL: &str = "3s";

fn origin() -> Server {
    Server::start(&[
        ("CINEGATE_TRANSCODE__WORKERS", "0"),
        ("CINEGATE_RUNNERS__LEASE_TTL", LEASE_TTL),
        FAST_PACE,
    ])
}

pub(crate) struct Issued {
    pub(crate) id: String,
    pub(crate) token: String,
}

pub(crate) fn issue(server: &Server, admin: &User, name: &str) -> Issued {
    let r = server
        .post(
            "/api/v1/admin/runners",
            Some(&admin.access),
            json!({ "name": name }),
        )
        .expect(201, "issue a runner token")
        .json();
    let token = r["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("cgr_"), "{r}");
    Issued {
        id: r["id"].as_str().expect("id").to_string(),
        token,
    }
}

/// A `cinegate runner` process, SIGKILLed when dropped; its log in `log`.
pub(crate) struct RunnerProcess {
    child: Child,
    log: PathBuf,
}

impl RunnerProcess {
    pub(crate) fn start(server: &Server, token: &str, name: &str) -> RunnerProcess {
        Self::start_at(server, &server.base, &[], token, name)
    }

    /// A runner of `origin` (the server's plain or HTTPS address) with `extra` arguments.
    fn start_at(
        server: &Server,
        origin: &str,
        extra: &[&str],
        token: &str,
        name: &str,
    ) -> RunnerProcess {
        let work = server.root.join(format!("runner-{name}"));
        let log = server.root.join(format!("runner-{name}.log"));
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("CINEGATE_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["runner", "--origin", origin, "--work-dir"])
            .arg(&work)
            .args(["--poll-seconds", "1"])
            .args(extra)
            // The token through the environment: it stays out of the process list.
            .env("CINEGATE_RUNNER_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("runner log"))
            .spawn()
            .expect("start cinegate runner");
        RunnerProcess { child, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (60 s at most) until the job is leased to this runner (`runner_id`) and the
    /// runner says it is packaging; the job must not be finished by then.
    pub(crate) fn wait_packaging(&self, server: &Server, admin: &User, job: &str, runner_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let j = server.job(admin, job);
            if j["lease"]["runner_id"] == runner_id && self.log().contains("packaging") {
                return;
            }
            assert!(j["state"] != "ready", "the runner finished first: {j}");
            assert!(
                Instant::now() < deadline,
                "never packaging: {j}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (20 s at most) for `text` in the log. The origin marks a job ready inside the
    /// runner's `complete` call, and the runner logs it once the answer is back, a moment
    /// after a test polling the job has seen it ready.
    pub(crate) fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the runner's log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill9(&mut self) {
        // std's kill is SIGKILL on Unix.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn manifest(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("manifest in {}: {e}", dir.display()));
    serde_json::from_str(&text).expect("manifest JSON")
}

fn durations(m: &Value) -> Vec<f64> {
    m["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|d| d.as_f64().expect("duration"))
        .collect()
}

#[test]
fn a_job_whose_runner_is_killed_completes_on_another_and_plays() {
    let server = origin();
    let admin = server.user("runner-admin", true);
    let a = issue(&server, &admin, "runner-a");
    let b = issue(&server, &admin, "runner-b");
    let list = server
        .get("/api/v1/admin/runners", Some(&admin.access))
        .expect(200, "runners")
        .json();
    assert_eq!(list["runners"].as_array().map(Vec::len), Some(2), "{list}");
    assert!(
        !list.to_string().contains(&a.token) && list["runners"][0].get("token").is_none(),
        "the list shows a token: {list}"
    );

    let (film, job) = server.ingest(&src_main(), "Packaged elsewhere", true);
    let started = Instant::now();
    let mut runner_a = RunnerProcess::start(&server, &a.token, "a");
    // Runner A takes the job and reports progress through its heartbeat.
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let j = server.job(&admin, &job);
        let owner = j["lease"]["runner_id"].as_str().unwrap_or("");
        if owner == a.id && j["progress"].as_f64().unwrap_or(0.0) > 0.0 {
            break j;
        }
        assert!(
            j["state"] != "ready",
            "runner A finished before it could be killed: {j}"
        );
        assert!(
            Instant::now() < deadline,
            "runner A never reported progress: {j}\n{}",
            runner_a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(seen["state"], "running", "{seen}");
    assert_eq!(seen["lease"]["owner"], "runner", "{seen}");
    assert_eq!(seen["attempts"], 1, "{seen}");
    let listed = server
        .get("/api/v1/admin/runners", Some(&admin.access))
        .expect(200, "runners")
        .json();
    let row = listed["runners"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["id"] == a.id.as_str()).cloned())
        .expect("runner A listed");
    assert_eq!(row["job"]["id"], job.as_str(), "{row}");
    assert!(row["last_seen_at"].as_i64().is_some(), "{row}");

    // The second runner joins, then the first dies without a word.
    let runner_b = RunnerProcess::start(&server, &b.token, "b");
    runner_a.kill9();
    let killed_at = Instant::now();
    // What the dead runner left on its disk: the source and a partial package, never the
    // film secret (it is kept in memory only).
    let secret = std::fs::read_to_string(server.root.join(format!("keys/films/{film}.secret")))
        .expect("the film secret");
    let left = files_under(&server.root.join("runner-a"));
    assert!(
        left.iter()
            .any(|p| p.ends_with("source") || p.ends_with("source.part")),
        "runner A left no source: {left:?}"
    );
    for f in &left {
        let bytes = std::fs::read(f).unwrap_or_default();
        let hex = secret.trim().as_bytes();
        assert!(
            !bytes
                .windows(hex.len())
                .any(|w| w.eq_ignore_ascii_case(hex)),
            "{} holds the film secret",
            f.display()
        );
    }

    let done = server.wait_job_ready(&admin, &job, Duration::from_secs(180));
    assert_eq!(done["attempts"], 2, "the job ran twice: {done}");
    assert!(done["lease"].is_null(), "{done}");
    let lapse = killed_at.elapsed();
    eprintln!(
        "runner job: leased to A, A killed at {:.1} s, done on B {:.1} s later",
        (killed_at - started).as_secs_f64(),
        lapse.as_secs_f64()
    );
    runner_b.wait_log("job complete");

    // The package: attempt 2's, complete, and like a locally packaged one of the same
    // source under the same [transcode] (the shared server's main film).
    let info = film_info(&server, &admin, &film);
    let dir_name = info
        .package_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(dir_name, format!("pkg-{job}-a2"));
    let film_dir = server.root.join("media/films").join(&film);
    let leftovers: Vec<String> = std::fs::read_dir(&film_dir)
        .expect("film dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != &dir_name)
        .collect();
    assert!(
        leftovers.is_empty(),
        "left in the film's directory: {leftovers:?}"
    );
    let remote = manifest(&info.package_dir);
    let local = manifest(&shared().main.package_dir);
    let (rd, ld) = (durations(&remote), durations(&local));
    assert_eq!(
        rd.len(),
        ld.len(),
        "segment counts: runner {rd:?}, local {ld:?}"
    );
    for (i, (r, l)) in rd.iter().zip(&ld).enumerate() {
        assert!(
            (r - l).abs() < 1e-3,
            "segment {i}: runner {r} s, local {l} s"
        );
    }
    let names = |m: &Value| -> Vec<String> {
        m["renditions"]
            .as_array()
            .expect("renditions")
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(names(&remote), names(&local));
    assert_eq!(info.renditions, shared().main.renditions);
    for r in names(&remote) {
        for i in 0..rd.len() {
            assert!(info
                .package_dir
                .join(&r)
                .join(format!("{i:05}.ts"))
                .is_file());
        }
    }

    // A buyer plays it end to end (published when ready, as a local package would be).
    let buyer = server.user("runner-buyer", false);
    server.grant(&admin, &film, &buyer);
    let pb = server.playback(&buyer, &film);
    assert_eq!(pb.answer["entitlement"], "full", "{}", pb.answer);
    let decoded = ffmpeg_decode(&pb.master);
    assert!(
        decoded.ok && decoded.stderr.trim().is_empty(),
        "ffmpeg on the buyer's master: {decoded:?}"
    );
    assert!(
        (decoded.seconds - MAIN_SECONDS).abs() <= 1.0,
        "decoded {} s of a {MAIN_SECONDS} s film",
        decoded.seconds
    );
    // The runner's run is counted in /metrics as a local one is.
    let metrics_token = std::fs::read_to_string(server.root.join("keys/metrics.token"))
        .expect("keys/metrics.token");
    let metrics = server
        .get("/metrics", Some(metrics_token.trim()))
        .expect(200, "metrics")
        .text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cinegate_job_duration_seconds_count{outcome=\"done\"} 1")),
        "no finished job in /metrics:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("job_duration"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The server never logged a token.
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    for secret in [&a.token, &b.token] {
        assert!(
            !log.contains(secret.as_str()),
            "the server log holds a runner token"
        );
    }
}

/// A runner call by hand: bearer runner token, optional lease token.
fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    lease: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = server.req(method, path).bearer_auth(token);
    if let Some(l) = lease {
        req = req.header("Cinegate-Lease", l);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    server.exec(req)
}

fn take_lease(server: &Server, token: &str) -> Value {
    call(
        server,
        Method::POST,
        "/api/v1/runner/lease",
        token,
        None,
        None,
    )
    .expect(200, "lease")
    .json()
}

#[test]
fn the_runner_protocol_refuses_revoked_tokens_stale_leases_and_escaping_paths() {
    let server = origin();
    let admin = server.user("runner-admin", true);
    let r = issue(&server, &admin, "by-hand");

    // Nothing queued: 204. No token, a made-up one: 401.
    let none = call(
        &server,
        Method::POST,
        "/api/v1/runner/lease",
        &r.token,
        None,
        None,
    );
    assert_eq!(none.status, 204, "{}", none.brief());
    server
        .call(Method::POST, "/api/v1/runner/lease", None, None)
        .expect_error(401, "unauthenticated", "no runner token");
    call(
        &server,
        Method::POST,
        "/api/v1/runner/lease",
        "cgr_madeup",
        None,
        None,
    )
    .expect_error(401, "invalid_token", "a made-up runner token");

    let (film, job) = server.ingest(&src_other(), "By hand", false);
    let first = take_lease(&server, &r.token);
    assert_eq!(first["job_id"], job.as_str());
    assert_eq!(first["attempt"], 1);
    assert_eq!(
        first["film_secret"].as_str().map(str::len),
        Some(64),
        "{first}"
    );
    assert_eq!(first["transcode"]["ladder"], "360:600k,240:300k", "{first}");
    let stale = first["lease_token"]
        .as_str()
        .expect("lease token")
        .to_string();
    let base = format!("/api/v1/runner/jobs/{job}");

    // The source: Range gives 206, an If-Range that no longer matches gives it all.
    let src = &first["source"];
    let length = src["length"].as_u64().expect("length");
    let url = src["url"].as_str().expect("url");
    let whole = server.exec(
        server
            .req(Method::GET, url)
            .bearer_auth(&r.token)
            .header("Cinegate-Lease", &stale),
    );
    assert_eq!(whole.status, 200, "{}", whole.brief());
    assert_eq!(whole.body.len() as u64, length);
    let etag = whole.header("etag").expect("ETag").to_string();
    assert_eq!(
        etag,
        format!("\"{}\"", src["sha256"].as_str().unwrap_or(""))
    );
    let part = server.exec(
        server
            .req(Method::GET, url)
            .bearer_auth(&r.token)
            .header("Cinegate-Lease", &stale)
            .header("Range", "bytes=10-")
            .header("If-Range", &etag),
    );
    assert_eq!(part.status, 206, "{}", part.brief());
    assert_eq!(part.body, whole.body[10..]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-{}/{length}", length - 1).as_str())
    );
    let changed = server.exec(
        server
            .req(Method::GET, url)
            .bearer_auth(&r.token)
            .header("Cinegate-Lease", &stale)
            .header("Range", "bytes=10-")
            .header("If-Range", "\"something-else\""),
    );
    assert_eq!(changed.status, 200, "{}", changed.brief());
    assert_eq!(changed.body, whole.body);

    // Upload paths that leave the staging directory, or hide in it, are refused.
    let put = |path: &str, lease: &str| {
        server.exec(
            server
                .req(Method::PUT, &format!("{base}/files/{path}"))
                .bearer_auth(&r.token)
                .header("Cinegate-Lease", lease)
                .body(b"x".to_vec()),
        )
    };
    for bad in [".hidden", "a%20b", "360/.x", "a/b/c/d"] {
        put(bad, &stale).expect_error(422, "invalid_path", bad);
    }
    // `..` sent as it is (a client library would normalise it away).
    let raw = raw_request(
        server.port,
        &format!(
            "PUT {base}/files/../../../keys/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nCinegate-Lease: {stale}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
            r.token
        ),
    );
    raw.expect_error(422, "invalid_path", "a traversal upload");
    assert!(!server.root.join("keys/x").exists());
    let ok = put("360/00000.ts", &stale);
    assert_eq!(ok.status, 201, "{}", ok.brief());
    // A restarted upload learns what the origin already has, at the declared size.
    let targets = call(
        &server,
        Method::POST,
        &format!("{base}/uploads"),
        &r.token,
        Some(&stale),
        Some(json!({ "files": [
            { "path": "360/00000.ts", "size": 1 },
            { "path": "360/00001.ts", "size": 1 },
            { "path": "manifest.json", "size": 10 },
        ]})),
    )
    .expect(200, "upload targets")
    .json();
    let present: Vec<bool> = targets["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["present"].as_bool().unwrap_or(true))
        .collect();
    assert_eq!(present, [true, false, false], "{targets}");
    assert_eq!(
        targets["targets"][1]["url"],
        format!("{base}/files/360/00001.ts").as_str()
    );
    let held = call(
        &server,
        Method::GET,
        &format!("{base}/files"),
        &r.token,
        Some(&stale),
        None,
    )
    .expect(200, "files")
    .json();
    assert_eq!(
        held["files"],
        json!([{ "path": "360/00000.ts", "size": 1 }])
    );
    // Complete with a file declared but never sent: refused, nothing published.
    call(
        &server,
        Method::POST,
        &format!("{base}/complete"),
        &r.token,
        Some(&stale),
        Some(json!({ "files": [
            { "path": "360/00000.ts", "size": 1 },
            { "path": "manifest.json", "size": 10 },
        ]})),
    )
    .expect_error(422, "package_incomplete", "an incomplete package");
    // A long film's file list is past the apps' JSON limit (64 KiB), not past a runner's.
    let many: Vec<Value> = (0..6000)
        .map(|i| json!({ "path": format!("1080/{i:05}.ts"), "size": 1_500_000 }))
        .collect();
    call(
        &server,
        Method::POST,
        &format!("{base}/complete"),
        &r.token,
        Some(&stale),
        Some(json!({ "files": many })),
    )
    .expect_error(422, "package_incomplete", "a 6,000-file package list");

    // The lease lapses without heartbeats; the job is leased again, and the stale token
    // can neither heartbeat, upload nor complete.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j = server.job(&admin, &job);
        if j["state"] == "queued" {
            break;
        }
        assert!(Instant::now() < deadline, "the lease never lapsed: {j}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let second = take_lease(&server, &r.token);
    assert_eq!(second["attempt"], 2, "{second}");
    let fresh = second["lease_token"]
        .as_str()
        .expect("lease token")
        .to_string();
    assert_ne!(fresh, stale);
    call(
        &server,
        Method::POST,
        &format!("{base}/progress"),
        &r.token,
        Some(&stale),
        Some(json!({ "progress": 0.5 })),
    )
    .expect_error(409, "lease_lost", "a heartbeat with a stale lease");
    put("360/00001.ts", &stale).expect_error(409, "lease_lost", "an upload with a stale lease");
    call(
        &server,
        Method::POST,
        &format!("{base}/complete"),
        &r.token,
        Some(&stale),
        Some(json!({ "files": [{ "path": "360/00000.ts", "size": 1 }] })),
    )
    .expect_error(409, "lease_lost", "a completion with a stale lease");
    // The first attempt's uploads were dropped with its lease.
    assert!(!server
        .root
        .join(format!("media/films/{film}/pkg-{job}-a1.part"))
        .exists());
    let beat = call(
        &server,
        Method::POST,
        &format!("{base}/progress"),
        &r.token,
        Some(&fresh),
        Some(json!({ "progress": 0.25 })),
    );
    assert_eq!(beat.status, 200, "{}", beat.brief());
    assert_eq!(server.job(&admin, &job)["progress"], 0.25);

    // Revoked: the token is refused at once and its job goes back to the queue.
    server
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/runners/{}", r.id),
            Some(&admin.access),
            None,
        )
        .expect(204, "revoke");
    call(
        &server,
        Method::POST,
        "/api/v1/runner/lease",
        &r.token,
        None,
        None,
    )
    .expect_error(401, "invalid_token", "a revoked runner token");
    let j = server.job(&admin, &job);
    assert_eq!(j["state"], "queued", "{j}");
    assert!(j["lease"].is_null(), "{j}");
    server
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/runners/{}", r.id),
            Some(&admin.access),
            None,
        )
        .expect_error(404, "not_found", "revoking twice");
    // Another runner takes it and reports the packager's refusal: failed with its code
    // and message, as a local failure is recorded.
    let other = issue(&server, &admin, "reporter");
    let third = take_lease(&server, &other.token);
    assert_eq!(third["attempt"], 3, "{third}");
    let lease = third["lease_token"].as_str().expect("lease token");
    call(
        &server,
        Method::POST,
        &format!("{base}/fail"),
        &other.token,
        Some(lease),
        Some(json!({ "code": "Not Media!", "message": "x" })),
    )
    .expect_error(422, "invalid_input", "a code that is not snake_case");
    let failed = call(
        &server,
        Method::POST,
        &format!("{base}/fail"),
        &other.token,
        Some(lease),
        Some(
            json!({ "code": "not_media", "message": "the file is not a film", "retryable": false }),
        ),
    )
    .expect(200, "fail")
    .json();
    assert_eq!(failed["state"], "failed", "{failed}");
    let j = server.job(&admin, &job);
    assert_eq!(j["error"]["code"], "not_media", "{j}");
    assert_eq!(j["error"]["message"], "the file is not a film", "{j}");
    assert!(j["lease"].is_null(), "{j}");
    // A viewer cannot issue tokens.
    let viewer = server.user("runner-viewer", false);
    server
        .post(
            "/api/v1/admin/runners",
            Some(&viewer.access),
            json!({ "name": "x" }),
        )
        .expect_error(403, "admin_only", "a viewer issuing a runner token");
}

/// The console's Runners page in a real browser (`console_runners.mjs`).
#[test]
fn the_console_issues_lists_and_revokes_runners() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(&[("CINEGATE_TRANSCODE__WORKERS", "0")]);
    let admin = server.user("runner-console-admin", true);
    // A runner holding a job at 40%, for the list.
    let busy = issue(&server, &admin, "busy-box");
    let (_film, job) = server.ingest(&src_other(), "Night <train>", false);
    let grant = take_lease(&server, &busy.token);
    let lease = grant["lease_token"].as_str().ok_or("lease token")?;
    let beat = call(
        &server,
        Method::POST,
        &format!("/api/v1/runner/jobs/{job}/progress"),
        &busy.token,
        Some(lease),
        Some(json!({ "progress": 0.4 })),
    );
    assert_eq!(beat.status, 200, "{}", beat.brief());
    let out = crate::harness::browser::run_browser(
        "console_runners.mjs",
        &[
            ("BASE_URL", server.base.clone()),
            ("ADMIN_TOKEN", server.login_link_token(&admin.email)),
            ("BUSY_NAME", "busy-box".to_string()),
            ("FILM_TITLE", "Night <train>".to_string()),
        ],
    )?;
    assert!(out.contains("ok the runners page reads at 360 px"), "{out}");
    Ok(())
}

/// Ctrl-C or SIGTERM on a runner mid-job gives the job back at once (not after the lease
/// lapses: the lease here is the default minute) and the runner exits cleanly.
#[test]
fn a_runner_stopped_with_sigterm_gives_its_job_back() {
    let server = Server::start(&[("CINEGATE_TRANSCODE__WORKERS", "0")]);
    let admin = server.user("runner-stop-admin", true);
    let r = issue(&server, &admin, "stopping");
    let (_film, job) = server.ingest(&src_main(), "Given back", false);
    let mut runner = RunnerProcess::start(&server, &r.token, "stop");
    // Packaging under way (the heartbeat comes only every 20 s with this lease, so the
    // runner's own log says when it started).
    runner.wait_packaging(&server, &admin, &job, &r.id);
    let stopped = Instant::now();
    let pid = runner.child.id().to_string();
    testkit::process::run_ok(Command::new("kill").args(["-TERM", &pid]));
    let status = loop {
        if let Some(s) = runner.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "the runner did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "runner exit {status}: {}", runner.log());
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "given back only after {:?}",
        stopped.elapsed()
    );
    let j = server.job(&admin, &job);
    assert_eq!(j["state"], "queued", "{j}");
    assert!(j["lease"].is_null(), "{j}");
    assert_eq!(j["attempts"], 1, "{j}");
    assert!(runner.log().contains("given back"), "{}", runner.log());
    assert!(
        files_under(&server.root.join("runner-stop")).is_empty(),
        "the runner left its work behind"
    );
}

/// A runner talks to its origin over HTTPS (`tls.mode = "files"`, a private CA given with
/// `--ca-file`); a plain `http://` origin that is not loopback is refused.
#[test]
fn a_runner_packages_over_https_with_a_private_ca() {
    let pki = tempfile::tempdir().expect("tempdir");
    let dir = pki.path();
    crate::tls::make_ca(dir);
    crate::tls::make_leaf(dir, "leaf", "IP:127.0.0.1");
    let cert = dir.join("leaf.pem").to_string_lossy().into_owned();
    let key = dir.join("leaf.key").to_string_lossy().into_owned();
    let server = Server::start(&[
        ("CINEGATE_TRANSCODE__WORKERS", "0"),
        ("CINEGATE_TLS__MODE", "files"),
        ("CINEGATE_TLS__LISTEN", "127.0.0.1:0"),
        ("CINEGATE_TLS__CERT_FILE", &cert),
        ("CINEGATE_TLS__KEY_FILE", &key),
        ("CINEGATE_TLS__REDIRECT", "false"),
    ]);
    let https = format!(
        "https://127.0.0.1:{}",
        server.https_port.expect("HTTPS port")
    );
    let admin = server.user("runner-tls-admin", true);
    let r = issue(&server, &admin, "over-tls");
    let (_film, job) = server.ingest(&src_other(), "Over HTTPS", false);
    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    let runner = RunnerProcess::start_at(&server, &https, &["--ca-file", &ca], &r.token, "tls");
    server.wait_job_ready(&admin, &job, Duration::from_secs(120));
    runner.wait_log("job complete");

    let plain = Command::new(BIN)
        .args(["runner", "--origin", "http://films.example.com", "--once"])
        .env("CINEGATE_RUNNER_TOKEN", &r.token)
        .output()
        .expect("run cinegate runner");
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(
        !plain.status.success() && err.contains("--origin must be https://"),
        "{err}"
    );
}

/// An admin cancels a job a runner is packaging: the runner's next heartbeat is refused
/// (409 `lease_lost`), it stops packaging, discards the work and goes on polling.
#[test]
fn a_runner_whose_job_is_cancelled_discards_it_and_carries_on() {
    let server = origin();
    let admin = server.user("runner-cancel-admin", true);
    let r = issue(&server, &admin, "cancelled");
    let (film, job) = server.ingest(&src_main(), "Cancelled", false);
    let mut runner = RunnerProcess::start(&server, &r.token, "cancel");
    runner.wait_packaging(&server, &admin, &job, &r.id);
    let cancelled = server
        .post(
            &format!("/api/v1/admin/jobs/{job}/cancel"),
            Some(&admin.access),
            json!({}),
        )
        .expect(202, "cancel")
        .json();
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !runner.log().contains("lease lost") {
        assert!(
            Instant::now() < deadline,
            "the runner never noticed: {}",
            runner.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Discarded (the work dir emptied) and still running, polling for the next job.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !files_under(&server.root.join("runner-cancel")).is_empty() {
        assert!(Instant::now() < deadline, "the work was kept");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        runner.child.try_wait().expect("wait").is_none(),
        "the runner exited"
    );
    let j = server.job(&admin, &job);
    assert_eq!(j["state"], "cancelled", "{j}");
    assert!(
        !server.root.join("media/films").join(&film).exists()
            || std::fs::read_dir(server.root.join("media/films").join(&film))
                .map(|d| d.count() == 0)
                .unwrap_or(true),
        "something of the cancelled job was published"
    );
}
