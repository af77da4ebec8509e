//! `cinegate doctor` (issue 19) as an operator runs it: the real binary on a temporary data
//! root, without a server and beside a running one. A healthy root exits 0; a bad config,
//! a world-readable keys dir, an unreachable provider and a floor above the free space each
//! exit non-zero and name the problem.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::harness::server::{Server, BIN};

/// `cinegate [--config FILE] doctor` in `root`, with media_dir and keys_dir under it and
/// `env` on top (no CINEGATE_* from the test's own environment).
fn doctor(root: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("CINEGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(root)
        .env("CINEGATE_MEDIA_DIR", root.join("media"))
        .env("CINEGATE_KEYS_DIR", root.join("keys"))
        .envs(env.iter().copied());
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .args(["doctor", "--timeout", "3s"])
        .output()
        .expect("run doctor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.success(), text)
}

fn temp_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cinegate-test-doctor-")
        .tempdir()
        .expect("tempdir")
}

/// A port on loopback with nothing listening (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn a_healthy_root_passes_with_and_without_a_server() {
    let root = temp_root();
    let (ok, out) = doctor(root.path(), None, &[]);
    assert!(ok, "doctor on a fresh root failed:\n{out}");
    for line in [
        "ok   config",
        "ok   media_dir",
        "ok   keys_dir",
        "ffmpeg: libx264 and aac encoders present",
        "skip clock",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }

    // Beside a running server on the same directories: the socket answers, the store is
    // not touched (the server keeps serving), secrets it wrote are private.
    let s = Server::start(&[]);
    let (ok, out) = doctor(
        &s.root,
        None,
        &[
            (
                "CINEGATE_MEDIA_DIR",
                &s.root.join("media").to_string_lossy(),
            ),
            ("CINEGATE_KEYS_DIR", &s.root.join("keys").to_string_lossy()),
        ],
    );
    assert!(ok, "doctor beside a running server failed:\n{out}");
    assert!(out.contains("a server is running"), "{out}");
    assert!(out.contains("ok   secrets"), "{out}");
    s.get("/api/v1/films", None)
        .expect(200, "the server after doctor ran");
}

#[test]
fn a_bad_config_fails_naming_the_key() {
    let root = temp_root();
    let config = root.path().join("config.toml");
    std::fs::write(&config, "[disk]\nmin_free_bytes = \"lots\"\n").expect("write config");
    let (ok, out) = doctor(root.path(), Some(&config), &[]);
    assert!(!ok, "doctor passed a bad config:\n{out}");
    assert!(
        out.contains("FAIL config") && out.contains("min_free_bytes"),
        "{out}"
    );

    std::fs::write(&config, "[disk]\nmin_free_byte = 5\n").expect("write config");
    let (ok, out) = doctor(root.path(), Some(&config), &[]);
    assert!(!ok, "doctor passed an unknown key:\n{out}");
    assert!(out.contains("min_free_byte"), "{out}");
}

#[test]
fn a_world_readable_keys_dir_fails_with_the_fix() {
    let root = temp_root();
    let keys = root.path().join("keys");
    std::fs::create_dir(&keys).expect("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (ok, out) = doctor(root.path(), None, &[]);
    assert!(!ok, "doctor passed a 0755 keys dir:\n{out}");
    assert!(out.contains("FAIL keys_dir"), "{out}");
    assert!(
        out.contains(&format!("chmod 700 {}", keys.display())),
        "{out}"
    );
}

#[test]
fn an_unreachable_provider_fails_naming_it() {
    let root = temp_root();
    let port = closed_port();
    let config = root.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
             from = \"films@example.com\"\n"
        ),
    )
    .expect("write config");
    let (ok, out) = doctor(root.path(), Some(&config), &[]);
    assert!(!ok, "doctor passed an unreachable SMTP relay:\n{out}");
    assert!(
        out.contains("FAIL provider smtp")
            && out.contains(&format!("127.0.0.1:{port} is unreachable")),
        "{out}"
    );
    assert!(
        out.contains("smtp.host"),
        "the fix does not name the key:\n{out}"
    );
}

#[test]
fn a_floor_above_the_free_space_fails() {
    let root = temp_root();
    let (ok, out) = doctor(
        root.path(),
        None,
        &[("CINEGATE_DISK__MIN_FREE_BYTES", "1152921504606846976")],
    );
    assert!(!ok, "doctor passed a floor of 1 EiB:\n{out}");
    assert!(
        out.contains("FAIL disk") && out.contains("below the floor"),
        "{out}"
    );
}

/// A provider that answers with a `Date` far from this machine's clock: reachable, and the
/// clock check fails naming the skew (a canned answer from a loopback listener).
#[test]
fn a_clock_off_a_providers_date_fails() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let peer = std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let root = temp_root();
    let config = root.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[webhooks]]\nurl = \"http://127.0.0.1:{port}/hook/secret-path\"\n\
             secret = \"abcdefghijklmnopqrstuvwxyz012345\"\n"
        ),
    )
    .expect("write config");
    let (ok, out) = doctor(root.path(), Some(&config), &[]);
    peer.join().expect("peer");
    assert!(!ok, "doctor passed a clock years off:\n{out}");
    assert!(
        out.contains(&format!(
            "ok   provider webhook 1: http://127.0.0.1:{port} answers"
        )),
        "{out}"
    );
    assert!(
        out.contains("FAIL clock") && out.contains("webhook 1's Date header"),
        "{out}"
    );
    assert!(
        !out.contains("secret-path"),
        "a webhook URL's path was printed:\n{out}"
    );
}
