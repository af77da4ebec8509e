//! Issue 19, "HTTPS built in": the real server with `tls.mode = "files"` (certificates made
//! by the openssl CLI, reloaded on SIGHUP) and `tls.mode = "acme"` against Debian's pebble
//! ACME test CA with pebble-challtestsrv as its DNS, judged by reqwest clients that trust
//! only the test CA.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

use crate::harness::server::Server;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA (`ca.pem`, `ca.key`) in `dir`.
pub(crate) fn make_ca(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cinegate test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf `{name}.pem` / `{name}.key` for `san` (e.g. `DNS:localhost,IP:127.0.0.1`), signed
/// by the CA in `dir`.
pub(crate) fn make_leaf(dir: &Path, name: &str, san: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let pem = format!("{name}.pem");
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=cinegate test",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "1",
            "-extfile",
            &ext,
        ],
    );
}

/// The DER of a PEM certificate file's first certificate, through openssl.
fn der_of(dir: &Path, pem: &str) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["x509", "-in", pem, "-outform", "DER"])
        .current_dir(dir)
        .output()
        .expect("openssl x509");
    assert!(out.status.success());
    out.stdout
}

/// A client that trusts only `root_pem` and reaches `name` at 127.0.0.1:`port`.
fn client_trusting(root_pem: &[u8], name: &str, port: u16) -> Client {
    Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem).expect("root PEM"))
        .resolve(name, ([127, 0, 0, 1], port).into())
        .redirect(reqwest::redirect::Policy::none())
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// The certificate the server presented on this answer (DER).
fn served_cert(res: &reqwest::blocking::Response) -> Vec<u8> {
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info with the peer certificate")
        .to_vec()
}

fn healthz(client: &Client, url: &str) -> (Vec<u8>, Value) {
    let res = client
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("{url}: {e:?}"));
    assert_eq!(res.status(), 200);
    let cert = served_cert(&res);
    (cert, res.json().expect("healthz JSON"))
}

fn sighup(server: &Server) {
    let ok = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(ok.success());
}

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn files_mode_serves_redirects_sets_hsts_and_reloads_on_sighup() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    make_ca(dir);
    make_leaf(dir, "first", "DNS:localhost");
    make_leaf(dir, "second", "DNS:localhost");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::copy(dir.join("first.pem"), &cert).unwrap();
    std::fs::copy(dir.join("first.key"), &key).unwrap();
    let server = Server::start(&[
        ("CINEGATE_TLS__MODE", "files"),
        ("CINEGATE_TLS__LISTEN", "127.0.0.1:0"),
        ("CINEGATE_TLS__CERT_FILE", cert.to_str().unwrap()),
        ("CINEGATE_TLS__KEY_FILE", key.to_str().unwrap()),
        // SIGHUP is what this test exercises; the mtime poll would race it.
        ("CINEGATE_TLS__RELOAD_INTERVAL", "1h"),
        ("CINEGATE_TLS__HSTS_MAX_AGE", "1day"),
        ("CINEGATE_PUBLIC_URL", "https://localhost"),
    ]);
    let https = server.https_port.expect("an HTTPS listener");
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let client = client_trusting(&ca, "localhost", https);
    let url = format!("https://localhost:{https}/healthz");

    // A verified answer, with HSTS, showing the certificate.
    let res = client.get(&url).send().expect("HTTPS /healthz");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=86400")
    );
    assert_eq!(served_cert(&res), der_of(dir, "first.pem"));
    let health: Value = res.json().unwrap();
    assert_eq!(health["tls"]["mode"], "files", "{health}");
    assert_eq!(health["tls"]["domains"], serde_json::json!(["localhost"]));
    assert!(health["tls"]["not_after"].as_i64().unwrap() > 0, "{health}");
    assert!(health["tls"].get("last_error").is_none(), "{health}");
    // The whole app answers there, not only /healthz.
    let films = client
        .get(format!("https://localhost:{https}/api/v1/films"))
        .send()
        .unwrap();
    assert_eq!(films.status(), 200);

    // A client that trusts only the usual web roots refuses the certificate.
    let stranger = Client::builder()
        .resolve("localhost", ([127, 0, 0, 1], https).into())
        .build()
        .unwrap();
    assert!(stranger.get(&url).send().is_err());

    // Plain HTTP: a 308 to the same host, path and query over HTTPS.
    let plain = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = plain
        .get(format!(
            "http://127.0.0.1:{}/api/v1/films?limit=2",
            server.port
        ))
        .header("Host", format!("localhost:{}", server.port))
        .send()
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(format!("https://localhost:{https}/api/v1/films?limit=2").as_str())
    );
    assert!(res.headers().get("strict-transport-security").is_none());

    // New files + SIGHUP: the new certificate is served without a restart.
    std::fs::copy(dir.join("second.pem"), &cert).unwrap();
    std::fs::copy(dir.join("second.key"), &key).unwrap();
    sighup(&server);
    let second = der_of(dir, "second.pem");
    wait_for("the second certificate", Duration::from_secs(10), || {
        // A new connection each time: the certificate is chosen at the handshake.
        let c = client_trusting(&ca, "localhost", https);
        let (served, _) = healthz(&c, &url);
        (served == second).then_some(())
    });

    // A bad replacement (the first key with the second certificate): refused, the second
    // certificate stays, and /healthz says why.
    std::fs::copy(dir.join("first.key"), &key).unwrap();
    sighup(&server);
    let health = wait_for("the reload error", Duration::from_secs(10), || {
        let c = client_trusting(&ca, "localhost", https);
        let (served, health) = healthz(&c, &url);
        assert_eq!(served, second, "the old certificate must stay");
        health["tls"].get("last_error").is_some().then_some(health)
    });
    let error = health["tls"]["last_error"].as_str().unwrap();
    assert!(error.contains("key does not fit"), "{error}");
    assert!(error.contains("cert.pem"), "{error}");
    assert!(
        server.log_tail(50).contains("TLS certificate not updated"),
        "{}",
        server.log_tail(20)
    );

    // The console's System page shows the same, to an admin signed in over HTTPS.
    let email = crate::harness::users::unique_email("tls-admin");
    assert!(server
        .cli(&["user", "create", &email, "--admin"])
        .starts_with("created"));
    let token = server.login_link_token(&email);
    let base = format!("https://localhost:{https}");
    let signed_in = client
        .post(format!("{base}/admin/sign-in/link"))
        .header("X-Requested-With", "cinegate")
        .form(&[("token", token.as_str()), ("next", "/admin/system")])
        .send()
        .unwrap();
    assert!(signed_in.status().is_success(), "{}", signed_in.status());
    let cookie: Vec<String> = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let page = client
        .get(format!("{base}/admin/system"))
        .header("Cookie", cookie.join("; "))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    assert!(html.contains("id=\"tls-error\""), "{html}");
    assert!(html.contains("key does not fit"), "{html}");
    assert!(
        html.contains(health["tls"]["serial"].as_str().unwrap()),
        "{html}"
    );
}

/// `N` distinct free loopback ports (held together while chosen, so none repeats).
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// A peer process killed when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Peer {
    fn start(name: &'static str, cmd: &mut Command, log: &Path) -> Peer {
        let log = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} (apt package pebble): {e}"));
        Peer(child)
    }
}

/// Pebble makes its CA keys at start: seconds on a busy machine.
fn wait_listening(port: u16, peer: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{peer} is not listening on {port}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn acme_mode_gets_a_certificate_from_pebble_and_renews_it() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // pebble's own HTTPS (directory and management) certificate, from a CA cinegate's
    // tls.acme_root_file trusts.
    make_ca(dir);
    make_leaf(dir, "pebble", "DNS:localhost,IP:127.0.0.1");
    let [acme, mgmt, dns, http, tls_port, dns_mgmt] = free_ports();
    // Short certificates: renewed at 2/3 of 24 s.
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt}"),
        "certificate": dir.join("pebble.pem"),
        "privateKey": dir.join("pebble.key"),
        "httpPort": http,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
        "certificateValidityPeriod": 24,
    }});
    std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
    let _dns = Peer::start(
        "pebble-challtestsrv",
        Command::new("pebble-challtestsrv").args([
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{dns_mgmt}"),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ]),
        &dir.join("challtestsrv.log"),
    );
    let _pebble = Peer::start(
        "pebble",
        Command::new("pebble")
            .args([
                "-config",
                "pebble.json",
                "-dnsserver",
                &format!("127.0.0.1:{dns}"),
            ])
            .current_dir(dir)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0"),
        &dir.join("pebble.log"),
    );
    wait_listening(acme, "pebble", &dir.join("pebble.log"));
    wait_listening(mgmt, "pebble management", &dir.join("pebble.log"));

    let server = Server::start(&[
        ("CINEGATE_LISTEN", &format!("127.0.0.1:{http}")),
        ("CINEGATE_TLS__MODE", "acme"),
        ("CINEGATE_TLS__LISTEN", "127.0.0.1:0"),
        ("CINEGATE_PUBLIC_URL", "https://films.cinegate.test"),
        ("CINEGATE_TLS__DOMAINS", "[www.cinegate.test]"),
        (
            "CINEGATE_TLS__ACME_DIRECTORY",
            &format!("https://127.0.0.1:{acme}/dir"),
        ),
        (
            "CINEGATE_TLS__ACME_ROOT_FILE",
            dir.join("ca.pem").to_str().unwrap(),
        ),
    ]);
    let https = server.https_port.expect("an HTTPS listener");

    // Pebble's root, from its management interface (a new one every start).
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let root = Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
        .get(format!("https://127.0.0.1:{mgmt}/roots/0"))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.bytes())
        .expect("pebble's root");
    let url = format!("https://films.cinegate.test:{https}/healthz");

    let started = Instant::now();
    let (first, health) = wait_for("the first certificate", Duration::from_secs(30), || {
        let c = client_trusting(&root, "films.cinegate.test", https);
        let res = c.get(&url).send().ok()?;
        let cert = served_cert(&res);
        Some((cert, res.json::<Value>().ok()?))
    });
    eprintln!("issued in {:?}", started.elapsed());
    assert_eq!(health["tls"]["mode"], "acme", "{health}");
    let mut names: Vec<&str> = health["tls"]["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["films.cinegate.test", "www.cinegate.test"],
        "{health}"
    );
    let (serial, not_after) = (
        health["tls"]["serial"].as_str().unwrap().to_owned(),
        health["tls"]["not_after"].as_i64().unwrap(),
    );
    // The other name is on the same certificate, verified for it.
    let www = client_trusting(&root, "www.cinegate.test", https)
        .get(format!("https://www.cinegate.test:{https}/healthz"))
        .send()
        .expect("verified for www");
    assert_eq!(www.status(), 200);

    // The account and certificate are cached owner-only.
    let acme_dir = server.root.join("keys/acme");
    let mode = |p: PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(acme_dir.clone()), 0o700);
    for f in ["account.json", "cert.pem", "key.pem", "order.json"] {
        assert_eq!(mode(acme_dir.join(f)), 0o600, "{f}");
    }

    // Renewal without a restart: a new certificate, a later notAfter.
    let (renewed, health) = wait_for("the renewed certificate", Duration::from_secs(40), || {
        let c = client_trusting(&root, "films.cinegate.test", https);
        let res = c.get(&url).send().ok()?;
        let cert = served_cert(&res);
        let health: Value = res.json().ok()?;
        (cert != first).then_some((cert, health))
    });
    assert_ne!(health["tls"]["serial"].as_str().unwrap(), serial);
    assert!(health["tls"]["not_after"].as_i64().unwrap() > not_after);
    eprintln!("renewed after {:?}", started.elapsed());

    // A restart serves the cached certificate (not yet due) with the cached account.
    let mut server = server;
    server.stop();
    server.restart();
    let https = server.https_port.expect("an HTTPS listener");
    let url = format!("https://films.cinegate.test:{https}/healthz");
    let served = wait_for("the cached certificate", Duration::from_secs(10), || {
        let res = client_trusting(&root, "films.cinegate.test", https)
            .get(&url)
            .send()
            .ok()?;
        Some(served_cert(&res))
    });
    assert_eq!(served, renewed, "the cached certificate after a restart");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert_eq!(log.matches("ACME account created").count(), 1, "{log}");
    assert_eq!(log.matches("ordering a certificate").count(), 2, "{log}");
}

/// Over TLS there is no sendfile(2): segments go out as ordinary streamed bodies, the same
/// bytes as on the plain listener, ranges included. Then new files are picked up by the
/// modification-time poll alone (no SIGHUP).
#[test]
fn hls_segments_are_served_over_https_and_changed_files_reload() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    make_ca(dir);
    make_leaf(dir, "leaf", "DNS:localhost");
    let server = Server::start(&[
        ("CINEGATE_TLS__MODE", "files"),
        ("CINEGATE_TLS__LISTEN", "127.0.0.1:0"),
        (
            "CINEGATE_TLS__CERT_FILE",
            dir.join("leaf.pem").to_str().unwrap(),
        ),
        (
            "CINEGATE_TLS__KEY_FILE",
            dir.join("leaf.key").to_str().unwrap(),
        ),
        // The plain listener keeps serving the app, so the harness can set the film up.
        ("CINEGATE_TLS__REDIRECT", "false"),
        ("CINEGATE_TLS__RELOAD_INTERVAL", "1s"),
    ]);
    let https = server.https_port.expect("an HTTPS listener");
    let admin = server.user("tls-admin", true);
    let (film, job) = server.ingest(&crate::harness::media::src_other(), "Over TLS", true);
    server.wait_job_ready(&admin, &job, Duration::from_secs(180));
    let info = crate::harness::films::film_info(&server, &admin, &film);
    let playback = server.playback(&admin, &film);
    let segment = playback.path(&format!("{}/00000.ts", info.renditions[0]));
    let plain = server.get(&segment, None);
    plain.expect(200, "segment over plain HTTP");
    assert!(plain.body.len() > 1000);

    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let client = client_trusting(&ca, "localhost", https);
    let url = format!("https://localhost:{https}{segment}");
    let res = client.get(&url).send().expect("segment over HTTPS");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(plain.body.len().to_string().as_str())
    );
    assert_eq!(res.bytes().unwrap().as_ref(), plain.body.as_slice());
    let res = client
        .get(&url)
        .header("Range", "bytes=100-1099")
        .send()
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().unwrap().as_ref(), &plain.body[100..1100]);

    make_leaf(dir, "next", "DNS:localhost");
    std::fs::copy(dir.join("next.key"), dir.join("leaf.key")).unwrap();
    std::fs::copy(dir.join("next.pem"), dir.join("leaf.pem")).unwrap();
    let next = der_of(dir, "next.pem");
    let health_url = format!("https://localhost:{https}/healthz");
    wait_for(
        "the changed files to be served",
        Duration::from_secs(10),
        || {
            let (served, _) = healthz(&client_trusting(&ca, "localhost", https), &health_url);
            (served == next).then_some(())
        },
    );
}

/// A CA that cannot be reached: the order fails, the server keeps serving, and `/healthz`
/// (still 200) says why, with no certificate yet.
#[test]
fn a_failing_acme_order_is_shown_in_healthz() {
    let [closed] = free_ports();
    let server = Server::start(&[
        ("CINEGATE_TLS__MODE", "acme"),
        ("CINEGATE_TLS__LISTEN", "127.0.0.1:0"),
        ("CINEGATE_TLS__REDIRECT", "false"),
        ("CINEGATE_PUBLIC_URL", "https://films.cinegate.test"),
        (
            "CINEGATE_TLS__ACME_DIRECTORY",
            &format!("https://127.0.0.1:{closed}/dir"),
        ),
    ]);
    let health = wait_for("the order's failure", Duration::from_secs(20), || {
        let r = server.get("/healthz", None);
        r.expect(200, "healthz while ACME fails");
        let health = r.json();
        health["tls"].get("last_error").is_some().then_some(health)
    });
    assert_eq!(health["tls"]["mode"], "acme", "{health}");
    assert_eq!(
        health["tls"]["domains"],
        serde_json::json!(["films.cinegate.test"])
    );
    assert!(health["tls"].get("not_after").is_none(), "{health}");
    let error = health["tls"]["last_error"].as_str().unwrap();
    assert!(error.starts_with("ACME: "), "{error}");
    assert!(server.log_tail(50).contains("retrying the ACME order"));
}

/// `systemctl reload` (SIGHUP) on a server without TLS files: nothing to reload, and the
/// signal's default action (ending the process) must not happen.
#[test]
fn sighup_without_tls_files_keeps_the_server_up() {
    let server = Server::start(&[]);
    sighup(&server);
    sighup(&server);
    wait_for("the SIGHUP log line", Duration::from_secs(10), || {
        server
            .log_tail(50)
            .contains("SIGHUP: nothing to reload")
            .then_some(())
    });
    server
        .get("/healthz", None)
        .expect(200, "healthz after SIGHUP");
}
