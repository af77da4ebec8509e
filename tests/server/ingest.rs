//! Ingest over HTTP: size limit, refusal of non-films, tus uploads interrupted and
//! resumed, and what viewers see of films that are not published and packaged.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::media::{sources, src_other};
use crate::harness::peer_scripts::python_json;
use crate::harness::server::Server;
use crate::harness::shared::{shared, SHARED_MAX_BYTES};
use crate::harness::users::User;

fn admin_film(s: &Server, admin: &User, id: &str) -> Value {
    s.get(&format!("/api/v1/admin/films/{id}"), Some(&admin.access))
        .expect(200, "admin film")
        .json()
}

/// Jobs (in the global list) that belong to FILM.
fn jobs_of(s: &Server, admin: &User, film: &str) -> Vec<Value> {
    s.jobs(admin)
        .into_iter()
        .filter(|j| j["film_id"] == film)
        .collect()
}

fn catalog_ids(s: &Server) -> Vec<String> {
    s.get("/api/v1/films", None).expect(200, "catalogue").json()["films"]
        .as_array()
        .expect("films")
        .iter()
        .map(|f| f["id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Files under uploads/incoming (the plain-upload scratch area); other tests may be
/// uploading at the same time, so wait a little for it to drain.
fn assert_no_scratch_left(s: &Server, what: &str) {
    let dir = s.root.join("media/uploads/incoming");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: upload scratch files left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tus creation request (`POST /api/v1/admin/uploads`) for `length` bytes of `film`'s
/// source; disk.rs's space guard tests send it too.
pub(super) fn tus_create(
    s: &Server,
    admin: &User,
    film: &str,
    length: u64,
) -> reqwest::blocking::RequestBuilder {
    use base64::Engine as _;
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    s.req(Method::POST, "/api/v1/admin/uploads")
        .bearer_auth(&admin.access)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .header(
            "Upload-Metadata",
            format!("film_id {},filename {}", b64(film), b64("source.mp4")),
        )
}

#[derive(Debug, PartialEq, Eq)]
enum Reuse {
    /// The next request on the connection got this status line.
    Answered(String),
    /// The server closed the connection (what `Connection: close` announces).
    Closed,
    /// The server left the next request unanswered for this many seconds, then closed.
    ClosedLate(u64),
    /// Neither within 10 s.
    Hung,
}

/// `PUT …/source` with a chunked body of `total` bytes sent by a second thread while this
/// one reads the response; then `GET /healthz` on the same connection.
fn chunked_put_then_reuse(
    s: &Server,
    admin: &User,
    film: &str,
    total: usize,
) -> (Option<String>, Next) {
    use std::io::Read;
    let mut tcp = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "PUT /api/v1/admin/films/{film}/source HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        s.port, admin.access
    );
    tcp.write_all(head.as_bytes()).unwrap();
    let mut writer = tcp.try_clone().unwrap();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let chunk = vec![0x47u8; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            writer.write_all(format!("{n:x}\r\n").as_bytes())?;
            writer.write_all(&chunk[..n])?;
            writer.write_all(b"\r\n")?;
            sent += n;
        }
        writer.write_all(b"0\r\n\r\n")
    });
    // The response: headers, then Content-Length bytes.
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => {
                return (
                    None,
                    Next {
                        reuse: Reuse::Closed,
                        announced_close: false,
                    },
                )
            }
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head.split_whitespace().nth(1).map(str::to_string);
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let announced_close = head.to_ascii_lowercase().contains("connection: close");
    let closed_early = Next {
        reuse: Reuse::Closed,
        announced_close,
    };
    if tcp.read_exact(&mut body).is_err() {
        return (status, closed_early);
    }
    // The client finishes its request body (or learns that the server stopped reading).
    match sender.join().unwrap() {
        Ok(()) => {}
        Err(_) => return (status, closed_early),
    }
    if tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return (status, closed_early);
    }
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut next = [0u8; 64];
    let asked = Instant::now();
    let closed = || match asked.elapsed().as_secs() {
        0 | 1 => Reuse::Closed,
        late => Reuse::ClosedLate(late),
    };
    let reuse = match tcp.read(&mut next) {
        Ok(0) => closed(),
        Ok(n) => Reuse::Answered(
            String::from_utf8_lossy(&next[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        ),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Reuse::Hung
        }
        Err(_) => closed(),
    };
    if announced_close {
        // RFC 9112 §9.6: after `Connection: close` a client must send nothing more on
        // the connection, so the server's duty is to answer nothing more. (actix leaves
        // a connection open when a request was pipelined behind the close; a compliant
        // client never does that, and the socket is reclaimed on its timeout.)
        assert!(
            !matches!(reuse, Reuse::Answered(_)),
            "announced Connection: close but answered another request: {reuse:?}"
        );
    }
    (
        status,
        Next {
            reuse,
            announced_close,
        },
    )
}

#[derive(Debug)]
struct Next {
    reuse: Reuse,
    announced_close: bool,
}

#[test]
fn oversize_uploads_get_413_and_leave_nothing() {
    let sh = shared();
    let (s, admin) = (&sh.server, &sh.admin);
    let film = s.create_film(admin, "Too big");
    let too_big = vec![0x47u8; (SHARED_MAX_BYTES + 1) as usize];

    // Declared length over the limit.
    s.put_source(admin, &film, too_big.clone()).expect_error(
        413,
        "upload_too_large",
        "PUT with Content-Length over the limit",
    );

    // Chunked, no declared length: refused once the limit is crossed. Raw socket, so the
    // connection is ours: after the 413 the client finishes its body and asks again on the
    // same connection; the server must answer or close it, not leave it hanging.
    // The hang below is a race in the server; three rounds make it show reliably.
    for round in 1..=3 {
        let (status, next) = chunked_put_then_reuse(s, admin, &film, too_big.len() + (1 << 20));
        assert_eq!(
            status.as_deref(),
            Some("413"),
            "chunked PUT over the limit, round {round}"
        );
        // With `Connection: close` announced, the helper has already checked that nothing
        // more is answered; without it, the next request must be answered or refused by
        // closing, never left hanging.
        assert!(
            next.announced_close || matches!(next.reuse, Reuse::Answered(_) | Reuse::Closed),
            "round {round}: after answering 413 to a chunked PUT, the server kept the \
             connection open (no `Connection: close`) and did not answer the next request \
             sent on it: {:?}",
            next.reuse
        );
    }

    // tus: refused at creation.
    s.exec(tus_create(s, admin, &film, SHARED_MAX_BYTES + 1))
        .expect_error(413, "upload_too_large", "tus creation over the limit");

    assert!(jobs_of(s, admin, &film).is_empty(), "a job was queued");
    let view = admin_film(s, admin, &film);
    assert_eq!(view["status"], "draft", "{view}");
    assert!(view["source"].is_null(), "a source was recorded: {view}");
    assert!(!s.root.join("media/uploads").join(&film).exists());
    assert_no_scratch_left(s, "oversize");
}

#[test]
fn non_films_get_422_naming_the_reason_and_nothing_is_queued() {
    let sh = shared();
    let (s, admin) = (&sh.server, &sh.admin);
    let film = s.create_film(admin, "Not a film");
    let mut random = vec![0u8; 200_000];
    let mut x: u32 = 0x1234_5678;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let read = |p: &Path| std::fs::read(p).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a text file",
            "This is a text file, not a film.\n"
                .repeat(200)
                .into_bytes(),
            "not_media",
        ),
        ("random bytes", random, "not_media"),
        (
            "an audio-only m4a",
            read(&sources().audio_only()),
            "no_video",
        ),
        (
            "a video track with no frames",
            read(&sources().zero_duration()),
            "zero_duration",
        ),
        (
            "a faststart mp4 cut in half",
            read(&sources().truncated_mp4()),
            "truncated",
        ),
    ];
    for (what, body, code) in &cases {
        s.put_source(admin, &film, body.clone())
            .expect_error(422, code, &format!("PUT {what}"));
    }

    // The same through tus: the last PATCH answers 422 and the upload is gone.
    let text = cases[0].1.clone();
    let created = s.exec(tus_create(s, admin, &film, text.len() as u64));
    created.expect(201, "tus create");
    let location = created.header("location").expect("Location").to_string();
    let location = &location[location.find("/api/").expect("path")..];
    let last = s.exec(
        s.req(Method::PATCH, location)
            .bearer_auth(&admin.access)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", "0")
            .header("Content-Type", "application/offset+octet-stream")
            .body(text),
    );
    last.expect_error(422, "not_media", "tus upload of a text file");
    assert!(last.header("cinegate-job-id").is_none());

    assert!(
        jobs_of(s, admin, &film).is_empty(),
        "jobs were queued for refused files: {:?}",
        jobs_of(s, admin, &film)
    );
    let view = admin_film(s, admin, &film);
    assert_eq!(view["status"], "draft", "{view}");
    assert!(view["jobs"].as_array().is_some_and(Vec::is_empty), "{view}");
    assert!(
        !s.root.join("media/uploads").join(&film).exists(),
        "a refused source was kept under uploads/{film}"
    );
    assert_no_scratch_left(s, "non-film");
}

/// tus: one chunk with `tuspy`, then a PATCH whose connection drops half way, then a new
/// `tuspy` uploader that asks HEAD for the offset and finishes. The film packages, and
/// stays invisible to viewers until it is published.
#[test]
fn an_interrupted_tus_upload_resumes_and_the_film_packages() {
    let sh = shared();
    let (s, admin) = (&sh.server, &sh.admin);
    let src = src_other();
    let size = std::fs::metadata(&src).unwrap().len();
    let chunk: u64 = 64 * 1024;
    assert!(size > 3 * chunk, "source too small for this test: {size}");
    let film = s.create_film(admin, "Resumed upload");
    let src_arg = src.to_string_lossy().into_owned();

    // 1. tuspy: create and send one chunk, then stop.
    let started = python_json(
        "tus_upload.py",
        &[
            "start",
            &s.url("/api/v1/admin/uploads"),
            &admin.access,
            &src_arg,
            &film,
            &chunk.to_string(),
        ],
    );
    assert_eq!(started["offset"], chunk, "{started}");
    let url = started["url"].as_str().expect("upload url").to_string();
    let path = url[url.find("/api/").expect("upload path")..].to_string();
    let head = |what: &str| -> u64 {
        let r = s.exec(
            s.req(Method::HEAD, &path)
                .bearer_auth(&admin.access)
                .header("Tus-Resumable", "1.0.0"),
        );
        r.expect(200, what);
        r.header("upload-offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no Upload-Offset in {:?}", r.headers))
    };
    assert_eq!(head("HEAD after one chunk"), chunk);

    // 2. A PATCH that promises the rest but the connection drops after 128 KiB.
    let data = std::fs::read(&src).unwrap();
    let sent = 128 * 1024;
    {
        let mut tcp = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\
             Tus-Resumable: 1.0.0\r\nUpload-Offset: {chunk}\r\n\
             Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
            s.port,
            admin.access,
            size - chunk
        );
        tcp.write_all(head.as_bytes()).unwrap();
        tcp.write_all(&data[chunk as usize..chunk as usize + sent])
            .unwrap();
        tcp.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        tcp.shutdown(std::net::Shutdown::Both).unwrap();
    }
    // The server keeps what arrived.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut offset = head("HEAD after the drop");
    while offset == chunk && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        offset = head("HEAD after the drop");
    }
    assert!(
        offset > chunk && offset <= chunk + sent as u64,
        "after a dropped PATCH of {sent} bytes from {chunk}, HEAD says {offset}"
    );

    // 3. A new tuspy uploader resumes from HEAD's offset and finishes.
    let resumed = python_json(
        "tus_upload.py",
        &["resume", &url, &admin.access, &src_arg, &chunk.to_string()],
    );
    assert_eq!(resumed["start_offset"], offset, "{resumed}");
    assert_eq!(resumed["final_offset"], size, "{resumed}");
    let job_id = resumed["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no Cinegate-Job-Id on the last PATCH: {resumed}"))
        .to_string();
    let job = s.job(admin, &job_id);
    assert_eq!(job["film_id"], film.as_str(), "{job}");
    s.wait_job_ready(admin, &job_id, Duration::from_secs(120));

    // The bytes that arrived in three pieces make the whole film.
    let view = admin_film(s, admin, &film);
    assert_eq!(view["source"]["bytes"], size, "{view}");
    assert_eq!(view["status"], "ready", "{view}");
    let duration = view["package"]["duration"].as_f64().expect("duration");
    assert!(
        (duration - 12.0).abs() < 0.5,
        "packaged {duration} s of 12 s"
    );

    // Packaged but not published: invisible.
    let viewer = s.user("unpublished", false);
    assert!(
        !catalog_ids(s).contains(&film),
        "an unpublished film is listed"
    );
    s.get(&format!("/api/v1/films/{film}"), None).expect_error(
        404,
        "not_found",
        "detail of an unpublished film",
    );
    let r = s.post(
        &format!("/api/v1/films/{film}/playback"),
        Some(&viewer.access),
        json!({}),
    );
    assert_eq!(
        r.status,
        404,
        "playback of an unpublished film: {}",
        r.brief()
    );

    // Published: visible and playable; unpublished again: gone, old tokens included.
    s.post(
        &format!("/api/v1/admin/films/{film}/publish"),
        Some(&admin.access),
        json!({}),
    )
    .expect(200, "publish");
    assert!(
        catalog_ids(s).contains(&film),
        "a published film is not listed"
    );
    let pb = s.playback(&viewer, &film);
    s.get(&pb.path("master.m3u8"), None).expect(200, "master");
    s.post(
        &format!("/api/v1/admin/films/{film}/unpublish"),
        Some(&admin.access),
        json!({}),
    )
    .expect(200, "unpublish");
    assert!(
        !catalog_ids(s).contains(&film),
        "an unpublished film is listed"
    );
    let r = s.get(&pb.path("master.m3u8"), None);
    assert_eq!(r.status, 404, "token of an unpublished film: {}", r.brief());
}

#[test]
fn drafts_are_invisible_to_viewers() {
    let sh = shared();
    let (s, admin) = (&sh.server, &sh.admin);
    let draft = s.create_film(admin, "Secret draft");
    let viewer = s.user("draft-viewer", false);
    let view = admin_film(s, admin, &draft);
    assert_eq!(view["status"], "draft", "{view}");

    let listed = s.get("/api/v1/films", None).expect(200, "catalogue").json();
    assert!(
        !catalog_ids(s).contains(&draft),
        "a draft is in the catalogue: {listed}"
    );
    assert!(
        catalog_ids(s).contains(&sh.main.id),
        "the published film is missing from the catalogue: {listed}"
    );
    for bearer in [None, Some(viewer.access.as_str())] {
        s.get(&format!("/api/v1/films/{draft}"), bearer)
            .expect_error(404, "not_found", "detail of a draft");
        let r = s.get(&format!("/api/v1/films/{draft}/poster.jpg"), bearer);
        assert_eq!(r.status, 404, "poster of a draft: {}", r.brief());
    }
    let r = s.post(
        &format!("/api/v1/films/{draft}/playback"),
        Some(&viewer.access),
        json!({}),
    );
    assert_eq!(r.status, 404, "playback of a draft: {}", r.brief());
    let r = s.get(
        &format!("/api/v1/films/{draft}/progress"),
        Some(&viewer.access),
    );
    assert_eq!(r.status, 404, "progress of a draft: {}", r.brief());
    // Nothing to publish yet.
    s.post(
        &format!("/api/v1/admin/films/{draft}/publish"),
        Some(&admin.access),
        json!({}),
    )
    .expect_error(409, "not_ready", "publishing a draft without a package");
    assert!(!catalog_ids(s).contains(&draft));
    // The admin sees it.
    let all = s
        .get("/api/v1/admin/films", Some(&admin.access))
        .expect(200, "admin films")
        .json();
    assert!(
        all["films"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["id"] == draft.as_str())),
        "the admin list misses the draft"
    );
}
