//! A crash during packaging: SIGKILL while a job runs, restart on the same directories.
//! The job is re-queued and completes, no staging directory survives, and the catalogue
//! never offers a half-made package.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use testkit::decode::ffmpeg_decode;

use crate::harness::media::{src_main, MAIN_SECONDS};
use crate::harness::server::Server;

/// Entries under media/films/*/ whose names mark an unfinished package.
fn staging_dirs(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(films) = std::fs::read_dir(root.join("media/films")) else {
        return out;
    };
    for film in films.flatten() {
        if let Ok(entries) = std::fs::read_dir(film.path()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains(".partial-") {
                    out.push(format!("{}/{name}", film.file_name().to_string_lossy()));
                }
            }
        }
    }
    out
}

fn catalog_has(s: &Server, film: &str) -> usize {
    s.get("/api/v1/films", None).expect(200, "catalogue").json()["films"]
        .as_array()
        .expect("films")
        .iter()
        .filter(|f| f["id"] == film)
        .count()
}

/// If the catalogue lists the film, what it serves must be a finished package on disk.
fn assert_listed_means_complete(s: &Server, admin_token: &str, film: &str, when: &str) {
    if catalog_has(s, film) == 0 {
        let r = s.get(&format!("/api/v1/films/{film}"), None);
        assert_eq!(r.status, 404, "{when}: unlisted film detail {}", r.brief());
        return;
    }
    let view: Value = s
        .get(&format!("/api/v1/admin/films/{film}"), Some(admin_token))
        .expect(200, "admin film")
        .json();
    let dir = view["package"]["dir"]
        .as_str()
        .unwrap_or_else(|| panic!("{when}: listed without a package: {view}"));
    let pkg = s.root.join("media/films").join(film).join(dir);
    assert!(
        !dir.contains(".partial-") && pkg.join("manifest.json").is_file(),
        "{when}: the catalogue lists a film whose package {} is not finished",
        pkg.display()
    );
}

#[test]
fn sigkill_during_a_job_then_restart_completes_it() {
    let mut s = Server::start(&[]);
    let admin = s.user("crash-admin", true);
    let created = Instant::now();
    let (film, job) = s.ingest(&src_main(), "Crash film", true);

    // Wait until it is really packaging.
    let deadline = Instant::now() + Duration::from_secs(90);
    let before = loop {
        let j = s.job(&admin, &job);
        // Running with progress, and past the store's background flush window (500 ms)
        // for the records made before, so the crash tests the job, not that window.
        if j["state"] == "running"
            && j["progress"].as_f64().unwrap_or(0.0) > 0.0
            && created.elapsed() > Duration::from_secs(3)
        {
            break j;
        }
        assert!(
            j["state"] == "queued" || j["state"] == "running",
            "job ended before the crash: {j}"
        );
        assert!(Instant::now() < deadline, "job never ran: {j}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let progress_before = before["progress"].as_f64().unwrap();
    assert!(
        progress_before < 0.9,
        "job nearly done before the kill: {before}"
    );
    assert_eq!(catalog_has(&s, &film), 0, "listed while packaging");
    let staging = staging_dirs(&s.root);
    assert!(
        !staging.is_empty(),
        "no staging directory while the job runs (progress {progress_before})"
    );

    let lived = created.elapsed();
    s.kill9();
    // The crash left the staging directory behind.
    assert!(
        !staging_dirs(&s.root).is_empty(),
        "staging disappeared although the server was killed"
    );
    s.restart();
    let me = s.get("/api/v1/me", Some(&admin.access));
    assert_eq!(
        me.status,
        200,
        "the admin created {lived:?} before the SIGKILL is gone after the restart: {}",
        me.brief()
    );

    let after = s.job(&admin, &job);
    assert!(
        after["state"] == "queued" || after["state"] == "running",
        "after the restart the job is {after}, want re-queued"
    );
    assert!(
        after["progress"].as_f64().unwrap_or(1.0) <= progress_before,
        "progress did not restart: {after}"
    );
    assert_eq!(catalog_has(&s, &film), 0, "listed right after the restart");

    // Poll to the end; the catalogue never shows a half package.
    let deadline = Instant::now() + Duration::from_secs(240);
    let done = loop {
        assert_listed_means_complete(&s, &admin.access, &film, "during the re-run");
        let j = s.job(&admin, &job);
        match j["state"].as_str() {
            Some("ready") => break j,
            Some("queued") | Some("running") => {}
            _ => panic!("re-queued job ended {j}; log:\n{}", s.log_tail(30)),
        }
        assert!(
            Instant::now() < deadline,
            "job not ready after restart: {j}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["progress"].as_f64(), Some(1.0), "{done}");
    assert!(done["error"].is_null(), "{done}");

    let left = staging_dirs(&s.root);
    assert!(left.is_empty(), "staging directories left: {left:?}");
    let pkgs: Vec<String> = std::fs::read_dir(s.root.join("media/films").join(&film))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        pkgs.iter().filter(|n| n.starts_with("pkg-")).count(),
        1,
        "package directories: {pkgs:?}"
    );
    assert_eq!(
        catalog_has(&s, &film),
        1,
        "the film is listed exactly once when ready"
    );
    assert_listed_means_complete(&s, &admin.access, &film, "after the re-run");

    // And it plays whole.
    let viewer = s.user("crash-viewer", false);
    s.grant(&admin, &film, &viewer);
    let pb = s.playback(&viewer, &film);
    let decoded = ffmpeg_decode(&pb.master);
    assert!(
        decoded.ok
            && decoded.stderr.trim().is_empty()
            && (decoded.seconds - MAIN_SECONDS).abs() <= 1.0,
        "the recovered film does not play whole: {decoded:?}"
    );
}

/// SIGTERM with a player's idle keep-alive connection open (HLS players keep theirs between
/// segments): the server closes it and exits at once, instead of holding the worker until
/// the 30 s shutdown timeout (the harness would SIGKILL it after 20 s).
#[test]
fn sigterm_with_idle_keep_alive_connections_stops_promptly() {
    use std::io::{Read, Write};
    let mut s = Server::start(&[]);
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).expect("response");
    assert_eq!(
        &first, b"HTTP/1.1 200",
        "healthz on a keep-alive connection"
    );
    let started = Instant::now();
    s.stop();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "shutdown with an idle keep-alive connection took {took:?}"
    );
}

/// A film record that no longer decodes (a schema change, a bad disk), written while the
/// server is stopped: the server answers 500 `record_unreadable` with a generic message,
/// says what is wrong in its log, and leaves the record's bytes as they were. GET and
/// publish meet it in a plain read; PATCH reads nothing before `store::update`, so it is
/// the update that meets it (sled's `fetch_and_update` deleted such a record, and the
/// PATCH answered 404).
#[test]
fn an_unreadable_film_record_is_reported_and_kept() {
    let mut s = Server::start(&[]);
    let admin = s.user("corrupt-admin", true);
    let film = s.create_film(&admin, "Soon unreadable");
    s.stop();

    let unreadable: &[u8] =
        br#"{"id":"schema-2","title":{"en":"A film"},"created_at":"yesterday"}"#;
    let key = uuid::Uuid::parse_str(&film).expect("film id");
    let store_dir = s.root.join("media/store");
    {
        let db = sled::open(&store_dir).expect("open the stopped server's store");
        let films = db.open_tree("films").expect("films tree");
        assert!(films.get(key.as_bytes()).unwrap().is_some(), "film stored");
        films.insert(key.as_bytes(), unreadable).unwrap();
        db.flush().unwrap();
    }
    s.restart();

    let path = format!("/api/v1/admin/films/{film}");
    for r in [
        s.get(&path, Some(&admin.access)),
        s.call(
            reqwest::Method::PATCH,
            &path,
            Some(&admin.access),
            Some(serde_json::json!({ "title": "Renamed" })),
        ),
        s.post(
            &format!("{path}/publish"),
            Some(&admin.access),
            serde_json::json!({}),
        ),
    ] {
        r.expect_error(500, "record_unreadable", "a request on an unreadable film");
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            !message.contains("films") && !message.contains("schema-2"),
            "the client is told internals: {message}"
        );
    }
    assert!(
        s.log_tail(40).contains("is unreadable"),
        "the log does not say which record is unreadable: {}",
        s.log_tail(20)
    );

    s.stop();
    let db = sled::open(&store_dir).expect("reopen the store");
    let films = db.open_tree("films").expect("films tree");
    assert_eq!(
        films.get(key.as_bytes()).unwrap().as_deref(),
        Some(unreadable),
        "the unreadable record was changed or deleted"
    );
}

/// A job record that no longer decodes and that was running (for all its state field says)
/// when the server stopped. Start-up re-queues running jobs: it must log the record (tree
/// and key), leave it, and start. Cancelling it through the admin API reads nothing
/// before `store::update`, which answers 500 `record_unreadable` and keeps the bytes (the
/// old `fetch_and_update` deleted the record and the cancel answered 404).
#[test]
fn an_unreadable_job_record_is_reported_and_kept() {
    let mut s = Server::start(&[]);
    let admin = s.user("corrupt-job-admin", true);
    s.stop();

    let unreadable: &[u8] = br#"{"id":"schema-2","state":"running","film_id":{"v":2}}"#;
    let key = uuid::Uuid::now_v7();
    let hex_key = key.simple().to_string();
    let store_dir = s.root.join("media/store");
    {
        let db = sled::open(&store_dir).expect("open the stopped server's store");
        let jobs = db.open_tree("jobs").expect("jobs tree");
        jobs.insert(key.as_bytes(), unreadable).unwrap();
        db.flush().unwrap();
    }
    // Panics if the server does not come up.
    s.restart();
    let log = s.log_tail(60);
    assert!(
        log.contains("unreadable job record") && log.contains(&hex_key),
        "start-up does not name the unreadable job record: {log}"
    );

    let r = s.post(
        &format!("/api/v1/admin/jobs/{key}/cancel"),
        Some(&admin.access),
        serde_json::json!({}),
    );
    r.expect_error(500, "record_unreadable", "cancelling an unreadable job");
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        !message.contains("jobs") && !message.contains("schema-2"),
        "the client is told internals: {message}"
    );
    let log = s.log_tail(40);
    assert!(
        log.contains("is unreadable") && log.contains(&hex_key),
        "the log does not say which record is unreadable: {log}"
    );

    s.stop();
    let db = sled::open(&store_dir).expect("reopen the store");
    let jobs = db.open_tree("jobs").expect("jobs tree");
    assert_eq!(
        jobs.get(key.as_bytes()).unwrap().as_deref(),
        Some(unreadable),
        "the unreadable job record was changed or deleted"
    );
}

/// `/healthz` proves that the store answers without reading the catalogue: with hundreds
/// of film records that no longer decode (written while the server was stopped), it still
/// answers 200 `{"status":"ok"}`. A check that decoded the films would fail at the first
/// one, and would cost more with every film added.
#[test]
fn healthz_reads_no_film_records() {
    let mut s = Server::start(&[]);
    s.get("/healthz", None).expect(200, "healthz");
    s.stop();

    let store_dir = s.root.join("media/store");
    {
        let db = sled::open(&store_dir).expect("open the stopped server's store");
        let films = db.open_tree("films").expect("films tree");
        for _ in 0..500 {
            let key = uuid::Uuid::now_v7();
            films
                .insert(key.as_bytes(), br#"{"id":"schema-2"}"#.as_slice())
                .unwrap();
        }
        db.flush().unwrap();
    }
    s.restart();

    let r = s.get("/healthz", None);
    r.expect(200, "healthz with 500 unreadable film records");
    assert_eq!(r.json(), serde_json::json!({ "status": "ok" }));
}
