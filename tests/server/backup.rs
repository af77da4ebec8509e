//! `cinegate backup` from a running server and `cinegate restore` into a new data root
//! (issue 19, "Backup and restore"): everything comes back — the buyer's whole film
//! decodes through the restored server, the non-buyer gets the preview, comments,
//! progress and orders are there — and a truncated or tampered archive writes nothing.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::decode::ffmpeg_decode;

use crate::harness::films::film_info;
use crate::harness::media::{src_main, src_other, MAIN_SECONDS};
use crate::harness::server::{Server, BIN, FAST_PACE};

const DEV: (&str, &str) = ("CINEGATE_PAYMENTS__DEV__ENABLED", "true");

/// `cinegate ARGS` with the data root and keys under `root`, no other configuration.
fn cinegate(root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("CINEGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CINEGATE_MEDIA_DIR", root.join("media"))
        .env("CINEGATE_KEYS_DIR", root.join("keys"))
        .env("NO_COLOR", "1")
        .args(args)
        .current_dir(root)
        .output()
        .expect("run cinegate")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

/// The restore refused `archive` with a message containing `want`, and wrote nothing.
fn refused(archive: &Path, want: &str) {
    let root = tempfile::tempdir().unwrap();
    let o = cinegate(root.path(), &["restore", archive.to_str().unwrap()]);
    assert!(!o.status.success(), "restored: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(want),
        "want {want:?} in the refusal: {}",
        text(&o)
    );
    let left = files(root.path());
    assert!(left.is_empty(), "a refused restore wrote {left:?}");
    assert!(!root.path().join("media").exists() && !root.path().join("keys").exists());
}

#[test]
fn a_backup_of_a_running_server_restores_whole_and_a_bad_archive_writes_nothing() {
    let s = Server::start(&[DEV, FAST_PACE]);
    let admin = s.user("bk-admin", true);
    let buyer = s.user("bk-buyer", false);
    let other = s.user("bk-other", false);
    let film = s.priced_film(&admin, &src_main(), "Backup main", 500);
    let second = s.priced_film(&admin, &src_other(), "Backup other", 300);
    let order = s.buy_with_dev(&buyer, &film);
    let info = film_info(&s, &admin, &film);
    let rung = info.renditions[0].clone();
    // Progress: the buyer watches the first segments.
    let pb = s.playback(&buyer, &film);
    assert_eq!(pb.answer["entitlement"], "full", "{}", pb.answer);
    for i in 0..2 {
        s.get(&pb.path(&format!("keys/{i}.key")), None)
            .expect(200, "key");
        s.get(&pb.path(&format!("{rung}/{i:05}.ts")), None)
            .expect(200, "segment");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let coverage = loop {
        let c = s.progress(&buyer, &film)["coverage"]
            .as_f64()
            .unwrap_or(0.0);
        if c > 0.0 || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(coverage > 0.0, "no progress recorded before the backup");
    s.post(
        &format!("/api/v1/films/{film}/comments"),
        Some(&admin.access),
        json!({ "body": "kept across a backup" }),
    )
    .expect(201, "comment");

    // A client keeps fetching a segment while the backup runs: the server stays up.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let fetcher = {
        let (stop, served) = (stop.clone(), served.clone());
        let url = s.url(&pb.path(&format!("{rung}/00000.ts")));
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let r = http.get(&url).send().expect("segment during the backup");
                assert_eq!(r.status(), 200, "a segment failed during the backup");
                served.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let out = tempfile::tempdir().unwrap();
    let full = out.path().join("full.tar.gz");
    let bare = out.path().join("bare.tar.gz");
    let said = s.cli(&["backup", "--out", full.to_str().unwrap()]);
    assert!(said.contains("backup written"), "{said}");
    s.cli(&["backup", "--out", bare.to_str().unwrap(), "--without-media"]);
    stop.store(true, Ordering::Relaxed);
    fetcher.join().expect("fetcher");
    assert!(
        served.load(Ordering::Relaxed) > 0,
        "no segment fetched during the backup"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&full).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the archive holds secrets");
    assert!(!full.with_extension("gz.partial").exists());
    let leftovers: Vec<_> = files(&s.root.join("media"))
        .into_iter()
        .filter(|f| f.contains(".snapshot"))
        .collect();
    assert!(leftovers.is_empty(), "snapshot files left: {leftovers:?}");

    // Restore into a new root and serve from it.
    let root2 = tempfile::tempdir().unwrap();
    let o = cinegate(root2.path(), &["restore", full.to_str().unwrap()]);
    assert!(o.status.success(), "restore: {}", text(&o));
    // Restoring again over it is refused, naming the directory.
    let again = cinegate(root2.path(), &["restore", full.to_str().unwrap()]);
    assert!(
        !again.status.success() && String::from_utf8_lossy(&again.stderr).contains("is not empty"),
        "{}",
        text(&again)
    );
    let s2 = Server::start_on(root2.path().to_path_buf(), &[DEV, FAST_PACE]);
    // The access tokens signed before the backup verify: the keys came back.
    let pb2 = s2.playback(&buyer, &film);
    assert_eq!(pb2.answer["entitlement"], "full", "{}", pb2.answer);
    let decoded = ffmpeg_decode(&pb2.master);
    assert!(
        decoded.ok && (decoded.seconds - MAIN_SECONDS).abs() <= 1.0,
        "the buyer's film does not decode whole after the restore: {decoded:?}"
    );
    let preview = s2.playback(&other, &film);
    assert_eq!(
        preview.answer["entitlement"], "preview",
        "{}",
        preview.answer
    );
    let second_pb = s2.playback(&other, &second);
    assert_eq!(second_pb.answer["entitlement"], "preview");
    let o2 = s2
        .get(&format!("/api/v1/orders/{order}"), Some(&buyer.access))
        .expect(200, "order after restore")
        .json();
    assert_eq!(o2["state"], "captured", "{o2}");
    let c2 = s2.progress(&buyer, &film)["coverage"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        c2 >= coverage,
        "progress {c2} after the restore, {coverage} before"
    );
    let comments = s2
        .get(
            &format!("/api/v1/films/{film}/comments"),
            Some(&admin.access),
        )
        .expect(200, "comments")
        .text();
    assert!(comments.contains("kept across a backup"), "{comments}");
    drop(s2);

    // Without media: no segments in the archive; the restore says which films lack them.
    let root3 = tempfile::tempdir().unwrap();
    let o = cinegate(root3.path(), &["restore", bare.to_str().unwrap()]);
    assert!(o.status.success(), "restore without media: {}", text(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("--without-media") && said.contains(&film),
        "{said}"
    );
    let restored = files(&root3.path().join("media/films"));
    assert!(
        restored.iter().any(|f| f.ends_with("manifest.json")),
        "{restored:?}"
    );
    assert!(!restored.iter().any(|f| f.ends_with(".ts")), "{restored:?}");
    // The films were unpublished (their segments are not there): viewers do not get them,
    // an admin still sees the record and the package manifest.
    let s3 = Server::start_on(root3.path().to_path_buf(), &[DEV, FAST_PACE]);
    let r = s3.post(
        &format!("/api/v1/films/{film}/playback"),
        Some(&buyer.access),
        json!({}),
    );
    assert_eq!(
        r.status,
        404,
        "playback of a film restored without media: {}",
        r.brief()
    );
    let view = s3
        .get(&format!("/api/v1/admin/films/{film}"), Some(&admin.access))
        .expect(200, "admin film")
        .json();
    assert_eq!(view["published"], false, "{view}");
    drop(s3);

    // Truncated: refused, nothing written.
    let bytes = std::fs::read(&full).unwrap();
    let cut = out.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    refused(&cut, "cannot be read");
    // One byte of a key file changed (the gzip made again, so only the manifest sees it).
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let at = {
        let mut ar = tar::Archive::new(&tar_bytes[..]);
        let e = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().starts_with("keys/films") && e.size() > 0)
            .expect("a film secret in the archive");
        e.raw_file_position() as usize
    };
    tar_bytes[at] ^= 1;
    let changed = out.path().join("changed.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_bytes).unwrap();
    std::fs::write(&changed, gz.finish().unwrap()).unwrap();
    refused(&changed, "does not match the manifest");

    // With no server running, the CLI snapshots the store itself.
    let mut s = s;
    s.stop();
    let direct = out.path().join("direct.tar.gz");
    s.cli(&[
        "backup",
        "--out",
        direct.to_str().unwrap(),
        "--without-media",
    ]);
    let root4 = tempfile::tempdir().unwrap();
    let o = cinegate(root4.path(), &["restore", direct.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "restore of a direct backup: {}",
        text(&o)
    );
    assert!(root4.path().join("media/store").is_dir());
    assert!(root4.path().join("keys/films").is_dir());
}
