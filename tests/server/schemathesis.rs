//! The API held to its OpenAPI document by an independent tool (issue 18): PyPI
//! `schemathesis` (`tests/peers/schemathesis_run.py`, pinned in requirements.txt) generates
//! requests from `/api/v1/openapi.json` and checks every answer: no 5xx, a documented
//! status, the documented content type, headers and body schema. The server is seeded with
//! an admin, a viewer, a buyer (who bought the film with the dev provider, watched it and
//! commented), a published packaged film and its order, and each pass runs with the bearer
//! token of the role its operations are for; path ids are the seeded ones, so answers are
//! real bodies and not only 404s. A failing pass prints schemathesis's findings.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::peer_scripts::peer;
use crate::harness::server::{Server, FAST_PACE};
use crate::harness::users::User;

/// The checks of every pass. `response_headers_conformance` is sane here: the only
/// documented response headers are the ones the server always sends.
/// `negative_data_rejection` (a request that breaks the document is refused) goes beyond
/// the list: it found the support body that a malformed tip was dropped from.
const CHECKS: &[&str] = &[
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
];

/// Generated cases per operation and phase: the whole run stays within a few minutes on
/// two cores.
const MAX_EXAMPLES: u32 = 50;

/// Operations that end the token's sign-ins or its account: with the buyer's token they
/// would turn every later answer into a 401. They run in the last passes, each with a
/// token of its own (the viewer's, then a leaver's), after everything else.
const ENDS_THE_ACCOUNT: &[&str] = &["logoutEverywhere", "deleteMe"];

struct Seed {
    server: Server,
    admin: User,
    viewer: User,
    buyer: User,
    /// Deletes their own account in the last pass.
    leaver: User,
    film: String,
    order: String,
    comment: String,
    device: String,
}

/// The local part of a URL on the server's `public_url`.
fn local(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .find('/')
        .map(|i| after_scheme[i..].to_string())
        .unwrap_or_else(|| "/".into())
}

fn seed() -> Seed {
    let server = Server::start(&[
        ("CINEGATE_PAYMENTS__DEV__ENABLED", "true"),
        ("CINEGATE_PAYMENTS__MAX_OPEN_ORDERS", "1000"),
        ("CINEGATE_SOCIAL__COMMENTS_PER_MINUTE", "100000"),
        ("CINEGATE_TRANSCODE__LADDER", "240:300k"),
        FAST_PACE,
    ]);
    let admin = server.user("st-admin", true);
    let viewer = server.user("st-viewer", false);
    let buyer = server.user("st-buyer", false);
    let leaver = server.user("st-leaver", false);

    let (film, job) = server.ingest(&crate::harness::media::src_other(), "Contract film", true);
    server.wait_job_ready(&admin, &job, Duration::from_secs(120));
    server
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/films/{film}"),
            Some(&admin.access),
            Some(json!({ "prices": [{ "amount": 500, "currency": "USD" }] })),
        )
        .expect(200, "price the film");

    // The buyer buys with the dev provider, whose "provider page" is our own return URL.
    let checkout = server
        .post(
            &format!("/api/v1/films/{film}/checkout"),
            Some(&buyer.access),
            json!({ "provider": "dev" }),
        )
        .expect(201, "checkout")
        .json();
    let order = checkout["order_id"].as_str().expect("order_id").to_string();
    let redirect = checkout["redirect_url"].as_str().expect("redirect_url");
    server
        .get(&local(redirect), None)
        .expect(200, "the dev provider's return");
    let state = server
        .get(&format!("/api/v1/orders/{order}"), Some(&buyer.access))
        .expect(200, "the order")
        .json();
    assert_eq!(state["state"], "captured", "the buyer's order: {state}");

    // Watched to the end: comments are open to the buyer.
    let pb = server.playback(&buyer, &film);
    let n = pb.answer["total_segments"]
        .as_u64()
        .expect("total_segments") as usize;
    for i in 0..n {
        server
            .get(&pb.path(&format!("keys/{i}.key")), None)
            .expect(200, "a key");
    }
    let comment = server
        .post(
            &format!("/api/v1/films/{film}/comments"),
            Some(&buyer.access),
            json!({ "body": "A seeded comment" }),
        )
        .expect(201, "comment")
        .json()["id"]
        .as_str()
        .expect("comment id")
        .to_string();
    let device = server
        .post(
            "/api/v1/me/devices",
            Some(&buyer.access),
            json!({ "platform": "android", "token": "seeded-fcm-token:APA91bH0123456789abcdefghijklmnop", "lang": "en" }),
        )
        .expect(201, "device")
        .json()["id"]
        .as_str()
        .expect("device id")
        .to_string();
    Seed {
        server,
        admin,
        viewer,
        buyer,
        leaver,
        film,
        order,
        comment,
        device,
    }
}

/// One schemathesis pass.
struct Pass<'a> {
    name: &'a str,
    token: &'a User,
    /// Path ids are the seed's (real answers) rather than generated (mostly 404s).
    seeded_ids: bool,
    include_path_regex: Option<&'a str>,
    exclude_path_regex: Option<&'a str>,
    include_operation_ids: &'a [&'a str],
    exclude_operation_ids: &'a [&'a str],
}

/// Runs `pass`; returns its findings (schemathesis's output) when it did not exit 0.
fn run(seed: &Seed, work: &Path, pass: &Pass) -> Result<Duration, String> {
    let server = &seed.server;
    let parameters = if pass.seeded_ids {
        json!([
            { "path_regex": "^/api/v1/films/\\{id\\}", "values": { "id": seed.film } },
            { "path_regex": "^/api/v1/orders/\\{id\\}", "values": { "id": seed.order } },
            { "path_regex": "^/api/v1/comments/\\{id\\}", "values": { "id": seed.comment } },
            { "path_regex": "^/api/v1/me/devices/\\{id\\}", "values": { "id": seed.device } },
        ])
    } else {
        json!([])
    };
    let spec = json!({
        "schema": server.url("/api/v1/openapi.json"),
        "base_url": server.base,
        "token": pass.token.access,
        "max_examples": MAX_EXAMPLES,
        "checks": CHECKS,
        "include_path_regex": pass.include_path_regex,
        "exclude_path_regex": pass.exclude_path_regex,
        "include_operation_ids": pass.include_operation_ids,
        "exclude_operation_ids": pass.exclude_operation_ids,
        "parameters": parameters,
    });
    let dir = work.join(pass.name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let started = Instant::now();
    let out = Command::new("python3")
        .arg(peer("schemathesis_run.py"))
        .arg(spec.to_string())
        .arg(&dir)
        .output()
        .map_err(|e| format!("run schemathesis_run.py: {e}"))?;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis pass {:?}: {:?} in {:.0?}",
        pass.name,
        out.status.code(),
        took
    );
    // The summary (operations, cases, checks) of every pass, green or not.
    let lines: Vec<&str> = stdout.lines().collect();
    eprintln!("{}", lines[lines.len().saturating_sub(25)..].join("\n"));
    if out.status.success() {
        Ok(took)
    } else {
        Err(format!(
            "schemathesis pass {:?} exited {:?}\n{stdout}\n{stderr}\nserver log:\n{}",
            pass.name,
            out.status.code(),
            server.log_tail(30)
        ))
    }
}

#[test]
fn schemathesis_finds_nothing_the_document_does_not_promise() {
    let seed = seed();
    let work = tempfile::Builder::new()
        .prefix("cinegate-schemathesis-")
        .tempdir()
        .expect("tempdir");
    let doc: Value = seed.server.get("/api/v1/openapi.json", None).json();
    let has_admin_ops = doc["paths"]
        .as_object()
        .is_some_and(|p| p.keys().any(|k| k.starts_with("/api/v1/admin")));

    let viewer_api = |name, seeded_ids| Pass {
        name,
        token: &seed.buyer,
        seeded_ids,
        include_path_regex: None,
        exclude_path_regex: Some("^/api/v1/admin"),
        include_operation_ids: &[],
        exclude_operation_ids: ENDS_THE_ACCOUNT,
    };
    let mut passes = vec![
        viewer_api("viewer-api-as-the-buyer", true),
        viewer_api("viewer-api-generated-ids", false),
    ];
    if has_admin_ops {
        passes.push(Pass {
            name: "admin-api-as-the-admin",
            token: &seed.admin,
            seeded_ids: true,
            include_path_regex: Some("^/api/v1/admin"),
            exclude_path_regex: None,
            include_operation_ids: &[],
            exclude_operation_ids: &[],
        });
    }
    passes.push(Pass {
        name: "logout-everywhere-as-the-viewer",
        token: &seed.viewer,
        seeded_ids: false,
        include_path_regex: None,
        exclude_path_regex: None,
        include_operation_ids: &["logoutEverywhere"],
        exclude_operation_ids: &[],
    });
    passes.push(Pass {
        name: "delete-me-as-the-leaver",
        token: &seed.leaver,
        seeded_ids: false,
        include_path_regex: None,
        exclude_path_regex: None,
        include_operation_ids: &["deleteMe"],
        exclude_operation_ids: &[],
    });

    let started = Instant::now();
    let mut failures = Vec::new();
    for pass in &passes {
        if let Err(findings) = run(&seed, work.path(), pass) {
            failures.push(findings);
        }
    }
    eprintln!(
        "schemathesis: {} passes in {:.0?}",
        passes.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
