//! Playback through the gate with independent clients: the ffmpeg CLI as the HLS player,
//! Python's `m3u8` as the playlist parser; progress measured from what was served.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use serde_json::Value;

use testkit::decode::ffmpeg_decode;
use testkit::probe::format_duration;
use testkit::sources::{lavfi_av, with, X264};

use crate::harness::media::{sources, src_main, FPS, MAIN_SECONDS};
use crate::harness::peer_scripts::python_json;
use crate::harness::playback::preview_of;
use crate::harness::raw::{parse_response, raw_exchange, raw_request};
use crate::harness::server::Server;
use crate::harness::shared::shared;
use crate::harness::users::User;

const EPS: f64 = 1e-9;

fn f64_of(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not an integer in {v}"))
}

/// GET an `/hls/` path, asserting 200; returns the body.
fn fetch_ok(server: &Server, path: &str) -> Vec<u8> {
    let r = server.get(path, None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.brief());
    r.body
}

fn progress_of_film(server: &Server, user: &User, film: &str) -> Value {
    server.progress(user, film)
}

#[test]
fn ffmpeg_plays_everything_for_a_grantee_and_only_the_preview_otherwise() {
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let n = f.segments;
    let p = preview_of(n);
    assert_eq!(n, 11, "a 66 s source in 6 s segments");
    assert_eq!(f.preview, p, "catalog preview_segments for N = {n}");
    let source_seconds = format_duration(src_main());
    assert!((source_seconds - MAIN_SECONDS).abs() < 0.1);

    let buyer = s.user("buyer", false);
    s.grant(&sh.admin, &f.id, &buyer);
    let viewer = s.user("previewer", false);

    // The buyer: the whole film, decrypted and decoded by ffmpeg over HTTP.
    let full = s.playback(&buyer, &f.id);
    assert_eq!(full.answer["entitlement"], "full", "{}", full.answer);
    assert_eq!(u64_of(&full.answer, "total_segments"), n as u64);
    assert_eq!(u64_of(&full.answer, "preview_segments"), p as u64);
    let probed = format_duration(&full.master);
    assert!(
        (probed - source_seconds).abs() <= 1.0,
        "ffprobe of the buyer's master: {probed} s, source {source_seconds} s"
    );
    let decoded = ffmpeg_decode(&full.master);
    assert!(
        decoded.ok && decoded.stderr.trim().is_empty(),
        "ffmpeg on the buyer's master: {decoded:?}"
    );
    assert!(
        (decoded.seconds - source_seconds).abs() <= 1.0,
        "buyer decoded {} s of a {source_seconds} s film ({decoded:?})",
        decoded.seconds
    );
    let want_frames = source_seconds * FPS;
    assert!(
        (decoded.frames as f64 - want_frames).abs() <= FPS,
        "buyer decoded {} frames, source has {want_frames}",
        decoded.frames
    );

    // The non-buyer: only the first P segments.
    let preview = s.playback(&viewer, &f.id);
    assert_eq!(
        preview.answer["entitlement"], "preview",
        "{}",
        preview.answer
    );
    assert_eq!(u64_of(&preview.answer, "preview_segments"), p as u64);
    assert_eq!(u64_of(&preview.answer, "total_segments"), n as u64);
    let preview_seconds = source_seconds * p as f64 / n as f64; // 6 s segments: 12 s
    let probed = format_duration(&preview.master);
    assert!(
        (probed - preview_seconds).abs() <= 1.0,
        "ffprobe of the preview master: {probed} s, want {preview_seconds} s"
    );
    let decoded = ffmpeg_decode(&preview.master);
    assert!(
        decoded.ok && decoded.stderr.trim().is_empty(),
        "ffmpeg on the preview master: {decoded:?}"
    );
    assert!(
        (decoded.seconds - preview_seconds).abs() <= 1.0,
        "preview viewer decoded {} s, want {preview_seconds} s (P = {p} of N = {n})",
        decoded.seconds
    );
    assert!(
        (decoded.frames as f64 - preview_seconds * FPS).abs() <= FPS,
        "preview viewer decoded {} frames, want {}",
        decoded.frames,
        preview_seconds * FPS
    );

    // Direct requests past the boundary: 403 preview_ended for segment and key P (and the
    // last index); P-1 is still served.
    for r in &f.renditions {
        s.get(&preview.path(&format!("{r}/{p:05}.ts")), None)
            .expect_error(
                403,
                "preview_ended",
                &format!("preview viewer, {r} segment {p}"),
            );
        s.get(&preview.path(&format!("{r}/{:05}.ts", n - 1)), None)
            .expect_error(
                403,
                "preview_ended",
                &format!("preview viewer, {r} last segment"),
            );
        fetch_ok(s, &preview.path(&format!("{r}/{:05}.ts", p - 1)));
    }
    let refused = s.get(&preview.path(&format!("keys/{p}.key")), None);
    refused.expect_error(403, "preview_ended", "preview viewer, key P");
    assert_eq!(
        refused.header("cache-control"),
        Some("no-store"),
        "a key refusal must not be cached"
    );
    assert_eq!(
        fetch_ok(s, &preview.path(&format!("keys/{}.key", p - 1))).len(),
        16
    );

    // Progress, as the server measured it from those requests.
    let pb = progress_of_film(s, &buyer, &f.id);
    assert!(f64_of(&pb, "coverage") >= 0.99, "buyer progress {pb}");
    assert_eq!(
        u64_of(&pb, "covered_segments"),
        n as u64,
        "buyer progress {pb}"
    );
    assert_eq!(
        u64_of(&pb, "total_segments"),
        n as u64,
        "buyer progress {pb}"
    );
    assert_eq!(pb["unlocked"], true, "buyer progress {pb}");
    assert_eq!(
        u64_of(&pb, "last_segment"),
        (n - 1) as u64,
        "buyer progress {pb}"
    );
    let watched = f64_of(&pb, "watch_seconds");
    assert!(
        watched >= 0.9 * source_seconds && watched <= source_seconds + 6.5,
        "buyer watch_seconds {watched} for a {source_seconds} s film watched once"
    );

    let pv = progress_of_film(s, &viewer, &f.id);
    eprintln!("buyer progress {pb}\npreview progress {pv}");
    let want = p as f64 / n as f64;
    assert_eq!(
        u64_of(&pv, "covered_segments"),
        p as u64,
        "preview progress {pv}"
    );
    assert!(
        (f64_of(&pv, "coverage") - want).abs() < EPS,
        "preview coverage {pv}, want P/N = {want}"
    );
    assert_eq!(pv["unlocked"], false, "preview progress {pv}");

    // The same figures in the viewer's list.
    let mine = s
        .get("/api/v1/me/progress", Some(&buyer.access))
        .expect(200, "me/progress")
        .json();
    let entry = mine["films"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|e| e["film_id"] == f.id.as_str() || e["id"] == f.id.as_str())
        })
        .unwrap_or_else(|| panic!("film {} not in /me/progress: {mine}", f.id))
        .clone();
    assert!(
        f64_of(&entry, "coverage") >= 0.99,
        "/me/progress entry {entry}"
    );
    assert_eq!(entry["unlocked"], true, "/me/progress entry {entry}");
}

#[test]
fn requesting_only_the_last_tenth_unlocks_nothing() {
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let n = f.segments;
    let k = (n / 10).max(1); // the last 10% (floor): 1 of 11
    let jumper = s.user("jumper", false);
    s.grant(&sh.admin, &f.id, &jumper);
    let pb = s.playback(&jumper, &f.id);
    assert_eq!(pb.answer["entitlement"], "full");
    for i in n - k..n {
        assert_eq!(fetch_ok(s, &pb.path(&format!("keys/{i}.key"))).len(), 16);
        // The same index in every rendition counts once.
        for r in &f.renditions {
            fetch_ok(s, &pb.path(&format!("{r}/{i:05}.ts")));
        }
    }
    let pr = s.progress(&jumper, &f.id);
    let want = k as f64 / n as f64;
    assert_eq!(u64_of(&pr, "covered_segments"), k as u64, "progress {pr}");
    assert!(
        (f64_of(&pr, "coverage") - want).abs() < EPS && want <= 0.10 + EPS,
        "progress {pr}, want coverage {want}"
    );
    assert_eq!(
        pr["unlocked"], false,
        "jumping to the end must unlock nothing: {pr}"
    );
    assert_eq!(u64_of(&pr, "last_segment"), (n - 1) as u64, "progress {pr}");
}

/// The master the server serves, parsed by the PyPI `m3u8` package, carries what Apple's
/// HLS authoring specification asks of every variant (docs/PACKAGE-CONTRACT.md).
#[test]
fn served_master_describes_every_variant() {
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let buyer = s.user("m3u8-master", false);
    s.grant(&sh.admin, &f.id, &buyer);
    let pb = s.playback(&buyer, &f.id);
    let parsed = python_json("check_playlists.py", &[&pb.master]);
    assert_eq!(parsed["independent_segments"], true, "{parsed}");
    for v in parsed["variants"].as_array().expect("variants") {
        let peak = v["bandwidth"].as_u64().unwrap_or(0);
        let average = v["average_bandwidth"].as_u64().unwrap_or(0);
        assert!(average > 0 && average <= peak, "AVERAGE-BANDWIDTH: {v}");
        let rate = v["frame_rate"].as_f64().unwrap_or(0.0);
        assert!(rate > 0.0 && rate <= 120.0, "FRAME-RATE: {v}");
        assert_eq!(v["closed_captions"], "NONE", "CLOSED-CAPTIONS: {v}");
        assert!(v["resolution"].is_array(), "RESOLUTION: {v}");
        assert!(
            v["codecs"].as_str().is_some_and(|c| c.starts_with("avc1.")),
            "{v}"
        );
    }
}

/// The playlists, parsed by the PyPI `m3u8` package.
#[test]
fn playlists_parse_with_an_independent_parser() {
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let n = f.segments;
    let p = preview_of(n);
    let buyer = s.user("m3u8-buyer", false);
    s.grant(&sh.admin, &f.id, &buyer);
    let viewer = s.user("m3u8-viewer", false);

    for (who, user, count) in [("full", &buyer, n), ("preview", &viewer, p)] {
        let pb = s.playback(user, &f.id);
        // Content type and caching of what the parser reads.
        let master = s.get(&pb.path("master.m3u8"), None);
        master.expect(200, "master");
        assert_eq!(
            master.header("content-type"),
            Some("application/vnd.apple.mpegurl"),
            "{who} master content type"
        );
        let parsed = python_json("check_playlists.py", &[&pb.master]);
        assert_eq!(parsed["is_variant"], true, "{who}: {parsed}");
        let variants = parsed["variants"].as_array().expect("variants");
        assert_eq!(
            variants.len(),
            f.renditions.len(),
            "{who}: one variant per rendition {:?}: {parsed}",
            f.renditions
        );
        let mut heights = Vec::new();
        for v in variants {
            let rendition = v["uri"]
                .as_str()
                .and_then(|u| u.strip_suffix("/index.m3u8"))
                .unwrap_or_else(|| panic!("{who}: variant URI {}", v["uri"]));
            assert!(
                f.renditions.iter().any(|r| r == rendition),
                "{who}: variant {rendition} not a rendition of the package"
            );
            let height = v["resolution"][1].as_u64().expect("resolution");
            assert_eq!(height.to_string(), rendition, "{who}: {v}");
            heights.push(height);
            assert!(v["bandwidth"].as_u64().unwrap_or(0) > 0, "{who}: {v}");
            let codecs = v["codecs"].as_str().unwrap_or("");
            assert!(
                codecs.contains("avc1") && codecs.contains("mp4a"),
                "{who}: codecs {codecs:?}"
            );
            let media = &v["media"];
            assert_eq!(media["is_endlist"], true, "{who} {rendition}: no ENDLIST");
            assert_eq!(media["is_variant"], false);
            let segments = media["segments"].as_array().expect("segments");
            assert_eq!(
                segments.len(),
                count,
                "{who} {rendition}: segment count (N = {n}, P = {p})"
            );
            let target = media["target_duration"].as_f64().expect("target_duration");
            let mut total = 0.0;
            for (i, seg) in segments.iter().enumerate() {
                assert_eq!(seg["uri"], format!("{i:05}.ts"), "{who} {rendition} #{i}");
                let key = &seg["key"];
                assert_eq!(key["method"], "AES-128", "{who} {rendition} #{i}: {seg}");
                assert_eq!(key["uri"], format!("../keys/{i}.key"), "{who} #{i}");
                let iv = key["iv"].as_str().unwrap_or("").to_ascii_lowercase();
                assert_eq!(iv, format!("0x{i:032x}"), "{who} {rendition} #{i}: IV");
                // Relative URIs resolve back under the same token.
                let abs_key = key["absolute_uri"].as_str().unwrap_or("");
                assert!(
                    abs_key.ends_with(&pb.path(&format!("keys/{i}.key"))),
                    "{who}: key URI resolves to {abs_key}"
                );
                let d = seg["duration"].as_f64().expect("duration");
                assert!(d > 0.0 && d <= target + 0.5, "{who} #{i}: duration {d}");
                total += d;
            }
            let want = f.duration * count as f64 / n as f64;
            assert!(
                (total - want).abs() <= 0.5,
                "{who} {rendition}: playlist lasts {total} s, want {want}"
            );
        }
        heights.sort_unstable();
        let mut want: Vec<u64> = f.renditions.iter().map(|r| r.parse().unwrap()).collect();
        want.sort_unstable();
        assert_eq!(heights, want, "{who}: renditions");
    }
}

/// Keys are 16 raw bytes that decrypt the segments into MPEG-TS (AES-128-CBC, IV = index);
/// segments answer Range requests.
#[test]
fn served_keys_decrypt_served_segments_and_ranges_work() {
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let n = f.segments;
    let buyer = s.user("decrypt", false);
    s.grant(&sh.admin, &f.id, &buyer);
    let pb = s.playback(&buyer, &f.id);
    for i in [0, preview_of(n), n - 1] {
        let key = s.get(&pb.path(&format!("keys/{i}.key")), None);
        key.expect(200, "key");
        assert_eq!(key.body.len(), 16, "key {i} length");
        assert_eq!(key.header("cache-control"), Some("no-store"), "key {i}");
        assert_eq!(
            key.header("content-type"),
            Some("application/octet-stream"),
            "key {i}"
        );
        for r in &f.renditions {
            let seg = s.get(&pb.path(&format!("{r}/{i:05}.ts")), None);
            seg.expect(200, "segment");
            let mut iv = [0u8; 16];
            iv[8..].copy_from_slice(&(i as u64).to_be_bytes());
            let plain = cbc::Decryptor::<aes::Aes128>::new_from_slices(&key.body, &iv)
                .unwrap()
                .decrypt_padded_vec_mut::<Pkcs7>(&seg.body)
                .unwrap_or_else(|_| panic!("{r} segment {i}: bad padding after decryption"));
            assert!(
                !plain.is_empty()
                    && plain.len() % 188 == 0
                    && plain.chunks(188).all(|p| p[0] == 0x47),
                "{r} segment {i}: not MPEG-TS after decryption"
            );
        }
    }
    // Range.
    let r = &f.renditions[0];
    let whole = fetch_ok(s, &pb.path(&format!("{r}/00001.ts")));
    let part = s.exec(
        s.req(reqwest::Method::GET, &pb.path(&format!("{r}/00001.ts")))
            .header("Range", "bytes=100-287"),
    );
    part.expect(206, "range request");
    assert_eq!(part.body, whole[100..288], "range body");
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-287/{}", whole.len()).as_str())
    );
}

/// A token is bound to its film: film A's token serves film A's bytes whatever names are
/// asked for, and a grant on film B does not open film A past its preview.
#[test]
fn a_token_for_one_film_opens_nothing_of_another() {
    let sh = shared();
    let s = &sh.server;
    let (a, b) = (&sh.main, &sh.other);
    assert_eq!(b.segments, 2, "the other film: 12 s");
    let viewer = s.user("cross", false);
    s.grant(&sh.admin, &b.id, &viewer); // full access to B only
    let on_a = s.playback(&viewer, &a.id);
    let on_b = s.playback(&viewer, &b.id);
    assert_eq!(on_a.answer["entitlement"], "preview", "{}", on_a.answer);
    assert_eq!(on_b.answer["entitlement"], "full", "{}", on_b.answer);

    // The grant on B does not lift A's gate.
    s.get(&on_a.path(&format!("keys/{}.key", a.preview)), None)
        .expect_error(403, "preview_ended", "A's token, key P of A");
    s.get(&on_a.path(&format!("360/{:05}.ts", a.preview)), None)
        .expect_error(403, "preview_ended", "A's token, segment P of A");

    // The same names under A's token are A's bytes, never B's.
    for r in &a.renditions {
        let via_a = fetch_ok(s, &on_a.path(&format!("{r}/00000.ts")));
        let via_b = fetch_ok(s, &on_b.path(&format!("{r}/00000.ts")));
        let disk_a = std::fs::read(a.package_dir.join(r).join("00000.ts")).unwrap();
        let disk_b = std::fs::read(b.package_dir.join(r).join("00000.ts")).unwrap();
        assert_ne!(disk_a, disk_b);
        assert!(
            via_a == disk_a,
            "A's token served something else than A's {r}/00000.ts"
        );
        assert!(
            via_b == disk_b,
            "B's token served something else than B's {r}/00000.ts"
        );
    }
    let key_a = fetch_ok(s, &on_a.path("keys/0.key"));
    let key_b = fetch_ok(s, &on_b.path("keys/0.key"));
    assert_ne!(key_a, key_b, "two films share a key");
    // A's token's playlists describe A (N = 11, preview P), not B (N = 2).
    let media = String::from_utf8(fetch_ok(s, &on_a.path("360/index.m3u8"))).unwrap();
    assert_eq!(media.matches("#EXTINF").count(), a.preview, "{media}");
    // B's id in A's token path names nothing.
    for rest in [
        format!("{}/index.m3u8", b.id),
        format!("{}/00000.ts", b.id),
        format!("{}/master.m3u8", b.id),
    ] {
        let r = s.get(&on_a.path(&rest), None);
        assert_eq!(r.status, 404, "A's token + {rest}: {}", r.brief());
    }

    // The reverse: a buyer of A only is a preview viewer of B.
    let buyer_a = s.user("cross-a", false);
    s.grant(&sh.admin, &a.id, &buyer_a);
    let b_for_buyer_a = s.playback(&buyer_a, &b.id);
    assert_eq!(b_for_buyer_a.answer["entitlement"], "preview");
    s.get(
        &b_for_buyer_a.path(&format!("360/{:05}.ts", b.preview)),
        None,
    )
    .expect_error(403, "preview_ended", "buyer of A, B's segment P");
    s.get(
        &b_for_buyer_a.path(&format!("keys/{}.key", b.preview)),
        None,
    )
    .expect_error(403, "preview_ended", "buyer of A, B's key P");
}

/// Nothing that is not a known rendition/index is served; `..` and its encodings reach no
/// file. Raw sockets, so no client normalises the paths.
#[test]
fn path_traversal_and_unknown_names_are_404() {
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let buyer = s.user("traversal", false);
    s.grant(&sh.admin, &f.id, &buyer);
    let pb = s.playback(&buyer, &f.id);
    let t = &pb.token;
    let id = &f.id;
    let n = f.segments;
    // Sanity: the raw client gets a real segment.
    let ok = s.raw_get(&format!("/hls/{t}/360/00000.ts"));
    assert_eq!(ok.status, 200, "raw GET of segment 0: {}", ok.brief());
    let manifest = std::fs::read_to_string(f.package_dir.join("manifest.json")).unwrap();
    let secret = std::fs::read_to_string(s.root.join("keys/films").join(format!("{id}.secret")))
        .unwrap_or_default();

    let targets = [
        format!("/hls/{t}/../../../etc/passwd"),
        format!("/hls/{t}/360/../../../../../../etc/passwd"),
        format!("/hls/{t}/360/..%2F..%2Fmanifest.json"),
        format!("/hls/{t}/360/..%2fmanifest.json"),
        format!("/hls/{t}/360/%2e%2e/manifest.json"),
        format!("/hls/{t}/360/%2e%2e%2fmanifest.json"),
        format!("/hls/{t}/%2e%2e/manifest.json"),
        format!("/hls/{t}/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        format!("/hls/{t}/keys/..%2F1.key"),
        format!("/hls/{t}/keys/..%2F..%2Fkeys%2Ffilms%2F{id}.secret"),
        format!("/hls/{t}/360/00000.ts/../../manifest.json"),
        format!("/hls/{t}/360/..%5C..%5Cmanifest.json"),
        format!("/hls/{t}/..%2Fmanifest.json/00000.ts"),
        format!("/hls/{t}/360/%2e%2e%2f360%2f00000.ts"),
        format!("/hls/{t}/360/manifest.json"),
        format!("/hls/{t}/manifest.json"),
        format!("/hls/{t}/poster.jpg"),
        format!("/hls/{t}/360/00000.ts%00.m3u8"),
        format!("/hls/{t}/1080/00000.ts"),
        format!("/hls/{t}/720/index.m3u8"),
        format!("/hls/{t}/360/{n:05}.ts"),
        format!("/hls/{t}/360/99999.ts"),
        format!("/hls/{t}/360/0.ts"),
        format!("/hls/{t}/360/-0001.ts"),
        format!("/hls/{t}/360/000001.ts"),
        format!("/hls/{t}/keys/{n}.key"),
        format!("/hls/{t}/keys/-1.key"),
        format!("/hls/{t}/keys/1"),
        format!("/hls/{t}/keys/0x1.key"),
    ];
    let mut failures = Vec::new();
    for target in &targets {
        let r = s.raw_get(target);
        let body = r.text();
        let leaked = body.contains("root:")
            || (!manifest.is_empty() && body.contains(manifest.trim()))
            || (!secret.trim().is_empty() && body.contains(secret.trim()))
            || body.contains("\"renditions\"");
        if !matches!(r.status, 400 | 404) || leaked {
            failures.push(format!("{target} → {}", r.brief()));
        }
    }
    assert!(
        failures.is_empty(),
        "paths that were not refused with 400/404:\n{}",
        failures.join("\n")
    );
}

/// Only GET reads playback resources: HEAD, POST and DELETE on a segment are 405 with
/// `Allow: GET` and count as nothing watched.
#[test]
fn other_methods_are_refused_and_not_counted() {
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let viewer = s.user("methods", false);
    s.grant(&sh.admin, &f.id, &viewer);
    let pb = s.playback(&viewer, &f.id);
    let t = &pb.token;
    for method in ["HEAD", "POST", "DELETE", "PUT"] {
        let r = raw_request(
            s.port,
            &format!(
                "{method} /hls/{t}/360/00001.ts HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(r.status, 405, "{method}: {}", r.brief());
        assert_eq!(r.header("allow"), Some("GET"), "{method}");
    }
    // One GET of another segment: progress then holds exactly that one.
    let ok = s.raw_get(&format!("/hls/{t}/360/00002.ts"));
    assert_eq!(ok.status, 200, "{}", ok.brief());
    let progress = s.progress(&viewer, &f.id);
    assert_eq!(progress["covered_segments"], 1, "{progress}");
}

/// Segments go out with sendfile(2) after actix-http's buffered bytes (src/server/sendfile.rs):
/// five requests pipelined in one write on one connection — segments, a key, a playlist, a
/// Range — come back whole, byte-identical to the package's files, and in order. A client
/// that drops the connection mid-segment leaves the server serving.
#[test]
fn pipelined_requests_on_one_connection_arrive_whole_and_in_order() {
    use std::io::{Read, Write};
    let sh = shared();
    let (s, f) = (&sh.server, &sh.main);
    let n = f.segments;
    let viewer = s.user("pipeline", false);
    s.grant(&sh.admin, &f.id, &viewer);
    let pb = s.playback(&viewer, &f.id);
    let file =
        |i: usize| std::fs::read(f.package_dir.join("360").join(format!("{i:05}.ts"))).unwrap();
    let key0 = s
        .get(&pb.path("keys/0.key"), None)
        .expect(200, "key")
        .body
        .clone();
    let get = |path: &str, extra: &str| {
        format!("GET {} HTTP/1.1\r\nHost: x\r\n{extra}\r\n", pb.path(path))
    };
    let requests = [
        get("360/00000.ts", ""),
        get("keys/0.key", ""),
        get("360/index.m3u8", ""),
        get("360/00001.ts", "Range: bytes=100-199\r\n"),
        get(&format!("360/{:05}.ts", n - 1), "Connection: close\r\n"),
    ]
    .concat();
    let raw = raw_exchange(s.port, &requests);

    let mut rest = &raw[..];
    let mut answers = Vec::new();
    while !rest.is_empty() {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block")
            + 4;
        let head = parse_response(&rest[..end]);
        let len: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length in {:?}", head.headers));
        assert!(
            rest.len() >= end + len,
            "response {} cut short",
            answers.len()
        );
        answers.push((head.status, rest[end..end + len].to_vec()));
        rest = &rest[end + len..];
    }
    assert_eq!(answers.len(), 5, "five responses");
    assert_eq!(answers[0].0, 200);
    assert!(
        answers[0].1 == file(0),
        "segment 0 differs from the package's file"
    );
    assert_eq!(answers[1], (200, key0));
    assert_eq!(answers[2].0, 200);
    assert!(answers[2].1.starts_with(b"#EXTM3U"), "playlist");
    assert_eq!(answers[3].0, 206);
    assert!(answers[3].1 == file(1)[100..200], "range of segment 1");
    assert_eq!(answers[4].0, 200);
    assert!(answers[4].1 == file(n - 1), "last segment differs");

    // Dropped after the first bytes of a segment: the next request is served normally.
    let mut quitter = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    quitter
        .write_all(get("360/00000.ts", "").as_bytes())
        .unwrap();
    let mut some = [0u8; 1000];
    quitter.read_exact(&mut some).unwrap();
    drop(quitter);
    let again = s.raw_get(&pb.path("360/00000.ts"));
    assert_eq!(again.status, 200, "{}", again.brief());
    assert!(again.body == file(0));
}

// ---------------------------------------------------------------------------------------
// Issue 12, item 4: progress counts only at a believable playback pace
// ---------------------------------------------------------------------------------------

/// A 60 s source, 320x240 with a tone: 10 segments of 6 s.
fn src_minute() -> std::path::PathBuf {
    sources().gen(
        "minute-240p-tone",
        "mp4",
        with(
            with(lavfi_av("testsrc2", "320x240", 25, 60, 330, 48000), X264),
            &["-c:a", "aac", "-b:a", "64k"],
        ),
    )
}

/// A server with `extra` settings and the one-minute film packaged at 240p; returns the
/// server, its admin and the film id.
fn minute_server(extra: &[(&str, &str)]) -> (Server, User, String) {
    let mut vars = vec![("CINEGATE_TRANSCODE__LADDER", "240:300k")];
    vars.extend_from_slice(extra);
    let s = Server::start(&vars);
    let admin = s.user("pace-admin", true);
    let (film, job) = s.ingest(&src_minute(), "A minute", true);
    s.wait_job_ready(&admin, &job, std::time::Duration::from_secs(180));
    (s, admin, film)
}

fn comments_answer(s: &Server, u: &User, film: &str) -> crate::harness::http::Resp {
    s.get(&format!("/api/v1/films/{film}/comments"), Some(&u.access))
}

/// Every key of a 60 s film within 3 s (after a machine-speed ffmpeg download of the
/// whole film), at the default pace: everything is served, nothing unlocks — the film fits
/// in the default buffer allowance, but 90% of 60 s at 4× is 13.5 s of watching.
#[test]
fn every_key_of_a_minute_long_film_in_three_seconds_unlocks_nothing() {
    let (s, admin, film) = minute_server(&[]);
    let viewer = s.user("hurried", false);
    s.grant(&admin, &film, &viewer);
    let started = std::time::Instant::now();
    let pb = s.playback(&viewer, &film);
    let n = u64_of(&pb.answer, "total_segments") as usize;
    assert_eq!(n, 10, "60 s in 6 s segments: {}", pb.answer);
    // The whole film, as fast as ffmpeg pulls it: still served.
    let decoded = ffmpeg_decode(&pb.master);
    assert!(decoded.ok && decoded.seconds > 59.0, "{decoded:?}");
    for i in 0..n {
        assert_eq!(fetch_ok(&s, &pb.path(&format!("keys/{i}.key"))).len(), 16);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let pr = s.progress(&viewer, &film);
    let cm = comments_answer(&s, &viewer, &film);
    assert!(
        elapsed < 13.0,
        "the machine took {elapsed} s; the test needs it to be done well within 13.5 s"
    );
    assert_eq!(pr["unlocked"], false, "fetched in {elapsed:.1} s: {pr}");
    cm.expect_error(403, "watch_more", "comments after a machine-speed fetch");
    s.post(
        &format!("/api/v1/films/{film}/support"),
        Some(&viewer.access),
        serde_json::json!({}),
    )
    .expect_error(403, "watch_more", "support after a machine-speed fetch");
    assert!(
        (f64_of(&pr, "required_active_seconds") - 13.5).abs() < EPS,
        "0.9 × 60 s ÷ 4: {pr}"
    );
    let err = cm.json();
    assert!(
        err["error"]["required_active_seconds"].is_number(),
        "the refusal says what is missing: {err}"
    );
}

/// `playback.max_pace = 10`, `buffer_ahead = 10s`. A client that takes every key and
/// segment at once is served all of them but has only about its buffer's worth counted and
/// unlocks nothing; a client that requests like a player (buffer first, then each segment
/// as there is room for it, at 7.5× real time) has the whole film counted and unlocks.
#[test]
fn a_client_paced_like_a_player_unlocks_and_a_burst_does_not() {
    let (s, admin, film) = minute_server(&[
        ("CINEGATE_PLAYBACK__MAX_PACE", "10"),
        ("CINEGATE_PLAYBACK__BUFFER_AHEAD", "10s"),
    ]);
    let (max_pace, buffer) = (10.0, 10.0);

    let burst = s.user("burst", false);
    s.grant(&admin, &film, &burst);
    let pb = s.playback(&burst, &film);
    let n = u64_of(&pb.answer, "total_segments") as usize;
    let started = std::time::Instant::now();
    for i in 0..n {
        assert_eq!(fetch_ok(&s, &pb.path(&format!("keys/{i}.key"))).len(), 16);
        fetch_ok(&s, &pb.path(&format!("240/{i:05}.ts")));
    }
    let took = started.elapsed().as_secs_f64();
    assert!(
        took < 4.0,
        "the burst took {took} s; 9 segments need 4.4 s at 10×"
    );
    let pr = s.progress(&burst, &film);
    assert_eq!(pr["unlocked"], false, "a burst of {took:.2} s: {pr}");
    // Earned: 10 s + took × 10 of media, in 6 s segments, plus the one that dips below.
    let earned = ((buffer + took * max_pace) / 6.0).ceil() as u64 + 1;
    let covered = u64_of(&pr, "covered_segments");
    assert!(
        covered <= earned && covered < 9,
        "a burst of {took:.2} s earns at most {earned} segments: {pr}"
    );
    assert_eq!(u64_of(&pr, "last_segment"), (n - 1) as u64, "{pr}");
    comments_answer(&s, &burst, &film).expect_error(403, "watch_more", "after a burst");

    // The player: segment i (media [6i, 6i + 6)) is requested once its end is within the
    // buffer of the playhead, playing at 7.5× (below the 10× ceiling).
    let player = s.user("player", false);
    s.grant(&admin, &film, &player);
    let pb = s.playback(&player, &film);
    let media = String::from_utf8(fetch_ok(&s, &pb.path("240/index.m3u8"))).unwrap();
    let durations: Vec<f64> = media
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse().expect("EXTINF duration"))
        .collect();
    assert_eq!(durations.len(), n, "{media}");
    let speed = max_pace * 0.75;
    let start = std::time::Instant::now();
    let mut end_of_segment = 0.0;
    for (i, d) in durations.iter().enumerate() {
        end_of_segment += d;
        let due = ((end_of_segment - buffer) / speed).max(0.0);
        let wait = due - start.elapsed().as_secs_f64();
        if wait > 0.0 {
            std::thread::sleep(std::time::Duration::from_secs_f64(wait));
        }
        fetch_ok(&s, &pb.path(&format!("240/{i:05}.ts")));
        assert_eq!(fetch_ok(&s, &pb.path(&format!("keys/{i}.key"))).len(), 16);
    }
    let pr = s.progress(&player, &film);
    assert_eq!(u64_of(&pr, "covered_segments"), n as u64, "paced: {pr}");
    assert_eq!(pr["unlocked"], true, "paced: {pr}");
    comments_answer(&s, &player, &film).expect(200, "comments after paced playback");
}

/// hls.js buffers up to 600 s ahead, far more than `buffer_ahead`, and never asks again for
/// a segment it holds. Here (`max_pace = 10`, `buffer_ahead = 10s`) two players take the
/// whole 60 s film at once and then play what they hold without another request. What was
/// delivered past the credit is paid as the credit refills: one player, reading its
/// progress every 250 ms, never has more counted than `buffer_ahead + t × max_pace` of media
/// and unlocks once the watch-time floor (0.9 × 60 ÷ 10 = 5.4 s) has passed; the other,
/// reading only once at the end, has the whole film counted and is unlocked too.
#[test]
fn a_player_that_buffers_the_whole_film_at_once_unlocks_as_it_plays() {
    let (s, admin, film) = minute_server(&[
        ("CINEGATE_PLAYBACK__MAX_PACE", "10"),
        ("CINEGATE_PLAYBACK__BUFFER_AHEAD", "10s"),
    ]);
    let (max_pace, buffer, floor) = (10.0, 10.0, 0.9 * 60.0 / 10.0);
    let (polled, quiet) = (s.user("polled", false), s.user("quiet", false));
    s.grant(&admin, &film, &polled);
    s.grant(&admin, &film, &quiet);
    let (pb_polled, pb_quiet) = (s.playback(&polled, &film), s.playback(&quiet, &film));
    let media = String::from_utf8(fetch_ok(&s, &pb_polled.path("240/index.m3u8"))).unwrap();
    let durations: Vec<f64> = media
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse().expect("EXTINF duration"))
        .collect();
    let n = durations.len();
    assert_eq!(n, 10, "{media}");

    // Measured from before the first request, so never shorter than the server's time.
    let started = std::time::Instant::now();
    for pb in [&pb_polled, &pb_quiet] {
        for i in 0..n {
            fetch_ok(&s, &pb.path(&format!("240/{i:05}.ts")));
            assert_eq!(fetch_ok(&s, &pb.path(&format!("keys/{i}.key"))).len(), 16);
        }
    }
    let pr = s.progress(&polled, &film);
    assert_eq!(pr["unlocked"], false, "right after the burst: {pr}");
    comments_answer(&s, &polled, &film).expect_error(403, "watch_more", "right after the burst");

    let unlocked_at = loop {
        let pr = s.progress(&polled, &film);
        let t = started.elapsed().as_secs_f64();
        let covered = u64_of(&pr, "covered_segments") as usize;
        // Paid lowest index first, each while the credit is positive: the segments before
        // the last one counted fit in what could have been earned by now.
        let before_last: f64 = durations[..covered.saturating_sub(1)].iter().sum();
        assert!(
            before_last < buffer + t * max_pace + EPS,
            "{covered} segments counted within {t:.2} s: {pr}"
        );
        if pr["unlocked"] == true {
            assert!(
                t >= floor,
                "unlocked after {t:.2} s, before the floor: {pr}"
            );
            break t;
        }
        assert!(t < 20.0, "still locked after {t:.1} s of playing: {pr}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    comments_answer(&s, &polled, &film).expect(200, "comments once unlocked");

    // The quiet player's first read, well past the floor and the time to earn the film.
    let wait = (unlocked_at + 2.0).max(8.0) - started.elapsed().as_secs_f64();
    if wait > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(wait));
    }
    for (who, user) in [("polled", &polled), ("quiet", &quiet)] {
        let pr = s.progress(user, &film);
        assert_eq!(u64_of(&pr, "covered_segments"), n as u64, "{who}: {pr}");
        assert_eq!(pr["unlocked"], true, "{who}: {pr}");
    }
    comments_answer(&s, &quiet, &film).expect(200, "comments for the quiet player");
}
