//! Integration tests of `transcoder::package` against docs/PACKAGE-CONTRACT.md.
//!
//! Sources are generated with the ffmpeg CLI; packages are judged with ffprobe/ffmpeg/openssl
//! and a key derivation written from the contract (the `testkit` crate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use testkit::decode::play_master;
use testkit::dir::entries;
use testkit::keys::{derive_iv, derive_key, openssl_decrypt, secret_bytes, SECRET_HEX};
use testkit::package::checks::{assert_package, check_bandwidth, Expect};
use testkit::package::exported::check_exported;
use testkit::package::{judge, read_manifest, Judged, RenditionReport, SEGMENT};
use testkit::probe::{
    display_rotation, ffprobe_json, first_stream_of, format_duration, num, video_packets,
};
use testkit::process::run_ok;
use testkit::sources::{src_text, Sources};
use transcoder::{FilmSecret, PackageOptions, Packaged, Rung, TranscodeError};

/// The generated sources, cached under this build's target/tmp.
fn sources() -> Sources {
    Sources::new(env!("CARGO_TARGET_TMPDIR"))
}

const SMALL_LADDER: &[(u32, u32)] = &[(240, 400_000), (144, 150_000)];
const DEFAULT_LADDER: &[(u32, u32)] = &[
    (1080, 5_000_000),
    (720, 2_800_000),
    (480, 1_400_000),
    (360, 800_000),
];

fn opts(ladder: &[(u32, u32)]) -> PackageOptions {
    PackageOptions {
        ladder: ladder
            .iter()
            .map(|&(height, bitrate)| Rung { height, bitrate })
            .collect(),
        segment_seconds: SEGMENT,
        x264_preset: "ultrafast".to_string(),
        audio_bitrate: 96_000,
        ..PackageOptions::default()
    }
}

fn secret() -> FilmSecret {
    FilmSecret::from_hex(SECRET_HEX).unwrap()
}

struct Run {
    _parent: tempfile::TempDir,
    parent: PathBuf,
    out: PathBuf,
    progress: Vec<f64>,
    result: Result<Packaged, TranscodeError>,
}

/// Packages `src` into a fresh `<tempdir>/film`.
fn package_to_fresh(src: &Path, ladder: &[(u32, u32)]) -> Run {
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("film");
    let mut progress = Vec::new();
    let cancel = AtomicBool::new(false);
    let result = transcoder::package(
        src,
        &out,
        &opts(ladder),
        &secret(),
        &mut |p| progress.push(p),
        &cancel,
    );
    Run {
        parent: parent.path().to_path_buf(),
        _parent: parent,
        out,
        progress,
        result,
    }
}

/// Packages a good source and judges the output; panics if packaging fails.
fn package_and_judge(src: &Path, ladder: &[(u32, u32)]) -> (Run, Judged) {
    let run = package_to_fresh(src, ladder);
    if let Err(e) = &run.result {
        panic!(
            "package({}) failed: {e} (code {}) / {e:?}",
            src.display(),
            e.code()
        );
    }
    let judged = judge(&run.out, &secret_bytes(SECRET_HEX));
    (run, judged)
}

// ---------------------------------------------------------------------------------------------
// The main H.264 package, shared by several tests
// ---------------------------------------------------------------------------------------------

struct Main {
    run: Run,
    judged: Judged,
    src: PathBuf,
}

fn main_pkg() -> &'static Main {
    static MAIN: OnceLock<Main> = OnceLock::new();
    MAIN.get_or_init(|| {
        let src = sources().h264();
        let (run, judged) = package_and_judge(&src, SMALL_LADDER);
        Main { run, judged, src }
    })
}

fn main_expect() -> Expect {
    Expect::new(
        &main_pkg().src,
        320,
        240,
        &[("240", 320, 240), ("144", 192, 144)],
    )
}

#[test]
fn h264_source_packages_to_spec() {
    let m = main_pkg();
    // 13 s at 6 s: 6, 6, 1 — the fixture gives two full segments.
    assert_eq!(
        m.judged.manifest_segments().len(),
        3,
        "segments {:?}",
        m.judged.manifest_segments()
    );
    assert_package(&m.judged, &main_expect());
}

#[test]
fn every_segment_has_its_own_key_and_iv() {
    let m = main_pkg();
    let s = secret_bytes(SECRET_HEX);
    for r in &m.judged.renditions {
        for (i, seg) in r.segments.iter().enumerate() {
            // The first block's plaintext depends on the IV: the first TS packet must be a
            // PSI section with a valid CRC once decrypted with IV_i.
            assert_eq!(
                seg.psi_crc_ok,
                Some(true),
                "{}/{i:05}.ts: first TS packet after decrypting with IV_{i} is not a valid PSI section",
                r.name
            );
        }
        // key_0 must not open segment 1 (keys are per segment, not per film).
        if r.segments.len() > 1 {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("wrong.ts");
            let res = openssl_decrypt(&r.segments[1].file, &derive_key(&s, 0), &derive_iv(1), &out);
            let opened = res.is_ok()
                && std::fs::read(&out)
                    .map(|b| b.first() == Some(&0x47) && b.get(188) == Some(&0x47))
                    .unwrap_or(false);
            assert!(!opened, "{}/00001.ts decrypts with key_0", r.name);
        }
    }
}

#[test]
fn progress_is_monotonic_within_unit_interval_and_ends_at_one() {
    let p = &main_pkg().run.progress;
    assert!(p.len() >= 3, "only {} progress calls: {p:?}", p.len());
    for v in p {
        assert!(
            (0.0..=1.0).contains(v),
            "progress value {v} outside 0..=1: {p:?}"
        );
    }
    for w in p.windows(2) {
        assert!(
            w[1] >= w[0],
            "progress went back from {} to {}: {p:?}",
            w[0],
            w[1]
        );
    }
    assert_eq!(*p.last().unwrap(), 1.0, "last progress value: {p:?}");
    assert!(
        p.iter().any(|v| *v > 0.0 && *v < 1.0),
        "no intermediate progress value: {p:?}"
    );
}

#[test]
fn manifest_bandwidths_match_the_encrypted_files() {
    let m = main_pkg();
    let mut fails = Vec::new();
    check_bandwidth(&m.run.out, &m.judged, &mut fails);
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn poster_is_a_jpeg_and_nothing_else_is_left_behind() {
    let m = main_pkg();
    let manifest = &m.judged.manifest;
    assert_eq!(manifest["poster"].as_str(), Some("poster.jpg"));
    let poster = m.run.out.join("poster.jpg");
    let bytes = std::fs::read(&poster).expect("poster.jpg exists");
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF], "poster.jpg is not a JPEG");
    let v = first_stream_of(&poster, "video").expect("poster decodes");
    assert_eq!(v["codec_name"].as_str(), Some("mjpeg"));
    assert!(num(&v["width"]).unwrap_or(0.0) > 0.0);
    // The parent holds only the finished package (no temp dir left over).
    assert_eq!(entries(&m.run.parent), vec!["film".to_string()]);
    // The package holds only the contract's files (export files may appear from the export
    // test running concurrently).
    for e in entries(&m.run.out) {
        assert!(
            [
                "manifest.json",
                "poster.jpg",
                "240",
                "144",
                "master.m3u8",
                "keys"
            ]
            .contains(&e.as_str()),
            "unexpected entry {e} in the package"
        );
    }
}

#[test]
fn key_helpers_follow_the_contract() {
    let s = secret();
    let raw = secret_bytes(SECRET_HEX);
    assert_eq!(s.to_hex(), SECRET_HEX);
    for i in [0u64, 1, 2, 255, 256, 1 << 40] {
        assert_eq!(
            transcoder::segment_key(&s, i),
            derive_key(&raw, i),
            "key_{i}"
        );
        assert_eq!(transcoder::segment_iv(i), derive_iv(i), "IV_{i}");
    }
    assert_eq!(
        hex::encode(transcoder::segment_iv(1)),
        "00000000000000000000000000000001"
    );
}

#[test]
fn ladder_parses_kilobits() {
    let l = Rung::parse_ladder("1080:5000k,720:2800k,480:1400k,360:800k").unwrap();
    let got: Vec<(u32, u32)> = l.iter().map(|r| (r.height, r.bitrate)).collect();
    assert_eq!(got, DEFAULT_LADDER.to_vec());
}

#[test]
fn export_keys_writes_playable_playlists() {
    let m = main_pkg();
    let packaged = m.run.result.as_ref().unwrap();
    transcoder::export_keys(&m.run.out, &packaged.manifest, &secret()).unwrap();
    let mut fails = Vec::new();
    check_exported(&m.run.out, &secret_bytes(SECRET_HEX), &mut fails);
    let (frames, stderr, ok) = play_master(&m.run.out);
    let decoded = frames as f64 / 25.0;
    let src = format_duration(&m.src);
    if !ok || !stderr.trim().is_empty() {
        fails.push(format!(
            "ffmpeg playing master.m3u8: ok={ok}, stderr: {stderr}"
        ));
    }
    if (decoded - src).abs() > 0.2 {
        fails.push(format!(
            "ffmpeg decoded {frames} frames = {decoded:.3} s through master.m3u8, source {src:.3} s"
        ));
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Ladder rules
// ---------------------------------------------------------------------------------------------

#[test]
fn ladder_entirely_above_the_source_gives_one_rendition_at_source_size() {
    let src = sources().no_audio();
    let (_run, j) = package_and_judge(&src, &[(720, 2_800_000), (480, 1_400_000)]);
    let mut e = Expect::new(&src, 320, 240, &[("240", 320, 240)]);
    e.has_audio = false;
    assert_package(&j, &e);
}

#[test]
fn default_ladder_on_480p_source_gives_480_and_360_only() {
    let src = sources().h264_480p();
    let (_run, j) = package_and_judge(&src, DEFAULT_LADDER);
    assert_package(
        &j,
        &Expect::new(&src, 854, 480, &[("480", 854, 480), ("360", 640, 360)]),
    );
}

// ---------------------------------------------------------------------------------------------
// Source kinds
// ---------------------------------------------------------------------------------------------

fn small_kind(src: PathBuf, display: (u32, u32), renditions: &[(&str, u32, u32)]) {
    let (_run, j) = package_and_judge(&src, SMALL_LADDER);
    assert_package(&j, &Expect::new(&src, display.0, display.1, renditions));
}

const SMALL_OUT: &[(&str, u32, u32)] = &[("240", 320, 240), ("144", 192, 144)];

#[test]
fn hevc_source_packages() {
    let src = sources().hevc();
    assert_eq!(
        first_stream_of(&src, "video").unwrap()["codec_name"],
        "hevc"
    );
    small_kind(src, (320, 240), SMALL_OUT);
}

#[test]
fn hevc_10bit_source_packages() {
    let src = sources().hevc10();
    let v = first_stream_of(&src, "video").unwrap();
    assert_eq!(v["codec_name"], "hevc");
    assert_eq!(v["pix_fmt"], "yuv420p10le");
    let (_run, j) = package_and_judge(&src, SMALL_LADDER);
    assert_package(&j, &Expect::new(&src, 320, 240, SMALL_OUT));
    // HLS/H.264 players need 8-bit 4:2:0 out.
    for r in &j.renditions {
        let v = first_stream_of(&r.segments[0].plain, "video").unwrap();
        assert_eq!(v["pix_fmt"], "yuv420p", "rendition {}", r.name);
    }
}

#[test]
fn vp9_webm_source_packages() {
    let src = sources().vp9();
    assert_eq!(first_stream_of(&src, "video").unwrap()["codec_name"], "vp9");
    small_kind(src, (320, 240), SMALL_OUT);
}

#[test]
fn av1_source_packages() {
    let src = sources().av1();
    assert_eq!(first_stream_of(&src, "video").unwrap()["codec_name"], "av1");
    small_kind(src, (320, 240), SMALL_OUT);
}

#[test]
fn variable_frame_rate_source_packages() {
    let src = sources().vfr();
    // The fixture really is VFR: 1/30 s steps first, 1/10 s steps later.
    let mut pts: Vec<f64> = video_packets(&src).iter().map(|p| p.0).collect();
    pts.sort_by(f64::total_cmp);
    let steps: Vec<f64> = pts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(steps.iter().any(|d| (d - 1.0 / 30.0).abs() < 0.005));
    assert!(steps.iter().any(|d| (d - 0.1).abs() < 0.005));
    small_kind(src, (320, 240), SMALL_OUT);
}

#[test]
fn odd_dimension_source_packages() {
    let src = sources().odd();
    let v = first_stream_of(&src, "video").unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(321), Some(241))
    );
    // 240 ≤ 241 is kept: 240 × 321/241 = 319.7 → 320; 144 → 191.8 → 192.
    small_kind(src, (321, 241), SMALL_OUT);
}

#[test]
fn source_without_audio_packages_without_audio() {
    let src = sources().no_audio();
    assert!(first_stream_of(&src, "audio").is_none());
    let (_run, j) = package_and_judge(&src, SMALL_LADDER);
    let mut e = Expect::new(&src, 320, 240, SMALL_OUT);
    e.has_audio = false;
    assert_package(&j, &e);
}

#[test]
fn mono_44k_audio_becomes_stereo_48k_aac() {
    let src = sources().mono_44k();
    let a = first_stream_of(&src, "audio").unwrap();
    assert_eq!(
        (num(&a["sample_rate"]), a["channels"].as_u64()),
        (Some(44100.0), Some(1))
    );
    small_kind(src, (320, 240), SMALL_OUT);
}

#[test]
fn surround_22k_audio_becomes_stereo_48k_aac() {
    let src = sources().surround_22k();
    let a = first_stream_of(&src, "audio").unwrap();
    assert_eq!(
        (num(&a["sample_rate"]), a["channels"].as_u64()),
        (Some(22050.0), Some(6))
    );
    small_kind(src, (320, 240), SMALL_OUT);
}

#[test]
fn rotated_source_comes_out_portrait() {
    let src = sources().rotated();
    let rot = display_rotation(&src).expect("the fixture carries a display matrix");
    assert!((rot.abs() - 90.0).abs() < 0.5, "fixture rotation {rot}");
    let v = first_stream_of(&src, "video").unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
    // Displayed 240x320: the rung applies to the shorter side (240), so 240x320 and 144x192.
    small_kind(src, (240, 320), &[("240", 240, 320), ("144", 144, 192)]);
}

#[test]
fn source_starting_with_a_non_keyframe_packages() {
    let src = sources().nonkey_start();
    let pk = video_packets(&src);
    assert!(
        !pk[0].2.contains('K'),
        "fixture's first video packet is a keyframe"
    );
    let (_run, j) = package_and_judge(&src, SMALL_LADDER);
    // The first second of video (up to the first keyframe) cannot be decoded; the package
    // may start at the first keyframe or cover it (e.g. with the first decodable picture).
    let mut e = Expect::new(&src, 320, 240, SMALL_OUT);
    e.duration_below = 1.0 + 0.2;
    assert_package(&j, &e);
}

// ---------------------------------------------------------------------------------------------
// Bad inputs, cancellation, options
// ---------------------------------------------------------------------------------------------

fn assert_failed_cleanly(run: &Run, what: &str) {
    assert!(
        !run.out.exists(),
        "{what}: output directory was left behind"
    );
    assert_eq!(
        entries(&run.parent),
        Vec::<String>::new(),
        "{what}: leftovers in the output's parent directory"
    );
}

#[test]
fn text_file_is_not_media() {
    let dir = tempfile::tempdir().unwrap();
    let src = src_text(dir.path());
    let run = package_to_fresh(&src, SMALL_LADDER);
    match &run.result {
        Err(e @ TranscodeError::NotMedia { .. }) => assert_eq!(e.code(), "not_media"),
        Err(e) => panic!("text file: got {e:?} (code {}), want NotMedia", e.code()),
        Ok(_) => panic!("text file: packaged successfully"),
    }
    assert_failed_cleanly(&run, "text file");
}

#[test]
fn audio_only_file_has_no_video() {
    let src = sources().audio_only();
    let run = package_to_fresh(&src, SMALL_LADDER);
    match &run.result {
        Err(e @ TranscodeError::NoVideo) => assert_eq!(e.code(), "no_video"),
        Err(e) => panic!("audio-only: got {e:?} (code {}), want NoVideo", e.code()),
        Ok(_) => panic!("audio-only: packaged successfully"),
    }
    assert_failed_cleanly(&run, "audio-only");
}

#[test]
fn video_stream_without_frames_is_zero_duration() {
    let src = sources().zero_duration();
    let v = first_stream_of(&src, "video").expect("fixture has a video stream");
    assert_eq!(v["codec_name"], "h264");
    assert!(video_packets(&src).is_empty(), "fixture has video packets");
    let run = package_to_fresh(&src, SMALL_LADDER);
    match &run.result {
        Err(e @ TranscodeError::ZeroDuration) => assert_eq!(e.code(), "zero_duration"),
        Err(e) => panic!(
            "zero-duration: got {e:?} (code {}), want ZeroDuration",
            e.code()
        ),
        Ok(_) => panic!("zero-duration: packaged successfully"),
    }
    assert_failed_cleanly(&run, "zero-duration");
}

fn assert_truncated(src: &Path, what: &str) {
    let run = package_to_fresh(src, SMALL_LADDER);
    match &run.result {
        Err(e @ TranscodeError::Truncated { .. }) => assert_eq!(e.code(), "truncated"),
        Err(e) => panic!("{what}: got {e:?} (code {}), want Truncated", e.code()),
        Ok(_) => panic!(
            "{what}: packaged successfully; manifest duration {} s, segments {}",
            read_manifest(&run.out)["duration"],
            read_manifest(&run.out)["segments"]
        ),
    }
    assert_failed_cleanly(&run, what);
}

#[test]
fn faststart_mp4_cut_in_half_is_truncated() {
    assert_truncated(&sources().truncated_mp4(), "half faststart mp4");
}

#[test]
fn mkv_cut_in_half_is_truncated() {
    assert_truncated(&sources().truncated_mkv(), "half mkv");
}

#[test]
fn cancelling_from_progress_returns_cancelled_and_leaves_nothing() {
    let src = sources().h264();
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("film");
    let cancel = AtomicBool::new(false);
    let mut calls = 0usize;
    let result = transcoder::package(
        &src,
        &out,
        &opts(SMALL_LADDER),
        &secret(),
        &mut |_| {
            calls += 1;
            cancel.store(true, Ordering::SeqCst);
        },
        &cancel,
    );
    assert!(calls >= 1, "progress was never called");
    match result {
        Err(TranscodeError::Cancelled) => {}
        Err(e) => panic!("got {e:?}, want Cancelled"),
        Ok(_) => panic!("package finished although cancelled after the first progress call"),
    }
    assert!(!out.exists(), "output directory left behind after cancel");
    assert_eq!(
        entries(parent.path()),
        Vec::<String>::new(),
        "leftovers after cancel"
    );
}

#[test]
fn existing_output_directory_is_refused_and_untouched() {
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("film");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let cancel = AtomicBool::new(false);
    let r = transcoder::package(
        &sources().h264(),
        &out,
        &opts(SMALL_LADDER),
        &secret(),
        &mut |_| {},
        &cancel,
    );
    match r {
        Err(e @ TranscodeError::OutputExists(_)) => assert_eq!(e.code(), "output_exists"),
        Err(e) => panic!("got {e:?}, want OutputExists"),
        Ok(_) => panic!("packaged into an existing directory"),
    }
    assert_eq!(entries(&out), vec!["keep.txt".to_string()]);
    assert_eq!(entries(parent.path()), vec!["film".to_string()]);
}

#[test]
fn bad_options_are_invalid_options() {
    let cancel = AtomicBool::new(false);
    let mut zero_seg = opts(SMALL_LADDER);
    zero_seg.segment_seconds = 0.0;
    let mut neg_seg = opts(SMALL_LADDER);
    neg_seg.segment_seconds = -6.0;
    for (what, o) in [
        ("segment_seconds 0", zero_seg),
        ("segment_seconds -6", neg_seg),
    ] {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("film");
        match transcoder::package(&sources().h264(), &out, &o, &secret(), &mut |_| {}, &cancel) {
            Err(e @ TranscodeError::InvalidOptions(_)) => assert_eq!(e.code(), "invalid_options"),
            Err(e) => panic!("{what}: got {e:?}, want InvalidOptions"),
            Ok(_) => panic!("{what}: packaged"),
        }
        assert_eq!(
            entries(parent.path()),
            Vec::<String>::new(),
            "{what}: leftovers"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Conformance: a rendition read as one stream (issue 13, part 1)
// ---------------------------------------------------------------------------------------------

/// `(pid, has_payload, continuity_counter)` of every 188-byte TS packet, parsed here from
/// ISO 13818-1 §2.4.3.2 rather than trusted to the code under test.
fn ts_packets(plain: &[u8]) -> Vec<(u16, bool, u8)> {
    assert_eq!(plain.len() % 188, 0, "not a whole number of TS packets");
    plain
        .chunks(188)
        .map(|p| {
            assert_eq!(p[0], 0x47, "lost TS sync");
            let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            // adaptation_field_control: 01 payload only, 10 adaptation only, 11 both.
            let has_payload = p[3] & 0x10 != 0;
            (pid, has_payload, p[3] & 0x0f)
        })
        .collect()
}

/// Breaks of the continuity counter per PID over `segments` read in order, as one stream:
/// a packet with payload must carry the previous counter + 1 (mod 16), one without payload
/// the previous counter unchanged. Also returns the PIDs seen in every segment.
fn continuity_breaks(segments: &[Vec<u8>]) -> (Vec<String>, Vec<u16>) {
    let mut last: HashMap<u16, u8> = HashMap::new();
    let mut breaks = Vec::new();
    let mut in_every: Option<Vec<u16>> = None;
    for (i, seg) in segments.iter().enumerate() {
        let mut seen = Vec::new();
        for (n, (pid, payload, cc)) in ts_packets(seg).into_iter().enumerate() {
            if pid == 0x1fff {
                continue; // null packets carry no meaningful counter
            }
            if !seen.contains(&pid) {
                seen.push(pid);
            }
            if let Some(&prev) = last.get(&pid) {
                let want = if payload { (prev + 1) & 0x0f } else { prev };
                if cc != want {
                    breaks.push(format!(
                        "segment {i} packet {n} pid {pid:#x}: cc {cc}, want {want}"
                    ));
                }
            }
            last.insert(pid, cc);
        }
        in_every = Some(match in_every {
            None => seen,
            Some(v) => v.into_iter().filter(|p| seen.contains(p)).collect(),
        });
    }
    (breaks, in_every.unwrap_or_default())
}

fn plain_segments(r: &RenditionReport) -> Vec<Vec<u8>> {
    r.segments
        .iter()
        .map(|s| std::fs::read(&s.plain).unwrap())
        .collect()
}

fn source_frames(src: &Path) -> u64 {
    let v = ffprobe_json(
        src,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
        ],
    );
    v["streams"][0]["nb_read_frames"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("ffprobe counts the source frames")
}

/// Reads the decrypted segments of each rendition concatenated, as one stream, with the
/// ffmpeg CLI (`-v warning`, dropping packets it flags corrupt) and returns failures:
/// any "corrupt"/"continuity" warning, or fewer decoded frames than the source has.
fn read_end_to_end(j: &Judged, src: &Path, fails: &mut Vec<String>) {
    let want = source_frames(src);
    for r in &j.renditions {
        let whole = j.work.path().join(format!("{}-whole.ts", r.name));
        std::fs::write(&whole, plain_segments(r).concat()).unwrap();
        let o = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "warning"])
            .args(["-fflags", "+discardcorrupt", "-i"])
            .arg(&whole)
            .args(["-map", "0:v:0", "-f", "framemd5", "-"])
            .output()
            .expect("run ffmpeg");
        let stderr = String::from_utf8_lossy(&o.stderr).to_lowercase();
        let decoded = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count() as u64;
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("corrupt") || l.contains("continuity"))
            .collect();
        if !o.status.success() || !warnings.is_empty() {
            fails.push(format!(
                "{}: ffmpeg reading the rendition end to end: {} warnings: {warnings:?}",
                r.name,
                warnings.len()
            ));
        }
        if decoded != want {
            fails.push(format!(
                "{}: decoded {decoded} frames end to end, the source has {want}",
                r.name
            ));
        }
    }
}

#[test]
fn continuity_counters_run_on_across_the_segments_of_each_rendition() {
    let m = main_pkg();
    let mut fails = Vec::new();
    for r in &m.judged.renditions {
        let (breaks, pids) = continuity_breaks(&plain_segments(r));
        // PAT, PMT, video and audio (and the SDT ffmpeg writes) in every segment.
        if !pids.contains(&0) || pids.len() < 4 {
            fails.push(format!("{}: PIDs in every segment {pids:x?}", r.name));
        }
        if !breaks.is_empty() {
            fails.push(format!(
                "{}: {} continuity breaks, first {:?}",
                r.name,
                breaks.len(),
                &breaks[..breaks.len().min(4)]
            ));
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn each_rendition_reads_end_to_end_clean_with_every_source_frame() {
    let m = main_pkg();
    let mut fails = Vec::new();
    read_end_to_end(&m.judged, &m.src, &mut fails);
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// `(num_units_in_tick, time_scale, fixed_frame_rate_flag)` of the first SPS's VUI, read by
/// ffmpeg's `trace_headers` bitstream filter.
fn vui_timing(plain: &Path) -> Option<(u64, u64, u64)> {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "debug", "-i"])
        .arg(plain)
        .args(["-map", "0:v:0", "-c", "copy", "-bsf:v", "trace_headers"])
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let text = String::from_utf8_lossy(&o.stderr);
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.split_whitespace().nth(4) == Some(name))
            .and_then(|l| l.rsplit('=').next())
            .and_then(|v| v.trim().parse().ok())
    };
    Some((
        field("num_units_in_tick")?,
        field("time_scale")?,
        field("fixed_frame_rate_flag")?,
    ))
}

/// ffprobe's frame rate of the bare H.264 stream of a segment: with no container timestamps
/// to go by, it comes from the VUI, as it does for GStreamer's h264parse.
fn elementary_frame_rate(plain: &Path, work: &Path) -> String {
    let es = work.join(format!(
        "{}.h264",
        plain.file_stem().unwrap().to_string_lossy()
    ));
    run_ok(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "error", "-y", "-i"])
            .arg(plain)
            .args(["-map", "0:v:0", "-c", "copy", "-f", "h264"])
            .arg(&es),
    );
    let v = ffprobe_json(&es, &["-show_entries", "stream=r_frame_rate"]);
    v["streams"][0]["r_frame_rate"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn the_h264_timing_signals_the_source_frame_rate() {
    let m = main_pkg();
    let mut fails = Vec::new();
    for r in &m.judged.renditions {
        for (i, s) in r.segments.iter().enumerate() {
            let at = format!("{}/{i:05}.ts", r.name);
            match vui_timing(&s.plain) {
                Some((tick, scale, fixed)) => {
                    // Frame rate = time_scale / (2 × num_units_in_tick) (H.264 E.2.1).
                    if tick == 0 || scale != 2 * 25 * tick || fixed != 1 {
                        fails.push(format!(
                            "{at}: VUI num_units_in_tick={tick} time_scale={scale} fixed_frame_rate_flag={fixed}, want 25 fps fixed"
                        ));
                    }
                }
                None => fails.push(format!("{at}: no VUI timing found")),
            }
            let rate = elementary_frame_rate(&s.plain, m.judged.work.path());
            if rate != "25/1" {
                fails.push(format!("{at}: ffprobe r_frame_rate {rate}, want 25/1"));
            }
        }
        let v = ffprobe_json(
            &r.segments[0].plain,
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=r_frame_rate,avg_frame_rate",
            ],
        );
        for key in ["r_frame_rate", "avg_frame_rate"] {
            if v["streams"][0][key].as_str() != Some("25/1") {
                fails.push(format!(
                    "{}: segment {key} {}",
                    r.name, v["streams"][0][key]
                ));
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn variable_frame_rate_package_reads_end_to_end_and_claims_no_fixed_rate() {
    let src = sources().vfr();
    let (_run, j) = package_and_judge(&src, SMALL_LADDER);
    let mut fails = Vec::new();
    read_end_to_end(&j, &src, &mut fails);
    for r in &j.renditions {
        let (breaks, _) = continuity_breaks(&plain_segments(r));
        if !breaks.is_empty() {
            fails.push(format!("{}: {} continuity breaks", r.name, breaks.len()));
        }
        // 30 fps then 10 fps: no single rate is true, so the VUI must not claim one.
        if let Some((tick, scale, fixed)) = vui_timing(&r.segments[0].plain) {
            if fixed != 0 {
                fails.push(format!(
                    "{}: VUI claims a fixed rate ({scale}/(2×{tick})) for a VFR source",
                    r.name
                ));
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn master_playlist_describes_every_variant_as_apple_asks() {
    let m = main_pkg();
    let manifest = &m.run.result.as_ref().unwrap().manifest;
    let text = transcoder::playlist::master(manifest);
    let mp = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("master parses");
    let mut fails = Vec::new();
    if !mp.independent_segments {
        fails.push("no #EXT-X-INDEPENDENT-SEGMENTS".to_string());
    }
    check_bandwidth(&m.run.out, &m.judged, &mut fails);
    for v in &mp.variants {
        let r = &m.judged.manifest["renditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| format!("{}/index.m3u8", r["name"].as_str().unwrap()) == v.uri)
            .cloned()
            .unwrap_or_default();
        if v.frame_rate != Some(25.0) {
            fails.push(format!("{}: FRAME-RATE {:?}", v.uri, v.frame_rate));
        }
        if v.average_bandwidth.map(|a| a as f64) != num(&r["average_bandwidth"]) {
            fails.push(format!(
                "{}: AVERAGE-BANDWIDTH {:?}",
                v.uri, v.average_bandwidth
            ));
        }
        if Some(v.bandwidth as f64) != num(&r["bandwidth"]) {
            fails.push(format!("{}: BANDWIDTH {}", v.uri, v.bandwidth));
        }
        let codecs = v.codecs.clone().unwrap_or_default();
        if !codecs.starts_with("avc1.") || !codecs.ends_with(",mp4a.40.2") {
            fails.push(format!("{}: CODECS {codecs:?}", v.uri));
        }
        if v.resolution.is_none() {
            fails.push(format!("{}: no RESOLUTION", v.uri));
        }
        if v.closed_captions != Some(m3u8_rs::ClosedCaptionGroupId::None) {
            fails.push(format!(
                "{}: CLOSED-CAPTIONS {:?}, want NONE (none are carried)",
                v.uri, v.closed_captions
            ));
        }
    }
    assert!(fails.is_empty(), "{}\n{text}", fails.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Rate control: capped quality (`crf`) against the average bitrate (`abr`)
// ---------------------------------------------------------------------------------------------

fn crf_opts(ladder: &[(u32, u32)], crf: &str) -> PackageOptions {
    PackageOptions {
        rate_control: transcoder::RateControl::Crf,
        crf: transcoder::CrfTargets::parse(crf).unwrap(),
        ..opts(ladder)
    }
}

fn package_with(src: &Path, opts: &PackageOptions) -> (tempfile::TempDir, PathBuf, Judged) {
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("film");
    let cancel = AtomicBool::new(false);
    transcoder::package(src, &out, opts, &secret(), &mut |_| {}, &cancel)
        .unwrap_or_else(|e| panic!("package({}) failed: {e}", src.display()));
    let judged = judge(&out, &secret_bytes(SECRET_HEX));
    (parent, out, judged)
}

/// BANDWIDTH and AVERAGE-BANDWIDTH recomputed from the encrypted files on disk, as the
/// contract defines them: the largest segment's bits over its duration (a last segment
/// under 1 s counted as 1 s), and all bits over the whole duration.
fn bandwidths_from_files(j: &Judged, rendition: usize) -> (f64, f64) {
    let seg = j.manifest_segments();
    let r = &j.renditions[rendition];
    let sizes: Vec<u64> = r
        .segments
        .iter()
        .map(|s| std::fs::metadata(&s.file).unwrap().len())
        .collect();
    let peak = sizes
        .iter()
        .zip(&seg)
        .map(|(b, d)| *b as f64 * 8.0 / d.max(1.0))
        .fold(0.0, f64::max);
    let average = sizes.iter().sum::<u64>() as f64 * 8.0 / seg.iter().sum::<f64>();
    (peak, average)
}

fn total_bytes(j: &Judged) -> u64 {
    j.renditions
        .iter()
        .flat_map(|r| &r.segments)
        .map(|s| std::fs::metadata(&s.file).unwrap().len())
        .sum()
}

#[test]
fn crf_package_meets_the_contract_and_its_bandwidths_are_the_encrypted_files() {
    let src = sources().h264();
    let (_dir, out, judged) = package_with(&src, &crf_opts(SMALL_LADDER, "24,144:20"));
    // Segment alignment, forced IDRs, per-segment keys and IVs, timing: as under abr.
    assert_package(&judged, &main_expect());
    let mut fails = Vec::new();
    check_bandwidth(&out, &judged, &mut fails);
    assert!(fails.is_empty(), "{}", fails.join("\n"));
    let m = &judged.manifest;
    assert_eq!(m["rate_control"], "crf", "{m}");
    for (i, (name, crf)) in [("240", 24.0), ("144", 20.0)].into_iter().enumerate() {
        let r = &m["renditions"][i];
        assert_eq!(r["name"], name);
        assert_eq!(num(&r["crf"]), Some(crf), "{r}");
        // Exactly what the files give (the manifest truncates to whole bits/s).
        let (peak, average) = bandwidths_from_files(&judged, i);
        let bw = num(&r["bandwidth"]).unwrap();
        let avg = num(&r["average_bandwidth"]).unwrap();
        assert!(
            (bw - peak.max(average)).abs() <= 1.0,
            "{name}: BANDWIDTH {bw} vs {peak}"
        );
        assert!(
            (avg - average).abs() <= 1.0,
            "{name}: AVERAGE-BANDWIDTH {avg} vs {average}"
        );
    }
}

#[test]
fn abr_is_still_the_default_and_recorded_as_such() {
    assert_eq!(
        PackageOptions::default().rate_control,
        transcoder::RateControl::Abr
    );
    let m = &main_pkg().judged.manifest;
    assert_eq!(m["rate_control"], "abr", "{m}");
    for r in m["renditions"].as_array().unwrap() {
        assert!(r.get("crf").is_none(), "{r}");
    }
}

#[test]
fn a_manifest_without_rate_control_loads_as_abr() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = read_manifest(&main_pkg().run.out);
    m.as_object_mut().unwrap().remove("rate_control");
    std::fs::write(dir.path().join("manifest.json"), m.to_string()).unwrap();
    let loaded = transcoder::Manifest::load(dir.path()).unwrap();
    assert_eq!(loaded.rate_control, transcoder::RateControl::Abr);
    assert!(loaded.renditions.iter().all(|r| r.crf.is_none()));
}

/// 12 s of 640x360 at 25 fps, no audio: a simple picture (testsrc: flat colour bars, a
/// moving gradient and a counter) and a picture that changes everywhere in every frame
/// (rule-110 cellular automaton under temporal noise).
fn src_easy() -> PathBuf {
    sources().generated(
        "easy360",
        "mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25:duration=12",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

/// Noise that no encoder makes cheap: a cellular automaton under strong temporal noise, at
/// `size`, 25 fps (a lavfi source).
fn hard_noise(size: &str) -> String {
    format!(
        "cellauto=size={size}:rate=25:rule=110:random_fill_ratio=0.5:random_seed=7,\
         noise=alls=40:allf=t+u,format=yuv420p"
    )
}

fn src_hard() -> PathBuf {
    sources().generated(
        "hard360",
        "mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            &hard_noise("640x360"),
            "-t",
            "12",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

#[test]
fn under_crf_an_easy_source_takes_far_fewer_bytes_than_a_hard_one() {
    let ladder: &[(u32, u32)] = &[(360, 800_000)];
    let crf = crf_opts(ladder, "21");
    let (_a, _, easy) = package_with(&src_easy(), &crf);
    let (_b, _, hard) = package_with(&src_hard(), &crf);
    let (_c, _, easy_abr) = package_with(&src_easy(), &opts(ladder));
    let (e, h, ea) = (
        total_bytes(&easy),
        total_bytes(&hard),
        total_bytes(&easy_abr),
    );
    // Both are 12 s at 640x360: the same ceiling, two segments.
    assert_eq!(easy.manifest_segments(), hard.manifest_segments());
    assert!(
        (e as f64) < 0.5 * h as f64,
        "easy {e} bytes, hard {h} bytes under crf"
    );
    // abr spends the ladder bitrate on the easy source too; crf does not need it.
    assert!(
        (e as f64) < 0.7 * ea as f64,
        "easy: crf {e} bytes, abr {ea} bytes"
    );
    // The hard source is held to the ceiling: its peak 6 s segment stays under 1.5×.
    let (peak, _) = bandwidths_from_files(&hard, 0);
    assert!(peak <= 1.5 * 800_000.0, "hard peak {peak:.0} b/s");
    eprintln!("crf: easy {e} B, hard {h} B; abr: easy {ea} B");
}

/// SSIM (ffmpeg's `ssim` filter, "All") of a rendition's decrypted segments read end to end
/// against the source scaled to the rendition's size with Lanczos: the judge
/// `bench/quality.sh` uses, independent of the packager's own measurement.
fn rendition_ssim(j: &Judged, rendition: usize, src: &Path) -> f64 {
    let r = &j.renditions[rendition];
    let m = &j.manifest["renditions"][rendition];
    let (w, h) = (num(&m["width"]).unwrap(), num(&m["height"]).unwrap());
    let whole = j.work.path().join(format!("{}-ssim.ts", r.name));
    std::fs::write(&whole, plain_segments(r).concat()).unwrap();
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-nostats", "-i"])
        .arg(&whole)
        .arg("-i")
        .arg(src)
        .arg("-lavfi")
        .arg(format!(
            "[0:v]setpts=PTS-STARTPTS[d];[1:v]setpts=PTS-STARTPTS,\
             scale={w}:{h}:flags=lanczos,setsar=1,format=yuv420p[r];[d][r]ssim"
        ))
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&o.stderr);
    stderr
        .lines()
        .filter_map(|l| l.split("All:").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no SSIM from ffmpeg: {stderr}"))
}

#[test]
fn per_title_gives_the_abr_picture_for_fewer_bytes_and_records_what_it_measured() {
    let ladder: &[(u32, u32)] = &[(360, 800_000), (240, 400_000)];
    let per_title = PackageOptions {
        rate_control: transcoder::RateControl::PerTitle,
        ..opts(ladder)
    };
    let src = src_easy();
    let (_a, out, tuned) = package_with(&src, &per_title);
    let (_b, _, abr) = package_with(&src, &opts(ladder));
    let mut fails = Vec::new();
    check_bandwidth(&out, &tuned, &mut fails);
    let m = &tuned.manifest;
    assert_eq!(m["rate_control"], "per-title", "{m}");
    // The default table's CRF for both rungs (18 below 720p) is where tuning starts.
    for (i, name) in ["360", "240"].into_iter().enumerate() {
        let r = &m["renditions"][i];
        let q = &r["quality"];
        assert_eq!(r["name"], name);
        // 2% of 12 s is under the 2 s minimum.
        assert_eq!(num(&q["sample_seconds"]), Some(2.0), "{q}");
        let probes: Vec<f64> = q["probes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| num(&p["crf"]).unwrap())
            .collect();
        assert_eq!(probes, [18.0, 24.0], "{q}");
        assert!(q["abr"].get("crf").is_none(), "{q}");
        let crf = num(&r["crf"]).expect("the chosen CRF");
        assert_eq!(num(&q["chosen"]["crf"]), Some(crf), "{q}");
        // An easy picture: abr's picture is matched above the table's CRF.
        assert!(crf > 18.0, "{name}: chose {crf}: {q}");
        let (sample_abr, sample_chosen) = (
            num(&q["abr"]["ssim"]).unwrap(),
            num(&q["chosen"]["ssim"]).unwrap(),
        );
        if sample_chosen < sample_abr - 0.003 {
            fails.push(format!(
                "{name}: sample SSIM {sample_chosen} vs abr {sample_abr}"
            ));
        }
        // The whole film, judged independently.
        let (s_tuned, s_abr) = (
            rendition_ssim(&tuned, i, &src),
            rendition_ssim(&abr, i, &src),
        );
        if s_tuned < s_abr - 0.003 {
            fails.push(format!(
                "{name}: film SSIM {s_tuned} per-title vs {s_abr} abr"
            ));
        }
        eprintln!("{name}: crf {crf}, film SSIM {s_tuned} (abr {s_abr}); sample {q}");
    }
    let (t, a) = (total_bytes(&tuned), total_bytes(&abr));
    if t as f64 > 0.8 * a as f64 {
        fails.push(format!("per-title {t} bytes, abr {a} bytes"));
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// 12 s of 320x180 with one keyframe: 0.6 s of flat grey, then a picture that changes
/// everywhere in every frame. Every sampled window's keyframe is the grey opening.
fn src_grey_then_hard_one_gop() -> PathBuf {
    sources().generated(
        "greyhard180",
        "mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:s=320x180:r=25:d=0.6,format=yuv420p",
            "-f",
            "lavfi",
            "-i",
            &hard_noise("320x180"),
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1:a=0",
            "-t",
            "12",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-g",
            "1000",
            "-keyint_min",
            "1000",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

#[test]
fn per_title_samples_each_window_at_its_place_not_at_its_keyframe() {
    let ladder: &[(u32, u32)] = &[(180, 300_000)];
    let per_title = PackageOptions {
        rate_control: transcoder::RateControl::PerTitle,
        ..opts(ladder)
    };
    let (_a, _, tuned) = package_with(&src_grey_then_hard_one_gop(), &per_title);
    let q = &tuned.manifest["renditions"][0]["quality"];
    assert_eq!(num(&q["sample_seconds"]), Some(2.0), "{q}");
    eprintln!("{q}");
    // The windows (0.25 s at 0.625, 2.125, … 11.125 s) are all in the hard part; from
    // the keyframe at 0 they would all be the grey opening, which any encode gets right.
    for point in [&q["abr"], &q["probes"][0], &q["probes"][1], &q["chosen"]] {
        let ssim = num(&point["ssim"]).unwrap();
        assert!(ssim < 0.95, "{point} in {q}");
    }
}

/// Where the ceiling binds (noise at 300k for 320x180), a CRF can only spend the same bits
/// worse than ABR does: per-title encodes that rung at `abr`, records so, and the film
/// costs what `abr` costs.
#[test]
fn per_title_keeps_abr_where_a_crf_saves_nothing() {
    let ladder: &[(u32, u32)] = &[(180, 300_000)];
    let per_title = PackageOptions {
        rate_control: transcoder::RateControl::PerTitle,
        ..opts(ladder)
    };
    let src = src_grey_then_hard_one_gop();
    let (_a, out, tuned) = package_with(&src, &per_title);
    let (_b, _, abr) = package_with(&src, &opts(ladder));
    let mut fails = Vec::new();
    check_bandwidth(&out, &tuned, &mut fails);
    let r = &tuned.manifest["renditions"][0];
    let q = &r["quality"];
    assert!(r.get("crf").is_none(), "encoded at abr, no CRF: {r}");
    assert!(q["chosen"].get("crf").is_none(), "{q}");
    assert_eq!(q["chosen"], q["abr"], "the chosen point is abr's: {q}");
    assert!(
        q["probes"].as_array().is_some_and(|p| p.len() == 2),
        "the probes are still recorded: {q}"
    );
    let (t, a) = (total_bytes(&tuned) as f64, total_bytes(&abr) as f64);
    if !(0.95..=1.05).contains(&(t / a)) {
        fails.push(format!("per-title {t} bytes against abr {a}"));
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
