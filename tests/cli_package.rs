//! `cinegate probe` and `cinegate package` from the outside (docs/PACKAGE-CONTRACT.md, "CLI").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use testkit::decode::play_master;
use testkit::dir::entries;
use testkit::keys::{secret_bytes, SECRET_HEX};
use testkit::package::checks::{assert_package, check_bandwidth, Expect};
use testkit::package::exported::check_exported;
use testkit::package::judge;
use testkit::probe::{format_duration, num};
use testkit::sources::{src_text, Sources};

/// The generated sources, cached under this build's target/tmp.
fn sources() -> Sources {
    Sources::new(env!("CARGO_TARGET_TMPDIR"))
}

const SMALL_LADDER: &str = "240:400k,144:150k";

fn cinegate(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cinegate"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run cinegate")
}

fn package(src: &Path, out: &Path, secret: &Path, extra: &[&str]) -> Output {
    let mut a: Vec<&std::ffi::OsStr> = vec![
        "package".as_ref(),
        src.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--secret-file".as_ref(),
        secret.as_os_str(),
        "--preset".as_ref(),
        "ultrafast".as_ref(),
        "--quiet".as_ref(),
    ];
    a.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    cinegate(&a)
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether some JSON object (at any depth) satisfies `f`.
fn any_object(
    v: &serde_json::Value,
    f: &dyn Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
) -> bool {
    match v {
        serde_json::Value::Object(m) => f(m) || m.values().any(|x| any_object(x, f)),
        serde_json::Value::Array(a) => a.iter().any(|x| any_object(x, f)),
        _ => false,
    }
}

fn any_string(v: &serde_json::Value, s: &str) -> bool {
    match v {
        serde_json::Value::String(x) => x == s,
        serde_json::Value::Object(m) => m.values().any(|x| any_string(x, s)),
        serde_json::Value::Array(a) => a.iter().any(|x| any_string(x, s)),
        _ => false,
    }
}

#[test]
fn probe_json_shows_the_video_stream() {
    let src = sources().h264();
    let o = cinegate(&["probe".as_ref(), src.as_os_str(), "--json".as_ref()]);
    assert!(o.status.success(), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", show(&o)));
    assert!(
        any_object(&v, &|m| m.get("width").and_then(|w| w.as_u64())
            == Some(320)
            && m.get("height").and_then(|h| h.as_u64()) == Some(240)),
        "no 320x240 video stream in {v:#}"
    );
    assert!(any_string(&v, "h264"), "codec h264 not named in {v:#}");
    let dur = any_object(&v, &|m| {
        m.get("duration")
            .and_then(num_of)
            .is_some_and(|d| (d - 13.0).abs() < 0.2)
    });
    assert!(dur, "no duration ≈ 13 s in {v:#}");
}

fn num_of(v: &serde_json::Value) -> Option<f64> {
    num(v)
}

#[test]
fn probe_human_summary_succeeds_and_rejects_text() {
    let src = sources().h264();
    let o = cinegate(&["probe".as_ref(), src.as_os_str()]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(!o.stdout.is_empty(), "probe printed nothing");
    let dir = tempfile::tempdir().unwrap();
    let text = src_text(dir.path());
    let o = cinegate(&["probe".as_ref(), text.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("error:"),
        "{}",
        show(&o)
    );
}

#[test]
fn package_creates_the_secret_then_reuses_it_and_exports_keys() {
    let src = sources().h264();
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("film.secret");
    let out1 = dir.path().join("out1");

    // 1. Absent secret file: created, 64 hex chars, mode 0600, and it is the key source.
    let o = package(&src, &out1, &secret_path, &["--ladder", SMALL_LADDER]);
    assert!(o.status.success(), "{}", show(&o));
    let text = std::fs::read_to_string(&secret_path).expect("secret file created");
    let hex_part = text.strip_suffix('\n').unwrap_or(&text);
    assert_eq!(hex_part.len(), 64, "secret file {text:?}");
    assert!(
        hex_part.chars().all(|c| c.is_ascii_hexdigit()),
        "secret file {text:?}"
    );
    let mode = std::fs::metadata(&secret_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "secret file mode {mode:o}");
    let secret = secret_bytes(hex_part);
    let j = judge(&out1, &secret);
    let e = Expect::new(&src, 320, 240, &[("240", 320, 240), ("144", 192, 144)]);
    assert_package(&j, &e);
    assert!(
        !out1.join("master.m3u8").exists(),
        "master.m3u8 written without --export-keys"
    );
    assert!(
        !out1.join("keys").exists(),
        "keys/ written without --export-keys"
    );

    // 2. Present secret file: reused unchanged; --export-keys playlists play in ffmpeg.
    let before = std::fs::read(&secret_path).unwrap();
    let out2 = dir.path().join("out2");
    let o = package(
        &src,
        &out2,
        &secret_path,
        &["--ladder", SMALL_LADDER, "--export-keys"],
    );
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        std::fs::read(&secret_path).unwrap(),
        before,
        "secret file changed"
    );
    let j2 = judge(&out2, &secret);
    assert_package(&j2, &e);

    let mut fails = Vec::new();
    check_exported(&out2, &secret, &mut fails);
    let (frames, stderr, ok) = play_master(&out2);
    let decoded = frames as f64 / 25.0;
    let src_dur = format_duration(&src);
    if !ok || !stderr.trim().is_empty() {
        fails.push(format!(
            "ffmpeg playing master.m3u8: ok={ok}, stderr: {stderr}"
        ));
    }
    if (decoded - src_dur).abs() > 0.2 {
        fails.push(format!(
            "ffmpeg decoded {frames} frames = {decoded:.3} s via master.m3u8, source {src_dur:.3} s"
        ));
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn package_uses_a_given_secret_file() {
    let src = sources().no_audio();
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("given.secret");
    std::fs::write(&secret_path, format!("{SECRET_HEX}\n")).unwrap();
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = dir.path().join("out");
    let o = package(&src, &out, &secret_path, &["--ladder", "144:150k"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        std::fs::read_to_string(&secret_path).unwrap(),
        format!("{SECRET_HEX}\n")
    );
    let j = judge(&out, &secret_bytes(SECRET_HEX));
    let mut e = Expect::new(&src, 320, 240, &[("144", 192, 144)]);
    e.has_audio = false;
    assert_package(&j, &e);
}

#[test]
fn default_ladder_on_480p_source_gives_480_and_360() {
    let src = sources().h264_480p();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = package(&src, &out, &dir.path().join("s"), &[]);
    assert!(o.status.success(), "{}", show(&o));
    let secret = secret_bytes(&std::fs::read_to_string(dir.path().join("s")).unwrap());
    let j = judge(&out, &secret);
    assert_package(
        &j,
        &Expect::new(&src, 854, 480, &[("480", 854, 480), ("360", 640, 360)]),
    );
}

#[test]
fn existing_out_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let o = package(
        &sources().h264(),
        &out,
        &dir.path().join("s"),
        &["--ladder", SMALL_LADDER],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .any(|l| l.starts_with("error:")),
        "{}",
        show(&o)
    );
    assert_eq!(
        entries(&out),
        vec!["keep.txt".to_string()],
        "existing dir touched"
    );
}

#[test]
fn non_media_input_is_an_error_and_leaves_no_out_dir() {
    let src_dir = tempfile::tempdir().unwrap();
    let text = src_text(src_dir.path());
    let out_parent = tempfile::tempdir().unwrap();
    let out = out_parent.path().join("out");
    let o = package(
        &text,
        &out,
        &src_dir.path().join("s"),
        &["--ladder", SMALL_LADDER],
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .any(|l| l.starts_with("error:")),
        "{}",
        show(&o)
    );
    assert!(!out.exists(), "out dir created for a non-media input");
    assert_eq!(
        entries(out_parent.path()),
        Vec::<String>::new(),
        "leftovers"
    );
}

#[test]
fn package_with_rate_control_crf_records_it_and_names_bad_values() {
    let src = sources().h264();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = package(
        &src,
        &out,
        &dir.path().join("s"),
        &[
            "--ladder",
            SMALL_LADDER,
            "--rate-control",
            "crf",
            "--crf",
            "23,144:19",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("rate control: crf"),
        "{}",
        show(&o)
    );
    let secret = secret_bytes(&std::fs::read_to_string(dir.path().join("s")).unwrap());
    let j = judge(&out, &secret);
    assert_package(
        &j,
        &Expect::new(&src, 320, 240, &[("240", 320, 240), ("144", 192, 144)]),
    );
    let mut fails = Vec::new();
    check_bandwidth(&out, &j, &mut fails);
    assert!(fails.is_empty(), "{}", fails.join("\n"));
    assert_eq!(j.manifest["rate_control"], "crf");
    assert_eq!(num_of(&j.manifest["renditions"][0]["crf"]), Some(23.0));
    assert_eq!(num_of(&j.manifest["renditions"][1]["crf"]), Some(19.0));

    for (flag, value, named) in [
        ("--rate-control", "vbr", "rate control"),
        ("--crf", "60", "crf"),
    ] {
        let out = dir.path().join(format!("bad{value}"));
        let o = package(&src, &out, &dir.path().join("s"), &[flag, value]);
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(named), "{}", show(&o));
        assert!(!out.exists());
    }
}
