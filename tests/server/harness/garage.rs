//! A real distributed S3-compatible store for the storage tests (issue 20): three Garage
//! 2.5 nodes on loopback with replication factor 3, and nginx in front of them twice, as the
//! test "CDN" over the nodes' web endpoints and as a balancing front over their S3 APIs.
//!
//! Garage is the judge of what a client sends: it checks SigV4 signatures, the region and the
//! key's bucket permissions. (moto accepts any secret, so it cannot be; test-peers.md §12.)
//! Garage has no bucket policies or ACLs: anonymous reads exist only on its web endpoint,
//! which picks the bucket from the Host header, so the CDN sends `Host: cinegate.web.garage`.
//! The CDN's `proxy_next_upstream` is what keeps anonymous GETs working with one node dead;
//! a URL pinned to one node would die with it.
//!
//! Every child (the nodes, nginx) is killed when the [`Garage`] is dropped, a panicking test
//! included, and by a watchdog shell if the test process dies without dropping it.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

/// The bucket every cluster has; website access (anonymous GET through the CDN) is on.
const BUCKET: &str = "cinegate";
/// Garage's `s3_region`: SigV4 scopes must name exactly this.
const REGION: &str = "garage";
/// The test key, imported with read, write and owner rights on [`BUCKET`].
const ACCESS_KEY_ID: &str = "GKcinegatetest000000000000";
const SECRET_ACCESS_KEY: &str = "cinegate-test-secret-key-0123456789abcdef";
/// The web endpoint's root domain; the CDN asks for `{BUCKET}{WEB_ROOT_DOMAIN}`.
const WEB_ROOT_DOMAIN: &str = ".web.garage";
const NODES: usize = 3;
/// Start-up steps are bounded by this, never by a fixed sleep.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One Garage node: its process (None once killed) and its four loopback ports.
struct Node {
    child: Option<Child>,
    dir: PathBuf,
    s3: u16,
    rpc: u16,
    web: u16,
    admin: u16,
}

impl Node {
    fn log(&self) -> PathBuf {
        self.dir.join("garage.log")
    }
}

/// A running 3-node Garage cluster with bucket [`BUCKET`], the test key, a CORS rule that
/// lets any origin GET/HEAD (hls.js fetches segments cross-origin), and nginx in front.
pub struct Garage {
    nodes: Vec<Node>,
    nginx: Option<Child>,
    cdn_port: u16,
    s3_front_port: u16,
    admin_token: String,
    /// Kills every child (and removes the directory) when this process's end closes its
    /// stdin; dismissed before we kill the children ourselves, so it never signals a PID
    /// that was reaped and may have been reused.
    watchdog: Option<(Child, ChildStdin)>,
    /// Time from spawning the nodes until every node's /health said 200 (layout applied).
    healthy_after: Duration,
    /// Time until everything was ready: bucket, key, website, CORS and nginx too.
    ready_after: Duration,
    http: Client,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// The Garage binary: `CINEGATE_GARAGE`, else the one scripts/install-deps.sh builds into
/// `~/.cache/cinegate/garage/bin`, else `garage` on PATH.
pub fn garage_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CINEGATE_GARAGE") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "CINEGATE_GARAGE={} is not a file (unset it to use the one scripts/install-deps.sh builds)",
            p.display()
        );
        return p;
    }
    let cached = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/cinegate/garage/bin/garage"))
        .filter(|p| p.is_file());
    cached.or_else(|| on_path("garage")).unwrap_or_else(|| {
        panic!(
            "Garage is not installed: run scripts/install-deps.sh (it builds Garage 2.5.0 with \
                 cargo install into ~/.cache/cinegate/garage, about 9 minutes on 2 cores), or set \
                 CINEGATE_GARAGE to a garage binary"
        )
    })
}

fn nginx_binary() -> PathBuf {
    // Debian puts it in /usr/sbin, which a non-root user's PATH may lack.
    on_path("nginx")
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("nginx is not installed: run scripts/install-deps.sh (apt package nginx)")
        })
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `N` distinct free loopback ports (held together while chosen, so none repeats).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("local addr").port())
}

/// `n` random bytes as hex, from the kernel (for the RPC secret and the admin token).
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    hex::encode(buf)
}

/// Writes a file only its owner may read (the configs hold the RPC secret and admin token).
fn write_private(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Garage {
    /// Starts the cluster and nginx, and returns when all of it serves. Panics, with the
    /// nodes' logs, when a step does not finish in 30 s.
    pub fn start() -> Garage {
        let t0 = Instant::now();
        let tmp = tempfile::Builder::new()
            .prefix("cinegate-garage-")
            .tempdir()
            .expect("tempdir");
        // CINEGATE_TEST_KEEP=1 keeps the directory (configs, node and nginx logs).
        let (dir, tmp) = if std::env::var_os("CINEGATE_TEST_KEEP").is_some() {
            let dir = tmp.keep();
            eprintln!("garage directory: {}", dir.display());
            (dir, None)
        } else {
            (tmp.path().to_path_buf(), Some(tmp))
        };
        let ports: [u16; 4 * NODES + 2] = free_ports();
        let mut garage = Garage {
            nodes: (0..NODES)
                .map(|i| Node {
                    child: None,
                    dir: dir.join(format!("n{i}")),
                    s3: ports[4 * i],
                    rpc: ports[4 * i + 1],
                    web: ports[4 * i + 2],
                    admin: ports[4 * i + 3],
                })
                .collect(),
            nginx: None,
            cdn_port: ports[4 * NODES],
            s3_front_port: ports[4 * NODES + 1],
            admin_token: random_hex(32),
            watchdog: None,
            healthy_after: Duration::ZERO,
            ready_after: Duration::ZERO,
            http: Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            dir,
            _tmp: tmp,
        };
        // awscli 1.x presigns with SigV2 for some regions (us-east-1, us-west-2), which
        // Garage does not take: always SigV4, path-style.
        write_private(
            &garage.dir.join("aws.config"),
            "[default]\ns3 =\n  signature_version = s3v4\n  addressing_style = path\n",
        );
        // From here on a panic drops `garage`, which kills what was started.
        garage.spawn_watchdog();
        garage.spawn_nodes();
        garage.form_cluster();
        garage.healthy_after = t0.elapsed();
        garage.create_bucket();
        garage.spawn_nginx();
        garage.ready_after = t0.elapsed();
        garage
    }

    /// One node's S3 API, e.g. `http://127.0.0.1:PORT` (node 0's; see [`Garage::s3_endpoint_of`]).
    pub fn s3_endpoint(&self) -> String {
        self.s3_endpoint_of(0)
    }

    /// Node `i`'s S3 API (to give each runner a node of its own).
    pub fn s3_endpoint_of(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3)
    }

    /// nginx over all three nodes' S3 APIs: it passes the client's Host header unchanged, so
    /// SigV4 signatures still verify, and tries the next node when one is down.
    pub fn s3_front_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_front_port)
    }

    pub fn region(&self) -> &'static str {
        REGION
    }

    pub fn bucket(&self) -> &'static str {
        BUCKET
    }

    pub fn access_key_id(&self) -> &'static str {
        ACCESS_KEY_ID
    }

    pub fn secret_access_key(&self) -> &'static str {
        SECRET_ACCESS_KEY
    }

    /// The test CDN's base URL, `http://127.0.0.1:PORT` with **no** trailing '/':
    /// `{cdn_base_url}/{object key}` GETs the object anonymously (with CORS headers), from
    /// whichever node answers.
    pub fn cdn_base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.cdn_port)
    }

    /// Time from spawning the nodes until all three reported healthy (layout applied), and
    /// until the whole fixture was ready (bucket, key, CORS, nginx).
    pub fn startup_times(&self) -> (Duration, Duration) {
        (self.healthy_after, self.ready_after)
    }

    /// SIGKILLs node `i` (0..3): no shutdown work at all. Reads and writes still reach a
    /// quorum of 2 on the others.
    pub fn kill_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut child = node.child.take().expect("node already killed");
        // Tell the watchdog to forget this PID before it is reaped.
        if let Some((_, stdin)) = self.watchdog.as_mut() {
            let _ = writeln!(stdin, "-{}", child.id());
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Runs the AWS CLI (an independent S3 client) against `endpoint` with the given
    /// credentials and region (a test's wrong ones, say), always signing with SigV4; the
    /// user's own AWS configuration is ignored.
    pub fn aws_with(
        &self,
        endpoint: &str,
        access_key_id: &str,
        secret: &str,
        region: &str,
        args: &[&str],
    ) -> Output {
        let mut cmd = Command::new("aws");
        cmd.args(["--endpoint-url", endpoint, "--region", region])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_CONFIG_FILE", self.dir.join("aws.config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null());
        cmd.output().unwrap_or_else(|e| {
            panic!("run aws (pip awscli, installed by scripts/install-deps.sh): {e}")
        })
    }

    /// The AWS CLI against node 0 with the test key; panics with its output unless it succeeds.
    pub fn aws(&self, args: &[&str]) -> Output {
        let out = self.aws_with(
            &self.s3_endpoint(),
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            REGION,
            args,
        );
        assert!(
            out.status.success(),
            "aws {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Every object key under `prefix`, sorted (S3 ListObjectsV2 through the AWS CLI).
    pub fn list_keys(&self, prefix: &str) -> Vec<String> {
        let out = self.aws(&[
            "s3api",
            "list-objects-v2",
            "--bucket",
            BUCKET,
            "--prefix",
            prefix,
            "--output",
            "json",
        ]);
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Vec::new(); // no objects: the CLI prints nothing
        }
        let v: Value = serde_json::from_slice(&out.stdout).expect("list-objects-v2 JSON");
        let mut keys: Vec<String> = v["Contents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o["Key"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        keys.sort();
        keys
    }

    // -- start-up ----------------------------------------------------------------------------

    fn spawn_watchdog(&mut self) {
        // Lines on stdin are PIDs to kill, "-PID" forgets one; at EOF (our last descriptor
        // closed: the test process is gone) it SIGKILLs the rest and removes the directory.
        let script = r#"pids=" "
            while read -r p; do
              case "$p" in
                -*) pids=$(printf '%s' "$pids" | sed "s/ ${p#-} / /") ;;
                *) pids="$pids$p " ;;
              esac
            done
            for p in $pids; do kill -KILL "$p" 2>/dev/null; done
            if [ -n "$1" ]; then rm -rf "$1"; fi"#;
        let remove = if self._tmp.is_some() {
            self.dir.to_string_lossy().into_owned()
        } else {
            String::new()
        };
        let mut watchdog = Command::new("sh")
            .args(["-c", script, "garage-watchdog", &remove])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watchdog");
        let stdin = watchdog.stdin.take().expect("watchdog stdin");
        self.watchdog = Some((watchdog, stdin));
    }

    fn watch(&mut self, pid: u32) {
        if let Some((_, stdin)) = self.watchdog.as_mut() {
            writeln!(stdin, "{pid}").expect("tell the watchdog");
        }
    }

    fn spawn_nodes(&mut self) {
        let binary = garage_binary();
        let rpc_secret = random_hex(32);
        for i in 0..NODES {
            let node = &self.nodes[i];
            std::fs::create_dir_all(&node.dir).expect("node dir");
            let config = format!(
                r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "lmdb"
replication_factor = {NODES}
consistency_mode = "consistent"
rpc_secret = "{rpc_secret}"
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3}"
s3_region = "{REGION}"

[s3_web]
bind_addr = "127.0.0.1:{web}"
root_domain = "{WEB_ROOT_DOMAIN}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{token}"
"#,
                dir = node.dir.display(),
                rpc = node.rpc,
                s3 = node.s3,
                web = node.web,
                admin = node.admin,
                token = self.admin_token,
            );
            let config_path = node.dir.join("garage.toml");
            write_private(&config_path, &config);
            let log = std::fs::File::create(node.log()).expect("node log");
            let child = Command::new(&binary)
                .arg("-c")
                .arg(&config_path)
                .arg("server")
                .env("RUST_LOG", "garage=info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
            let pid = child.id();
            self.nodes[i].child = Some(child);
            self.watch(pid);
        }
    }

    /// Polls `check` every 50 ms until it returns Ok, panicking after [`READY_TIMEOUT`] with
    /// its last error and the nodes' logs, or at once if a node exited.
    fn wait_for(&mut self, what: &str, mut check: impl FnMut(&Garage) -> Result<(), String>) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let err = match check(self) {
                Ok(()) => return,
                Err(e) => e,
            };
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                    node.child = None;
                    panic!(
                        "garage node {i} exited ({status}) while waiting for {what}; its log:\n{}",
                        tail(&node.log(), 30)
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "garage: no {what} in {READY_TIMEOUT:?} (last: {err}); logs:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {i}\n{}\n", tail(&n.log(), 15)))
            .collect()
    }

    /// GET /health on node `i`: 200 when it can serve with quorum, 503 when it cannot.
    fn health(&self, i: usize) -> Result<u16, String> {
        let url = format!("http://127.0.0.1:{}/health", self.nodes[i].admin);
        self.http
            .get(url)
            .send()
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }

    /// An admin API v2 call on node `i`; panics unless it answers 2xx.
    fn admin(&self, i: usize, method: reqwest::Method, call: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}/v2/{call}", self.nodes[i].admin);
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("garage admin {call}: {e}"));
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        assert!(status.is_success(), "garage admin {call}: {status}: {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("garage admin {call}: not JSON ({e}): {text}"))
    }

    /// Connects the nodes, gives each a zone of its own in layout version 1, and waits until
    /// every node's /health is 200.
    fn form_cluster(&mut self) {
        self.wait_for("admin API answering on every node", |g| {
            (0..NODES).try_for_each(|i| g.health(i).map(|_| ()))
        });
        let ids: Vec<String> = (0..NODES)
            .map(|i| {
                let info = self.admin(i, reqwest::Method::GET, "GetNodeInfo?node=self", None);
                info["success"]
                    .as_object()
                    .and_then(|m| m.values().next())
                    .and_then(|n| n["nodeId"].as_str())
                    .unwrap_or_else(|| panic!("GetNodeInfo on node {i}: {info}"))
                    .to_string()
            })
            .collect();
        let peers: Vec<String> = (1..NODES)
            .map(|i| format!("{}@127.0.0.1:{}", ids[i], self.nodes[i].rpc))
            .collect();
        let connected = self.admin(
            0,
            reqwest::Method::POST,
            "ConnectClusterNodes",
            Some(json!(peers)),
        );
        assert!(
            connected
                .as_array()
                .is_some_and(|a| a.iter().all(|r| r["success"] == true)),
            "ConnectClusterNodes: {connected}"
        );
        let roles: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"id": id, "zone": format!("dc{i}"), "capacity": 1_000_000_000u64, "tags": []}))
            .collect();
        self.admin(
            0,
            reqwest::Method::POST,
            "UpdateClusterLayout",
            Some(json!({ "roles": roles })),
        );
        self.admin(
            0,
            reqwest::Method::POST,
            "ApplyClusterLayout",
            Some(json!({"version": 1})),
        );
        self.wait_for("/health 200 on every node", |g| {
            for i in 0..NODES {
                match g.health(i)? {
                    200 => {}
                    s => return Err(format!("node {i} /health {s}")),
                }
            }
            Ok(())
        });
    }

    fn create_bucket(&mut self) {
        use reqwest::Method;
        let bucket = self.admin(
            0,
            Method::POST,
            "CreateBucket",
            Some(json!({"globalAlias": BUCKET})),
        );
        let id = bucket["id"]
            .as_str()
            .unwrap_or_else(|| panic!("CreateBucket: {bucket}"))
            .to_string();
        self.admin(
            0,
            Method::POST,
            "ImportKey",
            Some(json!({"accessKeyId": ACCESS_KEY_ID, "secretAccessKey": SECRET_ACCESS_KEY, "name": "cinegate-test"})),
        );
        self.admin(
            0,
            Method::POST,
            "AllowBucketKey",
            Some(json!({"bucketId": id, "accessKeyId": ACCESS_KEY_ID,
                "permissions": {"read": true, "write": true, "owner": true}})),
        );
        // Website access (anonymous GET on the web endpoint, which the CDN fronts) and a
        // CORS rule for hls.js; Garage applies a bucket's CORS rules on its web endpoint too.
        // (2.5's admin API takes the rules in S3's field names.)
        self.admin(
            0,
            Method::POST,
            &format!("UpdateBucket?id={id}"),
            Some(json!({
                "websiteAccess": {"enabled": true, "indexDocument": "index.html"},
                "corsRules": [{
                    "AllowedOrigin": ["*"],
                    "AllowedMethod": ["GET", "HEAD"],
                    "AllowedHeader": ["*"],
                    "ExposeHeader": ["Content-Length", "Content-Range", "ETag"],
                    "MaxAgeSeconds": 3600,
                }],
            })),
        );
    }

    /// Gives the test key write access to the bucket back, or takes it away (reads stay):
    /// a bucket that refuses uploads half-way, without touching the network.
    pub fn set_key_write(&self, allowed: bool) {
        use reqwest::Method;
        let bucket = self.admin(
            0,
            Method::GET,
            &format!("GetBucketInfo?globalAlias={BUCKET}"),
            None,
        );
        let id = bucket["id"]
            .as_str()
            .unwrap_or_else(|| panic!("GetBucketInfo: {bucket}"))
            .to_string();
        let call = if allowed {
            "AllowBucketKey"
        } else {
            "DenyBucketKey"
        };
        self.admin(
            0,
            Method::POST,
            call,
            Some(json!({"bucketId": id, "accessKeyId": ACCESS_KEY_ID,
                "permissions": {"read": false, "write": true, "owner": false}})),
        );
    }

    fn spawn_nginx(&mut self) {
        let dir = self.dir.join("nginx");
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let servers = |port: fn(&Node) -> u16| -> String {
            self.nodes
                .iter()
                .map(|n| {
                    format!(
                        "    server 127.0.0.1:{} max_fails=1 fail_timeout=10s;\n",
                        port(n)
                    )
                })
                .collect()
        };
        // One process (`master_process off`): SIGKILL ends all of it, and it keeps our uid,
        // so its temp paths in our 0700 directory stay usable. Short connect timeouts and
        // `proxy_next_upstream` route around a dead node.
        let conf = format!(
            r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_connect_timeout 1s;
  proxy_next_upstream error timeout http_502 http_503 http_504;
  proxy_next_upstream_tries {NODES};
  upstream garage_web {{
{web}  }}
  upstream garage_s3 {{
{s3}  }}
  # The CDN: anonymous GETs of bucket objects from the nodes' web endpoints. Garage's
  # responses (CORS headers included) pass through unchanged.
  server {{
    listen 127.0.0.1:{cdn};
    location / {{
      proxy_pass http://garage_web;
      proxy_set_header Host {BUCKET}{WEB_ROOT_DOMAIN};
    }}
  }}
  # The S3 front: the request line and Host go through as the client signed them.
  server {{
    listen 127.0.0.1:{s3_front};
    client_max_body_size 0;
    location / {{
      proxy_pass http://garage_s3;
      proxy_set_header Host $http_host;
      proxy_request_buffering off;
      proxy_buffering off;
    }}
  }}
}}
"#,
            d = dir.display(),
            web = servers(|n| n.web),
            s3 = servers(|n| n.s3),
            cdn = self.cdn_port,
            s3_front = self.s3_front_port,
        );
        let conf_path = dir.join("nginx.conf");
        write_private(&conf_path, &conf);
        let log = std::fs::File::create(dir.join("stderr.log")).expect("nginx log");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn nginx");
        let pid = child.id();
        self.nginx = Some(child);
        self.watch(pid);
        let ports = [self.cdn_port, self.s3_front_port];
        let deadline = Instant::now() + READY_TIMEOUT;
        while ports
            .iter()
            .any(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_err())
        {
            let exited = self.nginx.as_mut().map(|c| c.try_wait());
            if matches!(exited, Some(Ok(Some(_)))) || Instant::now() > deadline {
                panic!(
                    "nginx is not listening on {ports:?}; its log:\n{}\n{}",
                    tail(&dir.join("stderr.log"), 20),
                    tail(&dir.join("error.log"), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        // Dismiss the watchdog first: once we reap the children their PIDs may be reused.
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(stdin);
        }
        let children = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.child.take())
            .chain(self.nginx.take());
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
