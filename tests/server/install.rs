//! Installing (issue 19): the Debian package and the systemd unit, judged by Debian's own
//! tools (dpkg-deb, lintian, systemd-analyze). Here rather than in a test binary of their
//! own: the package needs the debug binary this binary already builds (a release build
//! takes ~6.5 min on 2 cores), and one more test binary would be one more link of the whole crate.
//!
//! The package is built with `scripts/deb.sh --no-build --profile dev --fast` from the
//! debug binary (cargo-deb strips a copy: ~12 s; unstripped it is ~380 MB and takes ~50 s).
//! cargo-deb 3.8 warns that `--profile dev` "will be a hard error in the future"; if it
//! becomes one, a `[profile.deb-test]` inheriting `dev` is the way out.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::process::run_ok;

use crate::harness::server::BIN;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(cmd).stdout).into_owned()
}

/// `systemd-analyze security --offline=true` scores the unit 2.0 or less (its threshold
/// is on a 0–100 scale: 20), with CAP_NET_BIND_SERVICE granted for [tls] on 443/80.
#[test]
fn the_unit_scores_2_or_less() {
    let unit = repo().join("systemd/cinegate.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (apt install systemd)");
    let report = String::from_utf8_lossy(&out.stdout);
    let score: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for cinegate.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall score in:\n{report}"));
    assert!(score <= 2.0, "the unit scores {score} (> 2.0):\n{report}");
    assert!(
        out.status.success(),
        "systemd-analyze --threshold=20 failed:\n{report}"
    );
    let unit_text = std::fs::read_to_string(&unit).expect("unit");
    for line in [
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ExecStart=/usr/local/bin/cinegate ",
    ] {
        assert!(unit_text.contains(line), "the unit lacks {line:?}");
    }
}

/// `make deb`'s package, from the debug binary: its files and modes, conffile, Depends
/// found by dpkg-shlibdeps, maintainer scripts, the packaged unit (scored too), a config
/// the real binary loads, and lintian without an error.
#[test]
fn the_debian_package_holds_what_an_install_needs() {
    let out = tempfile::Builder::new()
        .prefix("cinegate-test-deb-")
        .tempdir()
        .expect("tempdir");
    // The profile dir is the one this test binary's cinegate was built into.
    let profile_dir = Path::new(BIN).parent().expect("bin dir");
    assert!(profile_dir.ends_with("debug"), "{BIN} is not a debug build");
    let built = text(
        Command::new(repo().join("scripts/deb.sh"))
            .args(["--no-build", "--profile", "dev", "--fast", "--output"])
            .arg(out.path())
            .env(
                "CARGO_TARGET_DIR",
                profile_dir.parent().expect("target dir"),
            ),
    );
    let deb = out.path().join("cinegate_0.1.0-1_amd64.deb");
    assert!(
        deb.is_file(),
        "no {} (cargo deb said {built})",
        deb.display()
    );

    let info = text(Command::new("dpkg-deb").arg("-I").arg(&deb));
    let depends = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends in:\n{info}"));
    for lib in [
        "libavcodec59",
        "libavformat59",
        "libavutil57",
        "libc6",
        "adduser",
    ] {
        assert!(depends.contains(lib), "Depends lacks {lib}: {depends}");
    }

    let contents = text(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let mode_of = |path: &str| -> String {
        contents
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {path} in the package:\n{contents}"))
            .to_string()
    };
    assert_eq!(mode_of("/usr/bin/cinegate"), "-rwxr-xr-x");
    assert_eq!(mode_of("/etc/cinegate/config.toml"), "-rw-r-----");
    assert_eq!(
        mode_of("/usr/lib/systemd/system/cinegate.service"),
        "-rw-r--r--"
    );
    for doc in ["copyright", "changelog.Debian.gz", "config.toml.example"] {
        mode_of(&format!("/usr/share/doc/cinegate/{doc}"));
    }

    let control = out.path().join("control");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap_or_default();
    assert_eq!(read("conffiles").trim(), "/etc/cinegate/config.toml");
    let postinst = read("postinst");
    for piece in [
        "adduser --system",
        "--home /var/lib/cinegate",
        "--shell /usr/sbin/nologin",
        "chown cinegate:cinegate /var/lib/cinegate",
        "chmod 0700 /var/lib/cinegate",
        "deb-systemd-helper enable cinegate.service",
    ] {
        assert!(
            postinst.contains(piece),
            "postinst lacks {piece:?}:\n{postinst}"
        );
    }
    let postrm = read("postrm");
    let purge = postrm
        .find("if [ \"$1\" = \"purge\" ]; then\n    rm -rf /var/lib/cinegate")
        .unwrap_or_else(|| panic!("postrm does not remove the data on purge:\n{postrm}"));
    assert_eq!(
        postrm.matches("rm -rf /var/lib/cinegate").count(),
        1,
        "postrm removes the data outside purge:\n{postrm}"
    );
    assert!(purge > 0);

    let tree = out.path().join("tree");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree));
    let unit = tree.join("usr/lib/systemd/system/cinegate.service");
    let unit_text = std::fs::read_to_string(&unit).expect("packaged unit");
    assert!(
        unit_text
            .contains("\nExecStart=/usr/bin/cinegate --config /etc/cinegate/config.toml serve\n"),
        "{unit_text}"
    );
    // systemd-analyze verify (unknown keys, bad values, a missing binary), with ExecStart
    // pointed at the package's own binary: it is not installed at /usr/bin here.
    let verify_unit = out.path().join("cinegate.service");
    std::fs::write(
        &verify_unit,
        unit_text.replace(
            "\nExecStart=/usr/bin/cinegate ",
            &format!("\nExecStart={}/usr/bin/cinegate ", tree.display()),
        ),
    )
    .expect("unit copy");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&verify_unit)
        .output()
        .expect("systemd-analyze verify");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
    let score = text(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(&unit),
    );
    assert!(score.contains("Overall exposure level"), "{score}");

    // The packaged config loads with the real binary (doctor's first check), and points
    // the data at /var/lib/cinegate.
    let config = tree.join("etc/cinegate/config.toml");
    let config_text = std::fs::read_to_string(&config).expect("packaged config");
    assert!(config_text.contains("media_dir = \"/var/lib/cinegate/media\""));
    assert!(config_text.contains("keys_dir = \"/var/lib/cinegate/keys\""));
    let doctor = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["doctor", "--timeout", "1s"])
        .env_remove("CINEGATE_MEDIA_DIR")
        .env_remove("CINEGATE_KEYS_DIR")
        .output()
        .expect("doctor");
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        said.contains(&format!("ok   config: {} loads", config.display())),
        "{said}"
    );

    let lintian = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .expect("lintian (apt install lintian)");
    let found = String::from_utf8_lossy(&lintian.stdout);
    let errors: Vec<&str> = found.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{found}");
    if !found.trim().is_empty() {
        eprintln!("lintian:\n{found}");
    }
}
