//! Packages on S3-compatible storage (issue 20) against a real distributed store: a
//! 3-node Garage cluster (replication 3) with nginx as the CDN (`harness::garage`).
//! Garage is the judge of what cinegate sends (signatures, region, permissions), ffmpeg
//! of what a player gets, and the bucket listing of what was published.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use serde_json::json;
use testkit::decode::{decode, ffmpeg_decode};

use crate::harness::garage::Garage;
use crate::harness::media::{src_main, src_other, FPS, MAIN_SECONDS};
use crate::harness::playback::preview_of;
use crate::harness::server::{Server, BIN};

const DEV: (&str, &str) = ("CINEGATE_PAYMENTS__DEV__ENABLED", "true");

/// The `[storage]` settings that point a server at `garage` under `prefix`: node 0's S3
/// API (the tests that kill a node kill another), the CDN for players.
pub(crate) fn s3_env(garage: &Garage, prefix: &str) -> Vec<(String, String)> {
    let s = |k: &str, v: &str| (k.to_string(), v.to_string());
    vec![
        s("CINEGATE_STORAGE__MODE", "s3"),
        s("CINEGATE_STORAGE__ENDPOINT", &garage.s3_endpoint()),
        s("CINEGATE_STORAGE__REGION", garage.region()),
        s("CINEGATE_STORAGE__BUCKET", garage.bucket()),
        s("CINEGATE_STORAGE__PREFIX", prefix),
        s("CINEGATE_STORAGE__ACCESS_KEY_ID", garage.access_key_id()),
        s(
            "CINEGATE_STORAGE__SECRET_ACCESS_KEY",
            garage.secret_access_key(),
        ),
        s(
            "CINEGATE_STORAGE__PUBLIC_BASE_URL",
            &format!("{}/", garage.cdn_base_url()),
        ),
    ]
}

pub(crate) fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// One cluster for the tests that neither kill a node nor change the key's rights.
fn shared_garage() -> &'static Garage {
    static GARAGE: OnceLock<Garage> = OnceLock::new();
    GARAGE.get_or_init(Garage::start)
}

/// The `.ts` files under `dir`.
fn local_segments(dir: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.extension().is_some_and(|x| x == "ts") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

/// The URIs of a media playlist's segments.
fn segment_uris(playlist: &[u8]) -> Vec<String> {
    let parsed = m3u8_rs::parse_media_playlist_res(playlist)
        .unwrap_or_else(|e| panic!("media playlist does not parse: {e:?}"));
    parsed.segments.into_iter().map(|s| s.uri).collect()
}

/// A counter's value in a `/metrics` scrape (the sample without labels).
pub(crate) fn counter(s: &Server, name: &str) -> f64 {
    let token = std::fs::read_to_string(s.root.join("keys/metrics.token")).expect("metrics token");
    let text = String::from_utf8(s.get("/metrics", Some(token.trim())).body).expect("utf-8");
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = rest.strip_prefix("_total").unwrap_or(rest);
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no {name} in the scrape:\n{text}"))
}

fn decrypts_to_ts(key: &[u8], index: u64, data: &[u8]) -> bool {
    let mut iv = [0u8; 16];
    iv[8..].copy_from_slice(&index.to_be_bytes());
    let Ok(cipher) = cbc::Decryptor::<aes::Aes128>::new_from_slices(key, &iv) else {
        return false;
    };
    cipher
        .decrypt_padded_vec_mut::<Pkcs7>(data)
        .is_ok_and(|p| !p.is_empty() && p.len() % 188 == 0 && p.chunks(188).all(|c| c[0] == 0x47))
}

#[test]
fn a_bought_film_plays_from_the_bucket_behind_the_cdn_and_the_gate_holds() {
    let mut garage = Garage::start();
    let (healthy, ready) = garage.startup_times();
    eprintln!("garage: healthy after {healthy:?}, ready after {ready:?}");
    let env = s3_env(&garage, "play/");
    let mut extra = pairs(&env);
    extra.push(DEV);
    let s = Server::start(&extra);
    let admin = s.user("bucket-admin", true);
    let started = Instant::now();
    let film = s.priced_film(&admin, &src_main(), "From the bucket", 500);
    eprintln!("packaged and published in {:?}", started.elapsed());

    // Published: every segment of both rungs, the poster and the manifest, under the
    // package's own prefix; the origin keeps no segment.
    let keys = garage.list_keys(&format!("play/films/{film}/"));
    let n = 11;
    assert_eq!(keys.len(), 2 * n + 2, "objects in the bucket: {keys:#?}");
    assert!(keys.iter().any(|k| k.ends_with("/manifest.json")));
    assert!(keys.iter().any(|k| k.ends_with("/poster.jpg")));
    assert!(keys.iter().any(|k| k.ends_with("/360/00010.ts")));
    let film_dir = s.root.join("media/films").join(&film);
    assert_eq!(local_segments(&film_dir), 0, "segments left on the origin");
    // The catalogue still has its poster (kept on the origin).
    s.get(&format!("/api/v1/films/{film}/poster.jpg"), None)
        .expect(200, "poster");

    // The buyer: the whole film, segments from the CDN, playlists and keys from the origin.
    let buyer = s.user("bucket-buyer", false);
    s.buy_with_dev(&buyer, &film);
    let pb = s.playback(&buyer, &film);
    assert_eq!(pb.answer["entitlement"], "full", "{}", pb.answer);
    let cdn = garage.cdn_base_url();
    let media = s.get(&pb.path("360/index.m3u8"), None);
    media.expect(200, "media playlist");
    let uris = segment_uris(&media.body);
    assert_eq!(uris.len(), n);
    for (i, uri) in uris.iter().enumerate() {
        assert!(
            uri.starts_with(&format!("{cdn}/play/films/{film}/pkg-"))
                && uri.ends_with(&format!("/360/{i:05}.ts")),
            "segment {i} URI {uri}"
        );
    }
    let text = String::from_utf8_lossy(&media.body);
    assert!(text.contains("URI=\"../keys/0.key\""), "{text}");
    let decoded = ffmpeg_decode(&pb.master);
    assert!(decoded.ok, "ffmpeg on the buyer's master: {decoded:?}");
    assert!(
        (decoded.seconds - MAIN_SECONDS).abs() <= 1.0
            && (decoded.frames as f64 - MAIN_SECONDS * FPS).abs() <= FPS,
        "buyer decoded {decoded:?}"
    );
    assert_eq!(
        counter(&s, "cinegate_segments_served"),
        0.0,
        "the origin served segment bytes"
    );
    assert!(counter(&s, "cinegate_keys_served") >= n as f64);

    // The non-buyer: P segments listed, keys past P refused, the preview plays.
    let p = preview_of(n);
    let viewer = s.user("bucket-viewer", false);
    let pv = s.playback(&viewer, &film);
    assert_eq!(pv.answer["entitlement"], "preview", "{}", pv.answer);
    let media = s.get(&pv.path("360/index.m3u8"), None);
    assert_eq!(segment_uris(&media.body).len(), p, "preview playlist");
    s.get(&pv.path(&format!("keys/{p}.key")), None)
        .expect_error(403, "preview_ended", "key P for a non-buyer");
    let decoded = ffmpeg_decode(&pv.master);
    let preview_seconds = MAIN_SECONDS * p as f64 / n as f64;
    assert!(
        decoded.ok && (decoded.seconds - preview_seconds).abs() <= 1.0,
        "preview decoded {decoded:?}, want {preview_seconds} s"
    );

    // A paid segment fetched straight from the CDN is ciphertext to the non-buyer: no key
    // they may fetch opens it, while the buyer's key for it does.
    let http = reqwest::blocking::Client::new();
    let paid_url = uris[p].clone();
    let paid = http.get(&paid_url).send().expect("CDN GET");
    assert_eq!(paid.status(), 200, "{paid_url}");
    let paid = paid.bytes().expect("body").to_vec();
    for i in 0..p {
        let key = s.get(&pv.path(&format!("keys/{i}.key")), None);
        key.expect(200, "preview key");
        assert!(
            !decrypts_to_ts(&key.body, p as u64, &paid),
            "preview key {i} decrypted paid segment {p}"
        );
    }
    let key = s.get(&pb.path(&format!("keys/{p}.key")), None);
    key.expect(200, "the buyer's key P");
    assert!(decrypts_to_ts(&key.body, p as u64, &paid));

    // One Garage node killed: the CDN reads from the other two, the film still plays.
    garage.kill_node(1);
    let decoded = ffmpeg_decode(&s.playback(&buyer, &film).master);
    assert!(
        decoded.ok && (decoded.seconds - MAIN_SECONDS).abs() <= 1.0,
        "with a node down: {decoded:?}"
    );

    // Deleting the film deletes its objects.
    let r = s.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/admin/films/{film}"),
        Some(&admin.access),
        None,
    );
    assert!((200..300).contains(&r.status), "delete: {}", r.brief());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = garage.list_keys(&format!("play/films/{film}/"));
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "objects left after delete: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `cinegate serve` with `extra` on a fresh root: (exit success, stderr).
fn serve_once(extra: &[(String, String)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("CINEGATE_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .arg("serve")
        .env("CINEGATE_LISTEN", "127.0.0.1:0")
        .env("CINEGATE_MEDIA_DIR", dir.path().join("media"))
        .env("CINEGATE_KEYS_DIR", dir.path().join("keys"))
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cinegate serve");
    // A server that starts would run forever: give it a bounded time to refuse.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_bucket_settings_stop_the_start_naming_the_key() {
    let garage = shared_garage();
    let good = s3_env(garage, "bad/");
    let free_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let unreachable = format!("http://127.0.0.1:{free_port}");
    let cases: [(&str, &str, &str); 6] = [
        (
            "CINEGATE_STORAGE__SECRET_ACCESS_KEY",
            "not-the-secret-0123456789",
            "storage.secret_access_key",
        ),
        (
            "CINEGATE_STORAGE__ACCESS_KEY_ID",
            "GKnosuchkey0000000000000",
            "storage.access_key_id",
        ),
        (
            "CINEGATE_STORAGE__BUCKET",
            "no-such-bucket",
            "storage.bucket",
        ),
        ("CINEGATE_STORAGE__REGION", "eu-west-3", "storage.region"),
        (
            "CINEGATE_STORAGE__ENDPOINT",
            &unreachable,
            "storage.endpoint",
        ),
        // Refused by validation, before any request.
        (
            "CINEGATE_STORAGE__PUBLIC_BASE_URL",
            "",
            "storage.public_base_url",
        ),
    ];
    for (key, value, named) in cases {
        let mut env = good.clone();
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
        let started = Instant::now();
        let (ok, stderr) = serve_once(&env);
        assert!(
            !ok && stderr.contains(named),
            "{key}={value}: want a refusal naming {named}, got ok={ok}: {stderr}"
        );
        assert!(
            !stderr.contains(garage.secret_access_key()),
            "the secret was printed: {stderr}"
        );
        eprintln!("{key}: refused in {:?}", started.elapsed());
    }
    // Nothing was written by the refused starts.
    assert_eq!(garage.list_keys("bad/"), Vec::<String>::new());
}

#[test]
fn a_refused_upload_publishes_nothing_and_the_retry_resumes_it() {
    let garage = Garage::start();
    let env = s3_env(&garage, "retry/");
    let s = Server::start(&pairs(&env));
    let admin = s.user("retry-admin", true);
    // The server started with a key that may write; now it may not.
    garage.set_key_write(false);
    let (film, job) = s.ingest(&src_other(), "Refused", true);
    let deadline = Instant::now() + Duration::from_secs(180);
    let failed = loop {
        let j = s.job(&admin, &job);
        match j["state"].as_str() {
            Some("failed") => break j,
            Some("ready") => panic!("published without write access: {j}"),
            _ if Instant::now() > deadline => panic!("job did not fail: {j}"),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    assert_eq!(failed["error"]["code"], "storage_unavailable", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("storage.access_key_id"), "{failed}");
    // Not published: no package recorded, nothing a viewer can open.
    let admin_view = s
        .get(&format!("/api/v1/admin/films/{film}"), Some(&admin.access))
        .json();
    assert!(admin_view["package"].is_null(), "{admin_view}");
    s.get(&format!("/api/v1/films/{film}"), None).expect_error(
        404,
        "not_found",
        "an unpublished film",
    );
    assert!(garage.list_keys(&format!("retry/films/{film}/")).is_empty());

    // Write access back, the job retried: the upload resumes from the package on disk
    // (no second packaging) and the film is published.
    garage.set_key_write(true);
    s.post(
        &format!("/api/v1/admin/jobs/{job}/retry"),
        Some(&admin.access),
        json!({}),
    )
    .expect(202, "retry");
    s.wait_job_ready(&admin, &job, Duration::from_secs(120));
    assert!(
        s.log_tail(400).contains("resuming its upload"),
        "the retry packaged again: {}",
        s.log_tail(40)
    );
    let keys = garage.list_keys(&format!("retry/films/{film}/"));
    assert_eq!(keys.len(), 2 * 2 + 2, "{keys:#?}");
    let viewer = s.user("retry-viewer", false);
    s.grant(&admin, &film, &viewer);
    let decoded = ffmpeg_decode(&s.playback(&viewer, &film).master);
    assert!(
        decoded.ok && (decoded.seconds - 12.0).abs() <= 1.0,
        "{decoded:?}"
    );
}

#[test]
fn storage_migrate_moves_a_film_while_it_plays() {
    let garage = shared_garage();
    let root: PathBuf = tempfile::Builder::new()
        .prefix("cinegate-test-migrate-")
        .tempdir()
        .expect("tempdir")
        .keep();
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(root.clone());

    // Packaged while the server stored films locally…
    let film = {
        let s = Server::start_on(root.clone(), &[]);
        let admin = s.user("migrate-admin", true);
        let (film, job) = s.ingest(&src_main(), "Moved", true);
        s.wait_job_ready(&admin, &job, Duration::from_secs(180));
        film
    };
    // …then the server runs with the bucket; the film is still served from disk.
    let env = s3_env(garage, "migrate/");
    let s = Server::start_on(root.clone(), &pairs(&env));
    let admin = s.user("migrate-admin-2", true);
    let viewer = s.user("migrate-viewer", false);
    s.grant(&admin, &film, &viewer);
    let before = s.playback(&viewer, &film);
    let media = s.get(&before.path("360/index.m3u8"), None);
    assert_eq!(
        segment_uris(&media.body)[0],
        "00000.ts",
        "served locally first"
    );

    // A player reads the film at 3× real time (~22 s) while the packages move.
    let master = before.master.clone();
    let player =
        std::thread::spawn(move || decode(&["-readrate", "3"], &master, &["0:v:0", "0:a:0"]));
    std::thread::sleep(Duration::from_secs(3));
    let out = s.cli(&["storage", "migrate"]);
    assert!(out.contains("1 film(s) moved"), "{out}");
    let decoded = player.join().expect("player thread");
    assert!(
        decoded.ok
            && (decoded.seconds - MAIN_SECONDS).abs() <= 1.0
            && (decoded.frames as f64 - MAIN_SECONDS * FPS).abs() <= FPS,
        "the player through the move: {decoded:?}"
    );
    assert_eq!(
        garage.list_keys(&format!("migrate/films/{film}/")).len(),
        2 * 11 + 2
    );

    // New playlists name the bucket; the local files stay until the old tokens expire.
    let after = s.playback(&viewer, &film);
    let media = s.get(&after.path("360/index.m3u8"), None);
    assert!(
        segment_uris(&media.body)[0].starts_with(&garage.cdn_base_url()),
        "{}",
        String::from_utf8_lossy(&media.body)
    );
    let before_count = counter(&s, "cinegate_segments_served");
    let decoded = ffmpeg_decode(&after.master);
    assert!(decoded.ok, "{decoded:?}");
    assert_eq!(
        counter(&s, "cinegate_segments_served"),
        before_count,
        "after the move the origin served segment bytes"
    );
    assert_eq!(
        local_segments(&s.root.join("media/films").join(&film)),
        2 * 11,
        "local copies kept through the grace period"
    );
    // Running it again moves nothing.
    let out = s.cli(&["storage", "migrate"]);
    assert!(out.contains("0 film(s) moved"), "{out}");
}

#[test]
fn a_private_bucket_is_played_through_presigned_urls() {
    let garage = shared_garage();
    let mut env = s3_env(garage, "private/");
    env.retain(|(k, _)| k != "CINEGATE_STORAGE__PUBLIC_BASE_URL");
    env.push(("CINEGATE_STORAGE__PRESIGN_TTL".into(), "9h".into()));
    let s = Server::start(&pairs(&env));
    let admin = s.user("presign-admin", true);
    let (film, job) = s.ingest(&src_other(), "Private", true);
    s.wait_job_ready(&admin, &job, Duration::from_secs(180));
    let buyer = s.user("presign-buyer", false);
    s.grant(&admin, &film, &buyer);
    let pb = s.playback(&buyer, &film);
    let media = s.get(&pb.path("360/index.m3u8"), None);
    let uris = segment_uris(&media.body);
    assert_eq!(uris.len(), 2);
    for uri in &uris {
        assert!(
            uri.starts_with(&format!(
                "{}/cinegate/private/films/{film}/",
                garage.s3_endpoint()
            )) && uri.contains("X-Amz-Expires=32400")
                && uri.contains("X-Amz-Signature="),
            "{uri}"
        );
    }
    // Not readable without the signature: the bucket is not public on the S3 API.
    let unsigned = uris[0].split('?').next().unwrap_or_default();
    let status = reqwest::blocking::get(unsigned).expect("GET").status();
    assert_eq!(status, 403, "unsigned GET of {unsigned}");
    let decoded = ffmpeg_decode(&pb.master);
    assert!(
        decoded.ok && (decoded.seconds - 12.0).abs() <= 1.0,
        "{decoded:?}"
    );
    // A player holding an origin segment URL is sent to a signed one, past the gate.
    let r = s.get(&pb.path("360/00001.ts"), None);
    assert_eq!(r.status, 302, "{}", r.brief());
    let location = r.header("location").unwrap_or_default().to_string();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let viewer = s.user("presign-viewer", false);
    let pv = s.playback(&viewer, &film);
    assert_eq!(
        segment_uris(&s.get(&pv.path("360/index.m3u8"), None).body).len(),
        1
    );
    s.get(&pv.path("360/00001.ts"), None).expect_error(
        403,
        "preview_ended",
        "segment P through the origin",
    );
}

/// A runner's package goes straight to the bucket by presigned PUTs (the runner holds no
/// bucket credentials), the origin checks the objects and keeps only manifest and poster.
#[test]
fn a_runner_uploads_its_package_to_the_bucket() {
    use crate::runners::{issue, RunnerProcess};
    let garage = shared_garage();
    let mut env = s3_env(garage, "runner/");
    env.push(("CINEGATE_TRANSCODE__WORKERS".into(), "0".into()));
    env.push(("CINEGATE_RUNNERS__LEASE_TTL".into(), "3s".into()));
    let s = Server::start(&pairs(&env));
    let admin = s.user("bucket-runner-admin", true);
    let issued = issue(&s, &admin, "bucket-runner");
    let runner = RunnerProcess::start(&s, &issued.token, "bucket");
    let (film, job) = s.ingest(&src_other(), "Packaged elsewhere", true);
    let done = s.wait_job_ready(&admin, &job, Duration::from_secs(180));
    let keys = garage.list_keys(&format!("runner/films/{film}/"));
    assert_eq!(keys.len(), 2 * 2 + 2, "{keys:#?}\n{done}\n{}", runner.log());
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("runner/films/{film}/pkg-{job}-a1/"))),
        "{keys:#?}"
    );
    // The origin received no segment: its copy is the manifest and poster only.
    let film_dir = s.root.join("media/films").join(&film);
    assert_eq!(local_segments(&film_dir), 0);
    assert!(film_dir
        .join(format!("pkg-{job}-a1/manifest.json"))
        .is_file());
    assert!(!runner.log().contains(garage.secret_access_key()));
    let viewer = s.user("bucket-runner-viewer", false);
    s.grant(&admin, &film, &viewer);
    let pb = s.playback(&viewer, &film);
    let uris = segment_uris(&s.get(&pb.path("360/index.m3u8"), None).body);
    assert!(uris[0].starts_with(&garage.cdn_base_url()), "{uris:?}");
    let decoded = ffmpeg_decode(&pb.master);
    assert!(
        decoded.ok && (decoded.seconds - 12.0).abs() <= 1.0,
        "{decoded:?}"
    );
    assert_eq!(counter(&s, "cinegate_segments_served"), 0.0);
}
