//! Issue 12, items 7 and 8: what the server leaves on disk for other local users (the data
//! root under the common umask 022), who may use its operator socket, and who may read
//! `/metrics`.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;

use crate::harness::server::{Server, BIN};
use crate::harness::users::unique_email;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Every directory and file under `dir` (itself included), symbolic links left out.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
                out.extend(tree(&entry.path()));
            }
        }
    }
    out
}

/// Paths under the data roots that group or others may use, with their modes.
fn loose(s: &Server) -> Vec<String> {
    let mut paths = tree(&s.root.join("media/store"));
    paths.extend(tree(&s.root.join("keys")));
    for p in [
        "media",
        "media/films",
        "media/uploads",
        "media/uploads/partial",
    ] {
        paths.push(s.root.join(p));
    }
    paths
        .into_iter()
        .filter(|p| p.exists() && mode(p) & 0o077 != 0)
        .map(|p| format!("{} {:04o}", p.display(), mode(&p)))
        .collect()
}

/// Starts a tus upload: the server creates `uploads/partial/{id}` at once.
fn start_upload(s: &Server) {
    use base64::Engine as _;
    let admin = s.user("umask-admin", true);
    let film = s.create_film(&admin, "Umask film");
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    s.exec(
        s.req(Method::POST, "/api/v1/admin/uploads")
            .bearer_auth(&admin.access)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "1000")
            .header("Upload-Metadata", format!("film_id {}", b64(&film))),
    )
    .expect(201, "tus creation");
}

#[test]
fn the_data_root_is_owner_only_whatever_the_umask() {
    // The server inherits this process's umask. 022 is the usual one, and under it an
    // unprotected server leaves e-mails, orders and comments world-readable. (Process-wide,
    // but 022 is what every other test runs under anyway.)
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let mut s = Server::start(&[]);
    start_upload(&s);
    let socket = s.root.join("media/cinegate.sock");
    let meta = std::fs::metadata(&socket).expect("operator socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(mode(&socket), 0o600, "operator socket mode");
    let partial: Vec<PathBuf> = std::fs::read_dir(s.root.join("media/uploads/partial"))
        .expect("uploads/partial")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(partial.len(), 1, "{partial:?}");
    assert_eq!(mode(&partial[0]), 0o600, "a file created later (an upload)");
    assert_eq!(
        loose(&s),
        Vec::<String>::new(),
        "readable by others while running"
    );
    assert!(
        tree(&s.root.join("media/store")).len() > 2,
        "sled wrote no files"
    );

    // Stopped, sled has written its last files; none is open to others either.
    s.stop();
    assert_eq!(
        loose(&s),
        Vec::<String>::new(),
        "readable by others after a stop"
    );

    // A data root made by an older version (or by hand) is tightened at start, and logged.
    let made_by_old = [
        ("media", 0o755),
        ("media/store", 0o755),
        ("media/store/conf", 0o644),
        ("media/films", 0o755),
        ("keys", 0o755),
        ("keys/access-token.key", 0o644),
    ];
    for (p, m) in made_by_old {
        chmod(&s.root.join(p), m);
    }
    s.restart();
    assert_eq!(loose(&s), Vec::<String>::new(), "not tightened at start");
    let log = std::fs::read_to_string(s.log_path()).unwrap_or_default();
    assert!(
        log.contains("tightened permissions") && log.contains("access-token.key"),
        "the tightening is not logged: {}",
        s.log_tail(20)
    );
}

/// A user other than the server's: `nobody` through setpriv (util-linux) or runuser.
fn as_nobody() -> Option<Command> {
    let found = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if found("setpriv") {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        Some(cmd)
    } else if found("runuser") {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "nobody", "--"]);
        Some(cmd)
    } else {
        None
    }
}

#[test]
fn the_operator_socket_refuses_other_users() {
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "SKIPPED the_operator_socket_refuses_other_users: needs root to act as another user"
        );
        return;
    }
    let Some(mut nobody) = as_nobody() else {
        eprintln!("SKIPPED the_operator_socket_refuses_other_users: neither setpriv nor runuser is installed");
        return;
    };
    let s = Server::start(&[]);
    let media = s.root.join("media");
    // The socket is bound just after the server prints its port.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !media.join("cinegate.sock").exists() {
        assert!(std::time::Instant::now() < deadline, "no operator socket");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The file permissions are the first lock; open them as a mistake would (a loosened
    // directory, a socket chmod-ed for a helper), so that only the peer check is left.
    chmod(&s.root, 0o711);
    chmod(&media, 0o711);
    chmod(&media.join("cinegate.sock"), 0o666);

    let email = unique_email("stranger");
    let out = nobody
        .arg(BIN)
        .args(["user", "create", &email, "--admin"])
        .env("CINEGATE_MEDIA_DIR", &media)
        .env("CINEGATE_KEYS_DIR", s.root.join("keys"))
        .current_dir("/")
        .output()
        .expect("run the CLI as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("refused"),
        "another user's command was not refused by the server ({}):\nstdout: {}\nstderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    // Nothing was done: the e-mail is still free for the server's own user.
    let created = s.cli(&["user", "create", &email]);
    assert!(created.starts_with("created"), "{created}");
    assert!(
        s.log_tail(50)
            .contains("refused a connection from another user"),
        "the refusal is not logged: {}",
        s.log_tail(20)
    );
}

fn metrics_token(s: &Server) -> String {
    let path = s.root.join("keys/metrics.token");
    assert_eq!(mode(&path), 0o600, "metrics.token mode");
    std::fs::read_to_string(&path)
        .expect("keys/metrics.token")
        .trim()
        .to_string()
}

#[test]
fn metrics_ask_for_the_token_in_keys() {
    let s = Server::start(&[]);
    let r = s.get("/metrics", None);
    r.expect_error(401, "unauthenticated", "/metrics without a token");
    assert!(r.header("www-authenticate").is_some(), "{:?}", r.headers);
    let token = metrics_token(&s);
    assert_eq!(token.len(), 64, "a 32-byte token in hex");
    s.get("/metrics", Some("not-the-token")).expect_error(
        401,
        "invalid_token",
        "/metrics with a wrong token",
    );
    // An access token of an admin is not the metrics token either.
    let admin = s.user("metrics-admin", true);
    s.get("/metrics", Some(&admin.access)).expect_error(
        401,
        "invalid_token",
        "/metrics with an admin's access token",
    );

    let r = s.get("/metrics", Some(&token));
    r.expect(200, "/metrics with the token");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text; version=1.0.0")),
        "{:?}",
        r.headers
    );
    let text = r.text();
    // The three refusals above, counted by class and status (tests/server/metrics.rs
    // checks every family against an independent parser).
    assert!(
        text.contains("# TYPE cinegate_http_requests counter")
            && text.contains("cinegate_http_requests_total{class=\"health\",status=\"401\"} 3")
            && text.contains("cinegate_jobs{state=\"queued\"} 0")
            && text.ends_with("# EOF\n"),
        "{text}"
    );
    let log = std::fs::read_to_string(s.log_path()).unwrap_or_default();
    assert!(!log.contains(&token), "the metrics token is in the log");
}

#[test]
fn metrics_on_a_listener_of_their_own() {
    // A free port for the metrics listener (the server prints only its main port).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let s = Server::start(&[("CINEGATE_METRICS__LISTEN", addr.as_str())]);
    let token = metrics_token(&s);

    // The public port does not serve them, token or not.
    s.get("/metrics", Some(&token))
        .expect_error(404, "not_found", "/metrics on the main port");
    s.get("/metrics", None)
        .expect_error(404, "not_found", "/metrics on the main port");

    let http = reqwest::blocking::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut req = http.get(format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        s.exec(req)
    };
    let r = get("/metrics", Some(&token));
    r.expect(200, "/metrics on the metrics port");
    assert!(
        r.text().contains("cinegate_http_requests_total"),
        "{}",
        r.brief()
    );
    get("/metrics", None).expect_error(401, "unauthenticated", "metrics port without a token");
    get("/metrics", Some("wrong")).expect_error(401, "invalid_token", "metrics port, wrong token");
    // Nothing else lives there.
    get("/healthz", None).expect_error(404, "not_found", "/healthz on the metrics port");
    get("/api/v1/films", None).expect_error(404, "not_found", "the API on the metrics port");
}

/// Logs redirected to a file (or the journal) carry no terminal colour codes: they are
/// read by people with `less` and by log shippers, not drawn by a terminal.
#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let s = Server::start(&[]);
    s.get("/healthz", None).expect(200, "healthz");
    let log = std::fs::read_to_string(s.log_path()).unwrap_or_default();
    assert!(log.contains("INFO"), "no log lines to judge: {log:?}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a redirected log: {:?}",
        s.log_tail(5)
    );
}
